//! Proxy components: a service on a non-peer node run over the remote
//! shell, its audit, statistics and relayed alarms.

use super::*;

use std::collections::HashMap;
use std::sync::Arc;

use halyard_cluster_model::SchemaEnum;
use halyard_cluster_model::model::{AvailabilityState, PerceivedSeverity, ProbableCause};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cec::{ErrorKind, ErrorReport};
use crate::events::{EventKind, EventService};
use crate::health::AuditCheck;
use crate::lane::Lane;
use crate::remote::{RemoteShell, Report, parse_report, sh_quote};
use crate::replicated::{Change, Retention};
use crate::repo::Repository;

/// The environment a proxy's commands see on the target, as a prefix of
/// the command line.
pub(in crate::core) fn proxy_env(
    component: &str,
    target: &str,
    incarnation: Option<u32>,
) -> String {
    let mut s = format!(
        "export HALYARD_COMPONENT={} HALYARD_TARGET={};",
        sh_quote(component),
        sh_quote(target)
    );
    if let Some(i) = incarnation {
        s.push_str(&format!(" export HALYARD_INCARNATION={i};"));
    }
    s.push(' ');
    s
}

pub(in crate::core) fn status_text(o: &crate::remote::RemoteOutput) -> String {
    let err = o.stderr.trim();
    if err.is_empty() {
        format!("exited with status {}", o.status)
    } else {
        format!(
            "exited with status {}: {}",
            o.status,
            err.chars().take(200).collect::<String>()
        )
    }
}

/// A proxy's audit: the health command on the target while primary, a
/// reachability probe otherwise (a standby must be able to take over).
pub(in crate::core) fn proxy_audit(
    spec: &ComponentSpec,
    remote: Arc<dyn RemoteShell>,
    primary: Arc<std::sync::atomic::AtomicU32>,
    incarnation: watch::Receiver<u32>,
) -> AuditCheck {
    let Kind::Proxy {
        target,
        health,
        timeout,
        ..
    } = spec.kind.clone()
    else {
        unreachable!("proxy audits are made for proxies")
    };
    let prefix = proxy_env(&spec.name, &target, None);
    Arc::new(move || {
        let (remote, target, prefix) = (remote.clone(), target.clone(), prefix.clone());
        // The incarnation audited must be the one that took the role (a
        // new one has not yet, even if the previous one had).
        let audited = *incarnation.borrow();
        let health = health.clone().filter(|_| {
            audited != 0 && primary.load(std::sync::atomic::Ordering::SeqCst) == audited
        });
        Box::pin(async move {
            let (what, cmd) = match &health {
                Some(h) => ("health command", format!("{prefix}{h}")),
                None => ("reachability probe", "true".to_string()),
            };
            match remote.run(&target, &cmd, timeout).await {
                Ok(o) if o.status == 0 => Ok(()),
                Ok(o) => Err(format!("{what} on {target} {}", status_text(&o))),
                Err(e) => Err(format!("{what} on {target}: {e}")),
            }
        })
    })
}

/// The topic of the alarms proxies relay (see [`relay_alarm`]).
pub const RELAYED_ALARM: &str = "relayed-alarm";

/// A relayed alarm change goes to every node like a configuration change
/// (through the log in a cluster), so every node's agent shows the
/// non-peer node's alarms. Body: a [`crate::replicated::RelayedAlarm`].
/// Not awaited: the supervisor never waits for the cluster.
pub(in crate::core) async fn relay_alarm(
    core: &mpsc::Sender<Msg>,
    resource: &str,
    cause: ProbableCause,
    raise: Option<(PerceivedSeverity, &str)>,
) {
    let Some(change) = alarm_change(resource, cause, raise) else {
        return;
    };
    let (reply, _) = oneshot::channel();
    let _ = core.send(Msg::Replicate { change, reply }).await;
}

/// The replicated change that raises (or, without `raise`, clears) an
/// alarm on every node: a [`crate::replicated::RelayedAlarm`] body.
pub(in crate::core) fn alarm_change(
    resource: &str,
    cause: ProbableCause,
    raise: Option<(PerceivedSeverity, &str)>,
) -> Option<Change> {
    let alarm = crate::replicated::RelayedAlarm {
        resource: resource.to_string(),
        cause: cause.value(),
        severity: raise.map(|(s, _)| s.value()),
        text: raise.map(|(_, t)| t.to_string()),
    };
    let body = serde_json::to_value(&alarm).ok()?;
    // The newest change of an alarm is its state.
    Some(Change {
        topic: RELAYED_ALARM.into(),
        retention: Retention::Latest(format!("{RELAYED_ALARM}/{resource}/{}", cause.value())),
        body,
        expect: None,
    })
}

/// What a proxy's supervisor works with.
#[derive(Debug, Clone)]
pub(in crate::core) struct ProxyCtx {
    pub(in crate::core) remote: Arc<dyn RemoteShell>,
    /// The incarnation holding the primary role (0: none), shared with
    /// the audit.
    pub(in crate::core) primary: Arc<std::sync::atomic::AtomicU32>,
    pub(in crate::core) events: EventService,
    pub(in crate::core) repo: Repository,
}

/// Runs one proxy component (see [`crate::remote`]): a new incarnation
/// checks the target answers; made primary it pushes the configuration and
/// runs `start`; while primary it relays `stats`; stopped by CRIM while
/// primary it runs `stop`.
pub(in crate::core) async fn supervise_proxy(
    spec: ComponentSpec,
    ctx: ProxyCtx,
    cmds: Arc<Lane<SupCmd>>,
    core: mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let ProxyCtx {
        remote,
        primary,
        repo,
        ..
    } = ctx.clone();
    let Kind::Proxy {
        target,
        start,
        stop: stop_cmd,
        stats,
        config,
        stats_period,
        timeout,
        ..
    } = spec.kind.clone()
    else {
        return;
    };
    let name = spec.name.clone();
    let report = |incarnation: u32, detail: String| {
        Msg::Report(ErrorReport {
            component: name.clone(),
            incarnation,
            kind: ErrorKind::ProcessExit,
            detail,
        })
    };
    let mut current = 0u32;
    // Relayed alarms by cause: Some((severity, text)) raised, None cleared.
    let mut alarms: HashMap<ProbableCause, Option<(PerceivedSeverity, String)>> = HashMap::new();
    let mut stats_failing = false;
    let mut tick = tokio::time::interval(stats_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            cmd = cmds.next() => match cmd {
                None => break,
                Some(SupCmd::Start(inc)) if inc <= current => {}
                Some(SupCmd::Start(inc)) => {
                    current = inc;
                    primary.store(0, SeqCst);
                    match remote.run(&target, "true", timeout).await {
                        Ok(o) if o.status == 0 => {
                            tracing::info!(incarnation = inc, %target, "proxy started: target reachable");
                            let _ = core.send(Msg::Spawned { component: name.clone(), incarnation: inc, pid: None }).await;
                        }
                        Ok(o) => {
                            let _ = core.send(report(inc, format!("{target}: probe {}", status_text(&o)))).await;
                        }
                        Err(e) => {
                            tracing::warn!(incarnation = inc, %target, error = %e, "proxy cannot reach its target");
                            let _ = core.send(report(inc, format!("cannot reach {target}: {e}"))).await;
                        }
                    }
                }
                Some(SupCmd::Assign(inc, _)) if inc != current => {}
                Some(SupCmd::Assign(inc, AvailabilityState::Primary)) => {
                    let r = async {
                        for (path, key) in &config {
                            let contents: String = repo
                                .get_as(key)
                                .await
                                .map_err(|e| format!("cannot read {key} from the repository: {e}"))?
                                .ok_or_else(|| format!("the repository has no {key} (the contents of {path})"))?;
                            remote
                                .put_file(&target, path, contents.as_bytes(), timeout)
                                .await
                                .map_err(|e| format!("cannot write {path} on {target}: {e}"))?;
                        }
                        let cmd = format!("{}{start}", proxy_env(&name, &target, Some(inc)));
                        match remote.run(&target, &cmd, timeout).await {
                            Ok(o) if o.status == 0 => Ok(()),
                            Ok(o) => Err(format!("start command on {target} {}", status_text(&o))),
                            Err(e) => Err(format!("start command on {target}: {e}")),
                        }
                    }
                    .await;
                    match r {
                        Ok(()) => {
                            tracing::info!(incarnation = inc, %target, files = config.len(), "proxy is primary: configuration pushed, service started");
                            primary.store(inc, SeqCst);
                            alarms.clear();
                            tick.reset_immediately();
                            let _ = core.send(Msg::RoleDone { component: name.clone(), incarnation: inc, state: AvailabilityState::Primary }).await;
                        }
                        Err(detail) => {
                            tracing::warn!(incarnation = inc, %detail, "proxy cannot take its target over");
                            let _ = core.send(report(inc, detail)).await;
                        }
                    }
                }
                Some(SupCmd::Assign(inc, state)) => {
                    primary.store(0, SeqCst);
                    let _ = core.send(Msg::RoleDone { component: name.clone(), incarnation: inc, state }).await;
                }
                Some(SupCmd::Stop) => {
                    if primary.swap(0, SeqCst) != 0
                        && let Some(cmd) = &stop_cmd
                    {
                        let cmd = format!("{}{cmd}", proxy_env(&name, &target, Some(current)));
                        match remote.run(&target, &cmd, timeout).await {
                            Ok(o) if o.status == 0 => tracing::info!(%target, "service stopped on the target"),
                            Ok(o) => tracing::warn!(%target, "stop command {}", status_text(&o)),
                            Err(e) => tracing::warn!(%target, error = %e, "stop command failed"),
                        }
                    }
                }
                Some(SupCmd::Release) => primary.store(0, SeqCst),
            },
            _ = tick.tick(), if stats.is_some() && primary.load(SeqCst) != 0 => {
                let cmd = format!("{}{}", proxy_env(&name, &target, Some(current)), stats.as_deref().unwrap_or_default());
                let out = match remote.run(&target, &cmd, timeout).await {
                    Ok(o) if o.status == 0 => o,
                    r => {
                        // The health audit decides about failures; this only tells once.
                        if !stats_failing {
                            let why = match r { Ok(o) => status_text(&o), Err(e) => e.to_string() };
                            tracing::warn!(%target, %why, "stats command failed");
                        }
                        stats_failing = true;
                        continue;
                    }
                };
                stats_failing = false;
                for line in out.stdout.lines() {
                    match parse_report(line) {
                        None => {}
                        Some(Err(e)) => tracing::warn!(%target, error = %e, "malformed stats line skipped"),
                        Some(Ok(Report::Metric { name: stat, value, unit })) => {
                            ctx.events.publish(EventKind::Statistic { resource: target.clone(), name: stat, value, unit });
                        }
                        Some(Ok(Report::Raise { cause, severity, text })) => {
                            let now = Some((severity, text.clone()));
                            let was = alarms.insert(cause, now.clone());
                            if was != Some(now) {
                                relay_alarm(&core, &target, cause, Some((severity, &text))).await;
                            }
                        }
                        Some(Ok(Report::Clear { cause })) => {
                            let was = alarms.insert(cause, None);
                            if was != Some(None) {
                                relay_alarm(&core, &target, cause, None).await;
                            }
                        }
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
}
