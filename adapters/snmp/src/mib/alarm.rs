//! ALARM-MIB (RFC 3877) and ITU-ALARM-MIB: the one alarm engine's alarms
//! as the standard SNMP alarm tables.
//!
//! The alarm model is one alarm per alarm type (X.733 probable cause, the
//! schema's `alarmType` role: alarmModelIndex is the IANAItuProbableCause
//! number) in six states, clear (1) to critical (6), as ITU-ALARM-MIB maps
//! them. The active table lists the active alarms, the clear table the
//! cleared ones the element keeps (at most alarmClearMaximum, the
//! element's attribute with the `alarmClearMaximum` role). There is one,
//! unnamed, alarm list. The agent announces each alarm state change with
//! ALARM-MIB's own alarmActiveState and alarmClearState, so every model
//! row names those as its notification.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use halyard_cluster_model::alarm;
use halyard_cluster_model::meta::Role;
use halyard_cluster_model::model::{AlarmTrend, PerceivedSeverity, ProbableCause};
use halyard_cluster_model::port::{ManagedObject, ModelError};
use halyard_cluster_model::value::{SchemaEnum, Value};
use rasn_smi::v2::ObjectSyntax;

use super::snapshot::{Snapshot, physical_class};
use super::{Ctx, Mib, class_entry};
use crate::codec::{self, gauge32, int, object_id, octets, ticks};
use crate::oid::{self, Oid};

pub(super) const ALARM_MIB: &[u32] = &[1, 3, 6, 1, 2, 1, 118];
pub(super) const ITU_ALARM_MIB: &[u32] = &[1, 3, 6, 1, 2, 1, 121];
const MODEL_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 1, 2, 1];
pub(super) const ACTIVE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 2, 2, 1];
const VARIABLE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 2, 3, 1];
const STATS_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 2, 4, 1];
const CLEAR_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 3, 2, 1];
const ITU_MODEL_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 121, 1, 1, 1, 1];
const ITU_ACTIVE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 121, 1, 2, 1, 1];
const ITU_STATS_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 121, 1, 2, 2, 1];
/// alarmModelLastChanged, alarmActiveLastChanged, alarmActiveOverflow,
/// alarmClearMaximum (scalar nodes: the instance is `.0`).
pub(super) const MODEL_LAST_CHANGED: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 1, 1];
pub(super) const ACTIVE_LAST_CHANGED: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 2, 1];
pub(super) const ACTIVE_OVERFLOW: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 2, 5];
pub(super) const CLEAR_MAXIMUM: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 1, 3, 1];
/// alarmActiveState and alarmClearState.
pub const ACTIVE_STATE: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 0, 2];
pub const CLEAR_STATE: &[u32] = &[1, 3, 6, 1, 2, 1, 118, 0, 3];
const ZERO_DOT_ZERO: &[u32] = &[0, 0];
/// The one alarm list's name (zero length) as an index: its length.
const LIST: u32 = 0;
/// alarmActiveVariables: the bindings of alarmActiveState.
const VARIABLES: u32 = 4;

/// The tables of the two modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Model,
    Active,
    Variable,
    Stats,
    Clear,
    ItuModel,
    ItuActive,
    ItuStats,
}

impl Table {
    pub(super) const ALL: [(Self, &'static [u32]); 8] = [
        (Self::Model, MODEL_ENTRY),
        (Self::Active, ACTIVE_ENTRY),
        (Self::Variable, VARIABLE_ENTRY),
        (Self::Stats, STATS_ENTRY),
        (Self::Clear, CLEAR_ENTRY),
        (Self::ItuModel, ITU_MODEL_ENTRY),
        (Self::ItuActive, ITU_ACTIVE_ENTRY),
        (Self::ItuStats, ITU_STATS_ENTRY),
    ];

    /// The accessible columns.
    pub(super) fn columns(self) -> &'static [u32] {
        match self {
            Self::Model => &[3, 4, 5, 6, 7, 8, 9, 10],
            Self::Active => &[4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
            Self::Variable => &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            Self::Stats => &[1, 2, 3, 4],
            Self::Clear => &[3, 4, 5, 6, 7, 8, 9, 10],
            Self::ItuModel => &[2, 3, 4, 5],
            Self::ItuActive => &[1, 2, 3, 4],
            Self::ItuStats => &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        }
    }
}

/// One row: what its cells are computed from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Row {
    /// An alarm type in an alarmModelState.
    Model(ProbableCause, u32),
    /// An alarm (its position in the snapshot).
    Alarm(usize),
    /// An active alarm's variable (1-based).
    Variable(usize, u32),
    /// The alarm list.
    List,
}

/// The alarm tables' rows for one request, each sorted by index.
#[derive(Debug, Default)]
pub(super) struct AlarmView {
    model: Vec<(Oid, Row)>,
    itu_model: Vec<(Oid, Row)>,
    active: Vec<(Oid, Row)>,
    cleared: Vec<(Oid, Row)>,
    variables: Vec<(Oid, Row)>,
    list: Vec<(Oid, Row)>,
    /// alarmActiveResourceId of each listed alarm (by position).
    resources: HashMap<usize, Oid>,
    /// Active alarms per severity rank (alarm::rank).
    current: [u32; 6],
}

/// Counts kept since the agent started (the statistics tables), fed by
/// the alarm indications the agent sees.
#[derive(Debug, Default)]
pub(super) struct AlarmStats {
    /// Alarms raised.
    raised: AtomicU32,
    /// Alarms that entered each severity, by rank.
    entered: [AtomicU32; 6],
    last_raise: AtomicU32,
    last_clear: AtomicU32,
    /// sysUpTime of the last change of the active table.
    active_changed: AtomicU32,
}

impl AlarmStats {
    /// One alarm indication at `now` (sysUpTime): a raise (`new`), a
    /// severity change, or a clear.
    pub(super) fn note(&self, severity: PerceivedSeverity, new: bool, now: u32) {
        if severity == PerceivedSeverity::Cleared {
            self.last_clear.store(now, Ordering::Relaxed);
        } else {
            if new {
                self.raised.fetch_add(1, Ordering::Relaxed);
                self.last_raise.store(now, Ordering::Relaxed);
            }
            self.entered[alarm::rank(severity) as usize].fetch_add(1, Ordering::Relaxed);
        }
        self.active_changed.store(now, Ordering::Relaxed);
    }

    pub(super) fn active_changed(&self) -> u32 {
        self.active_changed.load(Ordering::Relaxed)
    }
}

/// alarmModelState of a severity: clear 1 ... critical 6.
pub fn model_state(s: PerceivedSeverity) -> u32 {
    alarm::rank(s) + 1
}

/// The severity of an alarmModelState (ITU-ALARM-MIB's mapping), the
/// inverse of [`model_state`].
fn state_severity(state: u32) -> Option<PerceivedSeverity> {
    PerceivedSeverity::ALL
        .into_iter()
        .find(|s| model_state(*s) == state)
}

/// The alarm types: every value of the enumeration with the `alarmType` role.
fn alarm_types() -> impl Iterator<Item = ProbableCause> {
    ProbableCause::META
        .values
        .iter()
        .filter_map(|v| ProbableCause::from_value(v.value))
}

/// alarmActiveModelPointer's value: the model row of an alarm type in a
/// state (its first accessible column, alarmModelNotificationId).
pub fn model_pointer(cause: ProbableCause, state: u32) -> Oid {
    oid::join(MODEL_ENTRY, &[3, LIST, cause.value(), state])
}

/// The index of an active (or cleared) alarm's row: the list, the
/// DateAndTime it was raised (cleared), and the alarm's stable index.
pub fn alarm_instance(at: halyard_cluster_model::Timestamp, index: u32) -> Oid {
    let dt = codec::date_and_time(at);
    let mut i = vec![LIST, dt.len() as u32];
    i.extend(dt.iter().map(|b| u32::from(*b)));
    i.push(index);
    i
}

/// The instance names of alarmActiveState's (alarmClearState's) bindings
/// for the alarm row `instance`.
pub fn notification_objects(instance: &[u32]) -> (Oid, Oid) {
    let mut model = oid::join(ACTIVE_ENTRY, &[13]);
    model.extend_from_slice(instance);
    let mut resource = oid::join(ACTIVE_ENTRY, &[10]);
    resource.extend_from_slice(instance);
    (model, resource)
}

/// ALARM-MIB ResourceId of a managed object: entPhysicalDescr of a
/// physical entity (as RFC 3877 asks), else the first column of its
/// HALYARD-CLUSTER-MIB row.
pub fn resource_id(o: &ManagedObject) -> Oid {
    if physical_class(o.class).is_some() {
        return vec![1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 2, o.index];
    }
    match o.class.attributes.iter().map(|a| a.column).min() {
        Some(col) => oid::join(&class_entry(o.class), &[col, o.index]),
        None => ZERO_DOT_ZERO.to_vec(),
    }
}

fn raised_at(o: &ManagedObject) -> halyard_cluster_model::Timestamp {
    let (raised, changed, _) = alarm::times(o);
    raised
        .or(changed)
        .unwrap_or(halyard_cluster_model::Timestamp(0))
}

/// SnmpAdminString: at most 255 octets, cut at a character boundary.
fn admin_string(s: &str) -> ObjectSyntax {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    octets(&s.as_bytes()[..end])
}

impl AlarmView {
    /// The rows of the alarm tables in `snap`; at most `clear_maximum`
    /// cleared alarms, the most recently cleared.
    pub(super) fn build(snap: &Snapshot, clear_maximum: Option<u32>) -> Self {
        let mut v = AlarmView {
            list: vec![(vec![LIST], Row::List)],
            ..AlarmView::default()
        };
        for cause in alarm_types() {
            for state in 1..=6 {
                let row = Row::Model(cause, state);
                v.model.push((vec![LIST, cause.value(), state], row));
                if let Some(s) = state_severity(state) {
                    v.itu_model
                        .push((vec![LIST, cause.value(), s.value()], row));
                }
            }
        }
        let by_name: HashMap<&str, usize> = snap
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.name.as_str(), i))
            .collect();
        let mut cleared = Vec::new();
        for (i, o) in snap.objects.iter().enumerate() {
            // A shelved alarm (ietf-alarms shelving) is out of the alarm
            // list on every face: ALARM-MIB has no shelf to show it in.
            if !alarm::is_alarm(o) || alarm::shelf(o).is_some() {
                continue;
            }
            let resource = alarm::resource(o).and_then(|r| by_name.get(r)).map_or_else(
                || ZERO_DOT_ZERO.to_vec(),
                |k| resource_id(&snap.objects[*k]),
            );
            if alarm::is_active(o) {
                let inst = alarm_instance(raised_at(o), o.index);
                for k in 1..=VARIABLES {
                    v.variables
                        .push((vec![LIST, o.index, k], Row::Variable(i, k)));
                }
                v.active.push((inst, Row::Alarm(i)));
                if let Some(s) = alarm::severity(o) {
                    v.current[alarm::rank(s) as usize] += 1;
                }
            } else if let (_, _, Some(at)) = alarm::times(o) {
                cleared.push((at, i));
            } else {
                continue;
            }
            v.resources.insert(i, resource);
        }
        // The most recently cleared first, then cut to the maximum.
        cleared.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        if let Some(m) = clear_maximum {
            cleared.truncate(m as usize);
        }
        v.cleared = cleared
            .into_iter()
            .map(|(at, i)| (alarm_instance(at, snap.objects[i].index), Row::Alarm(i)))
            .collect();
        for rows in [
            &mut v.model,
            &mut v.itu_model,
            &mut v.active,
            &mut v.cleared,
            &mut v.variables,
        ] {
            rows.sort_by(|a, b| a.0.cmp(&b.0));
        }
        v
    }

    pub(super) fn rows(&self, t: Table) -> &[(Oid, Row)] {
        match t {
            Table::Model => &self.model,
            Table::ItuModel => &self.itu_model,
            Table::Active | Table::ItuActive => &self.active,
            Table::Variable => &self.variables,
            Table::Clear => &self.cleared,
            Table::Stats | Table::ItuStats => &self.list,
        }
    }

    fn resource(&self, i: usize) -> Oid {
        self.resources
            .get(&i)
            .cloned()
            .unwrap_or_else(|| ZERO_DOT_ZERO.to_vec())
    }
}

/// What a cell needs besides the view.
pub(super) struct CellCtx<'a> {
    pub snap: &'a Snapshot,
    pub stats: &'a AlarmStats,
    pub engine_id: &'a [u8],
}

/// One cell of an alarm table; None: no such instance.
pub(super) fn cell(
    t: Table,
    v: &AlarmView,
    c: &CellCtx<'_>,
    col: u32,
    row: Row,
) -> Option<ObjectSyntax> {
    let zero = || object_id(ZERO_DOT_ZERO);
    match (t, row) {
        (Table::Model, Row::Model(cause, state)) => Some(match col {
            3 => object_id(if state == 1 {
                CLEAR_STATE
            } else {
                ACTIVE_STATE
            }),
            4 => gauge32(0),
            5 => int(0),
            6 => admin_string(&format!(
                "{} {}",
                cause.label(),
                state_severity(state)?.label()
            )),
            7 => object_id(&oid::join(
                ITU_MODEL_ENTRY,
                &[2, LIST, cause.value(), state_severity(state)?.value()],
            )),
            8 | 9 => zero(),
            // RowStatus active(1): the model is the engine's, fixed.
            10 => int(1),
            _ => return None,
        }),
        (Table::ItuModel, Row::Model(cause, state)) => Some(match col {
            2 => int(i64::from(alarm::event_type(cause).value())),
            3 => int(i64::from(cause.value())),
            4 => admin_string(
                ProbableCause::META
                    .by_value(cause.value())
                    .map_or("", |m| m.description),
            ),
            5 => object_id(&model_pointer(cause, state)),
            _ => return None,
        }),
        (Table::Active | Table::Clear, Row::Alarm(i)) => {
            let o = &c.snap.objects[i];
            let cleared = t == Table::Clear;
            let state = if cleared {
                1
            } else {
                model_state(alarm::severity(o)?)
            };
            Some(match (col, cleared) {
                (4, false) | (3, true) => octets(c.engine_id.to_vec()),
                // InetAddressType unknown(0), no address: the alarm is
                // this engine's own.
                (5, false) | (4, true) => int(0),
                (6, false) | (5, true) => octets(Vec::new()),
                (7, false) | (6, true) => octets(Vec::new()),
                (8, false) => gauge32(VARIABLES),
                (9, false) => object_id(ACTIVE_STATE),
                (7, true) => object_id(CLEAR_STATE),
                (10, false) | (8, true) => object_id(&v.resource(i)),
                (11, false) => {
                    let text = alarm::text(o);
                    let resource = alarm::resource(o).unwrap_or("");
                    admin_string(&if text.is_empty() {
                        resource.to_string()
                    } else {
                        format!("{text} ({resource})")
                    })
                }
                (12, false) | (14, false) => zero(),
                (9, true) => gauge32(0),
                (13, false) | (10, true) => object_id(&model_pointer(alarm::cause(o)?, state)),
                _ => return None,
            })
        }
        (Table::ItuActive, Row::Alarm(i)) => {
            let o = &c.snap.objects[i];
            Some(match col {
                // With no other alarm of the resource outstanding, X.733
                // gives no trend; the column must have one: noChange.
                1 => int(i64::from(
                    alarm::trend(o).unwrap_or(AlarmTrend::NoChange).value(),
                )),
                2..=4 => zero(),
                _ => return None,
            })
        }
        (Table::Variable, Row::Variable(i, k)) => {
            let o = &c.snap.objects[i];
            let inst = alarm_instance(raised_at(o), o.index);
            let (model_name, resource_name) = notification_objects(&inst);
            // As alarmActiveState carried them: sysUpTime (at the raise),
            // snmpTrapOID, then its two objects.
            let (id, kind, value) = match k {
                1 => {
                    let ms = (raised_at(o).0 - c.snap.started.0).max(0);
                    (
                        oid::SYS_UPTIME.to_vec(),
                        3,
                        ticks(u32::try_from(ms / 10).unwrap_or(u32::MAX)),
                    )
                }
                2 => (oid::SNMP_TRAP_OID.to_vec(), 7, object_id(ACTIVE_STATE)),
                3 => (
                    model_name,
                    7,
                    object_id(&model_pointer(
                        alarm::cause(o)?,
                        model_state(alarm::severity(o)?),
                    )),
                ),
                _ => (resource_name, 7, object_id(&v.resource(i))),
            };
            // The value sits in the column of its type: timeTicks(3) in 6,
            // objectId(7) in 10.
            let value_col = if kind == 3 { 6 } else { 10 };
            match col {
                2 => Some(object_id(&id)),
                3 => Some(int(kind)),
                c if c == value_col => Some(value),
                _ => None,
            }
        }
        (Table::Stats, Row::List) => {
            let s = c.stats;
            Some(match col {
                1 => gauge32(v.current[1..].iter().sum()),
                2 => gauge32(s.raised.load(Ordering::Relaxed)),
                3 => ticks(s.last_raise.load(Ordering::Relaxed)),
                4 => ticks(s.last_clear.load(Ordering::Relaxed)),
                _ => return None,
            })
        }
        (Table::ItuStats, Row::List) => {
            // Columns 1-5 and 6-10: indeterminate, critical, major, minor, warning.
            let order = [1usize, 5, 4, 3, 2];
            let k = order[((col.checked_sub(1)?) % 5) as usize];
            Some(gauge32(if col <= 5 {
                v.current[k]
            } else if col <= 10 {
                c.stats.entered[k].load(Ordering::Relaxed)
            } else {
                return None;
            }))
        }
        _ => None,
    }
}

impl Mib {
    fn cell_ctx<'a>(&'a self, snap: &'a Snapshot) -> CellCtx<'a> {
        CellCtx {
            snap,
            stats: &self.alarm_stats,
            engine_id: &self.engine.id,
        }
    }

    /// The alarm tables' rows for this request (built once per request).
    async fn alarm_view(
        &self,
        ctx: &mut Ctx,
    ) -> Result<(Arc<Snapshot>, Arc<AlarmView>), ModelError> {
        let snap = self.snapshot(ctx).await?;
        if let Some(v) = &ctx.alarms {
            return Ok((snap, v.clone()));
        }
        let maximum = match self.root_attribute(Role::AlarmClearMaximum).await? {
            Some((o, i)) => match o.values.get(i) {
                Some(Value::U32(n)) => Some(*n),
                _ => None,
            },
            None => None,
        };
        let v = Arc::new(AlarmView::build(&snap, maximum));
        ctx.alarms = Some(v.clone());
        Ok((snap, v))
    }

    /// GET of an alarm table's cell (`rel`: column and index).
    pub(super) async fn alarm_get(
        &self,
        ctx: &mut Ctx,
        t: Table,
        rel: &[u32],
    ) -> Result<Option<ObjectSyntax>, ModelError> {
        let Some((col, index)) = rel.split_first() else {
            return Ok(None);
        };
        if !t.columns().contains(col) {
            return Ok(None);
        }
        let (snap, v) = self.alarm_view(ctx).await?;
        let c = self.cell_ctx(&snap);
        let rows = v.rows(t);
        Ok(rows
            .binary_search_by(|(k, _)| k.as_slice().cmp(index))
            .ok()
            .and_then(|k| cell(t, &v, &c, *col, rows[k].1)))
    }

    /// GETNEXT within an alarm table: the first cell after `rel` (None:
    /// from the table's start).
    pub(super) async fn alarm_next(
        &self,
        ctx: &mut Ctx,
        t: Table,
        prefix: &[u32],
        rel: Option<&[u32]>,
    ) -> Result<Option<(Oid, ObjectSyntax)>, ModelError> {
        let columns = t.columns();
        let (pos, rest) = super::lookup::column_start(columns, rel);
        if pos >= columns.len() {
            return Ok(None);
        }
        let (snap, v) = self.alarm_view(ctx).await?;
        let c = self.cell_ctx(&snap);
        let rows = v.rows(t);
        for (k, col) in columns.iter().enumerate().skip(pos) {
            let start = match rest {
                Some(r) if k == pos => rows.partition_point(|(i, _)| i.as_slice() <= r),
                _ => 0,
            };
            for (index, row) in &rows[start..] {
                if let Some(value) = cell(t, &v, &c, *col, *row) {
                    let mut name = oid::join(prefix, &[*col]);
                    name.extend_from_slice(index);
                    return Ok(Some((name, value)));
                }
            }
        }
        Ok(None)
    }

    /// One alarm indication seen (ALARM-MIB statistics and
    /// alarmActiveLastChanged).
    pub fn note_alarm(&self, severity: PerceivedSeverity, new: bool) {
        self.alarm_stats
            .note(severity, new, self.engine.uptime_ticks());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ITU-ALARM-MIB's mapping of alarmModelState to ituAlarmPerceivedSeverity.
    #[test]
    fn model_states_map_as_itu_alarm_mib_says() {
        let itu: Vec<u32> = (1..=6)
            .map(|s| state_severity(s).unwrap().value())
            .collect();
        assert_eq!(itu, [1, 2, 6, 5, 4, 3]);
        for s in 1..=6 {
            assert_eq!(model_state(state_severity(s).unwrap()), s);
        }
        assert_eq!(state_severity(7), None);
        assert_eq!(state_severity(0), None);
    }

    #[test]
    fn an_alarm_row_is_indexed_by_list_time_and_index() {
        let i = alarm_instance(halyard_cluster_model::Timestamp(1_795_714_200_200), 42);
        assert_eq!(i, [0, 11, 0x07, 0xea, 11, 26, 17, 30, 0, 2, 43, 0, 0, 42]);
    }
}
