//! The cluster side of the HA core: what is replicated, and how committed
//! commands reach the core task.
//!
//! Every node runs the same CRIM as a replica. Inputs are not applied where
//! they arise: they are proposed to the consensus log (forwarded to the
//! master), and every node applies the committed log in the same order.
//! So the standby CRIMs are always up to date, a new master takes over
//! from exactly the decisions the old one committed, and events, alarms,
//! incidents and checkpoints are the same on every node. Each node then
//! executes only the effects for the components it hosts.
//!
//! Time: CRIM's escalation windows need the same clock on every replica, so
//! an input carries the proposer's wall-clock time, and replicas convert it
//! with one fixed offset (only differences between inputs matter).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use halyard_cluster_model::model::{AdminState, AvailabilityState};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::crim::Input;
use crate::replicated::Retention;

/// A replicated command. Applied by every node, in log order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    /// An input to CRIM, with the proposer's time (ms since the epoch).
    Crim { input: WireInput, at_ms: u64 },
    /// A node's components are gone: it died, was cut off from the
    /// majority, or restarted. With `restart`, the node itself restarts
    /// them when it applies this (it is alive and must not keep roles).
    NodeLost {
        node: String,
        restart: bool,
        reason: String,
        /// Set by a node announcing its own start: the boot id of that
        /// process, so it knows where its own life begins in the log.
        #[serde(default)]
        boot: Option<u64>,
    },
    /// A node is a member again (its components register next).
    NodeUp { node: String },
    /// A primary's checkpoint write.
    Checkpoint {
        si: String,
        key: String,
        value: String,
    },
    /// A simulated fault, executed by the node hosting the component.
    Fault { component: String, fault: String },
    /// COpCo's subtree lock, cluster-wide: granted unless a held subject
    /// contains this one or lies within it.
    Lock { subject: String, holder: String },
    /// Releases every lock of a holder.
    Unlock { holder: String },
    /// A configuration change every node applies (published as
    /// [`crate::events::EventKind::Replicated`]).
    Replicated(crate::replicated::Change),
    /// Components and groups added and removed at run time (hot swap),
    /// applied by every replica's CRIM; the hosts start and stop them.
    Reconfigure(Box<WireReconfigure>),
}

/// [`crate::core::spec::Reconfigure`] on the wire: enums by their YANG names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReconfigure {
    pub add_groups: Vec<WireGroup>,
    pub join: Vec<WireMember>,
    pub leave: Vec<WireMember>,
    pub remove_groups: Vec<String>,
    pub locked: Vec<String>,
    pub components: Vec<WireComponent>,
    pub lost: Vec<String>,
    pub restart: Vec<String>,
    pub note: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMember {
    pub group: String,
    pub component: String,
    pub sis: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireGroup {
    pub name: String,
    pub model: String,
    pub standby: String,
    pub preferred_secondaries: u32,
    pub first_recovery: String,
    pub max_restarts: u32,
    pub probation_ms: u64,
    pub members: Vec<String>,
    pub sis: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireComponent {
    pub name: String,
    pub parent: Option<String>,
    pub kind: crate::core::spec::Kind,
    pub checkpoint: String,
    /// Audit period and deadline in ms.
    pub audit_ms: Option<(u64, u64)>,
}

impl From<&crate::core::spec::Reconfigure> for WireReconfigure {
    fn from(r: &crate::core::spec::Reconfigure) -> Self {
        let member = |m: &crate::crim::GroupMember| WireMember {
            group: m.group.clone(),
            component: m.component.clone(),
            sis: m.sis.clone(),
        };
        WireReconfigure {
            add_groups: r
                .crim
                .add_groups
                .iter()
                .map(|g| WireGroup {
                    name: g.name.clone(),
                    model: g.model.yang_name().into(),
                    standby: g.standby.yang_name().into(),
                    preferred_secondaries: g.preferred_secondaries,
                    first_recovery: g.first_recovery.yang_name().into(),
                    max_restarts: g.max_restarts,
                    probation_ms: g.probation.as_millis() as u64,
                    members: g.members.clone(),
                    sis: g.sis.clone(),
                })
                .collect(),
            join: r.crim.join.iter().map(member).collect(),
            leave: r.crim.leave.iter().map(member).collect(),
            remove_groups: r.crim.remove_groups.clone(),
            locked: r.crim.locked.clone(),
            components: r
                .components
                .iter()
                .map(|c| WireComponent {
                    name: c.name.clone(),
                    parent: c.parent.clone(),
                    kind: c.kind.clone(),
                    checkpoint: c.checkpoint.yang_name().into(),
                    audit_ms: c
                        .audit
                        .map(|(p, d)| (p.as_millis() as u64, d.as_millis() as u64)),
                })
                .collect(),
            lost: r.lost.clone(),
            restart: r.restart.clone(),
            note: r.note.clone(),
        }
    }
}

impl TryFrom<WireReconfigure> for crate::core::spec::Reconfigure {
    type Error = String;

    fn try_from(w: WireReconfigure) -> Result<Self, String> {
        let member = |m: WireMember| crate::crim::GroupMember {
            group: m.group,
            component: m.component,
            sis: m.sis,
        };
        let mut groups = Vec::new();
        for g in w.add_groups {
            groups.push(crate::crim::SgConfig {
                name: g.name,
                model: g
                    .model
                    .parse::<halyard_cluster_model::model::RedundancyModel>()
                    .map_err(|e| e.to_string())?,
                standby: g
                    .standby
                    .parse::<halyard_cluster_model::model::StandbyMode>()
                    .map_err(|e| e.to_string())?,
                preferred_secondaries: g.preferred_secondaries,
                first_recovery: g
                    .first_recovery
                    .parse::<halyard_cluster_model::model::RecoveryAction>()
                    .map_err(|e| e.to_string())?,
                max_restarts: g.max_restarts,
                probation: Duration::from_millis(g.probation_ms),
                members: g.members,
                sis: g.sis,
            });
        }
        let mut components = Vec::new();
        for c in w.components {
            components.push(crate::core::spec::ComponentSpec {
                name: c.name,
                parent: c.parent,
                kind: c.kind,
                checkpoint: c
                    .checkpoint
                    .parse::<halyard_cluster_model::model::CheckpointMode>()
                    .map_err(|e| e.to_string())?,
                audit: c
                    .audit_ms
                    .map(|(p, d)| (Duration::from_millis(p), Duration::from_millis(d))),
            });
        }
        Ok(crate::core::spec::Reconfigure {
            crim: crate::crim::Reconfig {
                add_groups: groups,
                join: w.join.into_iter().map(member).collect(),
                leave: w.leave.into_iter().map(member).collect(),
                remove_groups: w.remove_groups,
                locked: w.locked,
            },
            components,
            lost: w.lost,
            restart: w.restart,
            note: w.note,
        })
    }
}

/// [`Input`] on the wire: enums by their YANG names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum WireInput {
    Registered {
        component: String,
        incarnation: u32,
    },
    Acked {
        component: String,
        state: String,
    },
    Failed {
        component: String,
        incarnation: u32,
        reason: String,
        escalated: bool,
    },
    SetAdmin {
        component: String,
        admin: String,
    },
    SwitchOver {
        component: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    Restart {
        component: String,
    },
    RequestOffline {
        component: String,
        reason: String,
    },
    RequestOnline {
        component: String,
    },
    ContainerFailed {
        component: String,
        container: String,
    },
    Lost {
        component: String,
        reason: String,
    },
}

impl From<&Input> for WireInput {
    fn from(i: &Input) -> Self {
        match i.clone() {
            Input::Registered {
                component,
                incarnation,
            } => WireInput::Registered {
                component,
                incarnation,
            },
            Input::Acked { component, state } => WireInput::Acked {
                component,
                state: state.yang_name().into(),
            },
            Input::Failed {
                component,
                incarnation,
                reason,
                escalated,
            } => WireInput::Failed {
                component,
                incarnation,
                reason,
                escalated,
            },
            Input::SetAdmin { component, admin } => WireInput::SetAdmin {
                component,
                admin: admin.yang_name().into(),
            },
            Input::SwitchOver { component, at } => WireInput::SwitchOver { component, at },
            Input::Restart { component } => WireInput::Restart { component },
            Input::RequestOffline { component, reason } => {
                WireInput::RequestOffline { component, reason }
            }
            Input::RequestOnline { component } => WireInput::RequestOnline { component },
            Input::ContainerFailed {
                component,
                container,
            } => WireInput::ContainerFailed {
                component,
                container,
            },
            Input::Lost { component, reason } => WireInput::Lost { component, reason },
        }
    }
}

impl TryFrom<WireInput> for Input {
    type Error = String;

    fn try_from(w: WireInput) -> Result<Self, String> {
        Ok(match w {
            WireInput::Registered {
                component,
                incarnation,
            } => Input::Registered {
                component,
                incarnation,
            },
            WireInput::Acked { component, state } => Input::Acked {
                component,
                state: state
                    .parse::<AvailabilityState>()
                    .map_err(|e| e.to_string())?,
            },
            WireInput::Failed {
                component,
                incarnation,
                reason,
                escalated,
            } => Input::Failed {
                component,
                incarnation,
                reason,
                escalated,
            },
            WireInput::SetAdmin { component, admin } => Input::SetAdmin {
                component,
                admin: admin.parse::<AdminState>().map_err(|e| e.to_string())?,
            },
            WireInput::SwitchOver { component, at } => Input::SwitchOver { component, at },
            WireInput::Restart { component } => Input::Restart { component },
            WireInput::RequestOffline { component, reason } => {
                Input::RequestOffline { component, reason }
            }
            WireInput::RequestOnline { component } => Input::RequestOnline { component },
            WireInput::ContainerFailed {
                component,
                container,
            } => Input::ContainerFailed {
                component,
                container,
            },
            WireInput::Lost { component, reason } => Input::Lost { component, reason },
        })
    }
}

/// Whether two persistent names overlap: equal, or one contains the other
/// (`ne=1/shelf=1` contains `ne=1/shelf=1/fan=2`).
pub fn overlaps(a: &str, b: &str) -> bool {
    let within =
        |x: &str, y: &str| x.len() > y.len() && x.starts_with(y) && x.as_bytes()[y.len()] == b'/';
    a == b || within(a, b) || within(b, a)
}

/// The holder of a lock taken by a job of a node; a lost node's locks are
/// released with it.
pub fn lock_holder(job: &str, node: &str) -> String {
    format!("{job} on node {node}")
}

/// Milliseconds since the epoch, now.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Converts proposers' wall-clock times to this process's `Instant`s with
/// one fixed offset, so every replica sees the same differences.
#[derive(Debug, Clone, Copy)]
pub struct ClusterClock {
    base: Instant,
    base_ms: u64,
}

impl Default for ClusterClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            base_ms: wall_ms(),
        }
    }

    pub fn instant(&self, at_ms: u64) -> Instant {
        if at_ms >= self.base_ms {
            self.base + Duration::from_millis(at_ms - self.base_ms)
        } else {
            self.base
                .checked_sub(Duration::from_millis(self.base_ms - at_ms))
                .unwrap_or(self.base)
        }
    }
}

/// How long consensus snapshots keep a command: a checkpoint write until
/// the next write of the same entry; a replicated change as its proposer
/// said (the agent's typed changes carry their rule); anything else always
/// (locks are history: a refused lock replays as refused only if the lock
/// it met is replayed; a hot swap changes the structure).
pub fn retention(command: &serde_json::Value) -> Retention {
    let s = |k: &str| command[k].as_str().unwrap_or_default().to_string();
    match command["cmd"].as_str() {
        Some("checkpoint") => Retention::Latest(format!("checkpoint/{}/{}", s("si"), s("key"))),
        Some("replicated") => {
            serde_json::from_value(command["retention"].clone()).unwrap_or_default()
        }
        _ => Retention::Keep,
    }
}

/// A committed command on its way to the core task.
#[derive(Debug)]
pub enum Applied {
    Command {
        index: u64,
        command: serde_json::Value,
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// A snapshot is about to be installed: start from empty state.
    Reset(oneshot::Sender<()>),
}

/// The consensus engine's state machine: hands committed commands to the
/// core task and returns its answer (the leader's answer goes back to the
/// proposer).
///
/// The engine re-applies the committed log while it starts, before the
/// core (which needs the engine's handle) exists: until the core attaches,
/// commands are queued without waiting for an answer (nobody waits for
/// those answers). The queue is unbounded for that reason; once attached,
/// each apply waits for its answer, so at most one is in flight.
#[derive(Debug, Clone)]
pub struct Applier {
    tx: mpsc::UnboundedSender<Applied>,
    attached: Arc<std::sync::atomic::AtomicBool>,
}

/// An applier and the receiving end the core task reads.
pub fn applier() -> (Applier, mpsc::UnboundedReceiver<Applied>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Applier {
            tx,
            attached: Arc::default(),
        },
        rx,
    )
}

impl Applier {
    /// The core reads the queue now: applies wait for its answers.
    pub fn attach(&self) {
        self.attached
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl halyard_consensus::Machine for Applier {
    async fn apply(&self, index: u64, command: serde_json::Value) -> serde_json::Value {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Applied::Command {
                index,
                command,
                reply,
            })
            .is_err()
        {
            return serde_json::json!({"error": "the HA core has stopped"});
        }
        if !self.attached.load(std::sync::atomic::Ordering::SeqCst) {
            return serde_json::json!({"ok": true, "replayed": true});
        }
        rx.await
            .unwrap_or_else(|_| serde_json::json!({"error": "the HA core has stopped"}))
    }

    /// See [`retention`].
    fn retention(&self, command: &serde_json::Value) -> Retention {
        retention(command)
    }

    async fn reset(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Applied::Reset(tx)).is_ok()
            && self.attached.load(std::sync::atomic::Ordering::SeqCst)
        {
            let _ = rx.await;
        }
    }
}

/// A node as the replicated membership table and the local heartbeat
/// monitor see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub id: u64,
    /// Member (true) or lost (false), as committed.
    pub up: bool,
    /// Milliseconds since this node last heard the node's heartbeat
    /// (None: never; 0 for this node itself).
    pub heard_ms: Option<u64>,
    pub master: bool,
    /// A voting member of the consensus group (false: not admitted yet).
    pub voter: bool,
}

/// The cluster as this node sees it; shared by the core (which applies
/// membership commands), the CMM (which adds heartbeat ages) and the agent
/// (which shows it in every face).
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    inner: Arc<Mutex<ViewInner>>,
}

#[derive(Debug, Default)]
struct ViewInner {
    nodes: BTreeMap<String, NodeStatus>,
    /// When this replica last applied a command or heard the master.
    fresh_at: Option<Instant>,
    me: String,
}

impl ClusterView {
    pub fn new(me: &str, nodes: &[(String, u64)]) -> Self {
        let v = ClusterView::default();
        {
            let mut i = v.lock();
            i.me = me.to_string();
            for (name, id) in nodes {
                i.nodes.insert(
                    name.clone(),
                    NodeStatus {
                        name: name.clone(),
                        id: *id,
                        up: true,
                        heard_ms: None,
                        master: false,
                        voter: true,
                    },
                );
            }
        }
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ViewInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn me(&self) -> String {
        self.lock().me.clone()
    }

    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.lock().nodes.values().cloned().collect()
    }

    pub fn node(&self, name: &str) -> Option<NodeStatus> {
        self.lock().nodes.get(name).cloned()
    }

    pub fn set_up(&self, name: &str, up: bool) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.up = up;
        }
    }

    pub fn reset(&self) {
        for n in self.lock().nodes.values_mut() {
            n.up = true;
        }
    }

    pub fn set_heard(&self, name: &str, ms: Option<u64>) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.heard_ms = ms;
        }
    }

    /// The consensus group's voters, by id.
    pub fn set_voters(&self, voters: &[u64]) {
        for n in self.lock().nodes.values_mut() {
            n.voter = voters.contains(&n.id);
        }
    }

    pub fn set_master(&self, master: Option<&str>) {
        let mut i = self.lock();
        for n in i.nodes.values_mut() {
            n.master = Some(n.name.as_str()) == master;
        }
    }

    pub fn master(&self) -> Option<String> {
        self.lock()
            .nodes
            .values()
            .find(|n| n.master)
            .map(|n| n.name.clone())
    }

    /// This replica applied a committed command.
    pub fn applied(&self) {
        self.lock().fresh_at = Some(Instant::now());
    }

    pub fn heard_master(&self) {
        self.lock().fresh_at = Some(Instant::now());
    }

    /// How stale this replica may be: the time since it last applied a
    /// command or heard the master (0 on the master).
    pub fn staleness(&self) -> Option<Duration> {
        let i = self.lock();
        if i.nodes.get(&i.me).is_some_and(|n| n.master) {
            return Some(Duration::ZERO);
        }
        i.fresh_at.map(|t| t.elapsed())
    }
}

/// What the core needs to run as one node of a cluster.
#[derive(Debug)]
pub struct ClusterSpec {
    pub consensus: halyard_consensus::Consensus,
    pub view: ClusterView,
    /// Component -> the node hosting it. Components not listed (the
    /// shelves' shared hardware) are hosted by the master.
    pub hosts: BTreeMap<String, String>,
    /// Committed commands, from the [`Applier`] given to
    /// the consensus engine (attached once the core reads them).
    pub applied: mpsc::UnboundedReceiver<Applied>,
    pub applier: Applier,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_cross_the_wire_unchanged() {
        let inputs = [
            Input::Registered {
                component: "c".into(),
                incarnation: 3,
            },
            Input::Acked {
                component: "c".into(),
                state: AvailabilityState::Secondary,
            },
            Input::SetAdmin {
                component: "c".into(),
                admin: AdminState::Locked,
            },
            Input::Lost {
                component: "c".into(),
                reason: "node n1 lost".into(),
            },
        ];
        for i in inputs {
            let cmd = Command::Crim {
                input: WireInput::from(&i),
                at_ms: 5,
            };
            let json = serde_json::to_value(&cmd).unwrap();
            let back: Command = serde_json::from_value(json).unwrap();
            let Command::Crim { input, .. } = back else {
                panic!("not a CRIM command")
            };
            assert_eq!(Input::try_from(input).unwrap(), i);
        }
        let bad = WireInput::Acked {
            component: "c".into(),
            state: "sideways".into(),
        };
        assert!(Input::try_from(bad).is_err());
    }

    #[test]
    fn subtrees_overlap_on_whole_names_only() {
        assert!(overlaps("ne=1/shelf=1", "ne=1/shelf=1/fan=2"));
        assert!(overlaps("ne=1/shelf=1/fan=2", "ne=1/shelf=1"));
        assert!(overlaps("ne=1/shelf=1", "ne=1/shelf=1"));
        assert!(!overlaps("ne=1/shelf=1", "ne=1/shelf=10"));
        assert!(!overlaps("ne=1/shelf=1/fan=1", "ne=1/shelf=1/fan=2"));
    }

    #[test]
    fn snapshots_keep_the_latest_write_only_where_state_is_overwritten() {
        let keep = |c: Command| retention(&serde_json::to_value(c).unwrap());
        let w = |v: &str| Command::Checkpoint {
            si: "si=1".into(),
            key: "count".into(),
            value: v.into(),
        };
        assert_eq!(keep(w("1")), keep(w("2")));
        assert!(matches!(keep(w("1")), Retention::Latest(_)));
        let lock = keep(Command::Lock {
            subject: "ne=1/shelf=1".into(),
            holder: "job 1 on node n1".into(),
        });
        assert_eq!(lock, Retention::Keep);
        assert_eq!(keep(Command::NodeUp { node: "n1".into() }), Retention::Keep);
        // A replicated change carries its proposer's rule across the wire.
        let bounded = Retention::Recent {
            class: "audit".into(),
            keep: 1000,
        };
        let change = Command::Replicated(crate::replicated::Change {
            topic: "audit".into(),
            retention: bounded.clone(),
            body: serde_json::json!({}),
        });
        assert_eq!(keep(change), bounded);
        // A command logged before changes carried a rule is kept.
        let old = serde_json::json!({"cmd": "replicated", "topic": "set", "body": []});
        assert_eq!(retention(&old), Retention::Keep);
        let Command::Replicated(c) = serde_json::from_value(old).unwrap() else {
            panic!("not a replicated change")
        };
        assert_eq!(c.retention, Retention::Keep);
    }

    #[test]
    fn a_hot_swap_change_crosses_the_wire_unchanged() {
        use halyard_cluster_model::model::{
            CheckpointMode, RecoveryAction, RedundancyModel, StandbyMode,
        };
        let change = crate::core::spec::Reconfigure {
            crim: crate::crim::Reconfig {
                add_groups: vec![crate::crim::SgConfig {
                    name: "ne=1/sg=fru-1-3".into(),
                    model: RedundancyModel::NoRedundancy,
                    standby: StandbyMode::Warm,
                    preferred_secondaries: 0,
                    first_recovery: RecoveryAction::SoftReset,
                    max_restarts: 3,
                    probation: Duration::from_secs(60),
                    members: vec!["ne=1/shelf=1/linecard=slot-3".into()],
                    sis: vec!["ne=1/sg=fru-1-3/si=1".into()],
                }],
                join: vec![crate::crim::GroupMember {
                    group: "ne=1/sg=ports".into(),
                    component: "ne=1/shelf=1/linecard=slot-3/comp=portd".into(),
                    sis: vec![],
                }],
                leave: vec![],
                remove_groups: vec!["ne=1/sg=fru-1-4".into()],
                locked: vec!["ne=1/shelf=1/linecard=slot-3/comp=portd".into()],
            },
            components: vec![crate::core::spec::ComponentSpec {
                name: "ne=1/shelf=1/linecard=slot-3/comp=portd".into(),
                parent: Some("ne=1/shelf=1/linecard=slot-3".into()),
                kind: crate::core::spec::Kind::Process {
                    start: vec!["sleep".into(), "60".into()],
                    stop: None,
                    health: Some(vec!["true".into()]),
                    role: None,
                    env: vec![("A".into(), "b".into())],
                },
                checkpoint: CheckpointMode::NoCheckpoints,
                audit: Some((Duration::from_millis(500), Duration::from_millis(200))),
            }],
            lost: vec!["ne=1/shelf=1/fan=1".into()],
            restart: vec![],
            note: serde_json::json!({"inserted": true}),
        };
        let cmd = Command::Reconfigure(Box::new(WireReconfigure::from(&change)));
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(json["cmd"], "reconfigure");
        assert_eq!(retention(&json), Retention::Keep, "a hot swap is history");
        let Command::Reconfigure(back) = serde_json::from_value(json).unwrap() else {
            panic!("not a reconfiguration")
        };
        assert_eq!(
            crate::core::spec::Reconfigure::try_from(*back).unwrap(),
            change
        );
    }

    #[test]
    fn the_clock_keeps_differences() {
        let c = ClusterClock::new();
        let a = c.instant(c.base_ms + 1000);
        let b = c.instant(c.base_ms + 4000);
        assert_eq!(b - a, Duration::from_secs(3));
    }
}
