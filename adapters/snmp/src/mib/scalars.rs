//! The scalar objects: SNMPv2-MIB system and snmp groups, SNMP-FRAMEWORK-MIB engine, MPD/USM statistics.

use rasn_smi::v2::ObjectSyntax;

use super::{Mib, Node, module_root};
use crate::codec::{counter32, int, object_id, octets, ticks};
use crate::engine::Counter;
use crate::oid::{self, Oid};

#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar {
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
    /// snmpSetSerialNo (TestAndIncr): managers' advisory lock.
    SetSerialNo,
    EngineId,
    EngineBoots,
    EngineTime,
    EngineMaxMessageSize,
}

pub(super) fn scalar(prefix: &[u32], arc: u32, s: Scalar) -> (Oid, Node) {
    (oid::join(prefix, &[arc]), Node::Scalar(s))
}

impl Mib {
    pub(super) fn scalar_value(&self, s: Scalar) -> ObjectSyntax {
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
            Scalar::SetSerialNo => int(i64::from(
                self.set_serial.load(std::sync::atomic::Ordering::SeqCst),
            )),
            Scalar::EngineId => octets(e.id.clone()),
            Scalar::EngineBoots => int(i64::from(e.boots)),
            Scalar::EngineTime => int(i64::from(e.time())),
            Scalar::EngineMaxMessageSize => int(i64::from(self.max_message_size)),
        }
    }
}
