//! The raft log in SQLite (storage-v2 `RaftLogStorage`) and the state-machine adapter that
//! drives the application's [`Machine`].
//!
//! raft.db tables:
//! - `log(idx, term, entry)`: one row per entry, `entry` the JSON of the whole openraft entry;
//! - `meta(key, value)`: `vote`, `committed`, `purged` as JSON;
//! - `snapshot(id = 1, meta, data)`: the latest snapshot (meta JSON, data blob).

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{Machine, NodeId, TypeConfig};

type StResult<T> = Result<T, StorageError<NodeId>>;

/// What the log carries for an application command: the command plus who proposed it, so a
/// proposal retried after an ambiguous failure (sent, then timed out) is applied once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The node whose `propose` created it.
    pub origin: NodeId,
    /// Unique per origin process and proposal (random per start + counter).
    pub nonce: u64,
    /// The application's command.
    pub command: serde_json::Value,
}

/// Opens raft.db. WAL with `synchronous = FULL`: every commit syncs the WAL, so an append is on
/// disk when its transaction returns and we may report the log I/O complete to openraft.
pub(crate) async fn open_pool(dir: &Path) -> Result<SqlitePool, sqlx::Error> {
    std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    let options = SqliteConnectOptions::new()
        .filename(dir.join("raft.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, entry TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), meta TEXT NOT NULL, data BLOB NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    Ok(pool)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The raft log. Cheap to clone; the clone is also the log reader.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    pool: SqlitePool,
}

impl LogStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn read_meta<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, String> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = row.get(0);
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| format!("meta {key}: {e}"))
            }
        }
    }

    async fn write_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), String> {
        let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(text)
            .execute(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn io_err(e: impl ToString) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn any(e: impl ToString) -> openraft::AnyError {
    openraft::AnyError::error(e.to_string())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let rows = sqlx::query("SELECT entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(to_i64(start))
            .bind(to_i64(end))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StorageIOError::read_logs(any(e)))?;
        rows.iter()
            .map(|row| serde_json::from_str(&row.get::<String, _>(0)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageIOError::read_logs(any(e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StResult<LogState<TypeConfig>> {
        let purged: Option<LogId<NodeId>> = self
            .read_meta("purged")
            .await
            .map_err(|e| StorageIOError::read_logs(any(e)))?;
        let row = sqlx::query("SELECT entry FROM log ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StorageIOError::read_logs(any(e)))?;
        let last = match row {
            None => purged,
            Some(row) => {
                let text: String = row.get(0);
                let entry: Entry<TypeConfig> =
                    serde_json::from_str(&text).map_err(|e| StorageIOError::read_logs(any(e)))?;
                Some(entry.log_id)
            }
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StResult<()> {
        self.write_meta("vote", vote)
            .await
            .map_err(|e| StorageIOError::write_vote(any(e)).into())
    }

    async fn read_vote(&mut self) -> StResult<Option<Vote<NodeId>>> {
        self.read_meta("vote")
            .await
            .map_err(|e| StorageIOError::read_vote(any(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StResult<()> {
        self.write_meta("committed", &committed)
            .await
            .map_err(|e| StorageIOError::write(any(e)).into())
    }

    async fn read_committed(&mut self) -> StResult<Option<LogId<NodeId>>> {
        let v: Option<Option<LogId<NodeId>>> = self
            .read_meta("committed")
            .await
            .map_err(|e| StorageIOError::read(any(e)))?;
        Ok(v.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result: Result<(), String> = async {
            // One transaction per batch: durable (WAL, synchronous FULL) once commit returns.
            let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
            for entry in entries {
                let text = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
                sqlx::query("INSERT OR REPLACE INTO log (idx, term, entry) VALUES (?, ?, ?)")
                    .bind(to_i64(entry.log_id.index))
                    .bind(to_i64(entry.log_id.leader_id.term))
                    .bind(text)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tx.commit().await.map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io_err(&e)));
                Err(StorageIOError::write_logs(any(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StResult<()> {
        sqlx::query("DELETE FROM log WHERE idx >= ?")
            .bind(to_i64(log_id.index))
            .execute(&self.pool)
            .await
            .map_err(|e| StorageIOError::write_logs(any(e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StResult<()> {
        let result: Result<(), sqlx::Error> = async {
            // The purged id first and in the same transaction, so the log state never has a
            // gap that the purged id does not explain.
            let mut tx = self.pool.begin().await?;
            let text = serde_json::to_string(&log_id).map_err(|e| sqlx::Error::Decode(e.into()))?;
            sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('purged', ?)")
                .bind(text)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM log WHERE idx <= ?")
                .bind(to_i64(log_id.index))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| StorageIOError::write_logs(any(e)).into())
    }
}

/// One command in a snapshot: the log index it was applied at and the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Applied {
    index: u64,
    command: Command,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    commands: Vec<Applied>,
}

/// How many recent proposals are remembered to fold retried duplicates. Retries happen within a
/// propose deadline, so a small window suffices; eviction is in apply order, hence deterministic.
const DEDUP_WINDOW: usize = 1024;

#[derive(Debug, Default)]
struct Dedup {
    results: HashMap<(NodeId, u64), serde_json::Value>,
    order: VecDeque<(NodeId, u64)>,
}

impl Dedup {
    fn insert(&mut self, key: (NodeId, u64), result: serde_json::Value) {
        if self.results.insert(key, result).is_none() {
            self.order.push_back(key);
            if self.order.len() > DEDUP_WINDOW
                && let Some(old) = self.order.pop_front()
            {
                self.results.remove(&old);
            }
        }
    }
}

/// The openraft state machine: keeps last_applied, membership and the applied command list in
/// memory (rebuilt from the snapshot and the log on start) and forwards commands to the Machine.
pub(crate) struct StateMachine<M> {
    machine: Arc<M>,
    pool: SqlitePool,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// The applied commands a snapshot holds, in order (by a running number); a command
    /// superseded by a later one with the same key is dropped.
    history: std::collections::BTreeMap<u64, Applied>,
    next: u64,
    latest: HashMap<String, u64>,
    /// The running numbers of the kept commands of each [`crate::Retention::Recent`] class.
    recent: HashMap<String, VecDeque<u64>>,
    dedup: Dedup,
    snapshots_built: u64,
}

impl<M> Debug for StateMachine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.last_applied)
            .field("commands", &self.history.len())
            .finish_non_exhaustive()
    }
}

async fn read_snapshot_row(
    pool: &SqlitePool,
) -> StResult<Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>> {
    let row = sqlx::query("SELECT meta, data FROM snapshot WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(|e| StorageIOError::read_snapshot(None, any(e)))?;
    let Some(row) = row else { return Ok(None) };
    let meta: String = row.get(0);
    let data: Vec<u8> = row.get(1);
    let meta =
        serde_json::from_str(&meta).map_err(|e| StorageIOError::read_snapshot(None, any(e)))?;
    Ok(Some((meta, data)))
}

async fn write_snapshot_row(
    pool: &SqlitePool,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> StResult<()> {
    let text = serde_json::to_string(meta)
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
    sqlx::query("INSERT OR REPLACE INTO snapshot (id, meta, data) VALUES (1, ?, ?)")
        .bind(text)
        .bind(data)
        .execute(pool)
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
    Ok(())
}

impl<M: Machine> StateMachine<M> {
    /// Starts from the stored snapshot, if any (the Machine is reset and fed its commands); the
    /// rest of the committed log is re-applied by openraft on start.
    pub(crate) async fn open(machine: Arc<M>, pool: SqlitePool) -> StResult<Self> {
        let mut sm = Self {
            machine,
            pool,
            last_applied: None,
            membership: StoredMembership::default(),
            history: Default::default(),
            next: 0,
            latest: HashMap::new(),
            recent: HashMap::new(),
            dedup: Dedup::default(),
            snapshots_built: 0,
        };
        if let Some((meta, data)) = read_snapshot_row(&sm.pool).await? {
            sm.load_snapshot(&meta, &data).await?;
        }
        Ok(sm)
    }

    async fn load_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: &[u8],
    ) -> StResult<()> {
        let parsed: SnapshotData = serde_json::from_slice(data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        self.machine.reset().await;
        self.history.clear();
        self.latest.clear();
        self.recent.clear();
        self.dedup = Dedup::default();
        for applied in parsed.commands {
            self.apply_command(applied.index, applied.command).await;
        }
        self.machine.restored().await;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            commands = self.history.len(),
            "state machine loaded from snapshot"
        );
        Ok(())
    }

    async fn apply_command(&mut self, index: u64, command: Command) -> serde_json::Value {
        let key = (command.origin, command.nonce);
        if let Some(result) = self.dedup.results.get(&key) {
            // A retried proposal that was already committed: same answer, applied once.
            tracing::debug!(index, origin = command.origin, "duplicate proposal folded");
            return result.clone();
        }
        let result = self.machine.apply(index, command.command.clone()).await;
        self.dedup.insert(key, result.clone());
        if !self.machine.kept(&command.command, &result) {
            return result;
        }
        self.next += 1;
        match self.machine.retention(&command.command) {
            crate::Retention::Keep => {}
            crate::Retention::Latest(k) => {
                if let Some(old) = self.latest.insert(k, self.next) {
                    self.history.remove(&old);
                }
            }
            crate::Retention::Recent { class, keep } => {
                let kept = self.recent.entry(class).or_default();
                kept.push_back(self.next);
                while kept.len() > keep.max(1) {
                    if let Some(old) = kept.pop_front() {
                        self.history.remove(&old);
                    }
                }
            }
        }
        self.history.insert(self.next, Applied { index, command });
        result
    }
}

impl<M: Machine> RaftStateMachine<TypeConfig> for StateMachine<M> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StResult<Vec<serde_json::Value>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => serde_json::Value::Null,
                EntryPayload::Normal(command) => {
                    self.apply_command(entry.log_id.index, command).await
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    serde_json::Value::Null
                }
            };
            out.push(result);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        SnapshotBuilder {
            pool: self.pool.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            history: self.history.values().cloned().collect(),
            seq: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StResult<()> {
        let data = snapshot.into_inner();
        // Parse before touching the Machine, so a corrupt snapshot leaves it as it was.
        serde_json::from_slice::<SnapshotData>(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        self.load_snapshot(meta, &data).await?;
        write_snapshot_row(&self.pool, meta, &data).await
    }

    async fn get_current_snapshot(&mut self) -> StResult<Option<Snapshot<TypeConfig>>> {
        Ok(read_snapshot_row(&self.pool)
            .await?
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for the builder.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    pool: SqlitePool,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    history: Vec<Applied>,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StResult<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(&SnapshotData {
            commands: std::mem::take(&mut self.history),
        })
        .map_err(|e| StorageIOError::write_snapshot(None, any(e)))?;
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        write_snapshot_row(&self.pool, &meta, &data).await?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    #[derive(Debug, Default)]
    struct NullMachine;

    impl Machine for NullMachine {
        async fn apply(&self, index: u64, _command: serde_json::Value) -> serde_json::Value {
            serde_json::json!(index)
        }
        async fn reset(&self) {}
    }

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine<NullMachine>, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> StResult<(tempfile::TempDir, LogStore, StateMachine<NullMachine>)> {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(any(e)))?;
            let pool = open_pool(dir.path())
                .await
                .map_err(|e| StorageIOError::write(any(e)))?;
            let sm = StateMachine::open(Arc::new(NullMachine), pool.clone()).await?;
            Ok((dir, LogStore::new(pool), sm))
        }
    }

    /// openraft's own storage conformance suite, run against the storage-v2 store directly
    /// (no Adaptor: `StoreBuilder` yields the log store and state machine separately).
    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(Builder).expect("storage suite");
    }

    /// A restart rebuilds the Machine from the stored snapshot.
    #[tokio::test]
    async fn snapshot_survives_reopen() {
        #[derive(Debug, Default)]
        struct Rec(std::sync::Mutex<Vec<(u64, serde_json::Value)>>);
        impl Machine for Rec {
            async fn apply(&self, index: u64, command: serde_json::Value) -> serde_json::Value {
                self.0.lock().unwrap().push((index, command));
                serde_json::Value::Null
            }
            async fn reset(&self) {
                self.0.lock().unwrap().clear();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path()).await.unwrap();
        let rec = Arc::new(Rec::default());
        let mut sm = StateMachine::open(rec.clone(), pool.clone()).await.unwrap();
        let entries: Vec<Entry<TypeConfig>> = (1..=3)
            .map(|i| Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Normal(Command {
                    origin: 1,
                    nonce: i,
                    command: serde_json::json!(i * 10),
                }),
            })
            .collect();
        // The same proposal twice (a retry) is applied once.
        let mut dup = entries[2].clone();
        dup.log_id.index = 4;
        sm.apply(entries.into_iter().chain([dup])).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(rec.0.lock().unwrap().len(), 3);
        pool.close().await;

        let pool = open_pool(dir.path()).await.unwrap();
        let rec2 = Arc::new(Rec::default());
        let mut sm2 = StateMachine::open(rec2.clone(), pool).await.unwrap();
        assert_eq!(*rec2.0.lock().unwrap(), *rec.0.lock().unwrap());
        let (applied, _) = sm2.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(4));
    }

    /// A command superseded by a later one with the same key is not in the snapshot, nor a
    /// history command beyond its class's bound; the others keep their order.
    #[tokio::test]
    async fn superseded_commands_leave_the_snapshot() {
        #[derive(Debug, Default)]
        struct Last(std::sync::Mutex<Vec<serde_json::Value>>);
        impl Machine for Last {
            async fn apply(&self, _index: u64, command: serde_json::Value) -> serde_json::Value {
                self.0.lock().unwrap().push(command);
                serde_json::Value::Null
            }
            async fn reset(&self) {
                self.0.lock().unwrap().clear();
            }
            fn retention(&self, command: &serde_json::Value) -> crate::Retention {
                match (command["key"].as_str(), command["audit"].as_u64()) {
                    (Some(k), _) => crate::Retention::Latest(k.to_string()),
                    (None, Some(_)) => crate::Retention::Recent {
                        class: "audit".into(),
                        keep: 2,
                    },
                    _ => crate::Retention::Keep,
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path()).await.unwrap();
        let mut sm = StateMachine::open(Arc::new(Last::default()), pool.clone())
            .await
            .unwrap();
        let commands = [
            serde_json::json!({"key": "count", "v": 1}),
            serde_json::json!({"audit": 1}),
            serde_json::json!("event a"),
            serde_json::json!({"audit": 2}),
            serde_json::json!({"key": "count", "v": 2}),
            serde_json::json!({"key": "other", "v": 1}),
            serde_json::json!({"audit": 3}),
            serde_json::json!({"key": "count", "v": 3}),
            serde_json::json!("event b"),
        ];
        let entries: Vec<Entry<TypeConfig>> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), i as u64 + 1),
                payload: EntryPayload::Normal(Command {
                    origin: 1,
                    nonce: i as u64,
                    command: c.clone(),
                }),
            })
            .collect();
        sm.apply(entries).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        pool.close().await;

        let pool = open_pool(dir.path()).await.unwrap();
        let last = Arc::new(Last::default());
        let _sm = StateMachine::open(last.clone(), pool).await.unwrap();
        assert_eq!(
            *last.0.lock().unwrap(),
            vec![
                serde_json::json!("event a"),
                serde_json::json!({"audit": 2}),
                serde_json::json!({"key": "other", "v": 1}),
                serde_json::json!({"audit": 3}),
                serde_json::json!({"key": "count", "v": 3}),
                serde_json::json!("event b"),
            ]
        );
    }
}
