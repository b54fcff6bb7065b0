//! counterd: the example HA-aware daemon.
//!
//! While primary it counts (every COUNTERD_INTERVAL_MS, default 20 ms) and
//! checkpoints every increment; when it becomes primary it resumes from
//! the checkpoint; as a standby it follows the checkpoint increments. A
//! connection to the Unix socket COUNTERD_QUERY gets one line back:
//! `<count> <state>`.

use std::time::Duration;

use halyard_backend::client::{HaClient, Notice};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("counterd: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let interval = std::env::var("COUNTERD_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u64);
    let query = match std::env::var("COUNTERD_QUERY") {
        Ok(path) => {
            let _ = std::fs::remove_file(&path);
            Some(UnixListener::bind(path)?)
        }
        Err(_) => None,
    };
    let mut ha = HaClient::connect_from_env().await?;
    let mut count: u64 = 0;
    let mut state = String::from("off-line");
    let mut tick = tokio::time::interval(Duration::from_millis(interval.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notice = ha.next() => match notice? {
                Notice::Assigned { state: s, .. } => {
                    if s == "primary" {
                        // Resume from the last acknowledged checkpoint.
                        let (_, entries) = ha.read_checkpoint().await?;
                        let saved = entries.get("count").and_then(|v| v.parse().ok()).unwrap_or(0);
                        count = count.max(saved);
                    }
                    state = s;
                    ha.ack(&state).await?;
                }
                Notice::State { seq, entries } => {
                    if let Some(v) = entries.get("count").and_then(|v| v.parse().ok()) {
                        count = v;
                    }
                    ha.ack_checkpoint(seq).await?;
                }
                Notice::Checkpoint { seq, key, value } => {
                    if key == "count" && let Ok(v) = value.parse() {
                        count = v;
                    }
                    ha.ack_checkpoint(seq).await?;
                }
            },
            _ = tick.tick(), if state == "primary" => {
                ha.checkpoint("count", &(count + 1).to_string()).await?;
                // Counted only once the checkpoint holds it: nothing is lost.
                count += 1;
            }
            conn = async { query.as_ref().expect("guarded").accept().await }, if query.is_some() => {
                if let Ok((mut s, _)) = conn {
                    let _ = s.write_all(format!("{count} {state}\n").as_bytes()).await;
                }
            }
        }
    }
}
