//! A short chaos round on every run (see `halyard_tests::chaos`): every
//! face under load while nodes are killed, stalled and partitioned and a
//! link flaps. The seed is printed; `HALYARD_CHAOS_SEED` replays it.

use std::time::Duration;

use halyard_tests::chaos::{KINDS, Options, run, seed};

#[test]
fn a_short_chaos_round_breaks_no_invariant() {
    let _one = crate::cluster::serial();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        duration: Duration::from_secs(100),
        seed: seed(),
        release: false,
        // A debug build on a loaded two-core machine.
        converge_bound: Duration::from_secs(45),
        sample_every: Duration::from_secs(20),
        // Two sessions, each committing its own leaf of one entry through
        // a different node.
        editors: 2,
        // One rolling upgrade, among the other faults.
        upgrades: 1,
        nodes: 3,
    };
    let report = run(dir.path(), &opts);
    let table = report.table();
    eprintln!("{table}");
    if !report.violations.is_empty() {
        // The nodes' logs, for whoever reads the failure.
        let kept = dir.keep();
        panic!("{table}\nthe nodes' logs are kept in {}", kept.display());
    }
    // The round did what it says: faults of several kinds, every load
    // answered, the counters checked at speed.
    let kinds = KINDS
        .iter()
        .filter(|k| report.faults.iter().any(|f| f.kind == **k))
        .count();
    assert!(report.faults.len() >= 10 && kinds >= 4, "{table}");
    assert!(
        report.faults.iter().any(|f| f.kind == "rolling upgrade"),
        "{table}"
    );
    assert!(report.checker.rate_hz() >= 100.0, "{table}");
    for (load, t) in &report.loads {
        assert!(t.answered > 10, "{load}: {t:?}\n{table}");
    }
    assert!(report.edits.iter().all(|(_, ok, _, _)| *ok > 10), "{table}");
    assert!(report.scrapes.1 > 60, "{table}");
    // Bad input under load: every face refused and counted the audit's.
    assert_eq!(report.refusals.len(), 3, "{table}");
    for (face, (sent, counted)) in &report.refusals {
        assert!(*sent > 0 && counted == sent, "{face}\n{table}");
    }
    assert!(report.sse_events > 0, "{table}");
    // Every node's resources were read (a node may be down at a sample).
    assert!(
        report.resources.len() == 3 && report.resources.values().all(|v| !v.is_empty()),
        "{table}"
    );
}
