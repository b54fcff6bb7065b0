//! The cluster side of the core: proposals on their way to the consensus log,
//! and the application of committed commands (inputs, locks, faults, node
//! losses, membership) to this node's replica.

use super::*;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::{AdminState, AvailabilityState};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::checkpoint::CheckpointError;
use crate::cluster::{ClusterClock, ClusterView, Command};
use crate::crim::Input;
use crate::events::EventKind;
use crate::replicated::Change;
use crate::tasks::Tasks;

use crate::protocol::unix_ns;

/// A command on its way to the consensus log.
#[derive(Debug)]
pub(super) struct Proposal {
    /// Proposals of an older generation are dropped: the node restarted
    /// its components since (after losing quorum), so they are stale.
    pub(super) generation: u64,
    pub(super) command: Command,
    /// Operator requests get the cluster's answer; internal inputs are
    /// retried until committed.
    pub(super) reply: Option<oneshot::Sender<Result<serde_json::Value, String>>>,
}

/// The cluster side of the core task.
#[derive(Debug)]
pub(super) struct ClusterRt {
    pub(super) consensus: halyard_consensus::Consensus,
    pub(super) view: ClusterView,
    pub(super) hosts: BTreeMap<String, String>,
    pub(super) me: String,
    pub(super) clock: ClusterClock,
    /// This process's start-up announcement (`NodeLost` with this boot id).
    /// Log entries before it were decided before this process started:
    /// they rebuild the replica's state and nothing is executed for them.
    pub(super) boot: u64,
    pub(super) announced: bool,
    pub(super) proposals: mpsc::Sender<Proposal>,
    pub(super) generation: Arc<std::sync::atomic::AtomicU64>,
    /// Primaries given up after losing the majority.
    pub(super) fenced: bool,
    /// Master-hosted components being started (not again until they register).
    pub(super) starting: HashMap<String, Instant>,
    /// The core's tasks (a proposal's answer waits in one).
    pub(super) tasks: Tasks,
}

impl ClusterRt {
    pub(super) fn replaying(&self) -> bool {
        !self.announced
    }

    pub(super) fn propose(&self, command: Command) {
        self.propose_with(command, None);
    }

    pub(super) fn propose_with(
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
    pub(super) fn propose_answered<E: Send + 'static>(
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

    pub(super) fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Proposes commands in order; internal inputs are retried until the
/// cluster commits them or a newer generation supersedes them.
pub(super) async fn propose_loop(
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

pub(super) fn apply_error(e: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({"error": e.to_string()})
}

pub(super) fn apply_ok() -> serde_json::Value {
    serde_json::json!({"ok": true})
}

/// The cluster's answer as a result.
pub(super) fn answer(v: Result<serde_json::Value, String>) -> Result<(), String> {
    let v = v?;
    match v.get("error").and_then(serde_json::Value::as_str) {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

impl CoreState {
    /// Applies one committed command (cluster mode).
    pub(super) async fn apply(
        &mut self,
        index: u64,
        value: serde_json::Value,
    ) -> serde_json::Value {
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
            Command::Checkpoint {
                si,
                writer,
                key,
                value,
            } => match self
                .core
                .checkpoints
                .apply_write(&si, &writer, &key, &value)
            {
                Ok(seq) => serde_json::json!({"ok": true, "seq": seq}),
                Err(CheckpointError::Superseded(owner)) => {
                    serde_json::json!({"superseded": owner})
                }
                Err(e) => apply_error(e),
            },
            Command::CheckpointFence { si, owner } => {
                let (seq, entries) = self.core.checkpoints.apply_fence(&si, &owner);
                serde_json::json!({"ok": true, "seq": seq, "entries": entries})
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
            Command::Replicated(change) => match if self.restoring {
                Ok(())
            } else {
                self.replicated.precondition(&change)
            } {
                Err(e) => apply_error(e),
                Ok(()) => {
                    self.keep_replicated(index, change);
                    apply_ok()
                }
            },
        };
        if let Some(rt) = &self.cluster {
            rt.view.applied();
        }
        out
    }

    /// Keeps a replicated change for the model's readers (bounded by its
    /// retention) and announces it.
    pub(super) fn keep_replicated(&mut self, index: u64, change: Change) {
        self.core.events.publish(EventKind::Replicated {
            topic: change.topic.clone(),
            body: change.body.clone(),
        });
        self.replicated.push(index, change);
    }

    pub(super) fn lock_conflict(&self, subject: &str) -> Option<String> {
        self.locks
            .iter()
            .find(|(s, _)| crate::cluster::overlaps(s, subject))
            .map(|(s, h)| format!("{s} is locked by {h}, which is still running"))
    }

    pub(super) fn apply_lock(&mut self, c: Command) -> serde_json::Value {
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
    pub(super) async fn node_lost(&mut self, node: &str, restart: bool, reason: &str) {
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
            // Fresh incarnations: leases may flow again.
            self.core
                .lease_gate
                .store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(rt) = &self.cluster {
                rt.propose(Command::NodeUp { node: me });
            }
        }
    }

    pub(super) fn fault_known(kind: &Kind, fault: &str) -> bool {
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
    pub(super) async fn apply_fault(&mut self, component: &str, fault: &str) -> serde_json::Value {
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

    pub(super) async fn membership(&mut self, m: Membership) {
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
                    // Nothing to give up: leases may flow again (the CMM
                    // closed the gate when it saw the majority go).
                    self.core
                        .lease_gate
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                tracing::warn!(components = ?active, "lost contact with the majority: giving up primaries");
                for c in &active {
                    self.demote_local(c);
                    self.record(c, "fenced: lost contact with the majority".into());
                }
                // The gate stays closed (the CMM closed it before asking
                // for this) until the node's own loss restarts them.
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
}
