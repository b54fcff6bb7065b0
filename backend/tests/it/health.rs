use std::sync::Arc;
use std::time::Duration;

use halyard_backend::cec::ErrorKind;
use halyard_backend::health::{Audit, AuditCheck, Watchdog, run_audit};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

fn check(delay: Duration, ok: bool) -> AuditCheck {
    Arc::new(move || {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if ok {
                Ok(())
            } else {
                Err("check said no".to_string())
            }
        })
    })
}

#[tokio::test(start_paused = true)]
async fn audits_run_every_period_and_overruns_are_failures_at_the_deadline() {
    let (tx, mut rx) = mpsc::channel(8);
    let (_inc_tx, inc_rx) = watch::channel(7);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let audit = Audit {
        component: "slow".into(),
        period: Duration::from_secs(10),
        deadline: Duration::from_secs(2),
        check: check(Duration::from_secs(5), true),
    };
    tokio::spawn(run_audit(audit, inc_rx, tx, stop_rx));
    let r = rx.recv().await.unwrap();
    assert_eq!(r.kind, ErrorKind::AuditOverrun);
    assert_eq!(r.incarnation, 7);
    // First round at one period, reported at its deadline.
    assert_eq!(start.elapsed(), Duration::from_secs(12));
    let _ = rx.recv().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(22));
}

#[tokio::test(start_paused = true)]
async fn failed_audits_are_reported_and_passing_ones_are_not() {
    let (tx, mut rx) = mpsc::channel(8);
    let (_inc_tx, inc_rx) = watch::channel(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let audit = Audit {
        component: "bad".into(),
        period: Duration::from_secs(1),
        deadline: Duration::from_millis(500),
        check: check(Duration::from_millis(10), false),
    };
    let h = tokio::spawn(run_audit(audit, inc_rx, tx, stop_rx));
    let r = rx.recv().await.unwrap();
    assert_eq!(
        (r.kind, r.detail.as_str()),
        (ErrorKind::AuditFailed, "check said no")
    );
    stop_tx.send(true).unwrap();
    h.await.unwrap();

    let (tx, mut rx) = mpsc::channel(8);
    let (_inc_tx, inc_rx) = watch::channel(1);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let audit = Audit {
        component: "good".into(),
        period: Duration::from_secs(1),
        deadline: Duration::from_millis(500),
        check: check(Duration::from_millis(10), true),
    };
    tokio::spawn(run_audit(audit, inc_rx, tx, stop_rx));
    assert!(
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .is_err(),
        "no report for healthy audits"
    );
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_fires_when_nobody_pets_it() {
    let dog = Watchdog::new(Duration::from_secs(2));
    let (stop_tx, stop_rx) = watch::channel(false);
    let h = tokio::spawn(dog.clone().run(stop_rx));
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dog.pet();
    }
    assert_eq!(dog.expirations(), 0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(dog.expirations() >= 1);
    stop_tx.send(true).unwrap();
    h.await.unwrap();
}
