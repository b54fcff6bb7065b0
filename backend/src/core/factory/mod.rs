//! The component factory: one supervisor per component kind (process,
//! HA-aware session, proxy), each fed by a lane the core never waits on.

pub(super) mod process;
pub(super) mod proxy;
pub(super) mod session;

use super::*;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::{AvailabilityState, CheckpointMode};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::events::EventService;
use crate::health::{Audit, AuditCheck, run_audit};
use crate::lane::{Lane, Supersedes};
use crate::remote::RemoteShell;
use crate::repo::Repository;
use crate::tasks::Tasks;

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

/// Commands to a process supervisor.
#[derive(Debug)]
pub(super) enum SupCmd {
    Start(u32),
    Stop,
    /// A proxy's role for an incarnation.
    Assign(u32, AvailabilityState),
    /// A proxy gives up its role without stopping anything (fencing,
    /// the agent's shutdown).
    Release,
}

/// Checkpoint modes by component, read by the sessions of HA-aware
/// components (components come and go with hot swap).
pub(super) type Modes = Arc<std::sync::RwLock<HashMap<String, CheckpointMode>>>;

/// What the core needs to run a component's tasks (supervisor, audit),
/// and the tasks of components added at run time, each with its own stop.
#[derive(Debug)]
pub(super) struct Runner {
    pub(super) node: String,
    pub(super) socket: PathBuf,
    pub(super) stop_grace: Duration,
    pub(super) modes: Modes,
    /// Owns every task the core spawns (shared with `Running`).
    pub(super) tasks: Tasks,
    /// The core's stop, for the tasks of configured components.
    pub(super) stop: watch::Receiver<bool>,
    /// The incarnation holding each proxy's primary role, shared by its
    /// supervisor and its audit (kept so a respawned supervisor shares it).
    pub(super) primaries: HashMap<String, Arc<std::sync::atomic::AtomicU32>>,
    /// Stops of components added at run time.
    pub(super) stops: HashMap<String, watch::Sender<bool>>,
    /// Proxies reach their non-peer nodes through it.
    pub(super) remote: Option<Arc<dyn RemoteShell>>,
    pub(super) events: EventService,
    pub(super) repo: Repository,
    /// Configured components another node hosts: not audited here.
    pub(super) elsewhere: std::collections::HashSet<String>,
}

impl Runner {
    /// Spawns a component's supervisor (processes, HA-aware daemons and
    /// proxies) and health audit; returns the supervisor's handle.
    pub(super) fn spawn_tasks(
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
    pub(super) fn stop_of(&self, component: &str) -> watch::Receiver<bool> {
        self.stops
            .get(component)
            .map_or_else(|| self.stop.clone(), watch::Sender::subscribe)
    }

    /// A panic of one of the component's tasks goes to the core as a
    /// failure of the component.
    pub(super) fn on_panic(
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

    pub(super) fn spawn_supervisor(
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
    pub(super) fn spawn_audit(
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
