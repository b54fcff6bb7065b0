//! The HA core at run time: one task owns CRIM and the CEC and executes
//! their effects through the component factory (child processes, HA-aware
//! sessions on the Unix socket, simulated hardware).
//!
//! Decisions are single-writer: every input reaches the core task through
//! one bounded channel. Nothing slow runs on that task: checkpoint writes
//! run in the session tasks, process starts in supervisor tasks, journal
//! writes in a writer task.
//!
//! The tree: `spec` (what the core is given), `run` (start-up and the
//! loop), `decide` (CEC verdicts and CRIM inputs), `cluster_apply`
//! (proposals and committed commands), `reconfig` (hot swap), `effects`
//! (what decisions do on this node) and `factory`, one file per component
//! kind: `process`, `session` (HA-aware), `proxy`.

mod cluster_apply;
mod decide;
mod effects;
mod factory;
mod reconfig;
mod run;
pub(crate) mod spec;

pub use crate::cluster::ClusterSpec;
pub use factory::proxy::RELAYED_ALARM;
pub use spec::{
    ComponentSpec, CoreConfig, CoreError, HOTSWAP_TOPIC, Kind, Membership, Reconfigure,
};

use cluster_apply::*;
use effects::*;
use factory::*;
use factory::{process::*, proxy::*, session::*};
use spec::*;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::AvailabilityState;
use tokio::sync::{mpsc, oneshot, watch};

use crate::asr::Asr;
use crate::cec::{Cec, ErrorReport};
use crate::checkpoint::CheckpointService;
use crate::cluster::Command;
use crate::crim::{ComponentView, Crim, CrimError, Input, SgConfig};
use crate::events::EventService;
use crate::health::{BlackBox, Watchdog};
use crate::lane::Lane;
use crate::naming::NamingService;
use crate::protocol::{ErrorCode, ToAgent};
use crate::replicated::{Change, ReplicatedLog, Since};
use crate::repo::Repository;
use crate::tasks::Tasks;

/// A request to the core task.
#[derive(Debug)]
enum Msg {
    Input(Input, Option<oneshot::Sender<Result<(), CrimError>>>),
    Report(ErrorReport),
    Views(oneshot::Sender<Vec<ComponentView>>),
    SessionOpen {
        component: String,
        pid: u32,
        session: SessionHandle,
        reply: oneshot::Sender<Result<u32, (ErrorCode, String)>>,
    },
    FromSession {
        component: String,
        id: u64,
        msg: ToAgent,
    },
    SessionClosed {
        component: String,
        id: u64,
    },
    Spawned {
        component: String,
        incarnation: u32,
        pid: Option<u32>,
    },
    RoleDone {
        component: String,
        incarnation: u32,
        state: AvailabilityState,
    },
    /// A 2N switch-over's old primary must have stepped down by now.
    HandoverDeadline {
        component: String,
        incarnation: u32,
    },
    Fault {
        component: String,
        fault: String,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    Membership(Membership),
    Replicate {
        change: Change,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    ReplicatedSince(u64, oneshot::Sender<Since>),
    /// A task serving a component panicked (its supervisor, or its audit).
    TaskPanicked {
        component: String,
        supervisor: bool,
        panic: String,
    },
    Lock {
        command: Command,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    LockHolder(String, oneshot::Sender<Option<String>>),
    Reconfigure(Box<Reconfigure>, oneshot::Sender<Result<(), CoreError>>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on the running HA core, cheap to clone.
#[derive(Debug, Clone)]
pub struct HaCore {
    tx: mpsc::Sender<Msg>,
    pub events: EventService,
    pub checkpoints: CheckpointService,
    pub naming: NamingService,
    pub repo: Repository,
    pub asr: Asr,
    pub watchdog: Arc<Watchdog>,
    /// The node's majority lease (CLOCK_MONOTONIC ns), set by the
    /// membership monitor each heartbeat and passed on to HA-aware
    /// components; None on a single node (no lease bounds a primary).
    pub lease: Arc<watch::Sender<Option<u64>>>,
    /// Closed by the CMM when it loses the majority, and opened by the core
    /// once the node's own loss restarted its components (or at once when
    /// nothing was primary): a replica that was cut off is stale, and a
    /// role it still holds must not be renewed in the meantime.
    pub lease_gate: Arc<std::sync::atomic::AtomicBool>,
}

/// Owns the core's tasks; `shutdown` stops components (children first)
/// and every task.
#[derive(Debug)]
pub struct Running {
    core: HaCore,
    tasks: Tasks,
    /// Reaps `tasks` (panics are logged, counted and handled).
    reaper: tokio_util::task::AbortOnDropHandle<()>,
    stop: watch::Sender<bool>,
    socket: PathBuf,
}

impl HaCore {
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| CoreError::Stopped)?;
        rx.await.map_err(|_| CoreError::Stopped)
    }

    /// A cluster membership change (from the CMM).
    pub async fn membership(&self, m: Membership) -> Result<(), CoreError> {
        self.tx
            .send(Msg::Membership(m))
            .await
            .map_err(|_| CoreError::Stopped)
    }

    /// A configuration change for every node: published at once on one
    /// node, committed to the log first in a cluster (then published by
    /// every node as it applies it). Returns once committed.
    pub async fn replicate(&self, change: Change) -> Result<(), CoreError> {
        self.call(|reply| Msg::Replicate { change, reply }).await?
    }

    /// The replicated changes this node applied after `cursor` (the index
    /// of the last entry the caller read; 0 at first), as far as their
    /// retention keeps them: a model catching up after start-up or a lag.
    pub async fn replicated_since(&self, cursor: u64) -> Result<Since, CoreError> {
        self.call(|reply| Msg::ReplicatedSince(cursor, reply)).await
    }

    /// Takes COpCo's lock on a subtree for `holder` (see
    /// [`crate::cluster::lock_holder`]); in a cluster, through the log, so
    /// two nodes never run conflicting jobs. Refused with the reason.
    pub async fn lock(&self, subject: &str, holder: &str) -> Result<(), CoreError> {
        self.call(|reply| Msg::Lock {
            command: Command::Lock {
                subject: subject.to_string(),
                holder: holder.to_string(),
            },
            reply,
        })
        .await?
    }

    /// Releases every lock of `holder`.
    pub async fn unlock(&self, holder: &str) -> Result<(), CoreError> {
        self.call(|reply| Msg::Lock {
            command: Command::Unlock {
                holder: holder.to_string(),
            },
            reply,
        })
        .await?
    }

    /// Why `subject` cannot be acted on now (a held lock overlaps it), as
    /// this node's replica knows.
    pub async fn lock_holder(&self, subject: &str) -> Result<Option<String>, CoreError> {
        self.call(|reply| Msg::LockHolder(subject.to_string(), reply))
            .await
    }

    /// Adds and removes components and groups at run time (hot swap); in
    /// a cluster, through the log. Returns once applied (committed).
    pub async fn reconfigure(&self, change: Reconfigure) -> Result<(), CoreError> {
        self.call(|reply| Msg::Reconfigure(Box::new(change), reply))
            .await?
    }

    /// Every component as CRIM sees it.
    pub async fn components(&self) -> Result<Vec<ComponentView>, CoreError> {
        self.call(Msg::Views).await
    }

    /// An operator or COpCo request (lock, unlock, switch-over, restart).
    pub async fn request(&self, input: Input) -> Result<(), CoreError> {
        self.call(|tx| Msg::Input(input, Some(tx)))
            .await?
            .map_err(CoreError::from)
    }

    /// An error report from outside the core (e.g. the agent's audits).
    pub async fn report(&self, report: ErrorReport) -> Result<(), CoreError> {
        self.tx
            .send(Msg::Report(report))
            .await
            .map_err(|_| CoreError::Stopped)
    }

    /// Injects a simulated fault: `crash` (any component), `power-loss`
    /// (hardware: it and its hardware children), `fan-stall`, `repair`.
    pub async fn inject_fault(&self, component: &str, fault: &str) -> Result<(), CoreError> {
        self.call(|reply| Msg::Fault {
            component: component.to_string(),
            fault: fault.to_string(),
            reply,
        })
        .await?
    }
}

impl Running {
    pub fn core(&self) -> &HaCore {
        &self.core
    }

    /// Stops components (children before parents) and every task.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.core.tx.send(Msg::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
        let _ = self.stop.send(true);
        // One poller at a time: the shutdown joins what is left.
        self.reaper.abort();
        self.tasks.shutdown(Duration::from_secs(10)).await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The core task's state.
struct CoreState {
    switchover_lead: Duration,
    crim: Crim,
    cec: Cec,
    specs: BTreeMap<String, ComponentSpec>,
    incarnations: HashMap<String, u32>,
    /// Each supervisor's command lane (never waited on: see [`Lane`]).
    supervisors: HashMap<String, Arc<Lane<SupCmd>>>,
    /// Persisted records, written in order by one owned task.
    records: Arc<Lane<Record>>,
    sessions: HashMap<String, SessionHandle>,
    /// Active simulated faults per hardware component.
    faults: HashMap<String, String>,
    blackboxes: HashMap<String, BlackBox>,
    audit_incarnations: HashMap<String, watch::Sender<u32>>,
    core: HaCore,
    journal: mpsc::Sender<(String, String, serde_json::Value)>,
    /// Journal records dropped on a full queue since the last warning,
    /// and when that was (one line per interval, not one per record).
    journal_dropped: (u64, Option<std::time::Instant>),
    self_tx: mpsc::Sender<Msg>,
    /// The recovery CRIM chose for the failure being handled (for the ASR).
    last_recovery: Option<String>,
    /// Shutting down: exits are expected, not failures.
    stopping: bool,
    groups: Vec<SgConfig>,
    cluster: Option<ClusterRt>,
    /// Replicated changes, in log order, bounded by their retention.
    replicated: ReplicatedLog,
    /// Applying a snapshot's commands again (between the consensus
    /// engine's `Reset` and `Restored`): a replicated change's
    /// precondition named a change the snapshot did not keep, and the
    /// change was accepted when it was first applied.
    restoring: bool,
    /// COpCo's held subtrees: (subject, holder).
    locks: Vec<(String, String)>,
    /// Components configured locked (CRIM starts them locked).
    locked: Vec<String>,
    /// Runs the tasks of components added at run time.
    runner: Runner,
}
