//! Notifications: live streams of server-sent events (`/api/v1/events`,
//! and `/api/v1/alarms/events` for the alarm indications), which replay
//! what a reconnecting client missed, and the stored history
//! (`/api/v1/notifications`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use halyard_cluster_model::model::PerceivedSeverity;
use halyard_cluster_model::port::{Delivery, NotificationFilter};
use halyard_cluster_model::{SCHEMA, SchemaEnum, Timestamp};

use super::{parse_name, reply};
use crate::auth::Caller;
use crate::body;
use crate::config::Role;
use crate::error::ApiError;
use crate::repr::{self, Format};
use crate::state::Shared;

fn filter_from(raw: Option<&str>, classes: Vec<String>) -> Result<NotificationFilter, ApiError> {
    let mut nf = NotificationFilter {
        classes,
        ..Default::default()
    };
    for (k, v) in body::form(raw.unwrap_or("")) {
        match k.as_str() {
            "class" => {
                let c = SCHEMA
                    .class(&v)
                    .filter(|c| c.is_indication)
                    .ok_or_else(|| ApiError::not_found(format!("unknown notification {v}")))?;
                nf.classes.push(c.name.to_string());
            }
            "subtree" => nf.subtree = Some(parse_name(&v)?),
            "min-severity" => {
                let meta = <PerceivedSeverity as SchemaEnum>::META;
                let x = meta
                    .by_name(&v)
                    .and_then(|x| PerceivedSeverity::from_value(x.value))
                    .ok_or_else(|| ApiError::invalid(format!("unknown severity {v}")))?;
                nf.min_severity = Some(x);
            }
            _ => {}
        }
    }
    Ok(nf)
}

/// Decrements the open-streams gauge when a stream ends.
struct StreamGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn notification_event(n: &halyard_cluster_model::port::Notification) -> Event {
    Event::default()
        .event(n.class.yang_name)
        .id(n.seq.to_string())
        .data(repr::notification_json(n).to_string())
}

/// A live stream of notifications. With `Last-Event-ID` (an
/// `EventSource` reconnecting), the stored notifications after that one
/// are replayed first, so a reconnect loses nothing the model still holds.
async fn sse(
    st: &Shared,
    nf: NotificationFilter,
    headers: &HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    if st.metrics.event_streams.get() >= st.limits.max_event_streams as i64 {
        return Err(ApiError::from(
            halyard_cluster_model::port::ModelError::Unavailable {
                reason: format!(
                    "{} event streams are open, the most this server allows",
                    st.limits.max_event_streams
                ),
            },
        ));
    }
    // Subscribe before reading the history: nothing falls between the two.
    let sub = st.model.subscribe(nf.clone());
    let mut queue = std::collections::VecDeque::new();
    queue.push_back(Event::default().event("hello").data(
        serde_json::json!({"module": SCHEMA.module.yang_module, "time": Timestamp::now().to_string()})
            .to_string(),
    ));
    let mut replayed = None;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(last) = last {
        let stored = st.call(st.model.history(&nf, Timestamp(0), None)).await?;
        for n in stored.iter().filter(|n| n.seq > last) {
            queue.push_back(notification_event(n));
            replayed = Some(n.seq);
        }
    }
    st.metrics.event_streams.inc();
    let guard = StreamGuard(st.metrics.event_streams.clone());
    let shutdown = st.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (sub, shutdown, guard, queue, replayed),
        |(mut sub, mut shutdown, guard, mut queue, replayed)| async move {
            if let Some(ev) = queue.pop_front() {
                return Some((Ok(ev), (sub, shutdown, guard, queue, replayed)));
            }
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let d = tokio::select! {
                    d = sub.recv() => d?,
                    _ = shutdown.wait_for(|s| *s) => return None,
                };
                let ev = match d {
                    Delivery::Notification(n) if replayed.is_some_and(|r| n.seq <= r) => continue,
                    Delivery::Notification(n) => notification_event(&n),
                    Delivery::Missed(k) => Event::default()
                        .event("missed")
                        .data(serde_json::json!({"missed": k}).to_string()),
                };
                return Some((Ok(ev), (sub, shutdown, guard, queue, replayed)));
            }
        },
    );
    // Keep-alives well within the idle bound of the connection.
    let every = Duration::from_secs(15).min(st.limits.idle_timeout / 2);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(every)))
}

pub(super) async fn events(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let nf = filter_from(raw.as_deref(), Vec::new())?;
    Ok(sse(&st, nf, &headers).await?.into_response())
}

/// The notifications about alarms: the indications that carry an alarm's
/// name (an attribute with the schema's `Role("alarm")`).
fn alarm_notifications() -> Vec<String> {
    SCHEMA
        .indications()
        .filter(|c| {
            c.attribute_by_role(halyard_cluster_model::meta::Role::Alarm)
                .is_some()
        })
        .map(|c| c.name.to_string())
        .collect()
}

pub(super) async fn alarm_events(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let nf = filter_from(raw.as_deref(), alarm_notifications())?;
    Ok(sse(&st, nf, &headers).await?.into_response())
}

/// Stored notifications: `?since=<RFC 3339>&until=..&class=..&subtree=..`.
pub(super) async fn notifications(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let nf = filter_from(raw.as_deref(), Vec::new())?;
    let mut since = Timestamp(0);
    let mut until = None;
    for (k, v) in body::form(raw.as_deref().unwrap_or("")) {
        let t = || {
            Timestamp::parse_rfc3339(&v)
                .ok_or_else(|| ApiError::invalid(format!("{k}: not an RFC 3339 time: {v}")))
        };
        match k.as_str() {
            "since" => since = t()?,
            "until" => until = Some(t()?),
            _ => {}
        }
    }
    let ns = st.call(st.model.history(&nf, since, until)).await?;
    Ok(reply(StatusCode::OK, f, repr::notifications_doc(&ns, f)))
}
