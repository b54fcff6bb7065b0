//! COpCo, the operation coordinator. Every availability-affecting
//! operation goes through it: it locks the affected subtree, refuses a
//! conflicting command with the reason (policy: reject; the holder's job is
//! named), runs multi-step commands as a job with per-step progress and
//! one overall result, walks subtrees in the right order (children first
//! on shutdown, parent first on start-up), and routes availability changes
//! through CRIM before anything else acts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use halyard_backend::crim::Input;
use halyard_cluster_model::alarm;
use halyard_cluster_model::model::{
    AdminState, AvailabilityState, ComponentPatch, Job, JobPatch, OperatorState,
};
use halyard_cluster_model::port::{
    InformationModel, JobHandle, JobStatus, ModelError, Principal, Query, Scope,
};
use halyard_cluster_model::value::ValueError;
use halyard_cluster_model::{ManagedClass, ObjectName, SCHEMA, Timestamp, Value};
use tokio::sync::watch;

pub(crate) mod locks;
mod machine;

use machine::{JobEvent, Progress};
#[cfg(test)]
mod scenario_tests;

pub(crate) use locks::finished_job;
use locks::{ConflictPolicy, Copco};

use crate::model::AgentModel;

/// How long a step waits for CRIM to reach the requested state.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One step of a job.
#[derive(Debug, Clone)]
enum Step {
    Admin(ObjectName, AdminState),
    SwitchOver(ObjectName),
    Restart(ObjectName),
    Fault(ObjectName, String),
    Offline(ObjectName),
    Online(ObjectName),
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Admin(n, s) => format!("set {n} {}", s.label()),
            Step::SwitchOver(n) => format!("switch over {n}"),
            Step::Restart(n) => format!("restart {n}"),
            Step::Fault(n, f) => format!("inject {f} into {n}"),
            Step::Offline(n) => format!("take {n} off-line for diagnostics"),
            Step::Online(n) => format!("bring {n} back on-line"),
        }
    }
}

/// Components of a subtree, deepest first (the shutdown order).
async fn components_under(
    model: &AgentModel,
    root: &ObjectName,
) -> Result<Vec<ObjectName>, ModelError> {
    let mut v: Vec<ObjectName> = model
        .store
        .query(&Query {
            scope: Scope::Subtree(root.clone()),
            classes: vec!["Component".into()],
            ..Query::default()
        })
        .await?
        .into_iter()
        .map(|o| o.name)
        .collect();
    v.sort_by_key(|n| std::cmp::Reverse(n.depth()));
    Ok(v)
}

/// Runs a schema operation on an object.
pub async fn invoke(
    model: &AgentModel,
    copco: &Copco,
    target: &ObjectName,
    operation: &str,
    args: Vec<(String, Value)>,
    principal: Principal,
) -> Result<JobHandle, ModelError> {
    let obj = model.store.get(target).await?;
    let method = halyard_cluster_model::port::resolve_operation(&obj, operation, &args)?;
    let arg = |n: &str| {
        args.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string)
    };
    let flag = |n: &str| {
        args.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(n) && matches!(v, Value::Bool(true)))
    };
    let is_component = SCHEMA.is_a(obj.class.name, "Component");

    // An operator state (acknowledgement is `ack`) is no availability
    // operation: no job, no lock.
    if alarm::is_alarm(&obj)
        && matches!(method.name, alarm::ACKNOWLEDGE | alarm::SET_OPERATOR_STATE)
    {
        let (state, text) = if method.name == alarm::ACKNOWLEDGE {
            (OperatorState::Ack, String::new())
        } else {
            let name = arg("State").unwrap_or_default();
            let state = name
                .parse::<OperatorState>()
                .map_err(|_| ModelError::InvalidValue {
                    attribute: "State".into(),
                    error: ValueError::WrongValue {
                        reason: format!(
                            "'{name}' is no operator state (none, ack, closed, shelved, un-shelved)"
                        ),
                    },
                })?;
            (state, arg("Text").unwrap_or_default())
        };
        let what = format!("set operator state of {target} to {}", state.yang_name());
        if let Err(e) = model
            .set_operator_state(target, state, &text, &principal.user)
            .await
        {
            model
                .audit(&principal, &what, &format!("refused: {e}"))
                .await;
            return Err(e);
        }
        model.audit(&principal, &what, "ok").await;
        return Ok(finished_job(
            target.clone(),
            format!("operator state {}", state.yang_name()),
        ));
    }

    // Purging alarms is no availability operation either.
    if method.name == alarm::PURGE {
        let f = alarm::PurgeFilter::from_args(&args);
        let what = format!(
            "purge {}alarms {} older-than {}s {}{}{}",
            if f.shelved { "shelved " } else { "" },
            f.clearance,
            f.older_than_s,
            f.severity,
            if f.operator_state.is_empty() {
                String::new()
            } else {
                format!(" operator-state {}", f.operator_state)
            },
            if f.operator.is_empty() {
                String::new()
            } else {
                format!(" by {}", f.operator)
            },
        );
        let n = audited(model, &principal, &what, "purged", model.purge_alarms(&f)).await?;
        return Ok(counted_job(target, n, format!("{n} alarms purged")));
    }

    // Nor is compressing alarms' status changes.
    if method.name == halyard_cluster_model::alarm::COMPRESS {
        let resource = arg("Resource").unwrap_or_default();
        let alarm_type = arg("AlarmType").unwrap_or_default();
        let shelved = flag("Shelved");
        let what = format!(
            "compress {}alarms resource '{resource}' type '{alarm_type}'",
            if shelved { "shelved " } else { "" }
        );
        let compressed = model.compress_alarms(&resource, &alarm_type, shelved);
        let n = audited(model, &principal, &what, "compressed", compressed).await?;
        return Ok(counted_job(target, n, format!("{n} alarms compressed")));
    }

    // Cluster fault injection acts at once on this node's transport.
    if obj.class.name == "Node"
        && matches!(
            method.name,
            "Admit"
                | "Evict"
                | "Disconnect"
                | "Reconnect"
                | "SetDeaf"
                | "SetLinkDown"
                | "SetImpairment"
        )
    {
        return cluster_operation(model, target, method.name, &args, &principal).await;
    }

    // Operations a manager serves itself: the software upgrade manager's
    // campaigns (replicated, resumed by a new master, holding COpCo's lock
    // on the element), the simulated hot-swap bus's Insert and Remove.
    if let Some(server) = model.server_of(obj.class, method.name) {
        return server.invoke(target, method.name, &args, &principal).await;
    }
    if (obj.class.name == "NetworkElement" && method.name == "Upgrade")
        || obj.class.name == "UpgradeCampaign"
    {
        return Err(ModelError::Inconsistent {
            reason: "software upgrades need a cluster node started with `halyard boot` and a [release] section".into(),
        });
    }

    let steps: Vec<Step> = match (method.name, is_component) {
        ("Lock", true) => components_under(model, target)
            .await?
            .into_iter()
            .map(|c| Step::Admin(c, AdminState::Locked))
            .collect(),
        ("Unlock", true) => {
            let mut v = components_under(model, target).await?;
            v.reverse(); // parent first on start-up
            v.into_iter()
                .map(|c| Step::Admin(c, AdminState::Unlocked))
                .collect()
        }
        ("Restart" | "Reset", true) => vec![Step::Restart(target.clone())],
        ("SwitchOver", true) => vec![Step::SwitchOver(target.clone())],
        ("SwitchOver", false) if obj.class.name == "ServiceGroup" => {
            let views = model
                .core
                .components()
                .await
                .map_err(|e| ModelError::Unavailable {
                    reason: e.to_string(),
                })?;
            views
                .iter()
                .filter(|v| v.sg == target.as_str() && v.avail == AvailabilityState::Primary)
                .filter_map(|v| ObjectName::parse(&v.name).ok())
                .map(Step::SwitchOver)
                .collect()
        }
        ("RunDiagnostics", true) => {
            vec![Step::Offline(target.clone()), Step::Online(target.clone())]
        }
        ("InjectFault", true) => vec![Step::Fault(
            target.clone(),
            arg("Fault").unwrap_or_else(|| "crash".into()),
        )],
        _ => {
            return Err(ModelError::NoSuchOperation {
                class: obj.class.name.to_string(),
                operation: format!("{} (not supported on this object)", method.name),
            });
        }
    };
    if steps.is_empty() {
        return Err(ModelError::Inconsistent {
            reason: format!("nothing to do for {} on {target}", method.name),
        });
    }

    let n = model.next_job.fetch_add(1, Ordering::Relaxed);
    let job = ObjectName::parse(&format!("{}/job={}-{n}", model.root, Timestamp::now().0))
        .map_err(|e| ModelError::CommitFailed {
            reason: e.to_string(),
        })?;
    let what = format!("{} {target}", method.name);
    let mut queued = None;
    if let Err(reason) = copco.acquire(target, &job).await {
        if copco.policy == ConflictPolicy::Reject {
            model
                .audit(&principal, &what, &format!("rejected: {reason}"))
                .await;
            return Err(ModelError::Conflict { reason });
        }
        queued = Some(reason);
    }
    let total = steps.len() as u32;
    let progress = Progress::new(
        what.clone(),
        steps.iter().map(Step::describe).collect(),
        queued.as_deref(),
    );
    let first = progress.status();
    model
        .create_dynamic(
            Job::META.name,
            job.as_str(),
            JobPatch::new()
                .operation(method.name)
                .target(target.to_string())
                .state(first.state)
                .steps_done(0)
                .steps_total(total)
                .detail(first.detail.clone())
                .principal(principal.user.clone())
                .values(),
        )
        .await?;
    let (tx, status) = watch::channel(first);
    let handle = JobHandle {
        job: job.clone(),
        status,
    };
    // The job runs on its own; its lock is released when it finishes, or
    // if its task panics (then the job fails with the reason).
    let model = model.self_arc();
    let target_owned = target.clone();
    let tx = Arc::new(tx);
    // Shared with the panic handler, which ends the job where it stood.
    let progress = Arc::new(std::sync::Mutex::new(progress));
    // Each event: the Job object, then the handle.
    let show = {
        let (model, job, tx, progress) = (model.clone(), job.clone(), tx.clone(), progress.clone());
        move |e: Option<JobEvent>| -> JobStatus {
            let mut p = progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = e {
                p.apply(e);
            }
            model.set(&job, p.patch().values());
            tx.send_replace(p.status());
            p.status()
        }
    };
    let on_panic = {
        let (model, job, principal, what, show) = (
            model.clone(),
            job.clone(),
            principal.clone(),
            what.clone(),
            show.clone(),
        );
        move |panic: String| async move {
            let status = show(Some(JobEvent::Panicked(panic)));
            model.copco_release(&job).await;
            model.audit(&principal, &what, &status.detail).await;
        }
    };
    let tasks = model.tasks.clone();
    let name = format!("job {job}");
    tasks.spawn_or(
        name,
        async move {
            if queued.is_some()
                && let Err(reason) = model.copco_acquire_queued(&target_owned, &job).await
            {
                let status = show(Some(JobEvent::Refused(reason)));
                model.audit(&principal, &what, &status.detail).await;
                return;
            }
            show(Some(JobEvent::Admitted));
            let mut failed = false;
            for step in &steps {
                show(Some(JobEvent::StepStarted));
                let r = run_step(&model, step).await;
                failed = r.is_err();
                show(Some(match r {
                    Ok(()) => JobEvent::StepDone,
                    Err(e) => JobEvent::StepFailed(e),
                }));
                if failed {
                    break;
                }
            }
            let status = show((!failed).then_some(JobEvent::Finished));
            model.copco_release(&job).await;
            model.audit(&principal, &what, &status.detail).await;
        },
        on_panic,
    );
    Ok(handle)
}

async fn wait_state(
    model: &AgentModel,
    component: &str,
    pred: impl Fn(&halyard_backend::crim::ComponentView) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let views = model.core.components().await.map_err(|e| e.to_string())?;
        if views
            .iter()
            .find(|v| v.name == component)
            .is_some_and(&pred)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{component} did not reach the requested state in {} s",
                STEP_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_step(model: &Arc<AgentModel>, step: &Step) -> Result<(), String> {
    let core = &model.core;
    match step {
        Step::Admin(n, s) => {
            core.request(Input::SetAdmin {
                component: n.to_string(),
                admin: *s,
            })
            .await
            .map_err(|e| e.to_string())?;
            model.set(n, ComponentPatch::new().admin_state(*s).values());
            if *s == AdminState::Locked {
                wait_state(model, n.as_str(), |v| v.avail == AvailabilityState::OffLine).await
            } else {
                Ok(())
            }
        }
        Step::SwitchOver(n) => {
            core.request(Input::SwitchOver {
                component: n.to_string(),
                at: None,
            })
            .await
            .map_err(|e| e.to_string())?;
            // A timed switch-over is over at its instant, not when decided.
            wait_state(model, n.as_str(), |v| {
                v.avail != AvailabilityState::Primary
                    && v.primary_until
                        .is_none_or(|t| t <= halyard_backend::protocol::unix_ns())
            })
            .await
        }
        Step::Restart(n) => {
            let before = core
                .components()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|v| v.name == n.as_str())
                .map_or(0, |v| v.incarnation);
            core.request(Input::Restart {
                component: n.to_string(),
            })
            .await
            .map_err(|e| e.to_string())?;
            wait_state(model, n.as_str(), |v| {
                v.incarnation > before && v.acked.is_some()
            })
            .await
        }
        Step::Fault(n, f) => core
            .inject_fault(n.as_str(), f)
            .await
            .map_err(|e| e.to_string()),
        Step::Offline(n) => {
            core.request(Input::RequestOffline {
                component: n.to_string(),
                reason: "diagnostics".into(),
            })
            .await
            .map_err(|e| e.to_string())?;
            wait_state(model, n.as_str(), |v| v.avail == AvailabilityState::OffLine).await?;
            // The simulated diagnostics take two seconds and pass.
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        }
        Step::Online(n) => core
            .request(Input::RequestOnline {
                component: n.to_string(),
            })
            .await
            .map_err(|e| e.to_string()),
    }
}

/// Operations on the cluster from a Node object: admitting it, and the
/// fault injection of the node-to-node transport. Done at once (no job).
async fn cluster_operation(
    model: &AgentModel,
    target: &ObjectName,
    operation: &str,
    args: &[(String, Value)],
    principal: &Principal,
) -> Result<JobHandle, ModelError> {
    let hooks = model
        .cluster
        .get()
        .ok_or_else(|| ModelError::Inconsistent {
            reason: "this agent is not a node of a cluster".into(),
        })?;
    let (node, id) =
        hooks
            .nodes
            .get(target.as_str())
            .cloned()
            .ok_or_else(|| ModelError::Inconsistent {
                reason: format!("{target} is not a peer node"),
            })?;
    let refuse = |reason: String| Err(ModelError::Inconsistent { reason });
    // The peers (by consensus id) a fault-injection set holds now.
    let peers = |holds: fn(&halyard_consensus::Faults, u64) -> bool| {
        hooks
            .nodes
            .values()
            .map(|(_, i)| *i)
            .filter(|i| holds(&hooks.faults, *i))
            .collect::<std::collections::BTreeSet<u64>>()
    };
    let arg = |name: &str| {
        args.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let detail = match operation {
        "Admit" => {
            let addrs = hooks.addrs.get(&node).cloned().unwrap_or_default();
            let r = hooks.consensus.add_node(id, addrs).await;
            let detail = match &r {
                Ok(()) => format!("{node} admitted as a voting member"),
                Err(e) => format!("{node} not admitted: {e}"),
            };
            if r.is_err() {
                model
                    .audit(principal, &format!("Admit {target}"), &detail)
                    .await;
                return Err(ModelError::CommitFailed { reason: detail });
            }
            detail
        }
        "Evict" => {
            if node == hooks.me {
                return refuse(format!(
                    "a node is evicted through another node's face, not its own ({node})"
                ));
            }
            // Out of the voters first: the majority is counted without it
            // from then on (a dead node no longer counts against it).
            if let Err(e) = hooks.consensus.remove_node(id).await {
                let detail = format!("{node} not evicted: {e}");
                model
                    .audit(principal, &format!("Evict {target}"), &detail)
                    .await;
                return Err(ModelError::CommitFailed { reason: detail });
            }
            // Then whatever it served fails over (a live evicted node
            // fences itself: it holds no lease outside the voters).
            let lost = halyard_backend::cluster::Command::NodeLost {
                node: node.clone(),
                restart: false,
                reason: format!("evicted by {}", principal.user),
                boot: None,
            };
            if let Ok(v) = serde_json::to_value(lost)
                && let Err(e) = hooks.consensus.propose(v, Duration::from_secs(5)).await
            {
                tracing::warn!(%node, error = %e, "evicted, but its loss was not committed");
            }
            format!("{node} evicted from the voting members")
        }
        "SetLinkDown" => {
            if node != hooks.me {
                return refuse(format!(
                    "links are set on the serving node's own object ({})",
                    hooks.me
                ));
            }
            let link = arg("Link")
                .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(0.0) as usize;
            let down = arg("Down").is_none_or(truthy);
            hooks.faults.set_link_down(link, down);
            format!("link {link} {}", if down { "down" } else { "up" })
        }
        "SetImpairment" => {
            if node != hooks.me {
                return refuse(format!(
                    "the impairment is set on the serving node's own object ({})",
                    hooks.me
                ));
            }
            let number = |name: &str| {
                arg(name).and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
            };
            let delay = number("DelayMs").unwrap_or(0.0);
            let loss = number("LossPercent").unwrap_or(0.0);
            if !(0.0..=10_000.0).contains(&delay) || !(0.0..=100.0).contains(&loss) {
                return refuse(format!(
                    "found DelayMs {delay} and LossPercent {loss}, expected 0 to 10000 ms and 0 to 100 %"
                ));
            }
            hooks.faults.impair(
                Duration::from_millis(delay as u64),
                (loss * 10.0).round() as u32,
            );
            tracing::warn!(
                operation = "SetImpairment",
                delay_ms = delay as u64,
                loss_percent = loss,
                "cluster fault injection"
            );
            format!("cluster links delayed {delay} ms, {loss} % lost")
        }
        "SetDeaf" => {
            if node == hooks.me {
                return refuse("a node cannot be deaf to itself".into());
            }
            let deaf = arg("Deaf").is_none_or(truthy);
            hooks
                .faults
                .deafen_to(with(peers(halyard_consensus::Faults::is_deaf_to), id, deaf));
            tracing::warn!(operation = "SetDeaf", %node, deaf, "cluster fault injection");
            format!("{} {node}", if deaf { "deaf to" } else { "hearing" })
        }
        m => {
            if node == hooks.me {
                return refuse("a node cannot disconnect from itself".into());
            }
            // Reconnecting also ends a one-way partition.
            if m == "Reconnect" && hooks.faults.is_deaf_to(id) {
                hooks.faults.deafen_to(with(
                    peers(halyard_consensus::Faults::is_deaf_to),
                    id,
                    false,
                ));
            }
            hooks.faults.isolate_from(with(
                peers(halyard_consensus::Faults::is_isolated_from),
                id,
                m == "Disconnect",
            ));
            tracing::warn!(operation = m, %node, "cluster fault injection");
            format!("{} {node}", m.to_lowercase())
        }
    };
    model
        .audit(principal, &format!("{operation} {target}"), &detail)
        .await;
    Ok(finished_job(target.clone(), detail))
}

/// A boolean operation argument: true, 1 or "true"/"1".
fn truthy(v: &Value) -> bool {
    v.as_f64() == Some(1.0) || matches!(v.as_str(), Some("true" | "1"))
}

/// `set` with `id` in it or not.
fn with(
    mut set: std::collections::BTreeSet<u64>,
    id: u64,
    member: bool,
) -> std::collections::BTreeSet<u64> {
    if member {
        set.insert(id);
    } else {
        set.remove(&id);
    }
    set
}

/// Runs an alarm operation that counts what it did, recording it in the
/// audit trail: `ok: <n> <done>`, or why it was refused.
async fn audited(
    model: &AgentModel,
    principal: &Principal,
    what: &str,
    done: &str,
    op: impl std::future::Future<Output = Result<u32, ModelError>>,
) -> Result<u32, ModelError> {
    match op.await {
        Ok(n) => {
            model
                .audit(principal, what, &format!("ok: {n} {done}"))
                .await;
            Ok(n)
        }
        Err(e) => {
            model.audit(principal, what, &format!("refused: {e}")).await;
            Err(e)
        }
    }
}

/// A job already done (an operation that is no availability operation),
/// with the count it gives back.
fn counted_job(target: &ObjectName, n: u32, detail: String) -> JobHandle {
    let (tx, status) = tokio::sync::watch::channel(halyard_cluster_model::port::JobStatus {
        state: halyard_cluster_model::model::JobState::Succeeded,
        steps_done: 1,
        steps_total: 1,
        detail,
        result: Some(n),
    });
    drop(tx);
    JobHandle {
        job: target.clone(),
        status,
    }
}
