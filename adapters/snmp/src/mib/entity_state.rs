//! ENTITY-STATE-MIB (RFC 4268): entStateTable columns from the X.731 states and alarms.

use halyard_cluster_model::physical;
use halyard_cluster_model::port::ManagedObject;
use rasn_smi::v2::ObjectSyntax;

use super::snapshot::Snapshot;
use crate::codec::{self, int, octets};

pub(super) const ENT_STATE_COLUMNS: &[u32] = &[1, 2, 3, 4, 5, 6];

/// ENTITY-STATE-MIB entStateEntry columns, numbered from the shared
/// physical view's states.
pub(super) fn ent_state(snap: &Snapshot, col: u32, o: &ManagedObject) -> Option<ObjectSyntax> {
    Some(match col {
        // entStateLastChanged: every row has it, so that snmptable lines
        // values up with their entities (RFC 4268).
        1 => octets(codec::date_and_time(physical::state_last_changed(
            o,
            snap.started,
        ))),
        2 => int(physical::admin(o).smi()),
        3 => int(physical::oper(o).smi()),
        4 => int(physical::usage(o).smi()),
        // entStateAlarm: BITS of the active alarms on this entity.
        5 => octets(vec![snap.alarms.get(o.name.as_str()).copied().unwrap_or(0)]),
        6 => int(physical::standby(o).smi()),
        _ => return None,
    })
}

/// entStateEntry columns of a sensor: no administrative or standby state
/// of its own; enabled while it reads, disabled when its entity is.
pub(super) fn ent_state_sensor(
    snap: &Snapshot,
    col: u32,
    s: &physical::Sensor,
) -> Option<ObjectSyntax> {
    Some(match col {
        1 => octets(codec::date_and_time(physical::state_last_changed(
            s.entity,
            snap.started,
        ))),
        2 => int(physical::Admin::Unknown.smi()),
        3 => int(match s.status() {
            physical::SensorStatus::Ok => physical::Oper::Enabled,
            physical::SensorStatus::Nonoperational => physical::Oper::Disabled,
            physical::SensorStatus::Unavailable => physical::Oper::Unknown,
        }
        .smi()),
        4 => int(physical::Usage::Unknown.smi()),
        5 => octets(vec![0]),
        6 => int(physical::Standby::Unknown.smi()),
        _ => return None,
    })
}
