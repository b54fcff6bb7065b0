//! The upgrade campaign as a pure state machine: inputs and the time in, effects out.
//!
//! [`Machine`] is the master's upgrade manager without its I/O: it holds
//! the campaign as the log shows it, every node's release status, who is
//! up and the operators' requests, and [`Machine::handle`] takes one
//! [`Input`] and the wall-clock time (ms) and returns the [`Effect`]s the
//! driver (`upgrade/mod.rs`) carries out: fetch a release, switch
//! primaries away, publish the campaign's new state, release COpCo's lock.
//! The answers to fetch and switch-away come back as inputs. The plan of
//! a new campaign and a node's own part of a step are pure too (`plan.rs`).
//! Nothing here reads a clock or does I/O.

use std::collections::{BTreeMap, BTreeSet};

use halyard_cluster_model::model::UpgradeMethod;
use serde::{Deserialize, Serialize};

/// Campaign requests the log keeps (the master folds each within seconds).
pub const CAMPAIGN_OPS_KEPT: usize = 256;

/// How long the master waits for a step before it fails the campaign (ms).
pub const STAGE_TIMEOUT_MS: u64 = 120_000;
pub const SWITCH_TIMEOUT_MS: u64 = 15_000;
/// On top of the watchdog: a node's stop, start and rejoin.
pub const REBOOT_SLACK_MS: u64 = 60_000;
pub const COMMIT_TIMEOUT_MS: u64 = 30_000;
/// The end of a rollback: every node drops its trial.
pub const DISARM_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    Rolling,
    SplitMode,
    Reboot,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "rolling" => Some(Method::Rolling),
            "splitMode" | "split-mode" | "split" => Some(Method::SplitMode),
            "reboot" => Some(Method::Reboot),
            _ => None,
        }
    }

    pub fn schema(self) -> UpgradeMethod {
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
    pub fn active(self) -> bool {
        matches!(
            self,
            CampaignState::Running | CampaignState::Paused | CampaignState::RollingBack
        )
    }

    /// Whether the current step moves on (not paused, not finished).
    pub fn moving(self) -> bool {
        matches!(self, CampaignState::Running | CampaignState::RollingBack)
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
    pub fn describe(&self) -> String {
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
    /// Time the current step spent paused (ms): its timeouts leave it out,
    /// while a reboot is still judged from the step's real start.
    #[serde(default)]
    pub step_paused_ms: u64,
    /// Since when it is paused.
    #[serde(default)]
    pub paused_since_ms: Option<u64>,
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
    pub fn object(&self, root: &str) -> String {
        format!("{root}/campaign={}", self.id)
    }

    pub fn holder(&self) -> String {
        format!("upgrade campaign {}", self.id)
    }

    /// How long the current step has waited, paused time left out.
    pub fn waited(&self, now_ms: u64) -> u64 {
        let paused =
            self.step_paused_ms + self.paused_since_ms.map_or(0, |p| now_ms.saturating_sub(p));
        now_ms
            .saturating_sub(self.step_started_ms)
            .saturating_sub(paused)
    }

    /// The current step's key: a node's record of what it carried out.
    pub fn step_key(&self) -> String {
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

/// What the master's upgrade manager needs to know of its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// This node (the master while it drives).
    pub me: String,
    /// Every node of the element.
    pub nodes: Vec<String>,
    /// Whether this node's HTTP face serves its releases to its peers.
    pub serves_http: bool,
    /// The boot supervisor's watchdog for a trial release (ms).
    pub watchdog_ms: u64,
}

/// An input to the campaign machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The campaign as the log holds it: a new campaign, or the record a
    /// new master takes over. It replaces the machine's copy.
    Logged(Campaign),
    /// A node's release status, from the log.
    Status(NodeRelease),
    /// A node joined (or left) the cluster view.
    Membership { node: String, up: bool },
    /// An operator's Pause, Resume or Rollback, from the log.
    Op(CampaignOp),
    /// Time passed: check the current step and move on.
    Tick,
    /// The answer to [`Effect::Fetch`]: `error` if it failed.
    Fetched {
        version: String,
        error: Option<String>,
    },
    /// The answer to [`Effect::SwitchAway`]: the components still primary
    /// on those nodes (empty: switched away).
    Switching {
        nodes: Vec<String>,
        pending: Vec<String>,
    },
}

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the machine wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The load manager fetches the release from the load server; answer
    /// with [`Input::Fetched`].
    Fetch { version: String },
    /// Ask CRIM to switch over every primary on these nodes that has a
    /// ready standby (not more often than every 2 s per component);
    /// answer with [`Input::Switching`].
    SwitchAway { nodes: Vec<String> },
    /// Write the campaign's new state to the log (only the master does).
    /// If that fails, the rest of this batch is dropped: the next tick
    /// starts again from the log.
    Publish(Box<Campaign>),
    /// The campaign is over: release COpCo's lock it held.
    Unlock { holder: String },
    /// A line for the log.
    Log { level: Level, message: String },
}

/// The master's upgrade manager, without its I/O.
#[derive(Debug, Clone)]
pub struct Machine {
    setup: Setup,
    campaign: Option<Campaign>,
    statuses: BTreeMap<String, NodeRelease>,
    up: BTreeSet<String>,
    ops: Vec<CampaignOp>,
}

impl Machine {
    pub fn new(setup: Setup) -> Machine {
        Machine {
            setup,
            campaign: None,
            statuses: BTreeMap::new(),
            up: BTreeSet::new(),
            ops: Vec::new(),
        }
    }

    pub fn campaign(&self) -> Option<&Campaign> {
        self.campaign.as_ref()
    }

    pub fn status(&self, node: &str) -> Option<&NodeRelease> {
        self.statuses.get(node)
    }

    pub fn is_up(&self, node: &str) -> bool {
        self.up.contains(node)
    }

    /// The newest operator request it holds.
    pub fn last_op(&self) -> u64 {
        self.ops.last().map_or(0, |o| o.seq)
    }

    /// Takes one input at `now_ms` (wall clock); returns what to do.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Logged(c) => {
                self.campaign = Some(c);
                return fx;
            }
            Input::Status(s) => {
                self.statuses.insert(s.node.clone(), s);
                return fx;
            }
            Input::Membership { node, up } => {
                if up {
                    self.up.insert(node);
                } else {
                    self.up.remove(&node);
                }
                return fx;
            }
            Input::Op(ref op) => {
                self.ops.push(op.clone());
                // As bounded as the log keeps them.
                let excess = self.ops.len().saturating_sub(CAMPAIGN_OPS_KEPT);
                self.ops.drain(..excess);
            }
            Input::Tick | Input::Fetched { .. } | Input::Switching { .. } => {}
        }
        let Some(mut c) = self.campaign.clone() else {
            return fx;
        };
        if !c.state.active() {
            return fx;
        }
        let before = c.clone();
        self.fold_ops(&mut c, now_ms, &mut fx);
        if c.state.moving() {
            match input {
                Input::Tick => self.advance(&mut c, now_ms, &mut fx),
                Input::Fetched { version, error } => {
                    self.fetched(&mut c, &version, error, now_ms, &mut fx)
                }
                Input::Switching { nodes, pending } => {
                    self.switching(&mut c, &nodes, &pending, now_ms, &mut fx)
                }
                _ => {}
            }
        }
        if c != before {
            let finished = !c.state.active();
            if finished && c.ended_ms.is_none() {
                c.ended_ms = Some(now_ms);
            }
            fx.push(Effect::Publish(Box::new(c.clone())));
            if finished {
                fx.push(Effect::Unlock { holder: c.holder() });
            }
            self.campaign = Some(c);
        }
        // The new state is written before the next request goes out.
        let (requests, mut fx): (Vec<Effect>, Vec<Effect>) = fx
            .into_iter()
            .partition(|e| matches!(e, Effect::Fetch { .. } | Effect::SwitchAway { .. }));
        fx.extend(requests);
        fx
    }

    /// Operator requests not yet folded in.
    fn fold_ops(&self, c: &mut Campaign, now_ms: u64, fx: &mut Vec<Effect>) {
        let (id, seen) = (c.id, c.ops_seen);
        for op in self.ops.iter().filter(|o| o.campaign == id && o.seq > seen) {
            c.ops_seen = op.seq;
            match (op.op.as_str(), c.state) {
                ("Pause", CampaignState::Running) => {
                    c.state = CampaignState::Paused;
                    c.paused_since_ms = Some(now_ms);
                    c.detail = format!("paused by {}", op.principal);
                }
                ("Resume", CampaignState::Paused) => {
                    c.state = CampaignState::Running;
                    // The step keeps its start: a node that rebooted, or
                    // fell back, while it was paused is judged by it.
                    let since = c.paused_since_ms.take().unwrap_or(now_ms);
                    c.step_paused_ms += now_ms.saturating_sub(since);
                    c.detail = c
                        .steps
                        .get(c.current)
                        .map_or_else(String::new, Step::describe);
                }
                ("Rollback", CampaignState::Running | CampaignState::Paused) => {
                    let why = format!("rollback requested by {}", op.principal);
                    self.roll_back(c, why, now_ms, fx);
                }
                _ => {}
            }
        }
    }

    /// The answer to a fetch of the current step's release.
    fn fetched(
        &self,
        c: &mut Campaign,
        version: &str,
        error: Option<String>,
        now_ms: u64,
        fx: &mut Vec<Effect>,
    ) {
        if !matches!(c.steps.get(c.current), Some(Step::Fetch { version: v }) if v == version) {
            return;
        }
        match error {
            None => self.step_done(c, now_ms, fx),
            Some(e) => self.fail(c, format!("load manager: {e}"), now_ms, fx),
        }
    }

    /// The answer to a switch-away of the current step's nodes.
    fn switching(
        &self,
        c: &mut Campaign,
        nodes: &[String],
        pending: &[String],
        now_ms: u64,
        fx: &mut Vec<Effect>,
    ) {
        if !matches!(c.steps.get(c.current), Some(Step::SwitchAway { nodes: n }) if n == nodes) {
            return;
        }
        if pending.is_empty() {
            return self.step_done(c, now_ms, fx);
        }
        if c.waited(now_ms) > SWITCH_TIMEOUT_MS {
            fx.push(Effect::Log {
                level: Level::Warn,
                message: format!(
                    "no standby took over in time; going on: {}",
                    pending.join(", ")
                ),
            });
            self.step_done(c, now_ms, fx);
        }
    }

    /// Checks the current step: a node's error fails it, a step that took
    /// too long fails it, a finished one moves on.
    fn advance(&self, c: &mut Campaign, now_ms: u64, fx: &mut Vec<Effect>) {
        let Some(step) = c.steps.get(c.current).cloned() else {
            return;
        };
        let key = c.step_key();
        let waited = c.waited(now_ms);
        let statuses = &self.statuses;
        let nodes = &self.setup.nodes;
        // A node's error on this step fails it.
        if let Some(e) = statuses
            .values()
            .filter_map(|s| s.error.as_deref())
            .find(|e| e.starts_with(&format!("{key}: ")))
        {
            let why = e[key.len() + 2..].to_string();
            return self.fail(c, why, now_ms, fx);
        }
        let done = match &step {
            Step::Fetch { version } => {
                fx.push(Effect::Fetch {
                    version: version.clone(),
                });
                false
            }
            Step::Stage { version, .. } => {
                if waited > STAGE_TIMEOUT_MS {
                    let why = format!("release {version} not staged on every node in time");
                    return self.fail(c, why, now_ms, fx);
                }
                nodes
                    .iter()
                    .all(|n| statuses.get(n).is_some_and(|s| s.slots.contains(version)))
            }
            Step::SwitchAway { nodes } => {
                fx.push(Effect::SwitchAway {
                    nodes: nodes.clone(),
                });
                false
            }
            Step::Reboot { nodes, version } => {
                let mut all = true;
                for n in nodes {
                    let Some(s) = statuses.get(n) else {
                        all = false;
                        continue;
                    };
                    let up = self.up.contains(n);
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
                        return self.fail(c, format!("{n}: {why}"), now_ms, fx);
                    }
                }
                if !all && waited > self.setup.watchdog_ms + REBOOT_SLACK_MS {
                    let why = format!(
                        "{} not healthy on release {version} in time",
                        nodes.join(", ")
                    );
                    return self.fail(c, why, now_ms, fx);
                }
                all
            }
            Step::Commit { version } => {
                if waited > COMMIT_TIMEOUT_MS {
                    let why = format!("release {version} not committed everywhere in time");
                    return self.fail(c, why, now_ms, fx);
                }
                nodes.iter().all(|n| {
                    statuses
                        .get(n)
                        .is_some_and(|s| s.committed.as_deref() == Some(version.as_str()))
                })
            }
            Step::Disarm => {
                let armed: Vec<&str> = nodes
                    .iter()
                    .filter(|n| {
                        !statuses.get(*n).is_some_and(|s| {
                            s.trial.is_none() && s.acted.as_deref() == Some(key.as_str())
                        })
                    })
                    .map(String::as_str)
                    .collect();
                if !armed.is_empty() && waited > DISARM_TIMEOUT_MS {
                    let why = format!("trial release not disarmed in time on {}", armed.join(", "));
                    return self.fail(c, why, now_ms, fx);
                }
                armed.is_empty()
            }
        };
        if done {
            self.step_done(c, now_ms, fx);
        }
    }

    /// The current step is done: on to the next, or the campaign's end.
    fn step_done(&self, c: &mut Campaign, now_ms: u64, fx: &mut Vec<Effect>) {
        let Some(step) = c.steps.get(c.current) else {
            return;
        };
        fx.push(Effect::Log {
            level: Level::Info,
            message: format!(
                "step done: {} ({} ms)",
                step.describe(),
                now_ms.saturating_sub(c.step_started_ms)
            ),
        });
        // Staging copies from the node whose load manager fetched it.
        if matches!(step, Step::Fetch { .. })
            && self.setup.serves_http
            && let Some(Step::Stage { from, .. }) = c.steps.get_mut(c.current + 1)
        {
            *from = Some(self.setup.me.clone());
        }
        c.current += 1;
        c.step_started_ms = now_ms;
        c.step_paused_ms = 0;
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

    /// A step failed: roll back once a node may have left the committed
    /// release; a failed rollback, or a failure before that, ends it.
    fn fail(&self, c: &mut Campaign, why: String, now_ms: u64, fx: &mut Vec<Effect>) {
        fx.push(Effect::Log {
            level: Level::Error,
            message: format!("upgrade step failed: {why}"),
        });
        if c.state == CampaignState::RollingBack {
            c.state = CampaignState::Failed;
            c.detail = format!("rollback failed: {why}");
            return;
        }
        // Nothing reached the nodes before a reboot: no rollback needed.
        let touched = c.steps[..=c.current.min(c.steps.len() - 1)]
            .iter()
            .any(|s| matches!(s, Step::Reboot { .. }));
        if touched {
            self.roll_back(c, why, now_ms, fx);
        } else {
            c.state = CampaignState::Failed;
            c.detail = why;
        }
    }

    /// Replaces the remaining steps with the way back to `from`: every
    /// node not running it switches away and reboots onto it, master last.
    fn roll_back(&self, c: &mut Campaign, why: String, now_ms: u64, fx: &mut Vec<Effect>) {
        let mut steps = Vec::new();
        for n in order(&self.setup.nodes, Some(&self.setup.me)) {
            // A node with a trial armed may be booting onto it (its last
            // report still shows the old release): it reboots back too.
            let on_target = self
                .statuses
                .get(&n)
                .is_none_or(|s| s.running.as_deref() != Some(c.from.as_str()) || s.trial.is_some());
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
        fx.push(Effect::Log {
            level: Level::Warn,
            message: format!("rolling back: {why}"),
        });
        c.state = CampaignState::RollingBack;
        c.steps = steps;
        c.current = 0;
        c.epoch += 1;
        c.step_started_ms = now_ms;
        c.step_paused_ms = 0;
        c.paused_since_ms = None;
        c.detail = format!("rolling back to {}: {why}", c.from);
        c.reason = Some(why);
    }
}

/// Nodes in upgrade order: the master last (one leadership change).
pub fn order(nodes: &[String], master: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = nodes
        .iter()
        .filter(|n| Some(n.as_str()) != master)
        .cloned()
        .collect();
    v.extend(master.map(str::to_string));
    v
}
