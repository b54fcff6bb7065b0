//! Fencing is never dropped (#15 item 1): a node that loses the majority
//! demotes its primaries through the same ordered lane as every
//! assignment, served ahead of checkpoint traffic, so a primary whose
//! queue is full of checkpoint answers still hears its demotion at once.
//! (A bounded queue filled with `try_send` used to drop it: the process
//! stayed primary on the cut-off node.)
//!
//! A real one-node consensus cluster (raft.db on disk) hosts a 2N pair of
//! HA-aware components on this node; the test plays both components over
//! the core's Unix socket and injects the fence as the membership monitor
//! does when no round trip reaches a majority within the lease.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use halyard_backend::core::{ComponentSpec, CoreConfig, HaCore, Kind, Membership, Running};
use halyard_backend::crim::SgConfig;
use halyard_cluster_model::model::{
    AvailabilityState, CheckpointMode, RecoveryAction, RedundancyModel, StandbyMode,
};
use halyard_consensus::{Consensus, ConsensusTask};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};

/// The membership monitor's lease in the agent's default configuration.
const LEASE: Duration = Duration::from_millis(300);

fn ha(name: &str) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        parent: None,
        kind: Kind::HaAware {
            // The test plays the component; the process only has to run.
            command: vec!["sleep".into(), "1000".into()],
            env: vec![],
            timed: false,
        },
        checkpoint: CheckpointMode::Asynchronous,
        audit: None,
    }
}

async fn start(dir: &Path) -> (HaCore, Running, Consensus, ConsensusTask) {
    let config = CoreConfig {
        groups: vec![SgConfig {
            name: "pair".into(),
            model: RedundancyModel::TwoN,
            standby: StandbyMode::Hot,
            preferred_secondaries: 0,
            first_recovery: RecoveryAction::HotRestart,
            max_restarts: 3,
            probation: Duration::from_secs(60),
            members: vec!["a".into(), "b".into()],
            sis: vec!["si=pair".into()],
        }],
        components: vec![ha("a"), ha("b")],
        // Longer than the pause below: the session is slow, not dead.
        checkpoint_deadline: Duration::from_secs(10),
        stop_grace: Duration::from_secs(1),
        ..support::core_config(dir)
    };
    let hosts = BTreeMap::from([
        ("a".to_string(), "n1".to_string()),
        ("b".to_string(), "n1".to_string()),
    ]);
    support::one_node_cluster(dir, support::free_addr(), |_| {}, config, hosts).await
}

/// One component's end of the socket: lines as JSON, a reader that can be
/// paused (then not a byte is read).
struct Client {
    /// `None` once a flood has taken it (then nothing is acknowledged).
    write: Option<OwnedWriteHalf>,
    lines: mpsc::UnboundedReceiver<serde_json::Value>,
    pause: watch::Sender<bool>,
}

impl Client {
    async fn register(socket: &Path, name: &str) -> Client {
        let stream = UnixStream::connect(socket).await.unwrap();
        let (r, write) = stream.into_split();
        let (lines, pause) = support::pausable_lines(r);
        let mut c = Client {
            write: Some(write),
            lines,
            pause,
        };
        c.send(serde_json::json!({"op": "register", "version": 1, "component": name, "pid": 0}))
            .await;
        c
    }

    async fn send(&mut self, v: serde_json::Value) {
        if let Some(w) = &mut self.write {
            w.write_all(format!("{v}\n").as_bytes()).await.unwrap();
        }
    }

    /// Reads until an assignment to `state` (acknowledging assignments);
    /// returns how many checkpoint answers came before it.
    async fn until_assigned(&mut self, state: &str, within: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + within;
        let mut before = 0;
        loop {
            let v = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .ok()??;
            match v["op"].as_str() {
                Some("assign") => {
                    let s = v["state"].as_str().unwrap_or_default().to_string();
                    self.send(serde_json::json!({"op": "ack", "state": s}))
                        .await;
                    if s == state {
                        return Some(before);
                    }
                }
                Some("checkpoint-state") => before += 1,
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_primary_hears_its_demotion_within_the_lease_though_its_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let (core, running, _consensus, task) = start(dir.path()).await;
    let socket = dir.path().join("ha.sock");
    let mut a = Client::register(&socket, "a").await;
    assert!(
        a.until_assigned("primary", Duration::from_secs(30))
            .await
            .is_some(),
        "a never became primary"
    );
    let mut b = Client::register(&socket, "b").await;
    assert!(
        b.until_assigned("secondary", Duration::from_secs(30))
            .await
            .is_some(),
        "b never became secondary"
    );
    // State worth answering: 50 keys of 200 bytes.
    let value = "x".repeat(200);
    for i in 0..50 {
        a.send(
            serde_json::json!({"op": "checkpoint-write", "key": format!("k{i}"), "value": value}),
        )
        .await;
    }
    // a stops reading and asks for its state 3,000 times: the answers
    // (10 KB each) fill its socket and then its queue in the core.
    a.pause.send_replace(true);
    let reads = 3000;
    let mut write = a.write.take().expect("a's socket");
    let flood = tokio::spawn(async move {
        let line = "{\"op\":\"checkpoint-read\"}\n".repeat(reads);
        // Blocks once the core stops reading behind the full queue.
        let _ = write.write_all(line.as_bytes()).await;
        write
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // The node loses the majority: every local primary gives up its role.
    core.membership(Membership::Fence).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.pause.send_replace(false);
    let resumed = Instant::now();
    let before = a
        .until_assigned(
            AvailabilityState::Spare.yang_name(),
            Duration::from_secs(20),
        )
        .await;
    let took = resumed.elapsed();
    let before = before.expect("a never heard its demotion");
    assert!(
        before < reads,
        "the demotion came after all {before} queued checkpoint answers"
    );
    assert!(
        took < LEASE,
        "the demotion took {took:?} once a read again (lease {LEASE:?}), behind {before} answers"
    );
    // The queue was full when the demotion went ahead of it: its answers
    // (256 of them, the session's queue) still follow.
    let mut after = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), a.lines.recv()).await {
        after += 1;
    }
    assert!(
        after >= 200,
        "only {after} answers followed the demotion: the queue was not full"
    );
    eprintln!(
        "demotion heard {took:?} after a read again, behind {before} answers and ahead of {after}"
    );
    flood.abort();
    drop(b);
    running.shutdown().await;
    task.shutdown().await;
}
