//! Shared by the backend's test binaries (each takes it with
//! `#[path = "../support/mod.rs"] mod support;` or `mod support;`): a
//! one-node consensus cluster on disk and a component's end of the core's
//! socket whose reading can be paused. Not every binary uses every part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use halyard_backend::cec::CecRules;
use halyard_backend::cluster::{ClusterView, applier};
use halyard_backend::core::{ClusterSpec, CoreConfig, HaCore, Running};
use halyard_backend::repo::Repository;
use halyard_consensus::{Consensus, ConsensusConfig, ConsensusTask};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{mpsc, watch};

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A core configuration for node `n1` with no groups and no components.
pub fn core_config(dir: &Path) -> CoreConfig {
    CoreConfig {
        node: "n1".into(),
        socket: dir.join("ha.sock"),
        groups: Vec::new(),
        components: Vec::new(),
        locked: Vec::new(),
        cec: CecRules::default(),
        checkpoint_deadline: Duration::from_secs(2),
        watchdog_timeout: Duration::from_secs(30),
        watchdog_device: None,
        stop_grace: Duration::from_secs(2),
        switchover_lead: Duration::ZERO,
        remote: None,
    }
}

/// A one-node consensus cluster (raft.db under `dir`) listening on
/// `addr`, with an HA core configured by `config` that hosts `hosts`
/// (component → node); returns once this node leads.
pub async fn one_node_cluster(
    dir: &Path,
    addr: SocketAddr,
    tune: impl FnOnce(&mut ConsensusConfig),
    config: CoreConfig,
    hosts: BTreeMap<String, String>,
) -> (HaCore, Running, Consensus, ConsensusTask) {
    let mut c = ConsensusConfig::new(1, BTreeMap::from([(1, vec![addr])]), dir.join("consensus"));
    tune(&mut c);
    let (machine, applied) = applier();
    let (consensus, task) = Consensus::start(c, Arc::new(machine.clone()))
        .await
        .unwrap();
    let spec = ClusterSpec {
        consensus: consensus.clone(),
        view: ClusterView::new("n1", &[("n1".to_string(), 1)]),
        hosts,
        applied,
        applier: machine,
    };
    let repo = Repository::open(&dir.join("halyard.db")).await.unwrap();
    let (core, running) = HaCore::start_clustered(config, repo, spec).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !consensus.is_leader() {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (core, running, consensus, task)
}

/// Reads JSON lines from a component's socket into a channel; while the
/// returned switch is `true` not a byte is read (a component that does
/// not read its socket).
pub fn pausable_lines(
    r: OwnedReadHalf,
) -> (
    mpsc::UnboundedReceiver<serde_json::Value>,
    watch::Sender<bool>,
) {
    let (tx, lines) = mpsc::unbounded_channel();
    let (pause, mut paused) = watch::channel(false);
    tokio::spawn(async move {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            while *paused.borrow_and_update() {
                if paused.changed().await.is_err() {
                    return;
                }
            }
            line.clear();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Ok(v) = serde_json::from_str(&line)
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    (lines, pause)
}
