//! Process components (OCF style), simulated hardware with fault
//! injection, and what the core records about failures.

use std::time::Duration;

use halyard_backend::cec::CecRules;
use halyard_backend::core::{ComponentSpec, CoreConfig, HaCore, Kind};
use halyard_backend::crim::{ComponentView, SgConfig};
use halyard_backend::events::{EventFilter, EventKind, EventService, Received};
use halyard_backend::repo::Repository;
use halyard_cluster_model::model::{
    AvailabilityState, CheckpointMode, RecoveryAction, RedundancyModel, StandbyMode,
};

fn sg(name: &str, model: RedundancyModel, members: &[&str], first: RecoveryAction) -> SgConfig {
    SgConfig {
        name: name.into(),
        model,
        standby: StandbyMode::Warm,
        preferred_secondaries: 0,
        first_recovery: first,
        max_restarts: 3,
        probation: Duration::from_secs(60),
        members: members.iter().map(|s| s.to_string()).collect(),
        sis: vec![format!("si={name}")],
    }
}

fn hw(name: &str, parent: Option<&str>) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        parent: parent.map(Into::into),
        kind: Kind::Hardware,
        checkpoint: CheckpointMode::NoCheckpoints,
        audit: None,
    }
}

fn base(
    dir: &std::path::Path,
    groups: Vec<SgConfig>,
    components: Vec<ComponentSpec>,
) -> CoreConfig {
    CoreConfig {
        node: "test".into(),
        socket: dir.join("ha.sock"),
        groups,
        components,
        locked: Vec::new(),
        cec: CecRules {
            correlation_window: Duration::from_millis(200),
            ..CecRules::default()
        },
        checkpoint_deadline: Duration::from_secs(1),
        watchdog_timeout: Duration::from_secs(30),
        watchdog_device: None,
        stop_grace: Duration::from_secs(1),
        switchover_lead: Duration::from_millis(0),
        remote: None,
    }
}

async fn wait_for(
    core: &HaCore,
    what: &str,
    pred: impl Fn(&[ComponentView]) -> bool,
) -> Vec<ComponentView> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = core.components().await.unwrap();
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn get<'a>(v: &'a [ComponentView], n: &str) -> &'a ComponentView {
    v.iter().find(|c| c.name == n).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_component_with_a_failing_health_command_is_restarted_and_told_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("healthy");
    let roles = dir.path().join("roles");
    let stops = dir.path().join("stops");
    std::fs::write(&healthy, "").unwrap();
    let spec = ComponentSpec {
        name: "web".into(),
        parent: None,
        kind: Kind::Process {
            start: vec!["sleep".into(), "1000".into()],
            stop: Some(vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo stopped $HALYARD_PID >> {} && kill $HALYARD_PID",
                    stops.display()
                ),
            ]),
            health: Some(vec![
                "test".into(),
                "-f".into(),
                healthy.display().to_string(),
            ]),
            role: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("echo $HALYARD_ROLE >> {}", roles.display()),
            ]),
            env: vec![],
        },
        checkpoint: CheckpointMode::NoCheckpoints,
        audit: Some((Duration::from_millis(100), Duration::from_secs(2))),
    };
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let (core, running) = HaCore::start(
        base(
            dir.path(),
            vec![sg(
                "web",
                RedundancyModel::NoRedundancy,
                &["web"],
                RecoveryAction::HotRestart,
            )],
            vec![spec],
        ),
        repo.clone(),
    )
    .await
    .unwrap();
    let v = wait_for(&core, "web primary", |v| {
        get(v, "web").acked == Some(AvailabilityState::Primary)
    })
    .await;
    let first = get(&v, "web").incarnation;
    assert_eq!(
        std::fs::read_to_string(&roles).unwrap().trim(),
        "primary",
        "told its role through HALYARD_ROLE"
    );
    // Fail the audit: the health monitor reports, CRIM restarts it in place.
    std::fs::remove_file(&healthy).unwrap();
    let v = wait_for(&core, "a restart", |v| get(v, "web").incarnation > first).await;
    assert!(get(&v, "web").incarnation > first);
    std::fs::write(&healthy, "").unwrap();
    wait_for(&core, "web primary again", |v| {
        get(v, "web").acked == Some(AvailabilityState::Primary)
    })
    .await;
    running.shutdown().await;
    // Shutdown ran the OCF-style stop command with the process id.
    assert!(
        std::fs::read_to_string(&stops)
            .unwrap()
            .starts_with("stopped "),
        "the stop command ran"
    );
    // The failure was saved with the component's black box.
    let failures = repo.journal_entries("failure").await.unwrap();
    let (_, subject, body) = failures.first().expect("a failure record");
    assert_eq!(subject, "web");
    assert_eq!(body["kind"], "audit-failed");
    assert!(body["blackbox"].as_array().unwrap().iter().any(|r| {
        r["record"]
            .as_str()
            .unwrap()
            .contains("started incarnation")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_on_a_shelf_is_correlated_to_the_shelf_and_repair_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let config = base(
        dir.path(),
        vec![
            sg(
                "chassis",
                RedundancyModel::NoRedundancy,
                &["shelf"],
                RecoveryAction::SoftReset,
            ),
            sg(
                "cooling",
                RedundancyModel::NWayActive,
                &["fan-1", "fan-2"],
                RecoveryAction::SoftReset,
            ),
        ],
        vec![
            hw("shelf", None),
            hw("fan-1", Some("shelf")),
            hw("fan-2", Some("shelf")),
        ],
    );
    let (core, running) = HaCore::start(config, repo).await.unwrap();
    let mut events = core.events.subscribe(EventFilter::default());
    wait_for(&core, "all up", |v| {
        v.iter()
            .all(|c| c.acked == Some(AvailabilityState::Primary))
    })
    .await;
    core.inject_fault("shelf", "power-loss").await.unwrap();
    wait_for(&core, "all down", |v| {
        v.iter().all(|c| c.avail == AvailabilityState::OffLine)
    })
    .await;
    // One root alarm (the shelf), and the fans' reports re-targeted to it.
    let mut alarms = Vec::new();
    let mut verdicts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline
        && !verdicts.iter().any(|v: &String| v.starts_with("retarget"))
    {
        if let Ok(Some(Received::Event(e))) =
            tokio::time::timeout(Duration::from_millis(500), events.recv()).await
        {
            match &e.kind {
                EventKind::Alarm {
                    resource,
                    clear: false,
                    ..
                } => alarms.push(resource.clone()),
                EventKind::Verdict { verdict, .. } => verdicts.push(verdict.clone()),
                _ => {}
            }
        }
    }
    assert_eq!(alarms, ["shelf"]);
    assert!(
        verdicts.iter().any(|v| v == "retarget:shelf"),
        "{verdicts:?}"
    );
    assert!(
        core.inject_fault("shelf", "melt").await.is_err(),
        "unknown faults are refused"
    );
    core.inject_fault("shelf", "repair").await.unwrap();
    wait_for(&core, "all back", |v| {
        v.iter()
            .all(|c| c.acked == Some(AvailabilityState::Primary))
    })
    .await;
    running.shutdown().await;
}

#[tokio::test]
async fn a_slow_event_subscriber_never_blocks_the_publisher_and_learns_what_it_missed() {
    let svc = EventService::new(8);
    let mut slow = svc.subscribe(EventFilter::default());
    let mut only_b = svc.subscribe(EventFilter {
        kinds: vec!["process"],
        subject_prefix: Some("b".into()),
    });
    for i in 0..100 {
        svc.publish(EventKind::Process {
            component: if i == 99 { "b".into() } else { "a".into() },
            pid: None,
            incarnation: i,
        });
    }
    assert_eq!(slow.recv().await, Some(Received::Missed(92)));
    assert!(matches!(only_b.recv().await, Some(Received::Missed(_))));
    match only_b.recv().await {
        Some(Received::Event(e)) => assert_eq!(e.kind.subject(), "b"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn availability_figures_from_incidents() {
    use halyard_backend::asr::{Incident, figures};
    let inc = |start, end: Option<i64>| Incident {
        id: 0,
        component: "a".into(),
        si: "si=1".into(),
        started: start,
        ended: end,
        service_lost: false,
        recovery: "fail-over".into(),
        completed: end.is_some(),
    };
    let (a, b) = (inc(1_000, Some(2_000)), inc(5_000, Some(8_000)));
    let f = figures(&[&a, &b], 0, 10_000);
    assert_eq!(f.outage_ms, 4_000);
    assert!((f.availability - 0.6).abs() < 1e-9);
    assert_eq!(f.mttr_ms, Some(2_000.0));
    assert_eq!(f.mtbf_ms, Some(3_000.0));
    let open = inc(9_000, None);
    assert_eq!(
        figures(&[&open], 0, 10_000).outage_ms,
        1_000,
        "an open outage counts until now"
    );
}

fn sleeper(name: &str, parent: &str) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        parent: Some(parent.into()),
        kind: Kind::Process {
            start: vec!["sleep".into(), "1000".into()],
            stop: None,
            health: Some(vec!["true".into()]),
            role: None,
            env: vec![],
        },
        checkpoint: CheckpointMode::NoCheckpoints,
        audit: Some((Duration::from_millis(50), Duration::from_secs(2))),
    }
}

fn pid_of(core: &HaCore, component: &str) -> Option<String> {
    core.naming
        .resolve(&format!("component/{component}"))
        .and_then(|h| h.strip_prefix("pid:").map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_added_at_run_time_start_unless_locked_and_removed_ones_stop() {
    use halyard_backend::core::Reconfigure;
    use halyard_backend::crim::{GroupMember, Reconfig};
    use halyard_cluster_model::model::AdminState;

    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let chassis = sg(
        "sg=chassis",
        RedundancyModel::NoRedundancy,
        &["shelf"],
        RecoveryAction::SoftReset,
    );
    let (core, running) = HaCore::start(
        base(dir.path(), vec![chassis], vec![hw("shelf", None)]),
        repo,
    )
    .await
    .unwrap();
    wait_for(&core, "the shelf", |v| {
        get(v, "shelf").avail == AvailabilityState::Primary
    })
    .await;

    // A unit with two component managers, one of them locked.
    let insert = || Reconfigure {
        crim: Reconfig {
            add_groups: vec![SgConfig {
                sis: vec!["si=1".into(), "si=2".into(), "si=3".into()],
                ..sg(
                    "sg=fru",
                    RedundancyModel::NoRedundancy,
                    &["unit", "unit/a", "unit/b"],
                    RecoveryAction::SoftReset,
                )
            }],
            locked: vec!["unit/b".into()],
            ..Reconfig::default()
        },
        components: vec![
            hw("unit", Some("shelf")),
            sleeper("unit/a", "unit"),
            sleeper("unit/b", "unit"),
        ],
        note: serde_json::json!({"unit": "in"}),
        ..Reconfigure::default()
    };
    let mut events = core.events.subscribe(EventFilter::default());
    core.reconfigure(insert()).await.unwrap();
    // The note is published for the agent.
    loop {
        match events.recv().await {
            Some(Received::Event(e)) => {
                if let EventKind::Replicated { topic, body } = &e.kind {
                    assert_eq!(topic, halyard_backend::core::HOTSWAP_TOPIC);
                    assert_eq!(body["unit"], "in");
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    let v = wait_for(&core, "the unit and its unlocked component", |v| {
        ["unit", "unit/a"].iter().all(|c| {
            v.iter()
                .any(|x| x.name == *c && x.avail == AvailabilityState::Primary)
        })
    })
    .await;
    let b = get(&v, "unit/b");
    assert_eq!((b.admin, b.incarnation), (AdminState::Locked, 0));
    assert!(
        pid_of(&core, "unit/b").is_none(),
        "a locked component is not started"
    );
    let pid_a = pid_of(&core, "unit/a").unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid_a}")).exists());

    // Unlocking starts it.
    core.request(halyard_backend::crim::Input::SetAdmin {
        component: "unit/b".into(),
        admin: AdminState::Unlocked,
    })
    .await
    .unwrap();
    wait_for(&core, "the unlocked component", |v| {
        get(v, "unit/b").avail == AvailabilityState::Primary
    })
    .await;
    let pid_b = pid_of(&core, "unit/b").unwrap();

    // A change that does not fit is refused whole.
    let bad = Reconfigure {
        crim: Reconfig {
            join: vec![GroupMember {
                group: "sg=none".into(),
                component: "x".into(),
                sis: vec![],
            }],
            ..Reconfig::default()
        },
        components: vec![hw("x", None)],
        ..Reconfigure::default()
    };
    assert!(core.reconfigure(bad).await.is_err());
    assert_eq!(core.components().await.unwrap().len(), 4);

    // Removal: CRIM forgets them, their processes stop.
    core.reconfigure(Reconfigure {
        crim: Reconfig {
            remove_groups: vec!["sg=fru".into()],
            ..Reconfig::default()
        },
        ..Reconfigure::default()
    })
    .await
    .unwrap();
    let v = core.components().await.unwrap();
    assert_eq!(
        v.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["shelf"]
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for pid in [&pid_a, &pid_b] {
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "pid {pid} still runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // In again: new incarnations of the same components.
    core.reconfigure(insert()).await.unwrap();
    let v = wait_for(&core, "the unit back", |v| {
        v.iter()
            .any(|x| x.name == "unit/a" && x.avail == AvailabilityState::Primary)
    })
    .await;
    assert_eq!(get(&v, "unit/a").incarnation, 2);
    assert_ne!(pid_of(&core, "unit/a").unwrap(), pid_a);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_step_down_in_a_switch_over_is_failed_and_its_standby_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    // Once `stuck` exists, the role command hangs when told "secondary".
    let stuck = dir.path().join("stuck");
    let proc = |name: &str| ComponentSpec {
        name: name.into(),
        parent: None,
        kind: Kind::Process {
            start: vec!["sleep".into(), "1000".into()],
            stop: None,
            health: None,
            role: Some(vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "[ \"$HALYARD_ROLE\" = secondary ] && [ -f {} ] && exec sleep 1000; exit 0",
                    stuck.display()
                ),
            ]),
            env: vec![],
        },
        checkpoint: CheckpointMode::NoCheckpoints,
        audit: None,
    };
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let (core, running) = HaCore::start(
        base(
            dir.path(),
            vec![sg(
                "pair",
                RedundancyModel::TwoN,
                &["a", "b"],
                RecoveryAction::HotRestart,
            )],
            vec![proc("a"), proc("b")],
        ),
        repo,
    )
    .await
    .unwrap();
    let acked = |v: &[ComponentView], n: &str, s| get(v, n).acked == Some(s);
    let v = wait_for(&core, "a primary and a secondary", |v| {
        (acked(v, "a", AvailabilityState::Primary) && acked(v, "b", AvailabilityState::Secondary))
            || (acked(v, "b", AvailabilityState::Primary)
                && acked(v, "a", AvailabilityState::Secondary))
    })
    .await;
    let (old, new) = if acked(&v, "a", AvailabilityState::Primary) {
        ("a", "b")
    } else {
        ("b", "a")
    };
    std::fs::write(&stuck, "").unwrap();
    core.request(halyard_backend::crim::Input::SwitchOver {
        component: old.into(),
        at: None,
    })
    .await
    .unwrap();
    // The standby waits for the old primary to step down; it never does:
    // it is failed after the deadline and the standby takes over.
    let v = wait_for(&core, "the standby primary", |v| {
        get(v, new).avail == AvailabilityState::Primary
    })
    .await;
    assert_ne!(get(&v, old).avail, AvailabilityState::Primary);
    std::fs::remove_file(&stuck).unwrap();
    running.shutdown().await;
}

/// A raw HA-aware client on the core's socket: its reader forwards every
/// line unless paused (a component that stops reading its socket).
struct RawClient {
    write: tokio::net::unix::OwnedWriteHalf,
    lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    pause: tokio::sync::watch::Sender<bool>,
}

impl RawClient {
    async fn register(socket: &std::path::Path, name: &str) -> RawClient {
        use tokio::io::AsyncWriteExt;
        let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let (r, mut write) = stream.into_split();
        let (lines, pause) = crate::support::pausable_lines(r);
        let reg = format!(r#"{{"op":"register","version":1,"component":"{name}","pid":0}}"#);
        write
            .write_all(format!("{reg}\n").as_bytes())
            .await
            .unwrap();
        RawClient {
            write,
            lines,
            pause,
        }
    }

    async fn send(&mut self, v: serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        self.write
            .write_all(format!("{v}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads until an assignment to `state`, acknowledging it.
    async fn until_assigned(&mut self, state: &str, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        loop {
            let Ok(Some(v)) = tokio::time::timeout_at(end, self.lines.recv()).await else {
                return false;
            };
            if v["op"] == "assign" {
                let s = v["state"].as_str().unwrap_or_default().to_string();
                self.send(serde_json::json!({"op": "ack", "state": s}))
                    .await;
                if s == state {
                    return true;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_is_never_dropped_when_the_components_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let ha = |name: &str| ComponentSpec {
        name: name.into(),
        parent: None,
        kind: Kind::HaAware {
            command: vec!["sleep".into(), "1000".into()],
            env: vec![],
            timed: false,
        },
        checkpoint: CheckpointMode::Asynchronous,
        audit: None,
    };
    let mut group = sg(
        "pair",
        RedundancyModel::TwoN,
        &["a", "b"],
        RecoveryAction::HotRestart,
    );
    group.standby = StandbyMode::Hot;
    let mut config = base(dir.path(), vec![group], vec![ha("a"), ha("b")]);
    // The session's write deadline: longer than the pause below.
    config.checkpoint_deadline = Duration::from_secs(5);
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let (core, running) = HaCore::start(config, repo).await.unwrap();
    let socket = dir.path().join("ha.sock");
    let mut a = RawClient::register(&socket, "a").await;
    assert!(a.until_assigned("primary", Duration::from_secs(30)).await);
    let mut b = RawClient::register(&socket, "b").await;
    assert!(b.until_assigned("secondary", Duration::from_secs(30)).await);
    wait_for(&core, "a primary and b secondary acknowledged", |v| {
        get(v, "a").acked == Some(AvailabilityState::Primary)
            && get(v, "b").acked == Some(AvailabilityState::Secondary)
    })
    .await;
    // b stops reading; a's checkpoints fill b's socket and then its queue.
    b.pause.send_replace(true);
    let value = "x".repeat(200);
    for i in 0..6000 {
        a.send(serde_json::json!({"op": "checkpoint-write", "key": format!("k{}", i % 50), "value": value}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A switch-over now: a steps down, b is told to take over while its
    // queue is full. The assignment must wait for b, not be dropped.
    core.request(halyard_backend::crim::Input::SwitchOver {
        component: "a".into(),
        at: None,
    })
    .await
    .unwrap();
    assert!(a.until_assigned("secondary", Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.pause.send_replace(false);
    assert!(
        b.until_assigned("primary", Duration::from_secs(20)).await,
        "b never heard it was primary"
    );
    wait_for(&core, "b primary", |v| {
        get(v, "b").acked == Some(AvailabilityState::Primary)
    })
    .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_incident_of_quick_failures_is_closed_and_incarnations_are_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = sleeper("p", "shelf");
    p.parent = None;
    p.audit = None;
    let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
    let mut solo = sg(
        "solo",
        RedundancyModel::NoRedundancy,
        &["p"],
        RecoveryAction::HotRestart,
    );
    // Restart every time: no escalation within the test.
    solo.max_restarts = 100;
    let (core, running) = HaCore::start(base(dir.path(), vec![solo], vec![p]), repo.clone())
        .await
        .unwrap();
    // Ten kill -9 in a row, each as soon as the restart is running: the
    // incidents' opens and closes, and the incarnations, come in bursts.
    let mut last = String::new();
    for round in 0..10 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Some(pid) = pid_of(&core, "p").filter(|p| *p != last) {
                let v = core.components().await.unwrap();
                if get(&v, "p").acked == Some(AvailabilityState::Primary) {
                    break pid;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: p not back"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let st = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap();
        assert!(st.success());
        last = pid;
    }
    // Back after the last kill: a new process, acknowledged primary.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let incarnation = loop {
        if pid_of(&core, "p").is_some_and(|p| p != last) {
            let v = core.components().await.unwrap();
            if get(&v, "p").acked == Some(AvailabilityState::Primary) {
                break get(&v, "p").incarnation;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "p not back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Every incident is closed once p serves again, and the stored
    // incarnation is the running one (not an older write landing last).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let incidents = core.asr.incidents().await.unwrap();
        let stored: Option<u32> = repo.get_as("/components/p/incarnation").await.unwrap();
        let open: Vec<_> = incidents.iter().filter(|i| i.ended.is_none()).collect();
        if incidents.len() >= 10 && open.is_empty() && stored == Some(incarnation) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} incidents, open: {open:?}; stored incarnation {stored:?}, running {incarnation}",
            incidents.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
}
