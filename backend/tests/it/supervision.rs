//! The HA core end to end: real `counterd` child processes, killed with
//! SIGKILL, on the real Unix socket protocol and a real SQLite repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use halyard_backend::cec::CecRules;
use halyard_backend::client::Timeline;
use halyard_backend::core::{ComponentSpec, CoreConfig, HaCore, Kind, Running};
use halyard_backend::crim::{ComponentView, SgConfig};
use halyard_backend::events::{EventFilter, EventKind, Received};
use halyard_backend::protocol::{ErrorCode, ToComponent};
use halyard_backend::repo::Repository;
use halyard_cluster_model::model::{
    AvailabilityState, CheckpointMode, RecoveryAction, RedundancyModel, StandbyMode,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use AvailabilityState::{Primary, Secondary};

const WAIT: Duration = Duration::from_secs(30);

struct Element {
    dir: tempfile::TempDir,
    core: HaCore,
    running: Option<Running>,
}

fn counterd(name: &str, dir: &Path, mode: CheckpointMode) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        parent: None,
        kind: Kind::HaAware {
            command: vec![env!("CARGO_BIN_EXE_counterd").into()],
            env: vec![
                (
                    "COUNTERD_QUERY".into(),
                    dir.join(format!("{name}.q")).display().to_string(),
                ),
                ("COUNTERD_INTERVAL_MS".into(), "5".into()),
            ],
            timed: true,
        },
        checkpoint: mode,
        audit: None,
    }
}

fn config(
    dir: &Path,
    model: RedundancyModel,
    members: &[&str],
    sis: &[&str],
    secondaries: u32,
) -> CoreConfig {
    CoreConfig {
        node: "test".into(),
        socket: dir.join("ha.sock"),
        groups: vec![SgConfig {
            name: "sg".into(),
            model,
            standby: StandbyMode::Hot,
            preferred_secondaries: secondaries,
            first_recovery: RecoveryAction::FailOver,
            max_restarts: 5,
            probation: Duration::from_secs(60),
            members: members.iter().map(|s| s.to_string()).collect(),
            sis: sis.iter().map(|s| s.to_string()).collect(),
        }],
        components: members
            .iter()
            .map(|m| counterd(m, dir, CheckpointMode::Synchronous))
            .collect(),
        locked: Vec::new(),
        cec: CecRules::default(),
        checkpoint_deadline: Duration::from_secs(2),
        watchdog_timeout: Duration::from_secs(30),
        watchdog_device: None,
        stop_grace: Duration::from_secs(2),
        switchover_lead: Duration::from_millis(500),
        remote: None,
    }
}

impl Element {
    async fn start(
        model: RedundancyModel,
        members: &[&str],
        sis: &[&str],
        secondaries: u32,
    ) -> Element {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, model, members, sis, secondaries).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        model: RedundancyModel,
        members: &[&str],
        sis: &[&str],
        secondaries: u32,
    ) -> Element {
        let repo = Repository::open(&dir.path().join("repo.db")).await.unwrap();
        let (core, running) =
            HaCore::start(config(dir.path(), model, members, sis, secondaries), repo)
                .await
                .unwrap();
        Element {
            dir,
            core,
            running: Some(running),
        }
    }

    async fn views(&self) -> Vec<ComponentView> {
        self.core.components().await.unwrap()
    }

    /// Waits until `pred` holds for the component views.
    async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&[ComponentView]) -> bool,
    ) -> Vec<ComponentView> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.views().await;
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

    async fn wait_acked(&self, expect: &[(&str, AvailabilityState)]) -> Vec<ComponentView> {
        self.wait_for(&format!("{expect:?}"), |v| {
            expect.iter().all(|(n, s)| {
                v.iter()
                    .any(|c| c.name == *n && c.avail == *s && c.acked == Some(*s))
            })
        })
        .await
    }

    /// Waits for this many acknowledged primaries and secondaries; returns
    /// their names (who gets which role depends on who registers first).
    async fn wait_roles(&self, primaries: usize, secondaries: usize) -> (Vec<String>, Vec<String>) {
        let v = self
            .wait_for(
                &format!("{primaries} primaries and {secondaries} secondaries"),
                |v| {
                    let n = |s| {
                        v.iter()
                            .filter(|c| c.avail == s && c.acked == Some(s))
                            .count()
                    };
                    n(Primary) == primaries && n(Secondary) == secondaries
                },
            )
            .await;
        let names = |s| {
            v.iter()
                .filter(|c| c.avail == s)
                .map(|c| c.name.clone())
                .collect()
        };
        (names(Primary), names(Secondary))
    }

    fn pid(&self, name: &str) -> i32 {
        self.core
            .naming
            .resolve(&format!("component/{name}"))
            .and_then(|h| h.strip_prefix("pid:").map(|p| p.parse().unwrap()))
            .unwrap_or_else(|| panic!("{name} has no pid"))
    }

    fn kill9(&self, name: &str) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid(name)),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    /// The daemon's count and state; while it takes a primary role up it
    /// has no count yet (`-`), and is asked again.
    async fn count(&self, name: &str) -> (u64, String) {
        let path = self.dir.path().join(format!("{name}.q"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut s = UnixStream::connect(&path)
                .await
                .unwrap_or_else(|e| panic!("query {name}: {e}"));
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            let first = out.lines().next().unwrap_or_default();
            let (n, state) = first.trim().split_once(' ').unwrap();
            if let Ok(n) = n.parse() {
                return (n, state.to_string());
            }
            assert_eq!(n, "-", "{name} answered {first:?}");
            assert!(
                std::time::Instant::now() < deadline,
                "{name} took its role up for 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_n_kill_9_of_the_primary_fails_over_with_no_increment_lost() {
    let mut e = Element::start(RedundancyModel::TwoN, &["a", "b"], &["si=1"], 1).await;
    let mut events = e.core.events.subscribe(EventFilter::default());
    let (p, s) = e.wait_roles(1, 1).await;
    let (a, b) = (p[0].as_str(), s[0].as_str());
    // Let it count a while; the standby follows the synchronous checkpoints.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (before, state) = e.count(a).await;
    assert_eq!(state, "primary");
    assert!(before > 0, "the primary counts");
    let b_before = e.count(b).await.0;
    assert!(
        b_before > 0 && b_before <= before + 1,
        "the hot standby follows: {b_before} vs {before}"
    );

    e.kill9(a);
    e.wait_acked(&[(b, Primary)]).await;
    let (after, state) = e.count(b).await;
    assert_eq!(state, "primary");
    assert!(
        after >= before,
        "resumed from the checkpoint: {after} >= {before}"
    );
    // The killed one is restarted and comes back as secondary.
    let v = e.wait_acked(&[(a, Secondary), (b, Primary)]).await;
    assert!(v.iter().find(|c| c.name == a).unwrap().incarnation >= 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (later, _) = e.count(b).await;
    assert!(later > after, "still counting");

    let mut seen = Vec::new();
    while let Some(Received::Event(ev)) = events.try_recv() {
        seen.push(ev.kind.clone());
    }
    assert!(
        seen.iter()
            .any(|k| matches!(k, EventKind::FailedOver { from, to, .. } if from == a && to == b)),
        "{seen:#?}"
    );
    assert!(seen.iter().any(|k| matches!(k, EventKind::Verdict { component, verdict, .. } if component == a && verdict == "forward")));
    e.stop().await;

    // History is in the repository: the incident and the journal.
    let repo = Repository::open(&e.dir.path().join("repo.db"))
        .await
        .unwrap();
    let incidents = halyard_backend::asr::Asr::new(repo.pool().clone())
        .incidents()
        .await
        .unwrap();
    let a = a.to_string();
    assert!(
        incidents
            .iter()
            .any(|i| i.component == a && i.recovery == "fail-over" && !i.service_lost),
        "{incidents:#?}"
    );
    assert!(
        !repo
            .journal_entries("failed-over")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A counterd's role at instant `t` (unix ns), from its query answer's
/// `roles` line; and its count.
fn role_at(answer: &str, t: u64) -> (String, u64) {
    let mut lines = answer.lines();
    let count = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let role = Timeline::from_query_answer(answer)
        .and_then(|h| h.at(t).map(str::to_string))
        .unwrap_or_else(|| "off-line".into());
    (role, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_two_n_switch_over_has_one_primary_at_every_instant() {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut e = Element::start(RedundancyModel::TwoN, &["a", "b"], &["si=1"], 1).await;
    let (p, s) = e.wait_roles(1, 1).await;
    let (a, b) = (p[0].clone(), s[0].clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = e.count(&a).await.0;

    // Samples both members at one instant each time: each answers with its
    // roles since, so the instant is the sample's, not the query's.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sockets: Vec<PathBuf> = [&a, &b]
        .iter()
        .map(|n| e.dir.path().join(format!("{n}.q")))
        .collect();
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let t = halyard_backend::protocol::unix_ns();
                let roles: Vec<(String, u64)> = sockets
                    .iter()
                    .map(|q| {
                        let mut out = String::new();
                        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(q) {
                            let _ = s.read_to_string(&mut out);
                        }
                        role_at(&out, t)
                    })
                    .collect();
                samples.push(roles);
                std::thread::sleep(Duration::from_millis(1));
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    e.core
        .request(halyard_backend::crim::Input::SwitchOver {
            component: a.clone(),
            at: None,
        })
        .await
        .unwrap();
    e.wait_acked(&[(b.as_str(), Primary), (a.as_str(), Secondary)])
        .await;
    // Past the scheduled instant (lead 500 ms), then a while more.
    while e.count(&b).await.1 != "primary" {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();

    let bad: Vec<_> = samples
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().filter(|(role, _)| role == "primary").count() != 1)
        .collect();
    assert!(
        samples.len() > 100,
        "sampled {} times in {took:?}",
        samples.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {} samples without exactly one primary: {:?}",
        bad.len(),
        samples.len(),
        &bad[..bad.len().min(5)]
    );
    // Both halves at one instant: a's step-down and b's promotion.
    let history = |n: &str| {
        let mut out = String::new();
        std::os::unix::net::UnixStream::connect(e.dir.path().join(format!("{n}.q")))
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let h = Timeline::from_query_answer(&out).unwrap();
        let (from, state) = h.last().unwrap();
        (from, state.to_string())
    };
    let (ta, ra) = history(&a);
    let (tb, rb) = history(&b);
    assert_eq!((ra.as_str(), rb.as_str()), ("secondary", "primary"));
    assert_eq!(ta, tb, "one instant for both halves");
    // The service went on: the new primary counts on from the old one's count.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = e.count(&b).await.0;
    assert!(after > before, "counting on: {after} > {before}");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_plus_m_three_plus_one_with_processes() {
    let mut e = Element::start(
        RedundancyModel::NPlusM,
        &["p1", "p2", "p3", "s1"],
        &["si=1", "si=2", "si=3"],
        1,
    )
    .await;
    let (p, s) = e.wait_roles(3, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let victim = p[1].as_str();
    let si = e
        .views()
        .await
        .into_iter()
        .find(|c| c.name == victim)
        .unwrap()
        .active;
    let (before, _) = e.count(victim).await;
    e.kill9(victim);
    e.wait_acked(&[(s[0].as_str(), Primary)]).await;
    // The secondary took the victim's SI and resumed its count from the checkpoint.
    let v = e.views().await;
    assert_eq!(v.iter().find(|c| c.name == s[0]).unwrap().active, si);
    let (after, _) = e.count(&s[0]).await;
    assert!(after >= before, "{after} >= {before}");
    e.wait_acked(&[(victim, Secondary)]).await;
    e.wait_roles(3, 1).await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_way_active_three_with_processes() {
    let mut e = Element::start(
        RedundancyModel::NWayActive,
        &["a", "b", "c"],
        &["si=1", "si=2", "si=3"],
        0,
    )
    .await;
    e.wait_acked(&[("a", Primary), ("b", Primary), ("c", Primary)])
        .await;
    let v = e
        .wait_for("one SI each", |v| v.iter().all(|c| c.active.len() == 1))
        .await;
    let b_si = v.iter().find(|c| c.name == "b").unwrap().active[0].clone();
    let mut events = e.core.events.subscribe(EventFilter {
        kinds: vec!["failed-over"],
        subject_prefix: None,
    });
    e.kill9("b");
    // b's SI moves to a survivor while b restarts (it may move back soon after).
    let moved = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Received::Event(ev)) = events.recv().await
                && let EventKind::FailedOver { si, from, to, .. } = &ev.kind
                && from == "b"
            {
                return (si.clone(), to.clone());
            }
        }
    })
    .await
    .expect("b's SI failed over");
    assert_eq!(moved.0, b_si);
    assert_ne!(moved.1, "b");
    e.wait_acked(&[("b", Primary)]).await;
    e.stop().await;
}

/// Sends raw lines on the socket and returns the replies.
async fn exchange(socket: &Path, lines: &[&str]) -> Vec<ToComponent> {
    let s = UnixStream::connect(socket).await.unwrap();
    let (r, mut w) = s.into_split();
    for l in lines {
        // The agent may close the session before it has read everything
        // (an overlong line): a broken pipe here is expected, the replies
        // sent before it are still read below.
        if w.write_all(l.as_bytes()).await.is_err() || w.write_all(b"\n").await.is_err() {
            break;
        }
    }
    let mut reader = BufReader::new(r).lines();
    let mut out = Vec::new();
    for _ in 0..lines.len() {
        match tokio::time::timeout(Duration::from_secs(5), reader.next_line()).await {
            Ok(Ok(Some(l))) => out.push(serde_json::from_str(&l).unwrap()),
            _ => break,
        }
    }
    out
}

fn code(m: &ToComponent) -> Option<ErrorCode> {
    match m {
        ToComponent::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_messages_get_typed_errors_and_others_keep_working() {
    let mut e = Element::start(RedundancyModel::TwoN, &["a", "b"], &["si=1"], 1).await;
    let (p, _) = e.wait_roles(1, 1).await;
    let primary = p[0].as_str();
    let sock: PathBuf = e.dir.path().join("ha.sock");
    let replies = exchange(
        &sock,
        &[
            "this is not json",
            "[1,2,3]",
            r#"{"op":"fly"}"#,
            r#"{"op":"checkpoint-write","key":"count","value":"999999"}"#,
            r#"{"op":"register","version":9,"component":"a"}"#,
            r#"{"op":"register","version":1,"component":"nobody"}"#,
        ],
    )
    .await;
    let codes: Vec<Option<ErrorCode>> = replies.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            Some(ErrorCode::Malformed),
            Some(ErrorCode::Malformed),
            Some(ErrorCode::Malformed),
            Some(ErrorCode::OutOfOrder),
            Some(ErrorCode::Version),
            Some(ErrorCode::UnknownComponent),
        ]
    );
    // A line too long closes only that session.
    let long = "x".repeat(halyard_backend::protocol::MAX_LINE + 10);
    let replies = exchange(&sock, &[&long]).await;
    assert_eq!(
        replies.iter().map(code).collect::<Vec<_>>(),
        [Some(ErrorCode::Fatal)]
    );
    // A client that vanishes mid-line.
    {
        let mut s = UnixStream::connect(&sock).await.unwrap();
        s.write_all(br#"{"op":"regis"#).await.unwrap();
    }
    // The forged checkpoint did not land, and the pair is unharmed.
    let (n1, _) = e.count(primary).await;
    assert!(n1 < 999_999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (n2, state) = e.count(primary).await;
    assert!(n2 > n1 && state == "primary");
    e.wait_roles(1, 1).await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incarnations_and_history_survive_an_agent_restart() {
    let mut e = Element::start(RedundancyModel::TwoN, &["a", "b"], &["si=1"], 1).await;
    let (p, _) = e.wait_roles(1, 1).await;
    let a = p[0].clone();
    e.kill9(&a);
    e.wait_acked(&[(a.as_str(), Secondary)]).await;
    let inc_a = e
        .views()
        .await
        .iter()
        .find(|c| c.name == a)
        .unwrap()
        .incarnation;
    // The incident is written off the core task: recorded before the stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !e
        .core
        .asr
        .incidents()
        .await
        .unwrap()
        .iter()
        .any(|i| i.component == a)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the incident was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e.stop().await;
    let Element { dir, .. } = e;
    let mut e = Element::start_in(dir, RedundancyModel::TwoN, &["a", "b"], &["si=1"], 1).await;
    let v = e
        .wait_for("both registered", |v| v.iter().all(|c| c.acked.is_some()))
        .await;
    let now_a = v.iter().find(|c| c.name == a).unwrap().incarnation;
    assert!(
        now_a > inc_a,
        "incarnations continue: {now_a} after {inc_a}"
    );
    let incidents = e.core.asr.incidents().await.unwrap();
    assert!(
        incidents.iter().any(|i| i.component == a),
        "history kept: {incidents:#?}"
    );
    e.stop().await;
}
