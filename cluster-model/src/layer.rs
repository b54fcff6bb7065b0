//! One layer over the port for every face, so no face writes its own:
//! each call runs in a `model` span naming the face and the call, its
//! duration goes to the face's histogram for that call, and reads (which
//! change nothing, so may be abandoned) have a deadline. Writes and
//! operations are never cut short: a commit half done is worse than a
//! slow one, and each face bounds the request around them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use crate::latency::LatencyHistogram;
use crate::meta::ClassMeta;
use crate::name::ObjectName;
use crate::port::*;
use crate::value::{Timestamp, Value};

/// The port's calls, as the layer counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Get,
    GetByIndex,
    Query,
    Walk,
    Transact,
    Validate,
    Audit,
    Invoke,
    History,
}

impl Call {
    pub const ALL: [Call; 9] = [
        Call::Get,
        Call::GetByIndex,
        Call::Query,
        Call::Walk,
        Call::Transact,
        Call::Validate,
        Call::Audit,
        Call::Invoke,
        Call::History,
    ];

    /// The label on metrics and spans.
    pub fn name(self) -> &'static str {
        match self {
            Call::Get => "get",
            Call::GetByIndex => "get-by-index",
            Call::Query => "query",
            Call::Walk => "walk",
            Call::Transact => "transact",
            Call::Validate => "validate",
            Call::Audit => "audit",
            Call::Invoke => "invoke",
            Call::History => "history",
        }
    }
}

/// One face's figures of its model calls.
#[derive(Debug, Default)]
pub struct CallStats {
    latency: [LatencyHistogram; Call::ALL.len()],
    timeouts: AtomicU64,
}

impl CallStats {
    pub fn latency(&self, call: Call) -> &LatencyHistogram {
        &self.latency[call as usize]
    }

    /// Reads abandoned at their deadline.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
}

/// The port as one face sees it.
#[derive(Clone)]
pub struct Traced {
    base: Arc<dyn InformationModel>,
    face: &'static str,
    read_deadline: Option<Duration>,
    stats: Arc<CallStats>,
}

impl std::fmt::Debug for Traced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traced")
            .field("face", &self.face)
            .field("read_deadline", &self.read_deadline)
            .finish_non_exhaustive()
    }
}

impl Traced {
    pub fn new(base: Arc<dyn InformationModel>, face: &'static str) -> Self {
        Self {
            base,
            face,
            read_deadline: None,
            stats: Arc::default(),
        }
    }

    /// Reads taking longer fail with [`ModelError::Timeout`].
    pub fn with_read_deadline(mut self, deadline: Duration) -> Self {
        self.read_deadline = Some(deadline);
        self
    }

    pub fn stats(&self) -> Arc<CallStats> {
        self.stats.clone()
    }

    async fn timed<T>(&self, call: Call, fut: impl Future<Output = T>) -> T {
        let span = tracing::debug_span!("model", face = self.face, call = call.name());
        let began = Instant::now();
        let out = fut.instrument(span).await;
        self.stats.latency(call).observe(began.elapsed());
        out
    }

    async fn read<T>(
        &self,
        call: Call,
        fut: impl Future<Output = Result<T, ModelError>>,
    ) -> Result<T, ModelError> {
        let Some(deadline) = self.read_deadline else {
            return self.timed(call, fut).await;
        };
        match tokio::time::timeout(deadline, self.timed(call, fut)).await {
            Ok(r) => r,
            Err(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                // The abandoned call is not counted in the histogram.
                tracing::debug!(
                    face = self.face,
                    call = call.name(),
                    ?deadline,
                    "model read timed out"
                );
                Err(ModelError::Timeout)
            }
        }
    }
}

#[async_trait]
impl Forward for Traced {
    fn base(&self) -> &dyn InformationModel {
        &*self.base
    }

    async fn get(&self, name: &ObjectName) -> Result<ManagedObject, ModelError> {
        self.read(Call::Get, self.base.get(name)).await
    }
    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
        self.read(Call::GetByIndex, self.base.get_by_index(index))
            .await
    }
    async fn query(&self, query: &Query) -> Result<Vec<ManagedObject>, ModelError> {
        self.read(Call::Query, self.base.query(query)).await
    }
    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.read(Call::Walk, self.base.walk(class, after, limit))
            .await
    }
    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<ChangePage>, ModelError> {
        self.read(Call::Walk, self.base.changed(since, after, limit))
            .await
    }
    async fn transact(&self, tx: Transaction) -> Result<(), TxError> {
        self.timed(Call::Transact, self.base.transact(tx)).await
    }
    async fn validate(&self, tx: &Transaction) -> Result<(), TxError> {
        self.timed(Call::Validate, self.base.validate(tx)).await
    }
    async fn audit(&self, principal: &Principal, event: &str, result: &str) {
        self.timed(Call::Audit, self.base.audit(principal, event, result))
            .await
    }
    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError> {
        self.timed(
            Call::Invoke,
            self.base.invoke(target, operation, args, principal),
        )
        .await
    }
    async fn history(
        &self,
        filter: &NotificationFilter,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Vec<Arc<Notification>>, ModelError> {
        self.read(Call::History, self.base.history(filter, since, until))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::demo_element;

    /// A model whose `walk` never answers: only the layer's deadline ends it.
    struct Stuck(Arc<crate::memory::MemoryModel>);

    #[async_trait]
    impl Forward for Stuck {
        fn base(&self) -> &dyn InformationModel {
            &*self.0
        }
        async fn walk(
            &self,
            _class: Option<&'static ClassMeta>,
            _after: u32,
            _limit: usize,
        ) -> Result<Vec<ManagedObject>, ModelError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reads_meet_the_deadline_and_every_call_is_timed() {
        let model = Arc::new(demo_element());
        let t = Traced::new(Arc::new(Stuck(model.clone())), "test")
            .with_read_deadline(Duration::from_secs(2));
        // The double overrides walk only: get reaches the memory model.
        let root = InformationModel::walk(&t, None, 0, 1).await;
        assert!(matches!(root, Err(ModelError::Timeout)), "{root:?}");
        assert_eq!(t.stats().timeouts(), 1);
        let first = model.get_by_index(1).await.unwrap();
        let got = InformationModel::get(&t, &first.name).await.unwrap();
        assert_eq!(got.name, first.name);
        assert_eq!(t.stats().latency(Call::Get).snapshot().1, 1);
        assert_eq!(t.stats().latency(Call::Walk).snapshot().1, 0);
    }
}
