//! Effects of decisions on this node: assignments, starts and stops,
//! fencing, simulated faults, and the ordered writer of persisted records.

use super::*;

use std::process::Stdio;
use std::time::Duration;

use halyard_cluster_model::model::{
    AvailabilityState, CheckpointMode, PerceivedSeverity, ProbableCause,
};
use tokio::time::Instant;

use crate::asr::Asr;
use crate::cec::{ErrorKind, ErrorReport};
use crate::crim::{Effect, Input};
use crate::events::EventKind;
use crate::lane::Supersedes;
use crate::protocol::ToComponent;
use crate::repo::Repository;

use crate::protocol::unix_ns;

/// A persisted record the core writes off its task. One writer task (owned
/// by the core's task set) writes them in the order the core decided them,
/// so an incident's close never lands before its open (a detached task per
/// write could, leaving the incident open forever) and a component's
/// incarnations are stored in order.
pub(super) enum Record {
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
    pub(super) async fn write(self, asr: &Asr, repo: &Repository) {
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
pub(super) const HANDOVER_DEADLINE: Duration = Duration::from_secs(3);

impl CoreState {
    /// Tells a component of this node to give up its roles at once (the
    /// node lost the majority), without waiting for CRIM.
    pub(super) fn demote_local(&mut self, component: &str) {
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

    pub(super) async fn effect(&mut self, e: Effect) {
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

    pub(super) fn assign(
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
                    let ok = crate::spawn::command(prog)
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
    pub(super) async fn start_component(&mut self, name: &str) {
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

    pub(super) async fn fault(&mut self, name: &str, fault: &str) -> Result<(), CoreError> {
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
                    // 0, -1 and the like are not one process: kill(2) takes
                    // them as our own process group, or every process.
                    .filter(|pid| *pid > 1)
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
                self.hardware_alarm(name, cause, Some((PerceivedSeverity::Critical, text)));
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
                    let known = self.faults.remove(&r).is_some();
                    // In a cluster the unit may have failed under another
                    // host (a master since lost): its alarms, kept by every
                    // node, clear all the same.
                    if known || (self.cluster.is_some() && r == name) {
                        self.hardware_alarm(&r, ProbableCause::ReplaceableUnitProblem, None);
                    }
                    if known {
                        self.start_component(&r).await;
                    }
                }
                Ok(())
            }
            _ => Err(unknown()),
        }
    }

    /// A hardware alarm raised (or, without `raise`, cleared) by the node
    /// hosting the unit. In a cluster it is a replicated change: every node
    /// shows it, and it outlives the host (a master's shelf hardware moves
    /// to the next master, which clears it on repair); a clear clears the
    /// unit's every hardware cause. Alone, it is an event like any other.
    fn hardware_alarm(
        &mut self,
        resource: &str,
        cause: ProbableCause,
        raise: Option<(PerceivedSeverity, &str)>,
    ) {
        let Some(rt) = &self.cluster else {
            let (severity, text) = raise.unwrap_or((PerceivedSeverity::Cleared, "repaired"));
            self.publish(EventKind::alarm(
                resource,
                cause,
                severity,
                text,
                raise.is_none(),
            ));
            return;
        };
        let causes = match raise {
            Some(_) => vec![cause],
            None => vec![
                ProbableCause::ReplaceableUnitProblem,
                ProbableCause::CoolingFanFailure,
                ProbableCause::PowerProblem,
            ],
        };
        for c in causes {
            if let Some(change) = factory::proxy::alarm_change(resource, c, raise) {
                let (reply, _) = tokio::sync::oneshot::channel::<Result<(), CoreError>>();
                rt.propose_answered(Command::Replicated(change), reply, CoreError::Refused);
            }
        }
    }

    pub(super) fn descendants(&self, name: &str) -> Vec<String> {
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
    pub(super) async fn shutdown_components(&mut self) {
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
