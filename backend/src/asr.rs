//! The availability statistics reporter: outage incidents and the
//! availability figures derived from them, persisted in the repository's
//! database so history survives restarts.

use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::repo::RepoError;

/// One outage incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub component: String,
    /// Service instances it served when it failed (comma-separated).
    pub si: String,
    pub started: i64,
    pub ended: Option<i64>,
    pub service_lost: bool,
    pub recovery: String,
    pub completed: bool,
}

/// Availability of one component or service instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    pub incidents: u64,
    pub outage_ms: i64,
    /// Fraction of the observed time in service.
    pub availability: f64,
    /// Mean time between failures and to repair, in milliseconds.
    pub mtbf_ms: Option<f64>,
    pub mttr_ms: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Asr {
    pool: SqlitePool,
}

impl Asr {
    pub fn new(pool: SqlitePool) -> Self {
        Asr { pool }
    }

    /// Opens an incident; returns its id.
    pub async fn open(
        &self,
        component: &str,
        si: &str,
        started: i64,
        service_lost: bool,
        recovery: &str,
    ) -> Result<i64, RepoError> {
        let id = sqlx::query_scalar(
            "INSERT INTO incidents(component, si, started, service_lost, recovery, completed)
             VALUES (?1, ?2, ?3, ?4, ?5, 0) RETURNING id",
        )
        .bind(component)
        .bind(si)
        .bind(started)
        .bind(service_lost)
        .bind(recovery)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Closes the open incidents of a component (it serves again).
    pub async fn close(&self, component: &str, ended: i64) -> Result<u64, RepoError> {
        let r = sqlx::query(
            "UPDATE incidents SET ended = ?2, completed = 1 WHERE component = ?1 AND ended IS NULL",
        )
        .bind(component)
        .bind(ended)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    pub async fn incidents(&self) -> Result<Vec<Incident>, RepoError> {
        let rows = sqlx::query(
            "SELECT id, component, si, started, ended, service_lost, recovery, completed FROM incidents ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Incident {
                id: r.get(0),
                component: r.get(1),
                si: r.get(2),
                started: r.get(3),
                ended: r.get(4),
                service_lost: r.get(5),
                recovery: r.get(6),
                completed: r.get(7),
            })
            .collect())
    }

    /// Availability of a component (or, with `by_si`, a service instance
    /// counting only incidents where service was lost) over [since, now].
    pub async fn availability(
        &self,
        subject: &str,
        by_si: bool,
        since: i64,
        now: i64,
    ) -> Result<Availability, RepoError> {
        let all = self.incidents().await?;
        let mine: Vec<&Incident> = all
            .iter()
            .filter(|i| {
                if by_si {
                    i.service_lost && i.si.split(',').any(|s| s == subject)
                } else {
                    i.component == subject
                }
            })
            .collect();
        Ok(figures(&mine, since, now))
    }
}

/// Availability figures from incidents over an observation window.
pub fn figures(incidents: &[&Incident], since: i64, now: i64) -> Availability {
    let span = (now - since).max(1);
    let outage_ms: i64 = incidents
        .iter()
        .map(|i| i.ended.unwrap_or(now).min(now) - i.started.max(since))
        .filter(|d| *d > 0)
        .sum();
    let n = incidents.len() as u64;
    let repaired: Vec<i64> = incidents
        .iter()
        .filter_map(|i| i.ended.map(|e| e - i.started))
        .collect();
    Availability {
        incidents: n,
        outage_ms,
        availability: 1.0 - (outage_ms as f64 / span as f64).min(1.0),
        mtbf_ms: (n > 0).then(|| (span - outage_ms) as f64 / n as f64),
        mttr_ms: (!repaired.is_empty())
            .then(|| repaired.iter().sum::<i64>() as f64 / repaired.len() as f64),
    }
}
