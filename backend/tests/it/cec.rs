use std::collections::HashMap;
use std::time::Duration;

use halyard_backend::cec::{Cec, CecRules, ErrorKind, ErrorReport, Verdict};
use tokio::time::Instant;

fn report(c: &str, inc: u32, kind: ErrorKind) -> ErrorReport {
    ErrorReport {
        component: c.into(),
        incarnation: inc,
        kind,
        detail: "test".into(),
    }
}

fn cec() -> Cec {
    let parents: HashMap<String, String> =
        [("fan-1", "shelf"), ("fan-2", "shelf"), ("psu-1", "shelf")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let mut c = Cec::new(CecRules::default(), parents);
    for n in ["app", "fan-1", "fan-2", "psu-1", "shelf"] {
        c.incarnation(n, 1);
    }
    c
}

#[tokio::test(start_paused = true)]
async fn forward_then_stale_and_duplicate_reports_are_discarded() {
    let mut c = cec();
    let now = Instant::now();
    let d = c.report(report("app", 1, ErrorKind::ProcessExit), now);
    assert!(matches!(d.verdict, Verdict::Forward(_)), "{d:?}");
    // The same report again (e.g. the audit saw it too): a duplicate.
    let d = c.report(report("app", 1, ErrorKind::ProcessExit), now);
    assert_eq!(d.verdict, Verdict::DiscardDuplicate, "{}", d.reason);
    // CRIM acts on incarnation 1: any other report about it is stale.
    c.recovery_started("app", 1);
    let d = c.report(report("app", 1, ErrorKind::HealthReport), now);
    assert_eq!(d.verdict, Verdict::DiscardStale);
    assert!(d.reason.contains("already under way"), "{}", d.reason);
    // A report about an older incarnation, after the restart, is stale too.
    c.incarnation("app", 2);
    let d = c.report(report("app", 1, ErrorKind::AuditFailed), now);
    assert_eq!(d.verdict, Verdict::DiscardStale);
    assert!(d.reason.contains("2 runs"), "{}", d.reason);
    let d = c.report(report("app", 2, ErrorKind::AuditFailed), now);
    assert!(matches!(d.verdict, Verdict::Forward(_)));
}

#[tokio::test(start_paused = true)]
async fn children_failing_together_are_retargeted_to_their_parent_after_the_window() {
    let mut c = cec();
    let t0 = Instant::now();
    assert_eq!(
        c.report(report("fan-1", 1, ErrorKind::Hardware), t0)
            .verdict,
        Verdict::Hold
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(
        c.report(report("fan-2", 1, ErrorKind::Hardware), Instant::now())
            .verdict,
        Verdict::Hold
    );
    assert_eq!(
        c.report(report("psu-1", 1, ErrorKind::Hardware), Instant::now())
            .verdict,
        Verdict::Hold
    );
    // Not yet due.
    assert!(c.tick(Instant::now()).is_empty());
    assert_eq!(c.next_deadline(), Some(t0 + Duration::from_millis(500)));
    tokio::time::advance(Duration::from_millis(500)).await;
    let out = c.tick(Instant::now());
    assert_eq!(out.len(), 1, "one root-cause decision, not three: {out:#?}");
    match &out[0].verdict {
        Verdict::Retarget { to, report } => {
            assert_eq!(to, "shelf");
            assert_eq!(report.component, "shelf");
        }
        v => panic!("{v:?}"),
    }
    assert!(out[0].reason.contains("parent is the suspect"));
}

#[tokio::test(start_paused = true)]
async fn a_lone_held_report_is_forwarded_and_repeated_reports_escalate() {
    let mut c = cec();
    assert_eq!(
        c.report(report("fan-1", 1, ErrorKind::Hardware), Instant::now())
            .verdict,
        Verdict::Hold
    );
    tokio::time::advance(Duration::from_millis(600)).await;
    let out = c.tick(Instant::now());
    assert!(
        matches!(&out[..], [d] if matches!(d.verdict, Verdict::Forward(_))),
        "{out:#?}"
    );

    // app fails in incarnations 1..=4 within the escalation window: the 4th escalates.
    let mut verdicts = Vec::new();
    for inc in 1..=4 {
        c.incarnation("app", inc);
        verdicts.push(
            c.report(report("app", inc, ErrorKind::ProcessExit), Instant::now())
                .verdict
                .name(),
        );
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(verdicts, ["forward", "forward", "forward", "escalate"]);
    // Outside the window the count starts over.
    tokio::time::advance(Duration::from_secs(120)).await;
    c.incarnation("app", 5);
    assert_eq!(
        c.report(report("app", 5, ErrorKind::ProcessExit), Instant::now())
            .verdict
            .name(),
        "forward"
    );
}
