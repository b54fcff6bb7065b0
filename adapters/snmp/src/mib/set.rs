//! SET: every varbind validated, then applied in one transaction.

use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{Change, ModelError, Principal, Transaction};
use rasn_snmp::v2::VarBindValue;

use super::{Mib, Node};
use crate::codec;
use crate::config::View;
use crate::oid::Oid;
use crate::status::{code, error_status};

impl Mib {
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
