//! Fail-over latency: time from `kill -9` of a 2N primary (`counterd`) to
//! its secondary acknowledging the primary role, over many trials.
//!
//! cargo bench -p halyard-backend --bench failover [-- TRIALS]

use std::time::{Duration, Instant};

use halyard_backend::cec::CecRules;
use halyard_backend::core::{ComponentSpec, CoreConfig, HaCore, Kind};
use halyard_backend::crim::SgConfig;
use halyard_backend::events::{EventFilter, EventKind, Received};
use halyard_backend::repo::Repository;
use halyard_cluster_model::model::{
    AvailabilityState, CheckpointMode, RecoveryAction, RedundancyModel, StandbyMode,
};

#[tokio::main]
async fn main() {
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let comp = |name: &str| ComponentSpec {
        name: name.into(),
        parent: None,
        kind: Kind::HaAware {
            command: vec![env!("CARGO_BIN_EXE_counterd").into()],
            env: vec![],
            timed: true,
        },
        checkpoint: CheckpointMode::Synchronous,
        audit: None,
    };
    let config = CoreConfig {
        node: "bench".into(),
        socket: dir.path().join("ha.sock"),
        groups: vec![SgConfig {
            name: "sg".into(),
            model: RedundancyModel::TwoN,
            standby: StandbyMode::Hot,
            preferred_secondaries: 1,
            first_recovery: RecoveryAction::FailOver,
            max_restarts: 1_000_000,
            probation: Duration::from_secs(1),
            members: vec!["a".into(), "b".into()],
            sis: vec!["si=1".into()],
        }],
        components: vec![comp("a"), comp("b")],
        locked: Vec::new(),
        cec: CecRules::default(),
        checkpoint_deadline: Duration::from_secs(1),
        watchdog_timeout: Duration::from_secs(60),
        watchdog_device: None,
        stop_grace: Duration::from_secs(1),
        switchover_lead: Duration::from_millis(500),
        remote: None,
    };
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let (core, running) = HaCore::start(config, repo).await.unwrap();
    let mut samples = Vec::with_capacity(trials);
    for _ in 0..trials {
        // Wait for a steady pair: one primary, one secondary, both acknowledged.
        let (primary, secondary) = loop {
            let v = core.components().await.unwrap();
            let p = v
                .iter()
                .find(|c| c.acked == Some(AvailabilityState::Primary));
            let s = v
                .iter()
                .find(|c| c.acked == Some(AvailabilityState::Secondary));
            if let (Some(p), Some(s)) = (p, s) {
                break (p.name.clone(), s.name.clone());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pid: i32 = core
            .naming
            .resolve(&format!("component/{primary}"))
            .unwrap()
            .strip_prefix("pid:")
            .unwrap()
            .parse()
            .unwrap();
        let mut events = core.events.subscribe(EventFilter {
            kinds: vec!["acked"],
            subject_prefix: Some(secondary.clone()),
        });
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        loop {
            match events.recv().await {
                Some(Received::Event(e)) => {
                    if matches!(&e.kind, EventKind::Acked { component, state } if *component == secondary && state == "primary")
                    {
                        break;
                    }
                }
                Some(Received::Missed(_)) => {}
                None => panic!("event service gone"),
            }
        }
        samples.push(t0.elapsed());
    }
    running.shutdown().await;
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fail-over (kill -9 of the 2N primary -> secondary acknowledges primary), {trials} trials"
    );
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   min {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(samples[samples.len() - 1]),
        ms(samples[0])
    );
    println!(
        "  goal: p99 < 50 ms -> {}",
        if pct(0.99) < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
}
