//! The configuration as a store of entries, and the diff that becomes one transaction.

use std::collections::BTreeMap;

use halyard_cluster_model::port::{Change, ManagedObject};
use halyard_cluster_model::{ClassMeta, ObjectName, SCHEMA, Value};

use super::render::render_entry;
use super::{TOP, class_rank, entry_path, is_config_class};
use crate::schema_ns;
use crate::xml::Element;

/// One configuration entry: the writable values of an object (other
/// attributes are `Absent`), aligned with `class.attributes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub class: &'static ClassMeta,
    pub values: Vec<Value>,
}

impl ConfigEntry {
    /// A new entry of `class`: its writable attributes at their defaults.
    pub fn fresh(class: &'static ClassMeta) -> Self {
        ConfigEntry {
            class,
            values: class
                .attributes
                .iter()
                .map(|a| match (a.writable, a.default) {
                    (true, Some(d)) => Value::parse(&a.ty, d).unwrap_or(Value::Absent),
                    _ => Value::Absent,
                })
                .collect(),
        }
    }
}

/// A configuration datastore's content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigStore {
    pub entries: BTreeMap<ObjectName, ConfigEntry>,
}

impl ConfigStore {
    pub fn from_objects(objects: &[ManagedObject]) -> Self {
        let entries = objects
            .iter()
            .filter(|o| is_config_class(o.class))
            .map(|o| {
                let values = o
                    .class
                    .attributes
                    .iter()
                    .zip(&o.values)
                    .map(|(a, v)| if a.writable { v.clone() } else { Value::Absent })
                    .collect();
                (
                    o.name.clone(),
                    ConfigEntry {
                        class: o.class,
                        values,
                    },
                )
            })
            .collect();
        ConfigStore { entries }
    }

    /// The entries as objects (the standard modules' views read these),
    /// numbered in name order.
    pub fn objects(&self) -> Vec<ManagedObject> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, (name, e))| ManagedObject {
                class: e.class,
                index: i as u32 + 1,
                name: name.clone(),
                parent_index: u32::from(name.parent().is_some()),
                values: e.values.clone(),
            })
            .collect()
    }

    pub fn render(&self) -> Element {
        let mut sorted: Vec<(&ObjectName, &ConfigEntry)> = self.entries.iter().collect();
        sorted.sort_by_key(|(n, e)| (class_rank(e.class), n.as_str()));
        let mut top = Element::new(schema_ns(), TOP);
        for (name, e) in sorted {
            let mut values = e.values.clone();
            if let Some(k) = e.class.key_index() {
                values[k] = Value::Str(name.to_string());
            }
            top.push(render_entry(e.class, &values, true));
        }
        top
    }

    /// The changes that turn `self` into `target`: deletes (outermost
    /// only), then creates (parents first), then sets.
    pub fn diff(&self, target: &ConfigStore) -> Vec<Change> {
        let mut deletes: Vec<&ObjectName> = self
            .entries
            .keys()
            .filter(|n| !target.entries.contains_key(*n))
            .collect();
        let all_deleted = deletes.clone();
        deletes.retain(|n| !all_deleted.iter().any(|d| *d != *n && n.is_within(d)));
        let mut creates: Vec<(&ObjectName, &ConfigEntry)> = target
            .entries
            .iter()
            .filter(|(n, _)| !self.entries.contains_key(*n))
            .collect();
        creates.sort_by_key(|(n, _)| (n.depth(), n.as_str()));
        let mut changes: Vec<Change> = deletes
            .into_iter()
            .map(|n| Change::Delete { object: n.clone() })
            .collect();
        for (n, e) in creates {
            changes.push(Change::Create {
                class: e.class.name.to_string(),
                object: n.clone(),
                values: e
                    .class
                    .attributes
                    .iter()
                    .zip(&e.values)
                    .filter(|(a, v)| a.writable && !matches!(v, Value::Absent))
                    .map(|(a, v)| (a.name.to_string(), v.clone()))
                    .collect(),
            });
        }
        for (n, new) in &target.entries {
            let Some(old) = self.entries.get(n) else {
                continue;
            };
            for (i, a) in new.class.attributes.iter().enumerate() {
                if a.writable && new.values[i] != old.values[i] {
                    changes.push(Change::Set {
                        object: n.clone(),
                        attribute: a.name.to_string(),
                        value: new.values[i].clone(),
                    });
                }
            }
        }
        changes
    }
}

/// The path of the object a change concerns (for error-path).
pub fn change_path(change: &Change, store: &ConfigStore) -> Option<String> {
    let name = change.object();
    let class = match change {
        Change::Create { class, .. } => SCHEMA.class(class),
        _ => store.entries.get(name).map(|e| e.class),
    }?;
    let leaf = match change {
        Change::Set { attribute, .. } => class.attribute(attribute).map(|(_, a)| a.yang_name),
        _ => None,
    };
    Some(entry_path(class, name.as_str(), leaf))
}
