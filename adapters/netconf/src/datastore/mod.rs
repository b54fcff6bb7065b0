//! The datastores shared by every session: running (the model itself),
//! candidate (a copy with pending edits), locks, commit and confirmed
//! commit with its rollback timer, and the session registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use halyard_cluster_model::ObjectName;
use halyard_cluster_model::Timestamp;
use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{
    InformationModel, ModelError, Principal, Query, Scope, Transaction,
};
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use crate::data::{ConfigEntry, ConfigStore, Touched, change_path};
use crate::error::{RpcError, Tag, from_model};
use crate::events::{self, EventLog, Who};
use crate::monitoring::{SchemaStore, SessionInfo, Stats};

/// A configuration datastore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Datastore {
    Running,
    Candidate,
}

impl Datastore {
    pub fn name(self) -> &'static str {
        match self {
            Datastore::Running => "running",
            Datastore::Candidate => "candidate",
        }
    }
}

/// Running as it was before a confirmed commit, for what the commit touched.
#[derive(Debug, Clone)]
struct Snapshot {
    store: ConfigStore,
    /// The names the snapshot covers (present in `store` or absent then);
    /// None: all of running.
    names: Option<BTreeSet<ObjectName>>,
}

impl Snapshot {
    /// Combines the snapshot of an earlier confirmed commit with the one
    /// taken before a later commit that extends it: the earlier values win.
    fn merge(old: Snapshot, new: Snapshot) -> Snapshot {
        match (old.names, new.names) {
            (None, _) => Snapshot {
                store: old.store,
                names: None,
            },
            (Some(old_names), Some(new_names)) => {
                let mut store = old.store;
                for n in new_names.difference(&old_names) {
                    if let Some(e) = new.store.entries.get(n) {
                        store.entries.insert(n.clone(), e.clone());
                    }
                }
                Snapshot {
                    store,
                    names: Some(old_names.union(&new_names).cloned().collect()),
                }
            }
            (Some(old_names), None) => {
                let mut store = new.store;
                for n in &old_names {
                    store.entries.remove(n);
                    if let Some(e) = old.store.entries.get(n) {
                        store.entries.insert(n.clone(), e.clone());
                    }
                }
                Snapshot { store, names: None }
            }
        }
    }
}

/// The candidate: running plus the entries edited since the last commit
/// (so an edit and a commit cost what they touch, not the datastore size),
/// or a whole replacement after copy-config, delete-config or a
/// container-level replace.
#[derive(Debug, Default)]
struct Candidate {
    /// Edited entries; None marks a deleted one.
    overlay: BTreeMap<ObjectName, Option<ConfigEntry>>,
    full: Option<ConfigStore>,
}

impl Candidate {
    fn is_modified(&self) -> bool {
        !self.overlay.is_empty() || self.full.is_some()
    }

    fn apply_to(&self, store: &mut ConfigStore, within: impl Fn(&ObjectName) -> bool) {
        for (n, v) in self.overlay.iter().filter(|(n, _)| within(n)) {
            match v {
                Some(e) => {
                    store.entries.insert(n.clone(), e.clone());
                }
                None => {
                    store.entries.remove(n);
                }
            }
        }
    }

    /// Records the result of an edit of the entries in `base`.
    fn record(&mut self, base: &ConfigStore, new: ConfigStore) {
        let names: BTreeSet<&ObjectName> = base.entries.keys().chain(new.entries.keys()).collect();
        for n in names {
            let v = new.entries.get(n).cloned();
            match &mut self.full {
                Some(f) => match v {
                    Some(e) => {
                        f.entries.insert(n.clone(), e);
                    }
                    None => {
                        f.entries.remove(n);
                    }
                },
                None => {
                    self.overlay.insert(n.clone(), v);
                }
            }
        }
    }
}

#[derive(Debug)]
struct PendingCommit {
    /// Running before the first confirmed commit: what a rollback restores.
    backup: Snapshot,
    session: u32,
    who: Who,
    persist: Option<String>,
    generation: u64,
    timer: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct DsState {
    locks: BTreeMap<Datastore, (u32, Timestamp)>,
    candidate: Candidate,
    /// The sessions whose edits the candidate holds (RFC 6241 §7.5: a lock
    /// is refused while another session's changes are in it).
    candidate_modified_by: BTreeSet<u32>,
    pending: Option<PendingCommit>,
    generation: u64,
}

/// A registered session.
#[derive(Debug)]
pub struct SessionEntry {
    pub info: SessionInfo,
    /// Set to the killer's session-id (0: the server) to end the session.
    pub kill: watch::Sender<Option<u32>>,
}

/// Options of `<commit>`.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub confirmed: bool,
    pub timeout: Option<Duration>,
    pub persist: Option<String>,
    pub persist_id: Option<String>,
}

/// What every session shares.
pub struct Shared {
    pub model: Arc<dyn InformationModel>,
    pub stats: Arc<Stats>,
    pub schemas: SchemaStore,
    pub start_time: Timestamp,
    pub limits: crate::Limits,
    pub idle_timeout: Duration,
    /// RFC 6470 events of the server itself.
    pub events: EventLog,
    /// Every message exchanged, written to files (conformance checks).
    pub trace: Option<Trace>,
    ds: Mutex<DsState>,
    sessions: std::sync::Mutex<BTreeMap<u32, SessionEntry>>,
    next_session: std::sync::atomic::AtomicU32,
    me: Weak<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The message trace: each rpc with its reply, and each notification, in a
/// numbered file (`000042-s3-rpc.xml`, `000042-s3-reply.xml`,
/// `000043-s3-notif.xml`), so a test can validate every one with yanglint.
#[derive(Debug)]
pub struct Trace {
    dir: std::path::PathBuf,
    next: std::sync::atomic::AtomicU64,
}

impl Trace {
    /// Writes one exchange; `request` is None for a notification.
    pub async fn record(&self, session: u32, request: Option<&[u8]>, sent: &str) {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = |kind: &str| self.dir.join(format!("{n:06}-s{session}-{kind}.xml"));
        let r = match request {
            Some(req) => match tokio::fs::write(path("rpc"), req).await {
                Ok(()) => tokio::fs::write(path("reply"), sent).await,
                Err(e) => Err(e),
            },
            None => tokio::fs::write(path("notif"), sent).await,
        };
        if let Err(e) = r {
            warn!(error = %e, dir = %self.dir.display(), "cannot write the message trace");
        }
    }
}

/// The default confirm-timeout (RFC 6241 §8.4.5.1).
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(600);

/// A refused transaction as an rpc-error naming the entry (or leaf) of the
/// change that failed.
fn tx_error(
    e: &halyard_cluster_model::port::TxError,
    changes: &[halyard_cluster_model::port::Change],
    from: &ConfigStore,
    to: &ConfigStore,
) -> RpcError {
    let store = if matches!(
        changes.get(e.index),
        Some(halyard_cluster_model::port::Change::Create { .. })
    ) {
        to
    } else {
        from
    };
    let path = changes.get(e.index).and_then(|c| change_path(c, store));
    from_model(&e.error, path)
}

fn in_use(ds: Datastore, holder: u32) -> RpcError {
    RpcError::protocol(
        Tag::InUse,
        format!("the {} datastore is locked by session {holder}", ds.name()),
    )
    .with_info("session-id", holder.to_string())
}

impl Shared {
    pub fn new(
        model: Arc<dyn InformationModel>,
        stats: Arc<Stats>,
        schemas: SchemaStore,
        limits: crate::Limits,
        idle_timeout: Duration,
        trace_dir: Option<std::path::PathBuf>,
    ) -> Arc<Shared> {
        Arc::new_cyclic(|me| Shared {
            trace: trace_dir.map(|dir| Trace {
                dir,
                next: std::sync::atomic::AtomicU64::new(1),
            }),
            model,
            stats,
            schemas,
            start_time: Timestamp::now(),
            limits,
            idle_timeout,
            events: EventLog::default(),
            ds: Mutex::new(DsState::default()),
            sessions: std::sync::Mutex::new(BTreeMap::new()),
            next_session: std::sync::atomic::AtomicU32::new(1),
            me: me.clone(),
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new session; returns its id and its kill switch.
    pub fn register(&self, user: &str, source_host: &str) -> (u32, watch::Receiver<Option<u32>>) {
        let id = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        self.sessions().insert(
            id,
            SessionEntry {
                info: SessionInfo {
                    id,
                    user: user.to_string(),
                    source_host: source_host.to_string(),
                    login_time: Timestamp::now(),
                    in_rpcs: 0,
                    in_bad_rpcs: 0,
                    out_rpc_errors: 0,
                    out_notifications: 0,
                },
                kill: tx,
            },
        );
        Stats::inc(&self.stats.in_sessions);
        (id, rx)
    }

    /// The RFC 6470 session parameters of a session.
    pub fn who(&self, id: u32) -> Who {
        let sessions = self.sessions();
        let info = sessions.get(&id).map(|e| &e.info);
        Who {
            user: info.map(|i| i.user.clone()).unwrap_or_default(),
            session: id,
            host: info.map(|i| i.source_host.clone()).unwrap_or_default(),
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Updates a session's counters.
    pub fn count(&self, id: u32, f: impl FnOnce(&mut SessionInfo)) {
        if let Some(e) = self.sessions().get_mut(&id) {
            f(&mut e.info);
        }
    }

    pub fn session_infos(&self) -> Vec<SessionInfo> {
        self.sessions().values().map(|e| e.info.clone()).collect()
    }

    /// Kills every session (shutdown).
    pub fn kill_all(&self) {
        for e in self.sessions().values() {
            let _ = e.kill.send(Some(0));
        }
    }

    /// Ends a session: releases its locks, discards the candidate it
    /// locked, rolls back its unconfirmed (non-persistent) commit.
    pub async fn unregister(&self, id: u32) {
        self.sessions().remove(&id);
        self.release_session(id).await;
    }

    async fn release_session(&self, id: u32) {
        let mut ds = self.ds.lock().await;
        let held: Vec<Datastore> = ds
            .locks
            .iter()
            .filter(|(_, (s, _))| *s == id)
            .map(|(d, _)| *d)
            .collect();
        for d in held {
            ds.locks.remove(&d);
            if d == Datastore::Candidate {
                ds.candidate = Candidate::default();
                ds.candidate_modified_by.clear();
            }
            info!(
                session = id,
                datastore = d.name(),
                "lock released at session end"
            );
        }
        if ds
            .pending
            .as_ref()
            .is_some_and(|p| p.session == id && p.persist.is_none())
        {
            warn!(
                session = id,
                "session ended before its confirmed commit was confirmed: rolling back"
            );
            if let Err(e) = self.rollback(&mut ds, "cancel").await {
                warn!(error = %e.message, "rollback of the confirmed commit failed");
            }
        }
    }

    /// `<kill-session>`: RFC 6241 §7.9.
    pub async fn kill_session(&self, me: u32, target: u32) -> Result<(), RpcError> {
        if target == me {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "session-id",
                "a session cannot kill itself; use close-session",
            ));
        }
        let found = self.sessions().remove(&target);
        let Some(entry) = found else {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "session-id",
                format!("no session {target}"),
            ));
        };
        let _ = entry.kill.send(Some(me));
        self.release_session(target).await;
        info!(session = me, killed = target, "session killed");
        Ok(())
    }

    /// The running configuration, read from the model.
    pub async fn running(&self) -> Result<ConfigStore, RpcError> {
        let objs = self
            .model
            .query(&Query::default())
            .await
            .map_err(|e| from_model(&e, None))?;
        Ok(ConfigStore::from_objects(&objs))
    }

    /// Running's entries for these names and subtrees.
    async fn load_running(
        &self,
        names: &[ObjectName],
        subtrees: &[ObjectName],
    ) -> Result<ConfigStore, RpcError> {
        let mut objs = Vec::new();
        for n in names {
            match self.model.get(n).await {
                Ok(o) => objs.push(o),
                Err(ModelError::NoSuchObject { .. }) => {}
                Err(e) => return Err(from_model(&e, None)),
            }
        }
        for root in subtrees {
            let q = Query {
                scope: Scope::Subtree(root.clone()),
                ..Query::default()
            };
            match self.model.query(&q).await {
                Ok(v) => objs.extend(v),
                Err(ModelError::NoSuchObject { .. }) => {}
                Err(e) => return Err(from_model(&e, None)),
            }
        }
        Ok(ConfigStore::from_objects(&objs))
    }

    /// The candidate's entries for these names and subtrees.
    async fn load_candidate(
        &self,
        cand: &Candidate,
        names: &[ObjectName],
        subtrees: &[ObjectName],
    ) -> Result<ConfigStore, RpcError> {
        let wanted = |n: &ObjectName| names.contains(n) || subtrees.iter().any(|r| n.is_within(r));
        if let Some(full) = &cand.full {
            let entries = full
                .entries
                .iter()
                .filter(|(n, _)| wanted(n))
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect();
            return Ok(ConfigStore { entries });
        }
        let mut s = self.load_running(names, subtrees).await?;
        cand.apply_to(&mut s, wanted);
        Ok(s)
    }

    /// The whole candidate.
    async fn materialize(&self, cand: &Candidate) -> Result<ConfigStore, RpcError> {
        if let Some(f) = &cand.full {
            return Ok(f.clone());
        }
        let mut s = self.running().await?;
        cand.apply_to(&mut s, |_| true);
        Ok(s)
    }

    /// The candidate (running when it has no pending change).
    pub async fn candidate(&self) -> Result<ConfigStore, RpcError> {
        let ds = self.ds.lock().await;
        self.materialize(&ds.candidate).await
    }

    pub async fn locks(&self) -> Vec<(&'static str, u32, Timestamp)> {
        self.ds
            .lock()
            .await
            .locks
            .iter()
            .map(|(d, (s, t))| (d.name(), *s, *t))
            .collect()
    }

    /// Refuses a write when another session holds the lock.
    fn check_writable(ds: &DsState, target: Datastore, me: u32) -> Result<(), RpcError> {
        match ds.locks.get(&target) {
            Some((holder, _)) if *holder != me => Err(in_use(target, *holder)),
            _ => Ok(()),
        }
    }

    pub async fn lock(&self, me: u32, target: Datastore) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        if let Some((holder, _)) = ds.locks.get(&target) {
            return Err(RpcError::protocol(
                Tag::LockDenied,
                format!(
                    "the {} datastore is locked by session {holder}",
                    target.name()
                ),
            )
            .with_info("session-id", holder.to_string()));
        }
        if target == Datastore::Candidate
            && ds.candidate.is_modified()
            && let Some(&by) = ds.candidate_modified_by.iter().find(|s| **s != me)
        {
            return Err(RpcError::protocol(
                Tag::LockDenied,
                format!("the candidate holds uncommitted changes of session {by}"),
            )
            .with_info("session-id", by.to_string()));
        }
        ds.locks.insert(target, (me, Timestamp::now()));
        info!(session = me, datastore = target.name(), "locked");
        Ok(())
    }

    pub async fn unlock(&self, me: u32, target: Datastore) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        match ds.locks.get(&target) {
            Some((holder, _)) if *holder == me => {
                ds.locks.remove(&target);
                if target == Datastore::Candidate {
                    ds.candidate = Candidate::default();
                    ds.candidate_modified_by.clear();
                }
                info!(session = me, datastore = target.name(), "unlocked");
                Ok(())
            }
            Some((holder, _)) => Err(RpcError::protocol(
                Tag::OperationFailed,
                format!("the lock is held by session {holder}"),
            )
            .with_info("session-id", holder.to_string())),
            None => Err(RpcError::protocol(
                Tag::OperationFailed,
                format!("the {} datastore is not locked", target.name()),
            )),
        }
    }

    fn principal(user: &str) -> Principal {
        Principal::new(user, Protocol::Netconf)
    }

    /// Applies `target_store` to running as one transaction.
    async fn apply_running(
        &self,
        by: Option<u32>,
        user: &str,
        from: &ConfigStore,
        to: &ConfigStore,
    ) -> Result<usize, RpcError> {
        let changes = from.diff(to);
        let n = changes.len();
        if n == 0 {
            return Ok(0);
        }
        let tx = Transaction {
            principal: Self::principal(user),
            changes: changes.clone(),
        };
        self.model
            .transact(tx)
            .await
            .map_err(|e| tx_error(&e, &changes, from, to))?;
        let edits: Vec<(String, &'static str)> = changes
            .iter()
            .filter_map(|c| {
                use halyard_cluster_model::port::Change;
                let (store, op) = match c {
                    Change::Create { .. } => (to, "create"),
                    Change::Delete { .. } => (from, "delete"),
                    Change::Set { .. } => (from, "replace"),
                };
                change_path(c, store).map(|p| (p, op))
            })
            .collect();
        let who = by.map(|id| self.who(id));
        self.events
            .emit(events::config_change(who.as_ref(), &edits));
        Ok(n)
    }

    /// Checks that turning running into `to` is a transaction the model
    /// accepts as a whole (`<validate>`: containment, types, and what may be
    /// created or deleted at all), applying nothing.
    pub async fn validate_config(&self, user: &str, to: &ConfigStore) -> Result<(), RpcError> {
        let from = self.running().await?;
        let changes = from.diff(to);
        if changes.is_empty() {
            return Ok(());
        }
        let tx = Transaction {
            principal: Self::principal(user),
            changes,
        };
        self.model
            .validate(&tx)
            .await
            .map_err(|e| tx_error(&e, &tx.changes, &from, to))
    }

    /// Edits a datastore: `edit` transforms a copy of the entries the edit
    /// touches (all of them when `touched.full`) and returns the errors it
    /// met; running is written as one transaction, the candidate is
    /// recorded. With `keep_partial` (continue-on-error) what succeeded is
    /// kept despite errors; otherwise any error leaves the target untouched.
    #[allow(clippy::too_many_arguments)]
    pub async fn edit(
        &self,
        me: u32,
        user: &str,
        target: Datastore,
        test_only: bool,
        keep_partial: bool,
        touched: &Touched,
        edit: impl FnOnce(&mut ConfigStore) -> Vec<RpcError>,
    ) -> Vec<RpcError> {
        let mut ds = self.ds.lock().await;
        if let Err(e) = Self::check_writable(&ds, target, me) {
            return vec![e];
        }
        let (names, subtrees) = (&touched.names, &touched.subtrees);
        let base = match (target, touched.full) {
            (Datastore::Running, true) => self.running().await,
            (Datastore::Running, false) => self.load_running(names, subtrees).await,
            (Datastore::Candidate, true) => self.materialize(&ds.candidate).await,
            (Datastore::Candidate, false) => {
                self.load_candidate(&ds.candidate, names, subtrees).await
            }
        };
        let base = match base {
            Ok(b) => b,
            Err(e) => return vec![e],
        };
        let mut new = base.clone();
        let mut errors = edit(&mut new);
        if !errors.is_empty() && !keep_partial {
            return errors;
        }
        if test_only {
            // test-only tests what a set would: on running, the model checks
            // the transaction (the candidate is checked whole by validate
            // and commit).
            if target == Datastore::Running {
                let changes = base.diff(&new);
                if !changes.is_empty() {
                    let tx = Transaction {
                        principal: Self::principal(user),
                        changes,
                    };
                    if let Err(e) = self.model.validate(&tx).await {
                        errors.push(tx_error(&e, &tx.changes, &base, &new));
                    }
                }
            }
            return errors;
        }
        match target {
            Datastore::Running => match self.apply_running(Some(me), user, &base, &new).await {
                Ok(0) => {}
                Ok(n) => info!(session = me, changes = n, "running edited"),
                Err(e) => errors.push(e),
            },
            Datastore::Candidate => {
                if touched.full {
                    ds.candidate = Candidate {
                        overlay: BTreeMap::new(),
                        full: Some(new),
                    };
                } else {
                    ds.candidate.record(&base, new);
                }
                ds.candidate_modified_by.insert(me);
            }
        }
        errors
    }

    /// Replaces the candidate (copy-config / delete-config).
    pub async fn set_candidate(&self, me: u32, store: ConfigStore) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        Self::check_writable(&ds, Datastore::Candidate, me)?;
        ds.candidate = Candidate {
            overlay: BTreeMap::new(),
            full: Some(store),
        };
        ds.candidate_modified_by.insert(me);
        Ok(())
    }

    pub async fn discard_changes(&self, me: u32) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        Self::check_writable(&ds, Datastore::Candidate, me)?;
        ds.candidate = Candidate::default();
        ds.candidate_modified_by.clear();
        Ok(())
    }

    /// `<commit>`, including confirmed commit (RFC 6241 §8.3, §8.4).
    pub async fn commit(&self, me: u32, user: &str, opts: CommitOptions) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        Self::check_writable(&ds, Datastore::Running, me)?;
        Self::check_writable(&ds, Datastore::Candidate, me)?;
        match &ds.pending {
            Some(p) => match (&p.persist, &opts.persist_id) {
                (Some(pid), Some(given)) if pid == given => {}
                (Some(_), Some(_)) => {
                    return Err(RpcError::bad_element(
                        Tag::InvalidValue,
                        "persist-id",
                        "persist-id does not match the pending confirmed commit",
                    ));
                }
                (Some(_), None) if p.session != me => {
                    return Err(RpcError::protocol(
                        Tag::InUse,
                        "a persistent confirmed commit is pending; give its persist-id",
                    ));
                }
                (None, _) if p.session != me => {
                    return Err(RpcError::protocol(
                        Tag::InUse,
                        format!("session {} has a confirmed commit pending", p.session),
                    )
                    .with_info("session-id", p.session.to_string()));
                }
                _ => {}
            },
            None if opts.persist_id.is_some() => {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    "persist-id",
                    "no confirmed commit is pending",
                ));
            }
            None => {}
        }
        // Only what the candidate changed is read back and compared.
        let (from, to, names) = match &ds.candidate.full {
            Some(full) => (self.running().await?, full.clone(), None),
            None => {
                let names: Vec<ObjectName> = ds.candidate.overlay.keys().cloned().collect();
                let from = self.load_running(&names, &[]).await?;
                let mut to = from.clone();
                ds.candidate.apply_to(&mut to, |_| true);
                (from, to, Some(names.into_iter().collect()))
            }
        };
        let n = self.apply_running(Some(me), user, &from, &to).await?;
        ds.candidate = Candidate::default();
        ds.candidate_modified_by.clear();
        if opts.confirmed {
            let timeout = opts.timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT);
            let before = Snapshot { store: from, names };
            let who = self.who(me);
            let (backup, event) = match ds.pending.take() {
                Some(p) => {
                    p.timer.abort();
                    (Snapshot::merge(p.backup, before), "extend")
                }
                None => (before, "start"),
            };
            self.events.emit(events::confirmed_commit(
                &who,
                event,
                Some(timeout.as_secs()),
            ));
            ds.generation += 1;
            let generation = ds.generation;
            let me_weak = self.me.clone();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some(shared) = me_weak.upgrade() {
                    shared.expire(generation).await;
                }
            });
            ds.pending = Some(PendingCommit {
                backup,
                session: me,
                who,
                persist: opts.persist.clone(),
                generation,
                timer,
            });
            info!(
                session = me,
                changes = n,
                timeout_s = timeout.as_secs(),
                "confirmed commit: rolls back unless confirmed"
            );
        } else {
            if let Some(p) = ds.pending.take() {
                p.timer.abort();
                self.events
                    .emit(events::confirmed_commit(&self.who(me), "complete", None));
                info!(session = me, "confirmed commit confirmed");
            }
            info!(session = me, changes = n, "committed");
        }
        Ok(())
    }

    /// `<cancel-commit>` (RFC 6241 §8.4.4.1).
    pub async fn cancel_commit(&self, me: u32, persist_id: Option<String>) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        let Some(p) = &ds.pending else {
            return Err(RpcError::protocol(
                Tag::OperationFailed,
                "no confirmed commit is pending",
            ));
        };
        match (&p.persist, &persist_id) {
            (Some(pid), Some(given)) if pid == given => {}
            (Some(_), _) => {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    "persist-id",
                    "persist-id does not match the pending confirmed commit",
                ));
            }
            (None, Some(_)) => {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    "persist-id",
                    "the pending confirmed commit has no persist-id",
                ));
            }
            (None, None) if p.session != me => {
                return Err(RpcError::protocol(
                    Tag::InUse,
                    format!("the confirmed commit belongs to session {}", p.session),
                ));
            }
            (None, None) => {}
        }
        self.rollback(&mut ds, "cancel").await
    }

    /// The confirm timer fired.
    async fn expire(&self, generation: u64) {
        let mut ds = self.ds.lock().await;
        if ds.pending.as_ref().map(|p| p.generation) != Some(generation) {
            return;
        }
        warn!("confirmed commit not confirmed in time: rolling back");
        if let Err(e) = self.rollback(&mut ds, "timeout").await {
            warn!(error = %e.message, "rollback of the confirmed commit failed");
        }
    }

    async fn rollback(&self, ds: &mut DsState, event: &str) -> Result<(), RpcError> {
        let Some(p) = ds.pending.take() else {
            return Ok(());
        };
        // The timer's own task runs the rollback on a timeout: aborting it
        // would cancel this very rollback at its next await.
        if tokio::task::try_id() != Some(p.timer.id()) {
            p.timer.abort();
        }
        self.events
            .emit(events::confirmed_commit(&p.who, event, None));
        let current = match &p.backup.names {
            None => self.running().await?,
            Some(names) => {
                let names: Vec<ObjectName> = names.iter().cloned().collect();
                self.load_running(&names, &[]).await?
            }
        };
        let n = self
            .apply_running(None, "confirmed-commit-rollback", &current, &p.backup.store)
            .await?;
        ds.candidate = Candidate::default();
        ds.candidate_modified_by.clear();
        warn!(
            changes = n,
            event, "confirmed commit rolled back: running is as before it"
        );
        Ok(())
    }

    /// At shutdown: a confirmed commit nobody can confirm any more is
    /// rolled back now (as RFC 6241 §8.4 wants after a restart), and its
    /// timer task stops.
    pub async fn shutdown(&self) {
        let mut ds = self.ds.lock().await;
        if ds.pending.is_some() {
            warn!("shutting down with an unconfirmed commit: rolling back");
            if let Err(e) = self.rollback(&mut ds, "cancel").await {
                warn!(error = %e.message, "rollback of the confirmed commit failed");
            }
        }
    }

    /// Whether a confirmed commit is pending (tests, monitoring).
    pub async fn commit_pending(&self) -> bool {
        self.ds.lock().await.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::Value;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::port::InformationModel;

    fn shared() -> (Arc<halyard_cluster_model::memory::MemoryModel>, Arc<Shared>) {
        let m = Arc::new(demo_element());
        let s = Shared::new(
            m.clone(),
            Arc::new(Stats::default()),
            SchemaStore,
            crate::Limits::default(),
            Duration::from_secs(60),
            None,
        );
        (m, s)
    }

    fn fan1() -> Touched {
        Touched {
            names: vec![ObjectName::parse("ne=1/shelf=1/fan=1").unwrap()],
            ..Touched::default()
        }
    }

    fn lock_fan(c: &mut ConfigStore) -> Vec<RpcError> {
        let n = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
        let e = c.entries.get_mut(&n).unwrap();
        let (i, _) = e.class.attribute("AdminState").unwrap();
        e.values[i] = Value::Enum(1);
        Vec::new()
    }

    async fn fan_admin(m: &halyard_cluster_model::memory::MemoryModel) -> Value {
        m.get(&ObjectName::parse("ne=1/shelf=1/fan=1").unwrap())
            .await
            .unwrap()
            .get("AdminState")
            .unwrap()
            .clone()
    }

    #[tokio::test(start_paused = true)]
    async fn confirmed_commit_rolls_back_after_its_timeout() {
        let (m, s) = shared();
        let mut events = s.events.subscribe();
        let before = fan_admin(&m).await;
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &fan1(),
                lock_fan
            )
            .await
            .is_empty()
        );
        s.commit(
            1,
            "u",
            CommitOptions {
                confirmed: true,
                timeout: Some(Duration::from_secs(30)),
                ..CommitOptions::default()
            },
        )
        .await
        .unwrap();
        let change = events.try_recv().unwrap().event.to_xml();
        assert!(change.contains("netconf-config-change"), "{change}");
        assert!(
            change.contains("<operation>replace</operation>"),
            "{change}"
        );
        let start = events.try_recv().unwrap().event.to_xml();
        assert!(
            start.contains("<confirm-event>start</confirm-event><timeout>30</timeout>"),
            "{start}"
        );
        assert_eq!(fan_admin(&m).await, Value::Enum(1));
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(fan_admin(&m).await, Value::Enum(1));
        assert!(s.commit_pending().await);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(fan_admin(&m).await, before);
        assert!(!s.commit_pending().await);
        let timeout = events.try_recv().unwrap().event.to_xml();
        assert!(
            timeout.contains("<netconf-confirmed-commit xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-notifications\"><confirm-event>timeout</confirm-event>"),
            "{timeout}"
        );
        let rollback = events.try_recv().unwrap().event.to_xml();
        assert!(
            rollback.contains("<changed-by><server/></changed-by>"),
            "{rollback}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_extended_confirmed_commit_rolls_back_to_the_first_state() {
        let (m, s) = shared();
        let before = fan_admin(&m).await;
        let confirmed = CommitOptions {
            confirmed: true,
            timeout: Some(Duration::from_secs(10)),
            ..CommitOptions::default()
        };
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &fan1(),
                lock_fan
            )
            .await
            .is_empty()
        );
        s.commit(1, "u", confirmed.clone()).await.unwrap();
        // The second confirmed commit touches another entry and extends the timer.
        let psu = ObjectName::parse("ne=1/shelf=1/psu=1").unwrap();
        let touched = Touched {
            names: vec![psu.clone()],
            ..Touched::default()
        };
        let errs = s
            .edit(1, "u", Datastore::Candidate, false, false, &touched, |c| {
                let e = c.entries.get_mut(&psu).unwrap();
                let (i, _) = e.class.attribute("AdminState").unwrap();
                e.values[i] = Value::Enum(1);
                Vec::new()
            })
            .await;
        assert!(errs.is_empty());
        tokio::time::sleep(Duration::from_secs(8)).await;
        s.commit(1, "u", confirmed).await.unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        // 16 s after the first commit: the extension keeps both.
        assert_eq!(fan_admin(&m).await, Value::Enum(1));
        let psu_admin = |m: Arc<halyard_cluster_model::memory::MemoryModel>| async move {
            m.get(&ObjectName::parse("ne=1/shelf=1/psu=1").unwrap())
                .await
                .unwrap()
                .get("AdminState")
                .unwrap()
                .clone()
        };
        assert_eq!(psu_admin(m.clone()).await, Value::Enum(1));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(fan_admin(&m).await, before);
        assert_eq!(psu_admin(m.clone()).await, before);
    }

    #[test]
    fn snapshots_merge_keeping_the_earliest_values() {
        let n = |s: &str| ObjectName::parse(s).unwrap();
        let class = halyard_cluster_model::SCHEMA.class("Fan").unwrap();
        let entry = |v: u32| ConfigEntry {
            class,
            values: class
                .attributes
                .iter()
                .map(|a| {
                    if a.writable {
                        Value::Enum(v)
                    } else {
                        Value::Absent
                    }
                })
                .collect(),
        };
        let store = |items: &[(&str, u32)]| ConfigStore {
            entries: items.iter().map(|(k, v)| (n(k), entry(*v))).collect(),
        };
        let names = |items: &[&str]| Some(items.iter().map(|k| n(k)).collect());
        // a existed (1), b did not exist before the first commit.
        let old = Snapshot {
            store: store(&[("ne=1/fan=a", 1)]),
            names: names(&["ne=1/fan=a", "ne=1/fan=b"]),
        };
        let new = Snapshot {
            store: store(&[("ne=1/fan=a", 2), ("ne=1/fan=b", 2), ("ne=1/fan=c", 2)]),
            names: names(&["ne=1/fan=a", "ne=1/fan=b", "ne=1/fan=c"]),
        };
        let m = Snapshot::merge(old.clone(), new);
        assert_eq!(m.store, store(&[("ne=1/fan=a", 1), ("ne=1/fan=c", 2)]));
        assert_eq!(m.names.unwrap().len(), 3);
        // With a full snapshot after: the earlier partial values are put back.
        let full = Snapshot {
            store: store(&[("ne=1/fan=a", 2), ("ne=1/fan=b", 2), ("ne=1/fan=z", 3)]),
            names: None,
        };
        let m = Snapshot::merge(old, full);
        assert_eq!(m.store, store(&[("ne=1/fan=a", 1), ("ne=1/fan=z", 3)]));
        assert!(m.names.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn confirming_commit_keeps_the_change() {
        let (m, s) = shared();
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &fan1(),
                lock_fan
            )
            .await
            .is_empty()
        );
        let confirmed = CommitOptions {
            confirmed: true,
            timeout: Some(Duration::from_secs(10)),
            persist: Some("p1".into()),
            ..CommitOptions::default()
        };
        s.commit(1, "u", confirmed).await.unwrap();
        // Another session confirms with the persist-id; the first one ending does not roll back.
        s.unregister(1).await;
        let wrong = CommitOptions {
            persist_id: Some("nope".into()),
            ..CommitOptions::default()
        };
        assert_eq!(
            s.commit(2, "u", wrong).await.unwrap_err().tag,
            Tag::InvalidValue
        );
        let right = CommitOptions {
            persist_id: Some("p1".into()),
            ..CommitOptions::default()
        };
        s.commit(2, "u", right).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(fan_admin(&m).await, Value::Enum(1));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_commit_and_session_end_roll_back() {
        let (m, s) = shared();
        let before = fan_admin(&m).await;
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &fan1(),
                lock_fan
            )
            .await
            .is_empty()
        );
        let c = CommitOptions {
            confirmed: true,
            ..CommitOptions::default()
        };
        s.commit(1, "u", c.clone()).await.unwrap();
        assert_eq!(s.cancel_commit(2, None).await.unwrap_err().tag, Tag::InUse);
        s.cancel_commit(1, None).await.unwrap();
        assert_eq!(fan_admin(&m).await, before);
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &fan1(),
                lock_fan
            )
            .await
            .is_empty()
        );
        s.commit(1, "u", c).await.unwrap();
        assert_eq!(fan_admin(&m).await, Value::Enum(1));
        s.unregister(1).await;
        assert_eq!(fan_admin(&m).await, before);
    }

    #[tokio::test]
    async fn shutdown_rolls_back_an_unconfirmed_commit() {
        let (m, s) = shared();
        let before = fan_admin(&m).await;
        let touched = fan1();
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &touched,
                lock_fan
            )
            .await
            .is_empty()
        );
        let c = CommitOptions {
            confirmed: true,
            persist: Some("p".into()),
            ..CommitOptions::default()
        };
        s.commit(1, "u", c).await.unwrap();
        assert_eq!(fan_admin(&m).await, Value::Enum(1));
        s.shutdown().await;
        assert_eq!(fan_admin(&m).await, before);
        assert!(!s.commit_pending().await);
    }

    #[tokio::test]
    async fn locks() {
        let (_, s) = shared();
        s.lock(1, Datastore::Running).await.unwrap();
        let e = s.lock(2, Datastore::Running).await.unwrap_err();
        assert_eq!(e.tag, Tag::LockDenied);
        assert_eq!(e.info, vec![("session-id", "1".to_string())]);
        let e = s
            .edit(2, "u", Datastore::Running, false, false, &fan1(), lock_fan)
            .await;
        assert_eq!(e[0].tag, Tag::InUse);
        assert_eq!(
            s.unlock(2, Datastore::Running).await.unwrap_err().tag,
            Tag::OperationFailed
        );
        // The candidate with another session's changes cannot be locked.
        assert!(
            s.edit(
                1,
                "u",
                Datastore::Candidate,
                false,
                false,
                &fan1(),
                lock_fan
            )
            .await
            .is_empty()
        );
        let e = s.lock(2, Datastore::Candidate).await.unwrap_err();
        assert_eq!(e.tag, Tag::LockDenied);
        // Ending session 1 releases its lock; its candidate edits stay until discarded.
        s.unregister(1).await;
        s.lock(2, Datastore::Running).await.unwrap();
        assert_eq!(
            s.lock(2, Datastore::Candidate).await.unwrap_err().tag,
            Tag::LockDenied
        );
        s.discard_changes(2).await.unwrap();
        s.lock(2, Datastore::Candidate).await.unwrap();
        // kill-session releases the victim's locks at once.
        let (a, _) = s.register("a", "h");
        let (b, mut killed) = s.register("b", "h");
        s.unlock(2, Datastore::Running).await.unwrap();
        s.lock(b, Datastore::Running).await.unwrap();
        s.kill_session(a, b).await.unwrap();
        assert_eq!(*killed.borrow_and_update(), Some(a));
        s.lock(a, Datastore::Running).await.unwrap();
        assert_eq!(
            s.kill_session(a, a).await.unwrap_err().tag,
            Tag::InvalidValue
        );
        assert_eq!(
            s.kill_session(a, 999).await.unwrap_err().tag,
            Tag::InvalidValue
        );
    }
}
