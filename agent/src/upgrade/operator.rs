//! The operators' entries: `Upgrade` on the element starts a campaign
//! (checked here, planned by `plan.rs`, committed to the log), and `Pause`,
//! `Resume` and `Rollback` on a campaign object are requests the master
//! folds in; both answer once the log shows them.

use std::time::Duration;

use halyard_backend::cluster::wall_ms;
use halyard_cluster_model::port::{JobHandle, ModelError, Principal};
use halyard_cluster_model::{ObjectName, Value};

use super::{CampaignOp, Method, Upgrades, plan, refuse};
use crate::replication::Replicated;

impl Upgrades {
    /// The software upgrade manager's entry: `Upgrade` on the element.
    pub async fn start(
        &self,
        version: &str,
        method: &str,
        principal: &Principal,
    ) -> Result<JobHandle, ModelError> {
        let method = Method::parse(method).ok_or_else(|| {
            refuse(format!(
                "found method \"{method}\", expected rolling, splitMode or reboot"
            ))
        })?;
        if version.is_empty()
            || !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(refuse(format!(
                "found release \"{version}\", expected a version name"
            )));
        }
        self.fold().await;
        let (previous, logged, statuses) = {
            let r = self.state.lock().await;
            (
                r.campaign.clone(),
                r.campaign_body.clone(),
                r.statuses.clone(),
            )
        };
        if let Some(p) = previous.as_ref().filter(|p| p.state.active()) {
            return Err(ModelError::Conflict {
                reason: format!("campaign {} to release {} is still running", p.id, p.target),
            });
        }
        let from = self.store.state().committed.ok_or_else(|| {
            refuse("this node has no committed release: start it with `halyard boot`")
        })?;
        if from == version {
            return Err(refuse(format!("release {version} is already committed")));
        }
        if let Some(n) = self.nodes.iter().find(|n| !statuses.contains_key(*n)) {
            return Err(refuse(format!("node {n} has not reported its release yet")));
        }
        if !self.load_server.has(version).await {
            return Err(refuse(format!(
                "release {version} is not on the load server {}",
                self.load_server.describe()
            )));
        }
        let id = previous.map_or(1, |p| p.id + 1);
        let halves = match method {
            Method::SplitMode => self.halves().await,
            _ => Default::default(),
        };
        let master = self.view.master();
        let steps = plan::plan(method, version, &self.nodes, master.as_deref(), halves);
        let c = plan::new_campaign(
            id,
            method,
            version,
            &from,
            steps,
            &principal.user,
            wall_ms(),
        );
        // COpCo: the campaign holds the whole element; a conflicting
        // command (a second campaign, a shelf power-off) is refused with
        // this holder as the reason.
        self.model
            .core
            .lock(&self.root, &c.holder())
            .await
            .map_err(|e| ModelError::Conflict {
                reason: e.to_string(),
            })?;
        // Only after the newest campaign this node has read: two requests,
        // or a node whose replica is behind, never number two campaigns
        // alike or start one beside a running one.
        if let Err(e) = Replicated::Campaign(c.clone())
            .replicate_after(&self.model.core, logged)
            .await
        {
            let _ = self.model.core.unlock(&c.holder()).await;
            return Err(ModelError::CommitFailed {
                reason: e.to_string(),
            });
        }
        let what = format!("Upgrade to {version} ({method:?})");
        self.model.audit(principal, &what, "campaign started").await;
        self.fold().await;
        self.show().await;
        let job = ObjectName::parse(&c.object(&self.root)).map_err(|e| refuse(e.to_string()))?;
        Ok(crate::copco::locks::finished_job(
            job,
            format!("campaign {id} started: {}", c.steps.len()),
        ))
    }

    /// Pause, Resume or Rollback on a campaign object: a request the
    /// master folds in; answered once the campaign shows it.
    pub async fn request(
        &self,
        target: &ObjectName,
        op: &str,
        principal: &Principal,
    ) -> Result<JobHandle, ModelError> {
        self.fold().await;
        let (campaign, seq) = {
            let r = self.state.lock().await;
            (
                r.campaign.clone(),
                r.ops.iter().map(|o| o.seq).max().unwrap_or(0) + 1,
            )
        };
        let c = campaign
            .filter(|c| c.object(&self.root) == target.as_str())
            .ok_or_else(|| refuse(format!("{target} is not the current campaign")))?;
        if !c.state.active() {
            return Err(refuse(format!(
                "campaign {} has finished ({:?})",
                c.id, c.state
            )));
        }
        Replicated::CampaignOp(CampaignOp {
            seq,
            campaign: c.id,
            op: op.to_string(),
            principal: principal.user.clone(),
        })
        .replicate(&self.model.core)
        .await
        .map_err(|e| ModelError::CommitFailed {
            reason: e.to_string(),
        })?;
        self.model
            .audit(principal, &format!("{op} {target}"), "requested")
            .await;
        // The master folds it in within a tick or two.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.fold().await;
            let detail = {
                let r = self.state.lock().await;
                r.campaign
                    .as_ref()
                    .filter(|x| x.ops_seen >= seq)
                    .map(|x| x.detail.clone())
            };
            if let Some(detail) = detail {
                // The serving node's objects show it before the answer.
                self.show().await;
                return Ok(crate::copco::locks::finished_job(target.clone(), detail));
            }
        }
        Err(ModelError::Unavailable {
            reason: "the master did not take the request within 5 s".into(),
        })
    }
}

/// The element's Upgrade and a campaign's Pause, Resume and Rollback.
#[async_trait::async_trait]
impl crate::operations::Operations for Upgrades {
    fn serves(&self, class: &halyard_cluster_model::meta::ClassMeta, operation: &str) -> bool {
        (class.name == "NetworkElement" && operation == "Upgrade")
            || class.name == "UpgradeCampaign"
    }

    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: &[(String, Value)],
        principal: &Principal,
    ) -> Result<JobHandle, ModelError> {
        let arg = |n: &str| {
            args.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string)
        };
        let r = if operation == "Upgrade" {
            self.start(
                &arg("Release").unwrap_or_default(),
                &arg("Method").unwrap_or_else(|| "rolling".into()),
                principal,
            )
            .await
        } else {
            self.request(target, operation, principal).await
        };
        if let Err(e) = &r {
            self.model
                .audit(
                    principal,
                    &format!("{operation} {target}"),
                    &format!("rejected: {e}"),
                )
                .await;
        }
        r
    }
}
