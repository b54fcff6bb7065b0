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

use halyard_backend::core::HaCore;
use halyard_backend::repo::Repository;
use halyard_cluster_model::memory::MemoryModel;
use halyard_cluster_model::model::{AuditRecordPatch, Protocol};
use halyard_cluster_model::port::ModelError;
use halyard_cluster_model::{ObjectName, SCHEMA, SchemaEnum, Timestamp, Value};
use tokio::sync::Mutex;

use crate::copco::locks::Copco;
use crate::element::Element;
use crate::replication::Reader;

mod access;
mod alarms;
mod audit;
mod incidents;
mod kept;
mod projection;
mod tree;

use alarms::{AlarmGuards, alarm_values};

/// Audit records kept as managed objects (all are in the journal).
use crate::replication::AUDIT_KEPT;

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
    pub(crate) store: MemoryModel,
    pub(crate) core: HaCore,
    pub(crate) repo: Repository,
    pub(crate) root: ObjectName,
    pub(crate) copco: Copco,
    /// Persistent name -> stable index.
    indices: Mutex<BTreeMap<String, u32>>,
    next_index: AtomicU32,
    /// Indices given to objects the projection created (assignments) and
    /// not written yet: saved once per batch of events, in one
    /// transaction, not one SQLite commit per object (see
    /// [`AgentModel::save_indices`]).
    unsaved_indices: Mutex<Vec<(String, u32)>>,
    /// Component -> its Assignment objects, kept by the projection: an
    /// acknowledgement marks them without a scan of every assignment
    /// (which made the projection fall behind at ten thousand
    /// components). An entry whose object went away (hot swap) is
    /// harmless: setting it does nothing.
    assignments_of:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::BTreeSet<ObjectName>>>,
    next_alarm: AtomicU32,
    /// Reads the replicated changes (see `refresh`).
    replicated: tokio::sync::Mutex<Reader>,
    next_audit: AtomicU32,
    pub(crate) next_job: AtomicU32,
    /// Updates of the agent's own that the store refused (see `set`).
    update_errors: std::sync::atomic::AtomicU64,
    /// Requests the access rules refused (see `access`).
    access_denials: std::sync::atomic::AtomicU64,
    audits: Mutex<std::collections::VecDeque<ObjectName>>,
    /// Serializes alarm changes (raise, fold, clear).
    alarm_lock: Mutex<AlarmGuards>,
    /// Managers serving operations of their own (see [`crate::operations`]).
    operations: std::sync::RwLock<Vec<Arc<dyn crate::operations::Operations>>>,
    /// Proxy component -> (its non-peer node's object, its host node).
    proxies: BTreeMap<String, (String, String)>,
    /// Operators' kept edits, laid over objects as they are created.
    kept: std::sync::Mutex<kept::Kept>,
}

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

/// Where each object's stable index is kept: `<prefix>/<name>`.
pub(crate) const INDEX_PREFIX: &str = "/mo/index";
/// The next index to give (never below every index given so far).
pub(crate) const NEXT_INDEX_KEY: &str = "/mo/next-index";

impl AgentModel {
    /// Builds the managed-object tree; names keep the indices they had
    /// before a restart; persisted alarms come back.
    pub async fn load(
        element: &Element,
        core: HaCore,
        repo: Repository,
    ) -> Result<Arc<Self>, ModelError> {
        let mut indices = BTreeMap::new();
        let prefix = format!("{INDEX_PREFIX}/");
        for (k, v) in repo.list(INDEX_PREFIX).await.map_err(err_commit)? {
            if let (Some(n), Some(i)) = (k.strip_prefix(&prefix), v.as_u64()) {
                indices.insert(n.to_string(), i as u32);
            }
        }
        // Past every index ever given, those of forgotten records included.
        let mark = repo
            .get_as::<u32>(NEXT_INDEX_KEY)
            .await
            .map_err(err_commit)?
            .unwrap_or(0);
        let next = (indices.values().max().copied().unwrap_or(0) + 1).max(mark);
        let root = name(&element.root)?;
        let model = Arc::new_cyclic(|me| AgentModel {
            me: me.clone(),
            tasks: halyard_backend::tasks::Tasks::new(),
            cluster: std::sync::OnceLock::new(),
            store: MemoryModel::unchecked(),
            core,
            repo,
            root,
            copco: Copco::new(element.conflict_policy),
            indices: Mutex::new(indices),
            next_index: AtomicU32::new(next),
            unsaved_indices: Mutex::new(Vec::new()),
            assignments_of: std::sync::Mutex::default(),
            next_alarm: AtomicU32::new(1),
            replicated: tokio::sync::Mutex::new(Reader::new("model")),
            next_audit: AtomicU32::new(1),
            next_job: AtomicU32::new(1),
            update_errors: std::sync::atomic::AtomicU64::new(0),
            access_denials: std::sync::atomic::AtomicU64::new(0),
            audits: Mutex::new(Default::default()),
            alarm_lock: Mutex::new(AlarmGuards::default()),
            operations: std::sync::RwLock::default(),
            proxies: element.proxies.clone(),
            kept: std::sync::Mutex::default(),
        });
        // Operators' writes, creations and deletions come back over the
        // configuration's tree as its objects are created.
        let (writes, created, deleted) = model.load_kept().await?;
        if writes + created + deleted > 0 {
            tracing::info!(writes, created, deleted, "operators' kept edits loaded");
        }
        let mut fresh = Vec::new();
        for o in &element.objects {
            if model.kept_deleted(&o.name) {
                continue;
            }
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
        model.load_alarm_histories(&mut fresh).await?;
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
                    .to_string()
            };
            let protocol = text("protocol")
                .parse::<Protocol>()
                .unwrap_or(Protocol::Internal);
            let object = format!("{}/audit={}", model.root, n + 1);
            model
                .create(
                    "AuditRecord",
                    &object,
                    AuditRecordPatch::new()
                        .time(Timestamp(
                            body.get("time").and_then(|v| v.as_i64()).unwrap_or(0),
                        ))
                        .principal(text("principal"))
                        .protocol(protocol)
                        .operation(text("operation"))
                        .result(text("result"))
                        .values(),
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
    /// Registers a manager's operations (at start-up).
    pub(crate) fn serve(&self, ops: Arc<dyn crate::operations::Operations>) {
        self.operations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ops);
    }

    /// The manager serving `operation` on `class`, if one does.
    pub(crate) fn server_of(
        &self,
        class: &halyard_cluster_model::meta::ClassMeta,
        operation: &str,
    ) -> Option<Arc<dyn crate::operations::Operations>> {
        self.operations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|o| o.serves(class, operation))
            .cloned()
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
            .acquire_queued(target, job, crate::copco::locks::QUEUE_LIMIT)
            .await
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
}

/// A stored enumeration value, typed.
pub(crate) fn enum_of<E: SchemaEnum>(v: &Value) -> Option<E> {
    match v {
        Value::Enum(x) => E::from_value(*x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::ObjectSpec;
    use halyard_cluster_model::port::Delivery;

    use super::alarms::STORM_LIMIT;
    use halyard_cluster_model::model::{PerceivedSeverity, ProbableCause};
    use halyard_cluster_model::port::{InformationModel, NotificationFilter, Query, Subscription};

    async fn model(dir: &std::path::Path) -> (Arc<AgentModel>, halyard_backend::core::Running) {
        let el = Element {
            root: "ne=1".into(),
            conflict_policy: crate::config::ConflictPolicy::Queue,
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

    /// Records rotated out take their stable index with them (the index
    /// table stays bounded), and no index is given twice, across a
    /// restart too.
    #[tokio::test]
    async fn rotated_records_take_their_index_along_and_no_index_is_given_twice() {
        use halyard_cluster_model::port::Principal;
        let dir = tempfile::tempdir().unwrap();
        let (m, running) = model(dir.path()).await;
        let who = Principal::new("t", Protocol::Http);
        let extra = 40;
        for i in 0..AUDIT_KEPT + extra {
            m.audit(&who, &format!("op {i}"), "ok").await;
        }
        let audits = |keys: &[(String, serde_json::Value)]| {
            keys.iter().filter(|(k, _)| k.contains("/audit=")).count()
        };
        let kept = m.repo.list(INDEX_PREFIX).await.unwrap();
        assert_eq!(audits(&kept), AUDIT_KEPT, "index entries of audit records");
        let highest = kept.iter().filter_map(|(_, v)| v.as_u64()).max().unwrap();
        running.shutdown().await;
        drop(m);
        // After a restart, a new record's index is past every index given,
        // those of the forgotten records included.
        let (m, running) = model(dir.path()).await;
        let forgotten_max = highest as u32;
        m.audit(&who, "after the restart", "ok").await;
        let fresh = m
            .repo
            .list(INDEX_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|(_, v)| v.as_u64())
            .max()
            .unwrap() as u32;
        assert!(
            fresh > forgotten_max,
            "index {fresh} given again (highest was {forgotten_max})"
        );
        running.shutdown().await;
    }

    /// A new severity of an active alarm is announced; a repeat is not.
    /// The X.733 trend sets an alarm against the other outstanding alarms
    /// of its resource. Cleared alarms past the element's
    /// MaxClearedAlarms go, oldest first.
    #[tokio::test]
    async fn severity_changes_are_announced_with_their_trend_and_cleared_alarms_are_capped() {
        use halyard_cluster_model::model::{AlarmTrend, NetworkElementPatch};
        let dir = tempfile::tempdir().unwrap();
        let (m, running) = model(dir.path()).await;
        let mut sub = m.subscribe(NotificationFilter::default());
        let shelf = "ne=1/shelf=1";
        let raise = |c, s| m.raise_alarm(shelf, c, s, "x");
        let trend =
            |o: &halyard_cluster_model::port::ManagedObject| halyard_cluster_model::alarm::trend(o);
        let power = ProbableCause::PowerProblem;
        let a = raise(power, PerceivedSeverity::Major).await.unwrap();
        assert_eq!(trend(&m.store.get(&a).await.unwrap()), None, "alone");
        assert_eq!(alarms_raised(&mut sub), 1);
        raise(power, PerceivedSeverity::Critical).await.unwrap();
        assert_eq!(alarms_raised(&mut sub), 1, "a new severity is announced");
        raise(power, PerceivedSeverity::Critical).await.unwrap();
        assert_eq!(alarms_raised(&mut sub), 0, "a repeat is not");
        // Against the power problem's critical:
        for (cause, severity, want) in [
            (
                ProbableCause::HighTemperature,
                PerceivedSeverity::Minor,
                AlarmTrend::LessSevere,
            ),
            (
                ProbableCause::SoftwareError,
                PerceivedSeverity::Critical,
                AlarmTrend::NoChange,
            ),
        ] {
            let b = raise(cause, severity).await.unwrap();
            assert_eq!(
                trend(&m.store.get(&b).await.unwrap()),
                Some(want),
                "{cause:?}"
            );
        }
        // On the fan: alone first, then a more severe one beside it.
        let on_fan = |c, s| m.raise_alarm("ne=1/shelf=1/fan=1", c, s, "y");
        let f = on_fan(ProbableCause::CoolingFanFailure, PerceivedSeverity::Warning)
            .await
            .unwrap();
        assert_eq!(trend(&m.store.get(&f).await.unwrap()), None);
        let f = on_fan(ProbableCause::PowerProblem, PerceivedSeverity::Major)
            .await
            .unwrap();
        assert_eq!(
            trend(&m.store.get(&f).await.unwrap()),
            Some(AlarmTrend::MoreSevere)
        );
        // Two cleared alarms already (the fan's); five more below.
        m.clear_alarms("ne=1/shelf=1/fan=1").await.unwrap();
        raise(ProbableCause::CoolingFanFailure, PerceivedSeverity::Minor)
            .await
            .unwrap();
        raise(ProbableCause::TimeoutExpired, PerceivedSeverity::Minor)
            .await
            .unwrap();

        let causes = [
            ProbableCause::PowerProblem,
            ProbableCause::HighTemperature,
            ProbableCause::CoolingFanFailure,
            ProbableCause::SoftwareError,
            ProbableCause::TimeoutExpired,
        ];
        let mut order = Vec::new();
        for c in causes {
            m.clear_alarms_matching(shelf, Some(c)).await.unwrap();
            order.push(c);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        m.store
            .update(
                &m.root,
                NetworkElementPatch::new().max_cleared_alarms(2).values(),
            )
            .unwrap();
        let n = m
            .prune_alarms(std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(n, 5);
        let left: Vec<_> = m
            .store
            .query(&Query {
                classes: vec!["Alarm".into()],
                ..Query::default()
            })
            .await
            .unwrap()
            .iter()
            .filter_map(halyard_cluster_model::alarm::cause)
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left.iter().all(|c| order[3..].contains(c)),
            "the newest stay: {left:?}"
        );
        assert_eq!(m.repo.list("/alarms").await.unwrap().len(), 2);
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
        // Counted on the element (ALARM-MIB alarmActiveOverflow).
        let root = m.store.get(&m.root).await.unwrap();
        assert_eq!(
            root.by_role(halyard_cluster_model::meta::Role::AlarmOverflow),
            Some(&Value::U32(dropped as u32))
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

    /// ietf-alarms shelving and history: an alarm a shelf holds is neither
    /// announced nor its clear; deleting the shelf takes it off. Every
    /// status change is kept (in the repository too, so a restart has
    /// them), capped per alarm by MaxAlarmStatusChanges, and compress
    /// leaves the latest.
    #[tokio::test]
    async fn shelved_alarms_are_quiet_and_status_changes_are_kept_capped_and_compressed() {
        use halyard_cluster_model::alarm;
        use halyard_cluster_model::model::{NetworkElementPatch, OperatorState, Protocol};
        use halyard_cluster_model::port::{Change, Principal, Transaction};
        let dir = tempfile::tempdir().unwrap();
        let (m, running) = model(dir.path()).await;
        let mut sub = m.subscribe(NotificationFilter::default());
        let shelf = "ne=1/shelf=1";
        let root = ObjectName::parse("ne=1").unwrap();
        let shelf_obj = root.child("alarmshelf", "psu-work").unwrap();
        let principal = Principal::new("test", Protocol::Internal);
        m.transact(Transaction {
            principal: principal.clone(),
            changes: vec![Change::Create {
                class: alarm::SHELF_CLASS.into(),
                object: shelf_obj.clone(),
                values: vec![
                    ("Resource".into(), Value::Str(shelf.into())),
                    (
                        "AlarmType".into(),
                        Value::Str(ProbableCause::PowerProblem.yang_name().into()),
                    ),
                    ("Reason".into(), Value::Str("PSU swap".into())),
                ],
            }],
        })
        .await
        .unwrap();
        let power = |s| m.raise_alarm(shelf, ProbableCause::PowerProblem, s, "power lost");
        let a = power(PerceivedSeverity::Major).await.unwrap();
        // Another type on the same resource is not on the shelf.
        let other = m
            .raise_alarm(
                shelf,
                ProbableCause::HighTemperature,
                PerceivedSeverity::Minor,
                "hot",
            )
            .await
            .unwrap();
        assert_eq!(alarms_raised(&mut sub), 1, "only the unshelved one");
        assert_eq!(
            alarm::shelf(&m.store.get(&a).await.unwrap()),
            Some(shelf_obj.to_string().as_str())
        );
        assert_eq!(alarm::shelf(&m.store.get(&other).await.unwrap()), None);
        power(PerceivedSeverity::Critical).await.unwrap();
        assert_eq!(alarms_raised(&mut sub), 0, "a shelved escalation is quiet");
        m.clear_alarms_matching(shelf, Some(ProbableCause::PowerProblem))
            .await
            .unwrap();
        let reopened = power(PerceivedSeverity::Major).await.unwrap();
        // Raised, escalated, cleared, reopened: four changes, kept in order.
        // One ietf-alarms alarm: every alarm object of a resource and type.
        async fn changes_in(m: &AgentModel, a: &ObjectName) -> Vec<PerceivedSeverity> {
            let a = m.store.get(a).await.unwrap();
            let mut v: Vec<(Timestamp, u32, PerceivedSeverity)> = Vec::new();
            for x in m
                .store
                .query(&Query {
                    classes: vec![alarm::CLASS.into()],
                    ..Query::default()
                })
                .await
                .unwrap()
            {
                if alarm::resource(&x) != alarm::resource(&a)
                    || alarm::cause(&x) != alarm::cause(&a)
                {
                    continue;
                }
                for c in m.history_of(super::alarms::STATUS, &x.name).await.unwrap() {
                    let (t, s, _) = alarm::status_change(&c).unwrap();
                    v.push((t, c.index, s));
                }
            }
            v.sort_by_key(|c| (c.0, c.1));
            v.into_iter().map(|c| c.2).collect()
        }
        assert_eq!(
            changes_in(&m, &a).await,
            [
                PerceivedSeverity::Major,
                PerceivedSeverity::Critical,
                PerceivedSeverity::Cleared,
                PerceivedSeverity::Major
            ]
        );
        assert_eq!(
            m.repo.list("/alarm-changes").await.unwrap().len(),
            5,
            "the temperature alarm's one besides"
        );
        assert_eq!(alarms_raised(&mut sub), 0, "nor its reopening");
        assert_eq!(
            alarm::shelf(&m.store.get(&reopened).await.unwrap()),
            Some(shelf_obj.to_string().as_str())
        );
        // The shelf deleted: the alarm is back in the list.
        m.transact(Transaction {
            principal,
            changes: vec![Change::Delete {
                object: shelf_obj.clone(),
            }],
        })
        .await
        .unwrap();
        assert_eq!(alarm::shelf(&m.store.get(&reopened).await.unwrap()), None);
        // The cap: the oldest go first.
        m.store
            .update(
                &root,
                NetworkElementPatch::new()
                    .max_alarm_status_changes(3)
                    .values(),
            )
            .unwrap();
        power(PerceivedSeverity::Critical).await.unwrap();
        assert_eq!(
            changes_in(&m, &a).await,
            [
                PerceivedSeverity::Cleared,
                PerceivedSeverity::Major,
                PerceivedSeverity::Critical
            ]
        );
        // Compress keeps the latest of the (unshelved) alarm list's alarms:
        // the power alarm lost two, the temperature alarm had one.
        assert_eq!(
            m.compress_alarms(shelf, "", true).await.unwrap(),
            0,
            "no shelved alarm"
        );
        assert_eq!(m.compress_alarms(shelf, "", false).await.unwrap(), 1);
        assert_eq!(changes_in(&m, &a).await, [PerceivedSeverity::Critical]);
        assert_eq!(changes_in(&m, &other).await, [PerceivedSeverity::Minor]);
        assert_eq!(m.repo.list("/alarm-changes").await.unwrap().len(), 2);
        running.shutdown().await;
        drop(m);
        // A restart has the alarms' status changes back.
        let (m, running) = model(dir.path()).await;
        let back: Vec<_> = m
            .history_of(super::alarms::STATUS, &reopened)
            .await
            .unwrap()
            .iter()
            .filter_map(|c| alarm::status_change(c).map(|(_, s, _)| s))
            .collect();
        assert_eq!(back, [PerceivedSeverity::Critical]);
        // The system marked the alarm shelved and un-shelved among its
        // operator actions (kept across the restart too).
        async fn actions_of(m: &AgentModel, a: &ObjectName) -> Vec<(String, OperatorState)> {
            let mut v: Vec<_> = m
                .history_of(super::alarms::ACTIONS, a)
                .await
                .unwrap()
                .iter()
                .filter_map(|c| {
                    alarm::operator_action(c).map(|(t, who, s, _)| (t, c.index, who.to_string(), s))
                })
                .collect();
            v.sort_by_key(|x| (x.0, x.1));
            v.into_iter().map(|x| (x.2, x.3)).collect()
        }
        let system = |s| ("system".to_string(), s);
        assert_eq!(
            actions_of(&m, &reopened).await,
            [
                system(OperatorState::Shelved),
                system(OperatorState::UnShelved)
            ]
        );
        // An operator's state: ack is the acknowledgement too.
        m.set_operator_state(&reopened, OperatorState::Ack, "on it", "alice")
            .await
            .unwrap();
        let o = m.store.get(&reopened).await.unwrap();
        assert_eq!(alarm::operator_state(&o), Some(OperatorState::Ack));
        assert_eq!(alarm::acknowledgement(&o).map(|x| x.0), Some("alice"));
        assert_eq!(
            actions_of(&m, &reopened).await.last(),
            Some(&("alice".to_string(), OperatorState::Ack))
        );
        // purge-alarms' operator-state filter: by state, and by who set it.
        let purge = |state: &str, who: &str| alarm::PurgeFilter {
            clearance: "any".into(),
            operator_state: state.into(),
            operator: who.into(),
            ..alarm::PurgeFilter::default()
        };
        assert_eq!(m.purge_alarms(&purge("closed", "")).await.unwrap(), 0);
        assert_eq!(m.purge_alarms(&purge("ack", "bob")).await.unwrap(), 0);
        assert!(m.purge_alarms(&purge("bogus", "")).await.is_err());
        // The temperature alarm: no operator touched it.
        assert_eq!(m.purge_alarms(&purge("none", "")).await.unwrap(), 1);
        assert!(m.store.get(&other).await.is_err());
        assert_eq!(m.purge_alarms(&purge("ack", "alice")).await.unwrap(), 1);
        assert!(m.store.get(&reopened).await.is_err());
        assert!(
            m.repo.list("/alarm-actions").await.unwrap().len() <= 2,
            "only the first alarm's"
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
