//! Decisions: CEC verdicts and CRIM inputs, turned into effects and incidents.

use super::*;

use halyard_cluster_model::Timestamp;
use halyard_cluster_model::model::AvailabilityState;
use tokio::time::Instant;

use crate::cec::{ErrorKind, ErrorReport, Verdict};
use crate::cluster::{Command, WireInput, wall_ms};
use crate::crim::{CrimError, Effect, Input};
use crate::events::EventKind;
use crate::health::BlackBox;

impl CoreState {
    pub(super) async fn verdict(&mut self, d: crate::cec::Decision) {
        if self.stopping {
            return;
        }
        tracing::info!(component = %d.component, verdict = d.verdict.name(), reason = %d.reason, "CEC verdict");
        self.publish(EventKind::Verdict {
            component: d.component.clone(),
            verdict: match &d.verdict {
                Verdict::Retarget { to, .. } => format!("retarget:{to}"),
                v => v.name().to_string(),
            },
            reason: d.reason.clone(),
        });
        let (report, escalated) = match d.verdict {
            Verdict::Forward(r) => (r, false),
            Verdict::Escalate(r) => (r, true),
            Verdict::Retarget { to, mut report } => {
                report.incarnation = self.incarnations.get(&to).copied().unwrap_or(0);
                report.component = to;
                (report, false)
            }
            Verdict::Hold | Verdict::DiscardStale | Verdict::DiscardDuplicate => return,
        };
        let component = report.component.clone();
        let incarnation = report.incarnation;
        // Saved with the failure report: what the component did lately.
        let blackbox = self
            .blackboxes
            .get(&component)
            .map(BlackBox::snapshot)
            .unwrap_or_default();
        // Also to the cluster log (the agent ships warnings there), where
        // the failure's incident links to it.
        if !blackbox.is_empty() {
            let records: Vec<serde_json::Value> = blackbox
                .iter()
                .map(|(t, r)| serde_json::json!([t, r]))
                .collect();
            tracing::warn!(
                component = %component,
                blackbox = %serde_json::Value::Array(records),
                "black box of the failed component"
            );
        }
        let _ = self.journal.try_send((
            "failure".into(),
            component.clone(),
            serde_json::json!({
                "kind": report.kind.name(), "detail": report.detail, "incarnation": incarnation,
                "blackbox": blackbox.iter().map(|(t, r)| serde_json::json!({"time": t, "record": r})).collect::<Vec<_>>(),
            }),
        ));
        let served = self
            .crim
            .component(&component)
            .map(|v| v.active)
            .unwrap_or_default();
        let input = Input::Failed {
            component: component.clone(),
            incarnation,
            reason: format!("{}: {}", report.kind.name(), report.detail),
            escalated,
        };
        match self.input(input).await {
            Ok(()) => {
                self.cec.recovery_started(&component, incarnation);
                // Contained components cannot serve without their container.
                self.cascade(&component, true).await;
                // In a cluster every node records the incident when it
                // applies the failure (see `decide`).
                if self.cluster.is_some() {
                    return;
                }
                self.record_incident(component, &served, "");
            }
            Err(e) => tracing::debug!(error = %e, "failure report not applied"),
        }
    }

    /// Takes a component's descendants off-line (its failure) or back
    /// on-line (its recovery), through CRIM like any other request.
    pub(super) async fn cascade(&mut self, parent: &str, offline: bool) {
        for child in self.descendants(parent) {
            let input = if offline {
                Input::ContainerFailed {
                    component: child,
                    container: parent.to_string(),
                }
            } else {
                Input::RequestOnline { component: child }
            };
            if let Err(e) = Box::pin(self.input(input)).await {
                tracing::debug!(error = %e, "cascade not applied");
            }
        }
    }

    /// An input: decided here, or in a cluster proposed to the log and
    /// decided by every replica when committed.
    pub(super) async fn input(&mut self, input: Input) -> Result<(), CrimError> {
        if let Some(rt) = &self.cluster {
            rt.propose(Command::Crim {
                input: WireInput::from(&input),
                at_ms: wall_ms(),
            });
            return Ok(());
        }
        self.decide(input, Instant::now()).await
    }

    pub(super) fn replaying(&self) -> bool {
        self.cluster.as_ref().is_some_and(ClusterRt::replaying)
    }

    /// Whether this node executes the component's effects.
    pub(super) fn is_local(&self, component: &str) -> bool {
        match &self.cluster {
            None => true,
            Some(rt) => match rt.hosts.get(component) {
                Some(n) => *n == rt.me,
                None => rt.consensus.is_leader(),
            },
        }
    }

    /// Applies one input to CRIM and executes the effects for this node.
    pub(super) async fn decide(&mut self, input: Input, now: Instant) -> Result<(), CrimError> {
        let failed = match &input {
            Input::Failed { component, .. } | Input::Lost { component, .. } => {
                Some(component.clone())
            }
            _ => None,
        };
        let served = failed
            .as_ref()
            .and_then(|c| self.crim.component(c))
            .map(|v| v.active)
            .unwrap_or_default();
        let registered = match &input {
            Input::Registered { component, .. } => Some(component.clone()),
            _ => None,
        };
        let acked =
            matches!(&input, Input::Acked { state, .. } if *state != AvailabilityState::OffLine)
                .then(|| match &input {
                    Input::Acked { component, .. } => component.clone(),
                    _ => unreachable!(),
                });
        let effects = self.crim.handle(input, now)?;
        if let Some(c) = acked
            && !self.replaying()
            && let Some(state) = self.crim.component(&c).and_then(|v| v.acked)
        {
            self.publish(EventKind::Acked {
                component: c.clone(),
                state: state.yang_name().into(),
            });
            self.records.push(Record::IncidentClose {
                component: c.clone(),
                at: Timestamp::now().0,
            });
        }
        if let Some(c) = registered
            && !self.replaying()
            && self.is_local(&c)
        {
            self.cascade(&c, false).await;
        }
        // Roles first: the fail-over path must not wait for restarts.
        let (assigns, rest): (Vec<Effect>, Vec<Effect>) = effects
            .into_iter()
            .partition(|e| matches!(e, Effect::Assign { .. }));
        for e in assigns.into_iter().chain(rest) {
            self.effect(e).await;
        }
        // In a cluster every node records the incident in its repository.
        if self.cluster.is_some()
            && !self.replaying()
            && let Some(component) = failed
        {
            // A loss has no recovery event of its own: its SIs fail over.
            self.record_incident(component, &served, "fail-over");
        }
        Ok(())
    }

    /// Opens an incident for a failed component (off the core task); the
    /// service is lost if one of the SIs it served has no active now.
    pub(super) fn record_incident(
        &mut self,
        component: String,
        served: &[String],
        default_recovery: &str,
    ) {
        let lost = served
            .iter()
            .any(|si| self.crim.si(si).is_none_or(|(a, _)| a.is_none()));
        let recovery = self
            .last_recovery
            .take()
            .unwrap_or_else(|| default_recovery.to_string());
        self.records.push(Record::IncidentOpen {
            component,
            si: served.join(","),
            at: Timestamp::now().0,
            lost,
            recovery,
        });
    }

    /// A task serving `component` panicked (the reaper logged and counted
    /// it): the task is replaced, and the component is failed, because
    /// while the task was gone nobody supervised or audited it.
    pub(super) async fn task_panicked(&mut self, component: &str, supervisor: bool, panic: &str) {
        if self.stopping {
            return;
        }
        let Some(spec) = self.specs.get(component).cloned() else {
            return;
        };
        let tx = self.self_tx.clone();
        let stop = self.runner.stop_of(component);
        if supervisor {
            if let Some(old) = self.supervisors.remove(component) {
                old.close();
            }
            if let Some(lane) = self.runner.spawn_supervisor(&spec, &tx, stop) {
                self.supervisors.insert(component.to_string(), lane);
            }
        } else if let Some(inc) = self.audit_incarnations.get(component) {
            let inc_rx = inc.subscribe();
            self.runner.spawn_audit(&spec, inc_rx, &tx, stop);
        }
        let report = ErrorReport {
            component: component.to_string(),
            incarnation: self.incarnations.get(component).copied().unwrap_or(0),
            kind: ErrorKind::TaskPanicked,
            detail: format!(
                "its {} panicked: {panic}",
                if supervisor { "supervisor" } else { "audit" }
            ),
        };
        let d = self.cec.report(report, Instant::now());
        self.verdict(d).await;
    }
}
