//! An in-memory implementation of the information-model port.
//!
//! It enforces what the port promises (metadata-checked, all-or-nothing
//! writes; ordered traversal; filtered, bounded notifications) so adapters
//! can be developed and tested before the agent exists. Operations are
//! accepted and recorded, and finish at once: the agent runs real ones.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::meta::ClassMeta;
use crate::model::{JobState, SCHEMA};
use crate::name::ObjectName;
use crate::port::{
    Change, ChangePage, InformationModel, JobHandle, JobStatus, ManagedObject, ModelError,
    Notification, NotificationFilter, Principal, Query, Scope, Subscription, Transaction, TxError,
};
use crate::value::{Timestamp, Value};

/// Notifications kept for replay.
const HISTORY: usize = 10_000;
/// Per-subscriber queue bound.
const QUEUE: usize = 1024;

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<u32, ManagedObject>,
    by_name: HashMap<ObjectName, u32>,
    next_index: u32,
    history: VecDeque<Arc<Notification>>,
    next_seq: u64,
    /// The latest revision given (see [`InformationModel::changed`]).
    revision: u64,
    /// Object index -> the revision of its last change.
    revisions: HashMap<u32, u64>,
    /// Class name -> the indices of its objects (exactly that class):
    /// queries and walks of a class read these, not every object (at ten
    /// thousand components a scan of the whole model cost milliseconds,
    /// and the agent's tasks query by class many times a second).
    by_class: HashMap<&'static str, BTreeSet<u32>>,
}

impl State {
    /// Keeps an object, and its place in the class index.
    fn put(&mut self, index: u32, obj: ManagedObject) {
        self.by_class
            .entry(obj.class.name)
            .or_default()
            .insert(index);
        if let Some(old) = self.objects.insert(index, obj)
            && !std::ptr::eq(old.class, self.objects[&index].class)
            && let Some(set) = self.by_class.get_mut(old.class.name)
        {
            set.remove(&index);
        }
    }

    /// Forgets an object: its name, revision and place in the class index.
    fn forget(&mut self, index: u32) -> Option<ManagedObject> {
        let o = self.objects.remove(&index)?;
        self.by_name.remove(&o.name);
        self.revisions.remove(&index);
        if let Some(set) = self.by_class.get_mut(o.class.name) {
            set.remove(&index);
        }
        Some(o)
    }

    /// The indices of the objects of these classes and their subclasses,
    /// in index order.
    fn of_classes(&self, classes: &[String]) -> Vec<u32> {
        let wanted: Vec<&str> = SCHEMA
            .classes
            .iter()
            .filter(|c| {
                classes.iter().any(|q| {
                    SCHEMA
                        .class(q)
                        .is_some_and(|qm| SCHEMA.is_a(c.name, qm.name))
                })
            })
            .map(|c| c.name)
            .collect();
        let mut out: Vec<u32> = wanted
            .iter()
            .filter_map(|c| self.by_class.get(c))
            .flatten()
            .copied()
            .collect();
        if wanted.len() > 1 {
            out.sort_unstable();
        }
        out
    }

    /// Marks an object changed (or created).
    fn touch(&mut self, index: u32) {
        self.revision += 1;
        self.revisions.insert(index, self.revision);
    }
}

/// An operation the in-memory model accepted, for tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub target: ObjectName,
    pub operation: String,
    pub args: Vec<(String, Value)>,
    pub principal: Principal,
}

#[derive(Debug)]
pub struct MemoryModel {
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<Notification>>,
    invocations: Mutex<Vec<Invocation>>,
    /// Audit events recorded by the faces: (user, event, result).
    audits: Mutex<Vec<(String, String, String)>>,
    /// Whether writes and operations are checked against the access model
    /// its objects hold (see [`MemoryModel::unchecked`]).
    checks_access: bool,
}

impl Default for MemoryModel {
    fn default() -> Self {
        Self::new()
    }
}

fn no_such(name: &ObjectName) -> ModelError {
    ModelError::NoSuchObject {
        name: name.to_string(),
    }
}

impl MemoryModel {
    pub fn new() -> Self {
        MemoryModel {
            state: RwLock::new(State {
                next_index: 1,
                ..State::default()
            }),
            tx: broadcast::channel(QUEUE).0,
            invocations: Mutex::new(Vec::new()),
            audits: Mutex::new(Vec::new()),
            checks_access: true,
        }
    }

    /// A model that leaves the access checks to its owner (the agent's
    /// store: the agent checks, counts and audits each refusal once).
    pub fn unchecked() -> Self {
        MemoryModel {
            checks_access: false,
            ..Self::new()
        }
    }

    /// The access model its objects hold.
    fn policy(st: &State) -> crate::access::Policy {
        crate::access::Policy::from_objects(
            st.objects
                .values()
                .filter(|o| crate::access::POLICY_CLASSES.contains(&o.class.name)),
        )
    }

    /// Refuses the first change the access model does not allow.
    fn check_access(&self, tx: &Transaction) -> Result<(), TxError> {
        if !self.checks_access || tx.principal.is_trusted() {
            return Ok(());
        }
        let st = self.read();
        let class_of = |name: &ObjectName| st.by_name.get(name).map(|i| st.objects[i].class);
        match crate::access::first_refusal(&Self::policy(&st), &tx.principal, &tx.changes, class_of)
        {
            Some((index, _, error)) => Err(TxError { index, error }),
            None => Ok(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an object; its parent must exist (except for a root) and the
    /// class must allow that container. Returns the new stable index.
    pub fn insert(
        &self,
        class: &str,
        name: &str,
        values: &[(&str, Value)],
    ) -> Result<u32, ModelError> {
        let name = ObjectName::parse(name).map_err(|e| ModelError::NoCreation {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let change = Change::Create {
            class: class.to_string(),
            object: name.clone(),
            values: values
                .iter()
                .map(|(a, v)| ((*a).to_string(), v.clone()))
                .collect(),
        };
        let mut st = self.write();
        let obj = build_create(&st, &[], &change)?;
        Ok(commit_create(&mut st, obj, None))
    }

    /// Like [`MemoryModel::insert`], with a stable index chosen by the
    /// caller (the agent persists indices across restarts). A taken index
    /// is refused.
    pub fn insert_at(
        &self,
        class: &str,
        name: &str,
        values: &[(&str, Value)],
        index: u32,
    ) -> Result<u32, ModelError> {
        let object = ObjectName::parse(name).map_err(|e| ModelError::NoCreation {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let change = Change::Create {
            class: class.to_string(),
            object,
            values: values
                .iter()
                .map(|(a, v)| ((*a).to_string(), v.clone()))
                .collect(),
        };
        let mut st = self.write();
        if index == 0 || st.objects.contains_key(&index) {
            return Err(ModelError::NoCreation {
                name: name.to_string(),
                reason: format!("index {index} is taken"),
            });
        }
        let obj = build_create(&st, &[], &change)?;
        Ok(commit_create(&mut st, obj, Some(index)))
    }

    /// Sets attributes the model itself owns (states, counters), read-only
    /// to managers: checked for type, not for writability. Returns the old
    /// values.
    pub fn update(
        &self,
        name: &ObjectName,
        values: &[(&str, Value)],
    ) -> Result<Vec<Value>, ModelError> {
        let mut st = self.write();
        let i = *st.by_name.get(name).ok_or_else(|| no_such(name))?;
        let obj = st.objects.get_mut(&i).expect("indexed object");
        let mut staged = obj.values.clone();
        let mut old = Vec::with_capacity(values.len());
        for (attr, v) in values {
            let (ai, a) = obj
                .class
                .attribute(attr)
                .ok_or_else(|| ModelError::NoSuchAttribute {
                    class: obj.class.name.to_string(),
                    attribute: (*attr).to_string(),
                })?;
            v.check(&a.ty).map_err(|error| ModelError::InvalidValue {
                attribute: a.name.to_string(),
                error,
            })?;
            old.push(std::mem::replace(&mut staged[ai], v.clone()));
        }
        // A write of the values it has already is no change (the
        // collectors write every sample; most are what they were).
        if obj.values != staged {
            obj.values = staged;
            st.touch(i);
        }
        Ok(old)
    }

    /// The class of an object, if it exists.
    pub fn class_of(&self, name: &ObjectName) -> Option<&'static ClassMeta> {
        let st = self.read();
        st.by_name.get(name).map(|i| st.objects[i].class)
    }

    /// Removes an object and its subtree; returns how many went.
    pub fn remove(&self, name: &ObjectName) -> usize {
        let mut st = self.write();
        // An object of a class nothing may be contained in (an assignment,
        // an alarm) goes alone, without a scan of every object.
        let leaf = st
            .by_name
            .get(name)
            .map(|i| st.objects[i].class)
            .is_some_and(|c| {
                !SCHEMA
                    .object_classes()
                    .any(|k| k.contained_in.iter().any(|p| SCHEMA.is_a(c.name, p)))
            });
        let gone: Vec<u32> = if leaf {
            st.by_name.get(name).copied().into_iter().collect()
        } else {
            st.objects
                .values()
                .filter(|o| o.name.is_within(name))
                .map(|o| o.index)
                .collect()
        };
        for i in &gone {
            if st.forget(*i).is_some() {
                // A deletion is a change too: readers that compare
                // revisions (the users' cache) read again.
                st.revision += 1;
            }
        }
        gone.len()
    }

    /// Objects created by [`InformationModel::transact`] from now on get
    /// indices from `next` up (a caller that allocates indices of its own
    /// reserves a block so that the two never meet).
    pub fn advance_next_index(&self, next: u32) {
        let mut st = self.write();
        st.next_index = st.next_index.max(next);
    }

    /// Checks a transaction as `transact` would, without applying it.
    pub fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        stage(&self.read(), tx).map(|_| ())
    }

    /// Publishes a notification (the agent's events; tests).
    pub fn publish(
        &self,
        class: &str,
        source: &ObjectName,
        values: Vec<Value>,
    ) -> Result<u64, ModelError> {
        let class = SCHEMA
            .class(class)
            .filter(|c| c.is_indication)
            .ok_or_else(|| ModelError::NoSuchClass {
                class: class.to_string(),
            })?;
        let severity = class
            .attribute("Severity")
            .and_then(|(i, _)| match values.get(i) {
                Some(Value::Enum(v)) => {
                    <crate::model::PerceivedSeverity as crate::SchemaEnum>::from_value(*v)
                }
                _ => None,
            });
        let mut st = self.write();
        let n = Arc::new(Notification {
            seq: st.next_seq,
            time: Timestamp::now(),
            class,
            source: source.clone(),
            severity,
            values,
        });
        st.next_seq += 1;
        if st.history.len() == HISTORY {
            st.history.pop_front();
        }
        st.history.push_back(n.clone());
        drop(st);
        // No receiver is not an error: nobody is listening.
        let _ = self.tx.send(n.clone());
        Ok(n.seq)
    }

    /// Audit events the faces recorded: (user, event, result).
    pub fn audits(&self) -> Vec<(String, String, String)> {
        self.audits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Operations accepted so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Validates a create against metadata and the current state, where the
/// container may be one of `staged` (created before it by the same
/// transaction; its index is known at commit).
fn build_create(
    st: &State,
    staged: &[ManagedObject],
    change: &Change,
) -> Result<ManagedObject, ModelError> {
    let Change::Create {
        class,
        object,
        values,
    } = change
    else {
        unreachable!("build_create takes creates");
    };
    let meta = SCHEMA.class(class).ok_or_else(|| ModelError::NoSuchClass {
        class: class.clone(),
    })?;
    let refuse = |reason: String| ModelError::NoCreation {
        name: object.to_string(),
        reason,
    };
    if meta.is_abstract || meta.is_indication {
        return Err(refuse(format!("{} has no instances", meta.name)));
    }
    if st.by_name.contains_key(object) {
        return Err(ModelError::AlreadyExists {
            name: object.to_string(),
        });
    }
    let (rdn, _) = object.leaf();
    if meta.rdn != Some(rdn) {
        return Err(refuse(format!(
            "a {} is named {}=..., not {rdn}=...",
            meta.name,
            meta.rdn.unwrap_or("?")
        )));
    }
    let parent_index = match object.parent() {
        None => {
            if !meta.contained_in.is_empty() {
                return Err(refuse(format!(
                    "a {} must be contained in {}",
                    meta.name,
                    meta.contained_in.join(" or ")
                )));
            }
            0
        }
        Some(p) => {
            let (pi, pclass) = match st.by_name.get(&p) {
                Some(pi) => (*pi, st.objects[pi].class.name),
                None => staged
                    .iter()
                    .find(|o| o.name == p)
                    .map(|o| (0, o.class.name))
                    .ok_or_else(|| refuse(format!("no container {p}")))?,
            };
            if !meta.contained_in.iter().any(|c| SCHEMA.is_a(pclass, c)) {
                return Err(refuse(format!(
                    "a {} cannot be contained in a {pclass}",
                    meta.name
                )));
            }
            pi
        }
    };
    let mut vals: Vec<Value> = meta.attributes.iter().map(default_value).collect();
    for (attr, v) in values {
        let (i, a) = meta
            .attribute(attr)
            .ok_or_else(|| ModelError::NoSuchAttribute {
                class: meta.name.to_string(),
                attribute: attr.clone(),
            })?;
        v.check(&a.ty).map_err(|error| ModelError::InvalidValue {
            attribute: a.name.to_string(),
            error,
        })?;
        vals[i] = v.clone();
    }
    if let Some(k) = meta.key_index() {
        vals[k] = Value::Str(object.to_string());
    }
    if let Some((i, _)) = meta.attribute("Parent") {
        vals[i] = Value::Str(object.parent().map(|p| p.to_string()).unwrap_or_default());
    }
    Ok(ManagedObject {
        class: meta,
        index: 0,
        name: object.clone(),
        parent_index,
        values: vals,
    })
}

fn commit_create(st: &mut State, mut obj: ManagedObject, at: Option<u32>) -> u32 {
    let index = at.unwrap_or(st.next_index);
    st.next_index = st.next_index.max(index + 1);
    obj.index = index;
    st.by_name.insert(obj.name.clone(), index);
    st.put(index, obj);
    st.touch(index);
    index
}

/// An attribute's schema `Default` when it has one, else the zero value
/// of its type (first label of an enumeration).
pub fn default_value(a: &crate::meta::AttrMeta) -> Value {
    use crate::meta::AttrType;
    if let Some(v) = a.default.and_then(|d| Value::parse(&a.ty, d).ok()) {
        return v;
    }
    match a.ty {
        AttrType::Boolean => Value::Bool(false),
        AttrType::String { .. } => Value::Str(String::new()),
        AttrType::Uint32 => Value::U32(0),
        AttrType::Uint64 => Value::U64(0),
        AttrType::Sint32 => Value::I32(0),
        AttrType::Real64 { .. } => Value::Real(0.0),
        AttrType::DateTime => Value::Absent,
        AttrType::Enum(e) => Value::Enum(e.values.first().map_or(0, |v| v.value)),
    }
}

/// Whether objects of a class are among a query's classes, decided once
/// per class and query: a query scans every object, and resolving its
/// class names per object made each scan cost milliseconds at ten
/// thousand components.
#[derive(Default)]
struct ClassCache(Vec<(&'static ClassMeta, bool)>);

impl ClassCache {
    fn wanted(&mut self, class: &'static ClassMeta, q: &Query) -> bool {
        if let Some((_, w)) = self.0.iter().find(|(k, _)| std::ptr::eq(*k, class)) {
            return *w;
        }
        let w = q.classes.iter().any(|c| {
            SCHEMA
                .class(c)
                .is_some_and(|cm| SCHEMA.is_a(class.name, cm.name))
        });
        self.0.push((class, w));
        w
    }
}

fn matches_query(obj: &ManagedObject, q: &Query, classes: &mut ClassCache) -> bool {
    let in_scope = match &q.scope {
        Scope::All => true,
        Scope::Subtree(root) => obj.name.is_within(root),
        Scope::Children(parent) => obj.name.parent().as_ref() == Some(parent),
    };
    in_scope
        && (q.classes.is_empty() || classes.wanted(obj.class, q))
        && q.filters.iter().all(|(attr, text)| {
            obj.class
                .attribute(attr)
                // A secret matches no filter: a query is no oracle for it.
                .is_some_and(|(i, a)| !a.secret && obj.values[i].render(&a.ty) == *text)
        })
}

/// The outcome of validating a transaction: what to write.
struct Staged {
    sets: BTreeMap<u32, ManagedObject>,
    creates: Vec<ManagedObject>,
    deletes: Vec<u32>,
}

/// Validates every change against metadata and a scratch copy of the
/// touched objects: a refused change leaves the model untouched.
fn stage(st: &State, tx: &Transaction) -> Result<Staged, TxError> {
    let mut staged = Staged {
        sets: BTreeMap::new(),
        creates: Vec::new(),
        deletes: Vec::new(),
    };
    for (index, change) in tx.changes.iter().enumerate() {
        let fail = |error| TxError { index, error };
        match change {
            Change::Set {
                object,
                attribute,
                value,
            } => {
                let i = *st
                    .by_name
                    .get(object)
                    .ok_or_else(|| fail(no_such(object)))?;
                let obj = staged
                    .sets
                    .entry(i)
                    .or_insert_with(|| st.objects[&i].clone());
                let (ai, a) = obj.class.attribute(attribute).ok_or_else(|| {
                    fail(ModelError::NoSuchAttribute {
                        class: obj.class.name.to_string(),
                        attribute: attribute.clone(),
                    })
                })?;
                if !a.writable {
                    return Err(fail(ModelError::NotWritable {
                        attribute: a.name.to_string(),
                    }));
                }
                value.check(&a.ty).map_err(|error| {
                    fail(ModelError::InvalidValue {
                        attribute: a.name.to_string(),
                        error,
                    })
                })?;
                if matches!(value, Value::Absent) {
                    return Err(fail(ModelError::InvalidValue {
                        attribute: a.name.to_string(),
                        error: crate::value::ValueError::WrongValue {
                            reason: "a value is required".into(),
                        },
                    }));
                }
                obj.values[ai] = value.clone();
            }
            Change::Create { object, .. } => {
                if staged.creates.iter().any(|c| &c.name == object) {
                    return Err(fail(ModelError::AlreadyExists {
                        name: object.to_string(),
                    }));
                }
                let obj = build_create(st, &staged.creates, change).map_err(fail)?;
                staged.creates.push(obj);
            }
            Change::Delete { object } => {
                if !st.by_name.contains_key(object) {
                    return Err(fail(no_such(object)));
                }
                // Removing a parent removes its subtree.
                staged.deletes.extend(
                    st.objects
                        .values()
                        .filter(|o| o.name.is_within(object))
                        .map(|o| o.index),
                );
            }
        }
    }
    Ok(staged)
}

/// An object as a read gives it: without its secrets' values.
fn revealed(o: &ManagedObject) -> ManagedObject {
    let mut o = o.clone();
    crate::secret::mask(&mut o);
    o
}

#[async_trait]
impl InformationModel for MemoryModel {
    async fn get(&self, name: &ObjectName) -> Result<ManagedObject, ModelError> {
        let st = self.read();
        st.by_name
            .get(name)
            .map(|i| revealed(&st.objects[i]))
            .ok_or_else(|| no_such(name))
    }

    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
        self.read()
            .objects
            .get(&index)
            .map(revealed)
            .ok_or_else(|| ModelError::NoSuchObject {
                name: format!("#{index}"),
            })
    }

    async fn query(&self, q: &Query) -> Result<Vec<ManagedObject>, ModelError> {
        for c in &q.classes {
            if SCHEMA.class(c).is_none() {
                return Err(ModelError::NoSuchClass { class: c.clone() });
            }
        }
        let st = self.read();
        if let Scope::Subtree(root) | Scope::Children(root) = &q.scope
            && !st.by_name.contains_key(root)
        {
            return Err(no_such(root));
        }
        let mut classes = ClassCache::default();
        let mut out: Vec<ManagedObject> = if q.classes.is_empty() {
            st.objects
                .values()
                .filter(|o| matches_query(o, q, &mut classes))
                .map(revealed)
                .collect()
        } else {
            // Only the queried classes' objects (the index).
            st.of_classes(&q.classes)
                .into_iter()
                .filter_map(|i| st.objects.get(&i))
                .filter(|o| matches_query(o, q, &mut classes))
                .map(revealed)
                .collect()
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn credentials(
        &self,
        class: &'static ClassMeta,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        let st = self.read();
        Ok(st
            .by_class
            .get(class.name)
            .into_iter()
            .flatten()
            .filter_map(|i| st.objects.get(i))
            .cloned()
            .collect())
    }

    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        // Nothing comes after the largest index.
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let st = self.read();
        Ok(match class {
            None => st
                .objects
                .range(first..)
                .map(|(_, o)| o)
                .take(limit)
                .map(revealed)
                .collect(),
            // Exactly that class's objects: the index.
            Some(c) => st
                .by_class
                .get(c.name)
                .into_iter()
                .flat_map(|set| set.range(first..))
                .filter_map(|i| st.objects.get(i))
                .take(limit)
                .map(revealed)
                .collect(),
        })
    }

    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<ChangePage>, ModelError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Some(ChangePage::default()));
        };
        let st = self.read();
        let mut page = ChangePage {
            revision: st.revision,
            ..ChangePage::default()
        };
        for (i, o) in st.objects.range(first..).take(limit) {
            page.present.push(*i);
            if st.revisions.get(i).is_none_or(|r| *r > since) {
                page.changed.push(revealed(o));
            }
        }
        Ok(Some(page))
    }

    async fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        self.check_access(tx)?;
        if crate::secret::needs_seal(tx) {
            // Checked as it would be kept (a key line as its fingerprint).
            let mut sealed = tx.clone();
            crate::secret::seal(&mut sealed)?;
            return MemoryModel::validate(self, &sealed);
        }
        MemoryModel::validate(self, tx)
    }

    async fn audit(&self, principal: &Principal, event: &str, result: &str) {
        self.audits.lock().unwrap_or_else(|e| e.into_inner()).push((
            principal.user.clone(),
            event.to_string(),
            result.to_string(),
        ));
    }

    async fn transact(&self, mut tx: Transaction) -> Result<(), TxError> {
        self.check_access(&tx)?;
        // Idempotent: the agent seals on the blocking pool before this,
        // leaving hashes and fingerprints that are kept as they are.
        crate::secret::seal(&mut tx)?;
        let mut st = self.write();
        let staged = stage(&st, &tx)?;
        for (i, obj) in staged.sets {
            if st.objects.get(&i).is_none_or(|o| o.values != obj.values) {
                st.put(i, obj);
                st.touch(i);
            }
        }
        for mut obj in staged.creates {
            // A container created by the same transaction has its index now.
            if let Some(pi) = obj.name.parent().and_then(|p| st.by_name.get(&p).copied()) {
                obj.parent_index = pi;
            }
            commit_create(&mut st, obj, None);
        }
        for i in staged.deletes {
            if st.forget(i).is_some() {
                st.revision += 1;
            }
        }
        Ok(())
    }

    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError> {
        let obj = self.get(target).await?;
        let m = crate::port::resolve_operation(&obj, operation, &args)?;
        if self.checks_access && !principal.is_trusted() {
            let subject = crate::access::Subject::operation(obj.class, m.name);
            let p = &principal;
            let d = Self::policy(&self.read()).decide(
                &p.user,
                p.role,
                &subject,
                crate::access::Op::Exec,
            );
            if !d.permit {
                return Err(crate::access::refusal(
                    p,
                    &subject,
                    crate::access::Op::Exec,
                    &d,
                ));
            }
        }
        let seq = {
            let mut inv = self.invocations.lock().unwrap_or_else(|e| e.into_inner());
            inv.push(Invocation {
                target: target.clone(),
                operation: m.name.to_string(),
                args,
                principal,
            });
            inv.len()
        };
        let job = ObjectName::root("ne", "1")
            .and_then(|ne| ne.child("job", &seq.to_string()))
            .map_err(|e| ModelError::CommitFailed {
                reason: e.to_string(),
            })?;
        let (_tx, status) = watch::channel(JobStatus {
            state: JobState::Succeeded,
            steps_done: 1,
            steps_total: 1,
            detail: format!("{} accepted", m.name),
            result: Some(0),
        });
        Ok(JobHandle { job, status })
    }

    fn subscribe(&self, filter: NotificationFilter) -> Subscription {
        Subscription::new(self.tx.subscribe(), filter)
    }

    async fn history(
        &self,
        filter: &NotificationFilter,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Vec<Arc<Notification>>, ModelError> {
        Ok(self
            .read()
            .history
            .iter()
            .filter(|n| n.time >= since && until.is_none_or(|u| n.time <= u))
            .filter(|n| filter.matches(n))
            .cloned()
            .collect())
    }
}

/// A small element for adapter tests: one shelf with a hot-swap controller,
/// two fans, two power supplies, two host boards, two nodes, a 2N service
/// group of `counterd` with its service instance and assignments.
pub fn demo_element() -> MemoryModel {
    use crate::model::{AssignmentRole, AvailabilityState, ComponentKind, RedundancyModel};
    use crate::value::SchemaEnum;
    let m = MemoryModel::new();
    let e = |v: u32| Value::Enum(v);
    let s = |v: &str| Value::Str(v.to_string());
    let unlocked = e(crate::model::AdminState::Unlocked.value());
    let ins = |class: &str, name: &str, values: &[(&str, Value)]| {
        m.insert(class, name, values)
            .unwrap_or_else(|err| panic!("demo element {name}: {err}"));
    };
    ins(
        "NetworkElement",
        "ne=1",
        &[
            ("Vendor", s("Halyard")),
            ("Model", s("demo")),
            ("SoftwareVersion", s("0.1.0")),
        ],
    );
    ins(
        "Shelf",
        "ne=1/shelf=1",
        &[
            ("AdminState", unlocked.clone()),
            ("PowerGood", Value::Bool(true)),
            ("Position", Value::U32(1)),
        ],
    );
    let fru = |class: &str, name: &str, slot: u32, extra: &[(&str, Value)]| {
        let mut v = vec![
            ("AdminState", unlocked.clone()),
            ("AvailabilityState", e(AvailabilityState::Primary.value())),
            ("Slot", Value::U32(slot)),
            ("Present", Value::Bool(true)),
            ("SerialNumber", s(&format!("HY{slot:04}"))),
        ];
        v.extend(extra.iter().cloned());
        ins(class, name, &v);
    };
    fru("HotSwapController", "ne=1/shelf=1/hsc=1", 1, &[]);
    fru(
        "Fan",
        "ne=1/shelf=1/fan=1",
        2,
        &[("Speed", Value::U32(4200))],
    );
    fru(
        "Fan",
        "ne=1/shelf=1/fan=2",
        3,
        &[("Speed", Value::U32(4150))],
    );
    fru(
        "PowerSupply",
        "ne=1/shelf=1/psu=1",
        4,
        &[("OutputPower", Value::U32(310))],
    );
    fru(
        "PowerSupply",
        "ne=1/shelf=1/psu=2",
        5,
        &[("OutputPower", Value::U32(295))],
    );
    fru(
        "HostBoard",
        "ne=1/shelf=1/board=1",
        6,
        &[("CpuLoad", Value::U32(12))],
    );
    fru(
        "HostBoard",
        "ne=1/shelf=1/board=2",
        7,
        &[("CpuLoad", Value::U32(9))],
    );
    for n in ["a", "b"] {
        ins(
            "Node",
            &format!("ne=1/shelf=1/node={n}"),
            &[
                ("AdminState", unlocked.clone()),
                ("Address", s("127.0.0.1")),
            ],
        );
    }
    for (n, role) in [
        ("a", AvailabilityState::Primary),
        ("b", AvailabilityState::Secondary),
    ] {
        ins(
            "SoftwareComponent",
            &format!("ne=1/shelf=1/node={n}/comp=counterd-{n}"),
            &[
                ("AdminState", unlocked.clone()),
                ("AvailabilityState", e(role.value())),
                ("Kind", e(ComponentKind::HaAware.value())),
                ("ServiceGroup", s("ne=1/sg=counter")),
            ],
        );
    }
    ins(
        "ServiceGroup",
        "ne=1/sg=counter",
        &[
            ("AdminState", unlocked.clone()),
            ("RedundancyModel", e(RedundancyModel::TwoN.value())),
            ("PreferredPrimaries", Value::U32(1)),
            ("PreferredSecondaries", Value::U32(1)),
        ],
    );
    ins(
        "ServiceInstance",
        "ne=1/sg=counter/si=1",
        &[
            ("AdminState", unlocked.clone()),
            ("Assigned", Value::Bool(true)),
        ],
    );
    for (n, role) in [
        ("a", AssignmentRole::Active),
        ("b", AssignmentRole::Standby),
    ] {
        ins(
            "Assignment",
            &format!("ne=1/sg=counter/si=1/asg={n}"),
            &[
                (
                    "Component",
                    s(&format!("ne=1/shelf=1/node={n}/comp=counterd-{n}")),
                ),
                ("Role", e(role.value())),
                ("Acknowledged", Value::Bool(true)),
            ],
        );
    }
    m
}
