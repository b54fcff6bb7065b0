//! CRIM inputs and hot-swap changes as they cross the replicated log:
//! plain serde types with enums by their YANG names, converted both ways,
//! so the log's JSON does not depend on Rust's names.

use std::time::Duration;

use halyard_cluster_model::model::{AdminState, AvailabilityState};
use serde::{Deserialize, Serialize};

use crate::crim::Input;

/// [`crate::core::spec::Reconfigure`] on the wire: enums by their YANG names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReconfigure {
    pub add_groups: Vec<WireGroup>,
    pub join: Vec<WireMember>,
    pub leave: Vec<WireMember>,
    pub remove_groups: Vec<String>,
    pub locked: Vec<String>,
    pub components: Vec<WireComponent>,
    pub lost: Vec<String>,
    pub restart: Vec<String>,
    pub note: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMember {
    pub group: String,
    pub component: String,
    pub sis: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireGroup {
    pub name: String,
    pub model: String,
    pub standby: String,
    pub preferred_secondaries: u32,
    pub first_recovery: String,
    pub max_restarts: u32,
    pub probation_ms: u64,
    pub members: Vec<String>,
    pub sis: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireComponent {
    pub name: String,
    pub parent: Option<String>,
    pub kind: crate::core::spec::Kind,
    pub checkpoint: String,
    /// Audit period and deadline in ms.
    pub audit_ms: Option<(u64, u64)>,
}

impl From<&crate::core::spec::Reconfigure> for WireReconfigure {
    fn from(r: &crate::core::spec::Reconfigure) -> Self {
        let member = |m: &crate::crim::GroupMember| WireMember {
            group: m.group.clone(),
            component: m.component.clone(),
            sis: m.sis.clone(),
        };
        WireReconfigure {
            add_groups: r
                .crim
                .add_groups
                .iter()
                .map(|g| WireGroup {
                    name: g.name.clone(),
                    model: g.model.yang_name().into(),
                    standby: g.standby.yang_name().into(),
                    preferred_secondaries: g.preferred_secondaries,
                    first_recovery: g.first_recovery.yang_name().into(),
                    max_restarts: g.max_restarts,
                    probation_ms: g.probation.as_millis() as u64,
                    members: g.members.clone(),
                    sis: g.sis.clone(),
                })
                .collect(),
            join: r.crim.join.iter().map(member).collect(),
            leave: r.crim.leave.iter().map(member).collect(),
            remove_groups: r.crim.remove_groups.clone(),
            locked: r.crim.locked.clone(),
            components: r
                .components
                .iter()
                .map(|c| WireComponent {
                    name: c.name.clone(),
                    parent: c.parent.clone(),
                    kind: c.kind.clone(),
                    checkpoint: c.checkpoint.yang_name().into(),
                    audit_ms: c
                        .audit
                        .map(|(p, d)| (p.as_millis() as u64, d.as_millis() as u64)),
                })
                .collect(),
            lost: r.lost.clone(),
            restart: r.restart.clone(),
            note: r.note.clone(),
        }
    }
}

impl TryFrom<WireReconfigure> for crate::core::spec::Reconfigure {
    type Error = String;

    fn try_from(w: WireReconfigure) -> Result<Self, String> {
        let member = |m: WireMember| crate::crim::GroupMember {
            group: m.group,
            component: m.component,
            sis: m.sis,
        };
        let mut groups = Vec::new();
        for g in w.add_groups {
            groups.push(crate::crim::SgConfig {
                name: g.name,
                model: g
                    .model
                    .parse::<halyard_cluster_model::model::RedundancyModel>()
                    .map_err(|e| e.to_string())?,
                standby: g
                    .standby
                    .parse::<halyard_cluster_model::model::StandbyMode>()
                    .map_err(|e| e.to_string())?,
                preferred_secondaries: g.preferred_secondaries,
                first_recovery: g
                    .first_recovery
                    .parse::<halyard_cluster_model::model::RecoveryAction>()
                    .map_err(|e| e.to_string())?,
                max_restarts: g.max_restarts,
                probation: Duration::from_millis(g.probation_ms),
                members: g.members,
                sis: g.sis,
            });
        }
        let mut components = Vec::new();
        for c in w.components {
            components.push(crate::core::spec::ComponentSpec {
                name: c.name,
                parent: c.parent,
                kind: c.kind,
                checkpoint: c
                    .checkpoint
                    .parse::<halyard_cluster_model::model::CheckpointMode>()
                    .map_err(|e| e.to_string())?,
                audit: c
                    .audit_ms
                    .map(|(p, d)| (Duration::from_millis(p), Duration::from_millis(d))),
            });
        }
        Ok(crate::core::spec::Reconfigure {
            crim: crate::crim::Reconfig {
                add_groups: groups,
                join: w.join.into_iter().map(member).collect(),
                leave: w.leave.into_iter().map(member).collect(),
                remove_groups: w.remove_groups,
                locked: w.locked,
            },
            components,
            lost: w.lost,
            restart: w.restart,
            note: w.note,
        })
    }
}

/// [`Input`] on the wire: enums by their YANG names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum WireInput {
    Registered {
        component: String,
        incarnation: u32,
    },
    Acked {
        component: String,
        state: String,
    },
    Failed {
        component: String,
        incarnation: u32,
        reason: String,
        escalated: bool,
    },
    SetAdmin {
        component: String,
        admin: String,
    },
    SwitchOver {
        component: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    Restart {
        component: String,
    },
    RequestOffline {
        component: String,
        reason: String,
    },
    RequestOnline {
        component: String,
    },
    ContainerFailed {
        component: String,
        container: String,
    },
    Lost {
        component: String,
        reason: String,
    },
}

impl From<&Input> for WireInput {
    fn from(i: &Input) -> Self {
        match i.clone() {
            Input::Registered {
                component,
                incarnation,
            } => WireInput::Registered {
                component,
                incarnation,
            },
            Input::Acked { component, state } => WireInput::Acked {
                component,
                state: state.yang_name().into(),
            },
            Input::Failed {
                component,
                incarnation,
                reason,
                escalated,
            } => WireInput::Failed {
                component,
                incarnation,
                reason,
                escalated,
            },
            Input::SetAdmin { component, admin } => WireInput::SetAdmin {
                component,
                admin: admin.yang_name().into(),
            },
            Input::SwitchOver { component, at } => WireInput::SwitchOver { component, at },
            Input::Restart { component } => WireInput::Restart { component },
            Input::RequestOffline { component, reason } => {
                WireInput::RequestOffline { component, reason }
            }
            Input::RequestOnline { component } => WireInput::RequestOnline { component },
            Input::ContainerFailed {
                component,
                container,
            } => WireInput::ContainerFailed {
                component,
                container,
            },
            Input::Lost { component, reason } => WireInput::Lost { component, reason },
        }
    }
}

impl TryFrom<WireInput> for Input {
    type Error = String;

    fn try_from(w: WireInput) -> Result<Self, String> {
        Ok(match w {
            WireInput::Registered {
                component,
                incarnation,
            } => Input::Registered {
                component,
                incarnation,
            },
            WireInput::Acked { component, state } => Input::Acked {
                component,
                state: state
                    .parse::<AvailabilityState>()
                    .map_err(|e| e.to_string())?,
            },
            WireInput::Failed {
                component,
                incarnation,
                reason,
                escalated,
            } => Input::Failed {
                component,
                incarnation,
                reason,
                escalated,
            },
            WireInput::SetAdmin { component, admin } => Input::SetAdmin {
                component,
                admin: admin.parse::<AdminState>().map_err(|e| e.to_string())?,
            },
            WireInput::SwitchOver { component, at } => Input::SwitchOver { component, at },
            WireInput::Restart { component } => Input::Restart { component },
            WireInput::RequestOffline { component, reason } => {
                Input::RequestOffline { component, reason }
            }
            WireInput::RequestOnline { component } => Input::RequestOnline { component },
            WireInput::ContainerFailed {
                component,
                container,
            } => Input::ContainerFailed {
                component,
                container,
            },
            WireInput::Lost { component, reason } => Input::Lost { component, reason },
        })
    }
}
