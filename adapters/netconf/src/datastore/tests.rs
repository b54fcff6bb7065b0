//! Tests of the datastores: locks, session end, confirmed commit and its rollback.

use super::*;
use crate::data::{ConfigStore, Touched};
use crate::error::{RpcError, Tag};
use halyard_cluster_model::ObjectName;
use halyard_cluster_model::Value;
use halyard_cluster_model::memory::demo_element;
use halyard_cluster_model::port::InformationModel;

fn shared() -> (Arc<halyard_cluster_model::memory::MemoryModel>, Arc<Shared>) {
    let m = Arc::new(demo_element());
    let s = Shared::new(
        m.clone(),
        Arc::new(Stats::default()),
        SchemaStore,
        crate::Limits::default(),
        Duration::from_secs(60),
        None,
    );
    // The tests' user "u" is an operator.
    s.set_role("u", halyard_cluster_model::access::Role::Operator);
    (m, s)
}

fn fan1() -> Touched {
    Touched {
        names: vec![ObjectName::parse("ne=1/shelf=1/fan=1").unwrap()],
        ..Touched::default()
    }
}

fn lock_fan(c: &mut ConfigStore) -> Vec<RpcError> {
    let n = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
    let e = c.entries.get_mut(&n).unwrap();
    let (i, _) = e.class.attribute("AdminState").unwrap();
    e.values[i] = Value::Enum(1);
    Vec::new()
}

async fn fan_admin(m: &halyard_cluster_model::memory::MemoryModel) -> Value {
    m.get(&ObjectName::parse("ne=1/shelf=1/fan=1").unwrap())
        .await
        .unwrap()
        .get("AdminState")
        .unwrap()
        .clone()
}

#[tokio::test(start_paused = true)]
async fn confirmed_commit_rolls_back_after_its_timeout() {
    let (m, s) = shared();
    let mut events = s.events.subscribe();
    let before = fan_admin(&m).await;
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &fan1(),
            lock_fan
        )
        .await
        .is_empty()
    );
    s.commit(
        1,
        "u",
        CommitOptions {
            confirmed: true,
            timeout: Some(Duration::from_secs(30)),
            ..CommitOptions::default()
        },
    )
    .await
    .unwrap();
    let change = events.try_recv().unwrap().event.to_xml();
    assert!(change.contains("netconf-config-change"), "{change}");
    assert!(
        change.contains("<operation>replace</operation>"),
        "{change}"
    );
    let start = events.try_recv().unwrap().event.to_xml();
    assert!(
        start.contains("<confirm-event>start</confirm-event><timeout>30</timeout>"),
        "{start}"
    );
    assert_eq!(fan_admin(&m).await, Value::Enum(1));
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(fan_admin(&m).await, Value::Enum(1));
    assert!(s.commit_pending().await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fan_admin(&m).await, before);
    assert!(!s.commit_pending().await);
    let timeout = events.try_recv().unwrap().event.to_xml();
    assert!(
        timeout.contains("<netconf-confirmed-commit xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-notifications\"><confirm-event>timeout</confirm-event>"),
        "{timeout}"
    );
    let rollback = events.try_recv().unwrap().event.to_xml();
    assert!(
        rollback.contains("<changed-by><server/></changed-by>"),
        "{rollback}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_extended_confirmed_commit_rolls_back_to_the_first_state() {
    let (m, s) = shared();
    let before = fan_admin(&m).await;
    let confirmed = CommitOptions {
        confirmed: true,
        timeout: Some(Duration::from_secs(10)),
        ..CommitOptions::default()
    };
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &fan1(),
            lock_fan
        )
        .await
        .is_empty()
    );
    s.commit(1, "u", confirmed.clone()).await.unwrap();
    // The second confirmed commit touches another entry and extends the timer.
    let psu = ObjectName::parse("ne=1/shelf=1/psu=1").unwrap();
    let touched = Touched {
        names: vec![psu.clone()],
        ..Touched::default()
    };
    let errs = s
        .edit(1, "u", Datastore::Candidate, false, false, &touched, |c| {
            let e = c.entries.get_mut(&psu).unwrap();
            let (i, _) = e.class.attribute("AdminState").unwrap();
            e.values[i] = Value::Enum(1);
            Vec::new()
        })
        .await;
    assert!(errs.is_empty());
    tokio::time::sleep(Duration::from_secs(8)).await;
    s.commit(1, "u", confirmed).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    // 16 s after the first commit: the extension keeps both.
    assert_eq!(fan_admin(&m).await, Value::Enum(1));
    let psu_admin = |m: Arc<halyard_cluster_model::memory::MemoryModel>| async move {
        m.get(&ObjectName::parse("ne=1/shelf=1/psu=1").unwrap())
            .await
            .unwrap()
            .get("AdminState")
            .unwrap()
            .clone()
    };
    assert_eq!(psu_admin(m.clone()).await, Value::Enum(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fan_admin(&m).await, before);
    assert_eq!(psu_admin(m.clone()).await, before);
}

#[tokio::test(start_paused = true)]
async fn confirming_commit_keeps_the_change() {
    let (m, s) = shared();
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &fan1(),
            lock_fan
        )
        .await
        .is_empty()
    );
    let confirmed = CommitOptions {
        confirmed: true,
        timeout: Some(Duration::from_secs(10)),
        persist: Some("p1".into()),
        ..CommitOptions::default()
    };
    s.commit(1, "u", confirmed).await.unwrap();
    // Another session confirms with the persist-id; the first one ending does not roll back.
    s.unregister(1).await;
    let wrong = CommitOptions {
        persist_id: Some("nope".into()),
        ..CommitOptions::default()
    };
    assert_eq!(
        s.commit(2, "u", wrong).await.unwrap_err().tag,
        Tag::InvalidValue
    );
    let right = CommitOptions {
        persist_id: Some("p1".into()),
        ..CommitOptions::default()
    };
    s.commit(2, "u", right).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(fan_admin(&m).await, Value::Enum(1));
}

#[tokio::test(start_paused = true)]
async fn cancel_commit_and_session_end_roll_back() {
    let (m, s) = shared();
    let before = fan_admin(&m).await;
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &fan1(),
            lock_fan
        )
        .await
        .is_empty()
    );
    let c = CommitOptions {
        confirmed: true,
        ..CommitOptions::default()
    };
    s.commit(1, "u", c.clone()).await.unwrap();
    assert_eq!(s.cancel_commit(2, None).await.unwrap_err().tag, Tag::InUse);
    s.cancel_commit(1, None).await.unwrap();
    assert_eq!(fan_admin(&m).await, before);
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &fan1(),
            lock_fan
        )
        .await
        .is_empty()
    );
    s.commit(1, "u", c).await.unwrap();
    assert_eq!(fan_admin(&m).await, Value::Enum(1));
    s.unregister(1).await;
    assert_eq!(fan_admin(&m).await, before);
}

#[tokio::test]
async fn shutdown_rolls_back_an_unconfirmed_commit() {
    let (m, s) = shared();
    let before = fan_admin(&m).await;
    let touched = fan1();
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &touched,
            lock_fan
        )
        .await
        .is_empty()
    );
    let c = CommitOptions {
        confirmed: true,
        persist: Some("p".into()),
        ..CommitOptions::default()
    };
    s.commit(1, "u", c).await.unwrap();
    assert_eq!(fan_admin(&m).await, Value::Enum(1));
    s.shutdown().await;
    assert_eq!(fan_admin(&m).await, before);
    assert!(!s.commit_pending().await);
}

#[tokio::test]
async fn locks() {
    let (_, s) = shared();
    s.lock(1, Datastore::Running).await.unwrap();
    let e = s.lock(2, Datastore::Running).await.unwrap_err();
    assert_eq!(e.tag, Tag::LockDenied);
    assert_eq!(e.info, vec![("session-id", "1".to_string())]);
    let e = s
        .edit(2, "u", Datastore::Running, false, false, &fan1(), lock_fan)
        .await;
    assert_eq!(e[0].tag, Tag::InUse);
    assert_eq!(
        s.unlock(2, Datastore::Running).await.unwrap_err().tag,
        Tag::OperationFailed
    );
    // The candidate with another session's changes cannot be locked.
    assert!(
        s.edit(
            1,
            "u",
            Datastore::Candidate,
            false,
            false,
            &fan1(),
            lock_fan
        )
        .await
        .is_empty()
    );
    let e = s.lock(2, Datastore::Candidate).await.unwrap_err();
    assert_eq!(e.tag, Tag::LockDenied);
    // Ending session 1 releases its lock; its candidate edits stay until discarded.
    s.unregister(1).await;
    s.lock(2, Datastore::Running).await.unwrap();
    assert_eq!(
        s.lock(2, Datastore::Candidate).await.unwrap_err().tag,
        Tag::LockDenied
    );
    s.discard_changes(2).await.unwrap();
    s.lock(2, Datastore::Candidate).await.unwrap();
    // kill-session releases the victim's locks at once.
    let (a, _) = s.register("a", "h");
    let (b, mut killed) = s.register("b", "h");
    s.unlock(2, Datastore::Running).await.unwrap();
    s.lock(b, Datastore::Running).await.unwrap();
    s.kill_session(a, b).await.unwrap();
    assert_eq!(*killed.borrow_and_update(), Some(a));
    s.lock(a, Datastore::Running).await.unwrap();
    assert_eq!(
        s.kill_session(a, a).await.unwrap_err().tag,
        Tag::InvalidValue
    );
    assert_eq!(
        s.kill_session(a, 999).await.unwrap_err().tag,
        Tag::InvalidValue
    );
}
