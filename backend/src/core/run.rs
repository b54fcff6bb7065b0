//! Start-up of the core and its run loop: one task owns CRIM and the CEC
//! and serves every message in order.

use super::*;

use std::collections::HashMap;
use std::sync::Arc;

use halyard_cluster_model::model::AdminState;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::asr::Asr;
use crate::cec::{Cec, ErrorKind, ErrorReport};
use crate::checkpoint::CheckpointService;
use crate::cluster::{Applied, ClusterClock, Command, WireInput, WireReconfigure, wall_ms};
use crate::crim::{Crim, CrimError, Input, SgConfig};
use crate::events::{EventKind, EventService};
use crate::health::{BlackBox, Watchdog, run_monitor};
use crate::lane::Lane;
use crate::naming::NamingService;
use crate::replicated::ReplicatedLog;
use crate::repo::Repository;
use crate::tasks::Tasks;

use crate::protocol::unix_ns;

/// Journal records queued for the writer at most.
const JOURNAL_QUEUE: usize = 16_384;
/// Journal records written in one transaction at most.
const JOURNAL_BATCH: usize = 1_024;
/// At most one warning of dropped journal records per interval.
const JOURNAL_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl HaCore {
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

    pub(super) async fn start_node(
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
            // In a cluster a component holds no role beyond a lease it was
            // given: until the CMM gives the first, the lease is over (a
            // primary registering before it, or while no lease flows, is
            // quiesced rather than primary for good).
            lease: Arc::new(watch::channel(cluster.is_some().then_some(0)).0),
            lease_gate: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        let tasks = Tasks::new();

        // Journal writer: decisions are recorded without slowing decisions,
        // what queued up meanwhile in one transaction (one fsync per batch,
        // not per record: a start of 10,000 components queues ~60,000).
        let (journal_tx, mut journal_rx) =
            mpsc::channel::<(String, String, serde_json::Value)>(JOURNAL_QUEUE);
        let jrepo = repo.clone();
        tasks.spawn("journal writer", async move {
            let mut batch = Vec::with_capacity(JOURNAL_BATCH);
            while journal_rx.recv_many(&mut batch, JOURNAL_BATCH).await > 0 {
                if let Err(e) = jrepo.journal_many(std::mem::take(&mut batch)).await {
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
                core.lease.subscribe(),
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
            journal_dropped: (0, None),
            self_tx: tx.clone(),
            last_recovery: None,
            stopping: false,
            groups: config.groups.clone(),
            cluster: cluster_rt,
            replicated: ReplicatedLog::default(),
            restoring: false,
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

impl CoreState {
    /// Times a planned switch-over (the proposer decides the instant, so
    /// every node applies the same one) when its 2N pair takes timed
    /// assignments.
    pub(super) fn schedule(&self, msg: Msg) -> Msg {
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
pub(super) fn fresh_crim(groups: &[SgConfig], locked: &[String]) -> Crim {
    let mut crim = Crim::new(groups.to_vec());
    for c in locked {
        crim.set_initial_admin(c, AdminState::Locked);
    }
    crim
}

impl CoreState {
    pub(super) async fn run(
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
                            // Until `Restored`, the commands are a
                            // snapshot's: see `apply`.
                            self.restoring = true;
                            let _ = done.send(());
                        }
                        Some(Applied::Restored) => self.restoring = false,
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
                        let r = self.replicated.precondition(&change);
                        if r.is_ok() {
                            let index = self.replicated.next_local();
                            self.keep_replicated(index, change);
                        }
                        let _ = reply.send(r.map_err(CoreError::Refused));
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
                    let mut views = self.crim.components();
                    // A running incarnation's pid (the naming service keeps
                    // the last one started, so only while it is enabled).
                    for v in views
                        .iter_mut()
                        .filter(|v| v.oper == halyard_cluster_model::model::OperState::Enabled)
                    {
                        v.pid = self
                            .core
                            .naming
                            .resolve(&format!("component/{}", v.name))
                            .and_then(|p| p.strip_prefix("pid:")?.parse().ok());
                    }
                    let _ = reply.send(views);
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

    pub(super) fn publish(&mut self, kind: EventKind) {
        // Replayed decisions were announced by this node's earlier life.
        if self.replaying() {
            return;
        }
        let e = self.core.events.publish(kind);
        let body = serde_json::to_value(&*e).unwrap_or_default();
        // A full journal queue drops the record, never blocks a decision;
        // the drops are reported once per interval with their count.
        if self
            .journal
            .try_send((
                e.kind.name().to_string(),
                e.kind.subject().to_string(),
                body,
            ))
            .is_err()
        {
            let (dropped, last) = &mut self.journal_dropped;
            *dropped += 1;
            if last.is_none_or(|t| t.elapsed() >= JOURNAL_WARN_EVERY) {
                tracing::warn!(
                    dropped = *dropped,
                    "journal queue full: events not recorded in the history"
                );
                *dropped = 0;
                *last = Some(std::time::Instant::now());
            }
        }
    }

    pub(super) fn record(&mut self, component: &str, text: String) {
        if let Some(b) = self.blackboxes.get_mut(component) {
            b.record(text);
        }
    }
}
