//! The information-model port: the one interface through which every
//! adapter (SNMP, NETCONF, HTTP, Prometheus) reaches the agent.
//!
//! Reads return [`ManagedObject`]s whose values line up with their class's
//! metadata, so an adapter translates any class with no per-attribute code.
//! Writes are [`Transaction`]s, applied all-or-nothing. Operations return
//! a [`JobHandle`] whose progress can be watched. Notifications arrive on a
//! [`Subscription`] that says how many it missed when its reader is slow.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::meta::ClassMeta;
use crate::model::{JobState, PerceivedSeverity, Protocol};
use crate::name::ObjectName;
use crate::value::{Timestamp, Value, ValueError};

/// One managed object: an instance of a schema class.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedObject {
    pub class: &'static ClassMeta,
    /// Stable index, unique across classes, persisted across restarts (> 0).
    pub index: u32,
    pub name: ObjectName,
    /// Index of the containing object; 0 for the root.
    pub parent_index: u32,
    /// One value per entry of `class.attributes`, in that order.
    pub values: Vec<Value>,
}

/// One page of [`InformationModel::changed`].
#[derive(Debug, Clone, Default)]
pub struct ChangePage {
    /// The model's revision when this page was read: every change after
    /// it has a greater one.
    pub revision: u64,
    /// The index of every object in the page, changed or not, ascending:
    /// an index of the range missing here is an object that went away.
    /// Fewer than the limit asked for: the last page.
    pub present: Vec<u32>,
    /// The objects of the page changed (or created) after `since`.
    pub changed: Vec<ManagedObject>,
}

impl ManagedObject {
    pub fn get(&self, attribute: &str) -> Option<&Value> {
        let (i, _) = self.class.attribute(attribute)?;
        self.values.get(i)
    }

    /// An attribute's value as text in the schema's spelling (an
    /// enumeration's label, a number in decimal), if the class has it.
    pub fn text(&self, attribute: &str) -> Option<String> {
        let (i, a) = self.class.attribute(attribute)?;
        self.values.get(i).map(|v| v.render(&a.ty))
    }

    /// The value of the attribute with a standard role, if the class has one.
    pub fn by_role(&self, role: crate::meta::Role) -> Option<&Value> {
        let (i, _) = self.class.attribute_by_role(role)?;
        self.values.get(i)
    }
}

/// Which objects a read covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    All,
    /// The object and everything beneath it.
    Subtree(ObjectName),
    /// The object's direct children only.
    Children(ObjectName),
}

/// A read over a scope, with a class filter and attribute filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub scope: Scope,
    /// Class names (schema or YANG spelling); a class matches its subclasses.
    /// Empty means every class.
    pub classes: Vec<String>,
    /// Attribute equality filters: (attribute, text form of the value).
    pub filters: Vec<(String, String)>,
}

/// What a face may ask of the node's agent process as a whole (ietf-system's
/// system-restart and system-shutdown): the agent runs its ordered shutdown,
/// then ends (`Shutdown`) or starts again with the same arguments (`Restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemAction {
    Restart,
    Shutdown,
}

/// Who asks, and through which face. Recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub protocol: Protocol,
    /// The role the face that authenticated the user gave it (its group
    /// in the access model, see [`crate::access`]); None: no role, only
    /// the stored rules and the defaults apply.
    pub role: Option<crate::access::Role>,
}

impl Principal {
    pub fn new(user: impl Into<String>, protocol: Protocol) -> Self {
        Principal {
            user: user.into(),
            protocol,
            role: None,
        }
    }

    pub fn with_role(self, role: crate::access::Role) -> Self {
        Principal {
            role: Some(role),
            ..self
        }
    }

    /// The agent itself and the local command line are not checked
    /// against the access model.
    pub fn is_trusted(&self) -> bool {
        matches!(self.protocol, Protocol::Internal | Protocol::Cli)
    }
}

/// One change of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Set {
        object: ObjectName,
        attribute: String,
        value: Value,
    },
    Create {
        class: String,
        object: ObjectName,
        values: Vec<(String, Value)>,
    },
    Delete {
        object: ObjectName,
    },
}

impl Change {
    pub fn object(&self) -> &ObjectName {
        match self {
            Change::Set { object, .. }
            | Change::Create { object, .. }
            | Change::Delete { object } => object,
        }
    }
}

/// Changes applied together or not at all.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub principal: Principal,
    pub changes: Vec<Change>,
}

/// Why the model refused or failed a request. Each adapter maps these to
/// its protocol's codes in one table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("no such object: {name}")]
    NoSuchObject { name: String },
    #[error("class {class} has no attribute {attribute}")]
    NoSuchAttribute { class: String, attribute: String },
    #[error("unknown class {class}")]
    NoSuchClass { class: String },
    #[error("class {class} has no operation {operation}")]
    NoSuchOperation { class: String, operation: String },
    #[error("attribute {attribute} is not writable")]
    NotWritable { attribute: String },
    #[error("attribute {attribute}: {error}")]
    InvalidValue {
        attribute: String,
        error: ValueError,
    },
    #[error("inconsistent: {reason}")]
    Inconsistent { reason: String },
    #[error("cannot create {name}: {reason}")]
    NoCreation { name: String, reason: String },
    #[error("already exists: {name}")]
    AlreadyExists { name: String },
    #[error("access denied: {reason}")]
    AccessDenied { reason: String },
    /// COpCo refused the request because it conflicts with running work.
    #[error("conflict: {reason}")]
    Conflict { reason: String },
    #[error("commit failed: {reason}")]
    CommitFailed { reason: String },
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("timed out")]
    Timeout,
}

/// Finds an object's operation and checks the arguments against its
/// parameters: what every implementation of `invoke` does first.
pub fn resolve_operation(
    obj: &ManagedObject,
    operation: &str,
    args: &[(String, Value)],
) -> Result<&'static crate::meta::MethodMeta, ModelError> {
    let m = obj
        .class
        .method(operation)
        .ok_or_else(|| ModelError::NoSuchOperation {
            class: obj.class.name.to_string(),
            operation: operation.to_string(),
        })?;
    for (name, v) in args {
        let p = m
            .params
            .iter()
            .find(|p| p.name == name || p.yang_name == name)
            .ok_or_else(|| ModelError::Inconsistent {
                reason: format!("{} takes no parameter {name}", m.name),
            })?;
        v.check(&p.ty).map_err(|error| ModelError::InvalidValue {
            attribute: p.name.to_string(),
            error,
        })?;
    }
    Ok(m)
}

/// A refused transaction: which change (position in `changes`) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("change {index}: {error}")]
pub struct TxError {
    pub index: usize,
    pub error: ModelError,
}

/// Progress of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub state: JobState,
    pub steps_done: u32,
    pub steps_total: u32,
    /// The current step, or the outcome once finished.
    pub detail: String,
    /// The operation's result code once finished (0: success).
    pub result: Option<u32>,
}

impl JobStatus {
    pub fn finished(&self) -> bool {
        !matches!(
            self.state,
            JobState::Queued | JobState::Running | JobState::Paused
        )
    }
}

/// A running (or finished) operation.
#[derive(Debug, Clone)]
pub struct JobHandle {
    /// Persistent name of the job object.
    pub job: ObjectName,
    pub status: watch::Receiver<JobStatus>,
}

impl JobHandle {
    /// Waits until the job finishes and returns its final status.
    pub async fn wait(mut self) -> JobStatus {
        loop {
            let s = self.status.borrow_and_update().clone();
            if s.finished() || self.status.changed().await.is_err() {
                return self.status.borrow().clone();
            }
        }
    }
}

/// A notification: an instance of an indication class.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Increases by one per notification; replay and gap detection use it.
    pub seq: u64,
    pub time: Timestamp,
    pub class: &'static ClassMeta,
    /// The object the notification is about.
    pub source: ObjectName,
    pub severity: Option<PerceivedSeverity>,
    /// One value per entry of `class.attributes`.
    pub values: Vec<Value>,
}

/// What a subscriber wants to receive.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Indication class names; empty means all.
    pub classes: Vec<String>,
    /// Only notifications about objects in this subtree.
    pub subtree: Option<ObjectName>,
    /// Only notifications at least this severe (alarms); others pass.
    pub min_severity: Option<PerceivedSeverity>,
}

/// Lower numbers are more severe in X.733 numbering, except `cleared`.
fn severity_rank(s: PerceivedSeverity) -> u32 {
    match s {
        PerceivedSeverity::Critical => 6,
        PerceivedSeverity::Major => 5,
        PerceivedSeverity::Minor => 4,
        PerceivedSeverity::Warning => 3,
        PerceivedSeverity::Indeterminate => 2,
        PerceivedSeverity::Cleared => 1,
    }
}

impl NotificationFilter {
    pub fn matches(&self, n: &Notification) -> bool {
        (self.classes.is_empty()
            || self
                .classes
                .iter()
                .any(|c| c == n.class.name || c == n.class.yang_name))
            && self.subtree.as_ref().is_none_or(|s| n.source.is_within(s))
            && match (self.min_severity, n.severity) {
                (Some(min), Some(sev)) => {
                    sev == PerceivedSeverity::Cleared || severity_rank(sev) >= severity_rank(min)
                }
                _ => true,
            }
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Notification(Arc<Notification>),
    /// The subscriber was too slow; this many notifications were dropped
    /// for it (the publisher never waits).
    Missed(u64),
}

/// A filtered stream of notifications over a bounded broadcast queue.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Notification>>,
    filter: NotificationFilter,
}

impl Subscription {
    pub fn new(rx: broadcast::Receiver<Arc<Notification>>, filter: NotificationFilter) -> Self {
        Subscription { rx, filter }
    }

    /// The next matching notification; `None` when the model shut down.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.recv().await {
                Ok(n) if self.filter.matches(&n) => return Some(Delivery::Notification(n)),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(k)) => return Some(Delivery::Missed(k)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The information-model port. The agent implements it over the HA core;
/// [`crate::memory::MemoryModel`] implements it in memory for tests.
#[async_trait]
pub trait InformationModel: Send + Sync + 'static {
    /// One object by persistent name.
    async fn get(&self, name: &ObjectName) -> Result<ManagedObject, ModelError>;

    /// One object by stable index.
    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError>;

    /// Objects matching a query, in persistent-name order.
    async fn query(&self, query: &Query) -> Result<Vec<ManagedObject>, ModelError>;

    /// Ordered traversal (GETNEXT/GETBULK): up to `limit` objects with an
    /// index greater than `after`, in index order; only instances of exactly
    /// `class` when given, else every object.
    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError>;

    /// What changed after revision `since` (0: everything), page by page
    /// in index order: up to `limit` objects with an index greater than
    /// `after`. `Ok(None)` when this model keeps no revisions (read it
    /// with [`walk`](Self::walk)). A cache of the model (`/metrics`)
    /// reads only what changed since the revision of its last read.
    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<ChangePage>, ModelError> {
        let _ = (since, after, limit);
        Ok(None)
    }

    /// Every object of `class` with its secret attributes' values (the
    /// Argon2id hashes that every other read gives as `Absent`): for the
    /// faces' authentication of users, never for answering a request.
    /// A model that keeps no secrets has none to give.
    async fn credentials(
        &self,
        class: &'static ClassMeta,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        let _ = class;
        Ok(Vec::new())
    }

    /// Applies every change or none. Availability-affecting writes go
    /// through COpCo in the agent.
    async fn transact(&self, tx: Transaction) -> Result<(), TxError>;

    /// Checks a transaction as a whole exactly as `transact` would (types,
    /// containment, and what may be created or deleted at all), applying
    /// nothing: NETCONF's `<validate>` and `test-only` ask this.
    async fn validate(&self, tx: &Transaction) -> Result<(), TxError>;

    /// Records a face's security event in the audit trail (a failed
    /// login: who tried, how, the count), never a secret.
    async fn audit(&self, principal: &Principal, event: &str, result: &str);

    /// Invokes a schema operation on an object.
    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError>;

    /// Live notifications matching the filter.
    fn subscribe(&self, filter: NotificationFilter) -> Subscription;

    /// Stored notifications with `since <= time <= until`, oldest first (replay).
    async fn history(
        &self,
        filter: &NotificationFilter,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Vec<Arc<Notification>>, ModelError>;
}

/// A model that hands every call to a base model unless it overrides it:
/// a layer over the port, or a test double that changes one call. Every
/// `Forward` is an [`InformationModel`].
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use async_trait::async_trait;
/// use halyard_cluster_model::memory::{MemoryModel, demo_element};
/// use halyard_cluster_model::port::{Forward, InformationModel, ManagedObject, ModelError};
///
/// /// Counts reads by index; everything else is the memory model's.
/// struct Counting(Arc<MemoryModel>, AtomicU32);
///
/// #[async_trait]
/// impl Forward for Counting {
///     fn base(&self) -> &dyn InformationModel {
///         &*self.0
///     }
///     async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
///         self.1.fetch_add(1, Ordering::Relaxed);
///         self.base().get_by_index(index).await
///     }
/// }
///
/// let model: Arc<dyn InformationModel> =
///     Arc::new(Counting(Arc::new(demo_element()), AtomicU32::new(0)));
/// # let _ = model;
/// ```
#[async_trait]
pub trait Forward: Send + Sync + 'static {
    /// The model the calls not overridden go to.
    fn base(&self) -> &dyn InformationModel;

    async fn get(&self, name: &ObjectName) -> Result<ManagedObject, ModelError> {
        self.base().get(name).await
    }
    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
        self.base().get_by_index(index).await
    }
    async fn query(&self, query: &Query) -> Result<Vec<ManagedObject>, ModelError> {
        self.base().query(query).await
    }
    async fn credentials(
        &self,
        class: &'static ClassMeta,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.base().credentials(class).await
    }
    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.base().walk(class, after, limit).await
    }
    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<ChangePage>, ModelError> {
        self.base().changed(since, after, limit).await
    }
    async fn transact(&self, tx: Transaction) -> Result<(), TxError> {
        self.base().transact(tx).await
    }
    async fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        self.base().validate(tx).await
    }
    async fn audit(&self, principal: &Principal, event: &str, result: &str) {
        self.base().audit(principal, event, result).await
    }
    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError> {
        self.base().invoke(target, operation, args, principal).await
    }
    fn subscribe(&self, filter: NotificationFilter) -> Subscription {
        self.base().subscribe(filter)
    }
    async fn history(
        &self,
        filter: &NotificationFilter,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Vec<Arc<Notification>>, ModelError> {
        self.base().history(filter, since, until).await
    }
}

#[async_trait]
impl<T: Forward> InformationModel for T {
    async fn get(&self, name: &ObjectName) -> Result<ManagedObject, ModelError> {
        Forward::get(self, name).await
    }
    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
        Forward::get_by_index(self, index).await
    }
    async fn query(&self, query: &Query) -> Result<Vec<ManagedObject>, ModelError> {
        Forward::query(self, query).await
    }
    async fn credentials(
        &self,
        class: &'static ClassMeta,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        Forward::credentials(self, class).await
    }
    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        Forward::walk(self, class, after, limit).await
    }
    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<ChangePage>, ModelError> {
        Forward::changed(self, since, after, limit).await
    }
    async fn transact(&self, tx: Transaction) -> Result<(), TxError> {
        Forward::transact(self, tx).await
    }
    async fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        Forward::validate(self, tx).await
    }
    async fn audit(&self, principal: &Principal, event: &str, result: &str) {
        Forward::audit(self, principal, event, result).await
    }
    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError> {
        Forward::invoke(self, target, operation, args, principal).await
    }
    fn subscribe(&self, filter: NotificationFilter) -> Subscription {
        Forward::subscribe(self, filter)
    }
    async fn history(
        &self,
        filter: &NotificationFilter,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Vec<Arc<Notification>>, ModelError> {
        Forward::history(self, filter, since, until).await
    }
}
