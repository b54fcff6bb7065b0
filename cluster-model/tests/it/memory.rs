//! The in-memory implementation keeps the port's promises.

use halyard_cluster_model::memory::demo_element;
use halyard_cluster_model::model::{AdminState, PerceivedSeverity, Protocol};
use halyard_cluster_model::port::{
    Change, Delivery, InformationModel, ModelError, NotificationFilter, Principal, Query, Scope,
    Transaction,
};
use halyard_cluster_model::{ObjectName, SCHEMA, SchemaEnum, Value};

fn name(s: &str) -> ObjectName {
    ObjectName::parse(s).unwrap()
}

fn operator() -> Principal {
    Principal::new("operator", Protocol::Cli)
}

fn set(obj: &str, attr: &str, value: Value) -> Change {
    Change::Set {
        object: name(obj),
        attribute: attr.into(),
        value,
    }
}

#[tokio::test]
async fn a_transaction_with_one_bad_change_changes_nothing() {
    let m = demo_element();
    let locked = Value::Enum(AdminState::Locked.value());
    let err = m
        .transact(Transaction {
            principal: operator(),
            changes: vec![
                set("ne=1/shelf=1/fan=1", "AdminState", locked.clone()),
                set("ne=1/shelf=1/fan=2", "Speed", Value::U32(1)),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(err.index, 1);
    assert!(
        matches!(err.error, ModelError::NotWritable { .. }),
        "{err:?}"
    );
    let fan = m.get(&name("ne=1/shelf=1/fan=1")).await.unwrap();
    assert_eq!(
        fan.get("AdminState"),
        Some(&Value::Enum(AdminState::Unlocked.value()))
    );

    // Wrong type and unknown enumeration value are refused with their index.
    let err = m
        .transact(Transaction {
            principal: operator(),
            changes: vec![set("ne=1/shelf=1/fan=1", "AdminState", Value::Enum(99))],
        })
        .await
        .unwrap_err();
    assert!(matches!(err.error, ModelError::InvalidValue { .. }));

    m.transact(Transaction {
        principal: operator(),
        changes: vec![set("ne=1/shelf=1/fan=1", "AdminState", locked.clone())],
    })
    .await
    .unwrap();
    let fan = m.get(&name("ne=1/shelf=1/fan=1")).await.unwrap();
    assert_eq!(fan.get("admin-state"), Some(&locked));
}

#[tokio::test]
async fn walk_is_ordered_by_stable_index_and_filters_by_class() {
    let m = demo_element();
    let all = m.walk(None, 0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), m.len());
    assert!(all.windows(2).all(|w| w[0].index < w[1].index));
    let fan = SCHEMA.class("Fan").unwrap();
    let fans = m.walk(Some(fan), 0, 10).await.unwrap();
    assert_eq!(fans.len(), 2);
    let after_first = m.walk(Some(fan), fans[0].index, 10).await.unwrap();
    assert_eq!(after_first, fans[1..].to_vec());
    // Containment: every parent index points at the parent's name.
    for o in &all {
        if let Some(p) = o.name.parent() {
            assert_eq!(m.get_by_index(o.parent_index).await.unwrap().name, p);
        }
    }
}

#[tokio::test]
async fn queries_scope_by_subtree_and_class() {
    let m = demo_element();
    let comps = m
        .query(&Query {
            scope: Scope::Subtree(name("ne=1/shelf=1")),
            classes: vec!["Component".into()],
            filters: vec![],
        })
        .await
        .unwrap();
    assert!(comps.iter().all(|o| SCHEMA.is_a(o.class.name, "Component")));
    assert!(comps.iter().any(|o| o.class.name == "Fan"));
    let primaries = m
        .query(&Query {
            classes: vec!["software-component".into()],
            filters: vec![("availability-state".into(), "primary".into())],
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(primaries.len(), 1);
    assert_eq!(
        primaries[0].name.as_str(),
        "ne=1/shelf=1/node=a/comp=counterd-a"
    );
    assert!(matches!(
        m.query(&Query {
            classes: vec!["Nope".into()],
            ..Query::default()
        })
        .await,
        Err(ModelError::NoSuchClass { .. })
    ));
}

#[tokio::test]
async fn containment_rules_are_enforced_and_delete_removes_the_subtree() {
    let m = demo_element();
    let err = m.insert("Fan", "ne=1/fan=9", &[]).unwrap_err();
    assert!(matches!(err, ModelError::NoCreation { .. }), "{err:?}");
    let before = m.len();
    m.transact(Transaction {
        principal: operator(),
        changes: vec![Change::Delete {
            object: name("ne=1/shelf=1/node=a"),
        }],
    })
    .await
    .unwrap();
    assert_eq!(m.len(), before - 2, "node and its component");
    assert!(
        m.get(&name("ne=1/shelf=1/node=a/comp=counterd-a"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn subscribers_get_filtered_notifications_and_slow_ones_learn_what_they_missed() {
    let m = demo_element();
    let mut critical = m.subscribe(NotificationFilter {
        min_severity: Some(PerceivedSeverity::Major),
        ..NotificationFilter::default()
    });
    let mut shelf_only = m.subscribe(NotificationFilter {
        subtree: Some(name("ne=1/shelf=1")),
        ..NotificationFilter::default()
    });
    let alarm = |sev: PerceivedSeverity| {
        let class = SCHEMA.class("AlarmRaised").unwrap();
        let mut v = vec![Value::Absent; class.attributes.len()];
        v[class.attribute("Severity").unwrap().0] = Value::Enum(sev.value());
        v
    };
    m.publish(
        "AlarmRaised",
        &name("ne=1/shelf=1/fan=1"),
        alarm(PerceivedSeverity::Minor),
    )
    .unwrap();
    m.publish(
        "AlarmRaised",
        &name("ne=1/sg=counter"),
        alarm(PerceivedSeverity::Critical),
    )
    .unwrap();
    match critical.recv().await {
        Some(Delivery::Notification(n)) => assert_eq!(n.source.as_str(), "ne=1/sg=counter"),
        other => panic!("{other:?}"),
    }
    match shelf_only.recv().await {
        Some(Delivery::Notification(n)) => assert_eq!(n.source.as_str(), "ne=1/shelf=1/fan=1"),
        other => panic!("{other:?}"),
    }
    // Overrun the bounded queue: the publisher never blocks, the reader is told.
    for _ in 0..2000 {
        m.publish(
            "AlarmRaised",
            &name("ne=1/shelf=1/fan=1"),
            alarm(PerceivedSeverity::Minor),
        )
        .unwrap();
    }
    assert!(matches!(shelf_only.recv().await, Some(Delivery::Missed(k)) if k > 0));
    let replay = m
        .history(
            &NotificationFilter::default(),
            halyard_cluster_model::Timestamp(0),
            None,
        )
        .await
        .unwrap();
    assert_eq!(replay.len(), 2002);
    assert!(replay.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn operations_are_checked_against_the_schema() {
    let m = demo_element();
    let target = name("ne=1/shelf=1/node=a/comp=counterd-a");
    let job = m
        .invoke(
            &target,
            "lock",
            vec![("reason".into(), Value::Str("maintenance".into()))],
            operator(),
        )
        .await
        .unwrap();
    assert_eq!(job.wait().await.result, Some(0));
    assert!(matches!(
        m.invoke(&target, "fly", vec![], operator()).await,
        Err(ModelError::NoSuchOperation { .. })
    ));
    assert!(matches!(
        m.invoke(
            &target,
            "Lock",
            vec![("reason".into(), Value::U32(1))],
            operator()
        )
        .await,
        Err(ModelError::InvalidValue { .. })
    ));
    assert_eq!(m.invocations().len(), 1);
}

/// `changed` pages name every object and hand back only those changed
/// after the revision asked about; a write of the values an object has
/// already is no change, and a removed object is missing from its page.
#[tokio::test]
async fn changes_are_read_by_revision() {
    let m = demo_element();
    let all = m.changed(0, 0, usize::MAX).await.unwrap().unwrap();
    assert_eq!(all.present.len(), m.len());
    assert_eq!(all.changed.len(), m.len());
    let since = all.revision;
    let none = m.changed(since, 0, usize::MAX).await.unwrap().unwrap();
    assert!(none.changed.is_empty());
    assert_eq!(none.revision, since);

    let fan = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
    let speed = m.get(&fan).await.unwrap().get("Speed").cloned().unwrap();
    m.update(&fan, &[("Speed", speed)]).unwrap();
    let same = m.changed(since, 0, usize::MAX).await.unwrap().unwrap();
    assert!(same.changed.is_empty(), "a write of the same value");

    m.update(&fan, &[("Speed", Value::U32(4321))]).unwrap();
    let one = m.changed(since, 0, usize::MAX).await.unwrap().unwrap();
    assert_eq!(one.changed.len(), 1);
    assert_eq!(one.changed[0].name, fan);
    assert!(one.revision > since);

    // Pages: the first two objects, then the rest after them.
    let first = m.changed(since, 0, 2).await.unwrap().unwrap();
    assert_eq!(first.present.len(), 2);
    let rest = m
        .changed(since, first.present[1], usize::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.present.len() + rest.present.len(), m.len());

    let index = m.get(&fan).await.unwrap().index;
    assert_eq!(m.remove(&fan), 1);
    let after = m
        .changed(one.revision, 0, usize::MAX)
        .await
        .unwrap()
        .unwrap();
    assert!(!after.present.contains(&index));
    assert!(after.changed.is_empty());
}

/// Queries and walks of a class read the class index: after creations
/// and deletions they answer exactly as a scan of every object would, for
/// every class of the schema (subclasses included in queries, exactly the
/// class in walks).
#[tokio::test]
async fn the_class_index_answers_as_a_scan_would() {
    let m = demo_element();
    index_matches_a_scan(&m).await;
    m.transact(Transaction {
        principal: operator(),
        changes: vec![
            Change::Delete {
                object: name("ne=1/shelf=1/node=a"),
            },
            Change::Create {
                class: "AlarmShelf".into(),
                object: name("ne=1/alarmshelf=quiet"),
                values: vec![],
            },
        ],
    })
    .await
    .unwrap();
    index_matches_a_scan(&m).await;
}

async fn index_matches_a_scan(m: &halyard_cluster_model::memory::MemoryModel) {
    let all = m.walk(None, 0, usize::MAX).await.unwrap();
    for c in SCHEMA.classes.iter().filter(|c| !c.is_indication) {
        let mut scanned: Vec<_> = all
            .iter()
            .filter(|o| SCHEMA.is_a(o.class.name, c.name))
            .cloned()
            .collect();
        scanned.sort_by(|a, b| a.name.cmp(&b.name));
        let queried = m
            .query(&Query {
                classes: vec![c.name.into()],
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(queried, scanned, "query of {}", c.name);
        let exact: Vec<_> = all
            .iter()
            .filter(|o| std::ptr::eq(o.class, *c))
            .cloned()
            .collect();
        assert_eq!(
            m.walk(Some(c), 0, usize::MAX).await.unwrap(),
            exact,
            "walk of {}",
            c.name
        );
    }
}
