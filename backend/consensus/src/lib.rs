//! Cluster consensus for Halyard: a replicated log of JSON commands on openraft.
//!
//! # Design
//!
//! - **openraft 0.9.25** (pinned): the stable line; 0.10 is still alpha with weekly API churn.
//!   Everything openraft-specific stays inside this crate behind [`Consensus`] and [`Machine`],
//!   so a later move to 0.10 is contained here.
//! - **Storage** (`store.rs`, storage-v2 traits, no Adaptor): the log, vote, committed and purged
//!   ids and the latest snapshot live in `raft.db` (SQLite through sqlx, WAL,
//!   `synchronous = FULL`). An append is one transaction and is reported to openraft only after
//!   it commits, so it is on disk.
//! - **State machine**: the application's [`Machine`] is in memory only. After a restart it starts
//!   empty and is rebuilt by replay: first the stored snapshot's commands, then the committed
//!   log. A **snapshot is the ordered list of every command applied so far** (with its log
//!   index), so the Machine needs no serialization of its own, and installing a snapshot is
//!   [`Machine::reset`] followed by applying those commands in order. Snapshots are rare
//!   (every 10 000 entries by default) and logs are kept well behind them.
//! - **Proposals** go through the leader ([`Consensus::propose`] forwards them over the
//!   transport) and are retried across leader changes until the deadline. Each carries its
//!   origin node and a nonce; the state machine folds a command it has already applied (within a
//!   window of the last 1024 proposals, evicted in log order so every node folds alike), so a retry after an ambiguous failure (sent, then timed out)
//!   does not apply it twice.
//! - **Transport** (`net.rs`): TCP on each of the node's addresses (one per cluster link); frames
//!   are a 4-byte big-endian length plus JSON, at most 64 MiB; garbage or oversize frames drop the
//!   connection, never the node. Connections are persistent and multiplexed by request id, two
//!   per peer (control and bulk) so heartbeats never queue behind a big append. A peer's
//!   addresses are tried in order with a 200 ms connect timeout, and the one that worked is
//!   tried first next time, so a dead link costs little.
//! - **Faults** ([`Faults`]): isolation from nodes (both directions) and per-link down, applied
//!   in the transport, for partition tests and the heartbeat code.
//!
//! # Starting nodes
//!
//! A new cluster: start every initial node with the same `members` (all voters and their
//! addresses). Each node whose log is empty initializes the cluster with `members`; openraft
//! allows this on every node with the same membership, so no node is special (the lowest id
//! merely campaigns at once instead of waiting out an election timeout).
//!
//! A node joining an existing cluster: start it with [`ConsensusConfig::join`] set (see
//! [`ConsensusConfig::joining`]); `members` then only needs its own addresses. It does not
//! initialize, it waits; [`Consensus::add_node`] called on any member admits it (as a learner
//! until caught up, then as a voter). A restarted node (joined or not) resumes from raft.db,
//! whatever `join` says. A node whose raft.db is lost must not come back as a founding member
//! (it would have forgotten its votes): remove it, then let it join again with a fresh
//! directory.
//!
//! # Proposals and retries
//!
//! [`Consensus::propose`] tries one attempt of at most 2 s at a time (local if this node leads,
//! else forwarded), retrying on a refusal, an unreachable or silent leader, or a leader change,
//! until the deadline. Retrying is safe because of the origin/nonce folding above; a proposal
//! that fails at the deadline may still commit later (raft cannot tell), so callers that retry
//! at their own level must make commands idempotent.

mod net;
mod store;

use std::collections::{BTreeMap, BTreeSet};
// `declare_raft_types!` names `Cursor` unqualified.
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

pub use net::{Fate, Faults};
use net::{Lane, Refusal, Request, Response};
pub use store::Command;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of Halyard's log.
    pub TypeConfig:
        D = store::Command,
        R = serde_json::Value,
        NodeId = NodeId,
        Node = BasicNode,
);

/// How long a membership change may take (the learner must catch up first).
const ADMIN_DEADLINE: Duration = Duration::from_secs(60);
/// The longest one attempt of a write may take before it is retried (see `route`).
const WRITE_ATTEMPT: Duration = Duration::from_secs(2);
/// Pause between routing attempts when the leader is unknown or refused.
const RETRY_WAIT: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ConsensusConfig {
    pub node_id: NodeId,
    /// The initial voters, this node included: each node's raft listen addresses, one per
    /// cluster link (a node may have two links; losing one must not lose the node). Link `i`
    /// of every node is the same network.
    pub members: BTreeMap<NodeId, Vec<SocketAddr>>,
    /// Where raft.db (SQLite, WAL) lives.
    pub data_dir: PathBuf,
    pub heartbeat: Duration,
    pub election_timeout: (Duration, Duration),
    /// This node joins an existing cluster: it never initializes one, and waits for
    /// [`Consensus::add_node`]. Only its own entry in `members` is used.
    pub join: bool,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot (so lagging followers catch up from the log).
    pub keep_after_snapshot: u64,
}

impl ConsensusConfig {
    /// A founding member with the default timings (heartbeat 50 ms, election 150..300 ms).
    pub fn new(
        node_id: NodeId,
        members: BTreeMap<NodeId, Vec<SocketAddr>>,
        data_dir: PathBuf,
    ) -> Self {
        Self {
            node_id,
            members,
            data_dir,
            heartbeat: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(150), Duration::from_millis(300)),
            join: false,
            snapshot_every: 10_000,
            keep_after_snapshot: 1_000,
        }
    }

    /// A node that joins an existing cluster through [`Consensus::add_node`].
    pub fn joining(node_id: NodeId, addrs: Vec<SocketAddr>, data_dir: PathBuf) -> Self {
        Self {
            join: true,
            ..Self::new(node_id, BTreeMap::from([(node_id, addrs)]), data_dir)
        }
    }
}

/// The application's replicated state machine. Commands are JSON values.
pub trait Machine: Send + Sync + 'static {
    /// Applies one committed command. Called in log order on every node. After a process restart
    /// the state machine starts empty and every command is applied again from the start of the
    /// log (or from a snapshot: see reset). Must be deterministic. `index` is the raft log index:
    /// increasing but not contiguous (raft's own entries and folded retries are skipped).
    fn apply(
        &self,
        index: u64,
        command: serde_json::Value,
    ) -> impl std::future::Future<Output = serde_json::Value> + Send;
    /// Called before a snapshot is installed (the commands it holds are then applied in order).
    fn reset(&self) -> impl std::future::Future<Output = ()> + Send;
    /// Called once the commands of a snapshot have been applied again (after [`reset`](Self::reset)):
    /// what follows comes from the log. A Machine whose commands carry preconditions on earlier
    /// commands skips them in between: the snapshot kept the command, not the ones it followed.
    fn restored(&self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
    /// Whether a snapshot keeps `command`, given what applying it answered. The default keeps
    /// every command; a Machine that refuses some (a failed precondition) says they changed
    /// nothing, so that a refused command never displaces the accepted one of its key.
    fn kept(&self, command: &serde_json::Value, result: &serde_json::Value) -> bool {
        let _ = (command, result);
        true
    }
    /// How long snapshots keep `command` (see [`Retention`]). The default keeps everything,
    /// which makes snapshots grow without bound: a Machine whose commands overwrite state or
    /// record history says so here.
    fn retention(&self, command: &serde_json::Value) -> Retention {
        let _ = command;
        Retention::Keep
    }
}

/// How long a snapshot keeps an applied command. Decided per command, in apply order, so every
/// node drops the same commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    /// Always: the command is part of the state (a membership or a structure change).
    #[default]
    Keep,
    /// Until a later command with the same key: only the latest counts (a checkpointed value,
    /// an attribute write), kept at the later command's place in the order.
    Latest(String),
    /// The newest `keep` commands of `class` (history such as audit records: the log carries
    /// the recent part, older history lives in the application's own store).
    Recent { class: String, keep: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("raft.db: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("raft storage: {0}")]
    RaftStorage(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid consensus configuration: {0}")]
    Config(String),
    #[error("no leader carried out the request within {deadline:?} (last: {last})")]
    Deadline { deadline: Duration, last: String },
    #[error("raft: {0}")]
    Raft(String),
    #[error("consensus is stopped")]
    Stopped,
}

/// A snapshot of this node's view, for status pages and logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub node_id: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// Leader only: ms since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
}

/// What the network handlers and the local path share: this node's raft.
pub(crate) struct Local {
    pub(crate) id: NodeId,
    raft: Raft<TypeConfig>,
}

/// A request routed to the leader.
#[derive(Debug, Clone)]
enum Op {
    Write(Command),
    Add(NodeId, Vec<SocketAddr>),
    Remove(NodeId),
}

impl Op {
    fn request(&self, timeout: Duration) -> Request {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        match self {
            Op::Write(c) => Request::Write {
                command: c.clone(),
                timeout_ms,
            },
            Op::Add(id, addrs) => Request::AddNode {
                id: *id,
                addrs: addrs.clone(),
                timeout_ms,
            },
            Op::Remove(id) => Request::RemoveNode {
                id: *id,
                timeout_ms,
            },
        }
    }
}

fn refusal(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Refusal {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            Refusal::NotLeader(f.leader_id)
        }
        // Another change is still being committed: ours can go once it has.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            c @ ChangeMembershipError::InProgress(_),
        )) => Refusal::Transient(c.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Refusal::Rejected(c.to_string())
        }
        RaftError::Fatal(f) => Refusal::Transient(format!("raft stopped: {f}")),
    }
}

impl Local {
    pub(crate) async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Append(r) => Response::Append(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::Snapshot(r) => Response::Snapshot(self.raft.install_snapshot(r).await),
            Request::Write {
                command,
                timeout_ms,
            } => Response::Routed(
                self.execute(Op::Write(command), Duration::from_millis(timeout_ms))
                    .await,
            ),
            Request::AddNode {
                id,
                addrs,
                timeout_ms,
            } => Response::Routed(
                self.execute(Op::Add(id, addrs), Duration::from_millis(timeout_ms))
                    .await,
            ),
            Request::RemoveNode { id, timeout_ms } => Response::Routed(
                self.execute(Op::Remove(id), Duration::from_millis(timeout_ms))
                    .await,
            ),
        }
    }

    /// Carries out `op` here if this node is the leader; never forwards (the caller routes).
    async fn execute(&self, op: Op, timeout: Duration) -> Result<serde_json::Value, Refusal> {
        let work = async {
            match op {
                Op::Write(command) => {
                    let r = self.raft.client_write(command).await;
                    if r.is_ok() {
                        // Followers learn the new commit index now rather
                        // than at the next heartbeat: a decision that
                        // waits on another node's acknowledgement (a 2N
                        // switch-over) then costs two round trips, not two
                        // heartbeat periods.
                        let _ = self.raft.trigger().heartbeat().await;
                    }
                    r.map(|r| r.data).map_err(refusal)
                }
                Op::Add(id, addrs) => {
                    let node = BasicNode::new(net::format_addrs(&addrs));
                    // Blocking: returns once the learner has caught up with the leader's log.
                    self.raft
                        .add_learner(id, node, true)
                        .await
                        .map_err(refusal)?;
                    let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                    self.raft
                        .change_membership(change, false)
                        .await
                        .map_err(refusal)?;
                    tracing::info!(id, "node admitted as a voter");
                    Ok(serde_json::Value::Null)
                }
                Op::Remove(id) => {
                    let is_voter = {
                        let m = self.raft.metrics();
                        let m = m.borrow();
                        m.membership_config
                            .membership()
                            .voter_ids()
                            .any(|v| v == id)
                    };
                    let change = if is_voter {
                        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                    } else {
                        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                    };
                    self.raft
                        .change_membership(change, false)
                        .await
                        .map_err(refusal)?;
                    tracing::info!(id, "node removed");
                    Ok(serde_json::Value::Null)
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(Refusal::Transient(format!(
                "not committed within {timeout:?}"
            ))),
        }
    }
}

struct Inner {
    local: Arc<Local>,
    transport: Arc<net::Transport>,
    leader: watch::Receiver<Option<NodeId>>,
    faults: Faults,
    /// Random per start, so nonces never repeat across restarts of this node.
    nonce_base: u64,
    next_nonce: AtomicU64,
}

/// A handle on this node's consensus. Cheap to clone.
#[derive(Clone)]
pub struct Consensus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("node_id", &self.inner.local.id)
            .field("leader", &*self.inner.leader.borrow())
            .finish_non_exhaustive()
    }
}

/// Owns raft, the listeners and the connections; [`ConsensusTask::shutdown`] stops them all.
pub struct ConsensusTask {
    raft: Raft<TypeConfig>,
    tasks: JoinSet<()>,
    transport: Arc<net::Transport>,
    pool: sqlx::SqlitePool,
    span: tracing::Span,
}

impl std::fmt::Debug for ConsensusTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsensusTask")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Drop for ConsensusTask {
    /// Without [`ConsensusTask::shutdown`], at least cut this node off the network (raft's own
    /// task ends only with the runtime, as stopping it needs an await).
    fn drop(&mut self) {
        self.transport.abort();
    }
}

impl ConsensusTask {
    /// Stops raft, then the listeners and the connections, then closes raft.db.
    pub async fn shutdown(mut self) {
        async {
            if let Err(e) = self.raft.shutdown().await {
                tracing::warn!(error = %e, "raft did not stop cleanly");
            }
            self.tasks.shutdown().await;
            self.transport.shutdown().await;
            self.pool.close().await;
            tracing::info!("consensus stopped");
        }
        .instrument(self.span.clone())
        .await
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Consensus {
    /// Opens (or creates) raft.db, starts raft and the listeners on this node's addresses, and
    /// initializes the cluster with `members` when this node's log is empty (unless `join`).
    pub async fn start<M: Machine>(
        config: ConsensusConfig,
        machine: Arc<M>,
    ) -> Result<(Consensus, ConsensusTask), ConsensusError> {
        let span = tracing::info_span!("consensus", node = config.node_id);
        Self::start_in(config, machine, span.clone())
            .instrument(span)
            .await
    }

    async fn start_in<M: Machine>(
        config: ConsensusConfig,
        machine: Arc<M>,
        span: tracing::Span,
    ) -> Result<(Consensus, ConsensusTask), ConsensusError> {
        let id = config.node_id;
        let own = config
            .members
            .get(&id)
            .filter(|a| !a.is_empty())
            .cloned()
            .ok_or_else(|| {
                ConsensusError::Config(format!("members has no addresses for this node ({id})"))
            })?;
        let raft_config = openraft::Config {
            cluster_name: "halyard".into(),
            heartbeat_interval: millis(config.heartbeat),
            election_timeout_min: millis(config.election_timeout.0),
            election_timeout_max: millis(config.election_timeout.1),
            enable_heartbeat: true,
            enable_elect: true,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;

        let pool = store::open_pool(&config.data_dir).await?;
        let log_store = store::LogStore::new(pool.clone());
        let state_machine = store::StateMachine::open(machine, pool.clone())
            .await
            .map_err(|e| ConsensusError::RaftStorage(e.to_string()))?;

        // Bind before raft starts, so a port problem fails start rather than elections.
        let mut listeners = Vec::new();
        for (link, addr) in own.iter().enumerate() {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => listeners.push((link, l)),
                // A node with one dead interface must still come up on the other.
                Err(e) => tracing::error!(link, %addr, error = %e, "cannot listen on this link"),
            }
        }
        if listeners.is_empty() {
            return Err(ConsensusError::Io(std::io::Error::other(format!(
                "cannot listen on any of {own:?}"
            ))));
        }

        let faults = Faults::default();
        let transport = Arc::new(net::Transport::new(id, faults.clone(), span.clone()));
        let network = net::NetworkFactory {
            transport: transport.clone(),
        };
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let local = Arc::new(Local {
            id,
            raft: raft.clone(),
        });

        let mut tasks = JoinSet::new();
        for (link, listener) in listeners {
            tracing::info!(link, addr = ?listener.local_addr().ok(), "listening");
            tasks.spawn(
                net::serve(listener, link, local.clone(), faults.clone()).instrument(span.clone()),
            );
        }

        let mut metrics = raft.metrics();
        let (leader_tx, leader_rx) = watch::channel(metrics.borrow().current_leader);
        tasks.spawn(
            async move {
                loop {
                    let leader = metrics.borrow_and_update().current_leader;
                    leader_tx.send_if_modified(|current| {
                        if *current == leader {
                            return false;
                        }
                        tracing::info!(?leader, "leader changed");
                        *current = leader;
                        true
                    });
                    // Ends when raft stops (its metrics sender is dropped).
                    if metrics.changed().await.is_err() {
                        break;
                    }
                }
            }
            .instrument(span.clone()),
        );

        let task = ConsensusTask {
            raft: raft.clone(),
            tasks,
            transport: transport.clone(),
            pool,
            span,
        };
        let initialized = match raft.is_initialized().await {
            Ok(v) => v,
            Err(e) => {
                task.shutdown().await;
                return Err(ConsensusError::Raft(e.to_string()));
            }
        };
        if !initialized && !config.join {
            let nodes: BTreeMap<NodeId, BasicNode> = config
                .members
                .iter()
                .map(|(n, addrs)| (*n, BasicNode::new(net::format_addrs(addrs))))
                .collect();
            match raft.initialize(nodes).await {
                Ok(()) => {
                    tracing::info!(members = ?config.members.keys().collect::<Vec<_>>(), "cluster initialized");
                    // One founding member campaigns at once instead of waiting out an election
                    // timeout; if its peers are not up yet, ordinary timeouts take over.
                    if config.members.keys().next() == Some(&id)
                        && let Err(e) = raft.trigger().elect().await
                    {
                        tracing::warn!(error = %e, "cannot trigger the first election");
                    }
                }
                // Another founding member got there first and already replicated to us.
                Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                    tracing::debug!(error = %e, "already initialized by a peer")
                }
                Err(e) => {
                    task.shutdown().await;
                    return Err(ConsensusError::Raft(e.to_string()));
                }
            }
        }

        let consensus = Consensus {
            inner: Arc::new(Inner {
                local,
                transport,
                leader: leader_rx,
                faults,
                nonce_base: random_u64(),
                next_nonce: AtomicU64::new(0),
            }),
        };
        Ok((consensus, task))
    }

    /// Appends `command` through the leader: forwarded over the network when this node is not
    /// the leader, retried across leader changes until `deadline` elapses. Returns the value the
    /// leader's [`Machine::apply`] returned for it. A retried proposal is applied at most once
    /// (it is folded by origin and nonce); one that failed at the deadline may still commit.
    pub async fn propose(
        &self,
        command: serde_json::Value,
        deadline: Duration,
    ) -> Result<serde_json::Value, ConsensusError> {
        let nonce = self
            .inner
            .nonce_base
            .wrapping_add(self.inner.next_nonce.fetch_add(1, Ordering::Relaxed));
        let command = Command {
            origin: self.node_id(),
            nonce,
            command,
        };
        self.route(Op::Write(command), deadline).await
    }

    /// Runs `op` on the leader, wherever it is, until it succeeds, is rejected, or `deadline`.
    async fn route(&self, op: Op, deadline: Duration) -> Result<serde_json::Value, ConsensusError> {
        let until = Instant::now() + deadline;
        let mut leader_rx = self.inner.leader.clone();
        let mut last = String::from("no leader known");
        // A refusing node's idea of the leader, tried before our own (which may lag).
        let mut hint: Option<NodeId> = None;
        loop {
            if self.inner.transport.is_closed() {
                return Err(ConsensusError::Stopped);
            }
            let now = Instant::now();
            if now >= until {
                return Err(ConsensusError::Deadline { deadline, last });
            }
            let remaining = until - now;
            // Writes are retried safely (folded by nonce), so a silent leader costs one attempt,
            // not the whole deadline. A membership change gets all the time there is.
            let attempt = match op {
                Op::Write(_) => remaining.min(WRITE_ATTEMPT),
                _ => remaining,
            };
            let known = *leader_rx.borrow_and_update();
            let leader = hint.take().or(known);
            let outcome = match leader {
                None => Err(Refusal::NotLeader(None)),
                Some(l) if l == self.node_id() => {
                    self.inner.local.execute(op.clone(), attempt).await
                }
                Some(l) => {
                    let addrs = self.addrs_of(l);
                    let call = self.inner.transport.call(
                        l,
                        &addrs,
                        Lane::Control,
                        op.request(attempt),
                        attempt,
                    );
                    match call.await {
                        Ok(Response::Routed(r)) => r,
                        Ok(other) => Err(Refusal::Transient(format!(
                            "unexpected answer from node {l}: {other:?}"
                        ))),
                        Err(e) => Err(Refusal::Transient(e.to_string())),
                    }
                }
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(Refusal::Rejected(msg)) => return Err(ConsensusError::Raft(msg)),
                Err(refusal) => {
                    if let Refusal::NotLeader(Some(h)) = refusal
                        && Some(h) != leader
                    {
                        hint = Some(h);
                    }
                    tracing::debug!(?leader, %refusal, "routing to the leader failed, retrying");
                    last = match leader {
                        Some(l) => format!("node {l}: {refusal}"),
                        None => refusal.to_string(),
                    };
                    // Wake on a leader change, or retry after a short pause.
                    let wait = RETRY_WAIT.min(until.saturating_duration_since(Instant::now()));
                    if let Ok(Err(_)) = tokio::time::timeout(wait, leader_rx.changed()).await {
                        return Err(ConsensusError::Stopped);
                    }
                }
            }
        }
    }

    fn addrs_of(&self, node: NodeId) -> Vec<SocketAddr> {
        let metrics = self.inner.local.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&node)
            .map(|n| net::parse_addrs(&n.addr))
            .unwrap_or_default()
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.local.id
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.inner.local.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id())
    }

    /// Current leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        *self.inner.leader.borrow()
    }

    /// A watch on [`Consensus::leader`].
    pub fn watch_leader(&self) -> watch::Receiver<Option<NodeId>> {
        self.inner.leader.clone()
    }

    pub fn status(&self) -> Status {
        let metrics = self.inner.local.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        Status {
            node_id: self.node_id(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        }
    }

    /// Admits a new node: added as a learner (waiting until it has caught up), then made a
    /// voter (joint consensus inside openraft). Routed to the leader; gives up after 60 s.
    pub async fn add_node(&self, id: NodeId, addrs: Vec<SocketAddr>) -> Result<(), ConsensusError> {
        self.route(Op::Add(id, addrs), ADMIN_DEADLINE)
            .await
            .map(|_| ())
    }

    /// Removes a voter or learner from the cluster. Routed to the leader; gives up after 60 s.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.route(Op::Remove(id), ADMIN_DEADLINE).await.map(|_| ())
    }

    /// The fault-injection layer of this node's transport.
    pub fn faults(&self) -> Faults {
        self.inner.faults.clone()
    }

    /// Asks raft to build a snapshot now (normally it does so every `snapshot_every` entries).
    pub async fn trigger_snapshot(&self) -> Result<(), ConsensusError> {
        self.inner
            .local
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))
    }

    /// Asks raft to purge the log up to `upto` (only what a snapshot already covers is purged).
    pub async fn purge_log(&self, upto: u64) -> Result<(), ConsensusError> {
        self.inner
            .local
            .raft
            .trigger()
            .purge_log(upto)
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))
    }

    /// The index of the latest snapshot, and the last purged index, as raft reports them.
    pub fn snapshot_state(&self) -> (Option<u64>, Option<u64>) {
        let metrics = self.inner.local.raft.metrics();
        let m = metrics.borrow();
        (m.snapshot.map(|l| l.index), m.purged.map(|l| l.index))
    }
}
