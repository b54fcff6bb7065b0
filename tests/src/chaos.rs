//! The chaos round: the three-node example under every face's load while
//! faults are injected one after another, with a checker that records
//! what must never happen.
//!
//! Load, for the whole round: SNMP polling (a GET four times a second and
//! a walk of the element's subtree every two seconds, net-snmp's tools),
//! two ncclient sessions committing edits of their own ietf-system leaf
//! through the candidate, a real `prometheus` scraping every node every
//! second, a server-sent-event client (curl), the example's HA-aware
//! counters checkpointing every increment, and malformed input to every
//! face (SNMP garbage, broken SSH/NETCONF framing, bad HTTP).
//!
//! Faults, drawn from a seeded generator: `kill -9` of a node (and its
//! daemons) and of a primary component, SIGSTOP/SIGCONT of an agent (a
//! stalled, not dead, node) and of a whole node with its daemons (a paused
//! machine), a partition of one node from the others (both ways, or one
//! way: it hears nobody while everybody hears it), link flaps on one
//! of the two cluster links, lossy links (every node's cluster traffic
//! delayed 10–50 ms and 5–20 % of it lost, by the agent's own
//! `SetImpairment`: this machine, like CI's, has no `tc netem`), and
//! rolling upgrades to a new release (with [`Options::upgrades`]). Each
//! fault is healed, and the cluster must converge again before the next.
//!
//! Checked: never two primaries of one service instance at one instant,
//! and every primary's checkpointed count monotonic ([`Checker`], sampling
//! every member's own role history at 100 Hz or more); every acknowledged
//! NETCONF commit survives on every node; every node reconverges within
//! [`Options::converge_bound`]; no node is declared lost for a flapping
//! or lossy link; every request to a node with no fault on it is
//! answered; at the end, malformed input to every face of every node is
//! refused and counted ([`audit_refusals`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{CheckReport, Checker, Cluster, NODES, PAIRS};

/// What a round does.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long faults are injected.
    pub duration: Duration,
    /// Seeds the fault generator (printed in the report to replay a round).
    pub seed: u64,
    /// Release or the tests' own build of the agent.
    pub release: bool,
    /// Longest a node may take to reconverge after a fault is healed.
    pub converge_bound: Duration,
    /// How often each node's resources are sampled (a soak's figures).
    pub sample_every: Duration,
    /// NETCONF sessions committing (1 or 2), each starting on its own node.
    pub editors: usize,
    /// Rolling upgrades among the faults, at most this many (0: none):
    /// the nodes run under `halyard boot` from a load server, and each
    /// upgrade is to a new release (the same binary, packed again under
    /// the next version). A round with upgrades rolls its first from its
    /// middle on, if the draw has not brought one yet.
    pub upgrades: usize,
    /// Nodes in all: the example's three, and founding members with no
    /// component of their own (`n4`, `n5`, ...) up to this many.
    pub nodes: usize,
}

/// One node's resources at one instant, from its `/metrics` and its data
/// directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resources {
    pub at: Duration,
    pub rss_mb: f64,
    pub fds: u64,
    pub tasks: u64,
    /// Every file of the data directory (SQLite state, raft log, ...).
    pub data_mb: f64,
    /// The consensus log and its snapshots alone.
    pub raft_mb: f64,
}

/// The fault kinds, in the report's order.
pub const KINDS: [&str; 9] = [
    "kill -9 node",
    "kill -9 primary component",
    "SIGSTOP agent",
    "SIGSTOP node",
    "partition node",
    "one-way partition",
    "flap link 1",
    "lossy links",
    "rolling upgrade",
];

/// One injected fault and what followed.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: &'static str,
    pub victim: String,
    pub at: Duration,
    /// How long the fault lasted before it was healed.
    pub held: Duration,
    /// From the fault to every pair it took a primary from served again.
    pub failover: Option<Duration>,
    /// From the heal to a converged cluster.
    pub reconverge: Option<Duration>,
}

/// Requests of one load, and how many a node with no fault failed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: u64,
    pub answered: u64,
    /// Unanswered by a node that had no fault during the request.
    pub failed_healthy: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub elapsed: Duration,
    pub faults: Vec<Fault>,
    pub checker: CheckReport,
    pub violations: Vec<String>,
    pub loads: BTreeMap<&'static str, Tally>,
    /// Per editor leaf: commits acknowledged, failed, and the last
    /// acknowledged value.
    pub edits: Vec<(String, u64, u64, u64)>,
    pub sse_events: u64,
    /// Prometheus: scrapes attempted and scrapes that succeeded.
    pub scrapes: (u64, u64),
    pub garbage_sent: u64,
    /// Per face: malformed inputs sent in the closing audit, and how many
    /// the nodes' refusal counters counted (see [`audit_refusals`]).
    pub refusals: BTreeMap<&'static str, (u64, u64)>,
    /// Per node, its samples in time order.
    pub resources: BTreeMap<String, Vec<Resources>>,
}

impl Report {
    /// The report as a table (Markdown).
    pub fn table(&self) -> String {
        let mut s = format!(
            "chaos round: seed {}, {:.0} s, {} faults, checker {} samples at {:.0} Hz\n\n",
            self.seed,
            self.elapsed.as_secs_f64(),
            self.faults.len(),
            self.checker.samples,
            self.checker.rate_hz()
        );
        s.push_str(
            "| fault | injected | worst fail-over | worst reconvergence |\n|---|---|---|---|\n",
        );
        let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{} ms", d.as_millis()));
        for k in KINDS {
            let of: Vec<&Fault> = self.faults.iter().filter(|f| f.kind == k).collect();
            s.push_str(&format!(
                "| {k} | {} | {} | {} |\n",
                of.len(),
                ms(of.iter().filter_map(|f| f.failover).max()),
                ms(of.iter().filter_map(|f| f.reconverge).max()),
            ));
        }
        s.push_str(
            "\n| load | sent | answered | unanswered by a healthy node |\n|---|---|---|---|\n",
        );
        for (k, t) in &self.loads {
            s.push_str(&format!(
                "| {k} | {} | {} | {} |\n",
                t.sent, t.answered, t.failed_healthy
            ));
        }
        for (leaf, ok, err, last) in &self.edits {
            s.push_str(&format!(
                "| NETCONF commits of {leaf} | {} | {ok} | last acknowledged #{last} |\n",
                ok + err
            ));
        }
        s.push_str(&format!(
            "| prometheus scrapes | {} | {} | |\n| SSE events received | | {} | |\n| malformed inputs sent | {} | | |\n",
            self.scrapes.0, self.scrapes.1, self.sse_events, self.garbage_sent
        ));
        if !self.refusals.is_empty() {
            s.push_str("\n| malformed input (closing audit, every node) | sent | refused and counted |\n|---|---|---|\n");
            for (face, (sent, counted)) in &self.refusals {
                s.push_str(&format!("| {face} | {sent} | {counted} |\n"));
            }
        }
        if !self.resources.is_empty() {
            s.push_str("\n| node | samples | RSS MB first / last / max | fds first / last / max | tasks first / last / max | data MB first / last / max | raft MB first / last / max |\n|---|---|---|---|---|---|---|\n");
            for (n, v) in &self.resources {
                let (Some(a), Some(z)) = (v.first(), v.last()) else {
                    continue;
                };
                let maxf = |f: fn(&Resources) -> f64| v.iter().map(f).fold(0.0, f64::max);
                let maxu = |f: fn(&Resources) -> u64| v.iter().map(f).max().unwrap_or(0);
                s.push_str(&format!(
                    "| {n} | {} | {:.0} / {:.0} / {:.0} | {} / {} / {} | {} / {} / {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} |\n",
                    v.len(),
                    a.rss_mb, z.rss_mb, maxf(|r| r.rss_mb),
                    a.fds, z.fds, maxu(|r| r.fds),
                    a.tasks, z.tasks, maxu(|r| r.tasks),
                    a.data_mb, z.data_mb, maxf(|r| r.data_mb),
                    a.raft_mb, z.raft_mb, maxf(|r| r.raft_mb),
                ));
            }
        }
        s.push_str(&format!(
            "\nviolations: {}\n",
            if self.violations.is_empty() {
                "0".to_string()
            } else {
                format!(
                    "{}\n  {}",
                    self.violations.len(),
                    self.violations.join("\n  ")
                )
            }
        ));
        s
    }
}

/// A seed from the clock, for rounds not asked to replay one
/// (`HALYARD_CHAOS_SEED` replays one in the tests).
pub fn seed() -> u64 {
    std::env::var("HALYARD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A small seeded generator (xorshift64*): the same seed, the same faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// Which nodes have a fault on them now, and a per-node epoch that moves
/// at every fault's start and heal: a request that saw the same epoch
/// before and after, with no fault, was owed an answer.
#[derive(Debug, Default)]
struct Health {
    faulted: Mutex<BTreeMap<String, bool>>,
    epoch: Mutex<BTreeMap<String, u64>>,
}

impl Health {
    fn set(&self, node: &str, faulted: bool) {
        self.faulted.lock().unwrap().insert(node.into(), faulted);
        *self.epoch.lock().unwrap().entry(node.into()).or_default() += 1;
    }
    fn mark(&self, node: &str) -> Option<u64> {
        let f = self.faulted.lock().unwrap();
        if f.get(node).copied().unwrap_or(false) {
            return None;
        }
        Some(self.epoch.lock().unwrap().get(node).copied().unwrap_or(0))
    }
    fn still(&self, node: &str, mark: u64) -> bool {
        self.mark(node) == Some(mark)
    }
    /// The `i`-th node with no fault on it, going round.
    fn pick<'a>(&self, addrs: &'a [Addrs], i: usize) -> Option<&'a Addrs> {
        let f = self.faulted.lock().unwrap();
        let healthy: Vec<&Addrs> = addrs
            .iter()
            .filter(|a| !f.get(&a.node).copied().unwrap_or(false))
            .collect();
        healthy.get(i % healthy.len().max(1)).copied()
    }
}

#[derive(Debug, Clone)]
struct Addrs {
    node: String,
    snmp: String,
    netconf: String,
    http: String,
}

/// Runs one round in `dir` (the nodes' data, logs and Prometheus).
pub fn run(dir: &Path, opts: &Options) -> Report {
    let load_server = dir.join("load-server");
    let founders: Vec<String> = (NODES.len() + 1..=opts.nodes)
        .map(|i| format!("n{i}"))
        .collect();
    let founders: Vec<&str> = founders.iter().map(String::as_str).collect();
    let mut c = if opts.upgrades > 0 {
        crate::make_release(opts.release, &load_server, "1", false);
        let ls = load_server.display().to_string();
        Cluster::start_sized(dir, opts.release, Some(&ls), &founders)
    } else {
        Cluster::start_sized(dir, opts.release, None, &founders)
    };
    let names = c.names();
    crate::wait_until("a steady cluster", 90, || c.steady());
    let mut upgrades = Upgrades {
        load_server,
        version: 1,
    };
    let addrs: Vec<Addrs> = c
        .nodes
        .iter()
        .map(|n| Addrs {
            node: n.name.clone(),
            snmp: n.snmp.clone(),
            netconf: n.netconf.clone(),
            http: n.http.clone(),
        })
        .collect();
    let health = Arc::new(Health::default());
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Arc<Mutex<BTreeMap<&'static str, Tally>>> = Arc::default();
    let sse = Arc::new(AtomicU64::new(0));
    let garbage = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let spawn_load = |f: Box<dyn FnOnce() + Send>| std::thread::spawn(f);
    {
        let (a, h, s, l) = (addrs.clone(), health.clone(), stop.clone(), loads.clone());
        threads.push(spawn_load(Box::new(move || snmp_load(&a, &h, &s, &l))));
    }
    {
        let (a, h, s, n) = (addrs.clone(), health.clone(), stop.clone(), sse.clone());
        threads.push(spawn_load(Box::new(move || sse_load(&a, &h, &s, &n))));
    }
    // Stopped before the closing audit, which counts its own.
    let garbage_stop = Arc::new(AtomicBool::new(false));
    let garbage_thread = {
        let (a, s, g) = (addrs.clone(), garbage_stop.clone(), garbage.clone());
        spawn_load(Box::new(move || garbage_load(&a, &s, &g)))
    };
    let resources: Arc<Mutex<BTreeMap<String, Vec<Resources>>>> = Arc::default();
    {
        let dirs: Vec<(String, String, std::path::PathBuf)> = c
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.http.clone(), n.data.clone()))
            .collect();
        let (h, s, r, every) = (
            health.clone(),
            stop.clone(),
            resources.clone(),
            opts.sample_every,
        );
        threads.push(spawn_load(Box::new(move || {
            sample(&dirs, &h, &s, &r, every)
        })));
    }
    let editors: Vec<Editor> = ["contact", "location"]
        .iter()
        .take(opts.editors.clamp(1, 2))
        .enumerate()
        .map(|(i, leaf)| {
            // Each starts on its own node, and moves on when it fails.
            let mut order: Vec<String> = addrs.iter().map(|a| a.netconf.clone()).collect();
            order.rotate_left(i);
            Editor::start(leaf, &order)
        })
        .collect();
    let prometheus = Prometheus::start(dir, &addrs);
    let checker = Checker::start(&c);

    let mut rng = Rng(opts.seed.max(1));
    let mut report = Report {
        seed: opts.seed,
        ..Report::default()
    };
    let start = Instant::now();
    // A rolling upgrade's own time does not count against the round's:
    // the other faults get the whole duration.
    let mut upgrading = Duration::ZERO;
    while start.elapsed() < opts.duration + upgrading {
        std::thread::sleep(rng.ms(1000, 3000));
        let mut kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        let rolled = report
            .faults
            .iter()
            .filter(|f| f.kind == "rolling upgrade")
            .count();
        while kind == "rolling upgrade" && rolled >= opts.upgrades {
            kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        }
        if rolled == 0 && opts.upgrades > 0 && start.elapsed() > opts.duration / 2 {
            kind = "rolling upgrade";
        }
        let victim = names[rng.below(names.len() as u64) as usize].to_string();
        let lost_before = declared_lost(&c);
        let mut f = if kind == "rolling upgrade" {
            let f = upgrades.roll(&c, &health, opts, start, &mut report.violations);
            upgrading += f.held;
            f
        } else {
            inject(&mut c, &health, &mut rng, kind, &victim, start)
        };
        f.reconverge = converge(&c, opts.converge_bound);
        if f.reconverge.is_none() {
            report.violations.push(format!(
                "{kind} of {victim} at {:.1} s: no reconvergence within {:?}",
                f.at.as_secs_f64(),
                opts.converge_bound
            ));
        }
        if matches!(kind, "flap link 1" | "lossy links") && declared_lost(&c) > lost_before {
            report.violations.push(format!(
                "a node was declared lost during {kind} ({}) at {:.1} s",
                f.victim,
                f.at.as_secs_f64()
            ));
        }
        eprintln!(
            "chaos: {:>6.1} s {kind} {victim} held {} ms, fail-over {:?}, reconverged {:?}",
            f.at.as_secs_f64(),
            f.held.as_millis(),
            f.failover,
            f.reconverge
        );
        report.faults.push(f);
    }
    report.elapsed = start.elapsed();
    // Bad input under load: the other loads and the checker still run.
    garbage_stop.store(true, Ordering::SeqCst);
    let _ = garbage_thread.join();
    report.refusals = audit_refusals(&c, &addrs, &mut report.violations);
    report.checker = checker.finish();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    report.loads = loads.lock().unwrap().clone();
    report.sse_events = sse.load(Ordering::SeqCst);
    report.garbage_sent = garbage.load(Ordering::SeqCst);
    report.scrapes = prometheus.scrapes();
    report.resources = resources.lock().unwrap().clone();

    // Every acknowledged commit survives, on every node.
    for e in editors {
        let (leaf, ok, err, last) = e.finish();
        if last > 0 {
            // Every node applies the last commit within a moment.
            let deadline = Instant::now() + Duration::from_secs(20);
            let (held, shown) = loop {
                let shown: Vec<(&str, Option<String>)> = names
                    .iter()
                    .map(|n| {
                        let v = c
                            .attrs(n, "ne=1")
                            .and_then(|a| a[&leaf].as_str().map(String::from));
                        (n.as_str(), v)
                    })
                    .collect();
                let all = shown.iter().all(|(_, v)| {
                    v.as_deref()
                        .and_then(|v| v.rsplit('-').next())
                        .and_then(|k| k.parse::<u64>().ok())
                        .is_some_and(|k| k >= last)
                });
                if all || Instant::now() > deadline {
                    break (all, shown);
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            if !held {
                report.violations.push(format!(
                    "the acknowledged commit #{last} of {leaf} is lost: nodes show {shown:?}"
                ));
            }
        }
        report.edits.push((leaf, ok, err, last));
    }
    let r = &report.checker;
    for (pair, at, who) in r.double_primaries.iter().take(5) {
        report.violations.push(format!(
            "two primaries of {pair} at {:.3} s: {who:?}",
            at.as_secs_f64()
        ));
    }
    for (pair, at, seen) in r.double_samples.iter().take(3) {
        report.violations.push(format!(
            "  what the members of {pair} answered at {:.3} s: {seen:?}",
            at.as_secs_f64()
        ));
    }
    if r.double_primaries.len() > 5 {
        report.violations.push(format!(
            "... {} samples with two primaries in all",
            r.double_primaries.len()
        ));
    }
    for (pair, at, high, low) in r.count_regressions.iter().take(5) {
        report.violations.push(format!(
            "the count of {pair} went back from {high} to {low} at {:.3} s",
            at.as_secs_f64()
        ));
    }
    for (k, t) in &report.loads {
        if t.failed_healthy > 0 {
            report.violations.push(format!(
                "{k}: {} requests to a node with no fault went unanswered",
                t.failed_healthy
            ));
        }
    }
    report
}

/// The releases a round upgrades to.
struct Upgrades {
    load_server: std::path::PathBuf,
    /// The release every node runs now.
    version: u32,
}

impl Upgrades {
    /// A rolling upgrade of the whole element to the next release, started
    /// through the first node that takes it, until the campaign ends. Every
    /// node is excused from answering meanwhile (each reboots in turn);
    /// the checker still watches the pairs. A campaign that does not
    /// succeed, or leaves a node off the new release, is a violation.
    fn roll(
        &mut self,
        c: &Cluster,
        health: &Health,
        opts: &Options,
        start: Instant,
        violations: &mut Vec<String>,
    ) -> Fault {
        let at = start.elapsed();
        let next = (self.version + 1).to_string();
        crate::make_release(opts.release, &self.load_server, &next, false);
        let names = c.names();
        for n in &names {
            health.set(n, true);
        }
        let t0 = Instant::now();
        let started = names.iter().find(|n| {
            let (code, _) = c.invoke_full(
                n,
                "ne=1",
                "Upgrade",
                &[("Release", next.as_str()), ("Method", "rolling")],
            );
            code == 202
        });
        let mut outcome = "not started".to_string();
        if started.is_some() {
            // A debug build reboots each node in tens of seconds.
            let deadline =
                Instant::now() + Duration::from_secs(if opts.release { 180 } else { 600 });
            while Instant::now() < deadline {
                let state = names.iter().find_map(|n| campaign_state(c, n, &next));
                if let Some(s) = state
                    && s != "running"
                    && s != "paused"
                {
                    outcome = s;
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while outcome == "succeeded" && !c.on_release(&next) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        if outcome == "succeeded" && c.on_release(&next) {
            self.version += 1;
        } else {
            violations.push(format!(
                "the rolling upgrade to release {next} at {:.1} s ended {outcome:?}, every node on it: {}",
                at.as_secs_f64(),
                c.on_release(&next)
            ));
        }
        for n in &names {
            health.set(n, false);
        }
        Fault {
            kind: "rolling upgrade",
            victim: format!("release {next}"),
            at,
            held: t0.elapsed(),
            failover: None,
            reconverge: None,
        }
    }
}

/// The state of the newest campaign to `release`, as `node` shows it.
fn campaign_state(c: &Cluster, node: &str, release: &str) -> Option<String> {
    let (code, body) = c.curl(node, "GET", "/api/v1/objects?class=UpgradeCampaign");
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["objects"]
        .as_array()?
        .iter()
        .filter(|o| o["attributes"]["release"] == release)
        .max_by_key(|o| o["index"].as_u64())
        .and_then(|o| o["attributes"]["state"].as_str().map(String::from))
}

/// Injects one fault, holds it, heals it.
fn inject(
    c: &mut Cluster,
    health: &Health,
    rng: &mut Rng,
    kind: &'static str,
    victim: &str,
    start: Instant,
) -> Fault {
    let at = start.elapsed();
    // The pairs whose primary the fault takes away.
    let affected = c.pairs_served_by(victim);
    let served_elsewhere = |c: &Cluster| {
        affected.iter().all(|p| {
            PAIRS.iter().any(|(q, members)| {
                q == p
                    && members.iter().any(|(comp, host)| {
                        *host != victim && c.query(comp).is_some_and(|(_, s)| s == "primary")
                    })
            })
        })
    };
    let mut failover = None;
    let t0 = Instant::now();
    let watch = |c: &Cluster, failover: &mut Option<Duration>, hold: Duration| {
        while t0.elapsed() < hold {
            if failover.is_none() && !affected.is_empty() && served_elsewhere(c) {
                *failover = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    match kind {
        "kill -9 node" => {
            health.set(victim, true);
            c.kill9(victim);
            watch(c, &mut failover, rng.ms(1500, 4000));
            c.spawn(victim);
            c.wait_ready(victim);
        }
        "kill -9 primary component" => {
            // A primary member of a random pair, wherever it runs.
            let (pair, members) = PAIRS[rng.below(PAIRS.len() as u64) as usize];
            let Some((comp, host)) = members
                .iter()
                .find(|(comp, _)| c.query(comp).is_some_and(|(_, s)| s == "primary"))
            else {
                return Fault {
                    kind,
                    victim: format!("{pair}: no primary"),
                    at,
                    held: Duration::ZERO,
                    failover: None,
                    reconverge: None,
                };
            };
            let object = format!("ne=1/shelf=1/node={host}/comp={comp}");
            let pid = c
                .attrs(host, &object)
                .and_then(|a| a["pid"].as_u64())
                .filter(|p| *p > 1);
            if let Some(pid) = pid {
                crate::kill9(&pid.to_string());
            }
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                // first_recovery = fail-over: the other member takes over.
                if c.primary_of(pair).is_some_and(|(p, _)| p != *comp) {
                    failover = Some(t0.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            return Fault {
                kind,
                victim: format!("{comp} (pid {})", pid.unwrap_or(0)),
                at,
                held: Duration::ZERO,
                failover,
                reconverge: None,
            };
        }
        "SIGSTOP agent" | "SIGSTOP node" => {
            let tree = kind == "SIGSTOP node";
            health.set(victim, true);
            c.signal(victim, "STOP", tree);
            watch(c, &mut failover, rng.ms(1000, 3000));
            c.signal(victim, "CONT", tree);
        }
        "partition node" => {
            health.set(victim, true);
            let others = others(c, victim);
            for o in &others {
                c.invoke(victim, &node_object(o), "Disconnect", &[]);
                c.invoke(o, &node_object(victim), "Disconnect", &[]);
            }
            watch(c, &mut failover, rng.ms(1500, 4000));
            for o in &others {
                c.invoke(victim, &node_object(o), "Reconnect", &[]);
                c.invoke(o, &node_object(victim), "Reconnect", &[]);
            }
        }
        "one-way partition" => {
            // The victim hears nobody; everybody hears the victim.
            health.set(victim, true);
            let others = others(c, victim);
            for o in &others {
                c.invoke(victim, &node_object(o), "SetDeaf", &[("Deaf", "true")]);
            }
            watch(c, &mut failover, rng.ms(1500, 4000));
            for o in &others {
                c.invoke(victim, &node_object(o), "SetDeaf", &[("Deaf", "false")]);
            }
        }
        "flap link 1" => {
            // Link 1 (the second address) goes down and up three times on
            // every node: no node may be lost, nothing fails over.
            for _ in 0..3 {
                set_link(c, true);
                std::thread::sleep(rng.ms(300, 1500));
                set_link(c, false);
                std::thread::sleep(rng.ms(200, 800));
            }
        }
        "lossy links" => {
            // Every node's cluster links delay and lose part of what they
            // carry, as netem would: nobody may be lost, nothing fails over.
            let delay = 10 + rng.below(41);
            let loss = 5 + rng.below(16);
            set_impairment(c, delay, loss);
            std::thread::sleep(rng.ms(2000, 5000));
            set_impairment(c, 0, 0);
            return Fault {
                kind,
                victim: format!("every node: {delay} ms, {loss} % lost"),
                at,
                held: t0.elapsed(),
                failover: None,
                reconverge: None,
            };
        }
        _ => unreachable!("{kind}"),
    }
    let held = t0.elapsed();
    health.set(victim, false);
    Fault {
        kind,
        victim: victim.to_string(),
        at,
        held,
        failover,
        reconverge: None,
    }
}

/// How many times the nodes' logs say a node was declared lost.
fn declared_lost(c: &Cluster) -> usize {
    c.names()
        .iter()
        .map(|n| {
            std::fs::read_to_string(c.log(n))
                .unwrap_or_default()
                .matches("declaring the node lost")
                .count()
        })
        .sum()
}

fn set_link(c: &Cluster, down: bool) {
    for n in &c.names() {
        let d = if down { "true" } else { "false" };
        c.invoke(
            n,
            &node_object(n),
            "SetLinkDown",
            &[("Link", "1"), ("Down", d)],
        );
    }
}

/// Every node's egress impairment (see the Node's `SetImpairment`); a
/// heal is retried, so a round never goes on impaired.
fn set_impairment(c: &Cluster, delay_ms: u64, loss_percent: u64) {
    let (d, l) = (delay_ms.to_string(), loss_percent.to_string());
    for n in &c.names() {
        for _ in 0..if delay_ms == 0 && loss_percent == 0 {
            5
        } else {
            1
        } {
            let code = c.invoke(
                n,
                &node_object(n),
                "SetImpairment",
                &[("DelayMs", d.as_str()), ("LossPercent", l.as_str())],
            );
            if (200..300).contains(&code) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Every node but `victim`.
fn others(c: &Cluster, victim: &str) -> Vec<String> {
    c.names().into_iter().filter(|n| n != victim).collect()
}

fn node_object(n: &str) -> String {
    format!("ne=1/shelf=1/node={n}")
}

/// Waits until every node runs, every node names the same master, every
/// node sees every node a member, and every 2N pair has one primary and
/// one secondary. Returns how long that took, or None past `bound`.
fn converge(c: &Cluster, bound: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < bound {
        let names = c.names();
        let masters: Vec<Option<String>> = names.iter().map(|n| c.master(n)).collect();
        let agreed = masters[0].is_some() && masters.iter().all(|m| *m == masters[0]);
        if agreed
            && c.steady()
            && names.iter().all(|n| {
                names.iter().all(|m| {
                    c.attrs(n, &node_object(m))
                        .is_some_and(|a| a["membership"] == "member")
                })
            })
        {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn tally(loads: &Mutex<BTreeMap<&'static str, Tally>>, load: &'static str, ok: bool, owed: bool) {
    let mut l = loads.lock().unwrap();
    let t = l.entry(load).or_default();
    t.sent += 1;
    if ok {
        t.answered += 1;
    } else if owed {
        t.failed_healthy += 1;
    }
}

/// An NMS: a GET of sysUpTime and the node table's first row four times a
/// second, a walk of the element's subtree every two seconds (v2c), each
/// to a node with no fault on it.
fn snmp_load(
    addrs: &[Addrs],
    health: &Health,
    stop: &AtomicBool,
    loads: &Mutex<BTreeMap<&'static str, Tally>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let Some(a) = health.pick(addrs, i) else {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        };
        let walk = i.is_multiple_of(8_usize);
        let Some(mark) = health.mark(&a.node) else {
            continue;
        };
        let mut cmd = Command::new(if walk { "snmpwalk" } else { "snmpget" });
        cmd.args(["-v2c", "-c", "public", "-t", "3", "-r", "2", "-On"])
            .arg(&a.snmp);
        if walk {
            cmd.arg("1.3.6.1.4.1.32473.77");
        } else {
            cmd.args(["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"]);
        }
        let out = cmd.stderr(Stdio::null()).output();
        let ok = out.is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
        let owed = health.still(&a.node, mark);
        tally(loads, if walk { "SNMP walk" } else { "SNMP get" }, ok, owed);
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Samples every node with no fault on it: its `/metrics` process gauges
/// and the size of its data directory.
fn sample(
    nodes: &[(String, String, std::path::PathBuf)],
    health: &Health,
    stop: &AtomicBool,
    out: &Mutex<BTreeMap<String, Vec<Resources>>>,
    every: Duration,
) {
    let start = Instant::now();
    let mut next = Duration::ZERO;
    while !stop.load(Ordering::SeqCst) {
        if start.elapsed() < next {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        next += every;
        for (name, http, data) in nodes {
            if health.mark(name).is_none() {
                continue;
            }
            let Ok(o) = Command::new("curl")
                .args(["-s", "-m", "10"])
                .arg(format!("http://{http}/metrics"))
                .output()
            else {
                continue;
            };
            let text = String::from_utf8_lossy(&o.stdout);
            let gauge = |name: &str| {
                text.lines().find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
            };
            let (Some(rss), Some(fds), Some(tasks)) = (
                gauge("process_resident_memory_bytes"),
                gauge("process_open_fds"),
                gauge("halyard_runtime_alive_tasks"),
            ) else {
                continue;
            };
            let (all, raft) = dir_bytes(data);
            out.lock()
                .unwrap()
                .entry(name.clone())
                .or_default()
                .push(Resources {
                    at: start.elapsed(),
                    rss_mb: rss / 1e6,
                    fds: fds as u64,
                    tasks: tasks as u64,
                    data_mb: all as f64 / 1e6,
                    raft_mb: raft as f64 / 1e6,
                });
        }
    }
}

/// Bytes of every file under `dir`, and of those whose path names raft.
fn dir_bytes(dir: &Path) -> (u64, u64) {
    let mut all = 0;
    let mut raft = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                all += m.len();
                if e.path().to_string_lossy().contains("raft") {
                    raft += m.len();
                }
            }
        }
    }
    (all, raft)
}

/// One server-sent-event client, moving to another node when its stream ends.
fn sse_load(addrs: &[Addrs], health: &Health, stop: &AtomicBool, events: &AtomicU64) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let Some(a) = health.pick(addrs, i) else {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        };
        let Ok(mut child) = Command::new("curl")
            .args(["-sN", "-m", "20", "-u", "operator:halyard-demo"])
            .arg(format!("http://{}/api/v1/events", a.http))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        else {
            return;
        };
        let out = child.stdout.take().unwrap();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("event:") {
                events.fetch_add(1, Ordering::SeqCst);
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Malformed input to every face of every node, a few a second: SNMP
/// garbage and a truncated BER message, a broken SSH banner on the NETCONF
/// port, bad HTTP request lines.
fn garbage_load(addrs: &[Addrs], stop: &AtomicBool, sent: &AtomicU64) {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut i = 0u8;
    while !stop.load(Ordering::SeqCst) {
        i = i.wrapping_add(1);
        for a in addrs {
            let _ = udp.send_to(&[0x30, 0x82, 0xff, 0xff, 0x02, 0x01, i], &a.snmp);
            let _ = udp.send_to(b"\x30\x03\x02\x01", &a.snmp);
            for (addr, text) in [
                (
                    &a.netconf,
                    &b"SSH-2.0-garbage\r\n\x00\x00\x00\x05\x00\x00\x00\x00\x00]]>]]>"[..],
                ),
                (
                    &a.http,
                    &b"GET /api/v1/objects/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                ),
                (&a.http, &b"BREW / HTCPCP/1.0\r\n\r\n"[..]),
            ] {
                if let Ok(mut s) = TcpStream::connect_timeout(
                    &addr.parse().expect("address"),
                    Duration::from_millis(500),
                ) {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    let _ = s.write_all(text);
                    let _ = s.read(&mut [0u8; 512]);
                }
            }
            sent.fetch_add(5, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Malformed inputs of each kind the closing audit sends every node.
const AUDIT_EACH: u64 = 10;

/// The faces' refusal counters on a node's `/metrics`: SNMP messages that
/// do not parse (or name no SNMP version), SSH connections refused for
/// malformed input, requests refused as malformed HTTP.
fn refusal_counters(c: &Cluster, node: &str) -> Option<BTreeMap<&'static str, u64>> {
    let (code, body) = c.curl(node, "GET", "/metrics");
    if code != 200 {
        return None;
    }
    let value = |series: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    Some(BTreeMap::from([
        (
            "SNMP",
            value("halyard_snmp_messages_total{counter=\"in_asn_parse_errs\"}")
                + value("halyard_snmp_messages_total{counter=\"in_bad_versions\"}"),
        ),
        (
            "NETCONF (SSH)",
            value("halyard_netconf_events_total{counter=\"ssh_errors\"}"),
        ),
        ("HTTP", value("halyard_http_malformed_requests_total")),
    ]))
}

/// Sends every node a counted batch of malformed input on each face
/// while the other loads run, and checks that each was refused (HTTP
/// answers 400) and counted. Returns, per face, what was sent and counted.
fn audit_refusals(
    c: &Cluster,
    addrs: &[Addrs],
    violations: &mut Vec<String>,
) -> BTreeMap<&'static str, (u64, u64)> {
    let mut out: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let tcp = |addr: &str, text: &[u8]| -> Vec<u8> {
        let mut answer = Vec::new();
        if let Ok(mut s) =
            TcpStream::connect_timeout(&addr.parse().expect("address"), Duration::from_secs(5))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(text);
            let _ = s.read_to_end(&mut answer);
        }
        answer
    };
    for a in addrs {
        let Some(before) = refusal_counters(c, &a.node) else {
            violations.push(format!("audit: {} does not serve /metrics", a.node));
            continue;
        };
        let mut http_400 = 0;
        for i in 0..AUDIT_EACH {
            // A length beyond the datagram, and a truncated sequence.
            let _ = udp.send_to(&[0x30, 0x82, 0xff, 0xff, 0x02, 0x01, i as u8], &a.snmp);
            let _ = udp.send_to(b"\x30\x03\x02\x01", &a.snmp);
            // An SSH identification followed by a packet that is not one,
            // and no SSH identification at all.
            tcp(
                &a.netconf,
                b"SSH-2.0-garbage\r\n\x00\x00\x00\x05\x00\x00\x00\x00\x00]]>]]>",
            );
            tcp(&a.netconf, b"<hello/>]]>]]>\r\n");
            for text in [
                &b"GET /api/v1/objects/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                &b"BREW / HTCPCP/1.0\r\n\r\n"[..],
            ] {
                if tcp(&a.http, text).starts_with(b"HTTP/1.1 400") {
                    http_400 += 1;
                }
            }
        }
        let sent = 2 * AUDIT_EACH;
        if http_400 != sent {
            violations.push(format!(
                "audit: {} answered {http_400} of {sent} malformed HTTP requests with 400",
                a.node
            ));
        }
        // UDP is counted as it is read: give the node a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let after = loop {
            let now = refusal_counters(c, &a.node);
            let done = now
                .as_ref()
                .is_some_and(|now| now.iter().all(|(f, v)| v.saturating_sub(before[f]) >= sent));
            if done || Instant::now() > deadline {
                break now.unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        for (face, was) in &before {
            let counted = after.get(face).map_or(0, |v| v.saturating_sub(*was));
            let t = out.entry(face).or_default();
            t.0 += sent;
            // Refusals counted beyond the audit's own came from elsewhere.
            t.1 += counted.min(sent);
            if counted < sent {
                violations.push(format!(
                    "audit: {} counted {counted} of {sent} malformed {face} inputs",
                    a.node
                ));
            }
        }
    }
    out
}

/// An ncclient session committing edits of one ietf-system leaf.
struct Editor {
    leaf: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Editor {
    fn start(leaf: &str, addrs: &[String]) -> Editor {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(include_str!("chaos_editor.py"))
            .arg(leaf)
            .args(addrs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with ncclient");
        let out = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let l2 = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        Editor {
            leaf: leaf.into(),
            child,
            lines,
            reader,
        }
    }

    /// Ends the session: (leaf, acknowledged, failed, last acknowledged).
    fn finish(mut self) -> (String, u64, u64, u64) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.join();
        let lines = self.lines.lock().unwrap();
        let mut ok = 0;
        let mut err = 0;
        let mut last = 0;
        for l in lines.iter() {
            let mut w = l.split_whitespace();
            match (w.next(), w.next().and_then(|n| n.parse::<u64>().ok())) {
                (Some("ok"), Some(n)) => {
                    ok += 1;
                    last = last.max(n);
                }
                (Some("err"), _) => err += 1,
                _ => {}
            }
        }
        (self.leaf.clone(), ok, err, last)
    }
}

/// A real Prometheus scraping every node's `/metrics` every second.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, addrs: &[Addrs]) -> Prometheus {
        let port = crate::free_port();
        let targets: Vec<String> = addrs.iter().map(|a| format!("'{}'", a.http)).collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: halyard\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus");
        Prometheus { child, port }
    }

    /// (scrapes attempted, scrapes that succeeded) over the round, from
    /// Prometheus's own `up` series.
    fn scrapes(&self) -> (u64, u64) {
        let q = |expr: &str| -> u64 {
            let out = Command::new("curl")
                .args(["-s", "-m", "10", "--data-urlencode"])
                .arg(format!("query={expr}"))
                .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
                .output();
            out.ok()
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .and_then(|s| s.parse::<f64>().ok())
                })
                .map_or(0, |f| f as u64)
        };
        (
            q("sum(count_over_time(up[1h]))"),
            q("sum(sum_over_time(up[1h]))"),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
