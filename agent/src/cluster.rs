//! Running one node of a cluster: consensus, the membership monitor, and
//! the membership table shown by every face (Node objects and the
//! element's master / staleness attributes come from the schema, so SNMP,
//! NETCONF, HTTP and Prometheus show them with no code of their own).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use halyard_backend::cluster::{Applied, ClusterView, applier};
use halyard_backend::cmm::CmmConfig;
use halyard_cluster_model::ObjectName;
use halyard_cluster_model::model::{
    ClusterRole, MembershipChangedPatch, MembershipState, NetworkElementPatch, NodePatch,
};
use halyard_consensus::{Consensus, ConsensusConfig, ConsensusTask};
use tokio::sync::mpsc;

use crate::config::Config;

/// This node's place in the cluster.
#[derive(Debug)]
pub struct Node {
    pub consensus: Consensus,
    pub task: ConsensusTask,
    pub view: ClusterView,
    pub applied: mpsc::UnboundedReceiver<Applied>,
    pub applier: halyard_backend::cluster::Applier,
    pub cmm: CmmConfig,
}

/// Peer nodes with their consensus ids (1-based, in config order).
pub fn peers(cfg: &Config) -> anyhow::Result<Vec<(String, u64, Vec<SocketAddr>)>> {
    let mut out = Vec::new();
    for n in cfg.nodes.iter().filter(|n| !n.non_peer) {
        let addrs = n
            .cluster
            .iter()
            .map(|a| a.get_ref().parse())
            .collect::<Result<Vec<SocketAddr>, _>>()
            .context("cluster address")?;
        out.push((n.name.get_ref().clone(), out.len() as u64 + 1, addrs));
    }
    Ok(out)
}

/// Opens this node's consensus state and joins the cluster.
pub async fn start(cfg: &Config, me: &str, data_dir: &Path) -> anyhow::Result<Node> {
    let nodes = peers(cfg)?;
    let Some((_, my_id, _)) = nodes.iter().find(|(n, _, _)| n == me) else {
        bail!(
            "node {me} is not a peer node of the config (nodes: {})",
            nodes
                .iter()
                .map(|(n, _, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let joining: Vec<&str> = cfg
        .nodes
        .iter()
        .filter(|n| n.join)
        .map(|n| n.name.get_ref().as_str())
        .collect();
    let members: BTreeMap<u64, Vec<SocketAddr>> = nodes
        .iter()
        .filter(|(n, _, _)| !joining.contains(&n.as_str()) || n == me)
        .map(|(_, id, a)| (*id, a.clone()))
        .collect();
    let k = &cfg.cluster;
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let mut c = ConsensusConfig::new(*my_id, members, data_dir.join("consensus"));
    c.heartbeat = ms(*k.heartbeat_ms.get_ref());
    let e = k.election_ms.get_ref();
    c.election_timeout = (ms(e[0]), ms(e[1]));
    // A joining node waits to be admitted (the Admit operation).
    c.join = joining.contains(&me);
    let (machine, applied) = applier();
    let (consensus, task) = Consensus::start(c, Arc::new(machine.clone()))
        .await
        .context("cannot start consensus")?;
    let view = ClusterView::new(
        me,
        &nodes
            .iter()
            .map(|(n, id, _)| (n.clone(), *id))
            .collect::<Vec<_>>(),
    );
    tracing::info!(id = my_id, "consensus started; the replica replays the log");
    Ok(Node {
        consensus,
        task,
        view,
        applied,
        applier: machine,
        cmm: CmmConfig {
            me: me.to_string(),
            nodes,
            heartbeat: ms(*k.heartbeat_ms.get_ref()),
            lease: ms(*k.lease_ms.get_ref()),
            failure: ms(*k.failure_ms.get_ref()),
        },
    })
}

/// Keeps the membership table and the element's cluster attributes up to
/// date, and re-reads component states from the replica (decisions
/// replayed at start-up are not announced as events).
pub async fn publish_status(
    model: Arc<crate::model::AgentModel>,
    view: ClusterView,
    root: String,
    node_objects: BTreeMap<String, String>,
    joiners: std::collections::BTreeSet<String>,
    failure: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // A node out of the voters is joining when it is configured to join
    // (again, after an eviction: it can be admitted again), and has left
    // otherwise (an initial member, evicted).
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut n = 0u32;
    let me = view.me();
    // Announced on change, as the schema's MembershipChanged notification
    // (an SNMP trap, a NETCONF notification, an HTTP event).
    let mut last: BTreeMap<String, (MembershipState, ClusterRole)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let nodes = view.nodes();
        for s in &nodes {
            let Some(obj) = node_objects.get(&s.name) else {
                continue;
            };
            let Ok(name) = ObjectName::parse(obj) else {
                continue;
            };
            let age = s.heard_ms.unwrap_or(u64::from(u32::MAX));
            let membership = if !s.voter {
                if joiners.contains(&s.name) {
                    MembershipState::Joining
                } else {
                    MembershipState::Left
                }
            } else if !s.up {
                MembershipState::Down
            } else if s.name != me && age > failure.as_millis() as u64 {
                MembershipState::Suspect
            } else {
                MembershipState::Member
            };
            let role = if s.master {
                ClusterRole::Master
            } else {
                ClusterRole::Follower
            };
            if last.insert(s.name.clone(), (membership, role)) != Some((membership, role)) && n > 0
            {
                tracing::info!(node = %s.name, membership = membership.label(), role = role.label(), "membership changed");
                model.publish(
                    "MembershipChanged",
                    &name,
                    MembershipChangedPatch::new()
                        .node(s.name.as_str())
                        .state(membership)
                        .role(role)
                        .values()
                        .to_vec(),
                );
            }
            model.set(
                &name,
                NodePatch::new()
                    .membership(membership)
                    .role(role)
                    .heartbeat_age(age.min(u64::from(u32::MAX)) as u32)
                    .values(),
            );
        }
        if let Ok(el) = ObjectName::parse(&root) {
            let stale = view
                .staleness()
                .map_or(u32::MAX, |d| d.as_millis().min(u128::from(u32::MAX)) as u32);
            model.set(
                &el,
                NetworkElementPatch::new()
                    .master(view.master().unwrap_or_default())
                    .serving_node(me.as_str())
                    .replica_staleness(stale)
                    .member_nodes(nodes.iter().filter(|s| s.up).count() as u32)
                    .values(),
            );
        }
        n += 1;
        if n.is_multiple_of(5) {
            model.refresh().await;
        }
    }
}
