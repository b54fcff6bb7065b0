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
//!
//! This file holds the inputs, the effects, the state with its reads and
//! the escalation ladder; `handle.rs` takes one input, `reconcile.rs`
//! recomputes a group's assignments per redundancy model, and
//! `reconfig.rs` applies run-time changes of groups and components (hot
//! swap).

mod handle;
mod reconcile;
mod reconfig;

use std::collections::BTreeMap;
use std::time::Duration;

use halyard_cluster_model::model::{
    AdminState, AssignmentRole, AvailabilityState, OperState, RecoveryAction, RedundancyModel,
    StandbyMode,
};
use tokio::time::Instant;

use crate::events::EventKind;

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
    /// The running incarnation's process id, when the core started one
    /// (filled by the core from its naming service; CRIM knows none).
    pub pid: Option<u32>,
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
            pid: None,
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
