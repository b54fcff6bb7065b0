//! OID lookup: the node an OID falls in, GET of one instance and GETNEXT across the nodes.

use halyard_cluster_model::port::ModelError;
use rasn_smi::v2::ObjectSyntax;
use rasn_snmp::v2::VarBindValue;

use super::entity::{
    ENT_PHYSICAL_COLUMNS, ENT_SENSOR_COLUMNS, ent_physical, ent_physical_sensor, ent_sensor,
};
use super::entity_state::{ENT_STATE_COLUMNS, ent_state, ent_state_sensor};
use super::interfaces::{alias_mapping, if_column};
use super::{Ctx, Mib, Node, class_entry};
use crate::codec::{encode_value, int, object_id, ticks};
use crate::oid::{self, Oid};

/// Where the columns scan starts: the first column position at or after
/// the requested one, and the index to continue after (None: all rows).
pub(super) fn column_start<'a>(
    columns: &[u32],
    rel: Option<&'a [u32]>,
) -> (usize, Option<&'a [u32]>) {
    match rel {
        None | Some([]) => (0, None),
        Some([c, rest @ ..]) => {
            let pos = columns.partition_point(|x| x < c);
            if columns.get(pos) == Some(c) && !rest.is_empty() {
                (pos, Some(rest))
            } else {
                (pos, None)
            }
        }
    }
}

impl Mib {
    pub(super) fn find_node(&self, oid: &[u32]) -> Option<(&Oid, &Node)> {
        // The last node whose prefix is <= oid is the only candidate.
        let pos = self.nodes.partition_point(|(p, _)| p.as_slice() <= oid);
        let (p, n) = self.nodes.get(pos.checked_sub(1)?)?;
        oid.starts_with(p).then_some((p, n))
    }

    /// GET of one instance.
    pub async fn get(&self, ctx: &mut Ctx, oid: &[u32]) -> Result<VarBindValue, ModelError> {
        let Some((prefix, node)) = self.find_node(oid) else {
            return Ok(VarBindValue::NoSuchObject);
        };
        let rel = &oid[prefix.len()..];
        let found = match node {
            Node::Scalar(s) => {
                return Ok(if rel == [0] {
                    VarBindValue::Value(self.scalar(*s).await?)
                } else {
                    VarBindValue::NoSuchInstance
                });
            }
            Node::Fixed(rows) => return Ok(fixed_get(rows, rel)),
            Node::Live(rows) => {
                let rows = rows.read().unwrap_or_else(|e| e.into_inner()).clone();
                return Ok(fixed_get(&rows, rel));
            }
            Node::Alarm(t) => {
                if !rel.first().is_some_and(|c| t.columns().contains(c)) {
                    return Ok(VarBindValue::NoSuchObject);
                }
                self.alarm_get(ctx, *t, rel).await?
            }
            Node::EntLastChange => {
                if rel != [0] {
                    return Ok(VarBindValue::NoSuchInstance);
                }
                let snap = self.snapshot(ctx).await?;
                return Ok(VarBindValue::Value(ticks(self.last_change(&snap))));
            }
            Node::Class(class, cols, _) => {
                let Some(col) = rel.first() else {
                    return Ok(VarBindValue::NoSuchObject);
                };
                let Some((_, ai)) = cols.iter().find(|(c, _)| c == col) else {
                    return Ok(VarBindValue::NoSuchObject);
                };
                let [_, index] = rel else {
                    return Ok(VarBindValue::NoSuchInstance);
                };
                match self.model.get_by_index(*index).await {
                    Ok(mut o) if o.class.name == class.name => {
                        if ctx.visible(&mut o) {
                            encode_value(&class.attributes[*ai], &o.values[*ai])
                        } else {
                            None
                        }
                    }
                    Ok(_) | Err(ModelError::NoSuchObject { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
            Node::ObjectTable => {
                let (Some(col), [_, index]) = (rel.first(), rel) else {
                    return Ok(self.missing_column(rel, &[2, 3, 4]));
                };
                if !(2..=4).contains(col) {
                    return Ok(VarBindValue::NoSuchObject);
                }
                match self.model.get_by_index(*index).await {
                    Ok(mut o) => ctx.visible(&mut o).then(|| self.object_row(*col, &o)),
                    Err(ModelError::NoSuchObject { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
            Node::ChildTable => {
                let [col, parent, child] = rel else {
                    return Ok(self.missing_column(rel, &[2]));
                };
                if *col != 2 {
                    return Ok(VarBindValue::NoSuchObject);
                }
                match self.model.get_by_index(*child).await {
                    Ok(mut o) if o.parent_index == *parent => {
                        ctx.visible(&mut o).then(|| self.entry_of(o.class))
                    }
                    Ok(_) | Err(ModelError::NoSuchObject { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
            Node::EntContains => {
                let [col, parent, child] = rel else {
                    return Ok(self.missing_column(rel, &[1]));
                };
                if *col != 1 {
                    return Ok(VarBindValue::NoSuchObject);
                }
                let snap = self.snapshot(ctx).await?;
                snap.contains
                    .binary_search(&(*parent, *child))
                    .ok()
                    .map(|_| int(i64::from(*child)))
            }
            Node::EntPhysical | Node::EntState => {
                let cols = if matches!(node, Node::EntPhysical) {
                    ENT_PHYSICAL_COLUMNS
                } else {
                    ENT_STATE_COLUMNS
                };
                let [col, index] = rel else {
                    return Ok(self.missing_column(rel, cols));
                };
                if !cols.contains(col) {
                    return Ok(VarBindValue::NoSuchObject);
                }
                let snap = self.snapshot(ctx).await?;
                if let Some(s) = snap.sensor_at(*index).and_then(|k| snap.sensor(k)) {
                    if matches!(node, Node::EntPhysical) {
                        ent_physical_sensor(&snap, *col, &s)
                    } else {
                        ent_state_sensor(&snap, *col, &s)
                    }
                } else {
                    snap.by_index
                        .get(index)
                        .filter(|i| snap.physical.contains(i))
                        .and_then(|i| {
                            let o = &snap.objects[*i];
                            if matches!(node, Node::EntPhysical) {
                                ent_physical(&snap, *col, o)
                            } else {
                                ent_state(&snap, *col, o)
                            }
                        })
                }
            }
            Node::EntAliasMapping => {
                let [col, index, logical] = rel else {
                    return Ok(self.missing_column(rel, &[2]));
                };
                if *col != 2 {
                    return Ok(VarBindValue::NoSuchObject);
                }
                let snap = self.snapshot(ctx).await?;
                snap.by_index
                    .get(index)
                    .filter(|i| *logical == 0 && snap.interfaces.contains(i))
                    .map(|i| alias_mapping(&snap.objects[*i]))
            }
            Node::IfNumber => {
                if rel != [0] {
                    return Ok(VarBindValue::NoSuchInstance);
                }
                let snap = self.snapshot(ctx).await?;
                return Ok(VarBindValue::Value(int(snap.interfaces.len() as i64)));
            }
            Node::Interfaces(t) => {
                let cols = t.columns();
                let [col, index] = rel else {
                    return Ok(self.missing_column(rel, cols));
                };
                if !cols.contains(col) {
                    return Ok(VarBindValue::NoSuchObject);
                }
                let snap = self.snapshot(ctx).await?;
                snap.by_index
                    .get(index)
                    .filter(|i| snap.interfaces.contains(i))
                    .and_then(|i| if_column(&snap, *t, *col, &snap.objects[*i]))
            }
            Node::EntSensor => {
                let [col, index] = rel else {
                    return Ok(self.missing_column(rel, ENT_SENSOR_COLUMNS));
                };
                if !ENT_SENSOR_COLUMNS.contains(col) {
                    return Ok(VarBindValue::NoSuchObject);
                }
                let snap = self.snapshot(ctx).await?;
                let now = self.engine.uptime_ticks();
                snap.sensor_at(*index)
                    .and_then(|k| snap.sensor(k))
                    .and_then(|s| ent_sensor(&s, *col, now))
            }
        };
        Ok(found.map_or(VarBindValue::NoSuchInstance, VarBindValue::Value))
    }

    fn missing_column(&self, rel: &[u32], cols: &[u32]) -> VarBindValue {
        match rel.first() {
            Some(c) if cols.contains(c) => VarBindValue::NoSuchInstance,
            _ => VarBindValue::NoSuchObject,
        }
    }

    /// GETNEXT: the first instance after `oid`, or `None` at the end.
    pub async fn next(
        &self,
        ctx: &mut Ctx,
        oid: &[u32],
    ) -> Result<Option<(Oid, ObjectSyntax)>, ModelError> {
        // Skip the nodes entirely before `oid`: prefixes never nest, so
        // the node whose prefix `oid` starts with is the first candidate.
        let start = match ctx.node {
            Some(k) if self.nodes.get(k).is_some_and(|(p, _)| oid.starts_with(p)) => k,
            _ => self
                .nodes
                .partition_point(|(p, _)| p.as_slice() < oid && !oid.starts_with(p)),
        };
        for (k, (prefix, node)) in self.nodes.iter().enumerate().skip(start) {
            let rel = oid.starts_with(prefix).then(|| &oid[prefix.len()..]);
            if let Some(found) = self.next_in(ctx, prefix, node, rel).await? {
                ctx.node = Some(k);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn next_in(
        &self,
        ctx: &mut Ctx,
        prefix: &[u32],
        node: &Node,
        rel: Option<&[u32]>,
    ) -> Result<Option<(Oid, ObjectSyntax)>, ModelError> {
        match node {
            Node::Scalar(s) => Ok(match rel {
                None | Some([]) => Some((oid::join(prefix, &[0]), self.scalar(*s).await?)),
                Some(_) => None,
            }),
            Node::Fixed(rows) => Ok(fixed_next(prefix, rows, rel)),
            Node::Live(rows) => {
                let rows = rows.read().unwrap_or_else(|e| e.into_inner()).clone();
                Ok(fixed_next(prefix, &rows, rel))
            }
            Node::Alarm(t) => self.alarm_next(ctx, *t, prefix, rel).await,
            Node::EntLastChange => Ok(match rel {
                None | Some([]) => {
                    let snap = self.snapshot(ctx).await?;
                    Some((oid::join(prefix, &[0]), ticks(self.last_change(&snap))))
                }
                Some(_) => None,
            }),
            Node::Class(class, cols, columns) => {
                let (pos, rest) = column_start(columns, rel);
                for (k, (col, ai)) in cols.iter().enumerate().skip(pos) {
                    let after = if k == pos {
                        rest.map_or(0, |r| r[0])
                    } else {
                        0
                    };
                    let attr = &class.attributes[*ai];
                    let found = self
                        .row_after(ctx, Some(class), after, |o| {
                            o.values.get(*ai).and_then(|v| encode_value(attr, v))
                        })
                        .await?;
                    if let Some((index, v)) = found {
                        return Ok(Some((oid::join(prefix, &[*col, index]), v)));
                    }
                }
                Ok(None)
            }
            Node::ObjectTable => {
                let (pos, rest) = column_start(&[2, 3, 4], rel);
                for (k, col) in [2u32, 3, 4].iter().enumerate().skip(pos) {
                    let after = if k == pos {
                        rest.map_or(0, |r| r[0])
                    } else {
                        0
                    };
                    let found = self
                        .row_after(ctx, None, after, |o| Some(self.object_row(*col, o)))
                        .await?;
                    if let Some((index, v)) = found {
                        return Ok(Some((oid::join(prefix, &[*col, index]), v)));
                    }
                }
                Ok(None)
            }
            Node::ChildTable => {
                let (pos, rest) = column_start(&[2], rel);
                if pos > 0 {
                    return Ok(None);
                }
                let snap = self.snapshot(ctx).await?;
                let found = snap
                    .children
                    .iter()
                    .find(|(p, c, _)| rest.is_none_or(|r| [*p, *c].as_slice() > r));
                Ok(found.map(|(p, c, i)| {
                    (
                        oid::join(prefix, &[2, *p, *c]),
                        object_id(&class_entry(snap.objects[*i].class)),
                    )
                }))
            }
            Node::EntContains => {
                let (pos, rest) = column_start(&[1], rel);
                if pos > 0 {
                    return Ok(None);
                }
                let snap = self.snapshot(ctx).await?;
                let found = snap
                    .contains
                    .iter()
                    .find(|(p, c)| rest.is_none_or(|r| [*p, *c].as_slice() > r));
                Ok(found.map(|(p, c)| (oid::join(prefix, &[1, *p, *c]), int(i64::from(*c)))))
            }
            Node::EntPhysical | Node::EntState => {
                let physical = matches!(node, Node::EntPhysical);
                let cols = if physical {
                    ENT_PHYSICAL_COLUMNS
                } else {
                    ENT_STATE_COLUMNS
                };
                let (pos, rest) = column_start(cols, rel);
                if pos >= cols.len() {
                    return Ok(None);
                }
                let snap = self.snapshot(ctx).await?;
                for (k, col) in cols.iter().enumerate().skip(pos) {
                    for i in &snap.physical {
                        let o = &snap.objects[*i];
                        if k == pos && rest.is_some_and(|r| [o.index].as_slice() <= r) {
                            continue;
                        }
                        let v = if physical {
                            ent_physical(&snap, *col, o)
                        } else {
                            ent_state(&snap, *col, o)
                        };
                        if let Some(v) = v {
                            return Ok(Some((oid::join(prefix, &[*col, o.index]), v)));
                        }
                    }
                    // The sensors, numbered above every object.
                    let from = match rest {
                        Some(r) if k == pos => {
                            snap.sensors.partition_point(|s| [s.0].as_slice() <= r)
                        }
                        _ => 0,
                    };
                    for (j, (index, _, _)) in snap.sensors.iter().enumerate().skip(from) {
                        let Some(s) = snap.sensor(j) else {
                            continue;
                        };
                        let v = if physical {
                            ent_physical_sensor(&snap, *col, &s)
                        } else {
                            ent_state_sensor(&snap, *col, &s)
                        };
                        if let Some(v) = v {
                            return Ok(Some((oid::join(prefix, &[*col, *index]), v)));
                        }
                    }
                }
                Ok(None)
            }
            Node::EntAliasMapping => {
                let (pos, rest) = column_start(&[2], rel);
                if pos > 0 {
                    return Ok(None);
                }
                let snap = self.snapshot(ctx).await?;
                let found = snap
                    .interfaces
                    .iter()
                    .map(|i| &snap.objects[*i])
                    .find(|o| rest.is_none_or(|r| [o.index, 0].as_slice() > r));
                Ok(found.map(|o| (oid::join(prefix, &[2, o.index, 0]), alias_mapping(o))))
            }
            Node::IfNumber => Ok(match rel {
                None | Some([]) => {
                    let snap = self.snapshot(ctx).await?;
                    Some((oid::join(prefix, &[0]), int(snap.interfaces.len() as i64)))
                }
                Some(_) => None,
            }),
            Node::Interfaces(t) => {
                let cols = t.columns();
                let (pos, rest) = column_start(cols, rel);
                if pos >= cols.len() {
                    return Ok(None);
                }
                let snap = self.snapshot(ctx).await?;
                for (k, col) in cols.iter().enumerate().skip(pos) {
                    for i in &snap.interfaces {
                        let o = &snap.objects[*i];
                        if k == pos && rest.is_some_and(|r| [o.index].as_slice() <= r) {
                            continue;
                        }
                        if let Some(v) = if_column(&snap, *t, *col, o) {
                            return Ok(Some((oid::join(prefix, &[*col, o.index]), v)));
                        }
                    }
                }
                Ok(None)
            }
            Node::EntSensor => {
                let (pos, rest) = column_start(ENT_SENSOR_COLUMNS, rel);
                if pos >= ENT_SENSOR_COLUMNS.len() {
                    return Ok(None);
                }
                let snap = self.snapshot(ctx).await?;
                let now = self.engine.uptime_ticks();
                for (k, col) in ENT_SENSOR_COLUMNS.iter().enumerate().skip(pos) {
                    let from = match rest {
                        Some(r) if k == pos => {
                            snap.sensors.partition_point(|s| [s.0].as_slice() <= r)
                        }
                        _ => 0,
                    };
                    for (j, (index, _, _)) in snap.sensors.iter().enumerate().skip(from) {
                        if let Some(v) = snap.sensor(j).and_then(|s| ent_sensor(&s, *col, now)) {
                            return Ok(Some((oid::join(prefix, &[*col, *index]), v)));
                        }
                    }
                }
                Ok(None)
            }
        }
    }
}

/// A row of a table of fixed rows, in OID order.
fn fixed_get(rows: &[(Oid, ObjectSyntax)], rel: &[u32]) -> VarBindValue {
    match rows.binary_search_by(|(r, _)| r.as_slice().cmp(rel)) {
        Ok(k) => VarBindValue::Value(rows[k].1.clone()),
        Err(_) => VarBindValue::NoSuchInstance,
    }
}

/// The row after `rel` (the first when `None`) of a table of fixed rows.
fn fixed_next(
    prefix: &[u32],
    rows: &[(Oid, ObjectSyntax)],
    rel: Option<&[u32]>,
) -> Option<(Oid, ObjectSyntax)> {
    rows.iter()
        .find(|(r, _)| rel.is_none_or(|x| r.as_slice() > x))
        .map(|(r, v)| (oid::join(prefix, r), v.clone()))
}
