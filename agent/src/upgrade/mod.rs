//! The software load, propagation and upgrade managers (the seed's FIG. 10
//! services), run by every node of a cluster started with `halyard boot`.
//!
//! Everything goes through the replicated log, so any node can show it and
//! a new master carries on where the old one stopped:
//! - the campaign (topic `campaign`): its steps, the current one and its
//!   state. Only the master writes it; operators' pause / resume / rollback
//!   are requests (topic `campaign-op`) the master folds in.
//! - each node's release status (topic `release-status`): what it runs,
//!   what it committed, which releases its slots hold, whether it is
//!   healthy, why its last trial failed.
//!
//! The master drives the campaign step by step (fetch, stage, switch-away,
//! reboot, commit); each node carries out the steps that name it on its own
//! store and process. A node "reboots onto a release" by arming it as a
//! trial and exiting with [`crate::boot::REBOOT`]: its boot supervisor owns
//! the watchdog and the fall-back (see `boot.rs`).
//!
//! The master's decisions are a pure state machine (`campaign.rs`, time
//! passed in, replayed by `scenario_tests.rs` from `test_data/upgrade/`);
//! the plan of a campaign and a node's part of a step are pure functions
//! (`plan.rs`). This module is their I/O: the log, the release store, the
//! load server, CRIM and the model objects. The operators' requests
//! (`Upgrade`, and `Pause`, `Resume`, `Rollback` on a campaign) enter
//! through `operator.rs`.

pub(crate) mod campaign;
mod operator;
mod plan;
#[cfg(test)]
mod scenario_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halyard_backend::cluster::{ClusterView, wall_ms};
use halyard_backend::crim::Input as CrimInput;
use halyard_backend::release::ReleaseStore;
use halyard_cluster_model::model::{
    AdminState, AvailabilityState, JobState, NetworkElementPatch, NodePatch, OperState,
    RedundancyModel, ReleasePatch, ReleaseState, UpgradeCampaignPatch,
};
use halyard_cluster_model::port::ModelError;
use halyard_cluster_model::{ObjectName, Value};
use tokio::sync::{Notify, watch};

pub use campaign::{Campaign, CampaignOp, CampaignState, Method, NodeRelease};
use campaign::{Effect, Input, Level, Machine, Setup};
use plan::Duty;

use crate::model::AgentModel;
use crate::replication::{Reader, Replicated};
use campaign::CAMPAIGN_OPS_KEPT;

/// Per node: what it needs to run the managers.
#[derive(Debug)]
pub struct Upgrades {
    pub model: Arc<AgentModel>,
    pub view: ClusterView,
    pub me: String,
    pub root: String,
    pub store: ReleaseStore,
    pub load_server: crate::loadserver::LoadServer,
    /// The release this process runs and whether it is on probation.
    pub running: String,
    pub trial: bool,
    pub boot_ms: u64,
    /// Component -> hosting node; groups with their model and members.
    pub hosts: BTreeMap<String, String>,
    pub groups: Vec<(String, RedundancyModel, Vec<String>)>,
    pub nodes: Vec<String>,
    pub node_objects: BTreeMap<String, String>,
    /// Flipped to ask `main` for an orderly exit with [`crate::boot::REBOOT`].
    pub reboot: Arc<Notify>,
    /// Node -> where its HTTP face serves its releases.
    pub peers: BTreeMap<String, String>,
    state: tokio::sync::Mutex<Replica>,
    /// The master's campaign machine (driven only while master).
    machine: tokio::sync::Mutex<Machine>,
}

/// What this node folded from the log.
#[derive(Debug)]
struct Replica {
    reader: Reader,
    campaign: Option<Campaign>,
    /// The newest campaign change in the log, as kept there: what this
    /// node's next campaign write must follow (compare-and-set).
    campaign_body: Option<serde_json::Value>,
    statuses: BTreeMap<String, NodeRelease>,
    ops: Vec<CampaignOp>,
    reported: Option<NodeRelease>,
    last_error: Option<String>,
    /// Switch-over requests already made (component -> when), master only.
    switched: BTreeMap<String, u64>,
}

fn refuse(reason: impl Into<String>) -> ModelError {
    ModelError::Inconsistent {
        reason: reason.into(),
    }
}

impl Upgrades {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: Arc<AgentModel>,
        view: ClusterView,
        root: String,
        store: ReleaseStore,
        load_server: crate::loadserver::LoadServer,
        watchdog: Duration,
        hosts: BTreeMap<String, String>,
        groups: Vec<(String, RedundancyModel, Vec<String>)>,
        node_objects: BTreeMap<String, String>,
        reboot: Arc<Notify>,
        peers: BTreeMap<String, String>,
    ) -> Self {
        let running = std::env::var("HALYARD_RELEASE")
            .ok()
            .or_else(|| store.state().running)
            .unwrap_or_default();
        let trial = std::env::var("HALYARD_TRIAL").is_ok_and(|v| v == "1");
        let me = view.me();
        let machine = Machine::new(Setup {
            me: me.clone(),
            nodes: node_objects.keys().cloned().collect(),
            serves_http: peers.contains_key(&me),
            watchdog_ms: u64::try_from(watchdog.as_millis()).unwrap_or(u64::MAX),
        });
        Upgrades {
            model,
            nodes: node_objects.keys().cloned().collect(),
            view,
            me,
            root,
            store,
            load_server,
            running,
            trial,
            boot_ms: wall_ms(),
            hosts,
            groups,
            node_objects,
            reboot,
            peers,
            state: tokio::sync::Mutex::new(Replica {
                reader: Reader::new("upgrade"),
                campaign: None,
                campaign_body: None,
                statuses: BTreeMap::new(),
                ops: Vec::new(),
                reported: None,
                last_error: None,
                switched: BTreeMap::new(),
            }),
            machine: tokio::sync::Mutex::new(machine),
        }
    }

    /// The managers' loop: fold the log, show it, do this node's part, and
    /// drive the campaign when this node is master.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.fold().await;
            self.report().await;
            self.show().await;
            if self.act().await {
                return;
            }
            if self.view.master().as_deref() == Some(self.me.as_str()) {
                self.drive().await;
            }
        }
    }

    async fn fold(&self) {
        let mut r = self.state.lock().await;
        let r = &mut *r;
        let Ok(new) = r.reader.next_with_bodies(&self.model.core).await else {
            return;
        };
        for (change, body) in new {
            if matches!(change, Replicated::Campaign(_)) {
                r.campaign_body = Some(body);
            }
            match change {
                // Campaigns are numbered in order: an entry of an older
                // one (a stale master's late write) never makes it current
                // again, or a finished campaign would be driven anew.
                Replicated::Campaign(c) => match &r.campaign {
                    Some(cur) if c.id < cur.id => tracing::warn!(
                        campaign = c.id,
                        current = cur.id,
                        detail = %c.detail,
                        "an entry of an older campaign after a newer one: ignored"
                    ),
                    _ => r.campaign = Some(c),
                },
                Replicated::ReleaseStatus(s) => {
                    r.statuses.insert(s.node.clone(), s);
                }
                Replicated::CampaignOp(op) => {
                    r.ops.push(op);
                    // As bounded as the log keeps them; the newest stays,
                    // which numbers the next request.
                    let excess = r.ops.len().saturating_sub(CAMPAIGN_OPS_KEPT);
                    r.ops.drain(..excess);
                }
                _ => {}
            }
        }
    }

    /// Whether this node is a member with every one of its components
    /// enabled (a trial release must reach this before the watchdog fires).
    async fn healthy(&self) -> bool {
        let up = self.view.node(&self.me).is_some_and(|n| n.up) && self.view.master().is_some();
        if !up {
            return false;
        }
        let Ok(views) = self.model.core.components().await else {
            return false;
        };
        views
            .iter()
            .filter(|v| self.hosts.get(&v.name) == Some(&self.me))
            .filter(|v| v.admin == AdminState::Unlocked)
            .all(|v| v.oper == OperState::Enabled && v.avail != AvailabilityState::OffLine)
    }

    /// The last step this node carried out, kept beside the slots so a
    /// node that rebooted for a step does not carry it out again.
    fn acted_path(&self) -> PathBuf {
        self.store.slot_dir("acted-step")
    }

    fn acted(&self) -> Option<String> {
        std::fs::read_to_string(self.acted_path()).ok()
    }

    fn set_acted(&self, key: &str) {
        let p = self.acted_path();
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(p, key);
    }

    async fn report(&self) {
        let healthy = self.healthy().await;
        if healthy
            && self.trial
            && let Err(e) = self.store.mark_healthy(&self.running)
        {
            tracing::warn!(error = %e, "cannot mark the trial release healthy");
        }
        let st = self.store.state();
        let mut r = self.state.lock().await;
        let status = NodeRelease {
            node: self.me.clone(),
            running: Some(self.running.clone()),
            committed: st.committed.clone(),
            slots: self.store.slots().into_values().flatten().collect(),
            trial: st.trial.as_ref().map(|t| t.version.clone()),
            healthy,
            fallback: st.fallback.clone(),
            boot_ms: self.boot_ms,
            acted: self.acted(),
            error: r.last_error.clone(),
        };
        if r.reported.as_ref() == Some(&status) {
            return;
        }
        if Replicated::ReleaseStatus(status.clone())
            .replicate(&self.model.core)
            .await
            .is_ok()
        {
            r.reported = Some(status);
        }
    }

    /// The campaign, node and release objects, from the folded log.
    async fn show(&self) {
        let (campaign, statuses) = {
            let r = self.state.lock().await;
            (r.campaign.clone(), r.statuses.clone())
        };
        for (node, obj) in &self.node_objects {
            let Some(s) = statuses.get(node) else {
                continue;
            };
            if let Ok(name) = ObjectName::parse(obj) {
                self.model.set(
                    &name,
                    NodePatch::new()
                        .software_version(s.running.clone().unwrap_or_default())
                        .committed_version(s.committed.clone().unwrap_or_default())
                        .fallback(s.fallback.clone().unwrap_or_default())
                        .values(),
                );
            }
        }
        // The element's committed release: the one every node committed.
        let committed: BTreeSet<&str> = statuses
            .values()
            .filter_map(|s| s.committed.as_deref())
            .collect();
        if committed.len() == 1
            && let Ok(root) = ObjectName::parse(&self.root)
        {
            let v = committed.iter().next().expect("one").to_string();
            self.model.set(
                &root,
                NetworkElementPatch::new().software_version(v).values(),
            );
        }
        // Releases the element knows.
        let mut versions: BTreeSet<String> = statuses
            .values()
            .flat_map(|s| s.slots.iter().cloned())
            .collect();
        if let Some(c) = &campaign {
            versions.insert(c.target.clone());
        }
        for v in versions {
            let everywhere =
                |f: &dyn Fn(&NodeRelease) -> bool| !statuses.is_empty() && statuses.values().all(f);
            let state = if everywhere(&|s| s.committed.as_deref() == Some(v.as_str())) {
                ReleaseState::Committed
            } else if statuses.values().any(|s| {
                s.running.as_deref() == Some(v.as_str())
                    && s.committed.as_deref() != Some(v.as_str())
            }) {
                ReleaseState::Trial
            } else if statuses.values().any(|s| {
                s.fallback
                    .as_deref()
                    .is_some_and(|f| f.starts_with(&format!("release {v} ")))
            }) {
                ReleaseState::Failed
            } else if everywhere(&|s| s.slots.contains(&v)) {
                ReleaseState::Propagated
            } else {
                ReleaseState::Fetched
            };
            let files = self
                .store
                .slot_of(&v)
                .and_then(|slot| self.store.manifest(&slot).ok())
                .map_or(0, |m| m.files.len() as u32);
            self.upsert(
                "Release",
                &format!("{}/release={v}", self.root),
                ReleasePatch::new()
                    .version(v.as_str())
                    .state(state)
                    .files(files)
                    .values(),
            )
            .await;
        }
        if let Some(c) = campaign {
            let state = match c.state {
                CampaignState::Running | CampaignState::RollingBack => JobState::Running,
                CampaignState::Paused => JobState::Paused,
                CampaignState::Succeeded => JobState::Succeeded,
                CampaignState::Failed => JobState::Failed,
                CampaignState::RolledBack => JobState::RolledBack,
            };
            let elapsed = c
                .ended_ms
                .unwrap_or_else(wall_ms)
                .saturating_sub(c.started_ms);
            self.upsert(
                "UpgradeCampaign",
                &c.object(&self.root),
                UpgradeCampaignPatch::new()
                    .release(c.target.as_str())
                    .method(c.method.schema())
                    .state(state)
                    .steps_done(c.current.min(c.steps.len()) as u32)
                    .steps_total(c.steps.len() as u32)
                    .from_release(c.from.as_str())
                    .detail(c.detail.as_str())
                    .elapsed(elapsed.min(u64::from(u32::MAX)) as u32)
                    .values(),
            )
            .await;
        }
    }

    async fn upsert(&self, class: &str, object: &str, values: &[(&'static str, Value)]) {
        let Ok(name) = ObjectName::parse(object) else {
            return;
        };
        if self.model.store.update(&name, values).is_err()
            && let Err(e) = self.model.create_dynamic(class, object, values).await
        {
            tracing::warn!(%object, error = %e, "cannot show the object");
        }
    }
    /// This node's part of the current step (see [`plan::duty`]). True
    /// when the node must now stop and boot again.
    async fn act(&self) -> bool {
        let campaign = self.state.lock().await.campaign.clone();
        let Some(c) = campaign else { return false };
        let acted = self.acted();
        let Some((key, duty)) = plan::duty(&c, &self.me, &self.running, acted.as_deref()) else {
            return false;
        };
        let mut error = None;
        let mut reboot = false;
        match duty {
            Duty::Stage { version, from } => match self.stage(&version, from.as_deref()).await {
                Ok(f) => {
                    tracing::info!(release = %version, slot = %f.slot, copied = f.copied, already_present = f.already_present, "release staged")
                }
                Err(e) => error = Some(format!("{}: staging {version}: {e}", self.me)),
            },
            Duty::ArmAndReboot { version } => match self.store.arm_trial(&version) {
                Ok(()) => reboot = true,
                Err(e) => error = Some(format!("{}: cannot arm {version}: {e}", self.me)),
            },
            Duty::Commit { version } => {
                if let Err(e) = self.store.commit(&version) {
                    error = Some(format!("{}: commit {version}: {e}", self.me));
                }
            }
            Duty::Disarm => {
                if let Some(committed) = self.store.state().committed
                    && let Err(e) = self.store.arm_trial(&committed)
                {
                    error = Some(format!("{}: disarm: {e}", self.me));
                }
            }
            Duty::Nothing => {}
        }
        self.set_acted(&key);
        self.state.lock().await.last_error = error.clone().map(|e| format!("{key}: {e}"));
        if let Some(e) = error {
            tracing::error!(step = %key, error = %e, "upgrade step failed on this node");
        }
        if reboot {
            tracing::warn!(step = %key, "rebooting onto the new release");
            self.reboot.notify_one();
        }
        self.report().await;
        reboot
    }

    /// The master's part: bring the campaign machine up to date with the
    /// log and the cluster view, let the time pass, and carry out what it
    /// answers (see [`campaign::Machine`]).
    async fn drive(&self) {
        let (campaign, logged, statuses, ops) = {
            let r = self.state.lock().await;
            (
                r.campaign.clone(),
                r.campaign_body.clone(),
                r.statuses.clone(),
                r.ops.clone(),
            )
        };
        let Some(campaign) = campaign else { return };
        let mut m = self.machine.lock().await;
        let now = wall_ms();
        // The log is the truth: every tick starts from its campaign.
        if m.campaign() != Some(&campaign) {
            m.handle(Input::Logged(campaign), now);
        }
        for s in statuses.into_values() {
            if m.status(&s.node) != Some(&s) {
                m.handle(Input::Status(s), now);
            }
        }
        for n in &self.nodes {
            let up = self.view.node(n).is_some_and(|v| v.up);
            if m.is_up(n) != up {
                m.handle(
                    Input::Membership {
                        node: n.clone(),
                        up,
                    },
                    now,
                );
            }
        }
        let mut fx = Vec::new();
        let last = m.last_op();
        for op in ops.into_iter().filter(|o| o.seq > last) {
            fx.extend(m.handle(Input::Op(op), now));
        }
        fx.extend(m.handle(Input::Tick, now));
        self.execute(&mut m, fx, logged).await;
    }

    /// Carries out the machine's effects in order, feeding the answers to
    /// fetch and switch-away back. Each campaign write names the one it
    /// follows (`logged` first), so a master whose replica was behind, or
    /// that resumes after a pause, cannot put back an older state. A
    /// campaign that cannot be written to the log drops the rest: the next
    /// tick starts again from the log.
    async fn execute(
        &self,
        m: &mut Machine,
        fx: Vec<Effect>,
        mut logged: Option<serde_json::Value>,
    ) {
        let mut queue: std::collections::VecDeque<Effect> = fx.into();
        while let Some(e) = queue.pop_front() {
            let answer = match e {
                Effect::Fetch { version } => {
                    let error = self.fetch(&version).await.err();
                    Input::Fetched { version, error }
                }
                Effect::SwitchAway { nodes } => {
                    let pending = self.switch_away(&nodes).await;
                    Input::Switching { nodes, pending }
                }
                Effect::Publish(c) => {
                    let write = Replicated::Campaign(*c);
                    let body = write.change().map(|c| c.body).ok();
                    if let Err(e) = write.replicate_after(&self.model.core, logged).await {
                        tracing::warn!(error = %e, "cannot commit the campaign's progress");
                        return;
                    }
                    logged = body;
                    continue;
                }
                Effect::Unlock { holder } => {
                    if let Some(c) = m.campaign() {
                        tracing::info!(campaign = c.id, state = ?c.state, detail = %c.detail, "campaign finished");
                    }
                    let _ = self.model.core.unlock(&holder).await;
                    continue;
                }
                Effect::Log { level, message } => {
                    match level {
                        Level::Info => tracing::info!("{message}"),
                        Level::Warn => tracing::warn!("{message}"),
                        Level::Error => tracing::error!("{message}"),
                    }
                    continue;
                }
            };
            let more = m.handle(answer, wall_ms());
            for e in more.into_iter().rev() {
                queue.push_front(e);
            }
        }
    }

    /// Asks CRIM to switch over every primary on `nodes` that has a ready
    /// standby; returns those still primary.
    async fn switch_away(&self, nodes: &[String]) -> Vec<String> {
        let Ok(views) = self.model.core.components().await else {
            return vec!["(CRIM unreachable)".into()];
        };
        let mut pending = Vec::new();
        let now = wall_ms();
        for v in &views {
            let on = self.hosts.get(&v.name).is_some_and(|h| nodes.contains(h));
            // A timed switch-over not yet due: it still serves until then.
            let until = v.primary_until.unwrap_or(0);
            if on && until > halyard_backend::protocol::unix_ns() {
                pending.push(v.name.clone());
                continue;
            }
            if !on || v.avail != AvailabilityState::Primary {
                continue;
            }
            // A group with nobody to take over cannot be switched.
            let has_standby = views.iter().any(|o| {
                o.sg == v.sg
                    && o.name != v.name
                    && o.oper == OperState::Enabled
                    && o.avail == AvailabilityState::Secondary
                    && self.hosts.get(&o.name).is_none_or(|h| !nodes.contains(h))
            });
            if !has_standby {
                continue;
            }
            pending.push(v.name.clone());
            let mut r = self.state.lock().await;
            let last = r.switched.get(&v.name).copied().unwrap_or(0);
            if now.saturating_sub(last) > 2_000 {
                r.switched.insert(v.name.clone(), now);
                drop(r);
                if let Err(e) = self
                    .model
                    .core
                    .request(CrimInput::SwitchOver {
                        component: v.name.clone(),
                        at: None,
                    })
                    .await
                {
                    tracing::warn!(component = %v.name, error = %e, "switch-over refused");
                }
            }
        }
        pending
    }

    /// The nodes of the split (see [`plan::halves`]): the 2N pairs'
    /// hosting nodes and the nodes that host a primary now.
    async fn halves(&self) -> (Vec<String>, Vec<String>) {
        let pairs: Vec<(String, String)> = self
            .groups
            .iter()
            .filter(|(_, m, members)| *m == RedundancyModel::TwoN && members.len() == 2)
            .filter_map(|(_, _, m)| {
                Some((
                    self.hosts.get(&m[0])?.clone(),
                    self.hosts.get(&m[1])?.clone(),
                ))
            })
            .collect();
        let primaries: BTreeSet<String> = self
            .model
            .core
            .components()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.avail == AvailabilityState::Primary)
            .filter_map(|v| self.hosts.get(&v.name).cloned())
            .collect();
        plan::halves(&self.nodes, &pairs, &primaries)
    }

    /// Propagation: the release from the node that fetched it (its HTTP
    /// face), else from the load server, into this node's alternate slot.
    async fn stage(
        &self,
        version: &str,
        from: Option<&str>,
    ) -> Result<halyard_backend::release::Fetched, String> {
        let Some(url) = from
            .filter(|n| *n != self.me)
            .and_then(|n| self.peers.get(n))
        else {
            return self.fetch(version).await;
        };
        let peer = crate::loadserver::LoadServer::Http(url.clone());
        let source = peer.local(version, &self.store).await?;
        self.store
            .fetch(&source, version)
            .await
            .map_err(|e| e.to_string())
    }

    /// The release from the load server into this node's store.
    async fn fetch(&self, version: &str) -> Result<halyard_backend::release::Fetched, String> {
        let source = self.load_server.local(version, &self.store).await?;
        self.store
            .fetch(&source, version)
            .await
            .map_err(|e| e.to_string())
    }
}
