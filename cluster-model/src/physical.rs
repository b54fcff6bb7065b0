//! The physical view of the element, said once for ENTITY-MIB,
//! ENTITY-STATE-MIB (SNMP) and ietf-hardware (NETCONF): which objects are
//! physical entities, which physical entity contains each, and their
//! standard states (RFC 4268 and RFC 8348 share the same enumerations)
//! mapped from the schema's X.731 states. The faces number or spell the
//! values; they never map states themselves.

use std::collections::HashMap;

use crate::alarm;
use crate::meta::{PhysicalClass, Role};
use crate::model::PerceivedSeverity;
use crate::port::ManagedObject;
use crate::value::Value;
use crate::{AttrType, Timestamp};

/// The indication that says the physical entity table changed (a unit
/// inserted or removed): ENTITY-MIB's entConfigChange, ietf-hardware's
/// hardware-state-change.
pub const TABLE_CHANGED: &str = "FruChanged";

/// The indication of a component's state change, and its attributes that
/// say whether, and to what, the operational state changed.
pub const STATE_CHANGED: &str = "StateChanged";
const OPER_STATE_CHANGED: &str = "OperStateChanged";
const OPER_STATE: &str = "OperState";

/// When `n` says a component's operational state changed: the component
/// and whether it is now enabled (for a physical entity, ietf-hardware's
/// hardware-state-oper-enabled or hardware-state-oper-disabled).
pub fn oper_transition(n: &crate::port::Notification) -> Option<(&crate::ObjectName, bool)> {
    if n.class.name != STATE_CHANGED {
        return None;
    }
    let get = |a: &str| n.class.attribute(a).and_then(|(i, _)| n.values.get(i));
    if get(OPER_STATE_CHANGED) != Some(&Value::Bool(true)) {
        return None;
    }
    match get(OPER_STATE) {
        Some(Value::Enum(v)) => Some((
            &n.source,
            *v == crate::value::SchemaEnum::value(crate::model::OperState::Enabled),
        )),
        _ => None,
    }
}

/// An enumeration RFC 4268 and RFC 8348 share: its SMIv2 value (the
/// discriminant) and its YANG enum name.
macro_rules! standard_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $value:literal => $yang:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant = $value),+
        }

        impl $name {
            /// Every value, in SMIv2 order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The SMIv2 value.
            pub fn smi(self) -> i64 {
                self as i64
            }
            /// The YANG enum name (RFC 8348).
            pub fn yang(self) -> &'static str {
                match self {
                    $(Self::$variant => $yang),+
                }
            }
        }
    };
}

standard_enum!(
    /// EntityAdminState / ietf-hardware `admin-state`.
    Admin {
        Unknown = 1 => "unknown",
        Locked = 2 => "locked",
        ShuttingDown = 3 => "shutting-down",
        Unlocked = 4 => "unlocked",
    }
);

standard_enum!(
    /// EntityOperState / ietf-hardware `oper-state`.
    Oper {
        Unknown = 1 => "unknown",
        Disabled = 2 => "disabled",
        Enabled = 3 => "enabled",
        Testing = 4 => "testing",
    }
);

standard_enum!(
    /// EntityUsageState / ietf-hardware `usage-state`.
    Usage {
        Unknown = 1 => "unknown",
        Idle = 2 => "idle",
        Active = 3 => "active",
        Busy = 4 => "busy",
    }
);

standard_enum!(
    /// EntityStandbyStatus / ietf-hardware `standby-state`.
    Standby {
        Unknown = 1 => "unknown",
        HotStandby = 2 => "hot-standby",
        ColdStandby = 3 => "cold-standby",
        ProvidingService = 4 => "providing-service",
    }
);

standard_enum!(
    /// EntitySensorDataType (RFC 3433) / ietf-hardware `sensor-value-type`.
    SensorType {
        Other = 1 => "other",
        Unknown = 2 => "unknown",
        VoltsAc = 3 => "volts-AC",
        VoltsDc = 4 => "volts-DC",
        Amperes = 5 => "amperes",
        Watts = 6 => "watts",
        Hertz = 7 => "hertz",
        Celsius = 8 => "celsius",
        PercentRh = 9 => "percent-RH",
        Rpm = 10 => "rpm",
        Cmm = 11 => "cmm",
        TruthValue = 12 => "truth-value",
    }
);

standard_enum!(
    /// EntitySensorDataScale / ietf-hardware `sensor-value-scale` (the
    /// scales the schema's units use).
    SensorScale {
        Micro = 7 => "micro",
        Milli = 8 => "milli",
        Units = 9 => "units",
        Kilo = 10 => "kilo",
        Mega = 11 => "mega",
    }
);

standard_enum!(
    /// EntitySensorStatus / ietf-hardware `sensor-status`.
    SensorStatus {
        Ok = 1 => "ok",
        Unavailable = 2 => "unavailable",
        Nonoperational = 3 => "nonoperational",
    }
);

/// Where sensors' entity indices start: a sensor is no object of the
/// model, so its entPhysicalIndex (and ietf-hardware physical-index) is
/// derived from its entity's index and the attribute's place
/// ([`Sensor::index`]), above every object index the agent hands out.
pub const SENSOR_INDEX_BASE: u32 = 1 << 30;

/// Attributes per entity that can be sensors (the index's low bits).
const SENSORS_PER_ENTITY: u32 = 16;

/// A sensor of a physical entity: one of its gauges whose units a
/// standard sensor type measures (rpm, watts, millivolts, celsius), so
/// that an attribute added to the schema with such units is a sensor on
/// every face with no code of its own.
#[derive(Debug, Clone, Copy)]
pub struct Sensor<'a> {
    pub entity: &'a ManagedObject,
    pub attr: &'static crate::meta::AttrMeta,
    /// The attribute's position among the entity's attributes.
    pub position: usize,
    /// Its place among the entity's sensors (the index's low bits).
    pub ordinal: u32,
    pub ty: SensorType,
    pub scale: SensorScale,
}

impl Sensor<'_> {
    /// The sensor's entity index (entPhysicalIndex): None when the
    /// entity's index is beyond the range sensors are numbered in.
    pub fn index(&self) -> Option<u32> {
        let i = self.entity.index.checked_mul(SENSORS_PER_ENTITY)?;
        let i = i.checked_add(self.ordinal)?;
        let i = SENSOR_INDEX_BASE.checked_add(i)?;
        (i <= i32::MAX as u32).then_some(i)
    }

    /// Its name (entPhysicalName, ietf-hardware `name`): the entity's
    /// persistent name and the attribute's YANG name.
    pub fn name(&self) -> String {
        format!("{}/sensor={}", self.entity.name, self.attr.yang_name)
    }

    /// Its description: what the schema says the attribute is.
    pub fn description(&self) -> String {
        format!(
            "{} sensor of {}: {}",
            self.attr.yang_name, self.entity.name, self.attr.description
        )
    }

    /// The reading in the sensor's scale (None: no reading yet).
    pub fn value(&self) -> Option<i64> {
        match self.entity.values.get(self.position)? {
            Value::U32(v) => Some(i64::from(*v)),
            Value::I32(v) => Some(i64::from(*v)),
            Value::U64(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// ok while its entity works and it has a reading; nonoperational
    /// when the entity is disabled; unavailable without a reading.
    pub fn status(&self) -> SensorStatus {
        if oper(self.entity) == Oper::Disabled {
            SensorStatus::Nonoperational
        } else if self.value().is_some() {
            SensorStatus::Ok
        } else {
            SensorStatus::Unavailable
        }
    }

    /// The units as shown (entPhySensorUnitsDisplay, ietf-hardware
    /// `units-display`): the schema's.
    pub fn units(&self) -> &'static str {
        self.attr.units.unwrap_or("")
    }
}

/// The sensor type and scale of a gauge's units.
fn sensor_kind(units: &str) -> Option<(SensorType, SensorScale)> {
    Some(match units {
        "rpm" => (SensorType::Rpm, SensorScale::Units),
        "watts" => (SensorType::Watts, SensorScale::Units),
        "milliwatts" => (SensorType::Watts, SensorScale::Milli),
        "volts" => (SensorType::VoltsDc, SensorScale::Units),
        "millivolts" => (SensorType::VoltsDc, SensorScale::Milli),
        "amperes" => (SensorType::Amperes, SensorScale::Units),
        "milliamperes" => (SensorType::Amperes, SensorScale::Milli),
        "celsius" => (SensorType::Celsius, SensorScale::Units),
        "hertz" => (SensorType::Hertz, SensorScale::Units),
        _ => return None,
    })
}

/// The sensors of a physical entity, in attribute order (none for an
/// object that is no physical entity).
pub fn sensors(o: &ManagedObject) -> Vec<Sensor<'_>> {
    if class(o).is_none() {
        return Vec::new();
    }
    o.class
        .attributes
        .iter()
        .enumerate()
        .filter(|(_, a)| a.measure == crate::meta::Measure::Gauge)
        .filter_map(|(position, attr)| {
            let (ty, scale) = sensor_kind(attr.units?)?;
            Some((position, attr, ty, scale))
        })
        .zip(0..SENSORS_PER_ENTITY)
        .map(|((position, attr, ty, scale), ordinal)| Sensor {
            entity: o,
            attr,
            position,
            ordinal,
            ty,
            scale,
        })
        .filter(|s| s.index().is_some())
        .collect()
}

/// Whether a physical entity is a network interface (IF-MIB's ifTable,
/// ietf-interfaces): an entity of class port.
pub fn is_interface(o: &ManagedObject) -> bool {
    class(o) == Some(PhysicalClass::Port)
}

/// An interface's nominal speed in megabits per second: its gauge with
/// those units (IF-MIB ifHighSpeed; ifSpeed in bits per second).
pub fn interface_speed_mbps(o: &ManagedObject) -> Option<u32> {
    o.class
        .attributes
        .iter()
        .zip(&o.values)
        .find(|(a, _)| {
            a.measure == crate::meta::Measure::Gauge && a.units == Some("megabitsPerSecond")
        })
        .and_then(|(_, v)| match v {
            Value::U32(v) => Some(*v),
            _ => None,
        })
}

/// The enumeration label of the attribute with a role, by the schema's spelling.
fn role_label(o: &ManagedObject, role: Role) -> Option<&'static str> {
    let (i, a) = o.class.attribute_by_role(role)?;
    match (&a.ty, o.values.get(i)?) {
        (AttrType::Enum(e), Value::Enum(v)) => Some(e.by_value(*v)?.name),
        _ => None,
    }
}

/// The entity's administrative state (the `adminState` role).
pub fn admin(o: &ManagedObject) -> Admin {
    match role_label(o, Role::AdminState) {
        Some("locked") => Admin::Locked,
        Some("shuttingDown") => Admin::ShuttingDown,
        Some("unlocked") => Admin::Unlocked,
        _ => Admin::Unknown,
    }
}

/// The entity's operational state (the `operState` role).
pub fn oper(o: &ManagedObject) -> Oper {
    match role_label(o, Role::OperState) {
        Some("disabled") => Oper::Disabled,
        Some("enabled") => Oper::Enabled,
        _ => Oper::Unknown,
    }
}

/// Usage from the availability state: a primary carries the service
/// (active), a secondary or spare waits for it (idle).
pub fn usage(o: &ManagedObject) -> Usage {
    match role_label(o, Role::Availability) {
        Some("primary") => Usage::Active,
        Some("secondary" | "spare") => Usage::Idle,
        _ => Usage::Unknown,
    }
}

/// Standby from the availability state: a secondary is hot (checkpointed),
/// a spare cold.
pub fn standby(o: &ManagedObject) -> Standby {
    match role_label(o, Role::Availability) {
        Some("primary") => Standby::ProvidingService,
        Some("secondary") => Standby::HotStandby,
        Some("spare") => Standby::ColdStandby,
        _ => Standby::Unknown,
    }
}

/// When the entity's states last changed; `started` (the agent's start)
/// when the model knows of no change since (RFC 4268, RFC 8348).
pub fn state_last_changed(o: &ManagedObject, started: Timestamp) -> Timestamp {
    match o.by_role(Role::StateLastChanged) {
        Some(Value::Time(t)) => *t,
        _ => started,
    }
}

/// The entity's description (entPhysicalDescr, ietf-hardware `description`).
pub fn description(o: &ManagedObject) -> String {
    format!("{} {}", o.class.name, o.name)
}

/// The entity's model name (entPhysicalModelName, ietf-hardware
/// `model-name`): its attribute with the `modelName` role; None when it
/// has none or it is empty.
pub fn model_name(o: &ManagedObject) -> Option<&str> {
    o.by_role(Role::ModelName)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The entity's manufacturer (entPhysicalMfgName, ietf-hardware
/// `mfg-name`): the `mfgName`-role attribute of the entity or of its
/// nearest ancestor that has one (the element's vendor makes its
/// hardware unless a unit says otherwise), found through `by_index`.
pub fn mfg_name<'a>(
    o: &'a ManagedObject,
    by_index: impl Fn(u32) -> Option<&'a ManagedObject>,
) -> Option<&'a str> {
    let mut at = Some(o);
    // The containment tree is finite; the bound guards against a cycle.
    for _ in 0..4096 {
        let here = at?;
        if let Some(m) = here
            .by_role(Role::MfgName)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return Some(m);
        }
        at = by_index(here.parent_index);
    }
    None
}

/// The physical class of an object (`None`: not a physical entity).
pub fn class(o: &ManagedObject) -> Option<PhysicalClass> {
    o.class.entity()
}

/// The alarm-state bits (EntityAlarmStatus, ietf-hardware `alarm-state`:
/// the same bit numbers) of every alarmed resource, by persistent name.
/// Bit 0 is the most significant bit of the byte, as in SMIv2 BITS.
pub fn alarm_bits<'a>(objects: impl IntoIterator<Item = &'a ManagedObject>) -> HashMap<String, u8> {
    let mut bits: HashMap<String, u8> = HashMap::new();
    for a in objects.into_iter().filter(|o| alarm::is_active(o)) {
        let Some(bit) = alarm::severity(a).and_then(alarm_bit) else {
            continue;
        };
        if let Some(r) = alarm::resource(a) {
            *bits.entry(r.to_string()).or_default() |= 0x80 >> bit;
        }
    }
    bits
}

/// critical(2) major(3) minor(4) warning(5) indeterminate(6).
fn alarm_bit(s: PerceivedSeverity) -> Option<u8> {
    Some(match s {
        PerceivedSeverity::Critical => 2,
        PerceivedSeverity::Major => 3,
        PerceivedSeverity::Minor => 4,
        PerceivedSeverity::Warning => 5,
        PerceivedSeverity::Indeterminate => 6,
        _ => return None,
    })
}

/// The alarm-state bits' names, bit 0 first (ietf-hardware's spelling).
pub const ALARM_BIT_NAMES: [&str; 7] = [
    "unknown",
    "under-repair",
    "critical",
    "major",
    "minor",
    "warning",
    "indeterminate",
];

/// The names of the alarm-state bits set in `bits`, in bit order
/// (ietf-hardware's spelling).
pub fn alarm_bit_names(bits: u8) -> Vec<&'static str> {
    ALARM_BIT_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (0x80 >> i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The nearest physical ancestor of `o`, found through `by_index`
/// (an object's index to the object). Non-physical objects between them
/// (a node, a software group) are skipped.
pub fn parent<'a>(
    o: &ManagedObject,
    by_index: impl Fn(u32) -> Option<&'a ManagedObject>,
) -> Option<&'a ManagedObject> {
    let mut at = o.parent_index;
    // The containment tree is finite; the bound guards against a cycle.
    for _ in 0..4096 {
        let p = by_index(at)?;
        if class(p).is_some() {
            return Some(p);
        }
        at = p.parent_index;
    }
    None
}

/// A sensor's reading, as entPhySensorTable and ietf-hardware's
/// `sensor-data` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    /// In the sensor's scale; 0 without a reading (as entPhySensorValue).
    pub value: i64,
    pub ty: SensorType,
    pub scale: SensorScale,
    pub status: SensorStatus,
    pub units: &'static str,
}

/// One physical component as every face shows it (ENTITY-MIB's
/// entPhysicalTable with ENTITY-STATE-MIB's states, ietf-hardware's
/// `component`, the HTTP API's hardware view): an entity, or a sensor of
/// one (then `sensor` holds its reading).
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub index: u32,
    pub name: String,
    pub class: PhysicalClass,
    pub description: String,
    pub parent: Option<String>,
    pub parent_rel_pos: Option<u32>,
    /// Contained entities, then the entity's sensors.
    pub children: Vec<String>,
    pub hardware_rev: Option<String>,
    pub serial_num: Option<String>,
    pub mfg_name: Option<String>,
    pub model_name: Option<String>,
    pub alias: Option<String>,
    pub is_fru: bool,
    pub state_last_changed: Timestamp,
    pub admin: Admin,
    pub oper: Oper,
    pub usage: Usage,
    /// Alarm-state bits ([`alarm_bit_names`]).
    pub alarm: u8,
    pub standby: Standby,
    pub sensor: Option<SensorReading>,
}

fn role_text(o: &ManagedObject, role: Role) -> Option<String> {
    o.by_role(role)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Every physical component among `objects` (which must hold the entities'
/// ancestors and the element's alarms): the entities in index order, then
/// their sensors. `started` is when the agent started (the state change
/// time of an entity that has not changed since).
pub fn components(objects: &[ManagedObject], started: Timestamp) -> Vec<Component> {
    let by_index: HashMap<u32, &ManagedObject> = objects.iter().map(|o| (o.index, o)).collect();
    let lookup = |i: u32| by_index.get(&i).copied();
    let mut entities: Vec<&ManagedObject> = objects.iter().filter(|o| class(o).is_some()).collect();
    entities.sort_by_key(|o| o.index);
    let parents: Vec<Option<&ManagedObject>> = entities.iter().map(|o| parent(o, lookup)).collect();
    let mut children: HashMap<u32, Vec<String>> = HashMap::new();
    for (o, p) in entities.iter().zip(&parents) {
        if let Some(p) = p {
            children
                .entry(p.index)
                .or_default()
                .push(o.name.to_string());
        }
    }
    let sensors: Vec<Sensor> = entities.iter().flat_map(|o| sensors(o)).collect();
    for s in &sensors {
        children.entry(s.entity.index).or_default().push(s.name());
    }
    let alarms = alarm_bits(objects);
    let mut out = Vec::with_capacity(entities.len() + sensors.len());
    for (o, p) in entities.iter().zip(&parents) {
        let Some(cls) = class(o) else { continue };
        out.push(Component {
            index: o.index,
            name: o.name.to_string(),
            class: cls,
            description: description(o),
            parent: p.map(|p| p.name.to_string()),
            parent_rel_pos: match o.by_role(Role::ParentRelPos) {
                Some(Value::U32(pos)) => Some(*pos),
                _ => None,
            },
            children: children.remove(&o.index).unwrap_or_default(),
            hardware_rev: role_text(o, Role::HardwareRev),
            serial_num: role_text(o, Role::SerialNum),
            mfg_name: mfg_name(o, lookup).map(str::to_string),
            model_name: model_name(o).map(str::to_string),
            alias: role_text(o, Role::Alias),
            is_fru: o.class.is_fru,
            state_last_changed: state_last_changed(o, started),
            admin: admin(o),
            oper: oper(o),
            usage: usage(o),
            alarm: alarms.get(o.name.as_str()).copied().unwrap_or(0),
            standby: standby(o),
            sensor: None,
        });
    }
    for s in &sensors {
        let Some(index) = s.index() else { continue };
        let status = s.status();
        out.push(Component {
            index,
            name: s.name(),
            class: PhysicalClass::Sensor,
            description: s.description(),
            parent: Some(s.entity.name.to_string()),
            parent_rel_pos: None,
            children: Vec::new(),
            hardware_rev: None,
            serial_num: None,
            mfg_name: mfg_name(s.entity, lookup).map(str::to_string),
            model_name: None,
            alias: None,
            is_fru: false,
            state_last_changed: state_last_changed(s.entity, started),
            admin: Admin::Unknown,
            oper: match status {
                SensorStatus::Ok => Oper::Enabled,
                SensorStatus::Nonoperational => Oper::Disabled,
                SensorStatus::Unavailable => Oper::Unknown,
            },
            usage: Usage::Unknown,
            alarm: 0,
            standby: Standby::Unknown,
            sensor: Some(SensorReading {
                value: s.value().unwrap_or(0),
                ty: s.ty,
                scale: s.scale,
                status,
                units: s.units(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_bits_are_named_in_bit_order() {
        assert_eq!(alarm_bit_names(0), Vec::<&str>::new());
        assert_eq!(
            alarm_bit_names((0x80 >> 2) | (0x80 >> 5)),
            vec!["critical", "warning"]
        );
        assert_eq!(alarm_bit(PerceivedSeverity::Cleared), None);
        assert_eq!(alarm_bit(PerceivedSeverity::Major), Some(3));
    }
}
