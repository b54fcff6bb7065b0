//! The event service: publish/subscribe with filters over bounded queues.
//! A slow subscriber never blocks a publisher; it is told what it missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use halyard_cluster_model::Timestamp;
use halyard_cluster_model::model::{
    AvailabilityState, PerceivedSeverity, ProbableCause, RecoveryAction,
};
use serde::Serialize;
use tokio::sync::broadcast;

/// Everything that changes in the HA core travels as one of these.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// CRIM changed a component's availability state.
    StateChanged {
        component: String,
        from: String,
        to: String,
        reason: String,
    },
    /// A service instance moved its active assignment.
    FailedOver {
        si: String,
        from: String,
        to: String,
        reason: String,
    },
    /// CRIM chose a recovery for a failure.
    Recovery {
        component: String,
        action: String,
        reason: String,
    },
    /// An assignment was made or removed.
    Assignment {
        si: String,
        component: String,
        role: String,
        assigned: bool,
    },
    /// The CEC decided about an error report.
    Verdict {
        component: String,
        verdict: String,
        reason: String,
    },
    /// An alarm to raise or clear (the agent's alarm manager owns alarms).
    Alarm {
        resource: String,
        cause: u32,
        severity: u32,
        text: String,
        clear: bool,
    },
    /// A statistic a proxy relayed from its non-peer node (published on
    /// the proxy's node only; alarms go to every node, see
    /// `core::RELAYED_ALARM`).
    Statistic {
        resource: String,
        name: String,
        value: f64,
        unit: String,
    },
    /// Operational state of a component changed.
    OperChanged {
        component: String,
        enabled: bool,
        reason: String,
    },
    /// A component went off-line because its container failed (after its
    /// `StateChanged`): the agent's secondary alarm.
    ContainerFailed {
        component: String,
        container: String,
    },
    /// A component acknowledged its role.
    Acked { component: String, state: String },
    /// A configuration change every node applies (in a cluster, once
    /// committed to the log), e.g. an operator's write of an attribute.
    Replicated {
        topic: String,
        body: serde_json::Value,
    },
    /// A process component started (pid) or stopped.
    Process {
        component: String,
        pid: Option<u32>,
        incarnation: u32,
    },
}

impl EventKind {
    pub fn state_changed(
        component: &str,
        from: AvailabilityState,
        to: AvailabilityState,
        reason: &str,
    ) -> Self {
        EventKind::StateChanged {
            component: component.into(),
            from: from.yang_name().into(),
            to: to.yang_name().into(),
            reason: reason.into(),
        }
    }

    pub fn recovery(component: &str, action: RecoveryAction, reason: &str) -> Self {
        EventKind::Recovery {
            component: component.into(),
            action: action.yang_name().into(),
            reason: reason.into(),
        }
    }

    pub fn alarm(
        resource: &str,
        cause: ProbableCause,
        severity: PerceivedSeverity,
        text: &str,
        clear: bool,
    ) -> Self {
        use halyard_cluster_model::SchemaEnum;
        EventKind::Alarm {
            resource: resource.into(),
            cause: cause.value(),
            severity: severity.value(),
            text: text.into(),
            clear,
        }
    }

    /// The component or resource the event is about.
    pub fn subject(&self) -> &str {
        match self {
            EventKind::StateChanged { component, .. }
            | EventKind::Recovery { component, .. }
            | EventKind::Assignment { component, .. }
            | EventKind::Verdict { component, .. }
            | EventKind::Acked { component, .. }
            | EventKind::OperChanged { component, .. }
            | EventKind::ContainerFailed { component, .. }
            | EventKind::Process { component, .. } => component,
            EventKind::FailedOver { si, .. } => si,
            EventKind::Alarm { resource, .. } | EventKind::Statistic { resource, .. } => resource,
            EventKind::Replicated { topic, .. } => topic,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EventKind::StateChanged { .. } => "state-changed",
            EventKind::FailedOver { .. } => "failed-over",
            EventKind::Recovery { .. } => "recovery",
            EventKind::Assignment { .. } => "assignment",
            EventKind::Verdict { .. } => "verdict",
            EventKind::Alarm { .. } => "alarm",
            EventKind::Statistic { .. } => "relayed-statistic",
            EventKind::OperChanged { .. } => "oper-changed",
            EventKind::ContainerFailed { .. } => "container-failed",
            EventKind::Process { .. } => "process",
            EventKind::Acked { .. } => "acked",
            EventKind::Replicated { .. } => "replicated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: u64,
    pub time: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Event(Arc<Event>),
    /// This many events were dropped for this subscriber.
    Missed(u64),
}

/// A subscriber's filter: event names, and a subject prefix.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kinds: Vec<&'static str>,
    pub subject_prefix: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&e.kind.name()))
            && self
                .subject_prefix
                .as_deref()
                .is_none_or(|p| e.kind.subject().starts_with(p))
    }
}

#[derive(Debug, Clone)]
pub struct EventService {
    tx: broadcast::Sender<Arc<Event>>,
    seq: Arc<AtomicU64>,
}

#[derive(Debug)]
pub struct EventSubscriber {
    rx: broadcast::Receiver<Arc<Event>>,
    filter: EventFilter,
}

impl EventService {
    /// `capacity` bounds every subscriber's queue.
    pub fn new(capacity: usize) -> Self {
        EventService {
            tx: broadcast::channel(capacity).0,
            seq: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Publishes without ever waiting; returns the event's sequence number.
    pub fn publish(&self, kind: EventKind) -> Arc<Event> {
        let e = Arc::new(Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            time: Timestamp::now().0,
            kind,
        });
        tracing::debug!(
            event = e.kind.name(),
            subject = e.kind.subject(),
            seq = e.seq,
            "event"
        );
        let _ = self.tx.send(e.clone());
        e
    }

    pub fn subscribe(&self, filter: EventFilter) -> EventSubscriber {
        EventSubscriber {
            rx: self.tx.subscribe(),
            filter,
        }
    }
}

impl EventSubscriber {
    /// The next matching event; `None` once the service is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            match self.rx.recv().await {
                Ok(e) if self.filter.matches(&e) => return Some(Received::Event(e)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(Received::Missed(n)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// A matching event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        loop {
            match self.rx.try_recv() {
                Ok(e) if self.filter.matches(&e) => return Some(Received::Event(e)),
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(n)) => return Some(Received::Missed(n)),
                Err(_) => return None,
            }
        }
    }
}
