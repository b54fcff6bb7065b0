//! counterd: the example HA-aware daemon, also run as `halyard counterd`.
//!
//! While primary it counts (every COUNTERD_INTERVAL_MS, default 20 ms) and
//! checkpoints every increment; when it becomes primary it resumes from
//! the checkpoint; as a standby it follows the checkpoint increments. A
//! connection to the Unix socket COUNTERD_QUERY gets one line back:
//! `<count> <state>`.

use std::time::Duration;

use crate::client::{HaClient, Notice};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

/// Runs counterd until the agent goes away (a normal end) or an error occurs.
pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    match serve().await {
        Err(e) => match e.downcast_ref::<crate::client::ClientError>() {
            Some(crate::client::ClientError::Closed | crate::client::ClientError::Io(_)) => Ok(()),
            _ => Err(e),
        },
        Ok(()) => Ok(()),
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let interval = std::env::var("COUNTERD_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u64);
    let mut ha = HaClient::connect_from_env().await?;
    // Queries are answered by their own task, with the count and the
    // latest role received, so a checkpoint write in flight never delays
    // the answer nor hides a demotion.
    let shown = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _query = match std::env::var("COUNTERD_QUERY") {
        Ok(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(path)?;
            let shown = shown.clone();
            let roles = ha.roles();
            Some(AbortOnDrop(tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    let role = roles.borrow().clone().unwrap_or_else(|| "off-line".into());
                    let count = shown.load(std::sync::atomic::Ordering::SeqCst);
                    let _ = s.write_all(format!("{count} {role}\n").as_bytes()).await;
                }
            })))
        }
        Err(_) => None,
    };
    let mut count: u64 = 0;
    let mut state = String::from("off-line");
    let show = |count: u64, _state: &str| {
        shown.store(count, std::sync::atomic::Ordering::SeqCst);
    };
    let mut tick = tokio::time::interval(Duration::from_millis(interval.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notice = ha.next() => match notice {
                // The agent went away (stopped, or died): so do we.
                Err(crate::client::ClientError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
                Ok(Notice::Assigned { state: s, .. }) => {
                    if s == "primary" {
                        // Resume from the last checkpoint of the service instance
                        // taken over (what a standby of several held may differ).
                        let (_, entries) = ha.read_checkpoint().await?;
                        if let Some(saved) = entries.get("count").and_then(|v| v.parse().ok()) {
                            count = saved;
                        }
                    }
                    state = s;
                    show(count, &state);
                    ha.ack(&state).await?;
                }
                // A primary's count is its own: late pushes are only acknowledged.
                Ok(Notice::State { seq, entries }) => {
                    if state != "primary" && let Some(v) = entries.get("count").and_then(|v| v.parse().ok()) {
                        count = v;
                        show(count, &state);
                    }
                    ha.ack_checkpoint(seq).await?;
                }
                Ok(Notice::Checkpoint { seq, key, value }) => {
                    if state != "primary" && key == "count" && let Ok(v) = value.parse() {
                        count = v;
                        show(count, &state);
                    }
                    ha.ack_checkpoint(seq).await?;
                }
            },
            _ = tick.tick(), if state == "primary" => {
                match ha.checkpoint("count", &(count + 1).to_string()).await {
                    // Counted only once the checkpoint holds it: nothing is lost.
                    Ok(_) => {
                        count += 1;
                        show(count, &state);
                    }
                    // Demoted an instant ago: the new role is on its way.
                    Err(crate::client::ClientError::Refused { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Stops the query task with counterd.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
