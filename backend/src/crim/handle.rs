//! One input at a time: what a registration, an acknowledgement, a
//! failure (with the escalation ladder), an operator's request or a lost
//! node changes in a component's state, before the group is reconciled.

use halyard_cluster_model::model::{
    AdminState, AvailabilityState, OperState, PerceivedSeverity, ProbableCause, RecoveryAction,
};
use tokio::time::Instant;

use super::{Crim, CrimError, Effect, Input, ladder};
use crate::events::EventKind;

impl Crim {
    /// Handles one input at time `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Result<Vec<Effect>, CrimError> {
        let mut fx = Vec::new();
        let name = match &input {
            Input::Registered { component, .. }
            | Input::Acked { component, .. }
            | Input::Failed { component, .. }
            | Input::SetAdmin { component, .. }
            | Input::SwitchOver { component, .. }
            | Input::Restart { component }
            | Input::RequestOffline { component, .. }
            | Input::ContainerFailed { component, .. }
            | Input::RequestOnline { component }
            | Input::Lost { component, .. } => component.clone(),
        };
        let comp = self
            .comps
            .get_mut(&name)
            .ok_or_else(|| CrimError::UnknownComponent(name.clone()))?;
        let sg = comp.sg.clone();
        let reason: String;
        // The container whose failure takes this component down.
        let mut container_failed = None;
        match input {
            Input::Registered { incarnation, .. } => {
                comp.incarnation = comp.incarnation.max(incarnation);
                comp.up = true;
                comp.oper = OperState::Enabled;
                comp.acked = None;
                comp.needs_assign = true;
                fx.push(Effect::Event(EventKind::OperChanged {
                    component: name.clone(),
                    enabled: true,
                    reason: "registered".into(),
                }));
                // Restarted in place: its assignments were kept for it.
                reason = if std::mem::take(&mut comp.keep_role) {
                    "restarted in place".into()
                } else {
                    "registered".into()
                };
            }
            Input::Acked { state, .. } => {
                if state == comp.avail {
                    comp.acked = Some(state);
                }
                // The old primary of a 2N switch-over stepped down: now
                // its standby may take over.
                let g = self.sgs.get_mut(&sg).expect("group");
                match &mut g.handover {
                    Some(h) if h.old == name && state == AvailabilityState::Secondary => {
                        h.acked = true;
                    }
                    _ => return Ok(fx),
                }
                reason = "switch-over: the old primary stepped down".into();
            }
            Input::Failed {
                incarnation,
                reason: why,
                escalated,
                ..
            } => {
                if incarnation < comp.incarnation || (!comp.up && !comp.keep_role) {
                    return Err(CrimError::Stale {
                        component: name,
                        got: incarnation,
                        current: comp.incarnation,
                    });
                }
                let cfg = self.sgs[&sg].cfg.clone();
                let comp = self.comps.get_mut(&name).expect("component");
                comp.failures
                    .retain(|t| now.saturating_duration_since(*t) <= cfg.probation);
                comp.failures.push(now);
                let k = comp.failures.len() as u32 + u32::from(escalated);
                let action = ladder(&cfg, k);
                comp.up = false;
                comp.oper = OperState::Disabled;
                comp.acked = None;
                let why = format!(
                    "{why} (failure {k} within {}s probation)",
                    cfg.probation.as_secs()
                );
                fx.push(Effect::Event(EventKind::OperChanged {
                    component: name.clone(),
                    enabled: false,
                    reason: why.clone(),
                }));
                fx.push(Effect::Event(EventKind::recovery(&name, action, &why)));
                match action {
                    RecoveryAction::SoftReset | RecoveryAction::HotRestart => {
                        comp.keep_role = true;
                        fx.push(Effect::Restart {
                            component: name.clone(),
                            reason: why.clone(),
                        });
                        // Keeps its assignments; shown off-line while restarting.
                        if comp.avail != AvailabilityState::OffLine {
                            let from = comp.avail;
                            comp.avail = AvailabilityState::OffLine;
                            fx.push(Effect::Event(EventKind::state_changed(
                                &name,
                                from,
                                AvailabilityState::OffLine,
                                &why,
                            )));
                        }
                        return Ok(fx);
                    }
                    RecoveryAction::FailOver => {
                        fx.push(Effect::Restart {
                            component: name.clone(),
                            reason: why.clone(),
                        });
                    }
                    RecoveryAction::DisableComponent | RecoveryAction::NoRecovery => {
                        comp.disabled = true;
                        fx.push(Effect::Stop {
                            component: name.clone(),
                            reason: why.clone(),
                        });
                        fx.push(Effect::Event(EventKind::alarm(
                            &name,
                            ProbableCause::SoftwareError,
                            PerceivedSeverity::Major,
                            &format!("component disabled after repeated failures: {why}"),
                            false,
                        )));
                    }
                }
                reason = why;
            }
            Input::SetAdmin { admin, .. } => {
                let was = comp.admin;
                comp.admin = admin;
                if admin == AdminState::Unlocked && comp.disabled {
                    // Unlocking a disabled component is the operator's repair.
                    comp.disabled = false;
                    comp.failures.clear();
                    fx.push(Effect::Restart {
                        component: name.clone(),
                        reason: "unlocked after repair".into(),
                    });
                    fx.push(Effect::Event(EventKind::alarm(
                        &name,
                        ProbableCause::SoftwareError,
                        PerceivedSeverity::Cleared,
                        "component repaired",
                        true,
                    )));
                }
                if admin == AdminState::Unlocked
                    && was == AdminState::Locked
                    && comp.incarnation == 0
                    && !comp.up
                {
                    // Configured or inserted locked, so never started.
                    fx.push(Effect::Restart {
                        component: name.clone(),
                        reason: "unlocked: first start".into(),
                    });
                }
                reason = format!("administrative state {was} -> {admin}");
            }
            Input::SwitchOver { at, .. } => {
                let g = &self.sgs[&sg];
                let has_standby = g.sis.values().any(|a| {
                    a.active.as_deref() == Some(name.as_str())
                        && a.standby
                            .iter()
                            .any(|s| self.comps.get(s).is_some_and(|c| c.up))
                });
                if !has_standby {
                    return Err(CrimError::CannotSwitchOver {
                        component: name,
                        reason: "it is not primary with a ready standby".into(),
                    });
                }
                let c = self.comps.get_mut(&name).expect("component");
                c.demote = true;
                c.switch_at = at;
                reason = "operator switch-over".into();
            }
            Input::Restart { .. } => {
                comp.up = false;
                comp.oper = OperState::Disabled;
                fx.push(Effect::Restart {
                    component: name.clone(),
                    reason: "operator restart".into(),
                });
                reason = "operator restart".into();
            }
            Input::RequestOffline { reason: why, .. } => {
                comp.offline_requested = true;
                reason = format!("component asked to go off-line: {why}");
            }
            Input::ContainerFailed { container, .. } => {
                comp.offline_requested = true;
                reason = format!("container {container} failed");
                container_failed = Some(container);
            }
            Input::RequestOnline { .. } => {
                comp.offline_requested = false;
                reason = "component asked to come back on-line".into();
            }
            Input::Lost { reason: why, .. } => {
                let was_up = comp.up || comp.keep_role;
                comp.up = false;
                comp.keep_role = false;
                comp.oper = OperState::Disabled;
                comp.acked = None;
                if was_up {
                    fx.push(Effect::Event(EventKind::OperChanged {
                        component: name.clone(),
                        enabled: false,
                        reason: why.clone(),
                    }));
                }
                reason = why;
            }
        }
        let before = fx.len();
        self.reconcile(&sg, &reason, &mut fx);
        // Said typed, for the agent's secondary alarm: this input took the
        // component off-line.
        if let Some(container) = container_failed {
            let offline = AvailabilityState::OffLine.yang_name();
            let went_offline = fx[before..].iter().any(|e| {
                matches!(e, Effect::Event(EventKind::StateChanged { component, to, .. })
                    if *component == name && to == offline)
            });
            if went_offline {
                fx.push(Effect::Event(EventKind::ContainerFailed {
                    component: name.clone(),
                    container,
                }));
            }
        }
        if let Some(c) = self.comps.get_mut(&name) {
            c.demote = false;
            c.switch_at = None;
        }
        Ok(fx)
    }
}
