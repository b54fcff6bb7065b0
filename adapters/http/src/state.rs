//! What every request handler can reach: the model, authentication,
//! limits, metrics, the jobs kept for polling, the rate limiter. The
//! server builds it; the API and the console read it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use halyard_cluster_model::port::{InformationModel, JobStatus};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::config::Limits;
use crate::error::ApiError;
use crate::metrics::HttpMetrics;
use crate::repr;

/// Jobs kept for polling after their operation was invoked.
const JOBS_KEPT: usize = 1024;
/// Client addresses tracked by the rate limiter.
pub(crate) const RATE_CLIENTS: usize = 10_000;

#[derive(Debug)]
pub(crate) struct JobEntry {
    pub operation: String,
    pub target: String,
    pub status: watch::Receiver<JobStatus>,
}

#[derive(Debug, Default)]
pub(crate) struct Jobs {
    map: HashMap<String, JobEntry>,
    order: VecDeque<String>,
}

impl Jobs {
    pub fn insert(&mut self, job: String, entry: JobEntry) {
        if self.map.insert(job.clone(), entry).is_none() {
            self.order.push_back(job);
        }
        while self.order.len() > JOBS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// A receiver of the job's progress, to wait for its next change.
    pub fn watch(&self, job: &str) -> Option<watch::Receiver<JobStatus>> {
        self.map.get(job).map(|e| e.status.clone())
    }

    pub fn view(&self, job: &str) -> Option<repr::JobView> {
        self.map.get(job).map(|e| repr::JobView {
            job: job.to_string(),
            operation: e.operation.clone(),
            target: e.target.clone(),
            status: e.status.borrow().clone(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Everything a request handler can reach.
pub(crate) struct AppState {
    pub model: Arc<dyn InformationModel>,
    pub auth: Authenticator,
    /// The access model as last read (the read rules).
    pub policy: halyard_cluster_model::access::PolicyCache,
    pub limits: Limits,
    pub metrics: HttpMetrics,
    pub registry: Registry,
    /// The model's series kept between scrapes (one scrape refreshes it
    /// at a time).
    pub exposition: tokio::sync::Mutex<crate::metrics::ModelExposition>,
    /// The exposition as of the last refresh (see `refresh_exposition`).
    pub sealed: Mutex<Option<Arc<crate::metrics::Sealed>>>,
    /// When `/metrics` was last asked for (ms since `started`; 0: never).
    pub last_scrape: std::sync::atomic::AtomicU64,
    /// When the face started (for `last_scrape`).
    pub up: Instant,
    pub jobs: Mutex<Jobs>,
    pub shutdown: watch::Receiver<bool>,
    pub(crate) buckets: Mutex<HashMap<IpAddr, Bucket>>,
    pub release_dir: Option<std::path::PathBuf>,
    pub auth_guard: Arc<halyard_cluster_model::guard::FailureGuard>,
    /// The span the server was bound in (the agent's, with the node's
    /// name): the parent of every request's span, since the connections'
    /// tasks run in none.
    pub span: tracing::Span,
    /// When the face started: an entity's state change time until it has one.
    pub started: halyard_cluster_model::Timestamp,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Brings `/metrics`' kept exposition up to date with the model and
    /// seals it for scrapes. `None` if another refresh holds it and
    /// `wait` is false.
    pub async fn refresh_exposition(
        &self,
        wait: bool,
    ) -> Result<Option<Arc<crate::metrics::Sealed>>, halyard_cluster_model::port::ModelError> {
        let mut model = if wait {
            self.exposition.lock().await
        } else {
            match self.exposition.try_lock() {
                Ok(m) => m,
                Err(_) => return Ok(None),
            }
        };
        let done = model
            .refresh(
                self.model.as_ref(),
                self.limits.page_size,
                self.limits.request_timeout,
            )
            .await?;
        let sealed = model.sealed();
        drop(model);
        self.metrics.scrape_objects.set(done.objects as i64);
        self.metrics.scrape_rendered.set(done.rendered as i64);
        tracing::debug!(
            reading_ms = done.reading.as_millis() as u64,
            rendering_ms = done.rendering.as_millis() as u64,
            rendered = done.rendered,
            "exposition refreshed"
        );
        *self.sealed.lock().unwrap_or_else(|e| e.into_inner()) = Some(sealed.clone());
        Ok(Some(sealed))
    }

    /// Milliseconds since the face started (at least 1).
    pub fn uptime_ms(&self) -> u64 {
        (self.up.elapsed().as_millis() as u64).max(1)
    }

    /// Runs a model call under the request deadline.
    pub async fn call<T, E: Into<ApiError>>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.limits.request_timeout, fut).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(ApiError::timeout()),
        }
    }

    pub fn lock_jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Token bucket per client address; `false` when the client must wait.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let rate = f64::from(self.limits.requests_per_second.max(1));
        let burst = f64::from(self.limits.burst.max(1));
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() >= RATE_CLIENTS && !b.contains_key(&ip) {
            // Forget clients whose buckets are full again.
            b.retain(|_, k| k.tokens + now.duration_since(k.at).as_secs_f64() * rate < burst);
        }
        let k = b.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        k.tokens = (k.tokens + now.duration_since(k.at).as_secs_f64() * rate).min(burst);
        k.at = now;
        if k.tokens >= 1.0 {
            k.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(crate) type Shared = Arc<AppState>;
