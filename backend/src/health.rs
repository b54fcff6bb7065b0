//! The health monitor (registered audits with period and deadline), the
//! watchdog it pets, and the per-component black box.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::cec::{ErrorKind, ErrorReport};

/// One audit's outcome.
pub type AuditFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// How to run one audit round.
pub type AuditCheck = Arc<dyn Fn() -> AuditFuture + Send + Sync>;

/// An audit registered for a component.
#[derive(Clone)]
pub struct Audit {
    pub component: String,
    pub period: Duration,
    /// An audit still running after this is an overrun: a failure.
    pub deadline: Duration,
    pub check: AuditCheck,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("component", &self.component)
            .field("period", &self.period)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Runs one audit until `stop` flips, sending a report for every failed or
/// overrunning round. `incarnation` tells which incarnation is audited.
pub async fn run_audit(
    audit: Audit,
    incarnation: watch::Receiver<u32>,
    reports: mpsc::Sender<ErrorReport>,
    pet: Option<Arc<Watchdog>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(audit.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let inc = *incarnation.borrow();
        let outcome = tokio::time::timeout(audit.deadline, (audit.check)()).await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(detail)) => Some((ErrorKind::AuditFailed, detail)),
            Err(_) => Some((
                ErrorKind::AuditOverrun,
                format!(
                    "audit ran over its {} ms deadline",
                    audit.deadline.as_millis()
                ),
            )),
        };
        if let Some(p) = &pet {
            p.pet();
        }
        if let Some((kind, detail)) = failure {
            tracing::warn!(component = %audit.component, kind = kind.name(), %detail, "health audit failed");
            let report = ErrorReport {
                component: audit.component.clone(),
                incarnation: inc,
                kind,
                detail,
            };
            if reports.send(report).await.is_err() {
                return;
            }
        }
    }
}

/// The watchdog: software by default (a stalled health monitor is logged
/// at ERROR and counted), and `/dev/watchdog` when configured.
#[derive(Debug)]
pub struct Watchdog {
    timeout: Duration,
    last: Mutex<Instant>,
    device: Option<PathBuf>,
    expirations: std::sync::atomic::AtomicU64,
}

impl Watchdog {
    pub fn new(timeout: Duration, device: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Watchdog {
            timeout,
            last: Mutex::new(Instant::now()),
            device,
            expirations: Default::default(),
        })
    }

    pub fn pet(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        if let Some(dev) = &self.device {
            // A write per pet keeps a hardware watchdog from firing.
            let dev = dev.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                if let Ok(mut f) = tokio::fs::OpenOptions::new().write(true).open(&dev).await {
                    let _ = f.write_all(b"1").await;
                }
            });
        }
    }

    pub fn expirations(&self) -> u64 {
        self.expirations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Watches the pets until `stop`; every missed timeout is counted.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.timeout / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() > self.timeout {
                self.expirations
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    stalled_ms = last.elapsed().as_millis() as u64,
                    "watchdog expired: the health monitor has stalled"
                );
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
    }
}

/// A bounded ring of a component's recent high-level records, saved with
/// its failure report.
#[derive(Debug, Clone)]
pub struct BlackBox {
    capacity: usize,
    records: VecDeque<(i64, String)>,
}

impl BlackBox {
    pub fn new(capacity: usize) -> Self {
        BlackBox {
            capacity,
            records: VecDeque::with_capacity(capacity),
        }
    }

    pub fn record(&mut self, text: impl Into<String>) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records
            .push_back((halyard_cluster_model::Timestamp::now().0, text.into()));
    }

    pub fn snapshot(&self) -> Vec<(i64, String)> {
        self.records.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_box_is_bounded() {
        let mut b = BlackBox::new(3);
        for i in 0..5 {
            b.record(format!("r{i}"));
        }
        let s: Vec<String> = b.snapshot().into_iter().map(|(_, t)| t).collect();
        assert_eq!(s, ["r2", "r3", "r4"]);
    }
}
