//! The management agent's information model: managed objects over the HA
//! core, implementing the information-model port every adapter uses.
//!
//! Objects live in a [`MemoryModel`] store with stable indices persisted in
//! the repository. Backend events keep them current and become
//! notifications. Writes and operations that affect availability go through
//! COpCo ([`crate::copco`]) and CRIM; every write is audited; alarms are
//! persisted before they are announced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use halyard_backend::core::HaCore;
use halyard_backend::events::{EventFilter, EventKind, Received};
use halyard_backend::repo::Repository;
use halyard_cluster_model::alarm;
use halyard_cluster_model::memory::MemoryModel;
use halyard_cluster_model::model::{
    AdminState, AlarmCorrelation, AssignmentRole, AvailabilityState, EventType, OperState,
    PerceivedSeverity, ProbableCause, Protocol,
};
use halyard_cluster_model::port::{
    Change, InformationModel, JobHandle, ManagedObject, ModelError, Notification,
    NotificationFilter, Principal, Query, Subscription, Transaction, TxError,
};
use halyard_cluster_model::{ClassMeta, ObjectName, SCHEMA, SchemaEnum, Timestamp, Value};
use serde_json::json;
use tokio::sync::Mutex;

use crate::copco::Copco;
use crate::element::Element;
use crate::replication::{AuditEntry, Reader, Replicated, SetOp};
use halyard_backend::replicated::RelayedAlarm;

/// Audit records kept as managed objects (all are in the journal).
use crate::replication::AUDIT_KEPT;
/// Availability incidents shown as managed objects (the newest; the
/// repository keeps them all).
const INCIDENTS_SHOWN: usize = 200;

/// What the cluster fault-injection operations act on.
#[derive(Debug, Clone)]
pub struct ClusterHooks {
    pub consensus: halyard_consensus::Consensus,
    /// Node name -> its cluster addresses.
    pub addrs: BTreeMap<String, Vec<std::net::SocketAddr>>,
    pub faults: halyard_consensus::Faults,
    /// Node object name -> (node name, consensus id).
    pub nodes: BTreeMap<String, (String, u64)>,
    pub me: String,
}

#[derive(Debug)]
pub struct AgentModel {
    me: std::sync::Weak<AgentModel>,
    /// Owns the model's own tasks (jobs, audit records on their way to the
    /// log); `main` reaps them and joins them at shutdown.
    pub(crate) tasks: halyard_backend::tasks::Tasks,
    /// Set when the agent runs as a node of a cluster.
    pub(crate) cluster: std::sync::OnceLock<ClusterHooks>,
    /// Set when the node runs from a release store (`halyard boot`).
    pub(crate) upgrades: std::sync::OnceLock<Arc<crate::upgrade::Upgrades>>,
    pub(crate) store: MemoryModel,
    pub(crate) core: HaCore,
    pub(crate) repo: Repository,
    pub(crate) root: ObjectName,
    pub(crate) copco: Copco,
    /// Persistent name -> stable index.
    indices: Mutex<BTreeMap<String, u32>>,
    next_index: AtomicU32,
    next_alarm: AtomicU32,
    /// Reads the replicated changes (see `refresh`).
    replicated: tokio::sync::Mutex<Reader>,
    next_audit: AtomicU32,
    pub(crate) next_job: AtomicU32,
    /// Updates of the agent's own that the store refused (see `set`).
    update_errors: std::sync::atomic::AtomicU64,
    audits: Mutex<std::collections::VecDeque<ObjectName>>,
    /// Serializes alarm changes (raise, fold, clear).
    alarm_lock: Mutex<AlarmGuards>,
    /// The simulated hot-swap bus the controllers' Insert and Remove feed.
    pub(crate) swap_bus: std::sync::OnceLock<crate::hotswap::SimBusPort>,
    /// Proxy component -> (its non-peer node's object, its host node).
    proxies: BTreeMap<String, (String, String)>,
}

/// Flapping and storm state, kept under the alarm lock.
#[derive(Debug, Default)]
struct AlarmGuards {
    /// (resource, cause) -> recent raise times.
    raises: std::collections::HashMap<(String, u32), std::collections::VecDeque<i64>>,
    /// Secondary alarms dropped because the active set was full.
    dropped: u64,
}

/// More raises than this for one resource and cause within the window is
/// flapping: the alarm is updated, not announced again.
const FLAP_LIMIT: usize = 3;
const FLAP_WINDOW_MS: i64 = 60_000;
/// Active alarms kept; past it only root and independent alarms are added.
pub(crate) const STORM_LIMIT: usize = 2_000;

fn err_commit(e: impl std::fmt::Display) -> ModelError {
    ModelError::CommitFailed {
        reason: e.to_string(),
    }
}

fn name(s: &str) -> Result<ObjectName, ModelError> {
    ObjectName::parse(s).map_err(|e| ModelError::NoSuchObject {
        name: e.to_string(),
    })
}

impl AgentModel {
    /// Builds the managed-object tree; names keep the indices they had
    /// before a restart; persisted alarms come back.
    pub async fn load(
        element: &Element,
        core: HaCore,
        repo: Repository,
    ) -> Result<Arc<Self>, ModelError> {
        let mut indices = BTreeMap::new();
        for (k, v) in repo.list("/mo/index").await.map_err(err_commit)? {
            if let (Some(n), Some(i)) = (k.strip_prefix("/mo/index/"), v.as_u64()) {
                indices.insert(n.to_string(), i as u32);
            }
        }
        let next = indices.values().max().copied().unwrap_or(0) + 1;
        let root = name(&element.root)?;
        let model = Arc::new_cyclic(|me| AgentModel {
            me: me.clone(),
            tasks: halyard_backend::tasks::Tasks::new(),
            cluster: std::sync::OnceLock::new(),
            upgrades: std::sync::OnceLock::new(),
            store: MemoryModel::new(),
            core,
            repo,
            root,
            copco: Copco::new(element.conflict_policy),
            indices: Mutex::new(indices),
            next_index: AtomicU32::new(next),
            next_alarm: AtomicU32::new(1),
            replicated: tokio::sync::Mutex::new(Reader::new("model")),
            next_audit: AtomicU32::new(1),
            next_job: AtomicU32::new(1),
            update_errors: std::sync::atomic::AtomicU64::new(0),
            audits: Mutex::new(Default::default()),
            alarm_lock: Mutex::new(AlarmGuards::default()),
            swap_bus: std::sync::OnceLock::new(),
            proxies: element.proxies.clone(),
        });
        let mut fresh = Vec::new();
        for o in &element.objects {
            model
                .create(o.class, &o.name, &o.values, &mut fresh)
                .await?;
        }
        // Alarms survive restarts: they were persisted before announced.
        let mut max_alarm = 0;
        for (k, v) in model.repo.list("/alarms").await.map_err(err_commit)? {
            let Some(n) = k
                .strip_prefix("/alarms/")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            max_alarm = max_alarm.max(n);
            let values = alarm_values(&v);
            let refs: Vec<(&'static str, Value)> = values;
            model
                .create(
                    "Alarm",
                    &format!("{}/alarm={n}", model.root),
                    &refs,
                    &mut fresh,
                )
                .await?;
        }
        model.next_alarm.store(max_alarm + 1, Ordering::Relaxed);
        // The audit trail: the latest records come back as objects.
        let audits = model
            .repo
            .journal_entries("audit")
            .await
            .map_err(err_commit)?;
        let skip = audits.len().saturating_sub(AUDIT_KEPT);
        for (n, (_, _, body)) in audits.iter().enumerate().skip(skip) {
            let text = |k: &str| {
                body.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .chars()
                    .take(255)
                    .collect::<String>()
            };
            let protocol = text("protocol")
                .parse::<Protocol>()
                .unwrap_or(Protocol::Internal);
            let object = format!("{}/audit={}", model.root, n + 1);
            model
                .create(
                    "AuditRecord",
                    &object,
                    &[
                        (
                            "Time",
                            Value::Time(Timestamp(
                                body.get("time").and_then(|v| v.as_i64()).unwrap_or(0),
                            )),
                        ),
                        (
                            "Principal",
                            Value::Str(text("principal").chars().take(64).collect()),
                        ),
                        ("Protocol", Value::Enum(protocol.value())),
                        ("Operation", Value::Str(text("operation"))),
                        ("Result", Value::Str(text("result"))),
                    ],
                    &mut fresh,
                )
                .await?;
            if let Ok(o) = ObjectName::parse(&object) {
                model.audits.lock().await.push_back(o);
            }
        }
        model
            .next_audit
            .store(audits.len() as u32 + 1, Ordering::Relaxed);
        model.persist_indices(fresh).await?;
        Ok(model)
    }

    /// This model, shared (jobs outlive the call that started them).
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
                if let Err(e) = self
                    .store
                    .update(&self.root, &[("ModelUpdateErrors", Value::U64(n))])
                {
                    tracing::error!(error = %e, "cannot count the refused update");
                }
                false
            }
        }
    }

    /// The object named `resource`, if its class has `attribute`.
    fn with_attribute(&self, resource: &str, attribute: &str) -> Option<ObjectName> {
        let n = ObjectName::parse(resource).ok()?;
        self.store
            .class_of(&n)
            .and_then(|c| c.attribute(attribute))
            .map(|_| n)
    }

    pub(crate) fn self_arc(&self) -> Arc<AgentModel> {
        self.me
            .upgrade()
            .expect("the model is alive while it runs jobs")
    }

    pub(crate) async fn copco_release(&self, job: &ObjectName) {
        self.copco.release(job).await;
    }

    pub(crate) async fn copco_acquire_queued(
        &self,
        target: &ObjectName,
        job: &ObjectName,
    ) -> Result<(), String> {
        self.copco
            .acquire_queued(target, job, crate::copco::QUEUE_LIMIT)
            .await
    }

    /// Creates an object with its persisted index (or a new one).
    pub(crate) async fn create(
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
        self.store.insert_at(class, object, values, index)
    }

    pub(crate) async fn persist_indices(
        &self,
        fresh: Vec<(String, u32)>,
    ) -> Result<(), ModelError> {
        if fresh.is_empty() {
            return Ok(());
        }
        let entries = fresh
            .into_iter()
            .map(|(n, i)| (format!("/mo/index/{n}"), Some(json!(i))))
            .collect();
        self.repo.apply(entries).await.map_err(err_commit)?;
        Ok(())
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

    pub(crate) fn publish(&self, class: &str, source: &ObjectName, values: Vec<(&str, Value)>) {
        let Some(meta) = SCHEMA.class(class) else {
            return;
        };
        let mut v = vec![Value::Absent; meta.attributes.len()];
        for (a, val) in values {
            if let Some((i, _)) = meta.attribute(a) {
                v[i] = val;
            }
        }
        if let Err(e) = self.store.publish(class, source, v) {
            tracing::warn!(error = %e, "cannot publish notification");
        }
    }

    /// Records a management write in the audit trail.
    pub(crate) async fn audit(&self, who: &Principal, operation: &str, result: &str) {
        let now = Timestamp::now();
        if let Err(e) = self
            .repo
            .journal("audit", &who.user, &json!({"time": now.0, "principal": who.user, "protocol": who.protocol.yang_name(), "operation": operation, "result": result}))
            .await
        {
            tracing::error!(error = %e, %operation, "audit record not stored");
        }
        // In a cluster the record goes through the log, so every node's
        // audit trail shows every node's operations (the journal keeps the
        // handling node's own).
        if self.cluster.get().is_some() {
            let core = self.core.clone();
            let entry = Replicated::Audit(AuditEntry {
                time: now.0,
                principal: who.user.clone(),
                protocol: who.protocol.value(),
                operation: operation.to_string(),
                result: result.to_string(),
            });
            // Not on the request's path: a cut-off node still answers.
            self.tasks.spawn("audit record to the log", async move {
                if let Err(e) = entry.replicate(&core).await {
                    tracing::warn!(error = %e, "audit record not replicated");
                }
            });
            return;
        }
        let n = self.next_audit.fetch_add(1, Ordering::Relaxed);
        self.add_audit_record(n, now, &who.user, who.protocol.value(), operation, result)
            .await;
    }

    /// One record of the audit trail as a managed object (the last
    /// `AUDIT_KEPT` are kept).
    async fn add_audit_record(
        &self,
        n: u32,
        now: Timestamp,
        user: &str,
        protocol: u32,
        operation: &str,
        result: &str,
    ) {
        let object = format!("{}/audit={n}", self.root);
        let values = [
            ("Time", Value::Time(now)),
            ("Principal", Value::Str(truncate(user, 64))),
            ("Protocol", Value::Enum(protocol)),
            ("Operation", Value::Str(truncate(operation, 255))),
            ("Result", Value::Str(truncate(result, 255))),
        ];
        if self
            .create_dynamic("AuditRecord", &object, &values)
            .await
            .is_ok()
            && let Ok(o) = ObjectName::parse(&object)
        {
            let mut q = self.audits.lock().await;
            q.push_back(o);
            while q.len() > AUDIT_KEPT {
                if let Some(old) = q.pop_front() {
                    self.store.remove(&old);
                }
            }
        }
    }

    /// Raises an alarm, or folds it into the active one for the same
    /// resource and cause. Persisted before it is announced.
    pub(crate) async fn raise_alarm(
        &self,
        resource: &str,
        cause: ProbableCause,
        severity: PerceivedSeverity,
        text: &str,
    ) -> Result<ObjectName, ModelError> {
        let mut guards = self.alarm_lock.lock().await;
        let now = Timestamp::now();
        let key = (resource.to_string(), cause.value());
        let recent = guards.raises.entry(key).or_default();
        recent.retain(|t| now.0 - t <= FLAP_WINDOW_MS);
        recent.push_back(now.0);
        let flapping = recent.len() > FLAP_LIMIT;
        let active = self.active_alarms().await?;
        let same = |a: &&ManagedObject| {
            a.get("Resource").and_then(Value::as_str) == Some(resource)
                && a.get("ProbableCause") == Some(&Value::Enum(cause.value()))
        };
        // A duplicate folds into the active alarm; a flapping one reopens
        // the latest alarm of its resource and cause, without a new
        // announcement.
        let all;
        let existing = if flapping {
            all = self
                .store
                .query(&Query {
                    classes: vec!["Alarm".into()],
                    ..Query::default()
                })
                .await?;
            all.iter().rev().find(same)
        } else {
            active.iter().find(same)
        };
        if let Some(a) = existing {
            let n = match a.get("Occurrences") {
                Some(Value::U32(n)) => n + 1,
                _ => 2,
            };
            self.store.update(
                &a.name,
                &[
                    ("Occurrences", Value::U32(n)),
                    ("ChangedAt", Value::Time(now)),
                    ("Severity", Value::Enum(severity.value())),
                    ("ClearedAt", Value::Absent),
                ],
            )?;
            self.persist_alarm(&a.name).await?;
            if flapping {
                tracing::debug!(alarm = %a.name, "flapping alarm damped");
            }
            return Ok(a.name.clone());
        }
        // Root-cause suppression: under an alarmed container, this alarm is secondary.
        let root_alarm = active.iter().find(|a| {
            a.get("Resource")
                .and_then(Value::as_str)
                .and_then(|r| ObjectName::parse(r).ok())
                .zip(ObjectName::parse(resource).ok())
                .is_some_and(|(r, me)| me.is_within(&r) && me != r)
        });
        let correlation = if root_alarm.is_some() {
            AlarmCorrelation::Secondary
        } else {
            AlarmCorrelation::Independent
        };
        // A storm is bounded: past the limit, secondary alarms are dropped
        // (counted); root and independent alarms are always kept.
        if correlation == AlarmCorrelation::Secondary && active.len() >= STORM_LIMIT {
            guards.dropped += 1;
            tracing::warn!(dropped = guards.dropped, %resource, "alarm storm: secondary alarm dropped");
            return Err(ModelError::Unavailable {
                reason: format!("alarm storm: {} active alarms", active.len()),
            });
        }
        let n = self.next_alarm.fetch_add(1, Ordering::Relaxed);
        let object = format!("{}/alarm={n}", self.root);
        let event_type = match cause {
            ProbableCause::PowerProblem
            | ProbableCause::CoolingFanFailure
            | ProbableCause::HighTemperature => EventType::EnvironmentalAlarm,
            ProbableCause::SoftwareError | ProbableCause::ApplicationSubsystemFailure => {
                EventType::ProcessingErrorAlarm
            }
            ProbableCause::ThresholdCrossed => EventType::QualityOfServiceAlarm,
            _ => EventType::EquipmentAlarm,
        };
        let values = vec![
            ("Resource", Value::Str(truncate(resource, 255))),
            ("EventType", Value::Enum(event_type.value())),
            ("ProbableCause", Value::Enum(cause.value())),
            ("Severity", Value::Enum(severity.value())),
            ("SpecificProblem", Value::Str(truncate(text, 255))),
            ("AdditionalText", Value::Str(String::new())),
            ("RaisedAt", Value::Time(now)),
            ("ChangedAt", Value::Time(now)),
            ("Acknowledged", Value::Bool(false)),
            ("Occurrences", Value::U32(1)),
            ("Correlation", Value::Enum(correlation.value())),
            (
                "RootAlarm",
                Value::Str(root_alarm.map(|a| a.name.to_string()).unwrap_or_default()),
            ),
        ];
        // Persisted before anyone can read it (a walk, a get), not only
        // before it is announced: a kill -9 never loses an alarm a manager saw.
        let alarm = name(&object)?;
        self.persist_alarm_as(&alarm, &values).await?;
        if let Some(root) = root_alarm {
            let root_now = [("Correlation", Value::Enum(AlarmCorrelation::Root.value()))];
            self.persist_alarm_as(&root.name, &root_now).await?;
            self.store.update(&root.name, &root_now)?;
        }
        self.create_dynamic("Alarm", &object, &values).await?;
        self.persist_alarm(&alarm).await?;
        let source = name(resource).unwrap_or_else(|_| self.root.clone());
        self.publish(
            "AlarmRaised",
            &source,
            vec![
                ("Alarm", Value::Str(object.clone())),
                ("Resource", Value::Str(resource.to_string())),
                ("EventType", Value::Enum(event_type.value())),
                ("ProbableCause", Value::Enum(cause.value())),
                ("Severity", Value::Enum(severity.value())),
                ("SpecificProblem", Value::Str(truncate(text, 255))),
                ("AdditionalText", Value::Str(String::new())),
                ("Correlation", Value::Enum(correlation.value())),
            ],
        );
        tracing::warn!(alarm = %object, %resource, cause = cause.label(), severity = severity.label(), "alarm raised");
        Ok(alarm)
    }

    /// Clears the active alarms of a resource (and its secondaries).
    pub(crate) async fn clear_alarms(&self, resource: &str) -> Result<usize, ModelError> {
        self.clear_alarms_matching(resource, None).await
    }

    /// Clears the active alarms of a resource's subtree, of one cause if given.
    pub(crate) async fn clear_alarms_matching(
        &self,
        resource: &str,
        only: Option<ProbableCause>,
    ) -> Result<usize, ModelError> {
        let _g = self.alarm_lock.lock().await;
        let now = Timestamp::now();
        let mut n = 0;
        for a in self.active_alarms().await? {
            let res = a
                .get("Resource")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let under = ObjectName::parse(&res)
                .ok()
                .zip(ObjectName::parse(resource).ok())
                .is_some_and(|(r, root)| r.is_within(&root));
            let cause_ok =
                only.is_none_or(|c| a.get("ProbableCause") == Some(&Value::Enum(c.value())));
            if !under || !cause_ok {
                continue;
            }
            self.store.update(
                &a.name,
                &[
                    ("Severity", Value::Enum(PerceivedSeverity::Cleared.value())),
                    ("ClearedAt", Value::Time(now)),
                    ("ChangedAt", Value::Time(now)),
                ],
            )?;
            self.persist_alarm(&a.name).await?;
            let cause = a.get("ProbableCause").cloned().unwrap_or(Value::Absent);
            self.publish(
                "AlarmCleared",
                &name(&res).unwrap_or_else(|_| self.root.clone()),
                vec![
                    ("Alarm", Value::Str(a.name.to_string())),
                    ("Resource", Value::Str(res.clone())),
                    ("ProbableCause", cause),
                ],
            );
            n += 1;
        }
        Ok(n)
    }

    /// Forgets cleared alarms older than `retention` (scheduled by the
    /// statistics cycle); returns how many went.
    pub(crate) async fn prune_alarms(
        &self,
        retention: std::time::Duration,
    ) -> Result<usize, ModelError> {
        let _g = self.alarm_lock.lock().await;
        let cutoff = Timestamp::now().0 - retention.as_millis() as i64;
        let all = self
            .store
            .query(&Query {
                classes: vec!["Alarm".into()],
                ..Query::default()
            })
            .await?;
        let mut n = 0;
        for a in all {
            if let Some(Value::Time(t)) = a.get("ClearedAt")
                && t.0 < cutoff
            {
                self.store.remove(&a.name);
                let (_, id) = a.name.leaf();
                self.repo
                    .delete(&format!("/alarms/{id}"))
                    .await
                    .map_err(err_commit)?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub(crate) async fn acknowledge_alarm(
        &self,
        alarm: &ObjectName,
        who: &str,
    ) -> Result<(), ModelError> {
        let _g = self.alarm_lock.lock().await;
        self.store.update(
            alarm,
            &[
                ("Acknowledged", Value::Bool(true)),
                ("AcknowledgedBy", Value::Str(truncate(who, 64))),
                ("ChangedAt", Value::Time(Timestamp::now())),
            ],
        )?;
        self.persist_alarm(alarm).await
    }

    async fn active_alarms(&self) -> Result<Vec<ManagedObject>, ModelError> {
        let all = self
            .store
            .query(&Query {
                classes: vec!["Alarm".into()],
                ..Query::default()
            })
            .await?;
        Ok(all.into_iter().filter(alarm::is_active).collect())
    }

    async fn persist_alarm(&self, alarm: &ObjectName) -> Result<(), ModelError> {
        self.persist_alarm_as(alarm, &[]).await
    }

    /// Persists an alarm as it is in the store (if there) with `values`
    /// applied over it: a change is durable before it is visible.
    async fn persist_alarm_as(
        &self,
        alarm: &ObjectName,
        values: &[(&str, Value)],
    ) -> Result<(), ModelError> {
        let meta = SCHEMA
            .class("Alarm")
            .ok_or_else(|| ModelError::CommitFailed {
                reason: "no Alarm class in the schema".into(),
            })?;
        let current = self.store.get(alarm).await.ok();
        let mut body = serde_json::Map::new();
        for (i, a) in meta.attributes.iter().enumerate() {
            if a.key || a.name == "Parent" {
                continue;
            }
            let v = values
                .iter()
                .find(|(n, _)| *n == a.name)
                .map(|(_, v)| v)
                .or_else(|| current.as_ref().and_then(|o| o.values.get(i)));
            if let Some(v) = v.filter(|v| !matches!(v, Value::Absent)) {
                body.insert(a.name.to_string(), json!(v.render(&a.ty)));
            }
        }
        let (_, n) = alarm.leaf();
        self.repo
            .set(&format!("/alarms/{n}"), serde_json::Value::Object(body))
            .await
            .map_err(err_commit)?;
        Ok(())
    }

    /// Keeps the objects current from the HA core's events, until `stop`.
    pub async fn sync(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut events = self.core.events.subscribe(EventFilter::default());
        // What happened before this subscription is read from CRIM once.
        self.refresh_states().await;
        loop {
            let ev = tokio::select! {
                e = events.recv() => e,
                _ = stop.changed() => return,
            };
            match ev {
                None => return,
                Some(Received::Missed(n)) => {
                    tracing::warn!(
                        missed = n,
                        "agent fell behind the HA core's events; refreshing states"
                    );
                    self.refresh_states().await;
                }
                Some(Received::Event(e)) => self.apply(&e.kind).await,
            }
        }
    }

    /// Shows the availability incidents the ASR recorded (in a cluster,
    /// every node records each one as it applies the failure) as
    /// AvailabilityIncident objects, so every face of every node lists them.
    pub(crate) async fn sync_incidents(&self) {
        let Ok(all) = self.core.asr.incidents().await else {
            return;
        };
        let start = all.len().saturating_sub(INCIDENTS_SHOWN);
        let shown: std::collections::BTreeSet<i64> = all[start..].iter().map(|i| i.id).collect();
        for i in &all[start..] {
            let name = format!("{}/incident={}", self.root, i.id);
            let recovery = i
                .recovery
                .parse::<halyard_cluster_model::model::RecoveryAction>()
                .unwrap_or_default();
            let values = [
                ("Component", Value::Str(truncate(&i.component, 255))),
                ("ServiceInstance", Value::Str(truncate(&i.si, 255))),
                ("StartedAt", Value::Time(Timestamp(i.started))),
                (
                    "EndedAt",
                    i.ended.map_or(Value::Absent, |e| Value::Time(Timestamp(e))),
                ),
                ("ServiceLost", Value::Bool(i.service_lost)),
                ("Recovery", Value::Enum(recovery.value())),
                ("RecoveryCompleted", Value::Bool(i.completed)),
                (
                    "Duration",
                    Value::U32(
                        i.ended
                            .map_or(0, |e| (e - i.started).clamp(0, i64::from(u32::MAX)) as u32),
                    ),
                ),
            ];
            let Ok(n) = ObjectName::parse(&name) else {
                continue;
            };
            if self.store.update(&n, &values).is_err() {
                let _ = self
                    .create_dynamic("AvailabilityIncident", &name, &values)
                    .await;
            }
        }
        // Older ones leave the tree (not the repository).
        if let Ok(objs) = self
            .store
            .query(&Query {
                classes: vec!["AvailabilityIncident".into()],
                ..Query::default()
            })
            .await
        {
            for o in objs {
                let id = o
                    .name
                    .as_str()
                    .rsplit_once("incident=")
                    .and_then(|(_, id)| id.parse::<i64>().ok());
                if id.is_some_and(|id| !shown.contains(&id)) {
                    self.store.remove(&o.name);
                }
            }
        }
    }

    /// Re-reads every component's states from CRIM (in a cluster, the
    /// local replica) and applies replicated writes not seen yet.
    pub async fn refresh(&self) {
        self.refresh_states().await;
        self.catch_up().await;
    }

    /// Applies the replicated writes not applied yet, in order.
    async fn catch_up(&self) {
        let mut reader = self.replicated.lock().await;
        if let Ok(changes) = reader.next(&self.core).await {
            for change in changes {
                self.apply_replicated(change).await;
            }
        }
    }

    /// Applies a replicated change: attribute writes (idempotent), audit
    /// records, hot swaps and relayed alarms (the other kinds have their
    /// own readers).
    async fn apply_replicated(&self, change: Replicated) {
        let ops = match change {
            Replicated::Audit(a) => {
                let n = self.next_audit.fetch_add(1, Ordering::Relaxed);
                self.add_audit_record(
                    n,
                    Timestamp(a.time),
                    &a.principal,
                    a.protocol,
                    &a.operation,
                    &a.result,
                )
                .await;
                return;
            }
            Replicated::Hotswap(note) => {
                self.apply_hotswap(&note).await;
                return;
            }
            Replicated::RelayedAlarm(alarm) => {
                self.relayed_alarm(&alarm).await;
                return;
            }
            Replicated::Set(ops) => ops,
            _ => return,
        };
        for op in ops {
            let Ok(name) = ObjectName::parse(&op.object) else {
                tracing::error!(object = %op.object, "replicated write names no object");
                continue;
            };
            let ty = self
                .store
                .get(&name)
                .await
                .ok()
                .and_then(|o| o.class.attribute(&op.attribute).map(|(_, m)| m.ty));
            // An object removed since (hot swap) takes no write.
            let Some(ty) = ty else { continue };
            match Value::parse(&ty, &op.value) {
                Ok(v) => {
                    self.set(&name, &[(op.attribute.as_str(), v)]);
                }
                Err(e) => {
                    tracing::error!(object = %op.object, attribute = %op.attribute, error = %e, "replicated write does not parse")
                }
            }
        }
    }

    /// A unit inserted or removed, as the hot-swap manager described it
    /// ([`crate::hotswap`]); every node of a cluster applies it in log
    /// order. Subtrees go, objects come, presence and the controller's
    /// counter change, FruChanged is announced, the missing-unit alarm is
    /// raised or cleared.
    async fn apply_hotswap(&self, note: &serde_json::Value) {
        for gone in note["remove"].as_array().into_iter().flatten() {
            if let Some(n) = gone.as_str().and_then(|n| ObjectName::parse(n).ok()) {
                self.store.remove(&n);
            }
        }
        let values_of = |class: &'static ClassMeta, v: &serde_json::Value| {
            let mut out: Vec<(&'static str, Value)> = Vec::new();
            for (a, text) in v.as_object().into_iter().flatten() {
                if let (Some((_, m)), Some(text)) = (class.attribute(a), text.as_str())
                    && let Ok(v) = Value::parse(&m.ty, text)
                {
                    out.push((m.name, v));
                }
            }
            out
        };
        for o in note["create"].as_array().into_iter().flatten() {
            let (Some(class), Some(object)) = (
                o["class"].as_str().and_then(|c| SCHEMA.class(c)),
                o["name"].as_str(),
            ) else {
                continue;
            };
            let values = values_of(class, &o["values"]);
            if let Err(e) = self.create_dynamic(class.name, object, &values).await {
                tracing::warn!(%object, error = %e, "hot swap: cannot create the object");
            }
        }
        for o in note["set"].as_array().into_iter().flatten() {
            let Some(n) = o["name"].as_str().and_then(|n| ObjectName::parse(n).ok()) else {
                continue;
            };
            if let Ok(obj) = self.store.get(&n).await {
                self.set(&n, &values_of(obj.class, &o["values"]));
            }
        }
        if let Some(hsc) = note["hsc"].as_str().and_then(|n| ObjectName::parse(n).ok())
            && let Ok(o) = self.store.get(&hsc).await
        {
            let n = match o.get("SwapEvents") {
                Some(Value::U64(n)) => n + 1,
                _ => 1,
            };
            self.set(&hsc, &[("SwapEvents", Value::U64(n))]);
        }
        let fru = note["fru"].as_str().unwrap_or_default();
        let present = note["present"].as_bool().unwrap_or_default();
        let source = ObjectName::parse(fru).unwrap_or_else(|_| self.root.clone());
        self.publish(
            "FruChanged",
            &source,
            vec![
                ("Fru", Value::Str(truncate(fru, 255))),
                (
                    "Slot",
                    Value::U32(note["slot"].as_u64().unwrap_or_default() as u32),
                ),
                ("Present", Value::Bool(present)),
                (
                    "FruType",
                    Value::Str(truncate(note["fru_type"].as_str().unwrap_or_default(), 64)),
                ),
            ],
        );
        for c in note["clear"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_str() {
                let _ = self
                    .clear_alarms_matching(c, Some(ProbableCause::ReplaceableUnitMissing))
                    .await;
            }
        }
        if let Some(text) = note["alarm"].as_str()
            && let Err(e) = self
                .raise_alarm(
                    fru,
                    ProbableCause::ReplaceableUnitMissing,
                    PerceivedSeverity::Major,
                    text,
                )
                .await
        {
            tracing::error!(error = %e, "cannot raise the missing-unit alarm");
        }
        tracing::info!(%fru, present, "hot swap applied");
    }

    /// Re-reads every component's states from CRIM.
    async fn refresh_states(&self) {
        if let Ok(views) = self.core.components().await {
            for v in views {
                if let Ok(n) = ObjectName::parse(&v.name) {
                    self.set(
                        &n,
                        &[
                            ("AdminState", Value::Enum(v.admin.value())),
                            ("AvailabilityState", Value::Enum(v.avail.value())),
                            ("OperState", Value::Enum(v.oper.value())),
                            ("Incarnation", Value::U32(v.incarnation)),
                        ],
                    );
                }
                self.proxied_by(&v.name, v.avail).await;
                for si in &v.active {
                    self.assignment(si, &v.name, "active", true).await;
                }
                for si in &v.standby {
                    self.assignment(si, &v.name, "standby", true).await;
                }
            }
        }
    }

    async fn apply(&self, kind: &EventKind) {
        let now = Timestamp::now();
        match kind {
            EventKind::StateChanged {
                component,
                to,
                reason,
                ..
            } => {
                let Ok(n) = ObjectName::parse(component) else {
                    return;
                };
                let Ok(to) = to.parse::<AvailabilityState>() else {
                    return;
                };
                self.set(
                    &n,
                    &[
                        ("AvailabilityState", Value::Enum(to.value())),
                        ("LastChange", Value::Time(now)),
                    ],
                );
                self.proxied_by(component, to).await;
                let (admin, oper) = match self.store.get(&n).await {
                    Ok(o) => (
                        o.get("AdminState").cloned().unwrap_or_default(),
                        o.get("OperState").cloned().unwrap_or_default(),
                    ),
                    Err(_) => return,
                };
                self.publish(
                    "StateChanged",
                    &n,
                    vec![
                        ("Component", Value::Str(component.clone())),
                        ("AdminState", admin),
                        ("OperState", oper),
                        ("AvailabilityState", Value::Enum(to.value())),
                        ("Reason", Value::Str(truncate(reason, 255))),
                    ],
                );
            }
            // A component taken down by its container's failure: a
            // secondary alarm (root-cause suppression files it under the
            // container's).
            EventKind::ContainerFailed {
                component,
                container,
            } => {
                let text = format!("container {container} failed");
                if let Err(e) = self
                    .raise_alarm(
                        component,
                        ProbableCause::UnderlyingResourceUnavailable,
                        PerceivedSeverity::Major,
                        &text,
                    )
                    .await
                {
                    tracing::error!(error = %e, %component, "cannot raise the secondary alarm");
                }
            }
            EventKind::OperChanged {
                component, enabled, ..
            } => {
                if let Ok(n) = ObjectName::parse(component) {
                    let s = if *enabled {
                        OperState::Enabled
                    } else {
                        OperState::Disabled
                    };
                    let _ = self
                        .store
                        .update(&n, &[("OperState", Value::Enum(s.value()))]);
                    if *enabled {
                        let _ = self.clear_alarms_if_secondary(component).await;
                    }
                }
            }
            EventKind::Process {
                component,
                pid,
                incarnation,
            } => {
                if let Ok(n) = ObjectName::parse(component)
                    && let Ok(o) = self.store.get(&n).await
                {
                    let restarts = match o.get("Restarts") {
                        Some(Value::U64(r)) if *incarnation > 1 => r + 1,
                        Some(Value::U64(r)) => *r,
                        _ => 0,
                    };
                    let mut v = vec![
                        ("Incarnation", Value::U32(*incarnation)),
                        ("Restarts", Value::U64(restarts)),
                    ];
                    if o.class.attribute("Pid").is_some() {
                        v.push(("Pid", Value::U32(pid.unwrap_or(0))));
                    }
                    self.set(&n, &v);
                }
            }
            EventKind::FailedOver {
                si,
                from,
                to,
                reason,
            } => {
                if let Ok(n) = ObjectName::parse(from)
                    && let Ok(o) = self.store.get(&n).await
                    && let Some(Value::U64(f)) = o.get("FailOvers")
                {
                    self.set(&n, &[("FailOvers", Value::U64(f + 1))]);
                }
                if let Some(sg) = ObjectName::parse(si).ok().and_then(|s| s.parent())
                    && let Ok(o) = self.store.get(&sg).await
                    && let Some(Value::U64(f)) = o.get("FailOvers")
                {
                    self.set(&sg, &[("FailOvers", Value::U64(f + 1))]);
                }
                let src = ObjectName::parse(si).unwrap_or_else(|_| self.root.clone());
                self.publish(
                    "FailedOver",
                    &src,
                    vec![
                        ("ServiceInstance", Value::Str(si.clone())),
                        ("FromComponent", Value::Str(from.clone())),
                        ("ToComponent", Value::Str(to.clone())),
                        ("Reason", Value::Str(truncate(reason, 255))),
                    ],
                );
            }
            EventKind::Assignment {
                si,
                component,
                role,
                assigned,
            } => self.assignment(si, component, role, *assigned).await,
            EventKind::Acked { component, .. } => {
                for a in self
                    .store
                    .query(&Query {
                        classes: vec!["Assignment".into()],
                        filters: vec![("component".into(), component.clone())],
                        ..Query::default()
                    })
                    .await
                    .unwrap_or_default()
                {
                    let _ = self
                        .store
                        .update(&a.name, &[("Acknowledged", Value::Bool(true))]);
                }
            }
            EventKind::Alarm {
                resource,
                cause,
                severity,
                text,
                clear,
            } => {
                if *clear {
                    let _ = self.clear_alarms(resource).await;
                } else {
                    let cause = ProbableCause::from_value(*cause).unwrap_or(ProbableCause::Other);
                    let sev = PerceivedSeverity::from_value(*severity)
                        .unwrap_or(PerceivedSeverity::Major);
                    if let Err(e) = self.raise_alarm(resource, cause, sev, text).await {
                        tracing::error!(error = %e, "cannot raise alarm");
                    }
                    if cause == ProbableCause::PowerProblem
                        && let Some(n) = self.with_attribute(resource, "PowerGood")
                    {
                        self.set(&n, &[("PowerGood", Value::Bool(false))]);
                    }
                }
                // Only a power supply has the flag (a shelf's or a fan's
                // power fault clears too).
                if *clear && let Some(n) = self.with_attribute(resource, "PowerGood") {
                    self.set(&n, &[("PowerGood", Value::Bool(true))]);
                }
            }
            EventKind::Statistic {
                resource,
                name,
                value,
                unit,
            } => self.relayed_statistic(resource, name, *value, unit).await,
            EventKind::Replicated { .. } => self.catch_up().await,
            EventKind::Recovery { .. } | EventKind::Verdict { .. } => {}
        }
    }

    /// A proxy's role names the peer node managing its non-peer node.
    async fn proxied_by(&self, component: &str, state: AvailabilityState) {
        let Some((target, host)) = self.proxies.get(component) else {
            return;
        };
        let Ok(n) = ObjectName::parse(target) else {
            return;
        };
        let current = self
            .store
            .get(&n)
            .await
            .ok()
            .and_then(|o| {
                o.get("ProxiedBy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let next = if state == AvailabilityState::Primary {
            host.clone()
        } else if current == *host {
            String::new()
        } else {
            return;
        };
        if next != current {
            self.set(&n, &[("ProxiedBy", Value::Str(next))]);
        }
    }

    /// An alarm change a proxy relayed from its non-peer node: raised
    /// (folded into the active one) or cleared, by resource and cause.
    async fn relayed_alarm(&self, alarm: &RelayedAlarm) {
        let resource = alarm.resource.as_str();
        let Some(cause) = ProbableCause::from_value(alarm.cause) else {
            tracing::error!(%resource, cause = alarm.cause, "relayed alarm with an unknown cause");
            return;
        };
        let severity = alarm.severity.and_then(PerceivedSeverity::from_value);
        let r = match severity {
            Some(sev) => self
                .raise_alarm(
                    resource,
                    cause,
                    sev,
                    alarm.text.as_deref().unwrap_or_default(),
                )
                .await
                .map(drop),
            None => self
                .clear_alarms_matching(resource, Some(cause))
                .await
                .map(drop),
        };
        if let Err(e) = r {
            tracing::error!(error = %e, %resource, "cannot apply a relayed alarm");
        }
    }

    /// A statistic a proxy relayed from its non-peer node: the node's
    /// Statistic object, with its history like the collector's.
    async fn relayed_statistic(&self, resource: &str, stat: &str, value: f64, unit: &str) {
        let object = format!("{resource}/stat={stat}");
        let Ok(n) = ObjectName::parse(&object) else {
            return;
        };
        let now = Timestamp::now();
        let values = [
            ("Resource", Value::Str(resource.to_string())),
            ("Value", Value::Real(value)),
            ("Unit", Value::Str(unit.chars().take(32).collect())),
            ("CollectedAt", Value::Time(now)),
        ];
        if self.store.update(&n, &values).is_err()
            && let Err(e) = self.create_dynamic("Statistic", &object, &values).await
        {
            tracing::warn!(error = %e, %object, "cannot create relayed statistic");
            return;
        }
        if let Err(e) = self
            .repo
            .journal(
                "statistic",
                &object,
                &json!({"time": now.0, "value": value}),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot record statistics history");
        }
    }

    async fn clear_alarms_if_secondary(&self, component: &str) -> Result<(), ModelError> {
        // A component back in service clears the alarms its container caused.
        let secondary: Vec<ManagedObject> = self
            .active_alarms()
            .await?
            .into_iter()
            .filter(|a| {
                a.get("Resource").and_then(Value::as_str) == Some(component)
                    && a.get("Correlation")
                        == Some(&Value::Enum(AlarmCorrelation::Secondary.value()))
            })
            .collect();
        if !secondary.is_empty() {
            self.clear_alarms(component).await?;
        }
        Ok(())
    }

    async fn assignment(&self, si: &str, component: &str, role: &str, assigned: bool) {
        let leaf = component.rsplit('=').next().unwrap_or(component);
        let object = format!("{si}/asg={leaf}");
        let Ok(n) = ObjectName::parse(&object) else {
            return;
        };
        if assigned {
            let role = if role == "active" {
                AssignmentRole::Active
            } else {
                AssignmentRole::Standby
            };
            if self.store.get(&n).await.is_ok() {
                self.set(
                    &n,
                    &[
                        ("Role", Value::Enum(role.value())),
                        ("Acknowledged", Value::Bool(false)),
                        ("AssignedAt", Value::Time(Timestamp::now())),
                    ],
                );
            } else {
                let _ = self
                    .create_dynamic(
                        "Assignment",
                        &object,
                        &[
                            ("Component", Value::Str(component.to_string())),
                            ("Role", Value::Enum(role.value())),
                            ("Acknowledged", Value::Bool(false)),
                            ("AssignedAt", Value::Time(Timestamp::now())),
                        ],
                    )
                    .await;
            }
        } else if let Ok(o) = self.store.get(&n).await
            && o.get("Role")
                .and_then(|r| match r {
                    Value::Enum(v) => AssignmentRole::from_value(*v),
                    _ => None,
                })
                .map(|r| r.yang_name())
                == Some(role)
        {
            self.store.remove(&n);
        }
        // Counters of service instances and groups are refreshed by the
        // statistics cycle, in one pass, not per event.
    }

    /// Recomputes service-instance and service-group counters in one pass.
    pub(crate) async fn refresh_counters(&self) {
        let asg = self
            .store
            .query(&Query {
                classes: vec!["Assignment".into()],
                ..Query::default()
            })
            .await
            .unwrap_or_default();
        let mut per_si: std::collections::HashMap<ObjectName, (u32, u32)> =
            std::collections::HashMap::new();
        for a in &asg {
            if let Some(si) = a.name.parent() {
                let e = per_si.entry(si).or_default();
                match a.get("Role") {
                    Some(Value::Enum(v)) if *v == AssignmentRole::Active.value() => e.0 += 1,
                    Some(Value::Enum(v)) if *v == AssignmentRole::Standby.value() => e.1 += 1,
                    _ => {}
                }
            }
        }
        for si in self
            .store
            .query(&Query {
                classes: vec!["ServiceInstance".into()],
                ..Query::default()
            })
            .await
            .unwrap_or_default()
        {
            let (active, standby) = per_si.get(&si.name).copied().unwrap_or_default();
            self.set(
                &si.name,
                &[
                    ("ActiveAssignments", Value::U32(active)),
                    ("StandbyAssignments", Value::U32(standby)),
                    ("Assigned", Value::Bool(active > 0)),
                ],
            );
        }
        if let Ok(views) = self.core.components().await {
            let mut per_sg: std::collections::HashMap<&str, (u32, u32)> =
                std::collections::HashMap::new();
            for v in &views {
                let e = per_sg.entry(v.sg.as_str()).or_default();
                match v.avail {
                    AvailabilityState::Primary => e.0 += 1,
                    AvailabilityState::Secondary => e.1 += 1,
                    _ => {}
                }
            }
            for (sg, (p, s)) in per_sg {
                if let Ok(n) = ObjectName::parse(sg) {
                    self.set(
                        &n,
                        &[("Primaries", Value::U32(p)), ("Secondaries", Value::U32(s))],
                    );
                }
            }
        }
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

    fn is_availability_attr(class: &ClassMeta, attribute: &str) -> bool {
        class
            .attribute(attribute)
            .is_some_and(|(_, a)| a.name == "AdminState")
            && SCHEMA.is_a(class.name, "Component")
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Alarm attributes from their persisted JSON form.
fn alarm_values(v: &serde_json::Value) -> Vec<(&'static str, Value)> {
    let meta = SCHEMA.class("Alarm").expect("Alarm class");
    let mut out = Vec::new();
    for a in meta.attributes {
        if let Some(text) = v.get(a.name).and_then(|x| x.as_str())
            && let Ok(val) = Value::parse(&a.ty, text)
        {
            out.push((a.name, val));
        }
    }
    out
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

    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.store.walk(class, after, limit).await
    }

    async fn audit(&self, principal: &Principal, event: &str, result: &str) {
        AgentModel::audit(self, principal, event, result).await
    }

    async fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        self.store.validate(tx)?;
        self.check_element_rules(tx).await
    }

    async fn transact(&self, tx: Transaction) -> Result<(), TxError> {
        let what = tx
            .changes
            .iter()
            .map(|c| match c {
                Change::Set {
                    object,
                    attribute,
                    value,
                } => format!("set {object} {attribute}={value:?}"),
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
        // In a cluster, attribute writes are committed to the log and
        // applied by every node, so every face of every node reads them.
        if self.cluster.get().is_some() {
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
            if !sets.is_empty()
                && let Err(e) = Replicated::Set(sets).replicate(&self.core).await
            {
                let error = ModelError::CommitFailed {
                    reason: e.to_string(),
                };
                self.audit(&principal, &what, &format!("failed: {error}"))
                    .await;
                return Err(TxError { index: 0, error });
            }
        }
        let r = self.store.transact(tx).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::ObjectSpec;
    use halyard_cluster_model::port::Delivery;

    async fn model(dir: &std::path::Path) -> (Arc<AgentModel>, halyard_backend::core::Running) {
        let el = Element {
            root: "ne=1".into(),
            conflict_policy: crate::copco::ConflictPolicy::Queue,
            objects: vec![
                ObjectSpec {
                    class: "NetworkElement",
                    name: "ne=1".into(),
                    values: vec![],
                },
                ObjectSpec {
                    class: "Shelf",
                    name: "ne=1/shelf=1".into(),
                    values: vec![],
                },
            ],
            groups: vec![],
            components: vec![],
            hosts: Default::default(),
            node_objects: Default::default(),
            locked: Vec::new(),
            static_frus: Default::default(),
            proxy_files: vec![],
            ssh_targets: vec![],
            proxies: Default::default(),
            switchover_lead: std::time::Duration::ZERO,
        };
        let repo = Repository::open(&dir.join("db")).await.unwrap();
        let (core, running) = HaCore::start(
            crate::element::core_config(&el, "t", dir, None),
            repo.clone(),
        )
        .await
        .unwrap();
        (AgentModel::load(&el, core, repo).await.unwrap(), running)
    }

    fn alarms_raised(sub: &mut Subscription) -> usize {
        let mut n = 0;
        while let Some(Some(Delivery::Notification(x))) = sub.recv().now_or_never() {
            n += usize::from(x.class.name == "AlarmRaised");
        }
        n
    }

    trait NowOrNever: std::future::Future + Sized {
        fn now_or_never(self) -> Option<Self::Output> {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            }
        }
    }
    impl<F: std::future::Future> NowOrNever for F {}

    #[tokio::test]
    async fn duplicates_fold_flapping_is_damped_and_cleared_alarms_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (m, running) = model(dir.path()).await;
        let mut sub = m.subscribe(NotificationFilter::default());
        let shelf = "ne=1/shelf=1";
        // Duplicates fold into one alarm with a counter.
        let a = m
            .raise_alarm(
                shelf,
                ProbableCause::PowerProblem,
                PerceivedSeverity::Major,
                "x",
            )
            .await
            .unwrap();
        let b = m
            .raise_alarm(
                shelf,
                ProbableCause::PowerProblem,
                PerceivedSeverity::Major,
                "x",
            )
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            m.store.get(&a).await.unwrap().get("Occurrences"),
            Some(&Value::U32(2))
        );
        assert_eq!(alarms_raised(&mut sub), 1);
        // Raise, clear, raise, clear...: past the limit it is damped, no new alarms or announcements.
        for _ in 0..6 {
            m.clear_alarms(shelf).await.unwrap();
            m.raise_alarm(
                shelf,
                ProbableCause::PowerProblem,
                PerceivedSeverity::Major,
                "x",
            )
            .await
            .unwrap();
        }
        let all = m
            .store
            .query(&Query {
                classes: vec!["Alarm".into()],
                ..Query::default()
            })
            .await
            .unwrap();
        assert!(
            all.len() <= 3,
            "flapping makes few alarm objects: {}",
            all.len()
        );
        assert!(
            alarms_raised(&mut sub) <= 2,
            "flapping is not announced every time"
        );
        // Retention: cleared alarms older than the retention go, from the store and the repository.
        m.clear_alarms(shelf).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let n = m
            .prune_alarms(std::time::Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(n, all.len());
        assert!(m.repo.list("/alarms").await.unwrap().is_empty());
        running.shutdown().await;
    }

    #[tokio::test]
    async fn an_alarm_storm_keeps_root_alarms_and_drops_secondaries_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (m, running) = model(dir.path()).await;
        // The root, then a storm of alarms beneath it (secondary) and elsewhere (independent).
        m.raise_alarm(
            "ne=1/shelf=1",
            ProbableCause::PowerProblem,
            PerceivedSeverity::Critical,
            "root",
        )
        .await
        .unwrap();
        let mut dropped = 0;
        for i in 0..STORM_LIMIT + 50 {
            if m.raise_alarm(
                &format!("ne=1/shelf=1/fan={i}"),
                ProbableCause::CoolingFanFailure,
                PerceivedSeverity::Major,
                "x",
            )
            .await
            .is_err()
            {
                dropped += 1;
            }
        }
        assert!(
            dropped >= 50,
            "secondaries past the limit are dropped: {dropped}"
        );
        // A new root-cause (independent) alarm is still taken in the storm.
        m.raise_alarm(
            "ne=1/shelf=2",
            ProbableCause::PowerProblem,
            PerceivedSeverity::Critical,
            "another root",
        )
        .await
        .unwrap();
        let active = m.active_alarms().await.unwrap();
        assert!(
            active
                .iter()
                .any(|a| a.get("Resource").and_then(Value::as_str) == Some("ne=1/shelf=2"))
        );
        assert!(
            active
                .iter()
                .any(|a| a.get("Resource").and_then(Value::as_str) == Some("ne=1/shelf=1"))
        );
        running.shutdown().await;
    }

    #[tokio::test]
    async fn a_refused_update_is_logged_and_counted_and_long_text_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (m, running) = model(dir.path()).await;
        let shelf = ObjectName::parse("ne=1/shelf=1").unwrap();
        let root = ObjectName::parse("ne=1").unwrap();
        async fn errors(m: &AgentModel, root: &ObjectName) -> Option<Value> {
            InformationModel::get(&m.store, root)
                .await
                .ok()
                .and_then(|o| o.get("ModelUpdateErrors").cloned())
        }
        // A misspelled attribute and a wrong type: refused, counted.
        assert!(!m.set(&shelf, &[("Lable", Value::Str("x".into()))]));
        assert!(!m.set(&shelf, &[("Label", Value::U32(3))]));
        assert_eq!(errors(&m, &root).await, Some(Value::U64(2)));
        // Over-long free text is cut to MaxLen, not dropped.
        let long = "x".repeat(400);
        assert!(m.set(&shelf, &[("Label", Value::Str(long))]));
        let o = InformationModel::get(&m.store, &shelf).await.unwrap();
        assert_eq!(o.get("Label"), Some(&Value::Str("x".repeat(255))));
        assert_eq!(errors(&m, &root).await, Some(Value::U64(2)));
        // An object that is gone is no defect.
        let gone = ObjectName::parse("ne=1/shelf=9").unwrap();
        assert!(!m.set(&gone, &[("Label", Value::Str("y".into()))]));
        assert_eq!(errors(&m, &root).await, Some(Value::U64(2)));
        running.shutdown().await;
    }
}
