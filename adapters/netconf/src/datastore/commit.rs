//! Commit and confirmed commit (RFC 6241 §8.3, §8.4): snapshot, timer, rollback.

use std::collections::BTreeSet;

use halyard_cluster_model::ObjectName;
use tracing::{info, warn};

use super::{
    Candidate, CommitOptions, DEFAULT_CONFIRM_TIMEOUT, Datastore, DsState, PendingCommit, Shared,
};
use crate::data::ConfigStore;
use crate::error::{RpcError, Tag};
use crate::events;

/// Running as it was before a confirmed commit, for what the commit touched.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
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

impl Shared {
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

    pub(super) async fn rollback(&self, ds: &mut DsState, event: &str) -> Result<(), RpcError> {
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
            .apply_running(
                None,
                crate::datastore::ROLLBACK_USER,
                &current,
                &p.backup.store,
            )
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
    use crate::data::ConfigEntry;
    use halyard_cluster_model::Value;

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
}
