//! The managed objects the agent serves, in one ordered list of subtrees.
//!
//! Everything under HALYARD-CLUSTER-MIB is derived from the schema
//! metadata (`SCHEMA`): a table per concrete class whose columns are the
//! attributes' `column` numbers, indexed by the object's stable index. No
//! code here names a schema class or attribute. The standard MIBs
//! (system, snmp, engine, USM statistics, ENTITY-MIB, ENTITY-STATE-MIB)
//! map fixed objects; ENTITY-MIB and ENTITY-STATE-MIB find their entities
//! and columns through the schema's `Entity`, `Fru` and `Role` qualifiers
//! (`ClassMeta::entity`, `ClassMeta::is_fru`, `ManagedObject::by_role`).

use std::collections::HashMap;
use std::sync::Arc;

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::alarm;
use halyard_cluster_model::meta::{ClassMeta, Role};
use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{
    Change, InformationModel, ManagedObject, ModelError, Principal, Transaction,
};
use halyard_cluster_model::value::Value;
use rasn_smi::v2::ObjectSyntax;
use rasn_snmp::v2::VarBindValue;

use crate::codec::{self, counter32, encode_value, gauge32, int, object_id, octets, ticks};
use crate::config::View;
use crate::engine::{Counter, Engine};
use crate::oid::{self, Oid};
use crate::status::{code, error_status};

/// The system group's configured strings.
#[derive(Debug, Clone, Default)]
pub struct SysInfo {
    pub descr: String,
    pub contact: String,
    pub name: String,
    pub location: String,
    /// snmpEnableAuthenTraps.
    pub enable_authen_traps: bool,
}

#[derive(Debug, Clone, Copy)]
enum Scalar {
    SysDescr,
    SysObjectId,
    SysUpTime,
    SysContact,
    SysName,
    SysLocation,
    SysServices,
    SysOrLastChange,
    Count(Counter),
    EnableAuthenTraps,
    EngineId,
    EngineBoots,
    EngineTime,
    EngineMaxMessageSize,
}

#[derive(Debug)]
enum Node {
    Scalar(Scalar),
    /// A generated class table: (column, attribute position) by column,
    /// and the column numbers alone.
    Class(&'static ClassMeta, Vec<(u32, usize)>, Vec<u32>),
    ObjectTable,
    ChildTable,
    EntPhysical,
    EntState,
    /// entPhysicalContainsTable: (container, contained) physical pairs.
    EntContains,
    /// entLastChangeTime.
    EntLastChange,
}

/// entPhysicalClass of a class's objects: the schema's `Entity` qualifier
/// (`None`: not a physical entity).
fn physical_class(class: &ClassMeta) -> Option<i64> {
    class.entity().map(|k| i64::from(k.value()))
}

const SNAPSHOT_PAGE: usize = 512;
const ENT_PHYSICAL_COLUMNS: &[u32] = &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const ENT_STATE_COLUMNS: &[u32] = &[1, 2, 3, 4, 5, 6];

/// State of one request: a snapshot of every object, taken at most once,
/// for the subtrees that need the whole tree (containment, ENTITY-MIB).
#[derive(Debug, Default)]
pub struct Ctx {
    snapshot: Option<Arc<Snapshot>>,
    /// The last batch of ordered rows read for a table walk: GETBULK and
    /// multi-binding GETNEXT continue from it without asking again.
    rows: Option<RowCache>,
    /// Rows asked for per model walk (0: a small default).
    batch: usize,
    /// The node the last GETNEXT answered from: the next one usually
    /// starts there (a GETBULK walking a table), so no search.
    node: Option<usize>,
}

impl Ctx {
    /// A context for a request expected to read about `rows` rows of a
    /// table (GETBULK: its max-repetitions).
    pub fn for_rows(rows: usize) -> Self {
        Ctx {
            batch: rows.clamp(1, MAX_ROW_BATCH),
            ..Ctx::default()
        }
    }

    fn batch(&self) -> usize {
        if self.batch == 0 { 4 } else { self.batch }
    }
}

#[derive(Debug)]
struct RowCache {
    /// The class walked (`None`: every object).
    class: Option<&'static str>,
    /// The batch holds every row with an index in `(after, last]`.
    after: u32,
    rows: Vec<ManagedObject>,
    /// Fewer rows than asked came back: nothing follows the last.
    complete: bool,
}

const MAX_ROW_BATCH: usize = 64;

#[derive(Debug)]
struct Snapshot {
    objects: Vec<ManagedObject>,
    by_index: HashMap<u32, usize>,
    /// (parent index, child index) in order.
    children: Vec<(u32, u32, usize)>,
    /// Positions of physical entities, by index.
    physical: Vec<usize>,
    /// EntityAlarmStatus bits of each alarmed resource (by name).
    alarms: HashMap<String, u8>,
    /// (container, contained) physical entity pairs, in order.
    contains: Vec<(u32, u32)>,
}

impl Snapshot {
    /// What identifies the physical entity table's shape: each entity's
    /// index, class and container (entLastChangeTime follows it).
    fn physical_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for i in &self.physical {
            let o = &self.objects[*i];
            (o.index, o.class.name, physical_parent(self, o)).hash(&mut h);
        }
        h.finish()
    }
}

/// The ordered MIB the agent serves.
pub struct Mib {
    model: Arc<dyn InformationModel>,
    engine: Arc<Engine>,
    sys: SysInfo,
    max_message_size: u32,
    nodes: Vec<(Oid, Node)>,
    /// The physical table's last fingerprint and the sysUpTime at which it
    /// was first seen (entLastChangeTime).
    physical_seen: std::sync::Mutex<Option<(u64, u32)>>,
}

impl std::fmt::Debug for Mib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mib")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// `1.3.6.1.4.1.<enterprise>.<arc>`.
pub fn module_root() -> Oid {
    SCHEMA.module.root_oid().to_vec()
}

/// The entry OID of a class table: `<root>.1.<class>.1`.
pub fn class_entry(class: &ClassMeta) -> Oid {
    oid::join(&module_root(), &[1, class.oid, 1])
}

/// The notification OID of an indication class: `<root>.0.<n>`.
pub fn notification_oid(class: &ClassMeta) -> Oid {
    oid::join(&module_root(), &[0, class.oid])
}

/// The instance OID of an accessible-for-notify object: `<root>.3.<n>.<k>.0`.
pub fn notification_object(class: &ClassMeta, column: u32) -> Oid {
    oid::join(&module_root(), &[3, class.oid, column, 0])
}

fn scalar(prefix: &[u32], arc: u32, s: Scalar) -> (Oid, Node) {
    (oid::join(prefix, &[arc]), Node::Scalar(s))
}

/// Where the columns scan starts: the first column position at or after
/// the requested one, and the index to continue after (None: all rows).
fn column_start<'a>(columns: &[u32], rel: Option<&'a [u32]>) -> (usize, Option<&'a [u32]>) {
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
    pub fn new(
        model: Arc<dyn InformationModel>,
        engine: Arc<Engine>,
        sys: SysInfo,
        max_message_size: u32,
    ) -> Self {
        use Counter as C;
        let mut nodes = vec![
            scalar(oid::SYSTEM, 1, Scalar::SysDescr),
            scalar(oid::SYSTEM, 2, Scalar::SysObjectId),
            scalar(oid::SYSTEM, 3, Scalar::SysUpTime),
            scalar(oid::SYSTEM, 4, Scalar::SysContact),
            scalar(oid::SYSTEM, 5, Scalar::SysName),
            scalar(oid::SYSTEM, 6, Scalar::SysLocation),
            scalar(oid::SYSTEM, 7, Scalar::SysServices),
            scalar(oid::SYSTEM, 8, Scalar::SysOrLastChange),
            scalar(oid::SNMP_GROUP, 1, Scalar::Count(C::InPkts)),
            scalar(oid::SNMP_GROUP, 2, Scalar::Count(C::OutPkts)),
            scalar(oid::SNMP_GROUP, 3, Scalar::Count(C::InBadVersions)),
            scalar(oid::SNMP_GROUP, 4, Scalar::Count(C::InBadCommunityNames)),
            scalar(oid::SNMP_GROUP, 5, Scalar::Count(C::InBadCommunityUses)),
            scalar(oid::SNMP_GROUP, 6, Scalar::Count(C::InAsnParseErrs)),
            scalar(oid::SNMP_GROUP, 30, Scalar::EnableAuthenTraps),
            scalar(oid::SNMP_GROUP, 31, Scalar::Count(C::SilentDrops)),
            scalar(oid::SNMP_GROUP, 32, Scalar::Count(C::ProxyDrops)),
            (oid::ENT_PHYSICAL_ENTRY.to_vec(), Node::EntPhysical),
            (oid::ENT_STATE_ENTRY.to_vec(), Node::EntState),
            (oid::ENT_CONTAINS_ENTRY.to_vec(), Node::EntContains),
            (oid::ENT_LAST_CHANGE_TIME.to_vec(), Node::EntLastChange),
            scalar(oid::ENGINE_GROUP, 1, Scalar::EngineId),
            scalar(oid::ENGINE_GROUP, 2, Scalar::EngineBoots),
            scalar(oid::ENGINE_GROUP, 3, Scalar::EngineTime),
            scalar(oid::ENGINE_GROUP, 4, Scalar::EngineMaxMessageSize),
            scalar(oid::MPD_STATS, 1, Scalar::Count(C::UnknownSecurityModels)),
            scalar(oid::MPD_STATS, 2, Scalar::Count(C::InvalidMsgs)),
            scalar(oid::MPD_STATS, 3, Scalar::Count(C::UnknownPduHandlers)),
            scalar(oid::TARGET_STATS, 5, Scalar::Count(C::UnknownContexts)),
            scalar(oid::USM_STATS, 1, Scalar::Count(C::UnsupportedSecLevels)),
            scalar(oid::USM_STATS, 2, Scalar::Count(C::NotInTimeWindows)),
            scalar(oid::USM_STATS, 3, Scalar::Count(C::UnknownUserNames)),
            scalar(oid::USM_STATS, 4, Scalar::Count(C::UnknownEngineIds)),
            scalar(oid::USM_STATS, 5, Scalar::Count(C::WrongDigests)),
            scalar(oid::USM_STATS, 6, Scalar::Count(C::DecryptionErrors)),
        ];
        let root = module_root();
        nodes.push((oid::join(&root, &[1, 100, 1]), Node::ObjectTable));
        nodes.push((oid::join(&root, &[1, 101, 1]), Node::ChildTable));
        for class in SCHEMA.object_classes() {
            let mut cols: Vec<(u32, usize)> = class
                .attributes
                .iter()
                .enumerate()
                .map(|(i, a)| (a.column, i))
                .collect();
            cols.sort();
            let columns = cols.iter().map(|(c, _)| *c).collect();
            nodes.push((class_entry(class), Node::Class(class, cols, columns)));
        }
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        // GETNEXT's start-node shortcut relies on this.
        debug_assert!(
            nodes.windows(2).all(|w| !w[1].0.starts_with(&w[0].0)),
            "MIB node prefixes nest"
        );
        Mib {
            model,
            engine,
            sys,
            max_message_size,
            nodes,
            physical_seen: std::sync::Mutex::new(None),
        }
    }

    /// entLastChangeTime: the sysUpTime at which this agent saw the
    /// physical entity table change (units inserted, removed, moved). The
    /// agent looks every second ([`Mib::observe_entities`]) and at every
    /// ENTITY-MIB read; the first look is the start (0).
    fn last_change(&self, snap: &Snapshot) -> u32 {
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

    pub fn model(&self) -> &Arc<dyn InformationModel> {
        &self.model
    }

    /// A class's table entry OID as a value, from the table's node.
    fn entry_of(&self, class: &'static ClassMeta) -> ObjectSyntax {
        let node = self.nodes.iter().find_map(|(p, n)| match n {
            Node::Class(c, _, _) if std::ptr::eq(*c, class) => Some(p),
            _ => None,
        });
        match node {
            Some(p) => object_id(p),
            None => object_id(&class_entry(class)),
        }
    }

    /// hcObjectTable: class, name, parent.
    fn object_row(&self, col: u32, o: &ManagedObject) -> ObjectSyntax {
        match col {
            2 => self.entry_of(o.class),
            3 => octets(o.name.as_str().as_bytes()),
            _ => gauge32(o.parent_index),
        }
    }

    fn scalar_value(&self, s: Scalar) -> ObjectSyntax {
        let e = &self.engine;
        match s {
            Scalar::SysDescr => octets(self.sys.descr.as_bytes()),
            Scalar::SysObjectId => object_id(&module_root()),
            Scalar::SysUpTime => ticks(e.uptime_ticks()),
            Scalar::SysContact => octets(self.sys.contact.as_bytes()),
            Scalar::SysName => octets(self.sys.name.as_bytes()),
            Scalar::SysLocation => octets(self.sys.location.as_bytes()),
            // Applications (layer 7) and end-to-end (layer 4).
            Scalar::SysServices => int(72),
            Scalar::SysOrLastChange => ticks(0),
            Scalar::Count(c) => counter32(e.get(c)),
            // TruthValue: true(1), false(2).
            Scalar::EnableAuthenTraps => int(if self.sys.enable_authen_traps { 1 } else { 2 }),
            Scalar::EngineId => octets(e.id.clone()),
            Scalar::EngineBoots => int(i64::from(e.boots)),
            Scalar::EngineTime => int(i64::from(e.time())),
            Scalar::EngineMaxMessageSize => int(i64::from(self.max_message_size)),
        }
    }

    async fn snapshot(&self, ctx: &mut Ctx) -> Result<Arc<Snapshot>, ModelError> {
        if let Some(s) = &ctx.snapshot {
            return Ok(s.clone());
        }
        // Paged, so that no implementation is asked for an unbounded batch.
        let mut objects: Vec<ManagedObject> = Vec::new();
        loop {
            let after = objects.last().map_or(0, |o| o.index);
            let page = self.model.walk(None, after, SNAPSHOT_PAGE).await?;
            let full = page.len() == SNAPSHOT_PAGE;
            objects.extend(page);
            if !full || objects.last().is_none_or(|o| o.index == u32::MAX) {
                break;
            }
        }
        let by_index: HashMap<u32, usize> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.index, i))
            .collect();
        let mut children: Vec<(u32, u32, usize)> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.parent_index != 0)
            .map(|(i, o)| (o.parent_index, o.index, i))
            .collect();
        children.sort();
        let mut physical: Vec<usize> = (0..objects.len())
            .filter(|i| physical_class(objects[*i].class).is_some())
            .collect();
        physical.sort_by_key(|i| objects[*i].index);
        let mut alarms: HashMap<String, u8> = HashMap::new();
        for a in objects.iter().filter(|o| alarm::is_active(o)) {
            use halyard_cluster_model::model::PerceivedSeverity as S;
            // EntityAlarmStatus: critical(2) major(3) minor(4) warning(5)
            // indeterminate(6); bit 0 is the most significant.
            let bit = match alarm::severity(a) {
                Some(S::Critical) => 2,
                Some(S::Major) => 3,
                Some(S::Minor) => 4,
                Some(S::Warning) => 5,
                Some(S::Indeterminate) => 6,
                _ => continue,
            };
            if let Some(r) = alarm::resource(a) {
                *alarms.entry(r.to_string()).or_default() |= 0x80 >> bit;
            }
        }
        let mut snap = Snapshot {
            objects,
            by_index,
            children,
            physical,
            alarms,
            contains: Vec::new(),
        };
        let mut contains: Vec<(u32, u32)> = snap
            .physical
            .iter()
            .map(|i| &snap.objects[*i])
            .filter_map(|o| Some((physical_parent(&snap, o)?, o.index)))
            .collect();
        contains.sort();
        snap.contains = contains;
        let s = Arc::new(snap);
        ctx.snapshot = Some(s.clone());
        Ok(s)
    }

    /// The first row after `after` (in index order, of exactly `class`
    /// when given) for which `value` yields something, from the request's
    /// row cache when it covers the range, else from the model in batches.
    async fn row_after(
        &self,
        ctx: &mut Ctx,
        class: Option<&'static ClassMeta>,
        mut after: u32,
        value: impl Fn(&ManagedObject) -> Option<ObjectSyntax>,
    ) -> Result<Option<(u32, ObjectSyntax)>, ModelError> {
        let key = class.map(|c| c.name);
        loop {
            if after == u32::MAX {
                return Ok(None);
            }
            let cached = ctx
                .rows
                .as_ref()
                .filter(|c| c.class == key && c.after <= after);
            let cache = match cached {
                Some(c) if c.complete || c.rows.last().is_some_and(|o| o.index > after) => c,
                _ => {
                    let batch = ctx.batch();
                    let rows = self.model.walk(class, after, batch).await?;
                    &*ctx.rows.insert(RowCache {
                        class: key,
                        after,
                        complete: rows.len() < batch,
                        rows,
                    })
                }
            };
            for o in cache.rows.iter().filter(|o| o.index > after) {
                if let Some(v) = value(o) {
                    return Ok(Some((o.index, v)));
                }
            }
            match cache.rows.last() {
                Some(last) if !cache.complete && last.index > after => after = last.index,
                _ => return Ok(None),
            }
        }
    }

    fn find_node(&self, oid: &[u32]) -> Option<(&Oid, &Node)> {
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
                    VarBindValue::Value(self.scalar_value(*s))
                } else {
                    VarBindValue::NoSuchInstance
                });
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
                    Ok(o) if o.class.name == class.name => {
                        encode_value(&class.attributes[*ai], &o.values[*ai])
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
                    Ok(o) => Some(self.object_row(*col, &o)),
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
                    Ok(o) if o.parent_index == *parent => Some(self.entry_of(o.class)),
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
                None | Some([]) => Some((oid::join(prefix, &[0]), self.scalar_value(*s))),
                Some(_) => None,
            }),
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
                }
                Ok(None)
            }
        }
    }

    /// SET: validates every varbind, then applies them in one transaction.
    /// `Err((error-status, error-index))` with a 1-based index.
    pub async fn set(
        &self,
        varbinds: &[(Oid, VarBindValue)],
        user: &str,
        write_view: &View,
    ) -> Result<(), (u32, u32)> {
        let mut changes = Vec::with_capacity(varbinds.len());
        for (i, (oid, value)) in varbinds.iter().enumerate() {
            let fail = |status| (status, i as u32 + 1);
            if !write_view.contains(oid) {
                return Err(fail(code::NO_ACCESS));
            }
            let Some((prefix, Node::Class(class, cols, _))) = self.find_node(oid) else {
                return Err(fail(code::NOT_WRITABLE));
            };
            let rel = &oid[prefix.len()..];
            let Some((_, ai)) = rel.first().and_then(|c| cols.iter().find(|(k, _)| k == c)) else {
                return Err(fail(code::NOT_WRITABLE));
            };
            let attr = &class.attributes[*ai];
            if !attr.writable {
                return Err(fail(code::NOT_WRITABLE));
            }
            let [_, index] = rel else {
                return Err(fail(code::NO_CREATION));
            };
            let object = match self.model.get_by_index(*index).await {
                Ok(o) if o.class.name == class.name => o,
                Ok(_) | Err(ModelError::NoSuchObject { .. }) => {
                    return Err(fail(code::NO_CREATION));
                }
                Err(e) => return Err(fail(error_status(&e))),
            };
            let value = codec::decode_value(attr, value).map_err(fail)?;
            if let Err(e) = value.check(&attr.ty) {
                return Err(fail(error_status(&ModelError::InvalidValue {
                    attribute: attr.name.to_string(),
                    error: e,
                })));
            }
            changes.push(Change::Set {
                object: object.name,
                attribute: attr.name.to_string(),
                value,
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        let tx = Transaction {
            principal: Principal::new(user, Protocol::Snmp),
            changes,
        };
        self.model
            .transact(tx)
            .await
            .map_err(|e| (error_status(&e.error), e.index as u32 + 1))
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

/// The enumeration label of the attribute with a role, by the schema's spelling.
fn role_label(o: &ManagedObject, role: Role) -> Option<&'static str> {
    let (i, a) = o.class.attribute_by_role(role)?;
    match (&a.ty, o.values.get(i)?) {
        (halyard_cluster_model::AttrType::Enum(e), Value::Enum(v)) => Some(e.by_value(*v)?.name),
        _ => None,
    }
}

/// The nearest physical ancestor of an object.
fn physical_parent(snap: &Snapshot, o: &ManagedObject) -> Option<u32> {
    let mut parent = o.parent_index;
    // The containment tree is finite; the bound guards against a cycle.
    for _ in 0..snap.objects.len() {
        let p = &snap.objects[*snap.by_index.get(&parent)?];
        if physical_class(p.class).is_some() {
            return Some(p.index);
        }
        parent = p.parent_index;
    }
    None
}

/// ENTITY-MIB entPhysicalEntry columns.
fn ent_physical(snap: &Snapshot, col: u32, o: &ManagedObject) -> Option<ObjectSyntax> {
    Some(match col {
        2 => octets(format!("{} {}", o.class.name, o.name).into_bytes()),
        3 => object_id(&class_entry(o.class)),
        4 => int(i64::from(physical_parent(snap, o).unwrap_or(0))),
        5 => int(physical_class(o.class)?),
        6 => int(role_u32(o, Role::ParentRelPos).map_or(-1, i64::from)),
        7 => octets(o.name.as_str().as_bytes()),
        8 => octets(role_str(o, Role::HardwareRev).as_bytes()),
        9 | 10 | 12 | 13 | 15 => octets(Vec::new()),
        11 => octets(role_str(o, Role::SerialNum).as_bytes()),
        14 => octets(role_str(o, Role::Alias).as_bytes()),
        16 => int(if o.class.is_fru { 1 } else { 2 }),
        _ => return None,
    })
}

/// ENTITY-STATE-MIB entStateEntry columns from the X.731 states.
fn ent_state(snap: &Snapshot, col: u32, o: &ManagedObject) -> Option<ObjectSyntax> {
    let availability = role_label(o, Role::Availability);
    match col {
        // entStateLastChanged, when the model knows it.
        1 => {
            return match o.by_role(Role::StateLastChanged) {
                Some(Value::Time(t)) => Some(octets(codec::date_and_time(*t))),
                _ => None,
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::demo_element;

    fn mib() -> Mib {
        Mib::new(
            Arc::new(demo_element()),
            Arc::new(Engine::new(vec![0x80, 0, 0x7e, 0xd9, 5, 1], 1)),
            SysInfo::default(),
            65_507,
        )
    }

    #[tokio::test]
    async fn walk_is_strictly_increasing_and_complete() {
        let mib = mib();
        let mut ctx = Ctx::default();
        let mut cur: Oid = vec![0];
        let mut seen = 0;
        while let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() {
            assert!(
                next > cur,
                "{} after {}",
                oid::format(&next),
                oid::format(&cur)
            );
            // Every instance a walk returns is readable with GET.
            let v = mib.get(&mut ctx, &next).await.unwrap();
            assert!(
                matches!(v, VarBindValue::Value(_)),
                "{}",
                oid::format(&next)
            );
            cur = next;
            seen += 1;
        }
        assert!(seen > 300, "only {seen} instances");
        // Starting in the middle of an index skips to the next row.
        let fan = SCHEMA.class("Fan").unwrap();
        let mut mid = class_entry(fan);
        mid.extend([1, 4, 7]);
        let (n, _) = mib.next(&mut ctx, &mid).await.unwrap().unwrap();
        assert_eq!(
            n[..n.len() - 1],
            class_entry(fan)
                .iter()
                .copied()
                .chain([1])
                .collect::<Vec<_>>()[..]
        );
        assert!(*n.last().unwrap() > 4);
    }

    #[tokio::test]
    async fn ent_last_change_time_follows_the_physical_table_only() {
        let model = Arc::new(demo_element());
        let mib = Mib::new(
            model.clone(),
            Arc::new(Engine::new(vec![0x80, 0, 0x7e, 0xd9, 5, 1], 1)),
            SysInfo::default(),
            65_507,
        );
        let at = |v: VarBindValue| match v {
            VarBindValue::Value(ObjectSyntax::ApplicationWide(
                rasn_smi::v2::ApplicationSyntax::Ticks(t),
            )) => t.0,
            other => panic!("{other:?}"),
        };
        let instance = oid::join(oid::ENT_LAST_CHANGE_TIME, &[0]);
        assert_eq!(mib.observe_entities().await.unwrap(), 0);
        assert_eq!(
            at(mib.get(&mut Ctx::default(), &instance).await.unwrap()),
            0
        );
        // Time passes; something that is no physical entity changes nothing.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        model.insert("Alarm", "ne=1/alarm=77", &[]).unwrap();
        assert_eq!(mib.observe_entities().await.unwrap(), 0);
        // A unit inserted: the time it was seen.
        model
            .insert("LineCard", "ne=1/shelf=1/linecard=9", &[])
            .unwrap();
        let t = at(mib.get(&mut Ctx::default(), &instance).await.unwrap());
        assert!(t >= 3, "{t}");
        assert_eq!(mib.observe_entities().await.unwrap(), t);
        let (next, v) = mib
            .next(&mut Ctx::default(), oid::ENT_LAST_CHANGE_TIME)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((next, at(VarBindValue::Value(v))), (instance.clone(), t));
        // And removed: a later time.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        model.remove(&halyard_cluster_model::ObjectName::parse("ne=1/shelf=1/linecard=9").unwrap());
        assert!(mib.observe_entities().await.unwrap() > t);
    }

    #[tokio::test]
    async fn snapshots_page_through_large_models() {
        let model = demo_element();
        for n in 3..=700 {
            model
                .insert("Fan", &format!("ne=1/shelf=1/fan={n}"), &[])
                .unwrap();
        }
        let mib = Mib::new(
            Arc::new(model),
            Arc::new(Engine::new(vec![0x80, 0, 0x7e, 0xd9, 5, 1], 1)),
            SysInfo::default(),
            65_507,
        );
        let mut ctx = Ctx::default();
        // Count entPhysicalName instances: shelf, hsc, 700 fans, 2 PSUs, 2 boards.
        let column: Oid = oid::join(oid::ENT_PHYSICAL_ENTRY, &[7]);
        let mut cur = column.clone();
        let mut n = 0;
        while let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() {
            if !next.starts_with(&column) {
                break;
            }
            n += 1;
            cur = next;
        }
        assert_eq!(n, 1 + 1 + 700 + 2 + 2);
        // A generated column over many row batches, in order, complete;
        // a fresh request context per step (GETNEXT) and one for all (GETBULK).
        let fan = SCHEMA.class("Fan").unwrap();
        let (_, speed) = fan.attribute("Speed").unwrap();
        let column = oid::join(&class_entry(fan), &[speed.column]);
        for shared_ctx in [false, true] {
            let mut ctx = Ctx::for_rows(32);
            let mut cur = column.clone();
            let mut seen = Vec::new();
            loop {
                if !shared_ctx {
                    ctx = Ctx::default();
                }
                let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() else {
                    break;
                };
                if !next.starts_with(&column) {
                    break;
                }
                seen.push(*next.last().unwrap());
                cur = next;
            }
            assert_eq!(seen.len(), 700);
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[tokio::test]
    async fn exceptions() {
        let mib = mib();
        let mut ctx = Ctx::default();
        let get = |o: &str| oid::parse(o).unwrap();
        assert_eq!(
            mib.get(&mut ctx, &get("1.3.6.1.2.1.1.9.0")).await.unwrap(),
            VarBindValue::NoSuchObject
        );
        assert_eq!(
            mib.get(&mut ctx, &get("1.3.6.1.2.1.1.1.1")).await.unwrap(),
            VarBindValue::NoSuchInstance
        );
        assert_eq!(
            mib.get(&mut ctx, &get("1.3.6.1.4.1.32473.77.1.5.1.40.9999"))
                .await
                .unwrap(),
            VarBindValue::NoSuchInstance
        );
        assert_eq!(
            mib.get(&mut ctx, &get("1.3.6.1.4.1.32473.77.1.5.1.99.1"))
                .await
                .unwrap(),
            VarBindValue::NoSuchObject
        );
        assert!(
            mib.next(&mut ctx, &get("1.3.6.1.6.3.15.1.1.6.0"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(mib.next(&mut ctx, &get("2")).await.unwrap().is_none());
    }
}
