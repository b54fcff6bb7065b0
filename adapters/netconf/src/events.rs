//! RFC 6470 base notifications the server generates itself (session start
//! and end, configuration changes, confirmed-commit events), delivered on
//! the NETCONF stream next to the model's notifications and kept for replay.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use halyard_cluster_model::Timestamp;
use tokio::sync::broadcast;

use crate::schema_ns;
use crate::xml::{Element, XMLNS_DECL};
use halyard_cluster_model::SCHEMA;

/// The ietf-netconf-notifications namespace.
pub const NCN_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications";

/// Server events kept for replay.
const KEPT: usize = 1000;

/// One server-generated notification.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    pub seq: u64,
    pub time: Timestamp,
    pub event: Element,
}

/// The server's own notification stream.
#[derive(Debug)]
pub struct EventLog {
    tx: broadcast::Sender<Arc<ServerEvent>>,
    log: Mutex<VecDeque<Arc<ServerEvent>>>,
    next: AtomicU64,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            tx: broadcast::channel(256).0,
            log: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(1),
        }
    }
}

impl EventLog {
    pub fn emit(&self, event: Element) {
        let e = Arc::new(ServerEvent {
            seq: self.next.fetch_add(1, Ordering::Relaxed),
            time: Timestamp::now(),
            event,
        });
        {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            if log.len() == KEPT {
                log.pop_front();
            }
            log.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ServerEvent>> {
        self.tx.subscribe()
    }

    /// Events with `since <= time <= until`, oldest first.
    pub fn history(&self, since: Timestamp, until: Option<Timestamp>) -> Vec<Arc<ServerEvent>> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.time >= since && until.is_none_or(|u| e.time <= u))
            .cloned()
            .collect()
    }
}

/// The `common-session-parms` of RFC 6470.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: String,
    /// 0 when the server itself acted.
    pub session: u32,
    pub host: String,
}

fn leaf(name: &str, v: impl Into<String>) -> Element {
    Element::with_text(NCN_NS, name, v)
}

fn session_parms(e: &mut Element, who: &Who) {
    e.push(leaf("username", who.user.clone()));
    e.push(leaf("session-id", who.session.to_string()));
    if !who.host.is_empty() {
        e.push(leaf("source-host", who.host.clone()));
    }
}

pub fn session_start(who: &Who) -> Element {
    let mut e = Element::new(NCN_NS, "netconf-session-start");
    session_parms(&mut e, who);
    e
}

/// Why a session ended (RFC 6470 termination-reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Closed,
    /// By this session (0: the server, at shutdown).
    Killed(u32),
    Dropped,
    Timeout,
    BadHello,
}

pub fn session_end(who: &Who, end: End) -> Element {
    let mut e = Element::new(NCN_NS, "netconf-session-end");
    session_parms(&mut e, who);
    let reason = match end {
        End::Closed => "closed",
        End::Killed(by) if by > 0 => {
            e.push(leaf("killed-by", by.to_string()));
            "killed"
        }
        End::Killed(_) => "other",
        End::Dropped => "dropped",
        End::Timeout => "timeout",
        End::BadHello => "bad-hello",
    };
    e.push(leaf("termination-reason", reason));
    e
}

/// `netconf-config-change`: `edits` are (instance-identifier, operation).
pub fn config_change(by: Option<&Who>, edits: &[(String, &'static str)]) -> Element {
    let mut e = Element::new(NCN_NS, "netconf-config-change");
    let mut changed = Element::new(NCN_NS, "changed-by");
    match by {
        Some(who) => session_parms(&mut changed, who),
        None => changed.push(Element::new(NCN_NS, "server")),
    }
    e.push(changed);
    e.push(leaf("datastore", "running"));
    for (target, op) in edits {
        let mut ed = Element::new(NCN_NS, "edit");
        let mut t = leaf("target", target.clone());
        t.attrs.push((
            XMLNS_DECL.into(),
            SCHEMA.module.prefix.into(),
            schema_ns().into(),
        ));
        ed.push(t);
        ed.push(leaf("operation", *op));
        e.push(ed);
    }
    e
}

/// `netconf-confirmed-commit`. The module's `when` leaves out the session
/// parameters of a timeout: the server itself rolled back, no session did.
pub fn confirmed_commit(who: &Who, event: &str, timeout_s: Option<u64>) -> Element {
    let mut e = Element::new(NCN_NS, "netconf-confirmed-commit");
    if event != "timeout" {
        session_parms(&mut e, who);
    }
    e.push(leaf("confirm-event", event));
    if let Some(t) = timeout_s.filter(|_| matches!(event, "start" | "extend")) {
        e.push(leaf("timeout", t.to_string()));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_and_replays() {
        let log = EventLog::default();
        let mut rx = log.subscribe();
        let who = Who {
            user: "u".into(),
            session: 3,
            host: "127.0.0.1".into(),
        };
        log.emit(session_start(&who));
        log.emit(session_end(&who, End::Killed(4)));
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        let h = log.history(Timestamp(0), None);
        assert_eq!(h.len(), 2);
        let x = h[1].event.to_xml();
        assert!(
            x.contains("<killed-by>4</killed-by><termination-reason>killed</termination-reason>"),
            "{x}"
        );
        let c = config_change(
            None,
            &[("/hc:element/hc:fan[hc:name='x']".into(), "create")],
        );
        let x = c.to_xml();
        assert!(
            x.contains("<changed-by><server/></changed-by><datastore>running</datastore>"),
            "{x}"
        );
        assert!(x.contains("<target xmlns:hc="), "{x}");
    }
}
