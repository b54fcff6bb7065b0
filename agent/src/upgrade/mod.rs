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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halyard_backend::cluster::{ClusterView, wall_ms};
use halyard_backend::crim::Input;
use halyard_backend::release::ReleaseStore;
use halyard_cluster_model::model::{
    AdminState, AvailabilityState, JobState, OperState, RedundancyModel, ReleaseState,
    UpgradeMethod,
};
use halyard_cluster_model::port::{JobHandle, ModelError, Principal};
use halyard_cluster_model::{ObjectName, SchemaEnum, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::model::AgentModel;
use crate::replication::{CAMPAIGN_OPS_KEPT, Reader, Replicated};

/// How long the master waits for a step before it fails the campaign.
const STAGE_TIMEOUT: Duration = Duration::from_secs(120);
const SWITCH_TIMEOUT: Duration = Duration::from_secs(15);
/// On top of the watchdog: a node's stop, start and rejoin.
const REBOOT_SLACK: Duration = Duration::from_secs(60);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    Rolling,
    SplitMode,
    Reboot,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        match s {
            "rolling" => Some(Method::Rolling),
            "splitMode" | "split-mode" | "split" => Some(Method::SplitMode),
            "reboot" => Some(Method::Reboot),
            _ => None,
        }
    }

    fn schema(self) -> UpgradeMethod {
        match self {
            Method::Rolling => UpgradeMethod::Rolling,
            Method::SplitMode => UpgradeMethod::SplitMode,
            Method::Reboot => UpgradeMethod::Reboot,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CampaignState {
    Running,
    Paused,
    RollingBack,
    Succeeded,
    Failed,
    RolledBack,
}

impl CampaignState {
    fn active(self) -> bool {
        matches!(
            self,
            CampaignState::Running | CampaignState::Paused | CampaignState::RollingBack
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Step {
    /// The load manager (master) fetches the release from the load server.
    Fetch { version: String },
    /// The propagation manager: every node copies it to its alternate slot
    /// from `from`, the node whose load manager fetched it (or from the
    /// load server when that node serves no HTTP).
    Stage {
        version: String,
        #[serde(default)]
        from: Option<String>,
    },
    /// CRIM moves the primaries of these nodes to their standbys.
    SwitchAway { nodes: Vec<String> },
    /// These nodes reboot onto the release and must come back healthy on it.
    Reboot { nodes: Vec<String>, version: String },
    /// Every node commits the release.
    Commit { version: String },
    /// Every node drops its armed trial (end of a rollback).
    Disarm,
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Fetch { version } => format!("fetch release {version} from the load server"),
            Step::Stage { version, from } => match from {
                Some(n) => format!("copy release {version} from {n} to every node"),
                None => format!("copy release {version} to every node"),
            },
            Step::SwitchAway { nodes } => {
                format!("switch primaries away from {}", nodes.join(", "))
            }
            Step::Reboot { nodes, version } => {
                format!("reboot {} onto release {version}", nodes.join(", "))
            }
            Step::Commit { version } => format!("commit release {version}"),
            Step::Disarm => "disarm trial releases".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u64,
    pub method: Method,
    pub target: String,
    pub from: String,
    pub state: CampaignState,
    pub steps: Vec<Step>,
    pub current: usize,
    /// Bumped when the steps are replaced (rollback), so a node's record of
    /// what it did never matches a step of the old plan.
    pub epoch: u32,
    pub step_started_ms: u64,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub detail: String,
    /// Why the campaign is rolling back.
    #[serde(default)]
    pub reason: Option<String>,
    /// Operator requests folded in so far.
    pub ops_seen: u64,
    pub principal: String,
}

impl Campaign {
    fn object(&self, root: &str) -> String {
        format!("{root}/campaign={}", self.id)
    }

    fn holder(&self) -> String {
        format!("upgrade campaign {}", self.id)
    }

    fn step_key(&self) -> String {
        format!("{}/{}/{}", self.id, self.epoch, self.current)
    }
}

/// A node's release status, as it reports it through the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRelease {
    pub node: String,
    pub running: Option<String>,
    pub committed: Option<String>,
    /// Releases in its slots.
    pub slots: Vec<String>,
    pub trial: Option<String>,
    pub healthy: bool,
    pub fallback: Option<String>,
    /// When this process started (wall clock, ms): a reboot shows as a
    /// later value.
    pub boot_ms: u64,
    /// The last step this node carried out, and its error if it failed.
    pub acted: Option<String>,
    pub error: Option<String>,
}

/// An operator's request about a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignOp {
    pub seq: u64,
    pub campaign: u64,
    pub op: String,
    pub principal: String,
}

/// Per node: what it needs to run the managers.
#[derive(Debug)]
pub struct Upgrades {
    pub model: Arc<AgentModel>,
    pub view: ClusterView,
    pub me: String,
    pub root: String,
    pub store: ReleaseStore,
    pub load_server: crate::loadserver::LoadServer,
    pub watchdog: Duration,
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
}

/// What this node folded from the log.
#[derive(Debug)]
struct Replica {
    reader: Reader,
    campaign: Option<Campaign>,
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
        Upgrades {
            model,
            nodes: node_objects.keys().cloned().collect(),
            view,
            me,
            root,
            store,
            load_server,
            watchdog,
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
                statuses: BTreeMap::new(),
                ops: Vec::new(),
                reported: None,
                last_error: None,
                switched: BTreeMap::new(),
            }),
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
        let Ok(new) = r.reader.next(&self.model.core).await else {
            return;
        };
        for change in new {
            match change {
                Replicated::Campaign(c) => r.campaign = Some(c),
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
                    &[
                        (
                            "SoftwareVersion",
                            Value::Str(s.running.clone().unwrap_or_default()),
                        ),
                        (
                            "CommittedVersion",
                            Value::Str(s.committed.clone().unwrap_or_default()),
                        ),
                        (
                            "Fallback",
                            Value::Str(
                                s.fallback
                                    .clone()
                                    .unwrap_or_default()
                                    .chars()
                                    .take(255)
                                    .collect(),
                            ),
                        ),
                    ],
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
            self.model.set(&root, &[("SoftwareVersion", Value::Str(v))]);
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
                vec![
                    ("Version", Value::Str(v.clone())),
                    ("State", Value::Enum(state.value())),
                    ("Files", Value::U32(files)),
                ],
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
                vec![
                    ("Release", Value::Str(c.target.clone())),
                    ("Method", Value::Enum(c.method.schema().value())),
                    ("State", Value::Enum(state.value())),
                    ("StepsDone", Value::U32(c.current.min(c.steps.len()) as u32)),
                    ("StepsTotal", Value::U32(c.steps.len() as u32)),
                    ("FromRelease", Value::Str(c.from.clone())),
                    ("Detail", Value::Str(c.detail.chars().take(255).collect())),
                    (
                        "Elapsed",
                        Value::U32(elapsed.min(u64::from(u32::MAX)) as u32),
                    ),
                ],
            )
            .await;
        }
    }

    async fn upsert(&self, class: &str, object: &str, values: Vec<(&'static str, Value)>) {
        let Ok(name) = ObjectName::parse(object) else {
            return;
        };
        if self.model.store.update(&name, &values).is_err()
            && let Err(e) = self.model.create_dynamic(class, object, &values).await
        {
            tracing::warn!(%object, error = %e, "cannot show the object");
        }
    }

    /// This node's part of the current step. True when the node must now
    /// stop and boot again.
    async fn act(&self) -> bool {
        let campaign = self.state.lock().await.campaign.clone();
        let Some(c) = campaign else { return false };
        if !matches!(c.state, CampaignState::Running | CampaignState::RollingBack) {
            return false;
        }
        let Some(step) = c.steps.get(c.current) else {
            return false;
        };
        let key = c.step_key();
        if self.acted().as_deref() == Some(key.as_str()) {
            return false;
        }
        let mut error = None;
        let mut reboot = false;
        match step {
            Step::Stage { version, from } => match self.stage(version, from.as_deref()).await {
                Ok(f) => {
                    tracing::info!(release = %version, slot = %f.slot, copied = f.copied, already_present = f.already_present, "release staged")
                }
                Err(e) => error = Some(format!("{}: staging {version}: {e}", self.me)),
            },
            Step::Reboot { nodes, version }
                if nodes.contains(&self.me) && self.running != *version =>
            {
                match self.store.arm_trial(version) {
                    Ok(()) => reboot = true,
                    Err(e) => error = Some(format!("{}: cannot arm {version}: {e}", self.me)),
                }
            }
            Step::Commit { version } => {
                if self.running == *version
                    && let Err(e) = self.store.commit(version)
                {
                    error = Some(format!("{}: commit {version}: {e}", self.me));
                }
            }
            Step::Disarm => {
                if let Some(committed) = self.store.state().committed
                    && let Err(e) = self.store.arm_trial(&committed)
                {
                    error = Some(format!("{}: disarm: {e}", self.me));
                }
            }
            _ => {}
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

    /// The master's part: fold operator requests, check the current step,
    /// move on.
    async fn drive(&self) {
        let (campaign, statuses, ops) = {
            let r = self.state.lock().await;
            (r.campaign.clone(), r.statuses.clone(), r.ops.clone())
        };
        let Some(mut c) = campaign else { return };
        if !c.state.active() {
            return;
        }
        let before = c.clone();
        let (id, seen) = (c.id, c.ops_seen);
        for op in ops.iter().filter(|o| o.campaign == id && o.seq > seen) {
            c.ops_seen = op.seq;
            match (op.op.as_str(), c.state) {
                ("Pause", CampaignState::Running) => {
                    c.state = CampaignState::Paused;
                    c.detail = format!("paused by {}", op.principal);
                }
                ("Resume", CampaignState::Paused) => {
                    c.state = CampaignState::Running;
                    c.step_started_ms = wall_ms();
                    c.detail = c
                        .steps
                        .get(c.current)
                        .map_or_else(String::new, Step::describe);
                }
                ("Rollback", CampaignState::Running | CampaignState::Paused) => {
                    self.roll_back(
                        &mut c,
                        &statuses,
                        format!("rollback requested by {}", op.principal),
                    );
                }
                _ => {}
            }
        }
        if matches!(c.state, CampaignState::Running | CampaignState::RollingBack) {
            self.advance(&mut c, &statuses).await;
        }
        if c != before {
            let finished = !c.state.active();
            if finished && c.ended_ms.is_none() {
                c.ended_ms = Some(wall_ms());
            }
            if let Err(e) = Replicated::Campaign(c.clone())
                .replicate(&self.model.core)
                .await
            {
                tracing::warn!(error = %e, "cannot commit the campaign's progress");
                return;
            }
            if finished {
                tracing::info!(campaign = c.id, state = ?c.state, detail = %c.detail, "campaign finished");
                let _ = self.model.core.unlock(&c.holder()).await;
            }
        }
    }

    /// Replaces the remaining steps with the way back to `from`.
    fn roll_back(&self, c: &mut Campaign, statuses: &BTreeMap<String, NodeRelease>, why: String) {
        let mut steps = Vec::new();
        for n in self.order() {
            let on_target = statuses
                .get(&n)
                .is_none_or(|s| s.running.as_deref() != Some(c.from.as_str()));
            if on_target {
                steps.push(Step::SwitchAway {
                    nodes: vec![n.clone()],
                });
                steps.push(Step::Reboot {
                    nodes: vec![n],
                    version: c.from.clone(),
                });
            }
        }
        steps.push(Step::Disarm);
        tracing::warn!(campaign = c.id, reason = %why, "rolling back");
        c.state = CampaignState::RollingBack;
        c.steps = steps;
        c.current = 0;
        c.epoch += 1;
        c.step_started_ms = wall_ms();
        c.detail = format!("rolling back to {}: {why}", c.from);
        c.reason = Some(why);
    }

    /// Nodes in upgrade order: the master last (one leadership change).
    fn order(&self) -> Vec<String> {
        let master = self.view.master();
        let mut v: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| Some(*n) != master.as_ref())
            .cloned()
            .collect();
        v.extend(master);
        v
    }

    async fn advance(&self, c: &mut Campaign, statuses: &BTreeMap<String, NodeRelease>) {
        let Some(step) = c.steps.get(c.current).cloned() else {
            return;
        };
        let key = c.step_key();
        let waited = Duration::from_millis(wall_ms().saturating_sub(c.step_started_ms));
        // A node's error on this step fails it.
        if let Some(e) = statuses
            .values()
            .filter_map(|s| s.error.as_deref())
            .find(|e| e.starts_with(&format!("{key}: ")))
        {
            return self.fail(c, statuses, e.to_string());
        }
        let done = match &step {
            Step::Fetch { version } => match self.fetch(version).await {
                Ok(_) => true,
                Err(e) => {
                    return self.fail(c, statuses, format!("load manager: {e}"));
                }
            },
            Step::Stage { version, .. } => {
                if waited > STAGE_TIMEOUT {
                    return self.fail(
                        c,
                        statuses,
                        format!("release {version} not staged on every node in time"),
                    );
                }
                self.nodes
                    .iter()
                    .all(|n| statuses.get(n).is_some_and(|s| s.slots.contains(version)))
            }
            Step::SwitchAway { nodes } => {
                let pending = self.switch_away(nodes).await;
                if pending.is_empty() {
                    true
                } else if waited > SWITCH_TIMEOUT {
                    tracing::warn!(?pending, "no standby took over in time; going on");
                    true
                } else {
                    false
                }
            }
            Step::Reboot { nodes, version } => {
                let mut all = true;
                for n in nodes {
                    let Some(s) = statuses.get(n) else {
                        all = false;
                        continue;
                    };
                    let up = self.view.node(n).is_some_and(|v| v.up);
                    let restarted = s.boot_ms > c.step_started_ms;
                    let on = s.running.as_deref() == Some(version.as_str());
                    if on
                        && s.healthy
                        && up
                        && (restarted || s.acted.as_deref() == Some(key.as_str()))
                    {
                        continue;
                    }
                    all = false;
                    if restarted && !on && s.healthy {
                        let why = s
                            .fallback
                            .clone()
                            .unwrap_or_else(|| format!("{n} came back on release {:?}", s.running));
                        return self.fail(c, statuses, format!("{n}: {why}"));
                    }
                }
                if !all && waited > self.watchdog + REBOOT_SLACK {
                    return self.fail(
                        c,
                        statuses,
                        format!(
                            "{} not healthy on release {version} in time",
                            nodes.join(", ")
                        ),
                    );
                }
                all
            }
            Step::Commit { version } => {
                if waited > COMMIT_TIMEOUT {
                    return self.fail(
                        c,
                        statuses,
                        format!("release {version} not committed everywhere in time"),
                    );
                }
                self.nodes.iter().all(|n| {
                    statuses
                        .get(n)
                        .is_some_and(|s| s.committed.as_deref() == Some(version.as_str()))
                })
            }
            Step::Disarm => self.nodes.iter().all(|n| {
                statuses
                    .get(n)
                    .is_some_and(|s| s.trial.is_none() && s.acted.as_deref() == Some(key.as_str()))
            }),
        };
        if !done {
            return;
        }
        tracing::info!(campaign = c.id, step = %step.describe(), ms = waited.as_millis() as u64, "upgrade step done");
        // Staging copies from the node whose load manager fetched it.
        if matches!(step, Step::Fetch { .. })
            && let Some(Step::Stage { from, .. }) = c.steps.get_mut(c.current + 1)
            && self.peers.contains_key(&self.me)
        {
            *from = Some(self.me.clone());
        }
        c.current += 1;
        c.step_started_ms = wall_ms();
        match c.steps.get(c.current) {
            Some(next) => {
                c.detail = match &c.reason {
                    Some(why) => format!("rolling back ({why}): {}", next.describe()),
                    None => next.describe(),
                }
            }
            None => {
                (c.state, c.detail) = match c.state {
                    CampaignState::RollingBack => (
                        CampaignState::RolledBack,
                        format!(
                            "rolled back to {}: {}",
                            c.from,
                            c.reason.clone().unwrap_or_default()
                        ),
                    ),
                    _ => (
                        CampaignState::Succeeded,
                        format!("element committed on release {}", c.target),
                    ),
                };
            }
        }
    }

    fn fail(&self, c: &mut Campaign, statuses: &BTreeMap<String, NodeRelease>, why: String) {
        tracing::error!(campaign = c.id, reason = %why, "upgrade step failed");
        if c.state == CampaignState::RollingBack {
            c.state = CampaignState::Failed;
            c.detail = format!("rollback failed: {why}");
            return;
        }
        // Nothing reached the nodes before staging: no rollback needed.
        let touched = c.steps[..=c.current.min(c.steps.len() - 1)]
            .iter()
            .any(|s| matches!(s, Step::Reboot { .. }));
        if touched {
            self.roll_back(c, statuses, why);
        } else {
            c.state = CampaignState::Failed;
            c.detail = why;
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
                    .request(Input::SwitchOver {
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

    /// The nodes of the split: every 2N pair has one member on each side.
    /// The first half holds no primary if it can: it is upgraded first.
    async fn halves(&self) -> (Vec<String>, Vec<String>) {
        let mut color: BTreeMap<String, bool> = BTreeMap::new();
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
            .filter(|(a, b)| a != b)
            .collect();
        for n in &self.nodes {
            if color.contains_key(n) {
                continue;
            }
            color.insert(n.clone(), false);
            let mut stack = vec![n.clone()];
            while let Some(x) = stack.pop() {
                let cx = color[&x];
                for (a, b) in &pairs {
                    let other = if *a == x {
                        b
                    } else if *b == x {
                        a
                    } else {
                        continue;
                    };
                    if !color.contains_key(other) {
                        color.insert(other.clone(), !cx);
                        stack.push(other.clone());
                    }
                }
            }
        }
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
        let side = |c: bool| -> Vec<String> {
            color
                .iter()
                .filter(|(_, v)| **v == c)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let (a, b) = (side(false), side(true));
        let count = |s: &[String]| s.iter().filter(|n| primaries.contains(*n)).count();
        if count(&a) <= count(&b) {
            (a, b)
        } else {
            (b, a)
        }
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
        let (previous, statuses) = {
            let r = self.state.lock().await;
            (r.campaign.clone(), r.statuses.clone())
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
        let mut steps = vec![
            Step::Fetch {
                version: version.into(),
            },
            Step::Stage {
                version: version.into(),
                from: None,
            },
        ];
        match method {
            Method::Rolling => {
                for n in self.order() {
                    steps.push(Step::SwitchAway {
                        nodes: vec![n.clone()],
                    });
                    steps.push(Step::Reboot {
                        nodes: vec![n],
                        version: version.into(),
                    });
                }
            }
            Method::SplitMode => {
                let (first, second) = self.halves().await;
                for half in [first, second] {
                    if half.is_empty() {
                        continue;
                    }
                    steps.push(Step::SwitchAway {
                        nodes: half.clone(),
                    });
                    steps.push(Step::Reboot {
                        nodes: half,
                        version: version.into(),
                    });
                }
            }
            Method::Reboot => steps.push(Step::Reboot {
                nodes: self.nodes.clone(),
                version: version.into(),
            }),
        }
        steps.push(Step::Commit {
            version: version.into(),
        });
        let now = wall_ms();
        let c = Campaign {
            id,
            method,
            target: version.into(),
            from,
            state: CampaignState::Running,
            detail: steps[0].describe(),
            steps,
            current: 0,
            epoch: 0,
            step_started_ms: now,
            started_ms: now,
            ended_ms: None,
            ops_seen: 0,
            reason: None,
            principal: principal.user.clone(),
        };
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
        if let Err(e) = Replicated::Campaign(c.clone())
            .replicate(&self.model.core)
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
        Ok(crate::copco::finished_job(
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
                return Ok(crate::copco::finished_job(target.clone(), detail));
            }
        }
        Err(ModelError::Unavailable {
            reason: "the master did not take the request within 5 s".into(),
        })
    }
}
