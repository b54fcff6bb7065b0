//! One NETCONF session over any byte stream (an SSH channel in
//! production): the hello exchange, framing choice, RPC dispatch, and
//! RFC 5277 notification delivery interleaved with RPCs.
//!
//! - this file: the session loop (hello, framing, one reply per RPC,
//!   notifications between replies);
//! - [`dispatch`]: one function per operation;
//! - [`filters`]: subtree and XPath `<filter>`;
//! - [`subscriptions`]: create-subscription, replay and live delivery.

mod dispatch;
mod filters;
mod subscriptions;

use std::collections::VecDeque;
use std::sync::Arc;

use halyard_cluster_model::Timestamp;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::datastore::Shared;
use crate::error::{ErrorType, RpcError, Tag};
use crate::events::{self, End};
use crate::framing::{FrameError, FrameReader, Framing, encode};
use crate::monitoring::{Stats, capabilities};
use crate::xml::{self, Element};
use crate::{BASE_NS, NC_NOTIF_NS};

use dispatch::{Reply, missing};
pub use filters::Filter;
pub use subscriptions::event_element;
use subscriptions::{ActiveSub, SubEvent, next_sub_event, notification_xml};

const BASE_1_0: &str = "urn:ietf:params:netconf:base:1.0";
const BASE_1_1: &str = "urn:ietf:params:netconf:base:1.1";

/// A session in progress.
struct Session {
    shared: Arc<Shared>,
    id: u32,
    user: String,
    /// May read and subscribe only.
    read_only: bool,
    framing: Framing,
    subscribed: bool,
    sub: Option<ActiveSub>,
    /// Notifications (rendered) waiting to go out after the current reply.
    outbox: VecDeque<String>,
    close: bool,
}

impl Session {
    async fn write(&self, w: &mut (impl AsyncWrite + Unpin), msg: &str) -> std::io::Result<()> {
        w.write_all(&encode(msg, self.framing)).await?;
        w.flush().await
    }
}

fn hello_xml(id: u32) -> String {
    let mut h = Element::new(BASE_NS, "hello");
    let mut caps = Element::new(BASE_NS, "capabilities");
    for c in capabilities() {
        caps.push(Element::with_text(BASE_NS, "capability", c));
    }
    h.push(caps);
    h.push(Element::with_text(BASE_NS, "session-id", id.to_string()));
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}", h.to_xml())
}

/// Checks the client's hello; returns whether base:1.1 was offered.
fn client_hello(msg: &[u8], max_depth: usize) -> Result<bool, String> {
    let text = std::str::from_utf8(msg).map_err(|_| "hello is not UTF-8".to_string())?;
    let h = xml::parse(text, max_depth).map_err(|e| e.to_string())?;
    if !h.is(BASE_NS, "hello") {
        return Err(format!("expected <hello>, got <{}> in '{}'", h.name, h.ns));
    }
    if h.find(BASE_NS, "session-id").is_some() {
        return Err("a client hello must not carry a session-id".into());
    }
    let caps: Vec<&str> = h
        .find(BASE_NS, "capabilities")
        .map(|c| {
            c.children
                .iter()
                .filter(|x| x.is(BASE_NS, "capability"))
                .map(Element::trimmed)
                .collect()
        })
        .unwrap_or_default();
    let v11 = caps.contains(&BASE_1_1);
    if !v11 && !caps.contains(&BASE_1_0) {
        return Err("no common base capability".into());
    }
    Ok(v11)
}

/// Builds `<rpc-reply>` carrying every attribute of the `<rpc>`.
fn reply_xml(attrs: &[(String, String, String)], reply: Reply) -> String {
    let mut r = Element::new(BASE_NS, "rpc-reply");
    r.attrs = attrs.to_vec();
    match reply {
        Reply::Ok => {
            r.push(Element::new(BASE_NS, "ok"));
        }
        Reply::Data(d) => {
            let mut data = Element::new(BASE_NS, "data");
            data.children = d;
            r.push(data);
        }
        Reply::DataText(text) => {
            // Splice the serialized content into <data>: the marker is the
            // last text of the reply, after any attribute the client sent.
            const MARK: char = '\u{E000}';
            let mut head = String::new();
            r.push(Element::with_text(BASE_NS, "data", MARK.to_string()));
            r.write(&mut head, "");
            if let Some(at) = head.rfind(MARK) {
                head.replace_range(at..at + MARK.len_utf8(), &text);
            }
            return head;
        }
        Reply::Raw(items) => r.children = items,
        Reply::Errors(es) => {
            for e in es {
                r.push(e.to_element());
            }
        }
    }
    r.to_xml()
}

/// Runs one session to its end over `stream`. The session runs in its own
/// task so that even a panic in it releases its locks and registration.
pub async fn run_session<S>(
    shared: Arc<Shared>,
    stream: S,
    user: String,
    peer: String,
    read_only: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, kill) = shared.register(&user, &peer);
    let span = info_span!("netconf", session = id, user = %user, peer = %peer);
    let who = shared.who(id);
    // Aborted when dropped: shutdown aborts the outer task.
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
        serve(shared.clone(), stream, id, user, read_only, kill).instrument(span.clone()),
    ));
    let end = match task.await {
        Ok(end) => end,
        Err(e) => {
            if e.is_panic() {
                error!(parent: &span, "session task panicked: its locks are released");
            }
            End::Dropped
        }
    };
    // RFC 6022: dropped-sessions counts sessions "abnormally terminated,
    // e.g., due to idle timeout or transport close"; a close-session or a
    // kill-session is an orderly end.
    if !matches!(end, End::Closed | End::Killed(_)) {
        Stats::inc(&shared.stats.dropped_sessions);
    }
    shared.events.emit(events::session_end(&who, end));
    shared.unregister(id).instrument(span).await;
}

fn killed(kill: &tokio::sync::watch::Receiver<Option<u32>>) -> End {
    End::Killed(kill.borrow().unwrap_or(0))
}

/// The session loop; returns why the session ended.
async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    id: u32,
    user: String,
    read_only: bool,
    mut kill: tokio::sync::watch::Receiver<Option<u32>>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let limits = shared.limits.clone();
    let mut reader = FrameReader::new(rd, limits.max_message_size);
    let mut s = Session {
        shared: shared.clone(),
        id,
        user,
        read_only,
        framing: Framing::EndOfMessage,
        subscribed: false,
        sub: None,
        outbox: VecDeque::new(),
        close: false,
    };
    // Our hello goes out at once, without waiting for the client's (RFC 6241 §8.1).
    if let Err(e) = s.write(&mut wr, &hello_xml(id)).await {
        debug!(error = %e, "client gone before the hello");
        return End::Dropped;
    }
    let hello = tokio::select! {
        r = tokio::time::timeout(limits.hello_timeout, reader.read_message()) => r,
        _ = kill.changed() => return killed(&kill),
    };
    let v11 = match hello {
        Ok(Ok(Some(m))) => match client_hello(&m, limits.max_depth) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "bad hello: closing the session");
                Stats::inc(&shared.stats.in_bad_hellos);
                return End::BadHello;
            }
        },
        Ok(Ok(None)) => return End::Dropped,
        Ok(Err(e)) => {
            warn!(error = %e, "framing error in the hello: closing the session");
            Stats::inc(&shared.stats.in_bad_hellos);
            return End::BadHello;
        }
        Err(_) => {
            warn!("no hello in time: closing the session");
            Stats::inc(&shared.stats.in_bad_hellos);
            return End::Timeout;
        }
    };
    if v11 {
        s.framing = Framing::Chunked;
        reader.framing = Framing::Chunked;
    }
    info!(framing = ?s.framing, "session started");
    shared.events.emit(events::session_start(&shared.who(id)));
    let idle = shared.idle_timeout;
    let mut deadline = Instant::now() + idle;
    loop {
        // Notifications queued by a reply (replay) go out first.
        while let Some(n) = s.outbox.pop_front() {
            if s.write(&mut wr, &n).await.is_err() {
                return End::Dropped;
            }
            Stats::inc(&shared.stats.out_notifications);
            shared.count(id, |i| i.out_notifications += 1);
            if let Some(t) = &shared.trace {
                t.record(id, None, &n).await;
            }
        }
        if s.close {
            info!("session closed by the client");
            let _ = wr.shutdown().await;
            return End::Closed;
        }
        let has_sub = s.sub.is_some();
        let sub_event = async {
            match s.sub.as_mut() {
                Some(sub) => next_sub_event(sub).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = kill.changed() => {
                info!("session killed");
                let _ = wr.shutdown().await;
                return killed(&kill);
            }
            msg = reader.read_message() => {
                match msg {
                    Ok(Some(m)) => {
                        deadline = Instant::now() + idle;
                        let started = std::time::Instant::now();
                        let out = s.handle_message(&m).await;
                        if let Some(t) = &shared.trace {
                            t.record(id, Some(&m), &out).await;
                        }
                        s.shared.stats.rpc_latency.observe(started.elapsed());
                        if s.write(&mut wr, &out).await.is_err() {
                            return End::Dropped;
                        }
                    }
                    Ok(None) => {
                        info!("client closed the connection");
                        return End::Dropped;
                    }
                    Err(e) => {
                        Stats::inc(&shared.stats.framing_errors);
                        match e {
                            FrameError::Io(e) => info!(error = %e, "connection lost"),
                            FrameError::Truncated => info!("client vanished in the middle of a message"),
                            e => {
                                warn!(error = %e, "framing error: closing the session");
                                let err = RpcError::malformed(e.to_string());
                                let _ = s.write(&mut wr, &reply_xml(&[], Reply::Errors(vec![err]))).await;
                            }
                        }
                        let _ = wr.shutdown().await;
                        return End::Dropped;
                    }
                }
            }
            ev = sub_event => {
                match ev {
                    SubEvent::Send(x) => s.outbox.push_back(x),
                    SubEvent::Missed(k) => warn!(missed = k, "subscriber too slow: notifications dropped"),
                    SubEvent::Complete => {
                        s.outbox.push_back(notification_xml(Timestamp::now(), Element::new(NC_NOTIF_NS, "notificationComplete")));
                        s.sub = None;
                    }
                    SubEvent::Nothing => {}
                }
            }
            () = tokio::time::sleep_until(deadline), if !has_sub => {
                info!(idle_s = idle.as_secs(), "idle timeout: closing the session");
                let _ = wr.shutdown().await;
                return End::Timeout;
            }
        }
    }
}

impl Session {
    /// One message in, one reply out.
    async fn handle_message(&mut self, m: &[u8]) -> String {
        let sh = self.shared.clone();
        let id = self.id;
        Stats::inc(&sh.stats.in_rpcs);
        sh.count(id, |i| i.in_rpcs += 1);
        let bad = |sh: &Shared, e: RpcError, attrs: &[(String, String, String)]| {
            Stats::inc(&sh.stats.in_bad_rpcs);
            Stats::inc(&sh.stats.out_rpc_errors);
            sh.count(id, |i| {
                i.in_bad_rpcs += 1;
                i.out_rpc_errors += 1;
            });
            reply_xml(attrs, Reply::Errors(vec![e]))
        };
        let text = match std::str::from_utf8(m) {
            Ok(t) => t,
            Err(_) => return bad(&sh, RpcError::malformed("message is not UTF-8"), &[]),
        };
        let rpc = match xml::parse(text, sh.limits.max_depth) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "malformed message");
                return bad(&sh, RpcError::malformed(e.to_string()), &[]);
            }
        };
        let attrs = rpc.attrs.clone();
        if rpc.name != "rpc" || rpc.ns != BASE_NS {
            let e = if rpc.name == "rpc" {
                RpcError::protocol(
                    Tag::UnknownNamespace,
                    format!("<rpc> must be in {BASE_NS}, not '{}'", rpc.ns),
                )
                .with_info("bad-element", "rpc")
                .with_info("bad-namespace", rpc.ns.clone())
            } else {
                RpcError::new(
                    ErrorType::Rpc,
                    Tag::MalformedMessage,
                    format!("expected <rpc>, got <{}>", rpc.name),
                )
            };
            return bad(&sh, e, &attrs);
        }
        if rpc.attr("", "message-id").is_none() {
            let e = RpcError::new(
                ErrorType::Rpc,
                Tag::MissingAttribute,
                "<rpc> without message-id",
            )
            .with_info("bad-attribute", "message-id")
            .with_info("bad-element", "rpc");
            return bad(&sh, e, &attrs);
        }
        let Some(op) = rpc.children.first() else {
            return bad(&sh, missing("operation"), &attrs);
        };
        debug!(op = %op.name, "rpc");
        let reply = self.dispatch(op).await;
        if let Reply::Errors(es) = &reply {
            let n = es.len() as u64;
            for e in es {
                debug!(op = %op.name, tag = e.tag.as_str(), message = %e.message, "rpc-error");
            }
            sh.stats
                .out_rpc_errors
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            sh.count(id, |i| i.out_rpc_errors += n);
        }
        reply_xml(&attrs, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hellos() {
        let hello = |caps: &str, extra: &str| {
            format!(
                r#"<hello xmlns="{BASE_NS}"><capabilities>{caps}</capabilities>{extra}</hello>"#
            )
        };
        let cap = |c: &str| format!("<capability>{c}</capability>");
        let both = format!("{}{}", cap(BASE_1_0), cap(BASE_1_1));
        assert_eq!(client_hello(hello(&both, "").as_bytes(), 8), Ok(true));
        assert_eq!(
            client_hello(hello(&cap(BASE_1_0), "").as_bytes(), 8),
            Ok(false)
        );
        assert!(client_hello(hello(&cap("urn:x"), "").as_bytes(), 8).is_err());
        assert!(client_hello(hello(&both, "<session-id>4</session-id>").as_bytes(), 8).is_err());
        assert!(client_hello(b"<hello xmlns='urn:wrong'/>", 8).is_err());
        assert!(client_hello(b"<hello", 8).is_err());
        // The server's own hello advertises both bases and a session-id.
        let h = hello_xml(9);
        assert!(
            h.contains(BASE_1_0)
                && h.contains(BASE_1_1)
                && h.contains("<session-id>9</session-id>")
        );
    }

    #[test]
    fn replies_carry_the_rpc_attributes() {
        let attrs = vec![
            (String::new(), "message-id".to_string(), "m-1".to_string()),
            ("urn:ex".to_string(), "user".to_string(), "x".to_string()),
        ];
        let r = reply_xml(&attrs, Reply::Ok);
        assert!(r.starts_with(r#"<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="m-1" xmlns:a1="urn:ex" a1:user="x"><ok/>"#), "{r}");
        let r = reply_xml(&attrs[..1], Reply::DataText("<x/>".into()));
        assert!(
            r.ends_with(r#"message-id="m-1"><data><x/></data></rpc-reply>"#),
            "{r}"
        );
    }
}
