//! The cluster side of the HA core: what is replicated, and how committed
//! commands reach the core task.
//!
//! Every node runs the same CRIM as a replica. Inputs are not applied where
//! they arise: they are proposed to the consensus log (forwarded to the
//! master), and every node applies the committed log in the same order.
//! So the standby CRIMs are always up to date, a new master takes over
//! from exactly the decisions the old one committed, and events, alarms,
//! incidents and checkpoints are the same on every node. Each node then
//! executes only the effects for the components it hosts.
//!
//! Time: CRIM's escalation windows need the same clock on every replica, so
//! an input carries the proposer's wall-clock time, and replicas convert it
//! with one fixed offset (only differences between inputs matter).
//!
//! The commands' wire forms are in `wire.rs`.

mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::replicated::Retention;

pub use wire::{WireComponent, WireGroup, WireInput, WireMember, WireReconfigure};

/// A replicated command. Applied by every node, in log order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    /// An input to CRIM, with the proposer's time (ms since the epoch).
    Crim { input: WireInput, at_ms: u64 },
    /// A node's components are gone: it died, was cut off from the
    /// majority, or restarted. With `restart`, the node itself restarts
    /// them when it applies this (it is alive and must not keep roles).
    NodeLost {
        node: String,
        restart: bool,
        reason: String,
        /// Set by a node announcing its own start: the boot id of that
        /// process, so it knows where its own life begins in the log.
        #[serde(default)]
        boot: Option<u64>,
    },
    /// A node is a member again (its components register next).
    NodeUp { node: String },
    /// A primary's checkpoint write. `writer` is the component (empty in
    /// logs written before fences existed: admitted).
    Checkpoint {
        si: String,
        #[serde(default)]
        writer: String,
        key: String,
        value: String,
    },
    /// A primary taking a service instance over: only `owner` writes its
    /// checkpoint from here; the answer carries the state at this entry.
    CheckpointFence { si: String, owner: String },
    /// A simulated fault, executed by the node hosting the component.
    Fault { component: String, fault: String },
    /// COpCo's subtree lock, cluster-wide: granted unless a held subject
    /// contains this one or lies within it.
    Lock { subject: String, holder: String },
    /// Releases every lock of a holder.
    Unlock { holder: String },
    /// A configuration change every node applies (published as
    /// [`crate::events::EventKind::Replicated`]).
    Replicated(crate::replicated::Change),
    /// Components and groups added and removed at run time (hot swap),
    /// applied by every replica's CRIM; the hosts start and stop them.
    Reconfigure(Box<WireReconfigure>),
}

/// Whether two persistent names overlap: equal, or one contains the other
/// (`ne=1/shelf=1` contains `ne=1/shelf=1/fan=2`).
pub fn overlaps(a: &str, b: &str) -> bool {
    let within =
        |x: &str, y: &str| x.len() > y.len() && x.starts_with(y) && x.as_bytes()[y.len()] == b'/';
    a == b || within(a, b) || within(b, a)
}

/// The holder of a lock taken by a job of a node; a lost node's locks are
/// released with it.
pub fn lock_holder(job: &str, node: &str) -> String {
    format!("{job} on node {node}")
}

/// Milliseconds since the epoch, now.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Converts proposers' wall-clock times to this process's `Instant`s with
/// one fixed offset, so every replica sees the same differences.
#[derive(Debug, Clone, Copy)]
pub struct ClusterClock {
    base: Instant,
    base_ms: u64,
}

impl Default for ClusterClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            base_ms: wall_ms(),
        }
    }

    pub fn instant(&self, at_ms: u64) -> Instant {
        if at_ms >= self.base_ms {
            self.base + Duration::from_millis(at_ms - self.base_ms)
        } else {
            self.base
                .checked_sub(Duration::from_millis(self.base_ms - at_ms))
                .unwrap_or(self.base)
        }
    }
}

/// How long consensus snapshots keep a command: a checkpoint write until
/// the next write of the same entry; a replicated change as its proposer
/// said (the agent's typed changes carry their rule); anything else always
/// (locks are history: a refused lock replays as refused only if the lock
/// it met is replayed; a hot swap changes the structure).
pub fn retention(command: &serde_json::Value) -> Retention {
    let s = |k: &str| command[k].as_str().unwrap_or_default().to_string();
    match command["cmd"].as_str() {
        Some("checkpoint") => Retention::Latest(format!("checkpoint/{}/{}", s("si"), s("key"))),
        Some("checkpoint-fence") => Retention::Latest(format!("checkpoint-fence/{}", s("si"))),
        Some("replicated") => {
            serde_json::from_value(command["retention"].clone()).unwrap_or_default()
        }
        _ => Retention::Keep,
    }
}

/// A committed command on its way to the core task.
#[derive(Debug)]
pub enum Applied {
    Command {
        index: u64,
        command: serde_json::Value,
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// A snapshot is about to be installed: start from empty state.
    Reset(oneshot::Sender<()>),
    /// The snapshot's commands have been applied; the log follows.
    Restored,
}

/// The consensus engine's state machine: hands committed commands to the
/// core task and returns its answer (the leader's answer goes back to the
/// proposer).
///
/// The engine re-applies the committed log while it starts, before the
/// core (which needs the engine's handle) exists: until the core attaches,
/// commands are queued without waiting for an answer (nobody waits for
/// those answers). The queue is unbounded for that reason; once attached,
/// each apply waits for its answer, so at most one is in flight.
#[derive(Debug, Clone)]
pub struct Applier {
    tx: mpsc::UnboundedSender<Applied>,
    attached: Arc<std::sync::atomic::AtomicBool>,
}

/// An applier and the receiving end the core task reads.
pub fn applier() -> (Applier, mpsc::UnboundedReceiver<Applied>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Applier {
            tx,
            attached: Arc::default(),
        },
        rx,
    )
}

impl Applier {
    /// The core reads the queue now: applies wait for its answers.
    pub fn attach(&self) {
        self.attached
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl halyard_consensus::Machine for Applier {
    async fn apply(&self, index: u64, command: serde_json::Value) -> serde_json::Value {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Applied::Command {
                index,
                command,
                reply,
            })
            .is_err()
        {
            return serde_json::json!({"error": "the HA core has stopped"});
        }
        if !self.attached.load(std::sync::atomic::Ordering::SeqCst) {
            return serde_json::json!({"ok": true, "replayed": true});
        }
        rx.await
            .unwrap_or_else(|_| serde_json::json!({"error": "the HA core has stopped"}))
    }

    /// See [`retention`].
    fn retention(&self, command: &serde_json::Value) -> Retention {
        retention(command)
    }

    /// A replicated change refused at apply (its precondition failed), or
    /// a checkpoint write refused by a fence, changed nothing: no snapshot
    /// keeps it, or it could displace the accepted write of its key.
    fn kept(&self, command: &serde_json::Value, result: &serde_json::Value) -> bool {
        match command["cmd"].as_str() {
            Some("replicated") => result.get("error").is_none(),
            Some("checkpoint") => result.get("superseded").is_none(),
            _ => true,
        }
    }

    async fn restored(&self) {
        let _ = self.tx.send(Applied::Restored);
    }

    async fn reset(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Applied::Reset(tx)).is_ok()
            && self.attached.load(std::sync::atomic::Ordering::SeqCst)
        {
            let _ = rx.await;
        }
    }
}

/// A node as the replicated membership table and the local heartbeat
/// monitor see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub id: u64,
    /// Member (true) or lost (false), as committed.
    pub up: bool,
    /// Milliseconds since this node last heard the node's heartbeat
    /// (None: never; 0 for this node itself).
    pub heard_ms: Option<u64>,
    pub master: bool,
    /// A voting member of the consensus group (false: not admitted yet).
    pub voter: bool,
}

/// The cluster as this node sees it; shared by the core (which applies
/// membership commands), the CMM (which adds heartbeat ages) and the agent
/// (which shows it in every face).
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    inner: Arc<Mutex<ViewInner>>,
}

#[derive(Debug, Default)]
struct ViewInner {
    nodes: BTreeMap<String, NodeStatus>,
    /// When this replica last applied a command or heard the master.
    fresh_at: Option<Instant>,
    me: String,
}

impl ClusterView {
    pub fn new(me: &str, nodes: &[(String, u64)]) -> Self {
        let v = ClusterView::default();
        {
            let mut i = v.lock();
            i.me = me.to_string();
            for (name, id) in nodes {
                i.nodes.insert(
                    name.clone(),
                    NodeStatus {
                        name: name.clone(),
                        id: *id,
                        up: true,
                        heard_ms: None,
                        master: false,
                        voter: true,
                    },
                );
            }
        }
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ViewInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn me(&self) -> String {
        self.lock().me.clone()
    }

    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.lock().nodes.values().cloned().collect()
    }

    pub fn node(&self, name: &str) -> Option<NodeStatus> {
        self.lock().nodes.get(name).cloned()
    }

    pub fn set_up(&self, name: &str, up: bool) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.up = up;
        }
    }

    pub fn reset(&self) {
        for n in self.lock().nodes.values_mut() {
            n.up = true;
        }
    }

    pub fn set_heard(&self, name: &str, ms: Option<u64>) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.heard_ms = ms;
        }
    }

    /// The consensus group's voters, by id.
    pub fn set_voters(&self, voters: &[u64]) {
        for n in self.lock().nodes.values_mut() {
            n.voter = voters.contains(&n.id);
        }
    }

    pub fn set_master(&self, master: Option<&str>) {
        let mut i = self.lock();
        for n in i.nodes.values_mut() {
            n.master = Some(n.name.as_str()) == master;
        }
    }

    pub fn master(&self) -> Option<String> {
        self.lock()
            .nodes
            .values()
            .find(|n| n.master)
            .map(|n| n.name.clone())
    }

    /// This replica applied a committed command.
    pub fn applied(&self) {
        self.lock().fresh_at = Some(Instant::now());
    }

    pub fn heard_master(&self) {
        self.lock().fresh_at = Some(Instant::now());
    }

    /// How stale this replica may be: the time since it last applied a
    /// command or heard the master (0 on the master).
    pub fn staleness(&self) -> Option<Duration> {
        let i = self.lock();
        if i.nodes.get(&i.me).is_some_and(|n| n.master) {
            return Some(Duration::ZERO);
        }
        i.fresh_at.map(|t| t.elapsed())
    }
}

/// What the core needs to run as one node of a cluster.
#[derive(Debug)]
pub struct ClusterSpec {
    pub consensus: halyard_consensus::Consensus,
    pub view: ClusterView,
    /// Component -> the node hosting it. Components not listed (the
    /// shelves' shared hardware) are hosted by the master.
    pub hosts: BTreeMap<String, String>,
    /// Committed commands, from the [`Applier`] given to
    /// the consensus engine (attached once the core reads them).
    pub applied: mpsc::UnboundedReceiver<Applied>,
    pub applier: Applier,
}

#[cfg(test)]
mod tests;
