//! HALYARD-CLUSTER-MIB: OIDs of the generated tables and notifications, hcObjectTable rows, table walks.

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::meta::ClassMeta;
use halyard_cluster_model::port::{ManagedObject, ModelError};
use rasn_smi::v2::ObjectSyntax;

use super::{Ctx, Mib, Node, RowCache};
use crate::codec::{gauge32, object_id, octets};
use crate::oid::{self, Oid};

/// `1.3.6.1.4.1.<enterprise>.<arc>`.
pub fn module_root() -> Oid {
    SCHEMA.module.root_oid().to_vec()
}

/// The entry OID of a class table: `<root>.1.<class>.1`.
pub fn class_entry(class: &ClassMeta) -> Oid {
    oid::join(&module_root(), &[1, class.oid, 1])
}

/// The registered vendor type of a physical entity class
/// (entPhysicalVendorType): `<root>.4.<class>`, an OBJECT-IDENTITY of the
/// generated MIB.
pub fn physical_type(class: &ClassMeta) -> Oid {
    oid::join(&module_root(), &[4, class.oid])
}

/// The notification OID of an indication class: `<root>.0.<n>`.
pub fn notification_oid(class: &ClassMeta) -> Oid {
    oid::join(&module_root(), &[0, class.oid])
}

/// The instance OID of an accessible-for-notify object: `<root>.3.<n>.<k>.0`.
pub fn notification_object(class: &ClassMeta, column: u32) -> Oid {
    oid::join(&module_root(), &[3, class.oid, column, 0])
}

impl Mib {
    /// A class's table entry OID as a value, from the table's node.
    pub(super) fn entry_of(&self, class: &'static ClassMeta) -> ObjectSyntax {
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
    pub(super) fn object_row(&self, col: u32, o: &ManagedObject) -> ObjectSyntax {
        match col {
            2 => self.entry_of(o.class),
            3 => octets(o.name.as_str().as_bytes()),
            _ => gauge32(o.parent_index),
        }
    }

    /// The first row after `after` (in index order, of exactly `class`
    /// when given) for which `value` yields something, from the request's
    /// row cache when it covers the range, else from the model in batches.
    pub(super) async fn row_after(
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
                    let mut rows = self.model.walk(class, after, batch).await?;
                    let complete = rows.len() < batch;
                    // A hidden row is skipped; the walk goes on after it.
                    let last = rows.last().map(|o| o.index);
                    if let Some(r) = ctx.reader.as_mut() {
                        r.objects(&mut rows);
                    }
                    if !complete && rows.is_empty() {
                        after = last.unwrap_or(u32::MAX);
                        continue;
                    }
                    &*ctx.rows.insert(RowCache {
                        class: key,
                        after,
                        complete,
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
}
