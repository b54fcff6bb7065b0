//! The scalar objects: SNMPv2-MIB system and snmp groups, SNMP-FRAMEWORK-MIB engine, MPD/USM statistics.

use std::sync::atomic::Ordering;

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::meta::Role;
use halyard_cluster_model::port::{ManagedObject, ModelError, Query};
use halyard_cluster_model::value::Value;
use rasn_smi::v2::ObjectSyntax;

use super::{Mib, Node, module_root};
use crate::codec::{self, counter32, int, object_id, octets, ticks};
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
    /// ALARM-MIB alarmModelLastChanged: the model is fixed (0).
    AlarmModelLastChanged,
    AlarmActiveLastChanged,
    /// alarmActiveOverflow: the alarms the engine dropped in storms (the
    /// element's attribute with the `alarmOverflow` role).
    AlarmActiveOverflow,
    /// alarmClearMaximum: the element's attribute with that role.
    AlarmClearMaximum,
}

pub(super) fn scalar(prefix: &[u32], arc: u32, s: Scalar) -> (Oid, Node) {
    (oid::join(prefix, &[arc]), Node::Scalar(s))
}

impl Mib {
    /// The element attribute a scalar shows: sysContact, sysLocation,
    /// sysName and snmpEnableAuthenTraps are the root's attributes with those roles
    /// (one value for every face, persisted and writable), unless the SNMP
    /// configuration fixes them (then read-only, as snmpd.conf's
    /// `syscontact` makes sysContact).
    pub(super) fn model_role(&self, s: Scalar) -> Option<Role> {
        match s {
            Scalar::SysContact if self.sys.contact.is_none() => Some(Role::Contact),
            Scalar::SysLocation if self.sys.location.is_none() => Some(Role::Location),
            Scalar::EnableAuthenTraps if self.sys.enable_authen_traps.is_none() => {
                Some(Role::AuthenticationTraps)
            }
            Scalar::AlarmClearMaximum => Some(Role::AlarmClearMaximum),
            Scalar::AlarmActiveOverflow => Some(Role::AlarmOverflow),
            // The element's host name; the configured name (the serving
            // node's) while it is empty.
            Scalar::SysName => Some(Role::Hostname),
            _ => None,
        }
    }

    /// The root object (the element) and the position of its attribute
    /// with `role`; None before the element exists.
    pub(super) async fn root_attribute(
        &self,
        role: Role,
    ) -> Result<Option<(ManagedObject, usize)>, ModelError> {
        let Some(class) = SCHEMA
            .object_classes()
            .find(|c| c.attribute_by_role(role).is_some())
        else {
            return Ok(None);
        };
        let objects = self
            .model
            .query(&Query {
                classes: vec![class.name.to_string()],
                ..Query::default()
            })
            .await?;
        Ok(objects
            .into_iter()
            .find(|o| o.parent_index == 0)
            .and_then(|o| Some((o.class.attribute_by_role(role)?.0, o)))
            .map(|(i, o)| (o, i)))
    }

    /// A scalar's value, the element's attributes read from the model.
    pub(super) async fn scalar(&self, s: Scalar) -> Result<ObjectSyntax, ModelError> {
        let Some(role) = self.model_role(s) else {
            return Ok(self.scalar_value(s));
        };
        let found = self.root_attribute(role).await?;
        let value = found.as_ref().map(|(o, i)| &o.values[*i]);
        if role == Role::Hostname && value.and_then(Value::as_str).is_none_or(str::is_empty) {
            return Ok(self.scalar_value(s));
        }
        if role == Role::AuthenticationTraps {
            self.authen_traps
                .store(matches!(value, Some(Value::Bool(true))), Ordering::Relaxed);
        }
        Ok(match found.as_ref() {
            Some((o, i)) => codec::encode_value(&o.class.attributes[*i], &o.values[*i]),
            None => None,
        }
        .unwrap_or_else(|| self.scalar_value(s)))
    }

    /// Reads snmpEnableAuthenTraps from the model (the agent looks every
    /// second, so a change made on another face takes effect within one).
    pub async fn observe_system(&self) -> Result<(), ModelError> {
        self.scalar(Scalar::EnableAuthenTraps).await.map(|_| ())
    }

    /// Whether authenticationFailure notifications are enabled.
    pub fn authentication_traps(&self) -> bool {
        self.sys
            .enable_authen_traps
            .unwrap_or_else(|| self.authen_traps.load(Ordering::Relaxed))
    }

    pub(super) fn scalar_value(&self, s: Scalar) -> ObjectSyntax {
        let e = &self.engine;
        match s {
            Scalar::SysDescr => octets(self.sys.descr.as_bytes()),
            Scalar::SysObjectId => object_id(&module_root()),
            Scalar::SysUpTime => ticks(e.uptime_ticks()),
            Scalar::SysContact => octets(self.sys.contact.as_deref().unwrap_or("").as_bytes()),
            Scalar::SysName => octets(self.sys.name.as_bytes()),
            Scalar::SysLocation => octets(self.sys.location.as_deref().unwrap_or("").as_bytes()),
            // Applications (layer 7) and end-to-end (layer 4).
            Scalar::SysServices => int(72),
            Scalar::SysOrLastChange => ticks(0),
            Scalar::Count(c) => counter32(e.get(c)),
            // TruthValue: true(1), false(2).
            Scalar::EnableAuthenTraps => int(if self.authentication_traps() { 1 } else { 2 }),
            Scalar::SetSerialNo => int(i64::from(self.set_serial.load(Ordering::SeqCst))),
            Scalar::EngineId => octets(e.id.clone()),
            Scalar::EngineBoots => int(i64::from(e.boots)),
            Scalar::EngineTime => int(i64::from(e.time())),
            Scalar::EngineMaxMessageSize => int(i64::from(self.max_message_size)),
            Scalar::AlarmModelLastChanged => ticks(0),
            Scalar::AlarmActiveLastChanged => ticks(self.alarm_stats.active_changed()),
            // Before the element exists: none dropped.
            Scalar::AlarmActiveOverflow => counter32(0),
            // Before the element exists: none kept.
            Scalar::AlarmClearMaximum => codec::gauge32(0),
        }
    }
}
