//! The cluster log: every node's warnings and errors, and the black box of
//! every component that fails, merged into one ordered log through the
//! replicated log (topic `log`), so every node shows the same records in
//! the same order as `LogRecord` objects — hence in every face. Retention:
//! the newest [`KEEP`] records stay in the tree; the replicated log keeps
//! the newest [`crate::replication::LOG_BATCHES_KEPT`] batches of each
//! node (see [`crate::replication::Replicated::retention`]). A failure's incident links
//! to the first record of its black box (`AvailabilityIncident.BlackBox`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use halyard_cluster_model::model::{AvailabilityIncidentPatch, LogLevel, LogRecordPatch};
use halyard_cluster_model::port::{InformationModel, Query};
use halyard_cluster_model::{ObjectName, Timestamp, Value};

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::model::AgentModel;
use crate::replication::{Batch, Reader, Rec, Replicated};

/// Records kept as objects.
pub const KEEP: usize = 500;
/// A black box is attached to an incident of its component that started
/// this close to the failure.
const ATTACH_WINDOW_MS: i64 = 10_000;

/// The tracing layer that feeds the cluster log: warnings and errors of
/// this process (a full queue drops records and counts them; logging never
/// blocks).
#[derive(Debug)]
pub struct Capture {
    tx: mpsc::Sender<Rec>,
    pub dropped: Arc<AtomicU64>,
}

pub fn capture() -> (Capture, mpsc::Receiver<Rec>) {
    let (tx, rx) = mpsc::channel(1024);
    (
        Capture {
            tx,
            dropped: Arc::default(),
        },
        rx,
    )
}

#[derive(Default)]
struct Fields {
    message: String,
    component: Option<String>,
    blackbox: Option<String>,
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        match field.name() {
            "message" => self.message = v,
            "component" => self.component = Some(v.trim_matches('"').to_string()),
            "blackbox" => self.blackbox = Some(v),
            n => self.rest.push(format!("{n}={v}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "component" => self.component = Some(value.to_string()),
            "blackbox" => self.blackbox = Some(value.to_string()),
            n => self.rest.push(format!("{n}={value}")),
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let now = Timestamp::now().0;
        let level = if *meta.level() == tracing::Level::ERROR {
            "error"
        } else {
            "warn"
        };
        let source = f
            .component
            .clone()
            .unwrap_or_else(|| meta.target().to_string());
        let mut recs = Vec::new();
        if let Some(bb) = &f.blackbox {
            // The failed component's recent records, one record each.
            let entries: Vec<(i64, String)> = serde_json::from_str(bb).unwrap_or_default();
            for (t, text) in entries {
                recs.push(Rec {
                    t,
                    level: "info".into(),
                    source: source.clone(),
                    message: format!("black box: {text}"),
                    failure: Some(now),
                });
            }
        } else {
            let mut message = f.message;
            if !f.rest.is_empty() {
                message = format!("{message} {}", f.rest.join(" "));
            }
            recs.push(Rec {
                t: now,
                level: level.into(),
                source,
                message,
                failure: None,
            });
        }
        for r in recs {
            if self.tx.try_send(r).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Ships this node's records and shows everyone's.
#[derive(Debug)]
pub struct ClusterLog {
    pub model: Arc<AgentModel>,
    pub node: String,
    pub root: String,
}

impl ClusterLog {
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Rec>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let boot = halyard_backend::cluster::wall_ms();
        let mut seq = 0u64;
        let mut reader = Reader::new("cluster log");
        let mut shown: VecDeque<ObjectName> = VecDeque::new();
        // (component, failure time, first record) of recent black boxes.
        let mut boxes: VecDeque<(String, i64, String, u32)> = VecDeque::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let mut records = Vec::new();
            while records.len() < 200 {
                match rx.try_recv() {
                    Ok(r) => records.push(r),
                    Err(_) => break,
                }
            }
            if !records.is_empty() {
                seq += 1;
                let batch = Batch {
                    node: self.node.clone(),
                    boot,
                    seq,
                    records,
                };
                // Bounded: a node that cannot commit (no majority, still
                // joining) must not stop showing the others' records.
                let shipped = tokio::time::timeout(
                    Duration::from_secs(3),
                    Replicated::Log(batch).replicate(&self.model.core),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                if !shipped {
                    // Not committed (no majority): these records are lost,
                    // the node's own log file still has them.
                    seq -= 1;
                }
            }
            let Ok(new) = reader.next(&self.model.core).await else {
                continue;
            };
            for change in new {
                let Replicated::Log(b) = change else {
                    continue;
                };
                for (i, r) in b.records.iter().enumerate() {
                    let name = format!("{}/log={}.{}.{}.{i}", self.root, b.node, b.boot, b.seq);
                    let level = match r.level.as_str() {
                        "error" => LogLevel::Error,
                        "warn" => LogLevel::Warn,
                        "debug" => LogLevel::Debug,
                        _ => LogLevel::Info,
                    };
                    let values = LogRecordPatch::new()
                        .time(Timestamp(r.t))
                        .level(level)
                        .node_name(b.node.as_str())
                        .source(r.source.as_str())
                        .message(r.message.as_str());
                    if self
                        .model
                        .create_dynamic("LogRecord", &name, values.values())
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    if let Some(failure) = r.failure {
                        match boxes.iter_mut().find(|x| x.0 == r.source && x.1 == failure) {
                            Some(x) => x.3 += 1,
                            None => boxes.push_back((r.source.clone(), failure, name.clone(), 1)),
                        }
                        if boxes.len() > 100 {
                            boxes.pop_front();
                        }
                    }
                    if let Ok(n) = ObjectName::parse(&name) {
                        shown.push_back(n);
                    }
                    while shown.len() > KEEP {
                        if let Some(old) = shown.pop_front() {
                            self.model.forget(&old).await;
                        }
                    }
                }
            }
            self.attach(&mut boxes).await;
        }
    }

    /// Links incidents to the black boxes of their failures.
    async fn attach(&self, boxes: &mut VecDeque<(String, i64, String, u32)>) {
        if boxes.is_empty() {
            return;
        }
        let Ok(incidents) = self
            .model
            .store
            .query(&Query {
                classes: vec!["AvailabilityIncident".into()],
                ..Query::default()
            })
            .await
        else {
            return;
        };
        for o in incidents {
            let get = |a: &str| o.get(a).cloned().unwrap_or(Value::Absent);
            if !matches!(get("BlackBox"), Value::Absent)
                && get("BlackBox").as_str().is_some_and(|s| !s.is_empty())
            {
                continue;
            }
            let Some(component) = get("Component").as_str().map(str::to_string) else {
                continue;
            };
            let Value::Time(started) = get("StartedAt") else {
                continue;
            };
            let found = boxes
                .iter()
                .filter(|b| b.0 == component && (b.1 - started.0).abs() <= ATTACH_WINDOW_MS)
                .min_by_key(|b| (b.1 - started.0).abs());
            if let Some((_, _, first, n)) = found {
                self.model.set(
                    &o.name,
                    AvailabilityIncidentPatch::new()
                        .black_box(first.as_str())
                        .black_box_records(*n)
                        .values(),
                );
            }
        }
    }
}
