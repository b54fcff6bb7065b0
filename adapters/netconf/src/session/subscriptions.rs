//! RFC 5277 subscriptions: create-subscription with its replay, and the
//! live stream of the model's and the server's own notifications through
//! the subscription's filter.

use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::port::{Delivery, Notification, NotificationFilter, Subscription};
use halyard_cluster_model::{Timestamp, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Session;
use super::filters::Filter;
use crate::error::{RpcError, Tag, from_model};
use crate::events::ServerEvent;
use crate::xml::Element;
use crate::{BASE_NS, NC_NOTIF_NS, NOTIF_NS, schema_ns};

pub(super) struct ActiveSub {
    live: Subscription,
    /// Reads the entity an operational state change names.
    model: Arc<dyn halyard_cluster_model::port::InformationModel>,
    /// The server's own events (RFC 6470).
    server: tokio::sync::broadcast::Receiver<Arc<ServerEvent>>,
    filter: Option<Filter>,
    stop: Option<Timestamp>,
    /// Notifications already sent by the replay.
    replayed_up_to: Option<u64>,
    server_replayed_up_to: Option<u64>,
    /// Who receives: each notification is checked against the access
    /// rules' notification reads (RFC 8341 §3.4.6) as of the last read
    /// of the rules (`Shared::policy`).
    reader: Reader,
}

struct Reader {
    shared: Arc<crate::datastore::Shared>,
    user: String,
    role: halyard_cluster_model::access::Role,
    policy: Option<Arc<halyard_cluster_model::access::Policy>>,
}

impl Reader {
    async fn refresh(&mut self) {
        match self.shared.policy.get(self.shared.model.as_ref()).await {
            Ok(p) => self.policy = Some(p),
            Err(e) => warn!(error = %e, "cannot read the access rules; notifications go as before"),
        }
    }

    /// Whether the user may receive a notification of this element (the
    /// module is the one of its namespace).
    fn may_receive(&self, ev: &Element) -> bool {
        let Some(policy) = &self.policy else {
            return true;
        };
        let module = crate::monitoring::module_of_namespace(&ev.ns).unwrap_or(&ev.ns);
        let subject = halyard_cluster_model::access::Subject::notification(module, &ev.name);
        let d = policy.decide(
            &self.user,
            Some(self.role),
            &subject,
            halyard_cluster_model::access::Op::Read,
        );
        if !d.permit {
            crate::Stats::inc(&self.shared.stats.denied_notifications);
            halyard_cluster_model::access::Denials::global().record("netconf", &self.user, &d.by);
        }
        d.permit
    }
}

/// Renders a notification's event element.
pub fn event_element(n: &Notification) -> Element {
    let ns = schema_ns();
    let mut e = Element::new(ns, n.class.yang_name);
    for (a, v) in n.class.attributes.iter().zip(&n.values) {
        if !matches!(v, Value::Absent) {
            e.push(Element::with_text(ns, a.yang_name, v.render(&a.ty)));
        }
    }
    e
}

pub(super) fn notification_xml(time: Timestamp, event: Element) -> String {
    let mut n = Element::new(NOTIF_NS, "notification");
    n.push(Element::with_text(NOTIF_NS, "eventTime", time.to_string()));
    n.push(event);
    n.to_xml()
}

impl Session {
    pub(super) async fn create_subscription(&mut self, op: &Element) -> Result<(), RpcError> {
        if self.subscribed {
            return Err(RpcError::protocol(
                Tag::OperationFailed,
                "this session already has a subscription",
            ));
        }
        let text = |n: &str| op.find(NOTIF_NS, n).map(|e| e.trimmed().to_string());
        if let Some(s) = text("stream")
            && s != "NETCONF"
        {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "stream",
                format!("no stream '{s}'; the server has NETCONF"),
            ));
        }
        // RFC 5277 puts <filter> in its own namespace; ncclient sends the base one.
        let filter = op
            .find(NOTIF_NS, "filter")
            .or_else(|| op.find(BASE_NS, "filter"))
            .map(Filter::parse)
            .transpose()?;
        let time = |n: &str| -> Result<Option<Timestamp>, RpcError> {
            text(n)
                .map(|t| {
                    Timestamp::parse_rfc3339(&t).ok_or_else(|| {
                        RpcError::bad_element(
                            Tag::InvalidValue,
                            n,
                            format!("'{t}' is not a date-and-time"),
                        )
                    })
                })
                .transpose()
        };
        let start = time("startTime")?;
        let stop = time("stopTime")?;
        let now = Timestamp::now();
        match (start, stop) {
            (None, Some(_)) => {
                return Err(RpcError::bad_element(
                    Tag::MissingElement,
                    "startTime",
                    "stopTime needs a startTime",
                ));
            }
            (Some(s), _) if s > now => {
                return Err(RpcError::bad_element(
                    Tag::BadElement,
                    "startTime",
                    "startTime is in the future",
                ));
            }
            (Some(s), Some(e)) if e < s => {
                return Err(RpcError::bad_element(
                    Tag::BadElement,
                    "stopTime",
                    "stopTime is before startTime",
                ));
            }
            _ => {}
        }
        // Subscribe first so nothing falls between the replay and live delivery.
        let live = self.shared.model.subscribe(NotificationFilter::default());
        let server = self.shared.events.subscribe();
        let mut sub = ActiveSub {
            live,
            model: self.shared.model.clone(),
            server,
            filter,
            stop,
            replayed_up_to: None,
            server_replayed_up_to: None,
            reader: Reader {
                shared: self.shared.clone(),
                user: self.user.clone(),
                role: self.access.role(),
                policy: None,
            },
        };
        sub.reader.refresh().await;
        if let Some(s) = start {
            let past = self
                .shared
                .model
                .history(&NotificationFilter::default(), s, stop)
                .await
                .map_err(|e| from_model(&e, None))?;
            let past_server = self.shared.events.history(s, stop);
            // The model's and the server's own events, merged in time order.
            let mut replay: Vec<(Timestamp, Option<String>)> = Vec::new();
            for n in &past {
                sub.replayed_up_to = Some(n.seq);
                let entity = crate::hardware::entity_of(sub.model.as_ref(), n).await;
                for x in render_for(&sub, n, entity.as_ref()) {
                    replay.push((n.time, Some(x)));
                }
            }
            for e in &past_server {
                sub.server_replayed_up_to = Some(e.seq);
                replay.push((e.time, render_element(&sub, e.time, e.event.clone())));
            }
            replay.sort_by_key(|(t, _)| *t);
            self.outbox
                .extend(replay.into_iter().filter_map(|(_, x)| x));
            self.outbox.push_back(notification_xml(
                Timestamp::now(),
                Element::new(NC_NOTIF_NS, "replayComplete"),
            ));
            if stop.is_some_and(|e| e <= Timestamp::now()) {
                self.outbox.push_back(notification_xml(
                    Timestamp::now(),
                    Element::new(NC_NOTIF_NS, "notificationComplete"),
                ));
                self.subscribed = true;
                return Ok(());
            }
        }
        self.subscribed = true;
        self.sub = Some(sub);
        info!(replay = start.is_some(), "subscribed to NETCONF stream");
        Ok(())
    }
}

/// The schema's notification, and for an alarm indication also the
/// ietf-alarms alarm-notification (for a unit inserted or removed,
/// ietf-hardware's hardware-state-change; for an entity's operational
/// state change, hardware-state-oper-enabled or -disabled), each through
/// the filter.
fn render_for(
    sub: &ActiveSub,
    n: &Notification,
    entity: Option<&halyard_cluster_model::port::ManagedObject>,
) -> Vec<String> {
    std::iter::once(event_element(n))
        .chain(crate::alarms::notification(n))
        .chain(crate::hardware::notification(n, entity))
        .filter_map(|e| render_element(sub, n.time, e))
        .collect()
}

/// An event element through the access rules and the subscription's
/// filter, as a notification.
fn render_element(sub: &ActiveSub, time: Timestamp, ev: Element) -> Option<String> {
    if !sub.reader.may_receive(&ev) {
        return None;
    }
    let ev = match &sub.filter {
        None => ev,
        Some(f) => f
            .apply(std::slice::from_ref(&ev))
            .ok()?
            .into_iter()
            .next()?,
    };
    Some(notification_xml(time, ev))
}

pub(super) enum SubEvent {
    Send(Vec<String>),
    Missed(u64),
    Complete,
    Nothing,
}

pub(super) async fn next_sub_event(sub: &mut ActiveSub) -> SubEvent {
    let until_stop = sub.stop.map(|s| {
        let ms = (s.0 - Timestamp::now().0).max(0) as u64;
        Instant::now() + Duration::from_millis(ms)
    });
    let stop_timer = async {
        match until_stop {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    sub.reader.refresh().await;
    tokio::select! {
        d = sub.live.recv() => match d {
            Some(Delivery::Notification(n)) => {
                if sub.replayed_up_to.is_some_and(|s| n.seq <= s) {
                    return SubEvent::Nothing;
                }
                if sub.stop.is_some_and(|s| n.time > s) {
                    return SubEvent::Complete;
                }
                let entity = crate::hardware::entity_of(sub.model.as_ref(), &n).await;
                let xs = render_for(sub, &n, entity.as_ref());
                if xs.is_empty() {
                    SubEvent::Nothing
                } else {
                    SubEvent::Send(xs)
                }
            }
            Some(Delivery::Missed(k)) => SubEvent::Missed(k),
            None => SubEvent::Complete,
        },
        r = sub.server.recv() => match r {
            Ok(e) => {
                if sub.server_replayed_up_to.is_some_and(|s| e.seq <= s) {
                    return SubEvent::Nothing;
                }
                if sub.stop.is_some_and(|s| e.time > s) {
                    return SubEvent::Complete;
                }
                match render_element(sub, e.time, e.event.clone()) {
                    Some(x) => SubEvent::Send(vec![x]),
                    None => SubEvent::Nothing,
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => SubEvent::Missed(k),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => SubEvent::Complete,
        },
        () = stop_timer => SubEvent::Complete,
    }
}
