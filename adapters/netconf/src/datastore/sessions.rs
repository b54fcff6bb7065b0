//! The session registry: register, count, kill and end sessions (releasing what they held).

use std::collections::BTreeMap;

use halyard_cluster_model::Timestamp;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Candidate, Datastore, SessionEntry, Shared};
use crate::error::{RpcError, Tag};
use crate::events::Who;
use crate::monitoring::{SessionInfo, Stats};

impl Shared {
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
}
