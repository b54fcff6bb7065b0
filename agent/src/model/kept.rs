//! Operators' edits kept across restarts: attribute writes, creations and
//! deletions of configuration objects. The agent rebuilds its tree from
//! the configuration file at every start, and some objects appear only
//! later (statistics and their thresholds at the first collection, units
//! at hot swap); so the kept edits live in the repository and, loaded once,
//! in memory, and each is laid over its object when the object is created
//! ([`AgentModel::create`]): a write applies, a deletion refuses the
//! creation, a created object comes with its container.
//!
//! Repository keys: `/writes/<object>/<attribute>` (the value as text),
//! `/objects/<object>` (class and attribute values as text), `/deleted/<object>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use halyard_cluster_model::port::{InformationModel, ModelError};
use halyard_cluster_model::{ObjectName, SCHEMA, Value};
use serde_json::json;

use super::{AgentModel, err_commit};
use crate::replication::{ObjectOp, SetOp};

const WRITES: &str = "/writes";
const OBJECTS: &str = "/objects";
const DELETED: &str = "/deleted";

/// Attribute values as text, by attribute name.
pub(crate) type TextValues = Vec<(String, String)>;

/// The kept edits, by object name.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    writes: HashMap<String, BTreeMap<String, String>>,
    created: BTreeMap<String, (String, TextValues)>,
    deleted: BTreeSet<String>,
}

/// Attribute values given as text, parsed in their class's types (what
/// does not parse or is not an attribute is left out).
pub(crate) fn parse_values(class: &str, values: &[(String, String)]) -> Vec<(&'static str, Value)> {
    let Some(meta) = SCHEMA.class(class) else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(|(a, t)| {
            let (_, m) = meta.attribute(a)?;
            Some((m.name, Value::parse(&m.ty, t).ok()?))
        })
        .collect()
}

impl AgentModel {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads the kept edits from the repository (at start, before the
    /// tree is built).
    pub(crate) async fn load_kept(&self) -> Result<(usize, usize, usize), ModelError> {
        let mut k = Kept::default();
        for (key, v) in self.repo.list(WRITES).await.map_err(err_commit)? {
            let Some((object, attribute)) = key
                .strip_prefix(WRITES)
                .and_then(|r| r.strip_prefix('/'))
                .and_then(|r| r.rsplit_once('/'))
            else {
                continue;
            };
            if let Some(text) = v.as_str() {
                k.writes
                    .entry(object.to_string())
                    .or_default()
                    .insert(attribute.to_string(), text.to_string());
            }
        }
        for (key, v) in self.repo.list(OBJECTS).await.map_err(err_commit)? {
            let Some(object) = key.strip_prefix(OBJECTS).and_then(|r| r.strip_prefix('/')) else {
                continue;
            };
            let class = v["class"].as_str().unwrap_or_default().to_string();
            let values = serde_json::from_value(v["values"].clone()).unwrap_or_default();
            k.created.insert(object.to_string(), (class, values));
        }
        for (key, _) in self.repo.list(DELETED).await.map_err(err_commit)? {
            if let Some(object) = key.strip_prefix(DELETED).and_then(|r| r.strip_prefix('/')) {
                k.deleted.insert(object.to_string());
            }
        }
        let counts = (
            k.writes.values().map(BTreeMap::len).sum(),
            k.created.len(),
            k.deleted.len(),
        );
        *self.kept() = k;
        Ok(counts)
    }

    /// Whether an operator deleted this object or one that contains it.
    pub(crate) fn kept_deleted(&self, object: &str) -> bool {
        let k = self.kept();
        if k.deleted.is_empty() {
            return false;
        }
        let mut at = ObjectName::parse(object).ok();
        while let Some(n) = at {
            if k.deleted.contains(n.as_str()) {
                return true;
            }
            at = n.parent();
        }
        false
    }

    /// The objects an operator created under `object`, containers first.
    pub(crate) fn kept_created_under(&self, object: &str) -> Vec<(String, String, TextValues)> {
        let prefix = format!("{object}/");
        self.kept()
            .created
            .range(prefix.clone()..)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .map(|(n, (c, v))| (n.clone(), c.clone(), v.clone()))
            .collect()
    }

    /// Applies the kept writes to an object just created.
    pub(crate) fn apply_kept_writes(&self, object: &str) {
        let writes = match self.kept().writes.get(object) {
            Some(w) => w.clone(),
            None => return,
        };
        let Ok(name) = ObjectName::parse(object) else {
            return;
        };
        let Some(class) = self.store.class_of(&name) else {
            return;
        };
        for (attribute, text) in writes {
            let Some((_, m)) = class.attribute(&attribute) else {
                continue;
            };
            if !m.writable || Self::is_availability_attr(class, &attribute) {
                continue;
            }
            match Value::parse(&m.ty, &text) {
                Ok(value) => {
                    self.set(&name, &[(m.name, value)]);
                }
                Err(_) => {
                    tracing::warn!(%object, %attribute, %text, "a kept write does not parse; ignored")
                }
            }
        }
    }

    /// Keeps operators' attribute writes (`/writes/<object>/<attribute>`,
    /// the value as text). Components' administrative states are CRIM's,
    /// not kept here.
    pub(crate) async fn keep_writes(&self, sets: &[SetOp]) -> Result<(), ModelError> {
        for op in sets {
            if let Ok(o) = self.store.get(&super::name(&op.object)?).await
                && Self::is_availability_attr(o.class, &op.attribute)
            {
                continue;
            }
            self.repo
                .set(
                    &format!("{WRITES}/{}/{}", op.object, op.attribute),
                    &op.value,
                )
                .await
                .map_err(err_commit)?;
            self.kept()
                .writes
                .entry(op.object.clone())
                .or_default()
                .insert(op.attribute.clone(), op.value.clone());
        }
        Ok(())
    }

    /// Keeps operators' creations and deletions of configuration objects:
    /// a created object under `/objects`, a deleted one of the
    /// configuration under `/deleted` (a deleted object's kept writes and
    /// created descendants go).
    pub(crate) async fn keep_objects(&self, ops: &[ObjectOp]) -> Result<(), ModelError> {
        for op in ops {
            match op {
                ObjectOp::Create {
                    class,
                    object,
                    values,
                } => {
                    self.repo
                        .delete(&format!("{DELETED}/{object}"))
                        .await
                        .map_err(err_commit)?;
                    self.repo
                        .set(
                            &format!("{OBJECTS}/{object}"),
                            json!({"class": class, "values": values}),
                        )
                        .await
                        .map_err(err_commit)?;
                    let mut k = self.kept();
                    k.deleted.remove(object);
                    k.created
                        .insert(object.clone(), (class.clone(), values.clone()));
                }
                ObjectOp::Delete { object } => {
                    let key = format!("{OBJECTS}/{object}");
                    let created = self.kept().created.contains_key(object);
                    self.repo.delete(&key).await.map_err(err_commit)?;
                    self.repo
                        .delete(&format!("{WRITES}/{object}"))
                        .await
                        .map_err(err_commit)?;
                    if !created {
                        self.repo
                            .set(&format!("{DELETED}/{object}"), true)
                            .await
                            .map_err(err_commit)?;
                    }
                    let prefix = format!("{object}/");
                    let mut k = self.kept();
                    k.created
                        .retain(|n, _| n != object && !n.starts_with(&prefix));
                    k.writes
                        .retain(|n, _| n != object && !n.starts_with(&prefix));
                    if !created {
                        k.deleted.insert(object.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies creations and deletions another node committed (already
    /// here when this node made them), and keeps them.
    pub(crate) async fn apply_objects(&self, ops: &[ObjectOp]) -> Result<(), ModelError> {
        self.keep_objects(ops).await?;
        let mut fresh = Vec::new();
        for op in ops {
            let name = super::name(op.object())?;
            match op {
                ObjectOp::Create { class, values, .. } => {
                    if self.store.get(&name).await.is_ok() {
                        continue;
                    }
                    let values = parse_values(class, values);
                    if let Err(e) = self.create(class, op.object(), &values, &mut fresh).await {
                        tracing::warn!(object = %name, error = %e, "a replicated creation does not apply here");
                    }
                }
                ObjectOp::Delete { .. } => {
                    self.store.remove(&name);
                }
            }
        }
        self.persist_indices(fresh).await
    }
}
