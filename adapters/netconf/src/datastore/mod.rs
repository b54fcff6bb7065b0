//! The datastores shared by every session: running (the model itself),
//! candidate (a copy with pending edits), locks, commit and confirmed
//! commit with its rollback timer, and the session registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use halyard_cluster_model::Timestamp;
use halyard_cluster_model::port::InformationModel;
use tokio::sync::{Mutex, watch};
use tracing::warn;

use crate::events::{EventLog, Who};
use crate::monitoring::{SchemaStore, SessionInfo, Stats};

mod candidate;
mod commit;
mod locks;
mod sessions;
#[cfg(test)]
mod tests;

use candidate::Candidate;
use commit::Snapshot;

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

/// Who rolls back a confirmed commit that was not confirmed: the server.
pub const ROLLBACK_USER: &str = "confirmed-commit-rollback";

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
    /// ietf-hardware `last-change`.
    pub hardware_changed: crate::hardware::LastChange,
    /// The agent's system-restart / system-shutdown, when it takes them.
    pub system:
        std::sync::OnceLock<tokio::sync::mpsc::Sender<halyard_cluster_model::port::SystemAction>>,
    /// The access model as last read (RPC and read checks).
    pub policy: halyard_cluster_model::access::PolicyCache,
    /// The model's users (logins, and each RPC of a model user's session).
    pub model_users: halyard_cluster_model::users::UserCache,
    /// Each user's role (its group in the access model): the
    /// configuration's users, and the model's as they log in.
    roles:
        std::sync::RwLock<std::collections::HashMap<String, halyard_cluster_model::access::Role>>,
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
            hardware_changed: Default::default(),
            system: Default::default(),
            roles: Default::default(),
            policy: Default::default(),
            model_users: Default::default(),
            ds: Mutex::new(DsState::default()),
            sessions: std::sync::Mutex::new(BTreeMap::new()),
            next_session: std::sync::atomic::AtomicU32::new(1),
            me: me.clone(),
        })
    }
}
