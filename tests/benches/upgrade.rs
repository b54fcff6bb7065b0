//! Upgrade benchmark on the three-node example (release build).
//!
//!     cargo bench -p halyard-tests --bench upgrade -- [trials]
//!
//! Each trial starts the example under `halyard boot` on release 1 and runs
//! one campaign to release 2 per method (rolling, split-mode, reboot) on a
//! fresh cluster, while the checker samples every 2N member's own role
//! (up to 500 Hz). Printed per method: the campaign's duration (as the
//! element reports it), the longest interval without a primary for each
//! service instance, and the samples that saw none.

use halyard_tests::{CheckReport, Checker, Cluster, NODES, make_release, wait_until};

/// One campaign: its duration in ms and what the checker saw.
fn run(method: &str) -> (u64, CheckReport) {
    let dir = tempfile::tempdir().unwrap();
    let ls = dir.path().join("load-server");
    make_release(true, &ls, "1", false);
    make_release(true, &ls, "2", false);
    let c = Cluster::start_upgradable(dir.path(), true, ls.to_str().unwrap());
    wait_until("steady", 60, || c.steady());
    wait_until("release 1 reported by every node", 60, || {
        NODES.iter().all(|n| {
            c.attrs("n1", &format!("ne=1/shelf=1/node={n}"))
                .is_some_and(|a| a["committed-version"] == "1")
        })
    });
    let checker = Checker::start(&c);
    let (code, body) = c.invoke_full(
        "n1",
        "ne=1",
        "Upgrade",
        &[("Release", "2"), ("Method", method)],
    );
    assert_eq!(code, 202, "{body}");
    let mut done = None;
    wait_until("the campaign to finish", 600, || {
        done = NODES
            .iter()
            .find_map(|n| c.attrs(n, "ne=1/campaign=1"))
            .filter(|a| a["state"] != "running" && a["state"] != "paused");
        done.is_some()
    });
    let done = done.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    wait_until("steady", 60, || c.steady());
    (
        done["elapsed"].as_u64().unwrap_or_default(),
        checker.finish(),
    )
}

fn main() {
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    println!(
        "method      trial  duration   longest gap without a primary (samples without one)   checker"
    );
    for method in ["rolling", "splitMode", "reboot"] {
        for t in 0..trials {
            let (ms, r) = run(method);
            let hz = r.rate_hz();
            let gaps: Vec<String> = r
                .longest_gap
                .iter()
                .map(|(p, g)| {
                    let n = r
                        .without_primary
                        .iter()
                        .find(|(q, _)| q == p)
                        .map_or(0, |(_, n)| *n);
                    format!("{p} {:.0} ms ({n})", g.as_secs_f64() * 1000.0)
                })
                .collect();
            println!(
                "{method:<11} {t:>5}  {:>6.1} s   {:<52} {hz:.0} Hz",
                ms as f64 / 1000.0,
                gaps.join(", ")
            );
        }
    }
}
