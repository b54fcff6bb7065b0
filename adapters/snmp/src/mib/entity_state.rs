//! ENTITY-STATE-MIB (RFC 4268): entStateTable columns from the X.731 states and alarms.

use halyard_cluster_model::meta::Role;
use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::value::Value;
use rasn_smi::v2::ObjectSyntax;

use super::snapshot::Snapshot;
use crate::codec::{self, int, octets};

pub(super) const ENT_STATE_COLUMNS: &[u32] = &[1, 2, 3, 4, 5, 6];

/// The enumeration label of the attribute with a role, by the schema's spelling.
fn role_label(o: &ManagedObject, role: Role) -> Option<&'static str> {
    let (i, a) = o.class.attribute_by_role(role)?;
    match (&a.ty, o.values.get(i)?) {
        (halyard_cluster_model::AttrType::Enum(e), Value::Enum(v)) => Some(e.by_value(*v)?.name),
        _ => None,
    }
}

/// ENTITY-STATE-MIB entStateEntry columns from the X.731 states.
pub(super) fn ent_state(snap: &Snapshot, col: u32, o: &ManagedObject) -> Option<ObjectSyntax> {
    let availability = role_label(o, Role::Availability);
    match col {
        // entStateLastChanged: the last change the model knows of, else
        // the agent's start (RFC 4268: "no change since the last
        // re-initialization"), so that every row has the column and
        // snmptable lines values up with their entities.
        1 => {
            let t = match o.by_role(Role::StateLastChanged) {
                Some(Value::Time(t)) => *t,
                _ => snap.started,
            };
            return Some(octets(codec::date_and_time(t)));
        }
        // entStateAlarm: BITS of the active alarms on this entity.
        5 => {
            let bits = snap.alarms.get(o.name.as_str()).copied().unwrap_or(0);
            return Some(octets(vec![bits]));
        }
        _ => {}
    }
    Some(int(match col {
        // EntityAdminState: unknown(1) locked(2) shuttingDown(3) unlocked(4)
        2 => match role_label(o, Role::AdminState) {
            Some("locked") => 2,
            Some("shuttingDown") => 3,
            Some("unlocked") => 4,
            _ => 1,
        },
        // EntityOperState: unknown(1) disabled(2) enabled(3) testing(4)
        3 => match role_label(o, Role::OperState) {
            Some("disabled") => 2,
            Some("enabled") => 3,
            _ => 1,
        },
        // EntityUsageState: unknown(1) idle(2) active(3) busy(4)
        4 => match availability {
            Some("primary") => 3,
            Some("secondary" | "spare") => 2,
            _ => 1,
        },
        // EntityStandbyStatus: unknown(1) hotStandby(2) coldStandby(3)
        // providingService(4)
        6 => match availability {
            Some("primary") => 4,
            Some("secondary") => 2,
            Some("spare") => 3,
            _ => 1,
        },
        _ => return None,
    }))
}
