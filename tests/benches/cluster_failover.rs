//! Cluster fail-over benchmark on the three-node example (release build).
//!
//!     cargo bench -p halyard-tests --bench cluster_failover -- [trials]
//!
//! Each trial: `kill -9` the node hosting the counter's primary, time until
//! every 2N pair the node served has a primary again (sampled on the
//! components' own query sockets every millisecond), restart the node and
//! wait until the pairs are steady. Then: `kill -9` of the master, time
//! until the survivors agree on a new master.

use std::time::{Duration, Instant};

use halyard_tests::{Cluster, NODES, host_of, wait_until};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn report(what: &str, v: &mut [f64]) {
    let max = v.iter().cloned().fold(0.0, f64::max);
    println!(
        "{what}: n={} p50={:.0} ms p99={:.0} ms max={max:.0} ms",
        v.len(),
        pct(v, 0.5),
        pct(v, 0.99)
    );
}

fn main() {
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), true);
    wait_until("steady", 60, || c.steady());

    let mut failover = Vec::new();
    for t in 0..trials {
        wait_until("steady", 60, || c.steady());
        let (primary, _) = c.primary_of("counter").unwrap();
        let victim = host_of(&primary).unwrap();
        let affected = c.pairs_served_by(victim);
        let t0 = Instant::now();
        c.kill9(victim);
        loop {
            if affected.iter().all(|p| c.primary_of(p).is_some()) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no fail-over in 30 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        println!("trial {t}: kill -9 {victim} -> {affected:?} primary again in {ms:.0} ms");
        failover.push(ms);
        c.spawn(victim);
        c.wait_ready(victim);
    }

    let mut election = Vec::new();
    for t in 0..trials.div_ceil(4) {
        wait_until("steady", 60, || c.steady());
        let master = NODES.iter().find_map(|n| c.master(n)).unwrap();
        let survivors: Vec<&str> = NODES.iter().copied().filter(|n| *n != master).collect();
        let t0 = Instant::now();
        c.kill9(&master);
        loop {
            let ms: Vec<Option<String>> = survivors.iter().map(|n| c.master(n)).collect();
            if ms[0].is_some() && ms[0] != Some(master.clone()) && ms.iter().all(|m| *m == ms[0]) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no new master in 30 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        println!("master trial {t}: kill -9 {master} -> new master in {ms:.0} ms");
        election.push(ms);
        c.spawn(&master);
        c.wait_ready(&master);
    }
    report(
        "kill -9 to every affected 2N pair primary again",
        &mut failover,
    );
    report(
        "kill -9 of the master to a new master (as seen over HTTP)",
        &mut election,
    );
}
