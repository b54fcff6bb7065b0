//! What the core is given: component kinds and specs, its configuration, run-time
//! changes (hot swap), its errors, and the checks of a configuration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::CheckpointMode;

use crate::cec::CecRules;
use crate::crim::{CrimError, Reconfig, SgConfig};
use crate::remote::RemoteShell;

/// How a component is run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Kind {
    /// A child process in the style of OCF resource agents: `start` runs
    /// it, `stop` (when given) asks it to stop before the signals do,
    /// `health` (exit 0 = healthy) audits it, `role` is run with
    /// HALYARD_ROLE set whenever its role changes.
    Process {
        start: Vec<String>,
        stop: Option<Vec<String>>,
        health: Option<Vec<String>>,
        role: Option<Vec<String>>,
        env: Vec<(String, String)>,
    },
    /// A daemon speaking the HA-aware protocol on the agent's socket.
    HaAware {
        command: Vec<String>,
        env: Vec<(String, String)>,
        /// It takes timed assignments (`assign` with `at`): a planned 2N
        /// switch-over between two such components is scheduled, with no
        /// instant without a primary.
        timed: bool,
    },
    /// Simulated hardware, with fault injection.
    Hardware,
    /// A proxy for a non-peer node (FIG. 8): the component runs here, its
    /// commands run on `target` through the core's [`RemoteShell`]
    /// (semantics in [`crate::remote`]). Commands are shell command lines.
    Proxy {
        /// The non-peer node's persistent name.
        target: String,
        /// Idempotent: returns once the service runs (OCF `start`).
        start: String,
        stop: Option<String>,
        /// Exit 0 = healthy; run by the primary's audit.
        health: Option<String>,
        /// Prints the report of [`crate::remote`]; run by the primary.
        stats: Option<String>,
        /// Files written to the target before `start`: (path on the
        /// target, key in the configuration repository holding the
        /// contents as a string). Read at every take-over.
        config: Vec<(String, String)>,
        stats_period: Duration,
        /// Deadline of one remote call.
        timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    pub name: String,
    /// The containing component, for error correlation.
    pub parent: Option<String>,
    pub kind: Kind,
    pub checkpoint: CheckpointMode,
    /// Audit period and deadline.
    pub audit: Option<(Duration, Duration)>,
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub node: String,
    /// The Unix socket HA-aware components connect to.
    pub socket: PathBuf,
    pub groups: Vec<SgConfig>,
    pub components: Vec<ComponentSpec>,
    /// Components configured administratively locked: not started until
    /// an operator unlocks them.
    pub locked: Vec<String>,
    pub cec: CecRules,
    /// Longest a synchronous checkpoint write waits for standbys.
    pub checkpoint_deadline: Duration,
    pub watchdog_timeout: Duration,
    pub watchdog_device: Option<PathBuf>,
    /// Grace between SIGTERM and SIGKILL when stopping a process.
    pub stop_grace: Duration,
    /// How far ahead a planned 2N switch-over between components that take
    /// timed assignments is scheduled (zero: not scheduled). It must cover
    /// two commits and the old primary's acknowledgement; a late decision
    /// only makes that hand-over immediate.
    pub switchover_lead: Duration,
    /// How proxy components reach their non-peer nodes (required when
    /// there are proxies).
    pub remote: Option<Arc<dyn RemoteShell>>,
}

/// A run-time change of the element (the hot-swap manager's: FRUs
/// inserted and removed). In a cluster it is committed to the log and
/// every node applies it; the node hosting a component starts or stops it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconfigure {
    /// Groups and members that appear and disappear.
    pub crim: Reconfig,
    /// How to run each component the change adds.
    pub components: Vec<ComponentSpec>,
    /// Existing components whose unit is gone (a configured FRU removed):
    /// CRIM loses them and they are stopped, until `restart`.
    pub lost: Vec<String>,
    /// Existing components whose unit is back: started again.
    pub restart: Vec<String>,
    /// For the agent: applied by every node's model as the replicated
    /// topic [`HOTSWAP_TOPIC`], before the components' states change.
    pub note: serde_json::Value,
}

/// The replicated topic under which a [`Reconfigure`]'s note is published.
pub const HOTSWAP_TOPIC: &str = "hotswap";

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error("cannot open the watchdog device {path}: {source}")]
    Watchdog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the HA core has stopped")]
    Stopped,
    #[error(transparent)]
    Crim(#[from] CrimError),
    #[error("unknown component {0}")]
    UnknownComponent(String),
    #[error(
        "component {component}: no fault named {fault} (known: crash, power-loss, fan-stall, repair)"
    )]
    UnknownFault { component: String, fault: String },
    /// Refused or not committed by the cluster.
    #[error("{0}")]
    Refused(String),
}

/// Messages from the cluster membership monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// This node lost contact with the majority: it must give up its
    /// primaries before the majority promotes their standbys.
    Fence,
    /// Contact with the majority is back after a fence.
    Rejoin,
    /// This node is the master: start the shared hardware it hosts.
    MasterTick,
}

pub(super) fn validate(config: &CoreConfig) -> Result<(), CoreError> {
    let names: std::collections::HashSet<&str> =
        config.components.iter().map(|c| c.name.as_str()).collect();
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for g in &config.groups {
        if g.sis.is_empty() {
            return Err(CoreError::Config(format!(
                "service group {} has no service instance",
                g.name
            )));
        }
        for m in &g.members {
            if !names.contains(m.as_str()) {
                return Err(CoreError::Config(format!(
                    "service group {} names unknown component {m}",
                    g.name
                )));
            }
            if let Some(other) = member_of.insert(m, &g.name) {
                return Err(CoreError::Config(format!(
                    "component {m} is in two service groups, {other} and {}",
                    g.name
                )));
            }
        }
    }
    for c in &config.components {
        if matches!(c.kind, Kind::Proxy { .. }) && config.remote.is_none() {
            return Err(CoreError::Config(format!(
                "component {} is a proxy, and the core has no remote shell",
                c.name
            )));
        }
        if !member_of.contains_key(c.name.as_str()) {
            return Err(CoreError::Config(format!(
                "component {} is in no service group",
                c.name
            )));
        }
        if let Some(p) = &c.parent
            && !names.contains(p.as_str())
        {
            return Err(CoreError::Config(format!(
                "component {} has unknown parent {p}",
                c.name
            )));
        }
    }
    Ok(())
}
