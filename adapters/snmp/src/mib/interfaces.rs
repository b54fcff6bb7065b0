//! IF-MIB (RFC 2863): ifNumber, ifTable and ifXTable over the element's
//! interfaces, the physical entities of class port
//! ([`physical::is_interface`]); ifIndex is the port's object index, as
//! its entPhysicalIndex. Traffic counters are the port's attributes with
//! the `ifInOctets` ... `ifOutErrors` roles (64-bit: the Counter32 columns
//! are their low 32 bits, ifXTable's HC columns the whole), from 0 when
//! the port appeared (ifCounterDiscontinuityTime 0: the agent's start). ifMtu, the discards, unknown
//! protocols and the deprecated columns are not kept by the model, so
//! not instantiated (rather than invented zeros).

use halyard_cluster_model::meta::Role;
use halyard_cluster_model::physical::{self, Admin, Oper};
use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::value::Value;
use rasn_smi::v2::ObjectSyntax;

use super::snapshot::Snapshot;
use crate::codec::{counter32, counter64, gauge32, int, octets, ticks};

/// ifNumber.
pub(super) const IF_NUMBER: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 1];
/// ifEntry.
pub(super) const IF_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1];
/// ifXEntry.
pub(super) const IF_X_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1];
/// The IF-MIB module (sysORTable).
pub(super) const IF_MIB: &[u32] = &[1, 3, 6, 1, 2, 1, 31];

/// The interface tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IfTable {
    If,
    IfX,
}

impl IfTable {
    /// ifIndex, ifDescr, ifType, ifSpeed, ifPhysAddress, ifAdminStatus,
    /// ifOperStatus, ifLastChange, ifInOctets, ifInUcastPkts, ifInErrors,
    /// ifOutOctets, ifOutUcastPkts, ifOutErrors; ifName, ifHCInOctets,
    /// ifHCInUcastPkts, ifHCOutOctets, ifHCOutUcastPkts, ifPromiscuousMode,
    /// ifHighSpeed, ifConnectorPresent, ifAlias,
    /// ifCounterDiscontinuityTime.
    pub(super) fn columns(self) -> &'static [u32] {
        match self {
            IfTable::If => &[1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 14, 16, 17, 20],
            IfTable::IfX => &[1, 6, 7, 10, 11, 15, 16, 17, 18, 19],
        }
    }
}

/// ethernetCsmacd(6): every port of the element's line cards is an
/// Ethernet port.
const ETHERNET_CSMACD: i64 = 6;

/// The port's counter with `role`.
fn counter(o: &ManagedObject, role: Role) -> Option<u64> {
    match o.by_role(role)? {
        Value::U64(v) => Some(*v),
        _ => None,
    }
}

/// A Counter32 column: the counter's low 32 bits (it wraps as Counter32
/// does).
fn low32(o: &ManagedObject, role: Role) -> Option<ObjectSyntax> {
    counter(o, role).map(|v| counter32(v as u32))
}

/// A column of an interface's row.
pub(super) fn if_column(
    snap: &Snapshot,
    t: IfTable,
    col: u32,
    o: &ManagedObject,
) -> Option<ObjectSyntax> {
    let mbps = physical::interface_speed_mbps(o);
    Some(match (t, col) {
        (IfTable::If, 1) => int(i64::from(o.index)),
        (IfTable::If, 2) => octets(physical::description(o).into_bytes()),
        (IfTable::If, 3) => int(ETHERNET_CSMACD),
        // Gauge32 bits per second, saturated (ifHighSpeed has the rest).
        (IfTable::If, 5) => gauge32(mbps.map_or(0, |m| {
            u32::try_from(u64::from(m) * 1_000_000).unwrap_or(u32::MAX)
        })),
        (IfTable::If, 6) => octets(Vec::new()),
        // up(1), down(2), testing(3).
        (IfTable::If, 7) => int(match physical::admin(o) {
            Admin::Unlocked => 1,
            _ => 2,
        }),
        // up(1), down(2), testing(3), unknown(4).
        (IfTable::If, 8) => int(match physical::oper(o) {
            Oper::Enabled => 1,
            Oper::Disabled => 2,
            Oper::Testing => 3,
            Oper::Unknown => 4,
        }),
        // sysUpTime when the states last changed; 0 before the agent's start.
        (IfTable::If, 9) => ticks(since_start(snap, o)),
        (IfTable::If, 10) => low32(o, Role::IfInOctets)?,
        (IfTable::If, 11) => low32(o, Role::IfInUcastPkts)?,
        (IfTable::If, 14) => low32(o, Role::IfInErrors)?,
        (IfTable::If, 16) => low32(o, Role::IfOutOctets)?,
        (IfTable::If, 17) => low32(o, Role::IfOutUcastPkts)?,
        (IfTable::If, 20) => low32(o, Role::IfOutErrors)?,
        (IfTable::IfX, 6) => counter64(counter(o, Role::IfInOctets)?),
        (IfTable::IfX, 7) => counter64(counter(o, Role::IfInUcastPkts)?),
        (IfTable::IfX, 10) => counter64(counter(o, Role::IfOutOctets)?),
        (IfTable::IfX, 11) => counter64(counter(o, Role::IfOutUcastPkts)?),
        (IfTable::IfX, 1) => octets(o.name.as_str().as_bytes()),
        // false(2).
        (IfTable::IfX, 16) => int(2),
        (IfTable::IfX, 15) => gauge32(mbps.unwrap_or(0)),
        // true(1): a port of a line card has its connector.
        (IfTable::IfX, 17) => int(1),
        (IfTable::IfX, 18) => octets(
            o.by_role(Role::Alias)
                .and_then(Value::as_str)
                .unwrap_or("")
                .as_bytes(),
        ),
        // No counter of the port was ever discontinuous.
        (IfTable::IfX, 19) => ticks(0),
        _ => return None,
    })
}

fn since_start(snap: &Snapshot, o: &ManagedObject) -> u32 {
    let t = physical::state_last_changed(o, snap.started);
    u32::try_from((t.0 - snap.started.0).max(0) / 10).unwrap_or(u32::MAX)
}

/// entAliasMappingIdentifier of an interface's entity (RFC 6933): its
/// ifIndex instance, for every logical entity (index 0).
pub(super) fn alias_mapping(o: &ManagedObject) -> ObjectSyntax {
    crate::codec::object_id(&[IF_ENTRY, &[1, o.index]].concat())
}
