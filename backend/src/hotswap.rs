//! Hot-swap bus support: FRU insertions and removals from a bus behind one
//! trait, [`SwapBus`]. The hot-swap manager (in the agent) decides what to
//! do with them; a bus only detects and identifies units.
//!
//! Two buses: [`SimBus`], the demo's simulated bus, fed by operations (the
//! hot-swap controllers' Insert and Remove), and [`DirBus`], which watches
//! a directory with one file per occupied slot — usable in tests and as an
//! adapter for an external bus manager that writes such files.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

/// What a bus reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapEvent {
    /// A unit appeared in a slot of a shelf.
    Inserted {
        shelf: String,
        slot: u32,
        fru_type: String,
        serial: String,
        revision: String,
    },
    /// The unit in a slot of a shelf is gone.
    Removed { shelf: String, slot: u32 },
}

impl SwapEvent {
    pub fn shelf(&self) -> &str {
        match self {
            SwapEvent::Inserted { shelf, .. } | SwapEvent::Removed { shelf, .. } => shelf,
        }
    }

    pub fn slot(&self) -> u32 {
        match self {
            SwapEvent::Inserted { slot, .. } | SwapEvent::Removed { slot, .. } => *slot,
        }
    }
}

/// The future of [`SwapBus::next`].
pub type NextEvent<'a> = Pin<Box<dyn Future<Output = Option<SwapEvent>> + Send + 'a>>;

/// A hot-swap bus. `next` is cancel-safe: a dropped call loses nothing.
pub trait SwapBus: Send {
    /// The next insertion or removal; `None` once the bus is closed.
    fn next(&mut self) -> NextEvent<'_>;
}

/// The simulated bus: what its [`SimBusHandle`]s report, in order.
#[derive(Debug)]
pub struct SimBus {
    rx: mpsc::Receiver<SwapEvent>,
}

/// Reports events on a [`SimBus`] (the simulated hardware's side).
#[derive(Debug, Clone)]
pub struct SimBusHandle {
    tx: mpsc::Sender<SwapEvent>,
}

/// A simulated bus and its handle.
pub fn sim_bus(capacity: usize) -> (SimBusHandle, SimBus) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (SimBusHandle { tx }, SimBus { rx })
}

#[derive(Debug, thiserror::Error)]
#[error("the hot-swap bus is closed")]
pub struct BusClosed;

impl SimBusHandle {
    pub async fn report(&self, event: SwapEvent) -> Result<(), BusClosed> {
        self.tx.send(event).await.map_err(|_| BusClosed)
    }
}

impl SwapBus for SimBus {
    fn next(&mut self) -> NextEvent<'_> {
        Box::pin(self.rx.recv())
    }
}

/// A slot file of a [`DirBus`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotFile {
    #[serde(rename = "type")]
    fru_type: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    revision: String,
}

/// A bus that watches a directory: `<dir>/<shelf>/slot-<n>.toml` holds
/// the unit in slot `n` of shelf `<shelf>` (`type = "..."`, `serial`,
/// `revision`). A file appearing is an insertion, disappearing a removal,
/// changing a removal then an insertion. Polled every `period` (a few
/// files; a watcher crate would add a dependency for no gain). Writers
/// should write a file elsewhere and rename it into place; a file that does
/// not parse yet is looked at again at the next poll.
#[derive(Debug)]
pub struct DirBus {
    dir: PathBuf,
    tick: tokio::time::Interval,
    known: BTreeMap<(String, u32), SlotFile>,
    pending: VecDeque<SwapEvent>,
}

impl DirBus {
    /// The first poll reports every unit already there (the bus is
    /// enumerated at start-up).
    pub fn new(dir: &Path, period: Duration) -> Self {
        let mut tick = tokio::time::interval(period.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        DirBus {
            dir: dir.to_path_buf(),
            tick,
            known: BTreeMap::new(),
            pending: VecDeque::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory: every slot file that parses.
    async fn read(&self) -> BTreeMap<(String, u32), Option<SlotFile>> {
        let mut out = BTreeMap::new();
        let Ok(mut shelves) = tokio::fs::read_dir(&self.dir).await else {
            return out;
        };
        while let Ok(Some(shelf)) = shelves.next_entry().await {
            let Some(shelf_name) = shelf.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(mut files) = tokio::fs::read_dir(shelf.path()).await else {
                continue;
            };
            while let Ok(Some(f)) = files.next_entry().await {
                let slot = f
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("slot-"))
                    .and_then(|n| n.strip_suffix(".toml"))
                    .and_then(|n| n.parse::<u32>().ok());
                let Some(slot) = slot else { continue };
                let parsed = match tokio::fs::read_to_string(f.path()).await {
                    Ok(text) => match toml::from_str::<SlotFile>(&text) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::warn!(file = %f.path().display(), error = %e.message(), "slot file not understood (yet)");
                            None
                        }
                    },
                    Err(_) => None,
                };
                out.insert((shelf_name.clone(), slot), parsed);
            }
        }
        out
    }

    /// One poll: the changes since the last one (also kept as pending).
    async fn poll(&mut self) {
        let seen = self.read().await;
        // Applied at once after the reads: a cancelled poll changes nothing.
        let mut now = BTreeMap::new();
        let mut events = Vec::new();
        for (key, file) in seen {
            match (file, self.known.get(&key)) {
                // Unreadable or half-written: keep what was known.
                (None, Some(old)) => {
                    now.insert(key, old.clone());
                }
                (None, None) => {}
                (Some(f), Some(old)) if f == *old => {
                    now.insert(key, f);
                }
                (Some(f), old) => {
                    if old.is_some() {
                        events.push(SwapEvent::Removed {
                            shelf: key.0.clone(),
                            slot: key.1,
                        });
                    }
                    events.push(SwapEvent::Inserted {
                        shelf: key.0.clone(),
                        slot: key.1,
                        fru_type: f.fru_type.clone(),
                        serial: f.serial.clone(),
                        revision: f.revision.clone(),
                    });
                    now.insert(key, f);
                }
            }
        }
        for key in self.known.keys().filter(|k| !now.contains_key(*k)) {
            events.push(SwapEvent::Removed {
                shelf: key.0.clone(),
                slot: key.1,
            });
        }
        self.known = now;
        self.pending.extend(events);
    }
}

impl SwapBus for DirBus {
    fn next(&mut self) -> NextEvent<'_> {
        Box::pin(async move {
            loop {
                if let Some(e) = self.pending.pop_front() {
                    return Some(e);
                }
                self.tick.tick().await;
                self.poll().await;
            }
        })
    }
}

/// Two buses as one: whichever reports first; closed once both are.
#[derive(Debug)]
pub struct Both<A, B> {
    a: Option<A>,
    b: Option<B>,
}

impl<A: SwapBus, B: SwapBus> Both<A, B> {
    pub fn new(a: Option<A>, b: Option<B>) -> Self {
        Both { a, b }
    }
}

impl<A: SwapBus, B: SwapBus> SwapBus for Both<A, B> {
    fn next(&mut self) -> NextEvent<'_> {
        Box::pin(async move {
            loop {
                let (a, b) = (&mut self.a, &mut self.b);
                let (ev, a_side) = match (a.as_mut(), b.as_mut()) {
                    (None, None) => return None,
                    (Some(a), None) => (a.next().await, true),
                    (None, Some(b)) => (b.next().await, false),
                    (Some(a), Some(b)) => tokio::select! {
                        e = a.next() => (e, true),
                        e = b.next() => (e, false),
                    },
                };
                match ev {
                    Some(e) => return Some(e),
                    None if a_side => self.a = None,
                    None => self.b = None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn inserted(slot: u32, ty: &str, serial: &str) -> SwapEvent {
        SwapEvent::Inserted {
            shelf: "1".into(),
            slot,
            fru_type: ty.into(),
            serial: serial.into(),
            revision: "A".into(),
        }
    }

    fn write(dir: &Path, slot: u32, ty: &str, serial: &str) {
        let shelf = dir.join("1");
        std::fs::create_dir_all(&shelf).unwrap();
        let tmp = shelf.join(format!(".slot-{slot}.tmp"));
        std::fs::write(
            &tmp,
            format!("type = \"{ty}\"\nserial = \"{serial}\"\nrevision = \"A\"\n"),
        )
        .unwrap();
        std::fs::rename(tmp, shelf.join(format!("slot-{slot}.toml"))).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_directory_bus_reports_files_appearing_changing_and_disappearing() {
        let dir = tempfile::tempdir().unwrap();
        // Units present at start-up are enumerated by the first poll.
        write(dir.path(), 2, "fan-tray", "F1");
        let mut bus = DirBus::new(dir.path(), Duration::from_millis(500));
        assert_eq!(bus.next().await, Some(inserted(2, "fan-tray", "F1")));

        let t0 = Instant::now();
        write(dir.path(), 3, "linecard-10g", "L1");
        assert_eq!(bus.next().await, Some(inserted(3, "linecard-10g", "L1")));
        // Seen at the next poll, not before.
        assert!(
            t0.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );

        // A different unit in the same slot: removal, then insertion.
        write(dir.path(), 3, "linecard-10g", "L2");
        assert_eq!(
            bus.next().await,
            Some(SwapEvent::Removed {
                shelf: "1".into(),
                slot: 3
            })
        );
        assert_eq!(bus.next().await, Some(inserted(3, "linecard-10g", "L2")));

        // A file that does not parse is no unit yet, and no removal either.
        std::fs::write(dir.path().join("1/slot-4.toml"), "type = ").unwrap();
        std::fs::write(dir.path().join("1/notes.txt"), "not a slot").unwrap();
        std::fs::remove_file(dir.path().join("1/slot-2.toml")).unwrap();
        assert_eq!(
            bus.next().await,
            Some(SwapEvent::Removed {
                shelf: "1".into(),
                slot: 2
            })
        );
        write(dir.path(), 4, "psu", "P1");
        assert_eq!(bus.next().await, Some(inserted(4, "psu", "P1")));
        // Nothing else changed: no event for several periods.
        let quiet = tokio::time::timeout(Duration::from_secs(3), bus.next()).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn two_buses_merge_and_close_together() {
        let (h1, b1) = sim_bus(4);
        let (h2, b2) = sim_bus(4);
        let mut both = Both::new(Some(b1), Some(b2));
        h2.report(inserted(1, "x", "s")).await.unwrap();
        assert_eq!(both.next().await, Some(inserted(1, "x", "s")));
        drop(h2);
        h1.report(SwapEvent::Removed {
            shelf: "1".into(),
            slot: 1,
        })
        .await
        .unwrap();
        assert_eq!(both.next().await.map(|e| e.slot()), Some(1));
        drop(h1);
        assert_eq!(both.next().await, None);
    }
}
