//! The chaos round as a command (release build), for as long as asked:
//!
//!     cargo bench -p halyard-tests --bench chaos -- [--secs N] [--seed S] [--sample-secs N] [--editors 1|2] [--nodes N] [--no-upgrades]
//!
//! Prints each fault as it is injected, then the report's table (faults,
//! load, each node's resources first / last / max, violations). An hour
//! is the soak: `-- --secs 3600 --sample-secs 60`. `--nodes 7` adds four
//! founding members with no component of their own to the example's
//! three (faults strike any of the seven). Exits 1 when there is a violation. See
//! `halyard_tests::chaos` for what it runs and checks.

use std::time::Duration;

use halyard_tests::chaos::{Options, run};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let opts = Options {
        duration: Duration::from_secs(value("--secs").unwrap_or(120)),
        seed: value("--seed").unwrap_or_else(halyard_tests::chaos::seed),
        release: true,
        converge_bound: Duration::from_secs(30),
        sample_every: Duration::from_secs(value("--sample-secs").unwrap_or(30)),
        editors: value("--editors").unwrap_or(2) as usize,
        upgrades: if args.iter().any(|a| a == "--no-upgrades") {
            0
        } else {
            usize::MAX
        },
        nodes: value("--nodes").unwrap_or(3) as usize,
    };
    let dir = tempfile::tempdir().unwrap();
    let report = run(dir.path(), &opts);
    println!("{}", report.table());
    if !report.violations.is_empty() {
        // The nodes' logs, for whoever reads the violations.
        println!("the nodes' logs are kept in {}", dir.keep().display());
        std::process::exit(1);
    }
}
