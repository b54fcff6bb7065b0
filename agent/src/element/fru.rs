//! A unit in a slot of a shelf: its object, its hardware component (and a
//! line card's ports), the component managers of its FRU type and its own
//! group. One builder for the units configured at start and the ones hot
//! swap inserts, so both look the same.

use halyard_backend::core::{ComponentSpec, Kind};
use halyard_backend::crim::{GroupMember, SgConfig};
use halyard_cluster_model::model::{
    AdminState, CheckpointMode, FanPatch, HardwareFruPatch, HostBoardPatch, LineCardPatch,
    PortPatch, PowerSupplyPatch, RedundancyModel,
};

use super::{
    ComponentRun, FruCtx, ObjectSpec, admin_state, audit_of, checkpoint_mode, component_kind,
    component_states, group_objects, hw_group, sw_object,
};
use crate::config::{self, FruClass, FruTypeEntry};

/// Class, relative-name type and hardware group role of a FRU kind.
pub fn fru_class(kind: FruClass) -> (&'static str, &'static str, &'static str) {
    match kind {
        FruClass::Hsc => ("HotSwapController", "hsc", "chassis"),
        FruClass::Fan => ("Fan", "fan", "cooling"),
        FruClass::Psu => ("PowerSupply", "psu", "power"),
        FruClass::Board => ("HostBoard", "board", "hosts"),
        FruClass::Linecard => ("LineCard", "linecard", "chassis"),
    }
}

/// A unit in a slot of a shelf (`shelf` is the shelf's name in the config).
#[derive(Debug, Clone, Copy)]
pub struct Unit<'a> {
    pub shelf: &'a str,
    pub kind: FruClass,
    pub name: &'a str,
    pub slot: u32,
    pub serial: &'a str,
    pub revision: &'a str,
    /// Its model name as configured ("": its FRU type's name).
    pub model: &'a str,
}

/// What instantiating a unit creates.
#[derive(Debug, Clone, Default)]
pub struct FruParts {
    /// The unit's persistent name.
    pub unit: String,
    /// The unit's object, its components', and its own group's.
    pub objects: Vec<ObjectSpec>,
    /// The unit's hardware component first, then its component managers.
    pub components: Vec<ComponentSpec>,
    /// The unit's own group (no redundancy, one service instance per
    /// member): its component managers that join no configured group, and
    /// for a dynamic unit the unit itself.
    pub group: Option<SgConfig>,
    /// Component managers joining configured groups.
    pub joins: Vec<GroupMember>,
    /// Components that start locked.
    pub locked: Vec<String>,
}

/// The unit's own group's name.
pub fn unit_group(root: &str, unit: &Unit<'_>) -> String {
    let (_, rdn, _) = fru_class(unit.kind);
    format!("{root}/sg=fru-{}-{rdn}-{}", unit.shelf, unit.name)
}

/// Builds a unit of a FRU type (or of none): a configured unit (`dynamic`
/// false) has its hardware component in the shelf's role group, made by
/// the caller; `manual` locks every component of the unit.
pub fn fru_parts(
    ctx: &FruCtx<'_>,
    unit: &Unit<'_>,
    ty: Option<&FruTypeEntry>,
    dynamic: bool,
    manual: bool,
) -> FruParts {
    let (class, rdn, _) = fru_class(unit.kind);
    let shelf = format!("{}/shelf={}", ctx.root, unit.shelf);
    let name = format!("{shelf}/{rdn}={}", unit.name);
    let unit_admin = if manual {
        AdminState::Locked
    } else {
        AdminState::Unlocked
    };
    let mut v = component_states(unit_admin);
    // Attributes every unit class has; the class is the unit's kind.
    v.extend_from_slice(
        HardwareFruPatch::new()
            .slot(unit.slot)
            .serial_number(unit.serial)
            .hardware_revision(unit.revision)
            .model_name(if unit.model.is_empty() {
                ty.map_or("", |t| t.name.get_ref().as_str())
            } else {
                unit.model
            })
            .present(true)
            .values(),
    );
    match class {
        "Fan" => v.extend_from_slice(FanPatch::new().speed(4200).values()),
        "PowerSupply" => v.extend_from_slice(
            PowerSupplyPatch::new()
                .output_power(300)
                .input_voltage(48_000)
                .power_good(true)
                .values(),
        ),
        "HostBoard" => {
            v.extend_from_slice(HostBoardPatch::new().cpu_load(10).temperature(41).values())
        }
        "LineCard" => v.extend_from_slice(
            LineCardPatch::new()
                .ports(ty.map_or(0, |t| t.ports))
                .values(),
        ),
        _ => {}
    }
    let mut parts = FruParts {
        unit: name.clone(),
        objects: vec![ObjectSpec {
            class,
            name: name.clone(),
            values: v,
        }],
        components: vec![ComponentSpec {
            name: name.clone(),
            parent: Some(shelf.clone()),
            kind: Kind::Hardware,
            checkpoint: CheckpointMode::NoCheckpoints,
            audit: None,
        }],
        ..FruParts::default()
    };
    if manual {
        parts.locked.push(name.clone());
    }
    let group = unit_group(ctx.root, unit);
    let mut own: Vec<String> = Vec::new();
    if dynamic {
        own.push(name.clone());
    }
    // A line card's ports: hardware of the unit, in its own group.
    if class == "LineCard" {
        let ports = ty.map_or(0, |t| t.ports);
        let speed = ty.map_or(0, |t| t.port_speed_mbps);
        for k in 1..=ports {
            let port = format!("{name}/port={k}");
            let mut v = component_states(unit_admin);
            v.extend_from_slice(PortPatch::new().position(k).speed(speed).values());
            parts.objects.push(ObjectSpec {
                class: "Port",
                name: port.clone(),
                values: v,
            });
            parts.components.push(ComponentSpec {
                name: port.clone(),
                parent: Some(name.clone()),
                kind: Kind::Hardware,
                checkpoint: CheckpointMode::NoCheckpoints,
                audit: None,
            });
            if manual {
                parts.locked.push(port.clone());
            }
            own.push(port);
        }
    }
    for x in ty.map(|t| t.components.as_slice()).unwrap_or_default() {
        let comp = format!("{name}/comp={}", x.name.get_ref());
        let in_group = x
            .group
            .as_ref()
            .map(|g| format!("{}/sg={}", ctx.root, g.get_ref()));
        let mode = checkpoint_mode(x.checkpoint);
        let admin = if manual {
            AdminState::Locked
        } else {
            admin_state(x.admin)
        };
        if admin == AdminState::Locked {
            parts.locked.push(comp.clone());
        }
        parts.objects.push(sw_object(
            &comp,
            x.kind.into(),
            in_group.as_deref().unwrap_or(&group),
            mode,
            x.audit_period_ms,
            admin,
        ));
        let query = format!(
            "fru-{}-{}-{}-{}",
            unit.shelf,
            rdn,
            unit.name,
            x.name.get_ref()
        );
        parts.components.push(ComponentSpec {
            name: comp.clone(),
            parent: Some(name.clone()),
            kind: component_kind(
                ctx,
                ComponentRun {
                    ha_aware: x.kind == config::FruComponentKind::HaAware,
                    command: x.command.get_ref(),
                    stop: &x.stop,
                    health: &x.health,
                    role: &x.role,
                    env: &x.env,
                    timed: x.timed_switchover,
                },
                &query,
            ),
            checkpoint: mode,
            audit: audit_of(x.audit_period_ms, x.audit_deadline_ms),
        });
        match in_group {
            Some(g) => parts.joins.push(GroupMember {
                group: g,
                component: comp,
                sis: Vec::new(),
            }),
            None => own.push(comp),
        }
    }
    if !own.is_empty() {
        let g = hw_group(group, RedundancyModel::NoRedundancy, own);
        if dynamic {
            parts.objects.extend(group_objects(&g));
        }
        parts.group = Some(g);
    }
    parts
}
