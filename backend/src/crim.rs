//! CRIM, the component role and instance manager: the only decider of
//! availability states and assignments.
//!
//! A pure state machine: [`Crim::handle`] takes one input and the current
//! time and returns effects (assign a role, restart, stop, publish an
//! event). The runtime executes the effects; tests replay inputs and check
//! effects, with no processes and no clock.
//!
//! After every input CRIM reconciles each affected service group: it drops
//! assignments of components that cannot serve, gives every service
//! instance an active component (promoting its standby first: that is the
//! fail-over), fills standbys per the redundancy model, and moves every
//! component to the availability state its assignments imply, along the
//! transitions of FIG. 5 only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use halyard_cluster_model::model::{
    AdminState, AssignmentRole, AvailabilityState, OperState, PerceivedSeverity, ProbableCause,
    RecoveryAction, RedundancyModel, StandbyMode,
};
use tokio::time::Instant;

use crate::events::EventKind;
use crate::state::{check_transition, path};

/// A service group's configuration (from the repository / config file).
#[derive(Debug, Clone, PartialEq)]
pub struct SgConfig {
    pub name: String,
    pub model: RedundancyModel,
    pub standby: StandbyMode,
    /// Wanted secondaries (N+M: M; 2N: 1).
    pub preferred_secondaries: u32,
    /// The first step of the escalation ladder.
    pub first_recovery: RecoveryAction,
    /// Failures allowed within `probation` before escalating.
    pub max_restarts: u32,
    pub probation: Duration,
    /// Member components, in preference order.
    pub members: Vec<String>,
    /// Service instances.
    pub sis: Vec<String>,
}

/// An input to CRIM.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The component (re)started and is ready for a role.
    Registered {
        component: String,
        incarnation: u32,
    },
    /// The component acknowledged its role.
    Acked {
        component: String,
        state: AvailabilityState,
    },
    /// A correlated error report: the component failed.
    Failed {
        component: String,
        incarnation: u32,
        reason: String,
        /// The CEC saw repeated reports: skip a rung of the ladder.
        escalated: bool,
    },
    /// Operator (or COpCo) requests, and a component's own request.
    SetAdmin {
        component: String,
        admin: AdminState,
    },
    SwitchOver {
        component: String,
        /// A timed hand-over (unix time, ns): the old primary stays primary
        /// until this instant and its standby takes over at it, so the
        /// pair has one primary at every instant. `None`: the old primary
        /// steps down at once and the standby follows its acknowledgement.
        at: Option<u64>,
    },
    Restart {
        component: String,
    },
    /// The component asks to go off-line (e.g. to run diagnostics).
    RequestOffline {
        component: String,
        reason: String,
    },
    RequestOnline {
        component: String,
    },
    /// The component's container (a FRU, a node) failed: it cannot serve
    /// and goes off-line with it (the core's cascade); `RequestOnline`
    /// brings it back when the container recovers.
    ContainerFailed {
        component: String,
        container: String,
    },
    /// The component is gone with its node (the node died, or was cut off
    /// from the majority): its assignments move elsewhere. Nothing is
    /// restarted here: the node restarts its components when it returns,
    /// and they register as new incarnations.
    Lost {
        component: String,
        reason: String,
    },
}

/// What CRIM wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Tell the component its role and service instances.
    Assign {
        component: String,
        state: AvailabilityState,
        active: Vec<String>,
        standby: Vec<String>,
        /// Take the state at this instant (unix time, ns) rather than at
        /// once: the two halves of a timed 2N hand-over.
        at: Option<u64>,
    },
    /// Restart the component (a new incarnation).
    Restart { component: String, reason: String },
    /// Stop the component and keep it stopped.
    Stop { component: String, reason: String },
    /// Publish (and journal) an event.
    Event(EventKind),
}

/// Refusals of operator requests and bad inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrimError {
    #[error("unknown component {0}")]
    UnknownComponent(String),
    #[error("component {component} cannot switch over: {reason}")]
    CannotSwitchOver { component: String, reason: String },
    #[error("stale report about incarnation {got} of {component}, now {current}")]
    Stale {
        component: String,
        got: u32,
        current: u32,
    },
    #[error(transparent)]
    Illegal(#[from] crate::state::IllegalTransition),
    /// Refused by the cluster's CRIM (the text of its error), or not
    /// committed by the cluster.
    #[error("{0}")]
    Refused(String),
    /// A run-time change of groups and components that does not fit the
    /// current configuration (nothing of it was applied).
    #[error("reconfiguration refused: {0}")]
    Reconfig(String),
}

/// A component joining or leaving a service group at run time (hot swap),
/// with the service instances that come and go with it (a hardware group
/// has one per member).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupMember {
    pub group: String,
    pub component: String,
    pub sis: Vec<String>,
}

/// A run-time change of CRIM's groups and components: FRUs inserted and
/// removed. Checked whole, then applied whole; components that leave are
/// stopped and their service instances move to the remaining members.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconfig {
    /// New groups; their members are new components.
    pub add_groups: Vec<SgConfig>,
    /// New components joining existing groups.
    pub join: Vec<GroupMember>,
    /// Components leaving their groups (the groups stay).
    pub leave: Vec<GroupMember>,
    /// Groups removed with their members.
    pub remove_groups: Vec<String>,
    /// New components that start administratively locked: not started,
    /// never assigned, until an operator unlocks them.
    pub locked: Vec<String>,
}

impl Reconfig {
    /// Components this change adds.
    pub fn added(&self) -> Vec<String> {
        self.add_groups
            .iter()
            .flat_map(|g| g.members.iter().cloned())
            .chain(self.join.iter().map(|j| j.component.clone()))
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Comp {
    sg: String,
    admin: AdminState,
    oper: OperState,
    avail: AvailabilityState,
    incarnation: u32,
    /// Registered and not failed since.
    up: bool,
    /// Restarting in place: keeps its assignments while it restarts.
    keep_role: bool,
    /// Asked to go off-line by itself.
    offline_requested: bool,
    /// Disabled by escalation: not restarted, not assigned.
    disabled: bool,
    /// Avoid giving it active assignments (switch-over in progress).
    demote: bool,
    /// The instant of the timed hand-over it was asked for, if any.
    switch_at: Option<u64>,
    /// Told to step down at this instant (unix ns): primary until then.
    primary_until: Option<u64>,
    failures: Vec<Instant>,
    acked: Option<AvailabilityState>,
    /// A new incarnation registered: it must be told its role even if the
    /// role did not change.
    needs_assign: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct SiAssign {
    active: Option<String>,
    standby: Vec<String>,
}

#[derive(Debug, Clone)]
struct Sg {
    cfg: SgConfig,
    sis: BTreeMap<String, SiAssign>,
    /// A 2N switch-over in progress.
    handover: Option<Handover>,
}

/// A 2N switch-over in progress.
#[derive(Debug, Clone, PartialEq)]
struct Handover {
    old: String,
    new: String,
    /// The old primary acknowledged stepping down (or, when timed, that
    /// it will step down at `at`).
    acked: bool,
    /// The instant (unix time, ns) of a timed hand-over.
    at: Option<u64>,
}

/// The decider. Owned by one task: decisions are single-writer.
#[derive(Debug, Default)]
pub struct Crim {
    sgs: BTreeMap<String, Sg>,
    comps: BTreeMap<String, Comp>,
}

/// A component's view, for reads and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentView {
    pub name: String,
    pub sg: String,
    pub admin: AdminState,
    pub oper: OperState,
    pub avail: AvailabilityState,
    pub incarnation: u32,
    pub active: Vec<String>,
    pub standby: Vec<String>,
    pub acked: Option<AvailabilityState>,
    /// A timed step-down not yet due: it still serves as primary until
    /// this instant (unix ns), though its assigned state is already the
    /// new one.
    pub primary_until: Option<u64>,
}

impl Comp {
    fn new(sg: &str, admin: AdminState) -> Self {
        Comp {
            sg: sg.to_string(),
            admin,
            oper: OperState::Disabled,
            avail: AvailabilityState::OffLine,
            incarnation: 0,
            up: false,
            keep_role: false,
            offline_requested: false,
            disabled: false,
            demote: false,
            switch_at: None,
            primary_until: None,
            failures: Vec::new(),
            acked: None,
            needs_assign: false,
        }
    }
}

impl Crim {
    pub fn new(groups: Vec<SgConfig>) -> Self {
        let mut crim = Crim::default();
        for cfg in groups {
            for m in &cfg.members {
                crim.comps
                    .insert(m.clone(), Comp::new(&cfg.name, AdminState::Unlocked));
            }
            let sis = cfg
                .sis
                .iter()
                .map(|s| (s.clone(), SiAssign::default()))
                .collect();
            crim.sgs.insert(
                cfg.name.clone(),
                Sg {
                    cfg,
                    sis,
                    handover: None,
                },
            );
        }
        crim
    }

    pub fn component(&self, name: &str) -> Option<ComponentView> {
        let c = self.comps.get(name)?;
        let sg = &self.sgs[&c.sg];
        Some(ComponentView {
            name: name.to_string(),
            sg: c.sg.clone(),
            admin: c.admin,
            oper: c.oper,
            avail: c.avail,
            incarnation: c.incarnation,
            active: sg
                .sis
                .iter()
                .filter(|(_, a)| a.active.as_deref() == Some(name))
                .map(|(s, _)| s.clone())
                .collect(),
            standby: sg
                .sis
                .iter()
                .filter(|(_, a)| a.standby.iter().any(|x| x == name))
                .map(|(s, _)| s.clone())
                .collect(),
            acked: c.acked,
            primary_until: c.primary_until,
        })
    }

    pub fn components(&self) -> Vec<ComponentView> {
        self.comps
            .keys()
            .filter_map(|n| self.component(n))
            .collect()
    }

    /// (active, standbys) of a service instance.
    pub fn si(&self, si: &str) -> Option<(Option<String>, Vec<String>)> {
        self.sgs
            .values()
            .find_map(|g| g.sis.get(si))
            .map(|a| (a.active.clone(), a.standby.clone()))
    }

    /// Whether `component` is the old primary of a 2N switch-over that
    /// has not acknowledged stepping down yet.
    pub fn stepping_down(&self, component: &str) -> bool {
        self.comps
            .get(component)
            .and_then(|c| self.sgs.get(&c.sg))
            .and_then(|g| g.handover.as_ref())
            .is_some_and(|h| h.old == component && !h.acked)
    }

    pub fn group(&self, name: &str) -> Option<&SgConfig> {
        self.sgs.get(name).map(|g| &g.cfg)
    }

    /// Sets the administrative state a configured component starts in
    /// (before any input): a locked one is not started until unlocked.
    pub fn set_initial_admin(&mut self, component: &str, admin: AdminState) {
        if let Some(c) = self.comps.get_mut(component) {
            c.admin = admin;
        }
    }

    /// Applies a run-time change of groups and components (hot swap), or
    /// refuses it whole. Components that leave are stopped; what they
    /// served moves to the remaining members of their group.
    pub fn reconfigure(&mut self, r: &Reconfig, reason: &str) -> Result<Vec<Effect>, CrimError> {
        self.check_reconfig(r)?;
        let mut fx = Vec::new();
        let mut touched = BTreeSet::new();
        // Leaving first: a slot can be emptied and refilled in one change.
        for l in &r.leave {
            let Some(sg) = self.sgs.get_mut(&l.group) else {
                continue;
            };
            sg.cfg.members.retain(|m| *m != l.component);
            sg.cfg.sis.retain(|s| !l.sis.contains(s));
            let gone: Vec<(String, SiAssign)> = l
                .sis
                .iter()
                .filter_map(|s| sg.sis.remove(s).map(|a| (s.clone(), a)))
                .collect();
            fx.extend(unassigned(&gone));
            self.drop_component(&l.component, reason, &mut fx);
            touched.insert(l.group.clone());
        }
        for g in &r.remove_groups {
            let Some(sg) = self.sgs.remove(g) else {
                continue;
            };
            let gone: Vec<(String, SiAssign)> = sg.sis.into_iter().collect();
            fx.extend(unassigned(&gone));
            for m in &sg.cfg.members {
                self.drop_component(m, reason, &mut fx);
            }
            touched.remove(g);
        }
        let admin = |c: &str| {
            if r.locked.iter().any(|l| l == c) {
                AdminState::Locked
            } else {
                AdminState::Unlocked
            }
        };
        for cfg in &r.add_groups {
            for m in &cfg.members {
                self.comps.insert(m.clone(), Comp::new(&cfg.name, admin(m)));
            }
            let sis = cfg
                .sis
                .iter()
                .map(|s| (s.clone(), SiAssign::default()))
                .collect();
            self.sgs.insert(
                cfg.name.clone(),
                Sg {
                    cfg: cfg.clone(),
                    sis,
                    handover: None,
                },
            );
            touched.insert(cfg.name.clone());
        }
        for j in &r.join {
            self.comps.insert(
                j.component.clone(),
                Comp::new(&j.group, admin(&j.component)),
            );
            if let Some(sg) = self.sgs.get_mut(&j.group) {
                sg.cfg.members.push(j.component.clone());
                for si in &j.sis {
                    sg.cfg.sis.push(si.clone());
                    sg.sis.insert(si.clone(), SiAssign::default());
                }
            }
            touched.insert(j.group.clone());
        }
        for g in touched {
            self.reconcile(&g, reason, &mut fx);
        }
        Ok(fx)
    }

    fn check_reconfig(&self, r: &Reconfig) -> Result<(), CrimError> {
        let refuse = |m: String| Err(CrimError::Reconfig(m));
        let leaving: BTreeSet<&str> = r
            .leave
            .iter()
            .map(|l| l.component.as_str())
            .chain(
                r.remove_groups
                    .iter()
                    .filter_map(|g| self.sgs.get(g))
                    .flat_map(|g| g.cfg.members.iter().map(String::as_str)),
            )
            .collect();
        let si_exists = |si: &str| self.sgs.values().any(|g| g.sis.contains_key(si));
        let mut new = BTreeSet::new();
        for l in &r.leave {
            match self.sgs.get(&l.group) {
                None => return refuse(format!("no service group {}", l.group)),
                Some(g) if !g.cfg.members.contains(&l.component) => {
                    return refuse(format!("{} is not a member of {}", l.component, l.group));
                }
                Some(g) => {
                    if let Some(si) = l.sis.iter().find(|s| !g.sis.contains_key(*s)) {
                        return refuse(format!("{si} is not a service instance of {}", l.group));
                    }
                }
            }
        }
        if let Some(g) = r.remove_groups.iter().find(|g| !self.sgs.contains_key(*g)) {
            return refuse(format!("no service group {g}"));
        }
        for g in &r.add_groups {
            if self.sgs.contains_key(&g.name) && !r.remove_groups.contains(&g.name) {
                return refuse(format!("service group {} exists", g.name));
            }
            if g.sis.is_empty() {
                return refuse(format!("service group {} has no service instance", g.name));
            }
        }
        let joins = r
            .add_groups
            .iter()
            .flat_map(|g| g.members.iter().map(move |m| (m, &g.sis)))
            .chain(r.join.iter().map(|j| (&j.component, &j.sis)));
        for (c, sis) in joins {
            if (self.comps.contains_key(c) && !leaving.contains(c.as_str())) || !new.insert(c) {
                return refuse(format!("component {c} exists"));
            }
            if let Some(si) = sis.iter().find(|s| si_exists(s)) {
                return refuse(format!("service instance {si} exists"));
            }
        }
        for j in &r.join {
            let known = self.sgs.contains_key(&j.group) && !r.remove_groups.contains(&j.group);
            if !known && !r.add_groups.iter().any(|g| g.name == j.group) {
                return refuse(format!("no service group {}", j.group));
            }
        }
        if let Some(l) = r.locked.iter().find(|l| !new.contains(l)) {
            return refuse(format!("{l} is locked but not added"));
        }
        Ok(())
    }

    /// A component leaves CRIM: it goes off-line and is stopped.
    fn drop_component(&mut self, name: &str, reason: &str, fx: &mut Vec<Effect>) {
        let Some(c) = self.comps.remove(name) else {
            return;
        };
        let mut cur = c.avail;
        for step in path(c.avail, AvailabilityState::OffLine) {
            if check_transition(cur, step).is_err() {
                break;
            }
            fx.push(Effect::Event(EventKind::state_changed(
                name, cur, step, reason,
            )));
            cur = step;
        }
        fx.push(Effect::Stop {
            component: name.to_string(),
            reason: reason.to_string(),
        });
    }

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

    fn can_serve(&self, name: &str) -> bool {
        self.comps.get(name).is_some_and(|c| {
            c.up && !c.disabled && !c.offline_requested && c.admin == AdminState::Unlocked
        })
    }

    /// Recomputes a group's assignments and moves states accordingly.
    fn reconcile(&mut self, sg_name: &str, reason: &str, fx: &mut Vec<Effect>) {
        let Some(sg) = self.sgs.get(sg_name) else {
            return;
        };
        let cfg = sg.cfg.clone();
        let before = sg.sis.clone();
        let mut sis = sg.sis.clone();
        let keeps = |c: &str| self.comps.get(c).is_some_and(|x| x.keep_role);
        let serve = |c: &str| self.can_serve(c) || keeps(c);
        let demoted: BTreeSet<String> = self
            .comps
            .iter()
            .filter(|(_, c)| c.demote)
            .map(|(n, _)| n.clone())
            .collect();

        // 1. Drop assignments that cannot stand.
        for a in sis.values_mut() {
            if a.active.as_deref().is_some_and(|c| !serve(c)) {
                a.active = None;
            }
            a.standby.retain(|c| self.can_serve(c));
        }
        // A hand-over whose old primary cannot serve any more is over; a
        // failed new one leaves the choice to the usual rules.
        // (Restarting in place does not count: it failed to step down.)
        let mut handover = sg.handover.clone().filter(|h| self.can_serve(&h.old));
        // The old primary and the instant of a hand-over completed now.
        let mut handed_over: Option<(String, Option<u64>)> = None;
        // Switch-over: the demoted primary yields to its standby. In 2N it
        // takes two decisions so the pair never has two primaries: the old
        // primary steps down to secondary, and only once it acknowledged
        // (Input::Acked) is the standby promoted.
        for a in sis.values_mut() {
            if let Some(act) = &a.active
                && demoted.contains(act)
                && let Some(pos) = a.standby.iter().position(|s| self.can_serve(s))
            {
                if cfg.model == RedundancyModel::TwoN {
                    let old = a.active.take().expect("active");
                    let new = a.standby[pos].clone();
                    if !a.standby.contains(&old) {
                        a.standby.push(old.clone());
                    }
                    let at = self.comps.get(&old).and_then(|c| c.switch_at);
                    handover = Some(Handover {
                        old,
                        new,
                        acked: false,
                        at,
                    });
                } else {
                    let new = a.standby.remove(pos);
                    let old = a.active.replace(new).expect("active");
                    a.standby.push(old);
                }
            }
        }

        let members: Vec<String> = cfg.members.clone();
        let available: Vec<String> = members
            .iter()
            .filter(|m| self.can_serve(m))
            .cloned()
            .collect();
        let primaries = |sis: &BTreeMap<String, SiAssign>| -> BTreeSet<String> {
            sis.values().filter_map(|a| a.active.clone()).collect()
        };

        match cfg.model {
            RedundancyModel::TwoN if handover.as_ref().is_some_and(|h| !h.acked) => {
                // Stepping down: nobody is primary until the old one says so.
                for a in sis.values_mut() {
                    a.active = None;
                }
            }
            RedundancyModel::TwoN => {
                // The old primary stepped down: its standby takes over.
                if let Some(Handover { old, new, at, .. }) = handover.take()
                    && self.can_serve(&new)
                {
                    handed_over = Some((old.clone(), at));
                    for a in sis.values_mut() {
                        a.active = Some(new.clone());
                        a.standby = if self.can_serve(&old) {
                            vec![old.clone()]
                        } else {
                            Vec::new()
                        };
                    }
                }
                // One primary carries every SI; one secondary backs them all.
                let current = sis.values().find_map(|a| a.active.clone());
                let primary = current.or_else(|| {
                    let standby = sis
                        .values()
                        .flat_map(|a| a.standby.iter())
                        .find(|s| !demoted.contains(*s))
                        .cloned();
                    standby
                        .or_else(|| available.iter().find(|c| !demoted.contains(*c)).cloned())
                        .or_else(|| available.first().cloned())
                });
                let secondary = primary.as_ref().and_then(|p| {
                    sis.values()
                        .flat_map(|a| a.standby.iter())
                        .find(|s| *s != p)
                        .cloned()
                        .or_else(|| available.iter().find(|c| *c != p).cloned())
                });
                for a in sis.values_mut() {
                    a.active = primary.clone();
                    a.standby = secondary.iter().cloned().collect();
                }
            }
            RedundancyModel::NoRedundancy => {
                let mut used: BTreeSet<String> = primaries(&sis);
                for a in sis.values_mut() {
                    a.standby.clear();
                    if a.active.is_none()
                        && let Some(c) = available.iter().find(|c| !used.contains(*c))
                    {
                        a.active = Some(c.clone());
                        used.insert(c.clone());
                    }
                }
            }
            RedundancyModel::NPlusM => {
                // Each SI has its own primary; M secondaries back every SI.
                let mut used = primaries(&sis);
                for a in sis.values_mut() {
                    if a.active.is_none() {
                        let promote = a
                            .standby
                            .iter()
                            .find(|s| !used.contains(*s))
                            .cloned()
                            .or_else(|| available.iter().find(|c| !used.contains(*c)).cloned());
                        if let Some(c) = promote {
                            used.insert(c.clone());
                            a.active = Some(c);
                        }
                    }
                }
                let mut secondaries: Vec<String> = Vec::new();
                for a in sis.values() {
                    for s in &a.standby {
                        if !used.contains(s) && !secondaries.contains(s) {
                            secondaries.push(s.clone());
                        }
                    }
                }
                for c in &available {
                    if secondaries.len() >= cfg.preferred_secondaries as usize {
                        break;
                    }
                    if !used.contains(c) && !secondaries.contains(c) {
                        secondaries.push(c.clone());
                    }
                }
                secondaries.truncate(cfg.preferred_secondaries as usize);
                for a in sis.values_mut() {
                    a.standby = secondaries.clone();
                }
            }
            RedundancyModel::NWayActive => {
                // Everyone serves; SIs spread over the available components.
                let mut load: BTreeMap<String, usize> =
                    available.iter().map(|c| (c.clone(), 0)).collect();
                for a in sis.values() {
                    if let Some(c) = &a.active
                        && let Some(n) = load.get_mut(c)
                    {
                        *n += 1;
                    }
                }
                for a in sis.values_mut() {
                    a.standby.clear();
                    if a.active.is_none()
                        && let Some((c, n)) = load.iter_mut().min_by_key(|(_, n)| **n)
                    {
                        *n += 1;
                        a.active = Some(c.clone());
                    }
                }
                // Rebalance onto idle components (one move each).
                loop {
                    let idle = load.iter().find(|(_, n)| **n == 0).map(|(c, _)| c.clone());
                    let busiest = load
                        .iter()
                        .max_by_key(|(_, n)| **n)
                        .map(|(c, n)| (c.clone(), *n));
                    match (idle, busiest) {
                        (Some(idle), Some((busy, n))) if n >= 2 => {
                            if let Some(a) = sis
                                .values_mut()
                                .rev()
                                .find(|a| a.active.as_deref() == Some(busy.as_str()))
                            {
                                a.active = Some(idle.clone());
                            }
                            *load.get_mut(&busy).expect("busy") -= 1;
                            *load.get_mut(&idle).expect("idle") += 1;
                        }
                        _ => break,
                    }
                }
            }
        }

        // Events for changed service instances.
        for (si, a) in &sis {
            let old = before.get(si).cloned().unwrap_or_default();
            if old.active != a.active {
                // A 2N switch-over ends with no active in between.
                let from = old
                    .active
                    .clone()
                    .or_else(|| handed_over.as_ref().map(|h| h.0.clone()));
                // Only a move away from a member that can no longer serve
                // it, or that was told to yield (switch-over), is a
                // fail-over. Moving work onto a member that just registered
                // (N-way-active rebalancing, at start-up or after a
                // restart) is an assignment change: nothing failed.
                let yielded = from
                    .as_ref()
                    .is_some_and(|f| !serve(f) || demoted.contains(f) || handed_over.is_some());
                if let (true, Some(from), Some(to)) = (yielded, &from, &a.active) {
                    fx.push(Effect::Event(EventKind::FailedOver {
                        si: si.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reason: reason.to_string(),
                    }));
                }
                if let Some(from) = &old.active {
                    fx.push(assignment_event(si, from, AssignmentRole::Active, false));
                }
                if let Some(to) = &a.active {
                    fx.push(assignment_event(si, to, AssignmentRole::Active, true));
                }
            }
            for s in old.standby.iter().filter(|s| !a.standby.contains(s)) {
                fx.push(assignment_event(si, s, AssignmentRole::Standby, false));
            }
            for s in a.standby.iter().filter(|s| !old.standby.contains(s)) {
                fx.push(assignment_event(si, s, AssignmentRole::Standby, true));
            }
        }
        if let Some(g) = self.sgs.get_mut(sg_name) {
            g.sis = sis.clone();
            g.handover = handover.clone();
        }

        // Move each member to the state its assignments imply.
        for m in &members {
            let Some(c) = self.comps.get(m) else { continue };
            if c.keep_role {
                continue;
            }
            let active: Vec<String> = sis
                .iter()
                .filter(|(_, a)| a.active.as_deref() == Some(m.as_str()))
                .map(|(s, _)| s.clone())
                .collect();
            let standby: Vec<String> = sis
                .iter()
                .filter(|(_, a)| a.standby.contains(m))
                .map(|(s, _)| s.clone())
                .collect();
            let target = if !self.can_serve(m) {
                AvailabilityState::OffLine
            } else if !active.is_empty() || cfg.model == RedundancyModel::NWayActive {
                AvailabilityState::Primary
            } else if !standby.is_empty() {
                AvailabilityState::Secondary
            } else {
                AvailabilityState::Spare
            };
            let from = c.avail;
            let changed_sis = before.iter().any(|(si, old)| {
                let now = &sis[si];
                (old.active.as_deref() == Some(m.as_str()))
                    != (now.active.as_deref() == Some(m.as_str()))
                    || old.standby.contains(m) != now.standby.contains(m)
            });
            if from == target && !changed_sis && !c.needs_assign {
                continue;
            }
            let mut cur = from;
            for step in path(from, target) {
                // path() only yields legal steps; checked again, never applied otherwise.
                if check_transition(cur, step).is_err() {
                    break;
                }
                fx.push(Effect::Event(EventKind::state_changed(
                    m, cur, step, reason,
                )));
                cur = step;
            }
            let c = self.comps.get_mut(m).expect("member");
            c.avail = cur;
            c.acked = None;
            if c.up {
                c.needs_assign = false;
                // The two halves of a timed hand-over take effect at its
                // instant: the old primary's step-down, then (once that is
                // promised) its standby's promotion.
                let at = match (&handover, &handed_over) {
                    (Some(h), _) if h.old == *m && cur == AvailabilityState::Secondary => h.at,
                    (_, Some((_, at))) if cur == AvailabilityState::Primary => *at,
                    _ => None,
                };
                c.primary_until = at.filter(|_| cur != AvailabilityState::Primary);
                fx.push(Effect::Assign {
                    component: m.clone(),
                    state: cur,
                    active,
                    standby,
                    at,
                });
            }
        }
    }
}

/// Assignment-removal events for service instances that go away.
fn unassigned(gone: &[(String, SiAssign)]) -> Vec<Effect> {
    let mut fx = Vec::new();
    for (si, a) in gone {
        if let Some(c) = &a.active {
            fx.push(assignment_event(si, c, AssignmentRole::Active, false));
        }
        for c in &a.standby {
            fx.push(assignment_event(si, c, AssignmentRole::Standby, false));
        }
    }
    fx
}

fn assignment_event(si: &str, component: &str, role: AssignmentRole, assigned: bool) -> Effect {
    Effect::Event(EventKind::Assignment {
        si: si.to_string(),
        component: component.to_string(),
        role: role.yang_name().to_string(),
        assigned,
    })
}

/// The escalation ladder: failure `k` (1-based) within the probation window.
/// `first_recovery` up to `max_restarts` times, then one fail-over (unless
/// that was already the first step), then the component is disabled.
pub fn ladder(cfg: &SgConfig, k: u32) -> RecoveryAction {
    let first = cfg.first_recovery;
    if k <= cfg.max_restarts.max(1) {
        return first;
    }
    let failover_possible = cfg.model != RedundancyModel::NoRedundancy;
    if k == cfg.max_restarts.max(1) + 1 && first != RecoveryAction::FailOver && failover_possible {
        return RecoveryAction::FailOver;
    }
    RecoveryAction::DisableComponent
}
