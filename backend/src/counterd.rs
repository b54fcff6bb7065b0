//! counterd: the example HA-aware daemon, also run as `halyard counterd`.
//!
//! While primary it counts (every COUNTERD_INTERVAL_MS, default 20 ms) and
//! checkpoints every increment; when it becomes primary it resumes from
//! the checkpoint; as a standby it follows the checkpoint increments. It
//! takes timed assignments: a role scheduled for an instant holds from
//! that instant exactly. Past its node's lease it stops counting
//! (quiesced) until the lease is renewed.
//!
//! A connection to the Unix socket COUNTERD_QUERY gets two lines back:
//! `<count> <state>` (the state in force now and the count it acts on; `-`
//! while it takes a primary role up and reads the checkpoint), then
//! `roles <from>:<state> …`,
//! its recent and scheduled roles with the instant (unix ns) each began, so
//! an observer can tell the role it held at any recent instant.

use std::time::Duration;

use crate::client::{HaClient, Notice, Timeline};
use crate::protocol::unix_ns;
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
    let roles = ha.roles();
    // Queries are answered by their own task, with the count and the
    // roles received, so a checkpoint write in flight never delays the
    // answer nor hides a demotion.
    // The count and the role counterd acts in, changed together: a
    // component taking a primary role up has no count to show until it
    // has read the checkpoint.
    let shown = std::sync::Arc::new(std::sync::Mutex::new((0u64, String::from("off-line"))));
    let _query = match std::env::var("COUNTERD_QUERY") {
        Ok(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(path)?;
            let shown = shown.clone();
            let roles = roles.clone();
            Some(AbortOnDrop(tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    let (role, history) = {
                        let t = roles.borrow();
                        (t.now().unwrap_or("off-line").to_string(), t.render())
                    };
                    let (count, acting) = shown.lock().map(|s| s.clone()).unwrap_or_default();
                    // Taking a primary role up: no count until the
                    // checkpoint is read.
                    let count = if role == "primary" && acting != "primary" {
                        "-".to_string()
                    } else {
                        count.to_string()
                    };
                    let _ = s
                        .write_all(format!("{count} {role}\nroles {history}\n").as_bytes())
                        .await;
                }
            })))
        }
        Err(_) => None,
    };
    let mut count: u64 = 0;
    // The role counterd acts in; it follows the timeline, a timed change at
    // its instant.
    let mut acting = String::from("off-line");
    // A primary role not taken up yet: its checkpoint could not be read.
    let mut pending = false;
    let show = |count: u64, acting: &str| {
        if let Ok(mut s) = shown.lock() {
            *s = (count, acting.to_string());
        }
    };
    // Wakes on every change of the timeline: a lease renewed after a lapse
    // puts a quiesced primary back to work.
    let mut changes = ha.roles();
    let mut tick = tokio::time::interval(Duration::from_millis(interval.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = roles.borrow().next_after(unix_ns());
        tokio::select! {
            notice = ha.next() => match notice {
                // The agent went away (stopped, or died): so do we.
                Err(crate::client::ClientError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
                Ok(Notice::Assigned { state, .. }) => {
                    // Take it up before acknowledging (a timed one is a
                    // promise: taken up at its instant).
                    // (A copy: the borrow must not be held across an await,
                    // it would block the reader task that updates it.)
                    let now = roles.borrow().clone();
                    pending = !take_up(&mut ha, &now, &mut acting, &mut count).await?;
                    show(count, &acting);
                    ha.ack(&state).await?;
                }
                // A primary's count is its own: late pushes are only acknowledged.
                Ok(Notice::State { seq, entries }) => {
                    if acting != "primary" && let Some(v) = entries.get("count").and_then(|v| v.parse().ok()) {
                        count = v;
                        show(count, &acting);
                    }
                    ha.ack_checkpoint(seq).await?;
                }
                Ok(Notice::Checkpoint { seq, key, value }) => {
                    if acting != "primary" && key == "count" && let Ok(v) = value.parse() {
                        count = v;
                        show(count, &acting);
                    }
                    ha.ack_checkpoint(seq).await?;
                }
            },
            // A timed role's instant.
            _ = tokio::time::sleep(Duration::from_nanos(next.unwrap_or(0).saturating_sub(unix_ns()))), if next.is_some() => {
                let now = roles.borrow().clone();
                pending = !take_up(&mut ha, &now, &mut acting, &mut count).await?;
                show(count, &acting);
            }
            Ok(()) = changes.changed() => {
                let now = roles.borrow().clone();
                pending = !take_up(&mut ha, &now, &mut acting, &mut count).await?;
                show(count, &acting);
            }
            // The checkpoint could not be read (no quorum a moment ago).
            _ = tokio::time::sleep(Duration::from_millis(100)), if pending => {
                let now = roles.borrow().clone();
                pending = !take_up(&mut ha, &now, &mut acting, &mut count).await?;
                show(count, &acting);
            }
            _ = tick.tick(), if acting == "primary" => {
                // Stepped down an instant ago (timed), or the node's lease
                // ran out: not ours to count. Back to primary, it resumes
                // from the checkpoint (the standby may have counted).
                let state = roles.borrow().now().unwrap_or("off-line").to_string();
                if state != "primary" {
                    acting = state;
                    show(count, &acting);
                    continue;
                }
                match ha.checkpoint("count", &(count + 1).to_string()).await {
                    // Counted only once the checkpoint holds it: nothing is lost.
                    Ok(_) => {
                        count += 1;
                        show(count, &acting);
                    }
                    // Demoted an instant ago: the new role is on its way.
                    Err(crate::client::ClientError::Refused { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Acts in the role in force now: becoming primary resumes from the last
/// checkpoint of the service instance taken over (what a standby of
/// several held may differ). Returns false when the checkpoint cannot be
/// read yet (the agent refused: no quorum to fence it): the role is not
/// taken up, and is tried again shortly.
async fn take_up(
    ha: &mut HaClient,
    roles: &Timeline,
    acting: &mut String,
    count: &mut u64,
) -> Result<bool, crate::client::ClientError> {
    let now = roles.now().unwrap_or("off-line").to_string();
    if now == *acting {
        return Ok(true);
    }
    if now == "primary" {
        match ha.read_checkpoint().await {
            Ok((_, entries)) => {
                if let Some(saved) = entries.get("count").and_then(|v| v.parse().ok()) {
                    *count = saved;
                }
            }
            Err(crate::client::ClientError::Refused { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    *acting = now;
    Ok(true)
}

/// Stops the query task with counterd.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
