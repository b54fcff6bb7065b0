//! `halyard boot`: the node's boot supervisor, the fail-safe half of a
//! software upgrade. It runs the node's halyard from a release slot (the
//! committed release, or a trial armed by the upgrade manager) and owns the
//! watchdog: a trial that has not proven healthy by the deadline, or that
//! exits before it is committed, is replaced by the committed release with
//! no help from the rest of the cluster. "Rebooting onto a release" is this
//! supervisor restarting the node's process (and with it the node's
//! components) from that release's files.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use halyard_backend::release::ReleaseStore;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::ReleaseSection;

/// Exit status with which a node asks its supervisor to boot again (the
/// store says onto which release). EX_TEMPFAIL from sysexits.h.
pub const REBOOT: i32 = 75;

/// Where a node keeps its releases.
pub fn store(data_dir: &Path) -> ReleaseStore {
    ReleaseStore::new(&data_dir.join("releases"))
}

/// The executable of a release, inside its slot.
pub fn executable(store: &ReleaseStore, slot: &str) -> PathBuf {
    store.slot_dir(slot).join("bin/halyard")
}

enum Ended {
    Exited(ExitStatus),
    Watchdog,
    Signal,
}

/// Runs the supervisor until the node stops for good. `args` are the
/// node's own arguments (without `boot`).
pub async fn run(
    release: &ReleaseSection,
    data_dir: &Path,
    args: Vec<String>,
) -> anyhow::Result<()> {
    let store = store(data_dir);
    if let Some(initial) = &release.initial
        && store.state().committed.is_none()
    {
        let ls = crate::loadserver::LoadServer::new(release.load_server.get_ref());
        let source = ls
            .local(initial.get_ref(), &store)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot get the initial release {}", initial.get_ref()))?;
        store
            .install_initial(&source, initial.get_ref())
            .await
            .with_context(|| format!("cannot install the initial release {}", initial.get_ref()))?;
    }
    let watchdog = Duration::from_millis(u64::from(*release.watchdog_ms.get_ref()));
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut crashes = 0u32;
    loop {
        let choice = store.boot_choice().context("no release to boot")?;
        if let Some(why) = &choice.fell_back {
            tracing::error!(reason = %why, release = %choice.version, "trial failed: falling back to the committed release");
        }
        let exe = executable(&store, &choice.slot);
        tracing::info!(release = %choice.version, slot = %choice.slot, trial = choice.trial, "booting");
        let mut child = Command::new(&exe)
            .args(&args)
            .env("HALYARD_RELEASE", &choice.version)
            .env("HALYARD_TRIAL", if choice.trial { "1" } else { "0" })
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let started = Instant::now();
        let ended = supervise(&store, &mut child, &choice, watchdog, &mut term, &mut int).await;
        match ended {
            Ended::Signal => {
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
                let st = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                tracing::info!(status = ?st, "node stopped; supervisor exits");
                return Ok(());
            }
            Ended::Watchdog => {
                tracing::error!(release = %choice.version, deadline_ms = watchdog.as_millis() as u64, "watchdog: the trial release did not become healthy; killing it");
                let _ = child.kill().await;
                let _ = store.fail_trial(
                    &choice.version,
                    &format!(
                        "did not become healthy within {} ms (watchdog)",
                        watchdog.as_millis()
                    ),
                );
            }
            Ended::Exited(st) if st.code() == Some(0) => {
                tracing::info!("node stopped; supervisor exits");
                return Ok(());
            }
            Ended::Exited(st) if st.code() == Some(REBOOT) => {
                tracing::info!("node asked to boot again");
                crashes = 0;
            }
            Ended::Exited(st) => {
                tracing::error!(status = %st, release = %choice.version, "node exited abnormally");
                if choice.trial {
                    // Healthy or not, an uncommitted release that stops is
                    // not kept (fail-safe): boot_choice falls back.
                    let _ =
                        store.fail_trial(&choice.version, &format!("{st} before it was committed"));
                }
                // A release that keeps crashing must not spin the CPU.
                crashes = if started.elapsed() > Duration::from_secs(60) {
                    1
                } else {
                    crashes + 1
                };
                let pause = Duration::from_millis(200 * u64::from(crashes.min(25)));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = term.recv() => return Ok(()),
                    _ = int.recv() => return Ok(()),
                }
            }
        }
    }
}

async fn supervise(
    store: &ReleaseStore,
    child: &mut Child,
    choice: &halyard_backend::release::BootChoice,
    watchdog: Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> Ended {
    let deadline = tokio::time::Instant::now() + watchdog;
    let mut probation = choice.trial;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            st = child.wait() => {
                return match st {
                    Ok(st) => Ended::Exited(st),
                    Err(_) => Ended::Watchdog,
                };
            }
            _ = term.recv() => return Ended::Signal,
            _ = int.recv() => return Ended::Signal,
            _ = tick.tick(), if probation => {
                let healthy = store
                    .state()
                    .trial
                    .is_some_and(|t| t.version == choice.version && t.healthy);
                if healthy {
                    tracing::info!(release = %choice.version, "trial release healthy; it stays on probation until committed");
                    probation = false;
                } else if tokio::time::Instant::now() >= deadline {
                    return Ended::Watchdog;
                }
            }
        }
    }
}
