//! What an alarm is, said once for every face (SNMP, NETCONF, HTTP,
//! /metrics and the agent's alarm manager): which objects are alarms,
//! whether one is active, and its severity, resource and acknowledgement.
//! The faces ask here instead of reading the Alarm class's attributes.

use crate::SCHEMA;
use crate::Timestamp;
use crate::model::{AlarmTrend, EventType, OperatorState, PerceivedSeverity, ProbableCause};
use crate::port::ManagedObject;
use crate::value::{SchemaEnum, Value};

/// The schema class every alarm is (or derives from).
pub const CLASS: &str = "Alarm";

/// The indication that the alarm inventory changed (ietf-alarms
/// alarm-inventory-changed).
pub const INVENTORY_CHANGED: &str = "AlarmInventoryChanged";

/// Whether `o` is an alarm.
pub fn is_alarm(o: &ManagedObject) -> bool {
    SCHEMA.is_a(o.class.name, CLASS)
}

/// An active alarm: an alarm not cleared. The agent clears an alarm by
/// setting both its severity to `cleared` and its `ClearedAt`; either one
/// marks it cleared, so no face counts a half-written clear as active.
pub fn is_active(o: &ManagedObject) -> bool {
    is_alarm(o)
        && matches!(o.get("ClearedAt"), None | Some(Value::Absent))
        && severity(o).is_some_and(|s| s != PerceivedSeverity::Cleared)
}

/// The alarm's perceived severity.
pub fn severity(o: &ManagedObject) -> Option<PerceivedSeverity> {
    match o.get("Severity") {
        Some(Value::Enum(v)) => PerceivedSeverity::from_value(*v),
        _ => None,
    }
}

/// The severity the alarm had when last raised, kept after it is cleared
/// (ietf-alarms reports it for a cleared alarm); its severity when the
/// agent recorded no other (alarms of an older release).
pub fn last_severity(o: &ManagedObject) -> Option<PerceivedSeverity> {
    match o.get("LastSeverity") {
        Some(Value::Enum(v)) => PerceivedSeverity::from_value(*v),
        _ => severity(o).filter(|s| *s != PerceivedSeverity::Cleared),
    }
}

/// The alarm's probable cause (its alarm type).
pub fn cause(o: &ManagedObject) -> Option<ProbableCause> {
    match o.get("ProbableCause") {
        Some(Value::Enum(v)) => ProbableCause::from_value(*v),
        _ => None,
    }
}

/// When it was raised, changed and cleared.
pub fn times(o: &ManagedObject) -> (Option<Timestamp>, Option<Timestamp>, Option<Timestamp>) {
    let t = |a: &str| match o.get(a) {
        Some(Value::Time(t)) => Some(*t),
        _ => None,
    };
    (t("RaisedAt"), t("ChangedAt"), t("ClearedAt"))
}

/// When the alarm last changed: the latest of its raise, change and clear.
pub fn last_changed(o: &ManagedObject) -> Option<Timestamp> {
    let (raised, changed, cleared) = times(o);
    [raised, changed, cleared].into_iter().flatten().max()
}

/// The alarm's text (X.733 specific problem).
pub fn text(o: &ManagedObject) -> &str {
    o.get("SpecificProblem")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The root alarm of a secondary alarm.
pub fn root_alarm(o: &ManagedObject) -> Option<&str> {
    o.get("RootAlarm")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What an alarm indication (a notification class with an attribute of
/// the `alarm` role: raised, changed, cleared) says: the resource, the
/// cause, and the severity (`cleared` for an indication without one).
pub fn indication(
    class: &crate::meta::ClassMeta,
    values: &[Value],
) -> Option<(
    String,
    crate::model::ProbableCause,
    PerceivedSeverity,
    String,
)> {
    class.attribute_by_role(crate::meta::Role::Alarm)?;
    let get = |a: &str| class.attribute(a).and_then(|(i, _)| values.get(i));
    let resource = get("Resource").and_then(Value::as_str)?.to_string();
    let cause = match get("ProbableCause") {
        Some(Value::Enum(v)) => crate::model::ProbableCause::from_value(*v)?,
        _ => return None,
    };
    let severity = match get("Severity") {
        Some(Value::Enum(v)) => PerceivedSeverity::from_value(*v)?,
        _ => PerceivedSeverity::Cleared,
    };
    let text = get("SpecificProblem")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((resource, cause, severity, text))
}

/// The alarm's operation that acknowledges it (ietf-alarms operator state `ack`).
pub const ACKNOWLEDGE: &str = "Acknowledge";

/// Who acknowledged the alarm, and when (None: not acknowledged).
pub fn acknowledgement(o: &ManagedObject) -> Option<(&str, Timestamp)> {
    if !acknowledged(o) {
        return None;
    }
    let who = o
        .get("AcknowledgedBy")
        .and_then(Value::as_str)
        .unwrap_or("");
    match o.get("AcknowledgedAt") {
        Some(Value::Time(t)) => Some((who, *t)),
        // Acknowledged by an older release, which kept no time.
        _ => None,
    }
}

/// The schema operation of the element that purges alarms (ietf-alarms
/// purge-alarms), and its arguments: clearance (`any`, `cleared`,
/// `not-cleared`), age in seconds, severity filter (`is|above|below
/// <severity>` or empty), and whether the shelved alarms are purged
/// instead of the alarm list's.
pub const PURGE: &str = "PurgeAlarms";

/// What [`PURGE`] selects, and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeFilter {
    /// `any`, `cleared`, `not-cleared` or `none`.
    pub clearance: String,
    /// Only alarms whose last change is at least this many seconds old.
    pub older_than_s: u32,
    /// Empty (any) or `is|above|below <severity>`.
    pub severity: String,
    /// The shelved alarms instead of the alarm list's.
    pub shelved: bool,
    /// Only alarms whose operator state is this one (its ietf-alarms
    /// name; an alarm no operator touched is `none`); empty: any.
    pub operator_state: String,
    /// Only alarms whose operator state this user set last; empty: any.
    pub operator: String,
}

impl Default for PurgeFilter {
    fn default() -> Self {
        PurgeFilter {
            clearance: "cleared".into(),
            older_than_s: 0,
            severity: String::new(),
            shelved: false,
            operator_state: String::new(),
            operator: String::new(),
        }
    }
}

impl PurgeFilter {
    /// The operation's arguments.
    pub fn args(&self) -> Vec<(String, Value)> {
        vec![
            ("Clearance".into(), Value::Str(self.clearance.clone())),
            ("OlderThan".into(), Value::U32(self.older_than_s)),
            ("Severity".into(), Value::Str(self.severity.clone())),
            ("Shelved".into(), Value::Bool(self.shelved)),
            (
                "OperatorState".into(),
                Value::Str(self.operator_state.clone()),
            ),
            ("Operator".into(), Value::Str(self.operator.clone())),
        ]
    }

    /// From the operation's arguments (names in any case; a missing one
    /// takes its default).
    pub fn from_args(args: &[(String, Value)]) -> Self {
        let get = |n: &str| {
            args.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v)
        };
        let text = |n: &str| get(n).and_then(Value::as_str).map(str::to_string);
        let d = PurgeFilter::default();
        PurgeFilter {
            clearance: text("Clearance").unwrap_or(d.clearance),
            older_than_s: match get("OlderThan") {
                Some(Value::U32(s)) => *s,
                _ => 0,
            },
            severity: text("Severity").unwrap_or_default(),
            shelved: matches!(get("Shelved"), Some(Value::Bool(true))),
            operator_state: text("OperatorState").unwrap_or_default(),
            operator: text("Operator").unwrap_or_default(),
        }
    }
}

/// The class whose root object carries [`PURGE`].
pub fn purge_class() -> Option<&'static crate::ClassMeta> {
    SCHEMA
        .object_classes()
        .find(|c| c.methods.iter().any(|m| m.name == PURGE))
}

/// The alarmed resource's persistent name.
pub fn resource(o: &ManagedObject) -> Option<&str> {
    o.get("Resource").and_then(Value::as_str)
}

/// Whether an operator acknowledged it.
pub fn acknowledged(o: &ManagedObject) -> bool {
    matches!(o.get("Acknowledged"), Some(Value::Bool(true)))
}

/// The X.733 event type of the alarms of a probable cause: one per alarm
/// type, so the alarm engine and every face's alarm model agree.
pub fn event_type(cause: ProbableCause) -> EventType {
    match cause {
        ProbableCause::PowerProblem
        | ProbableCause::CoolingFanFailure
        | ProbableCause::HighTemperature => EventType::EnvironmentalAlarm,
        ProbableCause::SoftwareError | ProbableCause::ApplicationSubsystemFailure => {
            EventType::ProcessingErrorAlarm
        }
        ProbableCause::ThresholdCrossed => EventType::QualityOfServiceAlarm,
        _ => EventType::EquipmentAlarm,
    }
}

/// A severity's place in X.733's order: cleared 0, indeterminate 1,
/// warning 2, minor 3, major 4, critical 5.
pub fn rank(s: PerceivedSeverity) -> u32 {
    match s {
        PerceivedSeverity::Cleared => 0,
        PerceivedSeverity::Indeterminate => 1,
        PerceivedSeverity::Warning => 2,
        PerceivedSeverity::Minor => 3,
        PerceivedSeverity::Major => 4,
        PerceivedSeverity::Critical => 5,
    }
}

/// The X.733 trend of an alarm raised or changed to `new` on a resource
/// whose other outstanding (active) alarms have `outstanding` severities:
/// more severe than all of them, as severe as the most severe, or less.
/// None when nothing else is outstanding (X.733 then gives no trend).
pub fn trend_among(
    new: PerceivedSeverity,
    outstanding: impl IntoIterator<Item = PerceivedSeverity>,
) -> Option<AlarmTrend> {
    let highest = outstanding.into_iter().map(rank).max()?;
    Some(match rank(new).cmp(&highest) {
        std::cmp::Ordering::Greater => AlarmTrend::MoreSevere,
        std::cmp::Ordering::Equal => AlarmTrend::NoChange,
        std::cmp::Ordering::Less => AlarmTrend::LessSevere,
    })
}

/// The alarm's X.733 trend at its last raise or change (None: no other
/// alarm of its resource was outstanding).
pub fn trend(o: &ManagedObject) -> Option<AlarmTrend> {
    match o.get("Trend") {
        Some(Value::Enum(v)) => AlarmTrend::from_value(*v),
        _ => None,
    }
}

/// The alarm's event type as recorded (its cause's when none was).
pub fn recorded_event_type(o: &ManagedObject) -> Option<EventType> {
    match o.get("EventType") {
        Some(Value::Enum(v)) => EventType::from_value(*v),
        _ => cause(o).map(event_type),
    }
}

/// When an entry of an alarm's history (a status change or an operator
/// action) happened.
pub fn history_time(o: &ManagedObject) -> Option<Timestamp> {
    match o.get("Time") {
        Some(Value::Time(t)) => Some(*t),
        _ => None,
    }
}

/// The class of an alarm's status changes (ietf-alarms status-change),
/// contained in the alarm.
pub const CHANGE_CLASS: &str = "AlarmStatusChange";

/// A status change: when, the severity from then on (`cleared` for a
/// clear), and the text.
pub fn status_change(o: &ManagedObject) -> Option<(Timestamp, PerceivedSeverity, &str)> {
    if !SCHEMA.is_a(o.class.name, CHANGE_CLASS) {
        return None;
    }
    let time = history_time(o)?;
    let severity = match o.get("Severity") {
        Some(Value::Enum(v)) => PerceivedSeverity::from_value(*v)?,
        _ => return None,
    };
    Some((
        time,
        severity,
        o.get("Text").and_then(Value::as_str).unwrap_or(""),
    ))
}

/// The values of a status change.
pub fn status_change_values(
    time: Timestamp,
    severity: PerceivedSeverity,
    text: &str,
) -> Vec<(&'static str, Value)> {
    vec![
        ("Time", Value::Time(time)),
        ("Severity", Value::Enum(severity.value())),
        ("Text", Value::Str(text.to_string())),
    ]
}

/// The alarm's operation that sets its operator state (ietf-alarms
/// set-operator-state): arguments `State` (the state's ietf-alarms name)
/// and `Text`.
pub const SET_OPERATOR_STATE: &str = "SetOperatorState";

/// The arguments of [`SET_OPERATOR_STATE`].
pub fn set_operator_state_args(state: OperatorState, text: &str) -> Vec<(String, Value)> {
    vec![
        ("State".into(), Value::Str(state.yang_name().into())),
        ("Text".into(), Value::Str(text.into())),
    ]
}

/// The operator state last set on the alarm (None: never set).
pub fn operator_state(o: &ManagedObject) -> Option<OperatorState> {
    match o.get("OperatorState") {
        Some(Value::Enum(v)) => OperatorState::from_value(*v),
        _ => None,
    }
}

/// The class of operators' actions on an alarm (ietf-alarms
/// operator-state-change), contained in the alarm.
pub const OPERATOR_ACTION_CLASS: &str = "AlarmOperatorAction";

/// An operator action: when, by whom, the state set and why.
pub fn operator_action(o: &ManagedObject) -> Option<(Timestamp, &str, OperatorState, &str)> {
    if !SCHEMA.is_a(o.class.name, OPERATOR_ACTION_CLASS) {
        return None;
    }
    let time = history_time(o)?;
    let state = match o.get("State") {
        Some(Value::Enum(v)) => OperatorState::from_value(*v)?,
        _ => return None,
    };
    let text = |a: &str| o.get(a).and_then(Value::as_str).unwrap_or("");
    Some((time, text("Operator"), state, text("Text")))
}

/// The values of an operator action.
pub fn operator_action_values(
    time: Timestamp,
    operator: &str,
    state: OperatorState,
    text: &str,
) -> Vec<(&'static str, Value)> {
    vec![
        ("Time", Value::Time(time)),
        ("Operator", Value::Str(operator.to_string())),
        ("State", Value::Enum(state.value())),
        ("Text", Value::Str(text.to_string())),
    ]
}

/// The element's attribute bounding the status changes kept per alarm
/// (ietf-alarms max-alarm-status-changes; 0: no limit).
pub const MAX_STATUS_CHANGES: &str = "MaxAlarmStatusChanges";

/// The element's bound on status changes per alarm (None: no limit).
pub fn max_status_changes(root: &ManagedObject) -> Option<u32> {
    match root.get(MAX_STATUS_CHANGES) {
        Some(Value::U32(0)) => None,
        Some(Value::U32(n)) => Some(*n),
        _ => Some(32),
    }
}

/// The class of alarm shelves (ietf-alarms alarm-shelving), created by
/// operators in the element.
pub const SHELF_CLASS: &str = "AlarmShelf";

/// A shelf's attributes: the resource it holds (empty: every one), the
/// alarm type (its ietf-alarms identity name; empty: every one) and why.
pub const SHELF_RESOURCE: &str = "Resource";
pub const SHELF_ALARM_TYPE: &str = "AlarmType";
pub const SHELF_REASON: &str = "Reason";

/// A shelf's name: its relative name's value (`ne=1/alarmshelf=<name>`).
pub fn shelf_name(o: &ManagedObject) -> &str {
    o.name.leaf().1
}

/// What a shelf holds: the resource (None: every resource) and the alarm
/// type (None: every type).
pub fn shelf_match(o: &ManagedObject) -> (Option<&str>, Option<ProbableCause>, bool) {
    let text = |a: &str| o.get(a).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (cause, known) = match text(SHELF_ALARM_TYPE) {
        None => (None, true),
        Some(t) => {
            let t = t.rsplit(':').next().unwrap_or(t);
            match t.parse::<ProbableCause>().ok() {
                Some(c) => (Some(c), true),
                None => (None, false),
            }
        }
    };
    (text(SHELF_RESOURCE), cause, known)
}

/// Whether a shelf holds alarms of `resource` and `cause`: both match
/// (an empty match matches all; an unknown alarm type matches nothing).
pub fn shelf_holds(shelf: &ManagedObject, resource: &str, cause: ProbableCause) -> bool {
    let (r, c, known) = shelf_match(shelf);
    known && r.is_none_or(|r| r == resource) && c.is_none_or(|c| c == cause)
}

/// A shelf's reason.
pub fn shelf_reason(o: &ManagedObject) -> &str {
    o.get(SHELF_REASON).and_then(Value::as_str).unwrap_or("")
}

/// The shelf holding an alarm (None: not shelved).
pub fn shelf(o: &ManagedObject) -> Option<&str> {
    o.get("Shelf")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The element's operation that compresses alarms' status changes
/// (ietf-alarms compress-alarms), and its arguments: resource and alarm
/// type (empty: all).
pub const COMPRESS: &str = "CompressAlarms";

/// The arguments of [`COMPRESS`].
pub fn compress_args(resource: &str, alarm_type: &str, shelved: bool) -> Vec<(String, Value)> {
    vec![
        ("Resource".into(), Value::Str(resource.into())),
        ("AlarmType".into(), Value::Str(alarm_type.into())),
        ("Shelved".into(), Value::Bool(shelved)),
    ]
}

/// The severities an active alarm can have, most severe first.
pub const ACTIVE_SEVERITIES: [PerceivedSeverity; 5] = [
    PerceivedSeverity::Critical,
    PerceivedSeverity::Major,
    PerceivedSeverity::Minor,
    PerceivedSeverity::Warning,
    PerceivedSeverity::Indeterminate,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectName, Timestamp};

    fn alarm(severity: PerceivedSeverity, cleared_at: Option<i64>) -> ManagedObject {
        let class = SCHEMA.class(CLASS).unwrap();
        let mut values = vec![Value::Absent; class.attributes.len()];
        let mut put = |a: &str, v: Value| values[class.attribute(a).unwrap().0] = v;
        put("Severity", Value::Enum(severity.value()));
        put("Resource", Value::Str("ne=1/shelf=1/fan=1".into()));
        if let Some(t) = cleared_at {
            put("ClearedAt", Value::Time(Timestamp(t)));
        }
        ManagedObject {
            class,
            index: 1,
            name: ObjectName::parse("ne=1/alarm=1").unwrap(),
            parent_index: 0,
            values,
        }
    }

    /// The three definitions this replaces disagreed on exactly these.
    #[test]
    fn active_means_neither_cleared_severity_nor_cleared_time() {
        assert!(is_active(&alarm(PerceivedSeverity::Major, None)));
        assert!(!is_active(&alarm(PerceivedSeverity::Cleared, None)));
        assert!(!is_active(&alarm(PerceivedSeverity::Major, Some(5))));
        assert!(!is_active(&alarm(PerceivedSeverity::Cleared, Some(5))));
        assert_eq!(
            resource(&alarm(PerceivedSeverity::Major, None)),
            Some("ne=1/shelf=1/fan=1")
        );
        assert!(!acknowledged(&alarm(PerceivedSeverity::Major, None)));
    }
}
