//! The checkpoint service: the primary of a service instance writes its
//! state; secondaries read it. A new standby first receives the full state,
//! then every increment. In synchronous mode a write returns once every
//! standby acknowledged it (or a deadline passed); in asynchronous mode
//! at once. The agent keeps the state too, so a promoted standby (or a
//! restarted primary) always resumes from the last acknowledged write.
//!
//! A primary taking a service instance over *fences* it when it reads the
//! state: from then on only it may write, and the state it reads holds
//! every write accepted before. In a cluster the fence is a log entry, and
//! the state returned is the master's at that entry, not this replica's
//! (which may not have applied the last commits yet); an old primary's
//! write still on its way when the fence lands is refused, so it does not
//! count it. Without the fence, a timed switchover lost the write the old
//! primary made an instant before its step-down (seen by the chaos round:
//! a count went back by one).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// One checkpoint record pushed to a standby.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointPush {
    /// The whole state, sent first to a new standby.
    Full {
        seq: u64,
        entries: BTreeMap<String, String>,
    },
    /// One write.
    Increment {
        seq: u64,
        key: String,
        value: String,
    },
}

#[derive(Debug, Default)]
struct Store {
    seq: u64,
    entries: BTreeMap<String, String>,
    /// Standby component -> its push queue.
    standbys: HashMap<String, mpsc::Sender<CheckpointPush>>,
    /// (standby, seq) -> waiter of a synchronous write.
    waiting: HashMap<(String, u64), oneshot::Sender<()>>,
    /// The primary that fenced the service instance last: the only writer.
    owner: Option<String>,
}

impl Store {
    /// Whether `writer` may write: no fence yet, or its own (an empty
    /// writer is a write logged before fences existed).
    fn admits(&self, writer: &str) -> Result<(), CheckpointError> {
        match &self.owner {
            Some(o) if !writer.is_empty() && o != writer => {
                Err(CheckpointError::Superseded(o.clone()))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CheckpointService {
    stores: Arc<Mutex<HashMap<String, Store>>>,
    /// In a cluster, writes go through the consensus log: every node
    /// applies them in log order (see [`CheckpointService::apply_write`]),
    /// so a standby promoted by a later log entry has every earlier write.
    log: Option<halyard_consensus::Consensus>,
}

/// Why a write did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    SyncTimeout(#[from] SyncTimeout),
    /// Not committed by the cluster (no quorum before the deadline).
    #[error("checkpoint not committed: {0}")]
    NotCommitted(String),
    /// Another component took the service instance over (fenced it).
    #[error("checkpoint refused: {0} has taken the service instance over")]
    Superseded(String),
}

/// Standbys that did not acknowledge a synchronous write in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {seq} not acknowledged by {missing:?} in time")]
pub struct SyncTimeout {
    pub seq: u64,
    pub missing: Vec<String>,
}

impl CheckpointService {
    pub fn new() -> Self {
        Self::default()
    }

    /// A service whose writes are replicated through `log`.
    pub fn replicated(log: halyard_consensus::Consensus) -> Self {
        Self {
            log: Some(log),
            ..Self::default()
        }
    }

    /// Applies a committed write (cluster mode): stores it and pushes it to
    /// this node's standbys. Returns its sequence number, or why it is
    /// refused (the service instance was fenced by another writer).
    pub fn apply_write(
        &self,
        si: &str,
        writer: &str,
        key: &str,
        value: &str,
    ) -> Result<u64, CheckpointError> {
        let mut stores = self.lock();
        let store = stores.entry(si.to_string()).or_default();
        store.admits(writer)?;
        store.seq += 1;
        store.entries.insert(key.to_string(), value.to_string());
        for tx in store.standbys.values() {
            let _ = tx.try_send(CheckpointPush::Increment {
                seq: store.seq,
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        Ok(store.seq)
    }

    /// Applies a committed fence (cluster mode): `owner` is the only writer
    /// from here; returns the state as of this point of the log.
    pub fn apply_fence(&self, si: &str, owner: &str) -> (u64, BTreeMap<String, String>) {
        let mut stores = self.lock();
        let store = stores.entry(si.to_string()).or_default();
        store.owner = Some(owner.to_string());
        (store.seq, store.entries.clone())
    }

    /// Forgets every service instance's state (a snapshot is installed next).
    pub fn clear(&self) {
        for s in self.lock().values_mut() {
            s.seq = 0;
            s.entries.clear();
            s.owner = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Store>> {
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one entry of a service instance's state. With `sync`, waits
    /// until every standby acknowledged it, at most `deadline`. The writer
    /// itself is not waited for nor pushed to, even when it already stands
    /// by (an old primary whose timed step-down is not due yet).
    pub async fn write(
        &self,
        writer: &str,
        si: &str,
        key: &str,
        value: &str,
        sync: bool,
        deadline: Duration,
    ) -> Result<u64, CheckpointError> {
        if let Some(log) = &self.log {
            let cmd = crate::cluster::Command::Checkpoint {
                si: si.to_string(),
                writer: writer.to_string(),
                key: key.to_string(),
                value: value.to_string(),
            };
            // Committed means applied on the master; it is in the log ahead
            // of any fail-over decision taken after it.
            let r = propose(log, cmd, deadline).await?;
            if let Some(owner) = r.get("superseded").and_then(serde_json::Value::as_str) {
                return Err(CheckpointError::Superseded(owner.to_string()));
            }
            return r
                .get("seq")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| CheckpointError::NotCommitted(r.to_string()));
        }
        let (seq, waits) = {
            let mut stores = self.lock();
            let store = stores.entry(si.to_string()).or_default();
            store.admits(writer)?;
            store.seq += 1;
            let seq = store.seq;
            store.entries.insert(key.to_string(), value.to_string());
            let mut waits = Vec::new();
            let standbys: Vec<(String, mpsc::Sender<CheckpointPush>)> = store
                .standbys
                .iter()
                .filter(|(k, _)| k.as_str() != writer)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (name, tx) in standbys {
                let push = CheckpointPush::Increment {
                    seq,
                    key: key.to_string(),
                    value: value.to_string(),
                };
                // A full queue means a stuck standby: it will resynchronize.
                if tx.try_send(push).is_ok() && sync {
                    let (wtx, wrx) = oneshot::channel();
                    store.waiting.insert((name.clone(), seq), wtx);
                    waits.push((name, wrx));
                }
            }
            (seq, waits)
        };
        if waits.is_empty() {
            return Ok(seq);
        }
        let mut missing = Vec::new();
        let until = tokio::time::Instant::now() + deadline;
        for (name, rx) in waits {
            if tokio::time::timeout_at(until, rx)
                .await
                .map_or(true, |r| r.is_err())
            {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            Ok(seq)
        } else {
            let mut stores = self.lock();
            if let Some(s) = stores.get_mut(si) {
                s.waiting.retain(|(_, q), _| *q != seq);
            }
            Err(SyncTimeout { seq, missing }.into())
        }
    }

    /// A standby acknowledged every increment up to `seq`.
    pub fn acknowledge(&self, si: &str, standby: &str, seq: u64) {
        let mut stores = self.lock();
        if let Some(store) = stores.get_mut(si) {
            let done: Vec<(String, u64)> = store
                .waiting
                .keys()
                .filter(|(n, q)| n == standby && *q <= seq)
                .cloned()
                .collect();
            for k in done {
                if let Some(w) = store.waiting.remove(&k) {
                    let _ = w.send(());
                }
            }
        }
    }

    /// The full state of a service instance as a primary takes it up: it
    /// fences the instance for `reader` (see the module's documentation)
    /// and returns every write accepted before, cluster-wide.
    pub async fn take_over(
        &self,
        reader: &str,
        si: &str,
        deadline: Duration,
    ) -> Result<(u64, BTreeMap<String, String>), CheckpointError> {
        let Some(log) = &self.log else {
            return Ok(self.apply_fence(si, reader));
        };
        let cmd = crate::cluster::Command::CheckpointFence {
            si: si.to_string(),
            owner: reader.to_string(),
        };
        let r = propose(log, cmd, deadline).await?;
        let seq = r.get("seq").and_then(serde_json::Value::as_u64);
        let entries = r
            .get("entries")
            .cloned()
            .and_then(|e| serde_json::from_value::<BTreeMap<String, String>>(e).ok());
        match (seq, entries) {
            (Some(seq), Some(entries)) => Ok((seq, entries)),
            _ => Err(CheckpointError::NotCommitted(r.to_string())),
        }
    }

    /// The full state of a service instance as this node holds it (a
    /// standby's read; a new primary calls [`CheckpointService::take_over`]).
    pub fn read(&self, si: &str) -> (u64, BTreeMap<String, String>) {
        self.lock()
            .get(si)
            .map_or((0, BTreeMap::new()), |s| (s.seq, s.entries.clone()))
    }

    /// Registers a standby: it gets the full state first, then increments.
    pub fn add_standby(&self, si: &str, standby: &str, tx: mpsc::Sender<CheckpointPush>) {
        let mut stores = self.lock();
        let store = stores.entry(si.to_string()).or_default();
        let _ = tx.try_send(CheckpointPush::Full {
            seq: store.seq,
            entries: store.entries.clone(),
        });
        store.standbys.insert(standby.to_string(), tx);
    }

    /// Removes a standby (it failed, or became primary). Its pending
    /// synchronous acknowledgements are released.
    pub fn remove_standby(&self, si: &str, standby: &str) {
        let mut stores = self.lock();
        if let Some(store) = stores.get_mut(si) {
            store.standbys.remove(standby);
            let keys: Vec<(String, u64)> = store
                .waiting
                .keys()
                .filter(|(n, _)| n == standby)
                .cloned()
                .collect();
            for k in keys {
                store.waiting.remove(&k);
            }
        }
    }

    /// Removes a component from every service instance it stands by for.
    pub fn remove_component(&self, component: &str) {
        let sis: Vec<String> = self.lock().keys().cloned().collect();
        for si in sis {
            self.remove_standby(&si, component);
        }
    }
}

/// Proposes `cmd` and returns the master's answer; an `error` in it (the
/// command was refused at apply) is not a commit.
async fn propose(
    log: &halyard_consensus::Consensus,
    cmd: crate::cluster::Command,
    deadline: Duration,
) -> Result<serde_json::Value, CheckpointError> {
    let cmd =
        serde_json::to_value(cmd).map_err(|e| CheckpointError::NotCommitted(e.to_string()))?;
    let r = log
        .propose(cmd, deadline)
        .await
        .map_err(|e| CheckpointError::NotCommitted(e.to_string()))?;
    match r.get("error").and_then(serde_json::Value::as_str) {
        Some(e) => Err(CheckpointError::NotCommitted(e.to_string())),
        None => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_new_standby_gets_the_full_state_then_increments_and_sync_waits_for_acks() {
        let svc = CheckpointService::new();
        svc.write("p", "si=1", "count", "1", true, Duration::from_secs(1))
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        svc.add_standby("si=1", "b", tx);
        assert_eq!(
            rx.recv().await,
            Some(CheckpointPush::Full {
                seq: 1,
                entries: [("count".to_string(), "1".to_string())].into()
            })
        );
        let svc2 = svc.clone();
        let writer = tokio::spawn(async move {
            svc2.write("p", "si=1", "count", "2", true, Duration::from_secs(1))
                .await
        });
        assert_eq!(
            rx.recv().await,
            Some(CheckpointPush::Increment {
                seq: 2,
                key: "count".into(),
                value: "2".into()
            })
        );
        svc.acknowledge("si=1", "b", 2);
        assert_eq!(writer.await.unwrap(), Ok(2));
        // No ack: the synchronous write reports the standby after the deadline.
        let err = svc
            .write("p", "si=1", "count", "3", true, Duration::from_millis(200))
            .await
            .unwrap_err();
        let CheckpointError::SyncTimeout(err) = err else {
            panic!("not a timeout: {err}")
        };
        assert_eq!(err.missing, vec!["b".to_string()]);
        // The agent's copy holds every write regardless.
        assert_eq!(svc.read("si=1").1["count"], "3");
    }

    #[tokio::test]
    async fn a_fence_leaves_one_writer_and_hands_over_every_earlier_write() {
        let svc = CheckpointService::new();
        let d = Duration::from_secs(1);
        // Before any fence, the old primary writes.
        assert_eq!(svc.write("a", "si=1", "count", "41", false, d).await, Ok(1));
        // b takes the instance over: it reads a's last write...
        let (seq, entries) = svc.take_over("b", "si=1", d).await.unwrap();
        assert_eq!((seq, entries["count"].as_str()), (1, "41"));
        // ...and a's write arriving after the fence is refused, not counted.
        assert_eq!(
            svc.write("a", "si=1", "count", "42", false, d).await,
            Err(CheckpointError::Superseded("b".into()))
        );
        assert_eq!(svc.read("si=1").1["count"], "41");
        assert_eq!(svc.write("b", "si=1", "count", "42", false, d).await, Ok(2));
        // Another instance is not fenced; a write logged before fences
        // existed (no writer) is admitted; a's own fence makes it the writer again.
        assert_eq!(svc.write("a", "si=2", "count", "1", false, d).await, Ok(1));
        assert_eq!(svc.apply_write("si=1", "", "count", "43"), Ok(3));
        svc.take_over("a", "si=1", d).await.unwrap();
        assert_eq!(
            svc.apply_write("si=1", "b", "count", "44"),
            Err(CheckpointError::Superseded("a".into()))
        );
        assert_eq!(svc.apply_write("si=1", "a", "count", "44"), Ok(4));
        // A snapshot about to be installed forgets the fence with the state.
        svc.clear();
        assert_eq!(svc.apply_write("si=1", "b", "count", "1"), Ok(1));
    }
}
