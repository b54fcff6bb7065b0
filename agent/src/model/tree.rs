//! The object tree: reads, writes and sets of ordinary objects, and the
//! validation of configuration edits.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use halyard_cluster_model::model::{AdminState, NetworkElementPatch};
use halyard_cluster_model::port::{
    Change, InformationModel, JobHandle, ManagedObject, ModelError, Notification,
    NotificationFilter, Principal, Query, Subscription, Transaction, TxError,
};
use halyard_cluster_model::{ClassMeta, ObjectName, SCHEMA, SchemaEnum, Timestamp, Value};
use serde_json::json;

use crate::replication::{ObjectOp, Replicated, SetOp};

use super::{AgentModel, INDEX_PREFIX, NEXT_INDEX_KEY, err_commit};

/// The creations and deletions of a transaction, values as text.
fn object_ops(tx: &Transaction) -> Vec<ObjectOp> {
    tx.changes
        .iter()
        .filter_map(|c| match c {
            Change::Create {
                class,
                object,
                values,
            } => {
                let meta = SCHEMA.class(class)?;
                Some(ObjectOp::Create {
                    class: class.clone(),
                    object: object.to_string(),
                    values: values
                        .iter()
                        .filter_map(|(a, v)| {
                            let (_, m) = meta.attribute(a)?;
                            Some((a.clone(), v.render(&m.ty)))
                        })
                        .collect(),
                })
            }
            Change::Delete { object } => Some(ObjectOp::Delete {
                object: object.to_string(),
            }),
            Change::Set { .. } => None,
        })
        .collect()
}

impl AgentModel {
    /// Writes attributes of an object the agent keeps current: the one way
    /// the agent updates its own objects. A string longer than its
    /// attribute's MaxLen is cut to it (reasons and details are free text);
    /// anything else the store refuses (an unknown attribute, a wrong type)
    /// is a defect of the agent: logged at ERROR with what was written,
    /// counted in the element's `ModelUpdateErrors`, never dropped silently.
    /// Returns whether the update was applied.
    pub(crate) fn set(&self, name: &ObjectName, values: &[(&str, Value)]) -> bool {
        let class = self.store.class_of(name);
        let fitted: Vec<(&str, Value)> = values
            .iter()
            .map(|(attr, v)| {
                let cut = match (v, class.and_then(|c| c.attribute(attr))) {
                    (Value::Str(s), Some((_, a))) => match a.ty {
                        halyard_cluster_model::AttrType::String { max_len }
                            if s.chars().count() > max_len as usize =>
                        {
                            Some(Value::Str(s.chars().take(max_len as usize).collect()))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                (*attr, cut.unwrap_or_else(|| v.clone()))
            })
            .collect();
        match self.store.update(name, &fitted) {
            Ok(_) => true,
            // An object that went away meanwhile (a removed unit, a pruned
            // record) is no defect: there is nothing left to keep current.
            Err(ModelError::NoSuchObject { .. }) => false,
            Err(e) => {
                let n = self.update_errors.fetch_add(1, Ordering::Relaxed) + 1;
                let attrs: Vec<&str> = values.iter().map(|(a, _)| *a).collect();
                tracing::error!(
                    object = %name,
                    attributes = ?attrs,
                    error = %e,
                    count = n,
                    "the model refused an update of the agent's own"
                );
                if let Err(e) = self.store.update(
                    &self.root,
                    NetworkElementPatch::new().model_update_errors(n).values(),
                ) {
                    tracing::error!(error = %e, "cannot count the refused update");
                }
                false
            }
        }
    }

    /// Creates an object with its stable index, unless an operator deleted
    /// it (or what contains it); the operator's kept writes to it, and the
    /// objects an operator created under it, come with it.
    pub(crate) async fn create(
        &self,
        class: &str,
        object: &str,
        values: &[(&'static str, Value)],
        fresh: &mut Vec<(String, u32)>,
    ) -> Result<u32, ModelError> {
        if self.kept_deleted(object) {
            return Err(ModelError::NoCreation {
                name: object.to_string(),
                reason: "an operator deleted it".into(),
            });
        }
        let i = self.create_one(class, object, values, fresh).await?;
        // Containers first (key order); one whose container is not there
        // yet waits for it (a statistic appears at the first collection).
        for (name, class, values) in self.kept_created_under(object) {
            let Ok(n) = ObjectName::parse(&name) else {
                continue;
            };
            let container_there = match n.parent() {
                Some(p) => self.store.get(&p).await.is_ok(),
                None => true,
            };
            if !container_there || self.store.get(&n).await.is_ok() {
                continue;
            }
            let values = super::kept::parse_values(&class, &values);
            if let Err(e) = self.create_one(&class, &name, &values, fresh).await {
                tracing::info!(object = %name, error = %e, "an operator's kept creation does not fit the element; left out");
            }
        }
        Ok(i)
    }

    /// Creates one object with its stable index and the kept writes to it.
    async fn create_one(
        &self,
        class: &str,
        object: &str,
        values: &[(&'static str, Value)],
        fresh: &mut Vec<(String, u32)>,
    ) -> Result<u32, ModelError> {
        let mut indices = self.indices.lock().await;
        let index = match indices.get(object) {
            Some(i) => *i,
            None => {
                let i = self.next_index.fetch_add(1, Ordering::Relaxed);
                indices.insert(object.to_string(), i);
                fresh.push((object.to_string(), i));
                i
            }
        };
        drop(indices);
        let i = self.store.insert_at(class, object, values, index)?;
        self.apply_kept_writes(object);
        Ok(i)
    }

    pub(crate) async fn persist_indices(
        &self,
        fresh: Vec<(String, u32)>,
    ) -> Result<(), ModelError> {
        if fresh.is_empty() {
            return Ok(());
        }
        let mut entries: Vec<(String, Option<serde_json::Value>)> = fresh
            .into_iter()
            .map(|(n, i)| (format!("{INDEX_PREFIX}/{n}"), Some(json!(i))))
            .collect();
        // The high-water mark, so that an index given to an object since
        // forgotten is never given again after a restart.
        entries.push((
            NEXT_INDEX_KEY.to_string(),
            Some(json!(self.next_index.load(Ordering::Relaxed))),
        ));
        self.repo.apply(entries).await.map_err(err_commit)?;
        Ok(())
    }

    /// Removes a record that never comes back under its name (a log,
    /// audit or incident record rotated out, a cleared alarm past its
    /// retention) with its stable index: kept, these indices grew without
    /// bound, in memory and on disk (the chaos soak found 17,000 in 13
    /// minutes). Names that come back (a unit re-inserted, an assignment
    /// made again) are removed from the store alone and keep their index.
    pub(crate) async fn forget(&self, name: &ObjectName) {
        self.store.remove(name);
        if self.indices.lock().await.remove(name.as_str()).is_some()
            && let Err(e) = self
                .repo
                .delete(&format!("{INDEX_PREFIX}/{}", name.as_str()))
                .await
        {
            tracing::debug!(error = %e, object = %name, "index of a removed record not deleted");
        }
    }

    /// Creates a dynamic object whose index is saved later, with others,
    /// by [`AgentModel::save_indices`]: for the projection, which creates
    /// thousands of assignments at start-up. An index lost to a crash
    /// before the save costs nothing but the index: the object itself
    /// (an assignment) is rebuilt from the HA core at the next start.
    pub(crate) async fn create_deferred(
        &self,
        class: &str,
        object: &str,
        values: &[(&'static str, Value)],
    ) -> Result<u32, ModelError> {
        let mut fresh = Vec::new();
        let i = self.create(class, object, values, &mut fresh).await?;
        self.unsaved_indices.lock().await.extend(fresh);
        Ok(i)
    }

    /// Saves the indices [`AgentModel::create_deferred`] gave, in one
    /// transaction.
    pub(crate) async fn save_indices(&self) {
        let fresh = std::mem::take(&mut *self.unsaved_indices.lock().await);
        let n = fresh.len();
        if let Err(e) = self.persist_indices(fresh).await {
            tracing::warn!(error = %e, indices = n, "cannot save the indices of new objects; they may change at the next start");
        }
    }

    /// Creates a dynamic object (alarm, job, audit record, assignment).
    pub(crate) async fn create_dynamic(
        &self,
        class: &str,
        object: &str,
        values: &[(&'static str, Value)],
    ) -> Result<u32, ModelError> {
        let mut fresh = Vec::new();
        let i = self.create(class, object, values, &mut fresh).await?;
        self.persist_indices(fresh).await?;
        Ok(i)
    }

    /// Takes the indices the store gave objects a transaction created into
    /// the agent's stable indices (kept across restarts).
    async fn adopt_indices(&self, ops: &[ObjectOp]) -> Result<(), ModelError> {
        let mut fresh = Vec::new();
        for op in ops {
            if let ObjectOp::Create { object, .. } = op
                && let Ok(o) = self.store.get(&super::name(object)?).await
            {
                self.indices.lock().await.insert(object.clone(), o.index);
                self.next_index.fetch_max(o.index + 1, Ordering::Relaxed);
                fresh.push((object.clone(), o.index));
            }
        }
        self.persist_indices(fresh).await
    }

    /// Whether objects of this class come from the element itself (its
    /// configuration file and hot swap): hardware units and the components,
    /// groups and service instances the HA core runs.
    fn is_element_class(class: &ClassMeta) -> bool {
        ["Component", "ServiceGroup", "ServiceInstance"]
            .iter()
            .any(|base| SCHEMA.is_a(class.name, base))
    }

    /// What no configuration edit may do, checked over the whole
    /// transaction before anything is applied: create or delete an object
    /// that stands for hardware or a running component. Deleting one would
    /// leave its process running unmanaged and its hardware unseen; creating
    /// one would show hardware that is not there. Their writable leaves are
    /// configuration; their existence is not.
    async fn check_element_rules(&self, tx: &Transaction) -> Result<(), TxError> {
        for (index, c) in tx.changes.iter().enumerate() {
            let fail = |error| TxError { index, error };
            match c {
                Change::Create { class, object, .. } => {
                    if let Some(meta) = SCHEMA.class(class)
                        && Self::is_element_class(meta)
                    {
                        return Err(fail(ModelError::NoCreation {
                            name: object.to_string(),
                            reason: format!(
                                "a {} stands for hardware or a running component: it comes from \
                                 the element's configuration file or hot swap, not from a \
                                 configuration edit",
                                meta.name
                            ),
                        }));
                    }
                }
                Change::Delete { object } => {
                    let q = Query {
                        scope: halyard_cluster_model::port::Scope::Subtree(object.clone()),
                        ..Query::default()
                    };
                    let within = match self.store.query(&q).await {
                        Ok(v) => v,
                        Err(ModelError::NoSuchObject { .. }) => Vec::new(),
                        Err(e) => return Err(fail(e)),
                    };
                    if let Some(o) = within.iter().find(|o| Self::is_element_class(o.class)) {
                        return Err(fail(ModelError::Inconsistent {
                            reason: format!(
                                "cannot delete {object}: {} is a {} that stands for hardware or \
                                 a running component (remove it from the element's \
                                 configuration file or by hot swap)",
                                o.name, o.class.name
                            ),
                        }));
                    }
                }
                Change::Set { .. } => {}
            }
        }
        Ok(())
    }

    /// The transaction without the creations and deletions this node
    /// already applied from the log: a creation of an object that is there
    /// becomes writes of its values; a deletion of one that is gone, nothing.
    async fn not_yet_applied(&self, tx: Transaction) -> Transaction {
        let mut changes = Vec::with_capacity(tx.changes.len());
        for c in tx.changes {
            match c {
                Change::Create { object, values, .. } if self.store.get(&object).await.is_ok() => {
                    changes.extend(values.into_iter().map(|(attribute, value)| Change::Set {
                        object: object.clone(),
                        attribute,
                        value,
                    }));
                }
                Change::Delete { object } if self.store.get(&object).await.is_err() => {}
                c => changes.push(c),
            }
        }
        Transaction {
            principal: tx.principal,
            changes,
        }
    }

    pub(super) fn is_availability_attr(class: &ClassMeta, attribute: &str) -> bool {
        class
            .attribute(attribute)
            .is_some_and(|(_, a)| a.name == "AdminState")
            && SCHEMA.is_a(class.name, "Component")
    }
}

/// A transaction with its passwords hashed and keys made fingerprints
/// ([`halyard_cluster_model::secret::seal`]), on the blocking pool (Argon2
/// takes tens of milliseconds).
async fn sealed_tx(mut tx: Transaction) -> Result<Transaction, TxError> {
    tokio::task::spawn_blocking(move || {
        halyard_cluster_model::secret::seal(&mut tx)?;
        Ok(tx)
    })
    .await
    .map_err(|e| TxError {
        index: 0,
        error: ModelError::CommitFailed {
            reason: format!("sealing secrets failed: {e}"),
        },
    })?
}

#[async_trait]
impl InformationModel for AgentModel {
    async fn get(&self, name: &ObjectName) -> Result<ManagedObject, ModelError> {
        self.store.get(name).await
    }

    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
        self.store.get_by_index(index).await
    }

    async fn query(&self, query: &Query) -> Result<Vec<ManagedObject>, ModelError> {
        self.store.query(query).await
    }

    async fn credentials(
        &self,
        class: &'static ClassMeta,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.store.credentials(class).await
    }

    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.store.walk(class, after, limit).await
    }

    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<halyard_cluster_model::port::ChangePage>, ModelError> {
        self.store.changed(since, after, limit).await
    }

    async fn audit(&self, principal: &Principal, event: &str, result: &str) {
        AgentModel::audit(self, principal, event, result).await
    }

    async fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        self.check_access(tx).await?;
        let sealed;
        let tx = if halyard_cluster_model::secret::needs_seal(tx) {
            sealed = sealed_tx(tx.clone()).await?;
            &sealed
        } else {
            tx
        };
        self.store.validate(tx)?;
        self.check_element_rules(tx).await
    }

    async fn transact(&self, tx: Transaction) -> Result<(), TxError> {
        // Passwords become Argon2id hashes and SSH keys fingerprints before
        // anything is checked, logged, replicated or kept.
        let tx = if halyard_cluster_model::secret::needs_seal(&tx) {
            sealed_tx(tx).await?
        } else {
            tx
        };
        let what = tx
            .changes
            .iter()
            .map(|c| match c {
                Change::Set {
                    object,
                    attribute,
                    value,
                } => format!(
                    "set {object} {attribute}={}",
                    halyard_cluster_model::secret::audit_value(
                        object
                            .rdns()
                            .last()
                            .and_then(|(r, _)| SCHEMA.class_by_rdn(r)),
                        attribute,
                        value
                    )
                ),
                Change::Create { object, .. } => format!("create {object}"),
                Change::Delete { object } => format!("delete {object}"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        // Validate everything first: all or nothing.
        if let Err(e) = InformationModel::validate(self, &tx).await {
            self.audit(&tx.principal, &what, &format!("refused: {}", e.error))
                .await;
            return Err(e);
        }
        // Administrative states go through COpCo and CRIM before anything else.
        let mut admin = Vec::new();
        for (i, c) in tx.changes.iter().enumerate() {
            if let Change::Set {
                object,
                attribute,
                value: Value::Enum(v),
            } = c
            {
                let o = self
                    .store
                    .get(object)
                    .await
                    .map_err(|error| TxError { index: i, error })?;
                if Self::is_availability_attr(o.class, attribute) {
                    let admin_state = AdminState::from_value(*v).ok_or(TxError {
                        index: i,
                        error: ModelError::Inconsistent {
                            reason: format!("{v} is not an administrative state"),
                        },
                    })?;
                    admin.push((i, object.clone(), admin_state));
                }
            }
        }
        for (i, object, _) in &admin {
            if let Err(reason) = self.copco.check_free(object).await {
                let error = ModelError::Conflict { reason };
                self.audit(&tx.principal, &what, &format!("refused: {error}"))
                    .await;
                return Err(TxError { index: *i, error });
            }
        }
        for (i, object, state) in &admin {
            let r = self
                .core
                .request(halyard_backend::crim::Input::SetAdmin {
                    component: object.to_string(),
                    admin: *state,
                })
                .await;
            if let Err(e) = r {
                let error = ModelError::CommitFailed {
                    reason: e.to_string(),
                };
                self.audit(&tx.principal, &what, &format!("failed: {error}"))
                    .await;
                return Err(TxError { index: *i, error });
            }
        }
        let principal = tx.principal.clone();
        let objects = object_ops(&tx);
        let mut sets = Vec::new();
        for c in &tx.changes {
            if let Change::Set {
                object,
                attribute,
                value,
            } = c
                && let Ok(o) = self.store.get(object).await
                && let Some((_, m)) = o.class.attribute(attribute)
            {
                sets.push(SetOp {
                    object: object.as_str().to_string(),
                    attribute: attribute.to_string(),
                    value: value.render(&m.ty),
                });
            }
        }
        // In a cluster, creations, deletions and attribute writes are
        // committed to the log and applied by every node (each keeps them,
        // see the projection), so every face of every node reads them.
        if self.cluster.get().is_some()
            && !objects.is_empty()
            && let Err(e) = Replicated::Objects(objects.clone())
                .replicate(&self.core)
                .await
        {
            let error = ModelError::CommitFailed {
                reason: e.to_string(),
            };
            self.audit(&principal, &what, &format!("failed: {error}"))
                .await;
            return Err(TxError { index: 0, error });
        }
        if self.cluster.get().is_some()
            && !sets.is_empty()
            && let Err(e) = Replicated::Set(sets.clone()).replicate(&self.core).await
        {
            let error = ModelError::CommitFailed {
                reason: e.to_string(),
            };
            self.audit(&principal, &what, &format!("failed: {error}"))
                .await;
            return Err(TxError { index: 0, error });
        }
        // In a cluster this node may have applied the committed creations
        // and deletions from the log already: what is done is not redone.
        let tx = if self.cluster.get().is_some() {
            self.not_yet_applied(tx).await
        } else {
            tx
        };
        // Objects created here get indices the agent has not handed out.
        let creates = objects
            .iter()
            .filter(|o| matches!(o, ObjectOp::Create { .. }))
            .count() as u32;
        if creates > 0 {
            let block = self.next_index.fetch_add(creates, Ordering::Relaxed);
            self.store.advance_next_index(block);
        }
        let r = self.store.transact(tx).await;
        if r.is_ok()
            && let Err(e) = self.adopt_indices(&objects).await
        {
            tracing::warn!(error = %e, "indices of created objects not kept");
        }
        // Alone, the node keeps its creations and deletions itself, before
        // it answers.
        if r.is_ok()
            && self.cluster.get().is_none()
            && let Err(e) = self.keep_objects(&objects).await
        {
            self.audit(&principal, &what, &format!("failed: {e}")).await;
            return Err(TxError { index: 0, error: e });
        }
        // Alone, the node keeps its writes itself, before it answers.
        if r.is_ok()
            && self.cluster.get().is_none()
            && let Err(e) = self.keep_writes(&sets).await
        {
            self.audit(&principal, &what, &format!("failed: {e}")).await;
            return Err(TxError { index: 0, error: e });
        }
        // A shelf created, changed or deleted moves alarms on or off it.
        if r.is_ok()
            && super::alarms::touch_shelves(
                objects
                    .iter()
                    .map(ObjectOp::object)
                    .chain(sets.iter().map(|s| s.object.as_str())),
            )
            && let Err(e) = self.reshelve().await
        {
            tracing::warn!(error = %e, "alarms not reshelved");
        }
        self.audit(
            &principal,
            &what,
            &match &r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("failed: {e}"),
            },
        )
        .await;
        r
    }

    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError> {
        self.check_invoke(target, operation, &principal).await?;
        crate::copco::invoke(self, &self.copco, target, operation, args, principal).await
    }

    fn subscribe(&self, filter: NotificationFilter) -> Subscription {
        self.store.subscribe(filter)
    }

    async fn history(
        &self,
        filter: &NotificationFilter,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Vec<Arc<Notification>>, ModelError> {
        self.store.history(filter, since, until).await
    }
}
