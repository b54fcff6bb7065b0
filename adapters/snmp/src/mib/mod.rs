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

use std::sync::Arc;

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::meta::ClassMeta;
use halyard_cluster_model::port::{InformationModel, ManagedObject};

use crate::engine::{Counter, Engine};
use crate::oid::{self, Oid};

mod alarm;
mod cluster;
mod entity;
mod entity_state;
mod interfaces;
mod lookup;
mod scalars;
mod set;
mod snapshot;
pub(crate) mod target;
#[cfg(test)]
mod tests;
pub mod vacm;

pub use alarm::{
    ACTIVE_STATE, CLEAR_STATE, alarm_instance, model_pointer, model_state, notification_objects,
    resource_id,
};
pub use cluster::{class_entry, module_root, notification_object, notification_oid};
use scalars::{Scalar, scalar};
use snapshot::Snapshot;

/// The system group's configured values. `None`: the element's attribute
/// with that role (writable, shared with every face).
#[derive(Debug, Clone, Default)]
pub struct SysInfo {
    pub descr: String,
    pub contact: Option<String>,
    pub name: String,
    pub location: Option<String>,
    /// snmpEnableAuthenTraps.
    pub enable_authen_traps: Option<bool>,
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
    /// entPhySensorTable: the physical entities' sensors.
    EntSensor,
    /// ifNumber: the element's interfaces.
    IfNumber,
    /// entAliasMappingTable: each interface's entity maps to its ifIndex.
    EntAliasMapping,
    /// ifTable and ifXTable: the element's interfaces.
    Interfaces(interfaces::IfTable),
    /// entPhysicalContainsTable: (container, contained) physical pairs.
    EntContains,
    /// entLastChangeTime.
    EntLastChange,
    /// An ALARM-MIB or ITU-ALARM-MIB table.
    Alarm(alarm::Table),
    /// A table whose rows never change (sysORTable): (instance relative to
    /// the entry, value), in OID order.
    Fixed(Vec<(Oid, rasn_smi::v2::ObjectSyntax)>),
    /// A table of rows replaced as a whole when what they show changes
    /// (the notification targets), in OID order.
    Live(LiveRows),
}

/// The rows of a [`Node::Live`] table, shared with what replaces them.
type LiveRows = Arc<std::sync::RwLock<Arc<Vec<(Oid, rasn_smi::v2::ObjectSyntax)>>>>;

/// State of one request: a snapshot of every object, taken at most once,
/// for the subtrees that need the whole tree (containment, ENTITY-MIB).
#[derive(Debug, Default)]
pub struct Ctx {
    snapshot: Option<Arc<Snapshot>>,
    /// The alarm tables' rows, built from the snapshot at most once.
    alarms: Option<Arc<alarm::AlarmView>>,
    /// The last batch of ordered rows read for a table walk: GETBULK and
    /// multi-binding GETNEXT continue from it without asking again.
    rows: Option<RowCache>,
    /// Rows asked for per model walk (0: a small default).
    batch: usize,
    /// The node the last GETNEXT answered from: the next one usually
    /// starts there (a GETBULK walking a table), so no search.
    node: Option<usize>,
    /// What the requester may read, when the access rules hide anything
    /// from it (see [`Mib::reader`]).
    pub reader: Option<halyard_cluster_model::access::ReadFilter>,
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

    /// Masks an object the requester reads; false when it is hidden.
    fn visible(&mut self, o: &mut ManagedObject) -> bool {
        self.reader.as_mut().is_none_or(|r| r.object(o))
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

/// The ordered MIB the agent serves.
pub struct Mib {
    model: Arc<dyn InformationModel>,
    engine: Arc<Engine>,
    sys: SysInfo,
    max_message_size: u32,
    nodes: Vec<(Oid, Node)>,
    /// snmpSetSerialNo's value (RFC 2579 TestAndIncr, 0..2^31-1).
    set_serial: std::sync::atomic::AtomicI32,
    /// The physical table's last fingerprint and the sysUpTime at which it
    /// was first seen (entLastChangeTime).
    physical_seen: std::sync::Mutex<Option<(u64, u32)>>,
    /// The element's snmpEnableAuthenTraps as last read from the model.
    authen_traps: std::sync::atomic::AtomicBool,
    /// ALARM-MIB / ITU-ALARM-MIB counts since start.
    alarm_stats: alarm::AlarmStats,
    /// The access model as last read (the read rules).
    policy: halyard_cluster_model::access::PolicyCache,
    /// SNMP-TARGET-MIB's and SNMP-NOTIFICATION-MIB's tables, and the
    /// configuration file's targets they always show.
    targets: [LiveRows; 3],
    config_targets: Vec<target::TargetRow>,
    /// SNMP-VIEW-BASED-ACM-MIB's four tables, and the configuration they
    /// always show.
    vacm: [LiveRows; 4],
    vacm_config: Option<crate::config::SnmpConfig>,
}

impl std::fmt::Debug for Mib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mib")
            .field("nodes", &self.nodes.len())
            .finish()
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
            scalar(oid::SNMP_SET, 1, Scalar::SetSerialNo),
            (
                alarm::MODEL_LAST_CHANGED.to_vec(),
                Node::Scalar(Scalar::AlarmModelLastChanged),
            ),
            (
                alarm::ACTIVE_LAST_CHANGED.to_vec(),
                Node::Scalar(Scalar::AlarmActiveLastChanged),
            ),
            (
                alarm::ACTIVE_OVERFLOW.to_vec(),
                Node::Scalar(Scalar::AlarmActiveOverflow),
            ),
            (
                alarm::CLEAR_MAXIMUM.to_vec(),
                Node::Scalar(Scalar::AlarmClearMaximum),
            ),
            (oid::ENT_PHYSICAL_ENTRY.to_vec(), Node::EntPhysical),
            (oid::ENT_STATE_ENTRY.to_vec(), Node::EntState),
            (oid::ENT_SENSOR_ENTRY.to_vec(), Node::EntSensor),
            (interfaces::IF_NUMBER.to_vec(), Node::IfNumber),
            (
                interfaces::IF_ENTRY.to_vec(),
                Node::Interfaces(interfaces::IfTable::If),
            ),
            (
                interfaces::IF_X_ENTRY.to_vec(),
                Node::Interfaces(interfaces::IfTable::IfX),
            ),
            (oid::ENT_CONTAINS_ENTRY.to_vec(), Node::EntContains),
            (oid::ENT_ALIAS_MAPPING_ENTRY.to_vec(), Node::EntAliasMapping),
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
        for (table, entry) in alarm::Table::ALL {
            nodes.push((entry.to_vec(), Node::Alarm(table)));
        }
        let root = module_root();
        nodes.push((
            oid::join(oid::SYSTEM, &[9, 1]),
            Node::Fixed(sys_or_table(&root)),
        ));
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
            set_serial: std::sync::atomic::AtomicI32::new(0),
            policy: Default::default(),
            physical_seen: std::sync::Mutex::new(None),
            authen_traps: std::sync::atomic::AtomicBool::new(false),
            alarm_stats: alarm::AlarmStats::default(),
            targets: Default::default(),
            config_targets: Vec::new(),
            vacm: Default::default(),
            vacm_config: None,
        }
    }

    pub fn model(&self) -> &Arc<dyn InformationModel> {
        &self.model
    }

    /// What `user` with `role` may read, when the access rules hide
    /// anything from it; None: everything.
    pub async fn reader(
        &self,
        user: &str,
        role: halyard_cluster_model::access::Role,
    ) -> Result<
        Option<halyard_cluster_model::access::ReadFilter>,
        halyard_cluster_model::port::ModelError,
    > {
        let policy = self.policy.get(self.model.as_ref()).await?;
        let r = halyard_cluster_model::access::ReadFilter::new(policy, user, Some(role));
        Ok((!r.is_open()).then_some(r))
    }

    /// Adds SNMP-VIEW-BASED-ACM-MIB's tables of the face's configuration
    /// (read-only).
    pub fn with_vacm(mut self, config: &crate::config::SnmpConfig) -> Self {
        for ((entry, rows), live) in vacm::tables(config, &[]).into_iter().zip(&self.vacm) {
            *live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
            self.nodes.push((entry, Node::Live(live.clone())));
        }
        self.vacm_config = Some(config.clone());
        self.nodes.push((
            vacm::SPIN_LOCK.to_vec(),
            Node::Fixed(vec![(vec![0], crate::codec::int(0))]),
        ));
        self.nodes.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }

    /// Adds SNMP-TARGET-MIB's and SNMP-NOTIFICATION-MIB's tables, with
    /// the configuration file's notification targets (the element's are
    /// added by [`Mib::set_element_targets`]).
    pub fn with_targets(
        mut self,
        targets: &[crate::config::TrapTarget],
        users: &[crate::config::UsmUser],
    ) -> Self {
        self.config_targets = target::config_rows(targets, users);
        for ((entry, rows), live) in target::tables(&self.config_targets)
            .into_iter()
            .zip(&self.targets)
        {
            *live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
            self.nodes.push((entry, Node::Live(live.clone())));
        }
        self.nodes.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }

    /// Shows the element's SNMPv3 users in SNMP-VIEW-BASED-ACM-MIB, after
    /// the configuration's.
    pub fn set_element_users(&self, users: &[vacm::ElementUser]) {
        let Some(config) = &self.vacm_config else {
            return;
        };
        for ((_, rows), live) in vacm::tables(config, users).into_iter().zip(&self.vacm) {
            *live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
        }
    }

    /// Shows the element's notification targets after the configuration
    /// file's (a name the file's rows hold already is left out).
    pub fn set_element_targets(&self, rows: Vec<target::TargetRow>) {
        let mut all = self.config_targets.clone();
        for r in rows {
            if !all.iter().any(|c| c.name == r.name) {
                all.push(r);
            }
        }
        for ((_, rows), live) in target::tables(&all).into_iter().zip(&self.targets) {
            *live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
        }
    }
}

/// sysORTable (RFC 3418): the MIB modules this agent implements, by their
/// MODULE-IDENTITY, all present since start (sysORUpTime 0, as
/// sysORLastChange).
fn sys_or_table(halyard: &[u32]) -> Vec<(Oid, rasn_smi::v2::ObjectSyntax)> {
    use crate::codec::{object_id, octets, ticks};
    let modules: [(&[u32], &str); 14] = [
        (
            &[1, 3, 6, 1, 6, 3, 1],
            "SNMPv2-MIB: the system and snmp groups (RFC 3418)",
        ),
        (
            &[1, 3, 6, 1, 6, 3, 10],
            "SNMP-FRAMEWORK-MIB: the SNMP engine (RFC 3411)",
        ),
        (
            &[1, 3, 6, 1, 6, 3, 11],
            "SNMP-MPD-MIB: message processing statistics (RFC 3412)",
        ),
        (
            target::TARGET_MIB,
            "SNMP-TARGET-MIB: the notification targets, read-only (RFC 3413)",
        ),
        (
            target::NOTIFICATION_MIB,
            "SNMP-NOTIFICATION-MIB: which targets get traps and which informs, read-only (RFC 3413)",
        ),
        (
            &[1, 3, 6, 1, 6, 3, 15],
            "SNMP-USER-BASED-SM-MIB: USM statistics (RFC 3414)",
        ),
        (
            vacm::VACM_MIB,
            "SNMP-VIEW-BASED-ACM-MIB: the SNMP groups, access and views, read-only (RFC 3415)",
        ),
        (
            &[1, 3, 6, 1, 2, 1, 47],
            "ENTITY-MIB: the physical entities (RFC 6933)",
        ),
        (
            &[1, 3, 6, 1, 2, 1, 131],
            "ENTITY-STATE-MIB: the entities' states (RFC 4268)",
        ),
        (
            &[1, 3, 6, 1, 2, 1, 99],
            "ENTITY-SENSOR-MIB: the entities' sensors (RFC 3433)",
        ),
        (
            interfaces::IF_MIB,
            "IF-MIB: the line cards' ports (RFC 2863)",
        ),
        (
            alarm::ALARM_MIB,
            "ALARM-MIB: the alarm model, active and cleared alarms (RFC 3877)",
        ),
        (
            alarm::ITU_ALARM_MIB,
            "ITU-ALARM-MIB: the alarms' X.733 view (RFC 3877)",
        ),
        (
            halyard,
            "HALYARD-CLUSTER-MIB: the element's managed objects",
        ),
    ];
    let mut rows = Vec::new();
    for (i, (id, descr)) in modules.iter().enumerate() {
        let index = i as u32 + 1;
        rows.push((vec![2, index], object_id(id)));
        rows.push((vec![3, index], octets(descr.as_bytes())));
        rows.push((vec![4, index], ticks(0)));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}
