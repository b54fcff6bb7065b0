//! ENTITY-MIB (RFC 4133): entPhysicalTable columns, containment and entLastChangeTime.

use halyard_cluster_model::meta::{PhysicalClass, Role};
use halyard_cluster_model::physical;
use halyard_cluster_model::port::{ManagedObject, ModelError};
use halyard_cluster_model::value::Value;
use rasn_smi::v2::ObjectSyntax;

use super::cluster::physical_type;
use super::snapshot::{Snapshot, physical_class, physical_parent};
use super::{Ctx, Mib};
use crate::codec::{int, object_id, octets};

/// entPhysicalMfgDate (17) is not instantiated: no date is known, as
/// RFC 6933 allows; entPhysicalUris and entPhysicalUUID are empty.
pub(super) const ENT_PHYSICAL_COLUMNS: &[u32] =
    &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19];

impl Mib {
    /// entLastChangeTime: the sysUpTime at which this agent saw the
    /// physical entity table change (units inserted, removed, moved). The
    /// agent looks every second ([`Mib::observe_entities`]) and at every
    /// ENTITY-MIB read; the first look is the start (0).
    pub(super) fn last_change(&self, snap: &Snapshot) -> u32 {
        let fp = snap.physical_fingerprint();
        let mut seen = self.physical_seen.lock().expect("entity fingerprint");
        match *seen {
            Some((old, at)) if old == fp => at,
            Some(_) => {
                let at = self.engine.uptime_ticks();
                *seen = Some((fp, at));
                at
            }
            None => {
                *seen = Some((fp, 0));
                0
            }
        }
    }

    /// Looks at the physical entity table (entLastChangeTime).
    pub async fn observe_entities(&self) -> Result<u32, ModelError> {
        let snap = self.snapshot(&mut Ctx::default()).await?;
        Ok(self.last_change(&snap))
    }
}

fn role_u32(o: &ManagedObject, role: Role) -> Option<u32> {
    match o.by_role(role) {
        Some(Value::U32(v)) => Some(*v),
        _ => None,
    }
}

fn role_str(o: &ManagedObject, role: Role) -> &str {
    o.by_role(role).and_then(Value::as_str).unwrap_or("")
}

/// ENTITY-MIB entPhysicalEntry columns.
pub(super) fn ent_physical(snap: &Snapshot, col: u32, o: &ManagedObject) -> Option<ObjectSyntax> {
    Some(match col {
        2 => octets(physical::description(o).into_bytes()),
        3 => object_id(&physical_type(o.class)),
        4 => int(i64::from(physical_parent(snap, o).unwrap_or(0))),
        5 => int(physical_class(o.class)?),
        6 => int(role_u32(o, Role::ParentRelPos).map_or(-1, i64::from)),
        7 => octets(o.name.as_str().as_bytes()),
        8 => octets(role_str(o, Role::HardwareRev).as_bytes()),
        9 | 10 | 15 | 18 | 19 => octets(Vec::new()),
        11 => octets(role_str(o, Role::SerialNum).as_bytes()),
        12 => octets(
            physical::mfg_name(o, |i| Some(&snap.objects[*snap.by_index.get(&i)?]))
                .unwrap_or("")
                .as_bytes(),
        ),
        13 => octets(physical::model_name(o).unwrap_or("").as_bytes()),
        14 => octets(role_str(o, Role::Alias).as_bytes()),
        16 => int(if o.class.is_fru { 1 } else { 2 }),
        _ => return None,
    })
}

/// entPhysicalEntry columns of a sensor: an entity of class sensor(8)
/// contained in the entity whose gauge it reads.
pub(super) fn ent_physical_sensor(
    snap: &Snapshot,
    col: u32,
    s: &physical::Sensor,
) -> Option<ObjectSyntax> {
    Some(match col {
        2 => octets(s.description().into_bytes()),
        // No registration of its own: zeroDotZero, as RFC 6933 allows.
        3 => object_id(&[0, 0]),
        4 => int(i64::from(s.entity.index)),
        5 => int(i64::from(PhysicalClass::Sensor.value())),
        6 => int(-1),
        7 => octets(s.name().into_bytes()),
        8 | 9 | 10 | 11 | 14 | 15 | 18 | 19 => octets(Vec::new()),
        12 => octets(
            physical::mfg_name(s.entity, |i| Some(&snap.objects[*snap.by_index.get(&i)?]))
                .unwrap_or("")
                .as_bytes(),
        ),
        13 => octets(Vec::new()),
        16 => int(2),
        _ => return None,
    })
}

/// ENTITY-SENSOR-MIB (RFC 3433) entPhySensorEntry columns.
pub(super) const ENT_SENSOR_COLUMNS: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8];

/// An entPhySensorEntry column: the reading is the model's value of the
/// gauge now (the agent reads it at every request), so its time stamp
/// is the request's sysUpTime; the update rate is unknown (0).
pub(super) fn ent_sensor(s: &physical::Sensor, col: u32, now: u32) -> Option<ObjectSyntax> {
    Some(match col {
        1 => int(s.ty.smi()),
        2 => int(s.scale.smi()),
        3 => int(0),
        // EntitySensorValue: -1000000000..1000000000; 0 without a reading.
        4 => int(s.value().unwrap_or(0).clamp(-1_000_000_000, 1_000_000_000)),
        5 => int(s.status().smi()),
        6 => octets(s.units().as_bytes()),
        7 => crate::codec::ticks(now),
        8 => crate::codec::gauge32(0),
        _ => return None,
    })
}
