//! The HA core at run time: one task owns CRIM and the CEC and executes
//! their effects through the component factory (child processes, HA-aware
//! sessions on the Unix socket, simulated hardware).
//!
//! Decisions are single-writer: every input reaches the core task through
//! one bounded channel. Nothing slow runs on that task: checkpoint writes
//! run in the session tasks, process starts in supervisor tasks, journal
//! writes in a writer task.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::{
    AdminState, AvailabilityState, CheckpointMode, PerceivedSeverity, ProbableCause,
};
use halyard_cluster_model::{SchemaEnum, Timestamp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::asr::Asr;
use crate::cec::{Cec, CecRules, ErrorKind, ErrorReport, Verdict};
use crate::checkpoint::{CheckpointError, CheckpointPush, CheckpointService};
use crate::cluster::{
    Applied, ClusterClock, ClusterView, Command, WireInput, WireReconfigure, wall_ms,
};
use crate::crim::{ComponentView, Crim, CrimError, Effect, Input, Reconfig, SgConfig};
use crate::events::{EventKind, EventService};
use crate::health::{Audit, AuditCheck, BlackBox, Watchdog, run_audit, run_monitor};
use crate::lane::{Lane, Supersedes};
use crate::naming::NamingService;
use crate::protocol::{ErrorCode, MAX_LINE, ToAgent, ToComponent, VERSION, encode};
use crate::remote::{RemoteShell, Report, parse_report, sh_quote};
use crate::replicated::{Change, ReplicatedLog, Retention, Since};
use crate::repo::Repository;
use crate::tasks::Tasks;

/// How a component is run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Kind {
    /// A child process in the style of OCF resource agents: `start` runs
    /// it, `stop` (when given) asks it to stop before the signals do,
    /// `health` (exit 0 = healthy) audits it, `role` is run with
    /// HALYARD_ROLE set whenever its role changes.
    Process {
        start: Vec<String>,
        stop: Option<Vec<String>>,
        health: Option<Vec<String>>,
        role: Option<Vec<String>>,
        env: Vec<(String, String)>,
    },
    /// A daemon speaking the HA-aware protocol on the agent's socket.
    HaAware {
        command: Vec<String>,
        env: Vec<(String, String)>,
        /// It takes timed assignments (`assign` with `at`): a planned 2N
        /// switch-over between two such components is scheduled, with no
        /// instant without a primary.
        timed: bool,
    },
    /// Simulated hardware, with fault injection.
    Hardware,
    /// A proxy for a non-peer node (FIG. 8): the component runs here, its
    /// commands run on `target` through the core's [`RemoteShell`]
    /// (semantics in [`crate::remote`]). Commands are shell command lines.
    Proxy {
        /// The non-peer node's persistent name.
        target: String,
        /// Idempotent: returns once the service runs (OCF `start`).
        start: String,
        stop: Option<String>,
        /// Exit 0 = healthy; run by the primary's audit.
        health: Option<String>,
        /// Prints the report of [`crate::remote`]; run by the primary.
        stats: Option<String>,
        /// Files written to the target before `start`: (path on the
        /// target, key in the configuration repository holding the
        /// contents as a string). Read at every take-over.
        config: Vec<(String, String)>,
        stats_period: Duration,
        /// Deadline of one remote call.
        timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    pub name: String,
    /// The containing component, for error correlation.
    pub parent: Option<String>,
    pub kind: Kind,
    pub checkpoint: CheckpointMode,
    /// Audit period and deadline.
    pub audit: Option<(Duration, Duration)>,
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub node: String,
    /// The Unix socket HA-aware components connect to.
    pub socket: PathBuf,
    pub groups: Vec<SgConfig>,
    pub components: Vec<ComponentSpec>,
    /// Components configured administratively locked: not started until
    /// an operator unlocks them.
    pub locked: Vec<String>,
    pub cec: CecRules,
    /// Longest a synchronous checkpoint write waits for standbys.
    pub checkpoint_deadline: Duration,
    pub watchdog_timeout: Duration,
    pub watchdog_device: Option<PathBuf>,
    /// Grace between SIGTERM and SIGKILL when stopping a process.
    pub stop_grace: Duration,
    /// How far ahead a planned 2N switch-over between components that take
    /// timed assignments is scheduled (zero: not scheduled). It must cover
    /// two commits and the old primary's acknowledgement; a late decision
    /// only makes that hand-over immediate.
    pub switchover_lead: Duration,
    /// How proxy components reach their non-peer nodes (required when
    /// there are proxies).
    pub remote: Option<Arc<dyn RemoteShell>>,
}

/// A run-time change of the element (the hot-swap manager's: FRUs
/// inserted and removed). In a cluster it is committed to the log and
/// every node applies it; the node hosting a component starts or stops it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconfigure {
    /// Groups and members that appear and disappear.
    pub crim: Reconfig,
    /// How to run each component the change adds.
    pub components: Vec<ComponentSpec>,
    /// Existing components whose unit is gone (a configured FRU removed):
    /// CRIM loses them and they are stopped, until `restart`.
    pub lost: Vec<String>,
    /// Existing components whose unit is back: started again.
    pub restart: Vec<String>,
    /// For the agent: applied by every node's model as the replicated
    /// topic [`HOTSWAP_TOPIC`], before the components' states change.
    pub note: serde_json::Value,
}

/// The replicated topic under which a [`Reconfigure`]'s note is published.
pub const HOTSWAP_TOPIC: &str = "hotswap";

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error("cannot open the watchdog device {path}: {source}")]
    Watchdog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the HA core has stopped")]
    Stopped,
    #[error(transparent)]
    Crim(#[from] CrimError),
    #[error("unknown component {0}")]
    UnknownComponent(String),
    #[error(
        "component {component}: no fault named {fault} (known: crash, power-loss, fan-stall, repair)"
    )]
    UnknownFault { component: String, fault: String },
    /// Refused or not committed by the cluster.
    #[error("{0}")]
    Refused(String),
}

/// What the core needs to run as one node of a cluster.
#[derive(Debug)]
pub struct ClusterSpec {
    pub consensus: halyard_consensus::Consensus,
    pub view: ClusterView,
    /// Component -> the node hosting it. Components not listed (the
    /// shelves' shared hardware) are hosted by the master.
    pub hosts: BTreeMap<String, String>,
    /// Committed commands, from the [`crate::cluster::Applier`] given to
    /// the consensus engine (attached once the core reads them).
    pub applied: mpsc::UnboundedReceiver<Applied>,
    pub applier: crate::cluster::Applier,
}

/// Messages from the cluster membership monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// This node lost contact with the majority: it must give up its
    /// primaries before the majority promotes their standbys.
    Fence,
    /// Contact with the majority is back after a fence.
    Rejoin,
    /// This node is the master: start the shared hardware it hosts.
    MasterTick,
}

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

/// A command on its way to the consensus log.
#[derive(Debug)]
struct Proposal {
    /// Proposals of an older generation are dropped: the node restarted
    /// its components since (after losing quorum), so they are stale.
    generation: u64,
    command: Command,
    /// Operator requests get the cluster's answer; internal inputs are
    /// retried until committed.
    reply: Option<oneshot::Sender<Result<serde_json::Value, String>>>,
}

/// The cluster side of the core task.
#[derive(Debug)]
struct ClusterRt {
    consensus: halyard_consensus::Consensus,
    view: ClusterView,
    hosts: BTreeMap<String, String>,
    me: String,
    clock: ClusterClock,
    /// This process's start-up announcement (`NodeLost` with this boot id).
    /// Log entries before it were decided before this process started:
    /// they rebuild the replica's state and nothing is executed for them.
    boot: u64,
    announced: bool,
    proposals: mpsc::Sender<Proposal>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Primaries given up after losing the majority.
    fenced: bool,
    /// Master-hosted components being started (not again until they register).
    starting: HashMap<String, Instant>,
    /// The core's tasks (a proposal's answer waits in one).
    tasks: Tasks,
}

impl ClusterRt {
    fn replaying(&self) -> bool {
        !self.announced
    }

    fn propose(&self, command: Command) {
        self.propose_with(command, None);
    }

    fn propose_with(
        &self,
        command: Command,
        reply: Option<oneshot::Sender<Result<serde_json::Value, String>>>,
    ) {
        let p = Proposal {
            generation: self.generation.load(std::sync::atomic::Ordering::SeqCst),
            command,
            reply,
        };
        // A full queue means the cluster has been unreachable for long: the
        // node restarts its components when it rejoins, so dropping is safe.
        if let Err(e) = self.proposals.try_send(p) {
            tracing::warn!(error = %e, "proposal queue full: input dropped");
        }
    }

    /// Proposes `command` and answers `reply` once the cluster has
    /// committed it (an error text from the cluster's apply, or no commit,
    /// becomes `refused`).
    fn propose_answered<E: Send + 'static>(
        &self,
        command: Command,
        reply: oneshot::Sender<Result<(), E>>,
        refused: fn(String) -> E,
    ) {
        let (tx, rx) = oneshot::channel();
        self.propose_with(command, Some(tx));
        self.tasks.spawn("proposal answer", async move {
            let r = rx
                .await
                .unwrap_or_else(|_| Err("the HA core has stopped".into()));
            let _ = reply.send(answer(r).map_err(refused));
        });
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Proposes commands in order; internal inputs are retried until the
/// cluster commits them or a newer generation supersedes them.
async fn propose_loop(
    consensus: halyard_consensus::Consensus,
    mut rx: mpsc::Receiver<Proposal>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    loop {
        let p = tokio::select! {
            p = rx.recv() => match p { Some(p) => p, None => return },
            _ = stop.changed() => return,
        };
        if p.generation < generation.load(Ordering::SeqCst) {
            if let Some(r) = p.reply {
                let _ = r.send(Err("superseded: this node rejoined the cluster".into()));
            }
            continue;
        }
        let Ok(cmd) = serde_json::to_value(&p.command) else {
            continue;
        };
        if let Some(reply) = p.reply {
            let r = consensus
                .propose(cmd, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string());
            let _ = reply.send(r);
            continue;
        }
        let mut warned = false;
        loop {
            match consensus.propose(cmd.clone(), Duration::from_secs(2)).await {
                Ok(_) => break,
                Err(e) => {
                    if p.generation < generation.load(Ordering::SeqCst) || *stop.borrow() {
                        break;
                    }
                    if !warned {
                        tracing::warn!(error = %e, command = ?p.command, "not committed yet; retrying");
                        warned = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {},
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }
}

fn apply_error(e: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({"error": e.to_string()})
}

fn apply_ok() -> serde_json::Value {
    serde_json::json!({"ok": true})
}

/// The cluster's answer as a result.
fn answer(v: Result<serde_json::Value, String>) -> Result<(), String> {
    let v = v?;
    match v.get("error").and_then(serde_json::Value::as_str) {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

/// The role a session's component holds, for its checkpoint requests.
#[derive(Debug, Clone, Default, PartialEq)]
struct Role {
    state: Option<AvailabilityState>,
    active: Vec<String>,
    standby: Vec<String>,
    /// A timed assignment not yet due: until this instant (unix ns) the
    /// component keeps the state and active SIs it had.
    until: Option<(u64, Option<AvailabilityState>, Vec<String>)>,
}

impl Role {
    /// The state and active SIs in force at `now` (unix ns).
    fn at_time(&self, now: u64) -> (Option<AvailabilityState>, &[String]) {
        match &self.until {
            Some((at, state, active)) if now < *at => (*state, active),
            _ => (self.state, &self.active),
        }
    }
}

use crate::protocol::unix_ns;

#[derive(Debug, Clone)]
struct SessionHandle {
    id: u64,
    /// The incarnation the session registered as (set by the core).
    incarnation: u32,
    /// What the core tells the component (registration, assignments,
    /// errors): never dropped, never waited on.
    control: Arc<Lane<ToComponent>>,
    push: mpsc::Sender<CheckpointPush>,
    role: Arc<watch::Sender<Role>>,
}

/// The core's messages to an HA-aware component (registration,
/// assignments, errors) ride a [`Lane`]: a new assignment makes a pending
/// one moot (the component needs the latest role and acknowledges what it
/// gets). The session's writer serves the lane before checkpoint traffic,
/// and a write that cannot complete within the session's deadline ends the
/// session, so the component is handled as failed rather than left in an
/// old role.
impl Supersedes for ToComponent {
    fn supersedes(&self, earlier: &Self) -> bool {
        matches!(
            (self, earlier),
            (ToComponent::Assign { .. }, ToComponent::Assign { .. })
        )
    }
}

/// A supervisor's commands: a start or a stop makes pending starts and
/// stops moot (a start replaces the running incarnation, a stop ends it);
/// a proxy's role or release makes its pending role moot.
impl Supersedes for SupCmd {
    fn supersedes(&self, earlier: &Self) -> bool {
        use SupCmd::*;
        matches!(
            (self, earlier),
            (Start(_) | Stop, Start(_) | Stop) | (Assign(..) | Release, Assign(..) | Release)
        )
    }
}

/// A persisted record the core writes off its task. One writer task (owned
/// by the core's task set) writes them in the order the core decided them,
/// so an incident's close never lands before its open (a detached task per
/// write could, leaving the incident open forever) and a component's
/// incarnations are stored in order.
enum Record {
    IncidentOpen {
        component: String,
        si: String,
        at: i64,
        lost: bool,
        recovery: String,
    },
    IncidentClose {
        component: String,
        at: i64,
    },
    /// The incarnation is stored, then the component is started (`then`),
    /// so an agent restart never reuses an incarnation.
    Incarnation {
        key: String,
        incarnation: u32,
        then: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    },
}

/// Records are never superseded: each is written.
impl Supersedes for Record {
    fn supersedes(&self, _earlier: &Self) -> bool {
        false
    }
}

impl Record {
    async fn write(self, asr: &Asr, repo: &Repository) {
        match self {
            Record::IncidentOpen {
                component,
                si,
                at,
                lost,
                recovery,
            } => {
                if let Err(e) = asr.open(&component, &si, at, lost, &recovery).await {
                    tracing::error!(error = %e, %component, "cannot record incident");
                }
            }
            Record::IncidentClose { component, at } => {
                if let Err(e) = asr.close(&component, at).await {
                    tracing::error!(error = %e, %component, "cannot close incident");
                }
            }
            Record::Incarnation {
                key,
                incarnation,
                then,
            } => {
                if let Err(e) = repo.set(&key, incarnation).await {
                    tracing::error!(error = %e, %key, "cannot persist incarnation");
                }
                then.await;
            }
        }
    }
}

/// How long the old primary of a 2N switch-over has to step down before
/// it is failed (its standby waits for it, with the service unassigned).
const HANDOVER_DEADLINE: Duration = Duration::from_secs(3);

/// Commands to a process supervisor.
#[derive(Debug)]
enum SupCmd {
    Start(u32),
    Stop,
    /// A proxy's role for an incarnation.
    Assign(u32, AvailabilityState),
    /// A proxy gives up its role without stopping anything (fencing,
    /// the agent's shutdown).
    Release,
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

    /// Starts the core: listens on the socket and starts every component.
    pub async fn start(
        config: CoreConfig,
        repo: Repository,
    ) -> Result<(HaCore, Running), CoreError> {
        Self::start_node(config, repo, None).await
    }

    /// Starts the core as one node of a cluster: CRIM is a replica fed by
    /// the consensus log, and only this node's components are run here.
    pub async fn start_clustered(
        config: CoreConfig,
        repo: Repository,
        cluster: ClusterSpec,
    ) -> Result<(HaCore, Running), CoreError> {
        Self::start_node(config, repo, Some(cluster)).await
    }

    async fn start_node(
        config: CoreConfig,
        repo: Repository,
        cluster: Option<ClusterSpec>,
    ) -> Result<(HaCore, Running), CoreError> {
        validate(&config)?;
        let _ = std::fs::remove_file(&config.socket);
        if let Some(dir) = config.socket.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let listener = UnixListener::bind(&config.socket).map_err(|source| CoreError::Socket {
            path: config.socket.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = watch::channel(false);
        let events = EventService::new(4096);
        let checkpoints = match &cluster {
            Some(c) => CheckpointService::replicated(c.consensus.clone()),
            None => CheckpointService::new(),
        };
        let watchdog = match &config.watchdog_device {
            None => Watchdog::new(config.watchdog_timeout),
            Some(path) => {
                Watchdog::with_device(config.watchdog_timeout, path).map_err(|source| {
                    CoreError::Watchdog {
                        path: path.clone(),
                        source,
                    }
                })?
            }
        };
        let core = HaCore {
            tx: tx.clone(),
            events: events.clone(),
            checkpoints: checkpoints.clone(),
            naming: NamingService::new(),
            repo: repo.clone(),
            asr: Asr::new(repo.pool().clone()),
            watchdog: watchdog.clone(),
        };
        let tasks = Tasks::new();

        // Journal writer: decisions are recorded without slowing decisions.
        let (journal_tx, mut journal_rx) =
            mpsc::channel::<(String, String, serde_json::Value)>(4096);
        let jrepo = repo.clone();
        tasks.spawn("journal writer", async move {
            while let Some((kind, subject, body)) = journal_rx.recv().await {
                if let Err(e) = jrepo.journal(&kind, &subject, &body).await {
                    tracing::warn!(error = %e, "journal write failed");
                }
            }
        });

        // The records writer: incidents and incarnations, in decision order.
        let records = Arc::new(Lane::<Record>::default());
        {
            let lane = records.clone();
            let (asr, repo) = (core.asr.clone(), repo.clone());
            let mut stop = stop_rx.clone();
            tasks.spawn("records writer", async move {
                loop {
                    let r = tokio::select! {
                        r = lane.next() => r,
                        // At shutdown what was decided is still written.
                        _ = stop.changed() => { lane.close(); lane.next().await }
                    };
                    let Some(r) = r else { break };
                    r.write(&asr, &repo).await;
                }
            });
        }

        // Incarnations continue across agent restarts.
        let mut incarnations = HashMap::new();
        for c in &config.components {
            let key = format!("/components/{}/incarnation", c.name);
            let inc: u32 = repo.get_as(&key).await?.unwrap_or(0);
            incarnations.insert(c.name.clone(), inc);
        }

        tasks.spawn("watchdog", watchdog.clone().run(stop_rx.clone()));
        tasks.spawn(
            "health monitor",
            run_monitor(watchdog.clone(), stop_rx.clone()),
        );
        let modes: Modes = Arc::new(std::sync::RwLock::new(
            config
                .components
                .iter()
                .map(|s| (s.name.clone(), s.checkpoint))
                .collect(),
        ));
        tasks.spawn(
            "session acceptor",
            accept_sessions(
                listener,
                tx.clone(),
                checkpoints.clone(),
                config.checkpoint_deadline,
                modes.clone(),
                stop_rx.clone(),
            ),
        );

        // In a cluster only this node's components are audited here.
        let local: std::collections::HashSet<String> = config
            .components
            .iter()
            .filter(|c| {
                cluster
                    .as_ref()
                    .is_none_or(|k| k.hosts.get(&c.name) == Some(&config.node))
            })
            .map(|c| c.name.clone())
            .collect();
        let (cluster_rt, applied_rx) = match cluster {
            Some(c) => {
                let (ptx, prx) = mpsc::channel(1024);
                let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
                tasks.spawn(
                    "proposer",
                    propose_loop(
                        c.consensus.clone(),
                        prx,
                        generation.clone(),
                        stop_rx.clone(),
                    ),
                );
                let rt = ClusterRt {
                    consensus: c.consensus,
                    view: c.view,
                    hosts: c.hosts,
                    me: config.node.clone(),
                    clock: ClusterClock::new(),
                    boot: crate::cluster::wall_ms() ^ u64::from(std::process::id()) << 32,
                    announced: false,
                    proposals: ptx,
                    generation,
                    fenced: false,
                    starting: HashMap::new(),
                    tasks: tasks.clone(),
                };
                // This node's earlier incarnations are gone: say so first.
                rt.propose(Command::NodeLost {
                    node: config.node.clone(),
                    restart: false,
                    reason: "node started".into(),
                    boot: Some(rt.boot),
                });
                rt.propose(Command::NodeUp {
                    node: config.node.clone(),
                });
                (Some(rt), Some((c.applied, c.applier)))
            }
            None => (None, None),
        };
        let parents = config
            .components
            .iter()
            .filter_map(|c| c.parent.clone().map(|p| (c.name.clone(), p)))
            .collect();
        let mut state = CoreState {
            records,
            switchover_lead: config.switchover_lead,
            crim: fresh_crim(&config.groups, &config.locked),
            cec: Cec::new(config.cec.clone(), parents),
            specs: config
                .components
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect(),
            incarnations,
            supervisors: HashMap::new(),
            sessions: HashMap::new(),
            faults: HashMap::new(),
            blackboxes: HashMap::new(),
            audit_incarnations: HashMap::new(),
            core: core.clone(),
            journal: journal_tx,
            self_tx: tx.clone(),
            last_recovery: None,
            stopping: false,
            groups: config.groups.clone(),
            cluster: cluster_rt,
            replicated: ReplicatedLog::default(),
            locks: Vec::new(),
            locked: config.locked.clone(),
            runner: Runner {
                node: config.node.clone(),
                socket: config.socket.clone(),
                stop_grace: config.stop_grace,
                modes,
                tasks: tasks.clone(),
                stop: stop_rx.clone(),
                primaries: HashMap::new(),
                stops: HashMap::new(),
                remote: config.remote.clone(),
                events: events.clone(),
                repo: repo.clone(),
                elsewhere: config
                    .components
                    .iter()
                    .filter(|c| !local.contains(&c.name))
                    .map(|c| c.name.clone())
                    .collect(),
            },
        };
        // Supervisors and audits, then start every component.
        for c in &config.components {
            state.blackboxes.insert(c.name.clone(), BlackBox::new(64));
            let (inc_tx, inc_rx) = watch::channel(state.incarnations[&c.name]);
            state.audit_incarnations.insert(c.name.clone(), inc_tx);
            if let Some(sup) = state.runner.spawn_tasks(c, inc_rx, &tx, stop_rx.clone()) {
                state.supervisors.insert(c.name.clone(), sup);
            }
        }
        for c in &config.components {
            // In a cluster each node starts its own; the master starts the
            // shared hardware when it is master (Membership::MasterTick).
            let here = match &state.cluster {
                None => true,
                Some(rt) => rt.hosts.get(&c.name) == Some(&rt.me),
            };
            // A component configured locked waits for its unlock.
            if here && !config.locked.contains(&c.name) {
                state.start_component(&c.name).await;
            }
        }
        let span = tracing::info_span!("crim", node = %config.node);
        let (applied_rx, applier) = match applied_rx {
            Some((rx, a)) => (Some(rx), Some(a)),
            None => (None, None),
        };
        tasks.spawn("decisions", state.run(rx, applied_rx).instrument(span));
        if let Some(a) = applier {
            a.attach();
        }
        let socket = config.socket.clone();
        let reaper = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
            let tasks = tasks.clone();
            async move { tasks.reap().await }
        }));
        Ok((
            core.clone(),
            Running {
                core,
                tasks,
                reaper,
                stop: stop_tx,
                socket,
            },
        ))
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

fn validate(config: &CoreConfig) -> Result<(), CoreError> {
    let names: std::collections::HashSet<&str> =
        config.components.iter().map(|c| c.name.as_str()).collect();
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for g in &config.groups {
        if g.sis.is_empty() {
            return Err(CoreError::Config(format!(
                "service group {} has no service instance",
                g.name
            )));
        }
        for m in &g.members {
            if !names.contains(m.as_str()) {
                return Err(CoreError::Config(format!(
                    "service group {} names unknown component {m}",
                    g.name
                )));
            }
            if let Some(other) = member_of.insert(m, &g.name) {
                return Err(CoreError::Config(format!(
                    "component {m} is in two service groups, {other} and {}",
                    g.name
                )));
            }
        }
    }
    for c in &config.components {
        if matches!(c.kind, Kind::Proxy { .. }) && config.remote.is_none() {
            return Err(CoreError::Config(format!(
                "component {} is a proxy, and the core has no remote shell",
                c.name
            )));
        }
        if !member_of.contains_key(c.name.as_str()) {
            return Err(CoreError::Config(format!(
                "component {} is in no service group",
                c.name
            )));
        }
        if let Some(p) = &c.parent
            && !names.contains(p.as_str())
        {
            return Err(CoreError::Config(format!(
                "component {} has unknown parent {p}",
                c.name
            )));
        }
    }
    Ok(())
}

async fn run_health_command(cmd: &[String]) -> Result<(), String> {
    let (prog, args) = cmd.split_first().ok_or("empty health command")?;
    let status = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("health command exited with {status}"))
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
    self_tx: mpsc::Sender<Msg>,
    /// The recovery CRIM chose for the failure being handled (for the ASR).
    last_recovery: Option<String>,
    /// Shutting down: exits are expected, not failures.
    stopping: bool,
    groups: Vec<SgConfig>,
    cluster: Option<ClusterRt>,
    /// Replicated changes, in log order, bounded by their retention.
    replicated: ReplicatedLog,
    /// COpCo's held subtrees: (subject, holder).
    locks: Vec<(String, String)>,
    /// Components configured locked (CRIM starts them locked).
    locked: Vec<String>,
    /// Runs the tasks of components added at run time.
    runner: Runner,
}

/// Checkpoint modes by component, read by the sessions of HA-aware
/// components (components come and go with hot swap).
type Modes = Arc<std::sync::RwLock<HashMap<String, CheckpointMode>>>;

/// What the core needs to run a component's tasks (supervisor, audit),
/// and the tasks of components added at run time, each with its own stop.
#[derive(Debug)]
struct Runner {
    node: String,
    socket: PathBuf,
    stop_grace: Duration,
    modes: Modes,
    /// Owns every task the core spawns (shared with `Running`).
    tasks: Tasks,
    /// The core's stop, for the tasks of configured components.
    stop: watch::Receiver<bool>,
    /// The incarnation holding each proxy's primary role, shared by its
    /// supervisor and its audit (kept so a respawned supervisor shares it).
    primaries: HashMap<String, Arc<std::sync::atomic::AtomicU32>>,
    /// Stops of components added at run time.
    stops: HashMap<String, watch::Sender<bool>>,
    /// Proxies reach their non-peer nodes through it.
    remote: Option<Arc<dyn RemoteShell>>,
    events: EventService,
    repo: Repository,
    /// Configured components another node hosts: not audited here.
    elsewhere: std::collections::HashSet<String>,
}

impl Runner {
    /// Spawns a component's supervisor (processes, HA-aware daemons and
    /// proxies) and health audit; returns the supervisor's handle.
    fn spawn_tasks(
        &mut self,
        c: &ComponentSpec,
        inc_rx: watch::Receiver<u32>,
        tx: &mpsc::Sender<Msg>,
        stop_rx: watch::Receiver<bool>,
    ) -> Option<Arc<Lane<SupCmd>>> {
        let supervisor = self.spawn_supervisor(c, tx, stop_rx.clone());
        self.spawn_audit(c, inc_rx, tx, stop_rx);
        supervisor
    }

    /// The stop a component's tasks follow.
    fn stop_of(&self, component: &str) -> watch::Receiver<bool> {
        self.stops
            .get(component)
            .map_or_else(|| self.stop.clone(), watch::Sender::subscribe)
    }

    /// A panic of one of the component's tasks goes to the core as a
    /// failure of the component.
    fn on_panic(
        tx: &mpsc::Sender<Msg>,
        component: &str,
        supervisor: bool,
    ) -> impl FnOnce(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    + Send
    + 'static {
        let (tx, component) = (tx.clone(), component.to_string());
        move |panic| {
            Box::pin(async move {
                let _ = tx
                    .send(Msg::TaskPanicked {
                        component,
                        supervisor,
                        panic,
                    })
                    .await;
            })
        }
    }

    fn spawn_supervisor(
        &mut self,
        c: &ComponentSpec,
        tx: &mpsc::Sender<Msg>,
        stop_rx: watch::Receiver<bool>,
    ) -> Option<Arc<Lane<SupCmd>>> {
        let span = tracing::info_span!("component", node = %self.node, component = %c.name);
        let what = format!("supervisor of {}", c.name);
        let on_panic = Self::on_panic(tx, &c.name, true);
        match &c.kind {
            Kind::Process { .. } | Kind::HaAware { .. } => {
                let lane = Arc::new(Lane::default());
                let task = supervise(
                    c.clone(),
                    self.socket.clone(),
                    lane.clone(),
                    tx.clone(),
                    self.stop_grace,
                    stop_rx,
                );
                self.tasks.spawn_or(what, task.instrument(span), on_panic);
                Some(lane)
            }
            Kind::Proxy { .. } => {
                let remote = self.remote.clone()?;
                let primary = self.primaries.entry(c.name.clone()).or_default().clone();
                let lane = Arc::new(Lane::default());
                let ctx = ProxyCtx {
                    remote,
                    primary,
                    events: self.events.clone(),
                    repo: self.repo.clone(),
                };
                let task = supervise_proxy(c.clone(), ctx, lane.clone(), tx.clone(), stop_rx);
                self.tasks.spawn_or(what, task.instrument(span), on_panic);
                Some(lane)
            }
            Kind::Hardware => None,
        }
    }

    /// Runs a component's health audit (none for a component another node
    /// hosts); its reports go to the core like anyone's.
    fn spawn_audit(
        &mut self,
        c: &ComponentSpec,
        inc_rx: watch::Receiver<u32>,
        tx: &mpsc::Sender<Msg>,
        stop_rx: watch::Receiver<bool>,
    ) {
        let Some((period, deadline)) = c.audit else {
            return;
        };
        if self.elsewhere.contains(&c.name) {
            return;
        }
        let check: AuditCheck = match &c.kind {
            Kind::Proxy { .. } => {
                let Some(remote) = self.remote.clone() else {
                    return;
                };
                let primary = self.primaries.entry(c.name.clone()).or_default().clone();
                proxy_audit(c, remote, primary, inc_rx.clone())
            }
            Kind::Process {
                health: Some(cmd), ..
            } => {
                let cmd = cmd.clone();
                Arc::new(move || {
                    let cmd = cmd.clone();
                    Box::pin(async move { run_health_command(&cmd).await })
                })
            }
            _ => return,
        };
        let audit = Audit {
            component: c.name.clone(),
            period,
            deadline,
            check,
        };
        let (rep_tx, mut rep_rx) = mpsc::channel(16);
        let fwd = tx.clone();
        let what = format!("audit of {}", c.name);
        let on_panic = Self::on_panic(tx, &c.name, false);
        self.tasks.spawn_or(
            what,
            async move {
                let forward = async {
                    while let Some(r) = rep_rx.recv().await {
                        if fwd.send(Msg::Report(r)).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(run_audit(audit, inc_rx, rep_tx, stop_rx), forward);
            },
            on_panic,
        );
    }
}

impl CoreState {
    /// Times a planned switch-over (the proposer decides the instant, so
    /// every node applies the same one) when its 2N pair takes timed
    /// assignments.
    fn schedule(&self, msg: Msg) -> Msg {
        let Msg::Input(
            Input::SwitchOver {
                component,
                at: None,
            },
            reply,
        ) = msg
        else {
            return msg;
        };
        let timed = !self.switchover_lead.is_zero()
            && self
                .crim
                .component(&component)
                .and_then(|v| self.crim.group(&v.sg))
                .is_some_and(|g| {
                    g.model == halyard_cluster_model::model::RedundancyModel::TwoN
                        && g.members.iter().all(|m| {
                            self.specs.get(m).is_some_and(|s| {
                                matches!(s.kind, Kind::HaAware { timed: true, .. })
                            })
                        })
                });
        let at = timed.then(|| unix_ns() + self.switchover_lead.as_nanos() as u64);
        Msg::Input(Input::SwitchOver { component, at }, reply)
    }
}

/// CRIM over the configured groups, configured-locked components locked.
fn fresh_crim(groups: &[SgConfig], locked: &[String]) -> Crim {
    let mut crim = Crim::new(groups.to_vec());
    for c in locked {
        crim.set_initial_admin(c, AdminState::Locked);
    }
    crim
}

impl CoreState {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        mut applied: Option<mpsc::UnboundedReceiver<Applied>>,
    ) {
        loop {
            let deadline = self.cec.next_deadline();
            let msg = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => return },
                a = async { applied.as_mut().expect("guarded").recv().await }, if applied.is_some() => {
                    match a {
                        Some(Applied::Command { index, command, reply }) => {
                            let out = self.apply(index, command).await;
                            let _ = reply.send(out);
                        }
                        Some(Applied::Reset(done)) => {
                            self.crim = fresh_crim(&self.groups, &self.locked);
                            self.core.checkpoints.clear();
                            self.replicated.reset();
                            self.locks.clear();
                            if let Some(rt) = &self.cluster {
                                rt.view.reset();
                            }
                            let _ = done.send(());
                        }
                        None => applied = None,
                    }
                    continue;
                }
                _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                    let now = Instant::now();
                    for d in self.cec.tick(now) {
                        self.verdict(d).await;
                    }
                    continue;
                }
            };
            let msg = self.schedule(msg);
            match msg {
                Msg::Input(input, Some(reply)) if self.cluster.is_some() => {
                    // Decided by the cluster's CRIM; answered once committed.
                    if let Some(rt) = &self.cluster {
                        let command = Command::Crim {
                            input: WireInput::from(&input),
                            at_ms: wall_ms(),
                        };
                        rt.propose_answered(command, reply, CrimError::Refused);
                    }
                }
                Msg::Input(input, reply) => {
                    let r = self.input(input).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(r);
                    }
                }
                Msg::Membership(m) => self.membership(m).await,
                Msg::Lock { command, reply } => match &self.cluster {
                    None => {
                        let r = answer(Ok(self.apply_lock(command)));
                        let _ = reply.send(r.map_err(CoreError::Refused));
                    }
                    Some(rt) => rt.propose_answered(command, reply, CoreError::Refused),
                },
                Msg::LockHolder(subject, reply) => {
                    let _ = reply.send(self.lock_conflict(&subject));
                }
                Msg::Reconfigure(change, reply) => match &self.cluster {
                    None => {
                        let r = self.reconfigure(*change, None).await;
                        let _ = reply.send(r);
                    }
                    Some(rt) => rt.propose_answered(
                        Command::Reconfigure(Box::new(WireReconfigure::from(&*change))),
                        reply,
                        CoreError::Refused,
                    ),
                },
                Msg::ReplicatedSince(cursor, reply) => {
                    let _ = reply.send(self.replicated.since(cursor));
                }
                Msg::Replicate { change, reply } => match &self.cluster {
                    None => {
                        let index = self.replicated.next_local();
                        self.keep_replicated(index, change);
                        let _ = reply.send(Ok(()));
                    }
                    Some(rt) => {
                        rt.propose_answered(Command::Replicated(change), reply, CoreError::Refused)
                    }
                },
                Msg::Report(r) => {
                    let d = self.cec.report(r, Instant::now());
                    self.verdict(d).await;
                }
                Msg::TaskPanicked {
                    component,
                    supervisor,
                    panic,
                } => self.task_panicked(&component, supervisor, &panic).await,
                Msg::Views(reply) => {
                    let _ = reply.send(self.crim.components());
                }
                Msg::SessionOpen {
                    component,
                    pid,
                    session,
                    reply,
                } => {
                    let r = self.session_open(&component, pid, session);
                    let ok = r.is_ok();
                    let _ = reply.send(r);
                    if ok {
                        let inc = self.incarnations[&component];
                        let _ = self
                            .input(Input::Registered {
                                component,
                                incarnation: inc,
                            })
                            .await;
                    }
                }
                Msg::FromSession { component, id, msg } => {
                    self.session_msg(&component, id, msg).await
                }
                Msg::SessionClosed { component, id } => {
                    if self.sessions.get(&component).is_some_and(|s| s.id == id) {
                        // The incarnation that went away: when the core
                        // replaced it on purpose, the report is stale.
                        let inc = self
                            .sessions
                            .remove(&component)
                            .map_or(0, |s| s.incarnation);
                        self.core.checkpoints.remove_component(&component);
                        let d = self.cec.report(
                            ErrorReport {
                                component,
                                incarnation: inc,
                                kind: ErrorKind::HealthReport,
                                detail: "connection to the agent closed".into(),
                            },
                            Instant::now(),
                        );
                        self.verdict(d).await;
                    }
                }
                Msg::Spawned {
                    component,
                    incarnation,
                    pid,
                } => {
                    self.core.naming.bind(
                        &format!("component/{component}"),
                        &pid.map_or_else(|| "none".to_string(), |p| format!("pid:{p}")),
                    );
                    self.record(
                        &component,
                        format!("started incarnation {incarnation} pid {pid:?}"),
                    );
                    self.publish(EventKind::Process {
                        component: component.clone(),
                        pid,
                        incarnation,
                    });
                    // A plain process is ready once started.
                    let ready = match self.specs[&component].kind {
                        Kind::Process { .. } => pid.is_some(),
                        // A proxy is ready once its target answers.
                        Kind::Proxy { .. } => true,
                        _ => false,
                    };
                    if ready && self.incarnations[&component] == incarnation {
                        let _ = self
                            .input(Input::Registered {
                                component,
                                incarnation,
                            })
                            .await;
                    }
                }
                Msg::RoleDone {
                    component,
                    incarnation,
                    state,
                } => {
                    if self.incarnations.get(&component) == Some(&incarnation) {
                        let _ = self.input(Input::Acked { component, state }).await;
                    }
                }
                Msg::HandoverDeadline {
                    component,
                    incarnation,
                } => {
                    // Its standby waits for it: a component that cannot
                    // step down is failed, so the standby takes over.
                    if self.incarnations.get(&component) == Some(&incarnation)
                        && self.crim.stepping_down(&component)
                    {
                        tracing::warn!(%component, "did not step down in time: failing it so its standby takes over");
                        let _ = self
                            .input(Input::Failed {
                                component,
                                incarnation,
                                reason: format!(
                                    "did not step down within {} ms of a switch-over",
                                    HANDOVER_DEADLINE.as_millis()
                                ),
                                escalated: false,
                            })
                            .await;
                    }
                }
                Msg::Fault {
                    component,
                    fault,
                    reply,
                } if self.cluster.is_some() => {
                    // Replicated, so every node knows the unit is faulty;
                    // executed by the node hosting the component.
                    if !self.specs.contains_key(&component) {
                        let _ = reply.send(Err(CoreError::UnknownComponent(component)));
                        continue;
                    }
                    if let Some(rt) = &self.cluster {
                        rt.propose_answered(
                            Command::Fault { component, fault },
                            reply,
                            CoreError::Refused,
                        );
                    }
                }
                Msg::Fault {
                    component,
                    fault,
                    reply,
                } => {
                    let r = self.fault(&component, &fault).await;
                    let _ = reply.send(r);
                }
                Msg::Shutdown(reply) => {
                    self.shutdown_components().await;
                    // Components added at run time stop with the others
                    // (`Running::shutdown` joins their tasks).
                    for stop in self.runner.stops.values() {
                        let _ = stop.send(true);
                    }
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    fn publish(&mut self, kind: EventKind) {
        // Replayed decisions were announced by this node's earlier life.
        if self.replaying() {
            return;
        }
        let e = self.core.events.publish(kind);
        let body = serde_json::to_value(&*e).unwrap_or_default();
        // A full journal queue drops the record, never blocks a decision.
        if self
            .journal
            .try_send((
                e.kind.name().to_string(),
                e.kind.subject().to_string(),
                body,
            ))
            .is_err()
        {
            tracing::warn!("journal queue full: an event was not recorded");
        }
    }

    fn record(&mut self, component: &str, text: String) {
        if let Some(b) = self.blackboxes.get_mut(component) {
            b.record(text);
        }
    }

    async fn verdict(&mut self, d: crate::cec::Decision) {
        if self.stopping {
            return;
        }
        tracing::info!(component = %d.component, verdict = d.verdict.name(), reason = %d.reason, "CEC verdict");
        self.publish(EventKind::Verdict {
            component: d.component.clone(),
            verdict: match &d.verdict {
                Verdict::Retarget { to, .. } => format!("retarget:{to}"),
                v => v.name().to_string(),
            },
            reason: d.reason.clone(),
        });
        let (report, escalated) = match d.verdict {
            Verdict::Forward(r) => (r, false),
            Verdict::Escalate(r) => (r, true),
            Verdict::Retarget { to, mut report } => {
                report.incarnation = self.incarnations.get(&to).copied().unwrap_or(0);
                report.component = to;
                (report, false)
            }
            Verdict::Hold | Verdict::DiscardStale | Verdict::DiscardDuplicate => return,
        };
        let component = report.component.clone();
        let incarnation = report.incarnation;
        // Saved with the failure report: what the component did lately.
        let blackbox = self
            .blackboxes
            .get(&component)
            .map(BlackBox::snapshot)
            .unwrap_or_default();
        // Also to the cluster log (the agent ships warnings there), where
        // the failure's incident links to it.
        if !blackbox.is_empty() {
            let records: Vec<serde_json::Value> = blackbox
                .iter()
                .map(|(t, r)| serde_json::json!([t, r]))
                .collect();
            tracing::warn!(
                component = %component,
                blackbox = %serde_json::Value::Array(records),
                "black box of the failed component"
            );
        }
        let _ = self.journal.try_send((
            "failure".into(),
            component.clone(),
            serde_json::json!({
                "kind": report.kind.name(), "detail": report.detail, "incarnation": incarnation,
                "blackbox": blackbox.iter().map(|(t, r)| serde_json::json!({"time": t, "record": r})).collect::<Vec<_>>(),
            }),
        ));
        let served = self
            .crim
            .component(&component)
            .map(|v| v.active)
            .unwrap_or_default();
        let input = Input::Failed {
            component: component.clone(),
            incarnation,
            reason: format!("{}: {}", report.kind.name(), report.detail),
            escalated,
        };
        match self.input(input).await {
            Ok(()) => {
                self.cec.recovery_started(&component, incarnation);
                // Contained components cannot serve without their container.
                self.cascade(&component, true).await;
                // In a cluster every node records the incident when it
                // applies the failure (see `decide`).
                if self.cluster.is_some() {
                    return;
                }
                self.record_incident(component, &served, "");
            }
            Err(e) => tracing::debug!(error = %e, "failure report not applied"),
        }
    }

    /// Takes a component's descendants off-line (its failure) or back
    /// on-line (its recovery), through CRIM like any other request.
    async fn cascade(&mut self, parent: &str, offline: bool) {
        for child in self.descendants(parent) {
            let input = if offline {
                Input::ContainerFailed {
                    component: child,
                    container: parent.to_string(),
                }
            } else {
                Input::RequestOnline { component: child }
            };
            if let Err(e) = Box::pin(self.input(input)).await {
                tracing::debug!(error = %e, "cascade not applied");
            }
        }
    }

    /// An input: decided here, or in a cluster proposed to the log and
    /// decided by every replica when committed.
    async fn input(&mut self, input: Input) -> Result<(), CrimError> {
        if let Some(rt) = &self.cluster {
            rt.propose(Command::Crim {
                input: WireInput::from(&input),
                at_ms: wall_ms(),
            });
            return Ok(());
        }
        self.decide(input, Instant::now()).await
    }

    fn replaying(&self) -> bool {
        self.cluster.as_ref().is_some_and(ClusterRt::replaying)
    }

    /// Whether this node executes the component's effects.
    fn is_local(&self, component: &str) -> bool {
        match &self.cluster {
            None => true,
            Some(rt) => match rt.hosts.get(component) {
                Some(n) => *n == rt.me,
                None => rt.consensus.is_leader(),
            },
        }
    }

    /// Applies one input to CRIM and executes the effects for this node.
    async fn decide(&mut self, input: Input, now: Instant) -> Result<(), CrimError> {
        let failed = match &input {
            Input::Failed { component, .. } | Input::Lost { component, .. } => {
                Some(component.clone())
            }
            _ => None,
        };
        let served = failed
            .as_ref()
            .and_then(|c| self.crim.component(c))
            .map(|v| v.active)
            .unwrap_or_default();
        let registered = match &input {
            Input::Registered { component, .. } => Some(component.clone()),
            _ => None,
        };
        let acked =
            matches!(&input, Input::Acked { state, .. } if *state != AvailabilityState::OffLine)
                .then(|| match &input {
                    Input::Acked { component, .. } => component.clone(),
                    _ => unreachable!(),
                });
        let effects = self.crim.handle(input, now)?;
        if let Some(c) = acked
            && !self.replaying()
            && let Some(state) = self.crim.component(&c).and_then(|v| v.acked)
        {
            self.publish(EventKind::Acked {
                component: c.clone(),
                state: state.yang_name().into(),
            });
            self.records.push(Record::IncidentClose {
                component: c.clone(),
                at: Timestamp::now().0,
            });
        }
        if let Some(c) = registered
            && !self.replaying()
            && self.is_local(&c)
        {
            self.cascade(&c, false).await;
        }
        // Roles first: the fail-over path must not wait for restarts.
        let (assigns, rest): (Vec<Effect>, Vec<Effect>) = effects
            .into_iter()
            .partition(|e| matches!(e, Effect::Assign { .. }));
        for e in assigns.into_iter().chain(rest) {
            self.effect(e).await;
        }
        // In a cluster every node records the incident in its repository.
        if self.cluster.is_some()
            && !self.replaying()
            && let Some(component) = failed
        {
            // A loss has no recovery event of its own: its SIs fail over.
            self.record_incident(component, &served, "fail-over");
        }
        Ok(())
    }

    /// Opens an incident for a failed component (off the core task); the
    /// service is lost if one of the SIs it served has no active now.
    fn record_incident(&mut self, component: String, served: &[String], default_recovery: &str) {
        let lost = served
            .iter()
            .any(|si| self.crim.si(si).is_none_or(|(a, _)| a.is_none()));
        let recovery = self
            .last_recovery
            .take()
            .unwrap_or_else(|| default_recovery.to_string());
        self.records.push(Record::IncidentOpen {
            component,
            si: served.join(","),
            at: Timestamp::now().0,
            lost,
            recovery,
        });
    }

    /// Applies one committed command (cluster mode).
    async fn apply(&mut self, index: u64, value: serde_json::Value) -> serde_json::Value {
        let cmd: Command = match serde_json::from_value(value) {
            Ok(c) => c,
            Err(e) => return apply_error(format!("malformed command: {e}")),
        };
        let out = match cmd {
            Command::Crim { input, at_ms } => match Input::try_from(input) {
                Err(e) => apply_error(e),
                Ok(input) => {
                    let now = self
                        .cluster
                        .as_ref()
                        .map_or_else(Instant::now, |rt| rt.clock.instant(at_ms));
                    if let (Input::Registered { component, .. }, Some(rt)) =
                        (&input, &mut self.cluster)
                    {
                        rt.starting.remove(component);
                    }
                    match self.decide(input, now).await {
                        Ok(()) => apply_ok(),
                        Err(e) => apply_error(e),
                    }
                }
            },
            Command::NodeLost {
                node,
                restart,
                reason,
                boot,
            } => {
                self.node_lost(&node, restart, &reason).await;
                if let Some(rt) = &mut self.cluster
                    && node == rt.me
                    && boot == Some(rt.boot)
                {
                    rt.announced = true;
                    tracing::info!(
                        index,
                        "replica caught up with this node's start: executing decisions from here"
                    );
                }
                apply_ok()
            }
            Command::NodeUp { node } => {
                if let Some(rt) = &self.cluster {
                    rt.view.set_up(&node, true);
                    if !rt.replaying() {
                        tracing::info!(%node, "node is a member");
                    }
                }
                apply_ok()
            }
            Command::Checkpoint { si, key, value } => {
                let seq = self.core.checkpoints.apply_write(&si, &key, &value);
                serde_json::json!({"ok": true, "seq": seq})
            }
            Command::Fault { component, fault } => self.apply_fault(&component, &fault).await,
            Command::Reconfigure(change) => match Reconfigure::try_from(*change) {
                Err(e) => apply_error(e),
                Ok(change) => match self.reconfigure(change, Some(index)).await {
                    Ok(()) => apply_ok(),
                    Err(e) => apply_error(e),
                },
            },
            c @ (Command::Lock { .. } | Command::Unlock { .. }) => self.apply_lock(c),
            Command::Replicated(change) => {
                self.keep_replicated(index, change);
                apply_ok()
            }
        };
        if let Some(rt) = &self.cluster {
            rt.view.applied();
        }
        out
    }

    /// A task serving `component` panicked (the reaper logged and counted
    /// it): the task is replaced, and the component is failed, because
    /// while the task was gone nobody supervised or audited it.
    async fn task_panicked(&mut self, component: &str, supervisor: bool, panic: &str) {
        if self.stopping {
            return;
        }
        let Some(spec) = self.specs.get(component).cloned() else {
            return;
        };
        let tx = self.self_tx.clone();
        let stop = self.runner.stop_of(component);
        if supervisor {
            if let Some(old) = self.supervisors.remove(component) {
                old.close();
            }
            if let Some(lane) = self.runner.spawn_supervisor(&spec, &tx, stop) {
                self.supervisors.insert(component.to_string(), lane);
            }
        } else if let Some(inc) = self.audit_incarnations.get(component) {
            let inc_rx = inc.subscribe();
            self.runner.spawn_audit(&spec, inc_rx, &tx, stop);
        }
        let report = ErrorReport {
            component: component.to_string(),
            incarnation: self.incarnations.get(component).copied().unwrap_or(0),
            kind: ErrorKind::TaskPanicked,
            detail: format!(
                "its {} panicked: {panic}",
                if supervisor { "supervisor" } else { "audit" }
            ),
        };
        let d = self.cec.report(report, Instant::now());
        self.verdict(d).await;
    }

    /// Keeps a replicated change for the model's readers (bounded by its
    /// retention) and announces it.
    fn keep_replicated(&mut self, index: u64, change: Change) {
        self.core.events.publish(EventKind::Replicated {
            topic: change.topic.clone(),
            body: change.body.clone(),
        });
        self.replicated.push(index, change);
    }

    /// Applies a run-time change (hot swap): CRIM first (checked whole),
    /// then the note for the agent, then the components' tasks; this node
    /// starts and stops what it hosts.
    /// `index`: the log index it was committed at (None on one node).
    async fn reconfigure(&mut self, ch: Reconfigure, index: Option<u64>) -> Result<(), CoreError> {
        let added = ch.crim.added();
        if added.len() != ch.components.len()
            || ch.components.iter().any(|c| !added.contains(&c.name))
        {
            return Err(CoreError::Config(
                "the components to run are not the components added".into(),
            ));
        }
        if let Some(c) = ch
            .lost
            .iter()
            .chain(&ch.restart)
            .find(|c| !self.specs.contains_key(*c))
        {
            return Err(CoreError::UnknownComponent(c.clone()));
        }
        let removed: Vec<String> = ch
            .crim
            .leave
            .iter()
            .map(|l| l.component.clone())
            .chain(
                ch.crim
                    .remove_groups
                    .iter()
                    .filter_map(|g| self.crim.group(g))
                    .flat_map(|g| g.members.clone()),
            )
            .collect();
        let effects = self.crim.reconfigure(&ch.crim, "hot swap")?;
        // The agent's objects exist before their components' states change;
        // kept like every replicated change, so a model catches up with it.
        let index = index.unwrap_or_else(|| self.replicated.next_local());
        self.keep_replicated(
            index,
            Change {
                topic: HOTSWAP_TOPIC.to_string(),
                retention: Retention::Keep,
                body: ch.note.clone(),
            },
        );
        for e in effects {
            self.effect(e).await;
        }
        for name in &removed {
            // The supervisor stops the process, then ends with its lane.
            if let Some(lane) = self.supervisors.remove(name) {
                lane.close();
            }
            if let Some(stop) = self.runner.stops.remove(name) {
                let _ = stop.send(true);
            }
            if let Some(spec) = self.specs.remove(name) {
                tracing::info!(component = %name, kind = ?spec.kind, "component removed");
            }
            self.sessions.remove(name);
            self.faults.remove(name);
            self.blackboxes.remove(name);
            self.audit_incarnations.remove(name);
            self.cec.set_parent(name, None);
            self.core.checkpoints.remove_component(name);
            self.runner.modes.write().expect("modes").remove(name);
            if let Some(rt) = &mut self.cluster {
                rt.starting.remove(name);
            }
        }
        let tx = self.self_tx.clone();
        for spec in ch.components {
            let name = spec.name.clone();
            self.blackboxes.insert(name.clone(), BlackBox::new(64));
            let inc = *self.incarnations.entry(name.clone()).or_insert(0);
            let (inc_tx, inc_rx) = watch::channel(inc);
            self.audit_incarnations.insert(name.clone(), inc_tx);
            if let Some(p) = &spec.parent {
                self.cec.set_parent(&name, Some(p));
            }
            self.runner
                .modes
                .write()
                .expect("modes")
                .insert(name.clone(), spec.checkpoint);
            let (stop_tx, stop_rx) = watch::channel(false);
            let sup = self.runner.spawn_tasks(&spec, inc_rx, &tx, stop_rx);
            if let Some(old) = self.runner.stops.insert(name.clone(), stop_tx) {
                let _ = old.send(true);
            }
            match sup {
                Some(s) => {
                    self.supervisors.insert(name.clone(), s);
                }
                None => {
                    if let Some(lane) = self.supervisors.remove(&name) {
                        lane.close();
                    }
                }
            }
            self.specs.insert(name, spec);
        }
        // A configured unit gone: CRIM loses its components, they stop here.
        for c in &ch.lost {
            let input = Input::Lost {
                component: c.clone(),
                reason: "unit removed from its slot".into(),
            };
            if let Err(e) = self.decide(input, Instant::now()).await {
                tracing::debug!(error = %e, "loss not applied");
            }
            self.faults.insert(c.clone(), "removed".into());
            if !self.replaying() && self.is_local(c) {
                self.core.checkpoints.remove_component(c);
                if let Some(s) = self.supervisors.get(c) {
                    s.push(SupCmd::Stop);
                }
            }
        }
        let locked = |s: &Self, c: &str| {
            s.crim
                .component(c)
                .is_some_and(|v| v.admin == AdminState::Locked)
        };
        for c in ch.restart.iter().chain(&added) {
            self.faults.remove(c);
            if !self.replaying() && self.is_local(c) && !locked(self, c) {
                if let Some(rt) = &mut self.cluster {
                    rt.starting.insert(c.clone(), Instant::now());
                }
                self.start_component(c).await;
            }
        }
        Ok(())
    }

    fn lock_conflict(&self, subject: &str) -> Option<String> {
        self.locks
            .iter()
            .find(|(s, _)| crate::cluster::overlaps(s, subject))
            .map(|(s, h)| format!("{s} is locked by {h}, which is still running"))
    }

    fn apply_lock(&mut self, c: Command) -> serde_json::Value {
        match c {
            Command::Lock { subject, holder } => match self.lock_conflict(&subject) {
                Some(reason) => apply_error(reason),
                None => {
                    self.locks.push((subject, holder));
                    apply_ok()
                }
            },
            Command::Unlock { holder } => {
                self.locks.retain(|(_, h)| *h != holder);
                apply_ok()
            }
            _ => apply_error("not a lock command"),
        }
    }

    /// A node's components are lost; the node itself restarts them when it
    /// is alive to see this (it must not keep the roles CRIM moved away).
    async fn node_lost(&mut self, node: &str, restart: bool, reason: &str) {
        // Jobs of a lost node hold nothing any more.
        let suffix = format!(" on node {node}");
        self.locks.retain(|(_, h)| !h.ends_with(&suffix));
        let Some(rt) = &self.cluster else { return };
        // Lost twice in a row (declared by the master, and by itself on
        // rejoining): its components restart once.
        let was_up = rt.view.node(node).is_none_or(|n| n.up);
        rt.view.set_up(node, false);
        let live = !rt.replaying();
        let me = rt.me.clone();
        let hosted: Vec<String> = rt
            .hosts
            .iter()
            .filter(|(_, n)| n.as_str() == node)
            .map(|(c, _)| c.clone())
            .collect();
        if live {
            tracing::warn!(%node, %reason, "node lost: its components' roles move elsewhere");
        }
        for c in &hosted {
            let input = Input::Lost {
                component: c.clone(),
                reason: format!("node {node} lost: {reason}"),
            };
            if let Err(e) = self.decide(input, Instant::now()).await {
                tracing::debug!(error = %e, "loss not applied");
            }
        }
        if node == me && restart && live && was_up {
            if let Some(rt) = &mut self.cluster {
                rt.bump();
                rt.fenced = false;
            }
            for c in &hosted {
                self.core.checkpoints.remove_component(c);
                self.start_component(c).await;
            }
            if let Some(rt) = &self.cluster {
                rt.propose(Command::NodeUp { node: me });
            }
        }
    }

    fn fault_known(kind: &Kind, fault: &str) -> bool {
        matches!(
            (fault, kind),
            ("crash", Kind::Process { .. } | Kind::HaAware { .. })
                | (
                    "crash" | "fan-stall" | "power-loss" | "repair",
                    Kind::Hardware
                )
        )
    }

    /// A replicated fault: the hosting node executes it; the others note
    /// which hardware is faulty, so a new master does not start it.
    async fn apply_fault(&mut self, component: &str, fault: &str) -> serde_json::Value {
        let Some(spec) = self.specs.get(component).cloned() else {
            return apply_error(CoreError::UnknownComponent(component.to_string()));
        };
        if !Self::fault_known(&spec.kind, fault) {
            return apply_error(CoreError::UnknownFault {
                component: component.to_string(),
                fault: fault.to_string(),
            });
        }
        if self.is_local(component) && !self.replaying() {
            return match self.fault(component, fault).await {
                Ok(()) => apply_ok(),
                Err(e) => apply_error(e),
            };
        }
        if spec.kind == Kind::Hardware {
            let mut units = vec![component.to_string()];
            if matches!(fault, "power-loss" | "repair") {
                units.extend(
                    self.descendants(component)
                        .into_iter()
                        .filter(|c| self.specs[c].kind == Kind::Hardware),
                );
            }
            for u in units {
                if fault == "repair" {
                    self.faults.remove(&u);
                } else {
                    self.faults.insert(u, fault.to_string());
                }
            }
        }
        apply_ok()
    }

    /// Tells a component of this node to give up its roles at once (the
    /// node lost the majority), without waiting for CRIM.
    fn demote_local(&mut self, component: &str) {
        match &self.specs[component].kind {
            Kind::HaAware { .. } => {
                if let Some(s) = self.sessions.get(component) {
                    s.role.send_replace(Role {
                        state: Some(AvailabilityState::Spare),
                        ..Role::default()
                    });
                    s.control.push(ToComponent::Assign {
                        state: AvailabilityState::Spare.yang_name().to_string(),
                        active: Vec::new(),
                        standby: Vec::new(),
                        at: None,
                    });
                }
                self.core.checkpoints.remove_component(component);
            }
            Kind::Process { .. } => {
                if let Some(s) = self.supervisors.get(component) {
                    s.push(SupCmd::Stop);
                }
            }
            Kind::Proxy { .. } => {
                if let Some(s) = self.supervisors.get(component) {
                    s.push(SupCmd::Release);
                }
            }
            Kind::Hardware => {}
        }
    }

    async fn membership(&mut self, m: Membership) {
        let Some(rt) = &self.cluster else { return };
        let me = rt.me.clone();
        let local: Vec<String> = rt
            .hosts
            .iter()
            .filter(|(_, n)| **n == me)
            .map(|(c, _)| c.clone())
            .collect();
        match m {
            Membership::Fence => {
                if rt.fenced {
                    return;
                }
                let active: Vec<String> = local
                    .into_iter()
                    .filter(|c| {
                        self.crim.component(c).is_some_and(|v| !v.active.is_empty())
                            || self.sessions.get(c).is_some_and(|s| {
                                // Primary until a timed step-down's instant.
                                s.role.borrow().at_time(unix_ns()).0
                                    == Some(AvailabilityState::Primary)
                            })
                    })
                    .collect();
                if active.is_empty() {
                    return;
                }
                tracing::warn!(components = ?active, "lost contact with the majority: giving up primaries");
                for c in &active {
                    self.demote_local(c);
                    self.record(c, "fenced: lost contact with the majority".into());
                }
                if let Some(rt) = &mut self.cluster {
                    rt.fenced = true;
                }
            }
            Membership::Rejoin => {
                if !rt.fenced {
                    return;
                }
                tracing::info!("majority reachable again: restarting this node's components");
                // Inputs queued while cut off are stale now.
                rt.bump();
                rt.propose(Command::NodeLost {
                    node: me,
                    restart: true,
                    reason: "rejoined after losing the majority".into(),
                    boot: None,
                });
            }
            Membership::MasterTick => {
                let now = Instant::now();
                let todo: Vec<String> = self
                    .specs
                    .keys()
                    .filter(|c| !rt.hosts.contains_key(*c) && !self.faults.contains_key(*c))
                    .filter(|c| {
                        self.crim
                            .component(c)
                            .is_some_and(|v| v.incarnation == 0 && v.admin != AdminState::Locked)
                    })
                    .filter(|c| {
                        rt.starting
                            .get(*c)
                            .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(5))
                    })
                    .cloned()
                    .collect();
                for c in todo {
                    if let Some(rt) = &mut self.cluster {
                        rt.starting.insert(c.clone(), now);
                    }
                    self.start_component(&c).await;
                }
            }
        }
    }

    async fn effect(&mut self, e: Effect) {
        // In a cluster each node executes what concerns its components.
        let here = |s: &Self, c: &str| !s.replaying() && s.is_local(c);
        match e {
            Effect::Assign { component, .. }
            | Effect::Restart { component, .. }
            | Effect::Stop { component, .. }
                if !here(self, &component) => {}
            Effect::Assign {
                component,
                state,
                active,
                standby,
                at,
            } => {
                let when = at.map_or(String::new(), |at| {
                    format!(" at +{} ms", at.saturating_sub(unix_ns()) / 1_000_000)
                });
                self.record(
                    &component,
                    format!("assigned {state} active={active:?} standby={standby:?}{when}"),
                );
                self.assign(&component, state, active, standby, at);
            }
            Effect::Restart { component, reason } => {
                self.record(&component, format!("restart: {reason}"));
                self.core.checkpoints.remove_component(&component);
                self.start_component(&component).await;
            }
            Effect::Stop { component, reason } => {
                self.record(&component, format!("stop: {reason}"));
                self.core.checkpoints.remove_component(&component);
                if let Some(s) = self.supervisors.get(&component) {
                    s.push(SupCmd::Stop);
                }
            }
            Effect::Event(kind) => {
                if let EventKind::Recovery { action, .. } = &kind {
                    self.last_recovery = Some(action.clone());
                }
                if let EventKind::StateChanged {
                    component,
                    from,
                    to,
                    reason,
                } = &kind
                {
                    tracing::info!(%component, %from, %to, %reason, "availability state changed");
                }
                self.publish(kind);
            }
        }
    }

    fn assign(
        &mut self,
        component: &str,
        state: AvailabilityState,
        active: Vec<String>,
        standby: Vec<String>,
        at: Option<u64>,
    ) {
        let inc = self.incarnations[component];
        let now = unix_ns();
        if let Some(late) = at.map(|at| now.saturating_sub(at)).filter(|l| *l > 0) {
            // The pair has no primary from the instant until now.
            tracing::warn!(
                component,
                late_ms = late / 1_000_000,
                "a timed switch-over reached this node after its instant: raise switchover_lead_ms"
            );
        }
        // Only components that take timed assignments get one; the others
        // are told at once.
        let at = at.filter(|_| {
            matches!(
                self.specs[component].kind,
                Kind::HaAware { timed: true, .. }
            )
        });
        if self.crim.stepping_down(component) {
            let tx = self.self_tx.clone();
            let component = component.to_string();
            // A timed step-down is due at its instant, not before.
            let wait =
                HANDOVER_DEADLINE + Duration::from_nanos(at.map_or(0, |at| at.saturating_sub(now)));
            self.runner.tasks.spawn("hand-over deadline", async move {
                tokio::time::sleep(wait).await;
                let _ = tx
                    .send(Msg::HandoverDeadline {
                        component,
                        incarnation: inc,
                    })
                    .await;
            });
        }
        match &self.specs[component].kind {
            Kind::HaAware { .. } => {
                let Some(s) = self.sessions.get(component) else {
                    return;
                };
                // Until a timed assignment's instant the component keeps
                // the role it holds now (e.g. an old primary still writes
                // checkpoints).
                let until = at.filter(|at| *at > now).map(|at| {
                    let r = s.role.borrow();
                    let (state, active) = r.at_time(now);
                    (at, state, active.to_vec())
                });
                s.role.send_replace(Role {
                    state: Some(state),
                    active: active.clone(),
                    standby: standby.clone(),
                    until,
                });
                // Standby registrations follow the assignment exactly: the
                // component stops receiving what it no longer stands by for.
                self.core.checkpoints.remove_component(component);
                // Hot standbys follow the checkpoints; warm ones do not.
                let hot = self
                    .crim
                    .group(
                        &self
                            .crim
                            .component(component)
                            .map(|v| v.sg)
                            .unwrap_or_default(),
                    )
                    .is_some_and(|g| g.standby == halyard_cluster_model::model::StandbyMode::Hot);
                if hot && self.specs[component].checkpoint != CheckpointMode::NoCheckpoints {
                    for si in &standby {
                        self.core
                            .checkpoints
                            .add_standby(si, component, s.push.clone());
                    }
                }
                s.control.push(ToComponent::Assign {
                    state: state.yang_name().to_string(),
                    active,
                    standby,
                    at,
                });
            }
            Kind::Process {
                role: Some(cmd),
                env,
                ..
            } => {
                let cmd = cmd.clone();
                let env = env.clone();
                let tx = self.self_tx.clone();
                let component = component.to_string();
                self.runner.tasks.spawn("role command", async move {
                    let Some((prog, args)) = cmd.split_first() else {
                        return;
                    };
                    let ok = tokio::process::Command::new(prog)
                        .args(args)
                        .envs(env)
                        .env("HALYARD_COMPONENT", &component)
                        .env("HALYARD_ROLE", state.yang_name())
                        .env("HALYARD_ACTIVE", active.join(","))
                        .env("HALYARD_STANDBY", standby.join(","))
                        .stdin(Stdio::null())
                        .kill_on_drop(true)
                        .status()
                        .await
                        .is_ok_and(|s| s.success());
                    if ok {
                        let _ = tx
                            .send(Msg::RoleDone {
                                component,
                                incarnation: inc,
                                state,
                            })
                            .await;
                    }
                });
            }
            Kind::Proxy { .. } => {
                // The proxy's supervisor takes the role over (configuration
                // and start on the target) and acknowledges it.
                if let Some(s) = self.supervisors.get(component) {
                    s.push(SupCmd::Assign(inc, state));
                }
            }
            Kind::Process { role: None, .. } | Kind::Hardware => {
                let tx = self.self_tx.clone();
                let component = component.to_string();
                // No role command: the role is taken at once.
                self.runner.tasks.spawn("role taken", async move {
                    let _ = tx
                        .send(Msg::RoleDone {
                            component,
                            incarnation: inc,
                            state,
                        })
                        .await;
                });
            }
        }
    }

    /// Starts (or restarts) a component as a new incarnation.
    async fn start_component(&mut self, name: &str) {
        let inc = self.incarnations.get(name).copied().unwrap_or(0) + 1;
        self.incarnations.insert(name.to_string(), inc);
        self.cec.incarnation(name, inc);
        if let Some(w) = self.audit_incarnations.get(name) {
            w.send_replace(inc);
        }
        // Persisted before the component starts, so an agent restart never
        // reuses an incarnation; by the records writer, so an fsync never
        // delays the next decision (a fail-over's acknowledgement, say) and
        // incarnations land in order.
        let key = format!("/components/{name}/incarnation");
        let supervisor = self.supervisors.get(name).cloned();
        let hardware = self.specs[name].kind == Kind::Hardware;
        let faulty = self.faults.contains_key(name);
        let tx = self.self_tx.clone();
        let component = name.to_string();
        let then = Box::pin(async move {
            if let Some(s) = supervisor {
                s.push(SupCmd::Start(inc));
            } else if hardware && !faulty {
                // Simulated hardware is up at once; a persistent fault keeps it down.
                let _ = tx
                    .send(Msg::Spawned {
                        component: component.clone(),
                        incarnation: inc,
                        pid: None,
                    })
                    .await;
                let _ = tx
                    .send(Msg::Input(
                        Input::Registered {
                            component,
                            incarnation: inc,
                        },
                        None,
                    ))
                    .await;
            }
        });
        self.records.push(Record::Incarnation {
            key,
            incarnation: inc,
            then,
        });
    }

    fn session_open(
        &mut self,
        component: &str,
        _pid: u32,
        session: SessionHandle,
    ) -> Result<u32, (ErrorCode, String)> {
        match self.specs.get(component).map(|s| &s.kind) {
            Some(Kind::HaAware { .. }) => {}
            Some(_) => {
                return Err((
                    ErrorCode::UnknownComponent,
                    format!("{component} is not an HA-aware component"),
                ));
            }
            None => {
                return Err((
                    ErrorCode::UnknownComponent,
                    format!("no component named {component}"),
                ));
            }
        }
        let incarnation = self.incarnations[component];
        // On the control lane, so it precedes every assignment.
        session
            .control
            .push(ToComponent::Registered { incarnation });
        let mut session = session;
        session.incarnation = incarnation;
        self.sessions.insert(component.to_string(), session);
        Ok(incarnation)
    }

    async fn session_msg(&mut self, component: &str, id: u64, msg: ToAgent) {
        if self.sessions.get(component).is_none_or(|s| s.id != id) {
            return;
        }
        let r = match msg {
            ToAgent::Ack { state } => match state.parse::<AvailabilityState>() {
                Ok(state) => {
                    self.input(Input::Acked {
                        component: component.to_string(),
                        state,
                    })
                    .await
                }
                Err(e) => {
                    self.session_error(component, ErrorCode::Malformed, e);
                    return;
                }
            },
            ToAgent::Health { ok: false, detail } => {
                let inc = self.incarnations[component];
                let d = self.cec.report(
                    ErrorReport {
                        component: component.to_string(),
                        incarnation: inc,
                        kind: ErrorKind::HealthReport,
                        detail,
                    },
                    Instant::now(),
                );
                self.verdict(d).await;
                return;
            }
            // A healthy report is no news; the watchdog follows the health
            // monitor's own heartbeat (health::run_monitor).
            ToAgent::Health { ok: true, .. } => return,
            ToAgent::Offline { reason } => {
                self.input(Input::RequestOffline {
                    component: component.to_string(),
                    reason,
                })
                .await
            }
            ToAgent::Online => {
                self.input(Input::RequestOnline {
                    component: component.to_string(),
                })
                .await
            }
            other => {
                self.session_error(
                    component,
                    ErrorCode::OutOfOrder,
                    format!("unexpected {other:?}"),
                );
                return;
            }
        };
        if let Err(e) = r {
            self.session_error(component, ErrorCode::Refused, e.to_string());
        }
    }

    fn session_error(&self, component: &str, code: ErrorCode, message: String) {
        if let Some(s) = self.sessions.get(component) {
            s.control.push(ToComponent::Error { code, message });
        }
    }

    async fn fault(&mut self, name: &str, fault: &str) -> Result<(), CoreError> {
        let spec = self
            .specs
            .get(name)
            .ok_or_else(|| CoreError::UnknownComponent(name.to_string()))?
            .clone();
        let inc = self.incarnations[name];
        let unknown = || CoreError::UnknownFault {
            component: name.to_string(),
            fault: fault.to_string(),
        };
        match (fault, &spec.kind) {
            ("crash", Kind::Process { .. } | Kind::HaAware { .. }) => {
                // A real crash: the process is killed and the supervisor reports its exit.
                if let Some(pid) = self
                    .core
                    .naming
                    .resolve(&format!("component/{name}"))
                    .and_then(|h| h.strip_prefix("pid:").and_then(|p| p.parse::<i32>().ok()))
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Ok(())
            }
            ("crash" | "fan-stall" | "power-loss", Kind::Hardware) => {
                // power-loss takes the hardware children down with it.
                let mut victims = vec![name.to_string()];
                if fault == "power-loss" {
                    victims.extend(
                        self.descendants(name)
                            .into_iter()
                            .filter(|c| self.specs[c].kind == Kind::Hardware),
                    );
                }
                let (cause, text) = match fault {
                    "power-loss" => (ProbableCause::PowerProblem, "power lost"),
                    "fan-stall" => (ProbableCause::CoolingFanFailure, "fan stalled"),
                    _ => (ProbableCause::ReplaceableUnitProblem, "unit failed"),
                };
                self.publish(EventKind::alarm(
                    name,
                    cause,
                    PerceivedSeverity::Critical,
                    text,
                    false,
                ));
                for v in victims {
                    self.faults.insert(v.clone(), fault.to_string());
                    let vinc = self.incarnations[&v];
                    let d = self.cec.report(
                        ErrorReport {
                            component: v,
                            incarnation: vinc,
                            kind: ErrorKind::Hardware,
                            detail: text.to_string(),
                        },
                        Instant::now(),
                    );
                    self.verdict(d).await;
                }
                let _ = inc;
                Ok(())
            }
            ("repair", Kind::Hardware) => {
                let mut repaired = vec![name.to_string()];
                repaired.extend(self.descendants(name));
                for r in repaired {
                    if self.faults.remove(&r).is_some() {
                        self.publish(EventKind::alarm(
                            &r,
                            ProbableCause::ReplaceableUnitProblem,
                            PerceivedSeverity::Cleared,
                            "repaired",
                            true,
                        ));
                        self.start_component(&r).await;
                    }
                }
                Ok(())
            }
            _ => Err(unknown()),
        }
    }

    fn descendants(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![name.to_string()];
        while let Some(p) = stack.pop() {
            for c in self
                .specs
                .values()
                .filter(|c| c.parent.as_deref() == Some(p.as_str()))
            {
                out.push(c.name.clone());
                stack.push(c.name.clone());
            }
        }
        out
    }

    /// Children before parents: deepest components stop first.
    async fn shutdown_components(&mut self) {
        self.stopping = true;
        let depth = |n: &str| {
            let mut d = 0;
            let mut cur = self.specs.get(n).and_then(|s| s.parent.clone());
            while let Some(p) = cur {
                d += 1;
                cur = self.specs.get(&p).and_then(|s| s.parent.clone());
            }
            d
        };
        let mut order: Vec<String> = self.specs.keys().cloned().collect();
        order.sort_by_key(|n| std::cmp::Reverse(depth(n)));
        for name in order {
            // A proxy's service outlives the agent: another proxy, or this
            // one's next start, takes it over as it runs.
            let cmd = match self.specs[&name].kind {
                Kind::Proxy { .. } => SupCmd::Release,
                _ => SupCmd::Stop,
            };
            if let Some(s) = self.supervisors.get(&name) {
                s.push(cmd);
            }
        }
    }
}

/// Runs one process component: starts it on command, reports its exit at once.
async fn supervise(
    spec: ComponentSpec,
    socket: PathBuf,
    cmds: Arc<Lane<SupCmd>>,
    core: mpsc::Sender<Msg>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (command, env, stop_cmd) = match &spec.kind {
        Kind::Process {
            start, env, stop, ..
        } => (start.clone(), env.clone(), stop.clone()),
        Kind::HaAware { command, env, .. } => (command.clone(), env.clone(), None),
        Kind::Hardware | Kind::Proxy { .. } => return,
    };
    let mut child: Option<(tokio::process::Child, u32)> = None;
    let mut last_started = 0;
    loop {
        tokio::select! {
            cmd = cmds.next() => match cmd {
                None => break,
                // Starts may arrive out of order: only a newer incarnation counts.
                Some(SupCmd::Start(inc)) if inc <= last_started => {}
                Some(SupCmd::Start(inc)) => {
                    last_started = inc;
                    if let Some((mut old, _)) = child.take() {
                        let _ = old.start_kill();
                        let _ = old.wait().await;
                    }
                    let Some((prog, args)) = command.split_first() else { continue };
                    let spawned = tokio::process::Command::new(prog)
                        .args(args)
                        .envs(env.iter().cloned())
                        .env("HALYARD_SOCKET", &socket)
                        .env("HALYARD_COMPONENT", &spec.name)
                        .env("HALYARD_INCARNATION", inc.to_string())
                        .stdin(Stdio::null())
                        .kill_on_drop(true)
                        .spawn();
                    match spawned {
                        Ok(c) => {
                            let pid = c.id();
                            tracing::info!(incarnation = inc, pid, "component process started");
                            child = Some((c, inc));
                            let _ = core.send(Msg::Spawned { component: spec.name.clone(), incarnation: inc, pid }).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, command = %prog, "cannot start component process");
                            let _ = core.send(Msg::Report(ErrorReport {
                                component: spec.name.clone(),
                                incarnation: inc,
                                kind: ErrorKind::ProcessExit,
                                detail: format!("cannot start {prog}: {e}"),
                            })).await;
                        }
                    }
                }
                Some(SupCmd::Stop) => {
                    if let Some((c, _)) = child.take() {
                        stop_child(c, grace, stop_cmd.as_deref(), &spec.name).await;
                    }
                }
                Some(SupCmd::Assign(..) | SupCmd::Release) => {}
            },
            status = async { child.as_mut().expect("guarded").0.wait().await }, if child.is_some() => {
                let (_, inc) = child.take().expect("child");
                let detail = match status {
                    Ok(s) => format!("process exited: {s}"),
                    Err(e) => format!("process lost: {e}"),
                };
                tracing::warn!(incarnation = inc, %detail, "component process exited");
                let _ = core.send(Msg::Report(ErrorReport {
                    component: spec.name.clone(),
                    incarnation: inc,
                    kind: ErrorKind::ProcessExit,
                    detail,
                })).await;
            }
            _ = stop.changed() => break,
        }
    }
    if let Some((c, _)) = child.take() {
        stop_child(c, grace, stop_cmd.as_deref(), &spec.name).await;
    }
}

/// The environment a proxy's commands see on the target, as a prefix of
/// the command line.
fn proxy_env(component: &str, target: &str, incarnation: Option<u32>) -> String {
    let mut s = format!(
        "export HALYARD_COMPONENT={} HALYARD_TARGET={};",
        sh_quote(component),
        sh_quote(target)
    );
    if let Some(i) = incarnation {
        s.push_str(&format!(" export HALYARD_INCARNATION={i};"));
    }
    s.push(' ');
    s
}

fn status_text(o: &crate::remote::RemoteOutput) -> String {
    let err = o.stderr.trim();
    if err.is_empty() {
        format!("exited with status {}", o.status)
    } else {
        format!(
            "exited with status {}: {}",
            o.status,
            err.chars().take(200).collect::<String>()
        )
    }
}

/// A proxy's audit: the health command on the target while primary, a
/// reachability probe otherwise (a standby must be able to take over).
fn proxy_audit(
    spec: &ComponentSpec,
    remote: Arc<dyn RemoteShell>,
    primary: Arc<std::sync::atomic::AtomicU32>,
    incarnation: watch::Receiver<u32>,
) -> AuditCheck {
    let Kind::Proxy {
        target,
        health,
        timeout,
        ..
    } = spec.kind.clone()
    else {
        unreachable!("proxy audits are made for proxies")
    };
    let prefix = proxy_env(&spec.name, &target, None);
    Arc::new(move || {
        let (remote, target, prefix) = (remote.clone(), target.clone(), prefix.clone());
        // The incarnation audited must be the one that took the role (a
        // new one has not yet, even if the previous one had).
        let audited = *incarnation.borrow();
        let health = health.clone().filter(|_| {
            audited != 0 && primary.load(std::sync::atomic::Ordering::SeqCst) == audited
        });
        Box::pin(async move {
            let (what, cmd) = match &health {
                Some(h) => ("health command", format!("{prefix}{h}")),
                None => ("reachability probe", "true".to_string()),
            };
            match remote.run(&target, &cmd, timeout).await {
                Ok(o) if o.status == 0 => Ok(()),
                Ok(o) => Err(format!("{what} on {target} {}", status_text(&o))),
                Err(e) => Err(format!("{what} on {target}: {e}")),
            }
        })
    })
}

/// The topic of the alarms proxies relay (see [`relay_alarm`]).
pub const RELAYED_ALARM: &str = "relayed-alarm";

/// A relayed alarm change goes to every node like a configuration change
/// (through the log in a cluster), so every node's agent shows the
/// non-peer node's alarms. Body: a [`crate::replicated::RelayedAlarm`].
/// Not awaited: the supervisor never waits for the cluster.
async fn relay_alarm(
    core: &mpsc::Sender<Msg>,
    resource: &str,
    cause: ProbableCause,
    raise: Option<(PerceivedSeverity, &str)>,
) {
    let alarm = crate::replicated::RelayedAlarm {
        resource: resource.to_string(),
        cause: cause.value(),
        severity: raise.map(|(s, _)| s.value()),
        text: raise.map(|(_, t)| t.to_string()),
    };
    let Ok(body) = serde_json::to_value(&alarm) else {
        return;
    };
    let (reply, _) = oneshot::channel();
    // The newest change of an alarm is its state.
    let change = Change {
        topic: RELAYED_ALARM.into(),
        retention: Retention::Latest(format!("{RELAYED_ALARM}/{resource}/{}", cause.value())),
        body,
    };
    let _ = core.send(Msg::Replicate { change, reply }).await;
}

/// What a proxy's supervisor works with.
#[derive(Debug, Clone)]
struct ProxyCtx {
    remote: Arc<dyn RemoteShell>,
    /// The incarnation holding the primary role (0: none), shared with
    /// the audit.
    primary: Arc<std::sync::atomic::AtomicU32>,
    events: EventService,
    repo: Repository,
}

/// Runs one proxy component (see [`crate::remote`]): a new incarnation
/// checks the target answers; made primary it pushes the configuration and
/// runs `start`; while primary it relays `stats`; stopped by CRIM while
/// primary it runs `stop`.
async fn supervise_proxy(
    spec: ComponentSpec,
    ctx: ProxyCtx,
    cmds: Arc<Lane<SupCmd>>,
    core: mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let ProxyCtx {
        remote,
        primary,
        repo,
        ..
    } = ctx.clone();
    let Kind::Proxy {
        target,
        start,
        stop: stop_cmd,
        stats,
        config,
        stats_period,
        timeout,
        ..
    } = spec.kind.clone()
    else {
        return;
    };
    let name = spec.name.clone();
    let report = |incarnation: u32, detail: String| {
        Msg::Report(ErrorReport {
            component: name.clone(),
            incarnation,
            kind: ErrorKind::ProcessExit,
            detail,
        })
    };
    let mut current = 0u32;
    // Relayed alarms by cause: Some((severity, text)) raised, None cleared.
    let mut alarms: HashMap<ProbableCause, Option<(PerceivedSeverity, String)>> = HashMap::new();
    let mut stats_failing = false;
    let mut tick = tokio::time::interval(stats_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            cmd = cmds.next() => match cmd {
                None => break,
                Some(SupCmd::Start(inc)) if inc <= current => {}
                Some(SupCmd::Start(inc)) => {
                    current = inc;
                    primary.store(0, SeqCst);
                    match remote.run(&target, "true", timeout).await {
                        Ok(o) if o.status == 0 => {
                            tracing::info!(incarnation = inc, %target, "proxy started: target reachable");
                            let _ = core.send(Msg::Spawned { component: name.clone(), incarnation: inc, pid: None }).await;
                        }
                        Ok(o) => {
                            let _ = core.send(report(inc, format!("{target}: probe {}", status_text(&o)))).await;
                        }
                        Err(e) => {
                            tracing::warn!(incarnation = inc, %target, error = %e, "proxy cannot reach its target");
                            let _ = core.send(report(inc, format!("cannot reach {target}: {e}"))).await;
                        }
                    }
                }
                Some(SupCmd::Assign(inc, _)) if inc != current => {}
                Some(SupCmd::Assign(inc, AvailabilityState::Primary)) => {
                    let r = async {
                        for (path, key) in &config {
                            let contents: String = repo
                                .get_as(key)
                                .await
                                .map_err(|e| format!("cannot read {key} from the repository: {e}"))?
                                .ok_or_else(|| format!("the repository has no {key} (the contents of {path})"))?;
                            remote
                                .put_file(&target, path, contents.as_bytes(), timeout)
                                .await
                                .map_err(|e| format!("cannot write {path} on {target}: {e}"))?;
                        }
                        let cmd = format!("{}{start}", proxy_env(&name, &target, Some(inc)));
                        match remote.run(&target, &cmd, timeout).await {
                            Ok(o) if o.status == 0 => Ok(()),
                            Ok(o) => Err(format!("start command on {target} {}", status_text(&o))),
                            Err(e) => Err(format!("start command on {target}: {e}")),
                        }
                    }
                    .await;
                    match r {
                        Ok(()) => {
                            tracing::info!(incarnation = inc, %target, files = config.len(), "proxy is primary: configuration pushed, service started");
                            primary.store(inc, SeqCst);
                            alarms.clear();
                            tick.reset_immediately();
                            let _ = core.send(Msg::RoleDone { component: name.clone(), incarnation: inc, state: AvailabilityState::Primary }).await;
                        }
                        Err(detail) => {
                            tracing::warn!(incarnation = inc, %detail, "proxy cannot take its target over");
                            let _ = core.send(report(inc, detail)).await;
                        }
                    }
                }
                Some(SupCmd::Assign(inc, state)) => {
                    primary.store(0, SeqCst);
                    let _ = core.send(Msg::RoleDone { component: name.clone(), incarnation: inc, state }).await;
                }
                Some(SupCmd::Stop) => {
                    if primary.swap(0, SeqCst) != 0
                        && let Some(cmd) = &stop_cmd
                    {
                        let cmd = format!("{}{cmd}", proxy_env(&name, &target, Some(current)));
                        match remote.run(&target, &cmd, timeout).await {
                            Ok(o) if o.status == 0 => tracing::info!(%target, "service stopped on the target"),
                            Ok(o) => tracing::warn!(%target, "stop command {}", status_text(&o)),
                            Err(e) => tracing::warn!(%target, error = %e, "stop command failed"),
                        }
                    }
                }
                Some(SupCmd::Release) => primary.store(0, SeqCst),
            },
            _ = tick.tick(), if stats.is_some() && primary.load(SeqCst) != 0 => {
                let cmd = format!("{}{}", proxy_env(&name, &target, Some(current)), stats.as_deref().unwrap_or_default());
                let out = match remote.run(&target, &cmd, timeout).await {
                    Ok(o) if o.status == 0 => o,
                    r => {
                        // The health audit decides about failures; this only tells once.
                        if !stats_failing {
                            let why = match r { Ok(o) => status_text(&o), Err(e) => e.to_string() };
                            tracing::warn!(%target, %why, "stats command failed");
                        }
                        stats_failing = true;
                        continue;
                    }
                };
                stats_failing = false;
                for line in out.stdout.lines() {
                    match parse_report(line) {
                        None => {}
                        Some(Err(e)) => tracing::warn!(%target, error = %e, "malformed stats line skipped"),
                        Some(Ok(Report::Metric { name: stat, value, unit })) => {
                            ctx.events.publish(EventKind::Statistic { resource: target.clone(), name: stat, value, unit });
                        }
                        Some(Ok(Report::Raise { cause, severity, text })) => {
                            let now = Some((severity, text.clone()));
                            let was = alarms.insert(cause, now.clone());
                            if was != Some(now) {
                                relay_alarm(&core, &target, cause, Some((severity, &text))).await;
                            }
                        }
                        Some(Ok(Report::Clear { cause })) => {
                            let was = alarms.insert(cause, None);
                            if was != Some(None) {
                                relay_alarm(&core, &target, cause, None).await;
                            }
                        }
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// The stop command when there is one (OCF style, with HALYARD_PID set),
/// else SIGTERM; SIGKILL after the grace period either way.
async fn stop_child(
    mut c: tokio::process::Child,
    grace: Duration,
    stop: Option<&[String]>,
    name: &str,
) {
    let pid = c.id();
    match (stop.and_then(<[String]>::split_first), pid) {
        (Some((prog, args)), Some(pid)) => {
            let run = tokio::process::Command::new(prog)
                .args(args)
                .env("HALYARD_COMPONENT", name)
                .env("HALYARD_PID", pid.to_string())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .status();
            if !matches!(tokio::time::timeout(grace, run).await, Ok(Ok(s)) if s.success()) {
                tracing::warn!(component = %name, "stop command failed or timed out; signalling");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        (None, Some(pid)) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        _ => {}
    }
    if tokio::time::timeout(grace, c.wait()).await.is_err() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
}

/// Accepts HA-aware sessions on the Unix socket.
async fn accept_sessions(
    listener: UnixListener,
    core: mpsc::Sender<Msg>,
    checkpoints: CheckpointService,
    deadline: Duration,
    modes: Modes,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let id = next_id;
                next_id += 1;
                sessions.spawn(session(stream, id, core.clone(), checkpoints.clone(), deadline, modes.clone()));
            }
            Some(r) = sessions.join_next(), if !sessions.is_empty() => {
                crate::tasks::note_panic(r, "an HA-aware component's session");
            }
            _ = stop.changed() => break,
        }
    }
    sessions.abort_all();
}

/// One HA-aware component's connection.
async fn session(
    stream: UnixStream,
    id: u64,
    core: mpsc::Sender<Msg>,
    checkpoints: CheckpointService,
    deadline: Duration,
    modes: Modes,
) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let (out_tx, mut out_rx) = mpsc::channel::<ToComponent>(256);
    let (push_tx, mut push_rx) = mpsc::channel::<CheckpointPush>(1024);
    let role = Arc::new(watch::channel(Role::default()).0);
    let control = Arc::new(Lane::<ToComponent>::default());
    // The writer: the core's control lane first, then the data queue
    // (checkpoints, replies). A component that stops reading for longer
    // than the deadline loses its session.
    let lane = control.clone();
    let mut writer = tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                biased;
                Some(m) = lane.next() => m,
                m = out_rx.recv() => match m {
                    Some(m) => m,
                    // The session is over: what the core said last still goes.
                    None => match lane.pop() { Some(m) => m, None => break },
                },
            };
            match tokio::time::timeout(deadline, w.write_all(encode(&m).as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis() as u64,
                        "HA-aware component has not read its socket within the deadline: its session ends"
                    );
                    break;
                }
            }
        }
    });
    let mut writer_done = false;
    let mut component: Option<String> = None;
    let mut line = Vec::new();
    loop {
        // A push may interrupt a partly read line: what was read stays in
        // `line` (read_line_limited only appends), so nothing is lost.
        let read = tokio::select! {
            r = read_line_limited(&mut reader, &mut line) => r,
            // The writer gave up (a dead or stalled reader): so does the session.
            _ = &mut writer, if !writer_done => { writer_done = true; break }
            Some(push) = push_rx.recv() => {
                let m = match push {
                    CheckpointPush::Full { seq, entries } => ToComponent::CheckpointState { seq, entries },
                    CheckpointPush::Increment { seq, key, value } => ToComponent::Checkpoint { seq, key, value },
                };
                let _ = out_tx.send(m).await;
                continue;
            }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(LineError::TooLong) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::Fatal,
                        message: format!("line longer than {MAX_LINE} bytes"),
                    })
                    .await;
                break;
            }
            Err(LineError::Io) => break,
        }
        let parsed = serde_json::from_slice::<ToAgent>(&line);
        line.clear();
        let msg: ToAgent = match parsed {
            Ok(m) => m,
            Err(e) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::Malformed,
                        message: e.to_string(),
                    })
                    .await;
                continue;
            }
        };
        match (&component, msg) {
            (
                None,
                ToAgent::Register {
                    version,
                    component: name,
                    pid,
                },
            ) => {
                if version != VERSION {
                    let _ = out_tx.send(ToComponent::Error { code: ErrorCode::Version, message: format!("protocol version {version} unsupported; this agent speaks {VERSION}") }).await;
                    continue;
                }
                let (reply_tx, reply_rx) = oneshot::channel();
                let handle = SessionHandle {
                    id,
                    incarnation: 0,
                    control: control.clone(),
                    push: push_tx.clone(),
                    role: role.clone(),
                };
                if core
                    .send(Msg::SessionOpen {
                        component: name.clone(),
                        pid,
                        session: handle,
                        reply: reply_tx,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                match reply_rx.await {
                    Ok(Ok(_incarnation)) => component = Some(name),
                    Ok(Err((code, message))) => {
                        let _ = out_tx.send(ToComponent::Error { code, message }).await;
                    }
                    Err(_) => break,
                }
            }
            (None, other) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::OutOfOrder,
                        message: format!("register first (got {})", op_name(&other)),
                    })
                    .await;
            }
            (Some(_), ToAgent::Register { .. }) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::OutOfOrder,
                        message: "already registered".into(),
                    })
                    .await;
            }
            (Some(name), ToAgent::CheckpointWrite { key, value }) => {
                let r = role.borrow().clone();
                // A timed step-down: primary until its instant.
                let (state, active) = r.at_time(unix_ns());
                let Some(si) = active
                    .first()
                    .cloned()
                    .filter(|_| state == Some(AvailabilityState::Primary))
                else {
                    let _ = out_tx
                        .send(ToComponent::Error {
                            code: ErrorCode::Refused,
                            message: "only a primary writes checkpoints".into(),
                        })
                        .await;
                    continue;
                };
                let sync =
                    modes.read().expect("modes").get(name) == Some(&CheckpointMode::Synchronous);
                let seq = match checkpoints
                    .write(name, &si, &key, &value, sync, deadline)
                    .await
                {
                    Ok(seq) => seq,
                    Err(CheckpointError::SyncTimeout(e)) => {
                        tracing::warn!(component = %name, error = %e, "synchronous checkpoint incomplete");
                        e.seq
                    }
                    // Not held by the cluster: the component must not count it.
                    Err(e @ CheckpointError::NotCommitted(_)) => {
                        let _ = out_tx
                            .send(ToComponent::Error {
                                code: ErrorCode::Refused,
                                message: e.to_string(),
                            })
                            .await;
                        continue;
                    }
                };
                let _ = out_tx.send(ToComponent::CheckpointWritten { seq }).await;
            }
            (Some(_), ToAgent::CheckpointRead) => {
                let r = role.borrow().clone();
                let si = r
                    .active
                    .first()
                    .or(r.standby.first())
                    .cloned()
                    .unwrap_or_default();
                let (seq, entries) = checkpoints.read(&si);
                let _ = out_tx
                    .send(ToComponent::CheckpointState { seq, entries })
                    .await;
            }
            (Some(name), ToAgent::CheckpointAck { seq }) => {
                for si in role.borrow().standby.iter() {
                    checkpoints.acknowledge(si, name, seq);
                }
            }
            (Some(name), msg) => {
                if core
                    .send(Msg::FromSession {
                        component: name.clone(),
                        id,
                        msg,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    if let Some(name) = component {
        let _ = core
            .send(Msg::SessionClosed {
                component: name,
                id,
            })
            .await;
    }
    drop(out_tx);
    if !writer_done {
        let _ = writer.await;
    }
}

fn op_name(m: &ToAgent) -> &'static str {
    match m {
        ToAgent::Register { .. } => "register",
        ToAgent::Ack { .. } => "ack",
        ToAgent::CheckpointWrite { .. } => "checkpoint-write",
        ToAgent::CheckpointRead => "checkpoint-read",
        ToAgent::CheckpointAck { .. } => "checkpoint-ack",
        ToAgent::Health { .. } => "health",
        ToAgent::Offline { .. } => "offline",
        ToAgent::Online => "online",
    }
}

enum LineError {
    TooLong,
    Io,
}

/// Reads one line of at most MAX_LINE bytes (without the newline).
async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> Result<usize, LineError> {
    loop {
        let buf = r.fill_buf().await.map_err(|_| LineError::Io)?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            if out.len() + i > MAX_LINE {
                return Err(LineError::TooLong);
            }
            out.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            return Ok(out.len() + 1);
        }
        let n = buf.len();
        out.extend_from_slice(buf);
        r.consume(n);
        if out.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
    }
}
