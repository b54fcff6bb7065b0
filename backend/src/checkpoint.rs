//! The checkpoint service: the primary of a service instance writes its
//! state; secondaries read it. A new standby first receives the full state,
//! then every increment. In synchronous mode a write returns once every
//! standby acknowledged it (or a deadline passed); in asynchronous mode
//! at once. The agent keeps the state too, so a promoted standby (or a
//! restarted primary) always resumes from the last acknowledged write.

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
    /// this node's standbys. Returns its sequence number.
    pub fn apply_write(&self, si: &str, key: &str, value: &str) -> u64 {
        let mut stores = self.lock();
        let store = stores.entry(si.to_string()).or_default();
        store.seq += 1;
        store.entries.insert(key.to_string(), value.to_string());
        for tx in store.standbys.values() {
            let _ = tx.try_send(CheckpointPush::Increment {
                seq: store.seq,
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        store.seq
    }

    /// Forgets every service instance's state (a snapshot is installed next).
    pub fn clear(&self) {
        for s in self.lock().values_mut() {
            s.seq = 0;
            s.entries.clear();
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
                key: key.to_string(),
                value: value.to_string(),
            };
            let cmd = serde_json::to_value(cmd)
                .map_err(|e| CheckpointError::NotCommitted(e.to_string()))?;
            // Committed means applied on the master; it is in the log ahead
            // of any fail-over decision taken after it.
            let r = log
                .propose(cmd, deadline)
                .await
                .map_err(|e| CheckpointError::NotCommitted(e.to_string()))?;
            return r
                .get("seq")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| CheckpointError::NotCommitted(r.to_string()));
        }
        let (seq, waits) = {
            let mut stores = self.lock();
            let store = stores.entry(si.to_string()).or_default();
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

    /// The full state of a service instance (a new primary reads it).
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
}
