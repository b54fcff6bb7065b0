//! End-to-end tests: real TCP on loopback, real raft.db files in temp dirs, several nodes in
//! one process. Timeouts are generous (a loaded 2-core machine); waits poll, never sleep blindly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halyard_consensus::{
    Consensus, ConsensusConfig, ConsensusError, ConsensusTask, Machine, NodeId,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const DEADLINE: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(20);

/// Records every applied command; answers with who applied it.
#[derive(Debug)]
struct Recorder {
    node: NodeId,
    applied: Mutex<Vec<(u64, Value)>>,
    resets: Mutex<u32>,
}

impl Recorder {
    fn new(node: NodeId) -> Arc<Self> {
        Arc::new(Self {
            node,
            applied: Mutex::new(Vec::new()),
            resets: Mutex::new(0),
        })
    }
    fn commands(&self) -> Vec<Value> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
    fn entries(&self) -> Vec<(u64, Value)> {
        self.applied.lock().unwrap().clone()
    }
}

impl Machine for Recorder {
    async fn apply(&self, index: u64, command: Value) -> Value {
        self.applied.lock().unwrap().push((index, command.clone()));
        json!({ "applied_by": self.node, "index": index, "echo": command })
    }
    async fn reset(&self) {
        self.applied.lock().unwrap().clear();
        *self.resets.lock().unwrap() += 1;
    }
}

/// Logs to the test output when RUST_LOG is set (e.g. RUST_LOG=halyard_consensus=debug).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A port the tests reserve for one node's link (below the ephemeral range, never reused).
fn free_addr(ip: &str) -> SocketAddr {
    format!("{ip}:{}", halyard_test_ports::free_port())
        .parse()
        .unwrap()
}

struct Node {
    config: ConsensusConfig,
    consensus: Consensus,
    task: Option<ConsensusTask>,
    machine: Arc<Recorder>,
}

struct Cluster {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    members: BTreeMap<NodeId, Vec<SocketAddr>>,
    nodes: BTreeMap<NodeId, Node>,
}

impl Cluster {
    async fn start(n: u64, links: usize, tweak: impl Fn(&mut ConsensusConfig)) -> Cluster {
        logs();
        let dir = tempfile::tempdir().unwrap();
        let members: BTreeMap<NodeId, Vec<SocketAddr>> = (1..=n)
            .map(|id| {
                (
                    id,
                    (0..links)
                        .map(|l| free_addr(&format!("127.0.0.{}", l + 1)))
                        .collect(),
                )
            })
            .collect();
        let mut cluster = Cluster {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            members: members.clone(),
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            let mut config =
                ConsensusConfig::new(id, members.clone(), cluster.dir.join(format!("n{id}")));
            tweak(&mut config);
            cluster.launch(config).await;
        }
        cluster
    }

    async fn launch(&mut self, config: ConsensusConfig) {
        let id = config.node_id;
        let machine = Recorder::new(id);
        let (consensus, task) = Consensus::start(config.clone(), machine.clone())
            .await
            .expect("start");
        self.nodes.insert(
            id,
            Node {
                config,
                consensus,
                task: Some(task),
                machine,
            },
        );
    }

    fn c(&self, id: NodeId) -> &Consensus {
        &self.nodes[&id].consensus
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(|n| n.task.is_some())
    }

    /// Waits until the live nodes (among `among`) agree on one leader that is one of them.
    async fn leader_among(&self, among: &[NodeId]) -> NodeId {
        let start = Instant::now();
        loop {
            let leaders: BTreeSet<Option<NodeId>> =
                among.iter().map(|id| self.c(*id).leader()).collect();
            if leaders.len() == 1
                && let Some(Some(l)) = leaders.first()
                && among.contains(l)
                && self.c(*l).is_leader()
            {
                return *l;
            }
            assert!(
                start.elapsed() < WAIT,
                "no agreed leader among {among:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn leader(&self) -> NodeId {
        let ids: Vec<NodeId> = self.live().map(|n| n.config.node_id).collect();
        self.leader_among(&ids).await
    }

    /// Waits until the live nodes' machines hold the same sequence of at least `len` commands.
    async fn converged(&self, len: usize) -> Vec<(u64, Value)> {
        let start = Instant::now();
        loop {
            let seqs: Vec<Vec<(u64, Value)>> = self.live().map(|n| n.machine.entries()).collect();
            if seqs.iter().all(|s| s.len() >= len && *s == seqs[0]) {
                return seqs[0].clone();
            }
            assert!(
                start.elapsed() < WAIT,
                "machines did not converge on {len} commands: {:?}",
                seqs.iter().map(|s| s.len()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self, id: NodeId) {
        let task = self.nodes.get_mut(&id).unwrap().task.take().unwrap();
        task.shutdown().await;
    }

    async fn restart(&mut self, id: NodeId) {
        let config = self.nodes[&id].config.clone();
        self.launch(config).await;
    }

    async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(task) = self.nodes.get_mut(&id).unwrap().task.take() {
                task.shutdown().await;
            }
        }
    }
}

async fn propose(c: &Consensus, v: Value) -> Value {
    c.propose(v, DEADLINE).await.expect("propose")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_and_forward() {
    let started = Instant::now();
    let cluster = Cluster::start(3, 1, |_| {}).await;
    let all_up = Instant::now();
    let leader = cluster.leader().await;
    eprintln!(
        "leader {leader} elected {:?} after the first start, {:?} after the last",
        started.elapsed(),
        all_up.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "election took {:?}",
        started.elapsed()
    );

    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let answer = propose(cluster.c(follower), json!({"op": "set", "k": 1})).await;
    assert_eq!(
        answer["applied_by"],
        json!(leader),
        "the answer is the leader's apply result"
    );
    assert_eq!(answer["echo"], json!({"op": "set", "k": 1}));
    for i in 0..10 {
        let via = 1 + (i % 3);
        propose(cluster.c(via), json!(i)).await;
    }
    let seq = cluster.converged(11).await;
    assert_eq!(seq.len(), 11);
    assert_eq!(seq[0].1, json!({"op": "set", "k": 1}));
    let status = cluster.c(leader).status();
    assert_eq!(status.voters, vec![1, 2, 3]);
    assert!(status.millis_since_quorum_ack.is_some());
    assert_eq!(cluster.c(follower).status().leader, Some(leader));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_restart_replays() {
    let mut cluster = Cluster::start(3, 1, |_| {}).await;
    let old = cluster.leader().await;
    for i in 0..5 {
        propose(cluster.c(old), json!(["before", i])).await;
    }
    cluster.converged(5).await;

    let stopped = Instant::now();
    cluster.stop(old).await;
    // Shutdown released the listener and the handle refuses work.
    let refused = tokio::net::TcpStream::connect(cluster.members[&old][0]).await;
    assert!(refused.is_err(), "listener of a stopped node still accepts");
    let r = cluster
        .c(old)
        .propose(json!("to a stopped node"), DEADLINE)
        .await;
    assert!(matches!(r, Err(ConsensusError::Stopped)), "{r:?}");
    let rest: Vec<NodeId> = (1..=3).filter(|id| *id != old).collect();
    let new = cluster.leader_among(&rest).await;
    let failover = stopped.elapsed();
    eprintln!("failover: node {new} leads {failover:?} after node {old} stopped");
    assert_ne!(new, old);
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );

    for i in 0..5 {
        propose(cluster.c(rest[i % 2]), json!(["after", i])).await;
    }
    cluster.converged(10).await;

    cluster.restart(old).await;
    let seq = cluster.converged(10).await;
    assert_eq!(
        cluster.nodes[&old].machine.entries(),
        seq,
        "the restarted node re-applied every command"
    );
    propose(cluster.c(old), json!("rejoined")).await;
    cluster.converged(11).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_node_cannot_commit_then_catches_up() {
    let cluster = Cluster::start(3, 1, |_| {}).await;
    cluster.leader().await;
    propose(cluster.c(1), json!("first")).await;
    cluster.converged(1).await;

    cluster.c(3).faults().isolate_from(BTreeSet::from([1, 2]));
    cluster.c(1).faults().isolate_from(BTreeSet::from([3]));
    cluster.c(2).faults().isolate_from(BTreeSet::from([3]));
    assert!(cluster.c(3).faults().is_isolated_from(1));

    let r = cluster
        .c(3)
        .propose(json!("lost"), Duration::from_millis(1500))
        .await;
    assert!(matches!(r, Err(ConsensusError::Deadline { .. })), "{r:?}");
    for i in 0..5 {
        propose(cluster.c(1), json!(["majority", i])).await;
    }
    let leader = cluster.leader_among(&[1, 2]).await;
    assert_ne!(leader, 3);

    for id in 1..=3 {
        cluster.c(id).faults().isolate_from(BTreeSet::new());
    }
    let seq = cluster.converged(6).await;
    assert!(
        !seq.iter().any(|(_, c)| *c == json!("lost")),
        "the isolated proposal never committed"
    );
    propose(cluster.c(3), json!("healed")).await;
    cluster.converged(7).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_links_survive_one_link_down() {
    let cluster = Cluster::start(3, 2, |_| {}).await;
    cluster.leader().await;
    propose(cluster.c(2), json!("both links")).await;

    for id in 1..=3 {
        cluster.c(id).faults().set_link_down(0, true);
    }
    assert!(cluster.c(1).faults().link_down(0));
    for i in 0..6 {
        propose(cluster.c(1 + (i % 3)), json!(["link 1 only", i])).await;
    }
    cluster.converged(7).await;

    // And back: link 1 down, link 0 up.
    for id in 1..=3 {
        cluster.c(id).faults().set_link_down(0, false);
        cluster.c(id).faults().set_link_down(1, true);
    }
    for i in 0..3 {
        propose(cluster.c(1 + (i % 3)), json!(["link 0 only", i])).await;
    }
    cluster.converged(10).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_joins_and_applies_everything() {
    let mut cluster = Cluster::start(3, 1, |_| {}).await;
    let leader = cluster.leader().await;
    for i in 0..5 {
        propose(cluster.c(1), json!(i)).await;
    }
    let addrs = vec![free_addr("127.0.0.1")];
    let config = ConsensusConfig::joining(4, addrs.clone(), cluster.dir.join("n4"));
    cluster.launch(config).await;
    // A joining node does not form a cluster of its own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.c(4).leader(), None);
    assert!(cluster.nodes[&4].machine.entries().is_empty());

    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster
        .c(follower)
        .add_node(4, addrs)
        .await
        .expect("add_node");
    cluster.converged(5).await;
    propose(cluster.c(4), json!("from the new node")).await;
    cluster.converged(6).await;
    let status = cluster.c(cluster.leader().await).status();
    assert_eq!(status.voters, vec![1, 2, 3, 4]);

    // Removing it again: 3 voters remain and keep committing.
    cluster.c(1).remove_node(4).await.expect("remove_node");
    let status = cluster.c(cluster.leader_among(&[1, 2, 3]).await).status();
    assert_eq!(status.voters, vec![1, 2, 3]);
    cluster.stop(4).await;
    propose(cluster.c(2), json!("after removal")).await;
    cluster.converged(7).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_installs_on_a_new_node_and_replays_on_restart() {
    let low = |c: &mut ConsensusConfig| {
        c.snapshot_every = 10;
        c.keep_after_snapshot = 0;
    };
    let mut cluster = Cluster::start(3, 1, low).await;
    let leader = cluster.leader().await;
    for i in 0..25 {
        propose(cluster.c(leader), json!(["cmd", i])).await;
    }
    cluster.c(leader).trigger_snapshot().await.unwrap();
    let start = Instant::now();
    let purged = loop {
        let (snap, purged) = cluster.c(leader).snapshot_state();
        if let (Some(s), Some(p)) = (snap, purged)
            && s >= 20
            && p >= 20
        {
            break p;
        }
        assert!(
            start.elapsed() < WAIT,
            "no snapshot/purge on the leader: {:?}",
            (snap, purged)
        );
        cluster.c(leader).purge_log(u64::MAX).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("leader purged its log up to {purged}");
    let before = cluster.converged(25).await;

    // The new node can only get the purged prefix through install_snapshot.
    let addrs = vec![free_addr("127.0.0.1")];
    let mut config = ConsensusConfig::joining(4, addrs.clone(), cluster.dir.join("n4"));
    low(&mut config);
    cluster.launch(config).await;
    cluster.c(1).add_node(4, addrs).await.expect("add_node");
    let seq = cluster.converged(25).await;
    assert_eq!(seq, before);
    assert!(
        *cluster.nodes[&4].machine.resets.lock().unwrap() >= 1,
        "node 4 got a snapshot"
    );

    // A restart rebuilds the machine from the stored snapshot plus the log.
    let other = (1..=3).find(|id| *id != leader).unwrap();
    cluster.stop(other).await;
    propose(cluster.c(leader), json!("while down")).await;
    cluster.restart(other).await;
    let seq = cluster.converged(26).await;
    assert_eq!(cluster.nodes[&other].machine.commands().len(), seq.len());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_port_is_harmless() {
    let cluster = Cluster::start(3, 1, |_| {}).await;
    cluster.leader().await;
    let target = cluster.members[&1][0];

    let mut payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        [&10u32.to_be_bytes()[..], b"not json!!"].concat(),
        [&5u32.to_be_bytes()[..], b"{}"].concat(), // short, then EOF
    ];
    let misaddressed =
        br#"{"from":2,"to":99,"id":1,"msg":{"Request":{"RemoveNode":{"id":3,"timeout_ms":10}}}}"#;
    payloads.push(
        [
            &(misaddressed.len() as u32).to_be_bytes()[..],
            &misaddressed[..],
        ]
        .concat(),
    );
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    payloads.push(
        (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect(),
    );
    for p in payloads {
        let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
        let _ = s.write_all(&p).await;
        let _ = s.shutdown().await;
    }
    // An idle connection that never sends a thing.
    let _idle = tokio::net::TcpStream::connect(target).await.unwrap();

    for i in 0..3 {
        propose(cluster.c(1 + i), json!(["still fine", i])).await;
    }
    cluster.converged(3).await;
    assert_eq!(cluster.c(1).status().voters, vec![1, 2, 3]);
    cluster.shutdown().await;
}
