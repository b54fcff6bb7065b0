//! SET: every varbind validated, then applied in one transaction.

use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{Change, ManagedObject, ModelError, Principal, Transaction};
use rasn_snmp::v2::VarBindValue;

use std::sync::atomic::Ordering;

use rasn_smi::v2::{ObjectSyntax, SimpleSyntax};

use super::scalars::Scalar;
use super::{Mib, Node};
use crate::codec;
use crate::config::View;
use crate::oid::Oid;
use crate::status::{code, error_status};

impl Mib {
    /// The object and attribute position a SET varbind writes, or the
    /// error-status that refuses it: a writable column of a class table,
    /// or a scalar that is the element's attribute (sysContact,
    /// sysLocation, snmpEnableAuthenTraps, unless the configuration fixes
    /// them).
    async fn set_target(&self, oid: &Oid) -> Result<(ManagedObject, usize), u32> {
        match self.find_node(oid) {
            Some((prefix, Node::Scalar(s))) => {
                let role = self.model_role(*s).ok_or(code::NOT_WRITABLE)?;
                if oid[prefix.len()..] != [0] {
                    return Err(code::NO_CREATION);
                }
                match self.root_attribute(role).await {
                    // A counter the element keeps is read-only.
                    Ok(Some((o, i))) if !o.class.attributes[i].writable => Err(code::NOT_WRITABLE),
                    Ok(Some(found)) => Ok(found),
                    Ok(None) => Err(code::NOT_WRITABLE),
                    Err(e) => Err(error_status(&e)),
                }
            }
            Some((prefix, Node::Class(class, cols, _))) => {
                let rel = &oid[prefix.len()..];
                let (_, ai) = rel
                    .first()
                    .and_then(|c| cols.iter().find(|(k, _)| k == c))
                    .ok_or(code::NOT_WRITABLE)?;
                if !class.attributes[*ai].writable {
                    return Err(code::NOT_WRITABLE);
                }
                let [_, index] = rel else {
                    return Err(code::NO_CREATION);
                };
                match self.model.get_by_index(*index).await {
                    Ok(o) if o.class.name == class.name => Ok((o, *ai)),
                    Ok(_) | Err(ModelError::NoSuchObject { .. }) => Err(code::NO_CREATION),
                    Err(e) => Err(error_status(&e)),
                }
            }
            _ => Err(code::NOT_WRITABLE),
        }
    }

    /// SET: validates every varbind, then applies them in one transaction.
    /// `Err((error-status, error-index))` with a 1-based index.
    pub async fn set(
        &self,
        varbinds: &[(Oid, VarBindValue)],
        user: &str,
        role: halyard_cluster_model::access::Role,
        write_view: &View,
    ) -> Result<(), (u32, u32)> {
        let mut changes = Vec::with_capacity(varbinds.len());
        // snmpSetSerialNo's value as sent, with its varbind's position.
        let mut serial: Option<(i32, u32)> = None;
        // The varbind (1-based) of each change.
        let mut positions = Vec::with_capacity(varbinds.len());
        for (i, (oid, value)) in varbinds.iter().enumerate() {
            let fail = |status| (status, i as u32 + 1);
            if !write_view.contains(oid) {
                return Err(fail(code::NO_ACCESS));
            }
            if let Some((prefix, Node::Scalar(Scalar::SetSerialNo))) = self.find_node(oid) {
                if oid[prefix.len()..] != [0] {
                    return Err(fail(code::NO_CREATION));
                }
                let VarBindValue::Value(ObjectSyntax::Simple(SimpleSyntax::Integer(v))) = value
                else {
                    return Err(fail(code::WRONG_TYPE));
                };
                let Ok(v) = i32::try_from(v) else {
                    return Err(fail(code::WRONG_VALUE));
                };
                if v < 0 {
                    return Err(fail(code::WRONG_VALUE));
                }
                // TestAndIncr: only the value it holds is accepted.
                if v != self.set_serial.load(Ordering::SeqCst) {
                    return Err(fail(code::INCONSISTENT_VALUE));
                }
                serial = Some((v, i as u32 + 1));
                continue;
            }
            let (object, ai) = self.set_target(oid).await.map_err(fail)?;
            let attr = &object.class.attributes[ai];
            let value = codec::decode_value(attr, value).map_err(fail)?;
            if let Err(e) = value.check(&attr.ty) {
                return Err(fail(error_status(&ModelError::InvalidValue {
                    attribute: attr.name.to_string(),
                    error: e,
                })));
            }
            positions.push(i as u32 + 1);
            changes.push(Change::Set {
                object: object.name,
                attribute: attr.name.to_string(),
                value,
            });
        }
        // The serial number moves first (another manager's SET racing
        // this one fails), and back when the rest is refused.
        if let Some((v, at)) = serial {
            let next = if v == i32::MAX { 0 } else { v + 1 };
            self.set_serial
                .compare_exchange(v, next, Ordering::SeqCst, Ordering::SeqCst)
                .map_err(|_| (code::INCONSISTENT_VALUE, at))?;
        }
        if changes.is_empty() {
            return Ok(());
        }
        let tx = Transaction {
            // Only a community or user with write access gets here: an
            // operator (or an element's admin user) to the access model,
            // whose rules decide the rest.
            principal: Principal::new(user, Protocol::Snmp).with_role(role),
            changes,
        };
        let r = self.model.transact(tx).await.map_err(|e| {
            let at = positions.get(e.index).copied().unwrap_or(1);
            (error_status(&e.error), at)
        });
        if r.is_err()
            && let Some((v, _)) = serial
        {
            let next = if v == i32::MAX { 0 } else { v + 1 };
            let _ = self
                .set_serial
                .compare_exchange(next, v, Ordering::SeqCst, Ordering::SeqCst);
        }
        r
    }
}
