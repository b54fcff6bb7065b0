//! The configuration repository: hierarchical keys, typed (JSON) values,
//! get / set / watch, persisted in SQLite (WAL, synchronous=FULL) through
//! sqlx. A write is one SQLite transaction: after a crash the previous value
//! or the new one is there, never a torn one.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("bad key '{0}': keys are /-separated paths like /components/counterd-a/role")]
    BadKey(String),
    #[error("value of {key} is not what was expected: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
    #[error("cannot encode value: {0}")]
    Encode(serde_json::Error),
}

/// A committed change, as watchers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoChange {
    pub key: String,
    /// `None` when deleted.
    pub value: Option<Json>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct Repository {
    pool: SqlitePool,
    changes: broadcast::Sender<RepoChange>,
}

fn check_key(key: &str) -> Result<(), RepoError> {
    if key.len() > 1
        && key.starts_with('/')
        && !key.ends_with('/')
        && key[1..].split('/').all(|s| !s.is_empty())
    {
        Ok(())
    } else {
        Err(RepoError::BadKey(key.to_string()))
    }
}

/// Keys under `prefix` (a key itself or a subtree).
fn like_pattern(prefix: &str) -> String {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{escaped}/%")
}

impl Repository {
    /// Opens (creating if needed) the database file.
    pub async fn open(path: &Path) -> Result<Self, RepoError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA_SQL {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        Ok(Repository {
            pool,
            changes: broadcast::channel(1024).0,
        })
    }

    /// The pool, for the stores that keep their own tables (ASR, alarms).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn get(&self, key: &str) -> Result<Option<Json>, RepoError> {
        check_key(key)?;
        let row = sqlx::query("SELECT value FROM kv WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let text: String = r.get(0);
            serde_json::from_str(&text).map_err(|source| RepoError::Decode {
                key: key.to_string(),
                source,
            })
        })
        .transpose()
    }

    pub async fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RepoError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|source| RepoError::Decode {
                    key: key.to_string(),
                    source,
                }),
        }
    }

    pub async fn set(&self, key: &str, value: impl Serialize) -> Result<i64, RepoError> {
        let v = serde_json::to_value(value).map_err(RepoError::Encode)?;
        let changes = self.apply(vec![(key.to_string(), Some(v))]).await?;
        Ok(changes.first().map_or(0, |c| c.version))
    }

    /// Sets (Some) and deletes (None) several keys in one transaction.
    pub async fn apply(
        &self,
        entries: Vec<(String, Option<Json>)>,
    ) -> Result<Vec<RepoChange>, RepoError> {
        for (k, _) in &entries {
            check_key(k)?;
        }
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match &value {
                Some(v) => {
                    let version: i64 = sqlx::query_scalar(
                        "INSERT INTO kv(key, value, version, updated) VALUES (?1, ?2, 1, ?3)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value,
                           version = kv.version + 1, updated = excluded.updated
                         RETURNING version",
                    )
                    .bind(&key)
                    .bind(v.to_string())
                    .bind(halyard_cluster_model::Timestamp::now().0)
                    .fetch_one(&mut *tx)
                    .await?;
                    out.push(RepoChange {
                        key,
                        value,
                        version,
                    });
                }
                None => {
                    sqlx::query("DELETE FROM kv WHERE key = ?1 OR key LIKE ?2 ESCAPE '\\'")
                        .bind(&key)
                        .bind(like_pattern(&key))
                        .execute(&mut *tx)
                        .await?;
                    out.push(RepoChange {
                        key,
                        value: None,
                        version: 0,
                    });
                }
            }
        }
        tx.commit().await?;
        for c in &out {
            let _ = self.changes.send(c.clone());
        }
        Ok(out)
    }

    /// Deletes a key and everything beneath it.
    pub async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.apply(vec![(key.to_string(), None)]).await.map(|_| ())
    }

    /// Every key at or under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Json)>, RepoError> {
        check_key(prefix)?;
        let rows = sqlx::query(
            "SELECT key, value FROM kv WHERE key = ?1 OR key LIKE ?2 ESCAPE '\\' ORDER BY key",
        )
        .bind(prefix)
        .bind(like_pattern(prefix))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let key: String = r.get(0);
                let text: String = r.get(1);
                serde_json::from_str(&text)
                    .map(|v| (key.clone(), v))
                    .map_err(|source| RepoError::Decode { key, source })
            })
            .collect()
    }

    /// Committed changes from now on (filter by prefix on the receiver side).
    pub fn watch(&self) -> broadcast::Receiver<RepoChange> {
        self.changes.subscribe()
    }

    /// Appends a decision or event to the journal (kept for history).
    pub async fn journal(&self, kind: &str, subject: &str, body: &Json) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO journal(time, kind, subject, body) VALUES (?1, ?2, ?3, ?4)")
            .bind(halyard_cluster_model::Timestamp::now().0)
            .bind(kind)
            .bind(subject)
            .bind(body.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends many journal entries in one transaction (one fsync).
    pub async fn journal_many(
        &self,
        entries: Vec<(String, String, Json)>,
    ) -> Result<(), RepoError> {
        let now = halyard_cluster_model::Timestamp::now().0;
        let mut tx = self.pool.begin().await?;
        for (kind, subject, body) in entries {
            sqlx::query("INSERT INTO journal(time, kind, subject, body) VALUES (?1, ?2, ?3, ?4)")
                .bind(now)
                .bind(kind)
                .bind(subject)
                .bind(body.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Journal entries of one kind, oldest first: (time, subject, body).
    pub async fn journal_entries(&self, kind: &str) -> Result<Vec<(i64, String, Json)>, RepoError> {
        let rows =
            sqlx::query("SELECT time, subject, body FROM journal WHERE kind = ?1 ORDER BY id")
                .bind(kind)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let body: String = r.get(2);
                (
                    r.get(0),
                    r.get(1),
                    serde_json::from_str(&body).unwrap_or(Json::Null),
                )
            })
            .collect())
    }

    /// Deletes journal entries of one kind older than `before` (retention).
    pub async fn prune_journal(&self, kind: &str, before: i64) -> Result<u64, RepoError> {
        let r = sqlx::query("DELETE FROM journal WHERE kind = ?1 AND time < ?2")
            .bind(kind)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const SCHEMA_SQL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS journal_kind ON journal(kind, id)",
    "CREATE TABLE IF NOT EXISTS incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        component TEXT NOT NULL,
        si TEXT NOT NULL,
        started INTEGER NOT NULL,
        ended INTEGER,
        service_lost INTEGER NOT NULL,
        recovery TEXT NOT NULL,
        completed INTEGER NOT NULL)",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("/a").is_ok());
        assert!(check_key("/a/b-c/d").is_ok());
        for bad in ["", "/", "a/b", "/a/", "/a//b"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert_eq!(like_pattern("/a_b"), "/a\\_b/%");
    }
}
