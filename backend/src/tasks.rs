//! Owned tasks: every task the core (or the agent) spawns belongs to a
//! [`Tasks`] set that a reaper watches and a shutdown joins. A task that
//! panics is logged at ERROR with what it was doing, counted
//! ([`panics`], shown in /metrics by the agent), and its `on_panic`
//! handler runs, so the owner treats it as a failure of what the task
//! served (a component's supervisor: the component) instead of the task
//! vanishing unnoticed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};

/// What runs when a task panics (given the panic message); awaited by the
/// reaper, never by the task's owner.
pub type OnPanic = Box<dyn FnOnce(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Tasks that panicked in this process since it started.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

struct Meta {
    what: String,
    on_panic: Option<OnPanic>,
}

#[derive(Default)]
struct Inner {
    set: Mutex<JoinSet<()>>,
    meta: Mutex<HashMap<Id, Meta>>,
    added: Notify,
}

/// A set of owned tasks. Cheap to clone (the clones share the set).
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").field("len", &self.len()).finish()
    }
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `fut`, described by `what` (for the log if it panics).
    pub fn spawn(&self, what: impl Into<String>, fut: impl Future<Output = ()> + Send + 'static) {
        self.insert(what.into(), None, fut);
    }

    /// Spawns `fut`; if it panics, `on_panic` runs with the message.
    pub fn spawn_or<F, H>(
        &self,
        what: impl Into<String>,
        fut: impl Future<Output = ()> + Send + 'static,
        on_panic: F,
    ) where
        F: FnOnce(String) -> H + Send + 'static,
        H: Future<Output = ()> + Send + 'static,
    {
        let handler: OnPanic = Box::new(move |m| Box::pin(on_panic(m)));
        self.insert(what.into(), Some(handler), fut);
    }

    fn insert(
        &self,
        what: String,
        on_panic: Option<OnPanic>,
        fut: impl Future<Output = ()> + Send + 'static,
    ) {
        // The meta lock is held across the spawn, so the reaper never sees
        // a finished task before its description.
        let mut meta = self.inner.meta.lock().expect("tasks meta");
        let id = self.inner.set.lock().expect("task set").spawn(fut).id();
        meta.insert(id, Meta { what, on_panic });
        drop(meta);
        self.inner.added.notify_one();
    }

    pub fn len(&self) -> usize {
        self.inner.set.lock().expect("task set").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reaps finished tasks for ever: a panic is logged, counted and
    /// handed to its handler. Run it beside the owner (it ends when
    /// dropped).
    pub async fn reap(&self) {
        loop {
            let next = std::future::poll_fn(|cx| {
                self.inner
                    .set
                    .lock()
                    .expect("task set")
                    .poll_join_next_with_id(cx)
            })
            .await;
            match next {
                None => self.inner.added.notified().await,
                Some(Ok((id, ()))) => {
                    self.inner.meta.lock().expect("tasks meta").remove(&id);
                }
                Some(Err(e)) => {
                    let meta = self.inner.meta.lock().expect("tasks meta").remove(&e.id());
                    if !e.is_panic() {
                        continue;
                    }
                    let message = panic_message(e.into_panic());
                    PANICS.fetch_add(1, Ordering::Relaxed);
                    let what = meta.as_ref().map_or("a task", |m| m.what.as_str());
                    tracing::error!(task = %what, panic = %message, "task panicked");
                    if let Some(handler) = meta.and_then(|m| m.on_panic) {
                        handler(message).await;
                    }
                }
            }
        }
    }

    /// Waits up to `grace` for every task to end, then aborts the rest and
    /// waits for them.
    pub async fn shutdown(&self, grace: Duration) {
        let all_done = async {
            loop {
                let next = std::future::poll_fn(|cx| {
                    self.inner.set.lock().expect("task set").poll_join_next(cx)
                })
                .await;
                if next.is_none() {
                    return;
                }
            }
        };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            self.inner.set.lock().expect("task set").abort_all();
            loop {
                let next = std::future::poll_fn(|cx| {
                    self.inner.set.lock().expect("task set").poll_join_next(cx)
                })
                .await;
                if next.is_none() {
                    break;
                }
            }
        }
        self.inner.meta.lock().expect("tasks meta").clear();
    }
}

/// For a task joined by its owner directly (a local JoinSet): a panic is
/// logged and counted like the reaper's.
pub fn note_panic<T>(joined: Result<T, tokio::task::JoinError>, what: &str) {
    if let Err(e) = joined
        && e.is_panic()
    {
        PANICS.fetch_add(1, Ordering::Relaxed);
        let message = panic_message(e.into_panic());
        tracing::error!(task = %what, panic = %message, "task panicked");
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "(not a string)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_counted_and_handled_and_others_run_on() {
        let tasks = Tasks::new();
        let reaper = tokio::spawn({
            let t = tasks.clone();
            async move { t.reap().await }
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let before = panics();
        tasks.spawn_or(
            "supervisor of c1",
            async { panic!("boom") },
            move |m| async move {
                let _ = tx.send(m);
            },
        );
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tasks.spawn("a well-behaved task", async move {
            let _ = done_tx.send(());
        });
        let message = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message, "boom");
        assert!(panics() > before);
        done_rx.await.unwrap();
        // Shutdown ends what is left.
        tasks.spawn("a task that never ends", std::future::pending());
        tasks.shutdown(Duration::from_millis(50)).await;
        assert!(tasks.is_empty());
        reaper.abort();
    }
}
