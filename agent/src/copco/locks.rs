//! COpCo's lock table: the subtrees running jobs hold, here or (in a
//! cluster) committed through the log, with the conflict policy. It knows
//! nothing of the model, so the model can hold it.

use std::time::Duration;

use halyard_cluster_model::ObjectName;
use halyard_cluster_model::model::JobState;
use halyard_cluster_model::port::{JobHandle, JobStatus};
use tokio::sync::{Mutex, watch};

use super::machine::LockTable;

/// The handle of an operation that finished as it was asked for.
pub(crate) fn finished_job(job: ObjectName, detail: String) -> JobHandle {
    let (_tx, status) = watch::channel(JobStatus {
        state: JobState::Succeeded,
        steps_done: 1,
        steps_total: 1,
        detail,
        result: Some(0),
    });
    JobHandle { job, status }
}

pub use crate::config::ConflictPolicy;

/// Longest a queued command waits for its subtree.
pub const QUEUE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Copco {
    /// Subtrees locked by running jobs.
    held: Mutex<LockTable>,
    pub policy: ConflictPolicy,
    freed: tokio::sync::Notify,
    /// In a cluster the locks are the cluster's (committed through the
    /// log, so jobs on two nodes never conflict): the core and this node.
    pub(crate) cluster: std::sync::OnceLock<(halyard_backend::core::HaCore, String)>,
}

impl Copco {
    pub fn new(policy: ConflictPolicy) -> Self {
        Copco {
            policy,
            ..Copco::default()
        }
    }

    /// Whether `target` can be acted on: no running job holds a subtree
    /// that contains it or lies within it.
    pub async fn check_free(&self, target: &ObjectName) -> Result<(), String> {
        if let Some((core, _)) = self.cluster.get() {
            return match core.lock_holder(target.as_str()).await {
                Ok(None) => Ok(()),
                Ok(Some(reason)) => Err(reason),
                Err(e) => Err(e.to_string()),
            };
        }
        self.held.lock().await.holder(target).map_or(Ok(()), Err)
    }

    pub(super) async fn acquire(
        &self,
        target: &ObjectName,
        job: &ObjectName,
    ) -> Result<(), String> {
        if let Some((core, node)) = self.cluster.get() {
            let holder = halyard_backend::cluster::lock_holder(job.as_str(), node);
            return core
                .lock(target.as_str(), &holder)
                .await
                .map_err(|e| e.to_string());
        }
        self.held.lock().await.take(target, job)
    }

    pub(crate) async fn release(&self, job: &ObjectName) {
        if let Some((core, node)) = self.cluster.get() {
            let holder = halyard_backend::cluster::lock_holder(job.as_str(), node);
            if let Err(e) = core.unlock(&holder).await {
                tracing::warn!(error = %e, %job, "cluster lock not released");
            }
        }
        self.held.lock().await.release(job);
        self.freed.notify_waiters();
    }

    /// Waits until the subtree is free and takes it, at most `limit`.
    pub(crate) async fn acquire_queued(
        &self,
        target: &ObjectName,
        job: &ObjectName,
        limit: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        // Cluster locks are freed on other nodes too: look again shortly.
        if self.cluster.get().is_some() {
            loop {
                match self.acquire(target, job).await {
                    Ok(()) => return Ok(()),
                    Err(reason) if tokio::time::Instant::now() >= deadline => {
                        return Err(format!("{reason}; waited {} s", limit.as_secs()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        loop {
            // Registered before the check, so a release in between is not missed.
            let freed = self.freed.notified();
            match self.acquire(target, job).await {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(format!("{reason}; waited {} s", limit.as_secs()));
                    }
                }
            }
        }
    }
}
