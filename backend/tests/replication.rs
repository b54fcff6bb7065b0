//! Replicated history stays bounded: audited operations go through the
//! consensus log of a real one-node cluster (raft.db on disk), and neither
//! the snapshot nor the restart grows with them; a reader's cursor never
//! skips or repeats a change.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use halyard_backend::core::{HaCore, Running};
use halyard_backend::replicated::{Change, Retention};
use halyard_consensus::{Consensus, ConsensusTask};

/// The audit trail's bound, as the agent sets it.
const KEPT: usize = 1000;

struct Node {
    core: HaCore,
    running: Running,
    consensus: Consensus,
    task: ConsensusTask,
}

async fn start(dir: &Path, addr: SocketAddr) -> Node {
    let (core, running, consensus, task) = support::one_node_cluster(
        dir,
        addr,
        |c| c.snapshot_every = 10_000,
        support::core_config(dir),
        BTreeMap::new(),
    )
    .await;
    Node {
        core,
        running,
        consensus,
        task,
    }
}

impl Node {
    async fn stop(self) {
        self.running.shutdown().await;
        self.task.shutdown().await;
    }
}

fn audit(n: u64) -> Change {
    Change {
        topic: "audit".into(),
        retention: Retention::Recent {
            class: "audit".into(),
            keep: KEPT,
        },
        body: serde_json::json!({
            "time": 1_700_000_000_000i64 + n as i64,
            "principal": "operator",
            "protocol": 1,
            "operation": format!("set ne=1/shelf=1/fan=1 Label = \"fan {n}\""),
            "result": "ok",
        }),
        expect: None,
    }
}

/// Step `step` of campaign `id`, written after step `after` (a campaign's
/// writes as the upgrade manager makes them: each names the newest
/// campaign change it follows).
fn state(id: u64, step: u64, after: Option<(u64, u64)>) -> Change {
    Change {
        topic: "campaign".into(),
        retention: Retention::Latest(format!("campaign/{id}")),
        body: serde_json::json!({"id": id, "step": step}),
        expect: Some(halyard_backend::replicated::Expected {
            topic: "campaign".into(),
            body: after.map(|(id, step)| serde_json::json!({"id": id, "step": step})),
        }),
    }
}

/// Campaign 1 runs two steps, then campaign 2 starts after it.
async fn two_campaigns(core: &HaCore) {
    core.replicate(state(1, 1, None)).await.unwrap();
    core.replicate(state(1, 2, Some((1, 1)))).await.unwrap();
    core.replicate(state(2, 1, Some((1, 2)))).await.unwrap();
}

/// Reads every change after `cursor` as `(index, n)`.
async fn read(core: &HaCore, cursor: u64) -> (Vec<(u64, u64)>, bool) {
    let since = core.replicated_since(cursor).await.unwrap();
    let got = since
        .entries
        .iter()
        .map(|e| {
            let op = e.body["operation"].as_str().unwrap();
            let n = op.trim_end_matches("\"").rsplit(' ').next().unwrap();
            (e.index, n.parse().unwrap())
        })
        .collect();
    (got, since.missed)
}

async fn snapshot_bytes(dir: &Path) -> usize {
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.join("consensus/raft.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT length(data) FROM snapshot WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n as usize
}

/// The bounds this test states: with 100,000 audited operations in the
/// log, the snapshot holds at most the last 1,000 (under 512 KiB), and a
/// restart replays the snapshot and the log behind it to the last record
/// in under 10 s; a reader following along sees every record once, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_audited_operations_keep_snapshot_and_restart_bounded() {
    let total: u64 = std::env::var("HALYARD_REPLICATION_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let addr = support::free_addr();
    let node = start(dir.path(), addr).await;

    // Many operators at once: the log orders them.
    let began = Instant::now();
    let mut cursor = 0;
    let mut all_seen = std::collections::BTreeSet::new();
    let mut last = 0;
    let mut next = 1u64;
    while next <= total {
        let batch: Vec<u64> = (next..(next + 256).min(total + 1)).collect();
        next += batch.len() as u64;
        let mut set = tokio::task::JoinSet::new();
        for n in batch {
            let core = node.core.clone();
            set.spawn(async move { core.replicate(audit(n)).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        // A reader following along: every record once (a batch's records
        // commit in any order among themselves, never twice).
        let (got, missed) = read(&node.core, cursor).await;
        assert!(!missed, "a reader keeping up misses nothing");
        for (index, n) in &got {
            assert!(*index > cursor, "in log order");
            assert!(all_seen.insert(*n), "record {n} seen twice");
            cursor = *index;
            last = *n;
        }
    }
    let proposing = began.elapsed();
    assert_eq!(all_seen.len() as u64, total, "the reader saw every record");
    eprintln!(
        "{total} audited operations committed in {proposing:?} ({:.0}/s)",
        total as f64 / proposing.as_secs_f64()
    );
    // The core keeps the newest records only.
    let (kept, missed) = read(&node.core, 0).await;
    assert_eq!(kept.len(), KEPT.min(total as usize));
    assert!(missed || total as usize <= KEPT);
    assert_eq!(kept.last(), Some(&(cursor, last)));

    node.consensus.trigger_snapshot().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.consensus.snapshot_state().0.is_none() {
        assert!(Instant::now() < deadline, "no snapshot built");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await;
    let bytes = snapshot_bytes(dir.path()).await;
    eprintln!("snapshot: {bytes} bytes");
    assert!(bytes < 512 * 1024, "snapshot of {bytes} bytes");

    // Restart: the snapshot's records and the log behind it come back, the
    // newest last, with their own indices (the same index holds the same
    // record).
    let began = Instant::now();
    let node = start(dir.path(), addr).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let kept = loop {
        let (kept, _) = read(&node.core, 0).await;
        if kept.last() == Some(&(cursor, last)) {
            break kept;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never replayed the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let restart = began.elapsed();
    eprintln!("restart to the last record: {restart:?}");
    assert!(
        restart < Duration::from_secs(10),
        "restart took {restart:?}"
    );
    assert_eq!(kept.len(), KEPT.min(total as usize));
    // A reader that had read everything before the restart gets nothing
    // again; new records follow.
    node.core.replicate(audit(total + 1)).await.unwrap();
    let (after, _) = read(&node.core, cursor).await;
    assert_eq!(
        after.iter().map(|a| a.1).collect::<Vec<_>>(),
        vec![total + 1]
    );
    node.stop().await;
}

/// A conditional change is applied only after the change it names, so a
/// writer that read a lagging replica (or whose proposal waited) cannot put
/// back a superseded state; after a restart the log replays to the same
/// verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_follows_a_superseded_change_is_refused_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let addr = support::free_addr();
    let node = start(dir.path(), addr).await;
    two_campaigns(&node.core).await;
    // A second "first" campaign, and a stale master's step 3 of campaign
    // 1 (it read step 2 before campaign 2 began): both refused.
    let first = node.core.replicate(state(1, 1, None)).await.unwrap_err();
    let stale = node
        .core
        .replicate(state(1, 3, Some((1, 2))))
        .await
        .unwrap_err();
    assert!(stale.to_string().contains("superseded"), "{stale}");
    assert!(first.to_string().contains("superseded"), "{first}");
    node.core
        .replicate(state(2, 2, Some((2, 1))))
        .await
        .unwrap();

    let kept = |since: halyard_backend::replicated::Since| -> Vec<serde_json::Value> {
        since.entries.into_iter().map(|e| e.body).collect()
    };
    let expected = vec![
        serde_json::json!({"id": 1, "step": 2}),
        serde_json::json!({"id": 2, "step": 2}),
    ];
    assert_eq!(kept(node.core.replicated_since(0).await.unwrap()), expected);
    node.stop().await;
    // Replayed from raft.db: the refused changes stay refused.
    let node = start(dir.path(), addr).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = kept(node.core.replicated_since(0).await.unwrap());
        if now == expected {
            break;
        }
        assert!(Instant::now() < deadline, "after the restart: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await;
}

/// A node restarted from a snapshot still has the newest change of each
/// topic, conditional ones included: a campaign's states, each naming the
/// one it follows, among many newer audit records. The snapshot keeps only
/// the newest state of each campaign, not the one it followed, and not a
/// refused stale write. (A restarted master lost its running campaign this
/// way in the seven-node chaos round.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_keeps_the_newest_change_of_each_topic() {
    let dir = tempfile::tempdir().unwrap();
    let addr = support::free_addr();
    let node = start(dir.path(), addr).await;
    two_campaigns(&node.core).await;
    node.core
        .replicate(state(2, 2, Some((2, 1))))
        .await
        .unwrap();
    // A stale master's write of campaign 2: refused, and it must not
    // displace step 2 in the snapshot.
    assert!(
        node.core
            .replicate(state(2, 1, Some((1, 2))))
            .await
            .is_err()
    );
    for n in 0..(KEPT as u64 + 200) {
        node.core.replicate(audit(n)).await.unwrap();
    }
    node.consensus.trigger_snapshot().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.consensus.snapshot_state().0.is_none() {
        assert!(Instant::now() < deadline, "no snapshot built");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More after the snapshot, as a cluster goes on.
    for n in 0..50 {
        node.core.replicate(audit(10_000 + n)).await.unwrap();
    }
    let campaigns = |since: halyard_backend::replicated::Since| -> Vec<serde_json::Value> {
        since
            .entries
            .into_iter()
            .filter(|e| e.topic == "campaign")
            .map(|e| e.body)
            .collect()
    };
    let expected = vec![
        serde_json::json!({"id": 1, "step": 2}),
        serde_json::json!({"id": 2, "step": 2}),
    ];
    assert_eq!(
        campaigns(node.core.replicated_since(0).await.unwrap()),
        expected
    );
    node.stop().await;
    let node = start(dir.path(), addr).await;
    let last = serde_json::json!(1_700_000_000_000i64 + 10_049);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let since = node.core.replicated_since(0).await.unwrap();
        if since.entries.iter().any(|e| e.body["time"] == last) {
            assert_eq!(campaigns(since), expected, "after the restart");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never replayed the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The restarted node goes on from there: step 3 follows step 2.
    node.core
        .replicate(state(2, 3, Some((2, 2))))
        .await
        .unwrap();
    node.stop().await;
}
