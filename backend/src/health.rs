//! The health monitor (registered audits with period and deadline, and
//! its own heartbeat loop), the watchdog that loop pets, and the
//! per-component black box.

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The health monitor's own heartbeat: while its loop ticks it pets the
/// watchdog, every quarter of the watchdog's timeout, until `stop`.
///
/// Liveness is the monitor's, not the audits': an element with no audit
/// configured, or whose audits have long periods, is not stalled. What
/// the watchdog catches is this loop (or the runtime under it) no longer
/// ticking.
pub async fn run_monitor(watchdog: Arc<Watchdog>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(watchdog.pet_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => watchdog.pet(),
            _ = stop.changed() => return,
        }
    }
}

/// The watchdog: software by default (a stalled health monitor is logged
/// at ERROR and counted), and a hardware device such as `/dev/watchdog`
/// when configured.
#[derive(Debug)]
pub struct Watchdog {
    timeout: Duration,
    last: Mutex<Instant>,
    /// The device, opened once for the watchdog's life: opening arms it,
    /// each pet writes to this one descriptor, and closing it without the
    /// magic 'V' leaves it armed (the node is reset), so it is closed only
    /// on a clean stop. `None` without a device, and after the close.
    device: Mutex<Option<(PathBuf, std::fs::File)>>,
    expirations: AtomicU64,
}

impl Watchdog {
    /// A software watchdog.
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Watchdog {
            timeout,
            last: Mutex::new(Instant::now()),
            device: Mutex::new(None),
            expirations: AtomicU64::new(0),
        })
    }

    /// A watchdog that also pets `device` (armed from now on).
    pub fn with_device(timeout: Duration, device: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new().write(true).open(device)?;
        tracing::info!(device = %device.display(), "hardware watchdog opened");
        let dog = Self::new(timeout);
        *dog.device.lock().unwrap_or_else(|e| e.into_inner()) = Some((device.to_path_buf(), file));
        Ok(dog)
    }

    /// How often the health monitor pets: often enough that one late
    /// tick does not expire the watchdog.
    pub fn pet_period(&self) -> Duration {
        self.timeout / 4
    }

    pub fn pet(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        // A one-byte write to a watchdog device does not block, so it is
        // made in place rather than handed to another task.
        if let Some((path, file)) = &mut *self.device.lock().unwrap_or_else(|e| e.into_inner())
            && let Err(e) = file.write_all(b"1")
        {
            tracing::error!(device = %path.display(), error = %e, "cannot pet the hardware watchdog");
        }
    }

    /// Expirations since start-up.
    pub fn expirations(&self) -> u64 {
        self.expirations.load(Ordering::Relaxed)
    }

    /// Watches the pets until `stop`; every missed timeout is counted. On
    /// a clean stop the device (if any) is disarmed with the magic close.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.timeout / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() > self.timeout {
                let n = self.expirations.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    stalled_ms = last.elapsed().as_millis() as u64,
                    expirations = n,
                    "watchdog expired: the health monitor has stalled"
                );
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
        self.magic_close();
    }

    /// Writes 'V' and closes the device, so the kernel disarms it.
    fn magic_close(&self) {
        let device = self.device.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((path, mut file)) = device {
            match file.write_all(b"V") {
                Ok(()) => {
                    tracing::info!(device = %path.display(), "hardware watchdog disarmed (magic close)")
                }
                Err(e) => {
                    tracing::error!(device = %path.display(), error = %e, "magic close of the hardware watchdog failed: it stays armed")
                }
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

    #[tokio::test(start_paused = true)]
    async fn the_monitors_heartbeat_keeps_the_watchdog_quiet_without_audits_until_it_stalls() {
        let dog = Watchdog::new(Duration::from_secs(10));
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = tokio::spawn(dog.clone().run(stop_rx.clone()));
        let monitor = tokio::spawn(run_monitor(dog.clone(), stop_rx));
        // Ten idle minutes, no audit anywhere: the heartbeat alone pets it.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(dog.expirations(), 0);

        // The monitor stops ticking: its last pet was at most 2.5 s ago,
        // the watchdog looks every 5 s, so it expires once by 16 s.
        monitor.abort();
        assert!(monitor.await.unwrap_err().is_cancelled());
        tokio::time::sleep(Duration::from_secs(16)).await;
        assert_eq!(dog.expirations(), 1);
        // And keeps counting while the stall lasts.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(dog.expirations() >= 3, "{}", dog.expirations());
        stop_tx.send(true).unwrap();
        watcher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_is_petted_through_one_descriptor_and_disarmed_on_a_clean_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").unwrap();
        let dog = Watchdog::with_device(Duration::from_secs(4), &path).unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = tokio::spawn(dog.clone().run(stop_rx.clone()));
        let monitor = tokio::spawn(run_monitor(dog.clone(), stop_rx));
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop_tx.send(true).unwrap();
        watcher.await.unwrap();
        monitor.await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // One descriptor appends every pet; a reopen per pet would have
        // rewritten the first byte again and again.
        let (pets, last) = text.split_at(text.len() - 1);
        assert!(
            pets.len() >= 10 && pets.bytes().all(|b| b == b'1'),
            "{text:?}"
        );
        assert_eq!(last, "V", "magic close on a clean stop");
        // Closed: a late pet writes nothing.
        dog.pet();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(dog.expirations(), 0);

        assert!(Watchdog::with_device(Duration::from_secs(4), &dir.path().join("none")).is_err());
    }
}
