//! Process components (and the processes of HA-aware daemons): start,
//! watch, stop with a grace period, health commands.

use super::*;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::cec::{ErrorKind, ErrorReport};
use crate::lane::Lane;

pub(in crate::core) async fn run_health_command(cmd: &[String]) -> Result<(), String> {
    let (prog, args) = cmd.split_first().ok_or("empty health command")?;
    let status = crate::spawn::command(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("health command exited with {status}"))
    }
}

/// Runs one process component: starts it on command, reports its exit at once.
pub(in crate::core) async fn supervise(
    spec: ComponentSpec,
    socket: PathBuf,
    cmds: Arc<Lane<SupCmd>>,
    core: mpsc::Sender<Msg>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (command, env, stop_cmd) = match &spec.kind {
        Kind::Process {
            start, env, stop, ..
        } => (start.clone(), env.clone(), stop.clone()),
        Kind::HaAware { command, env, .. } => (command.clone(), env.clone(), None),
        Kind::Hardware | Kind::Proxy { .. } => return,
    };
    let mut child: Option<(tokio::process::Child, u32)> = None;
    let mut last_started = 0;
    loop {
        tokio::select! {
            cmd = cmds.next() => match cmd {
                None => break,
                // Starts may arrive out of order: only a newer incarnation counts.
                Some(SupCmd::Start(inc)) if inc <= last_started => {}
                Some(SupCmd::Start(inc)) => {
                    last_started = inc;
                    if let Some((mut old, _)) = child.take() {
                        let _ = old.start_kill();
                        let _ = old.wait().await;
                    }
                    let Some((prog, args)) = command.split_first() else { continue };
                    let spawned = crate::spawn::command(prog)
                        .args(args)
                        .envs(env.iter().cloned())
                        .env("HALYARD_SOCKET", &socket)
                        .env("HALYARD_COMPONENT", &spec.name)
                        .env("HALYARD_INCARNATION", inc.to_string())
                        .stdin(Stdio::null())
                        .kill_on_drop(true)
                        // Its own process group: a terminal's Ctrl-C (SIGINT
                        // to the foreground group) reaches the agent alone,
                        // which stops components in order, children first,
                        // instead of every component dying at once and
                        // being handled as failed.
                        .process_group(0)
                        .spawn();
                    match spawned {
                        Ok(c) => {
                            let pid = c.id();
                            tracing::info!(incarnation = inc, pid, "component process started");
                            child = Some((c, inc));
                            let _ = core.send(Msg::Spawned { component: spec.name.clone(), incarnation: inc, pid }).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, command = %prog, "cannot start component process");
                            let _ = core.send(Msg::Report(ErrorReport {
                                component: spec.name.clone(),
                                incarnation: inc,
                                kind: ErrorKind::ProcessExit,
                                detail: format!("cannot start {prog}: {e}"),
                            })).await;
                        }
                    }
                }
                Some(SupCmd::Stop) => {
                    if let Some((c, _)) = child.take() {
                        stop_child(c, grace, stop_cmd.as_deref(), &spec.name).await;
                    }
                }
                Some(SupCmd::Assign(..) | SupCmd::Release) => {}
            },
            status = async { child.as_mut().expect("guarded").0.wait().await }, if child.is_some() => {
                let (_, inc) = child.take().expect("child");
                let detail = match status {
                    Ok(s) => format!("process exited: {s}"),
                    Err(e) => format!("process lost: {e}"),
                };
                tracing::warn!(incarnation = inc, %detail, "component process exited");
                let _ = core.send(Msg::Report(ErrorReport {
                    component: spec.name.clone(),
                    incarnation: inc,
                    kind: ErrorKind::ProcessExit,
                    detail,
                })).await;
            }
            _ = stop.changed() => break,
        }
    }
    if let Some((c, _)) = child.take() {
        stop_child(c, grace, stop_cmd.as_deref(), &spec.name).await;
    }
}

/// The stop command when there is one (OCF style, with HALYARD_PID set),
/// else SIGTERM; SIGKILL after the grace period either way.
pub(in crate::core) async fn stop_child(
    mut c: tokio::process::Child,
    grace: Duration,
    stop: Option<&[String]>,
    name: &str,
) {
    let pid = c.id();
    match (stop.and_then(<[String]>::split_first), pid) {
        (Some((prog, args)), Some(pid)) => {
            let run = crate::spawn::command(prog)
                .args(args)
                .env("HALYARD_COMPONENT", name)
                .env("HALYARD_PID", pid.to_string())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .status();
            if !matches!(tokio::time::timeout(grace, run).await, Ok(Ok(s)) if s.success()) {
                tracing::warn!(component = %name, "stop command failed or timed out; signalling");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        (None, Some(pid)) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        _ => {}
    }
    if tokio::time::timeout(grace, c.wait()).await.is_err() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
}
