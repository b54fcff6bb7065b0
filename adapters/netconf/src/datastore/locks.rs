//! Datastore locks (RFC 6241 §7.5, §7.6) and the check that a write is allowed.

use halyard_cluster_model::Timestamp;
use tracing::info;

use super::{Candidate, Datastore, DsState, Shared};
use crate::error::{RpcError, Tag};

fn in_use(ds: Datastore, holder: u32) -> RpcError {
    RpcError::protocol(
        Tag::InUse,
        format!("the {} datastore is locked by session {holder}", ds.name()),
    )
    .with_info("session-id", holder.to_string())
}

impl Shared {
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
    pub(super) fn check_writable(ds: &DsState, target: Datastore, me: u32) -> Result<(), RpcError> {
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
}
