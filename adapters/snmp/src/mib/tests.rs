//! Tests of the MIB: walks, entLastChangeTime, paging through large models, exceptions.

use super::*;
use halyard_cluster_model::memory::demo_element;
use rasn_smi::v2::ObjectSyntax;
use rasn_snmp::v2::VarBindValue;

fn mib() -> Mib {
    mib_over(demo_element())
}

fn mib_over(model: halyard_cluster_model::memory::MemoryModel) -> Mib {
    Mib::new(
        Arc::new(model),
        Arc::new(Engine::new(vec![0x80, 0, 0x7e, 0xd9, 5, 1], 1)),
        SysInfo::default(),
        65_507,
    )
}

#[tokio::test]
async fn walk_is_strictly_increasing_and_complete() {
    let mib = mib();
    let mut ctx = Ctx::default();
    let mut cur: Oid = vec![0];
    let mut seen = 0;
    while let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() {
        assert!(
            next > cur,
            "{} after {}",
            oid::format(&next),
            oid::format(&cur)
        );
        // Every instance a walk returns is readable with GET.
        let v = mib.get(&mut ctx, &next).await.unwrap();
        assert!(
            matches!(v, VarBindValue::Value(_)),
            "{}",
            oid::format(&next)
        );
        cur = next;
        seen += 1;
    }
    assert!(seen > 300, "only {seen} instances");
    // Starting in the middle of an index skips to the next row.
    let fan = SCHEMA.class("Fan").unwrap();
    let mut mid = class_entry(fan);
    mid.extend([1, 4, 7]);
    let (n, _) = mib.next(&mut ctx, &mid).await.unwrap().unwrap();
    assert_eq!(
        n[..n.len() - 1],
        class_entry(fan)
            .iter()
            .copied()
            .chain([1])
            .collect::<Vec<_>>()[..]
    );
    assert!(*n.last().unwrap() > 4);
}

#[tokio::test]
async fn ent_last_change_time_follows_the_physical_table_only() {
    let model = Arc::new(demo_element());
    let mib = Mib::new(
        model.clone(),
        Arc::new(Engine::new(vec![0x80, 0, 0x7e, 0xd9, 5, 1], 1)),
        SysInfo::default(),
        65_507,
    );
    let at = |v: VarBindValue| match v {
        VarBindValue::Value(ObjectSyntax::ApplicationWide(
            rasn_smi::v2::ApplicationSyntax::Ticks(t),
        )) => t.0,
        other => panic!("{other:?}"),
    };
    let instance = oid::join(oid::ENT_LAST_CHANGE_TIME, &[0]);
    assert_eq!(mib.observe_entities().await.unwrap(), 0);
    assert_eq!(
        at(mib.get(&mut Ctx::default(), &instance).await.unwrap()),
        0
    );
    // Time passes; something that is no physical entity changes nothing.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    model.insert("Alarm", "ne=1/alarm=77", &[]).unwrap();
    assert_eq!(mib.observe_entities().await.unwrap(), 0);
    // A unit inserted: the time it was seen.
    model
        .insert("LineCard", "ne=1/shelf=1/linecard=9", &[])
        .unwrap();
    let t = at(mib.get(&mut Ctx::default(), &instance).await.unwrap());
    assert!(t >= 3, "{t}");
    assert_eq!(mib.observe_entities().await.unwrap(), t);
    let (next, v) = mib
        .next(&mut Ctx::default(), oid::ENT_LAST_CHANGE_TIME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next, at(VarBindValue::Value(v))), (instance.clone(), t));
    // And removed: a later time.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    model.remove(&halyard_cluster_model::ObjectName::parse("ne=1/shelf=1/linecard=9").unwrap());
    assert!(mib.observe_entities().await.unwrap() > t);
}

#[tokio::test]
async fn snapshots_page_through_large_models() {
    let model = demo_element();
    for n in 3..=700 {
        model
            .insert("Fan", &format!("ne=1/shelf=1/fan={n}"), &[])
            .unwrap();
    }
    let mib = mib_over(model);
    let mut ctx = Ctx::default();
    // Count entPhysicalName instances: the element, shelf, hsc, 700 fans,
    // 2 PSUs, 2 boards.
    let column: Oid = oid::join(oid::ENT_PHYSICAL_ENTRY, &[7]);
    let mut cur = column.clone();
    let mut n = 0;
    while let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() {
        if !next.starts_with(&column) {
            break;
        }
        n += 1;
        cur = next;
    }
    // And their sensors: each fan's speed, each PSU's power and voltage,
    // each board's temperature.
    assert_eq!(n, 1 + 1 + 1 + 700 + 2 + 2 + 700 + 2 * 2 + 2);
    // A generated column over many row batches, in order, complete;
    // a fresh request context per step (GETNEXT) and one for all (GETBULK).
    let fan = SCHEMA.class("Fan").unwrap();
    let (_, speed) = fan.attribute("Speed").unwrap();
    let column = oid::join(&class_entry(fan), &[speed.column]);
    for shared_ctx in [false, true] {
        let mut ctx = Ctx::for_rows(32);
        let mut cur = column.clone();
        let mut seen = Vec::new();
        loop {
            if !shared_ctx {
                ctx = Ctx::default();
            }
            let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() else {
                break;
            };
            if !next.starts_with(&column) {
                break;
            }
            seen.push(*next.last().unwrap());
            cur = next;
        }
        assert_eq!(seen.len(), 700);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test]
async fn exceptions() {
    let mib = mib();
    let mut ctx = Ctx::default();
    let get = |o: &str| oid::parse(o).unwrap();
    assert_eq!(
        mib.get(&mut ctx, &get("1.3.6.1.2.1.1.9.0")).await.unwrap(),
        VarBindValue::NoSuchObject
    );
    assert_eq!(
        mib.get(&mut ctx, &get("1.3.6.1.2.1.1.1.1")).await.unwrap(),
        VarBindValue::NoSuchInstance
    );
    assert_eq!(
        mib.get(&mut ctx, &get("1.3.6.1.4.1.32473.77.1.5.1.40.9999"))
            .await
            .unwrap(),
        VarBindValue::NoSuchInstance
    );
    assert_eq!(
        mib.get(&mut ctx, &get("1.3.6.1.4.1.32473.77.1.5.1.99.1"))
            .await
            .unwrap(),
        VarBindValue::NoSuchObject
    );
    assert!(
        mib.next(&mut ctx, &get("1.3.6.1.6.3.15.1.1.6.0"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(mib.next(&mut ctx, &get("2")).await.unwrap().is_none());
}

/// alarmActiveOverflow is the element's count of alarms dropped in storms
/// (its `alarmOverflow` role), a Counter32 no SET changes; alarmClearMaximum
/// is the element's writable maximum.
#[tokio::test]
async fn alarm_overflow_and_clear_maximum_are_the_elements_attributes() {
    use halyard_cluster_model::meta::Role;
    use halyard_cluster_model::port::{InformationModel, Query};
    let model = demo_element();
    let root = model
        .query(&Query::default())
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.parent_index == 0)
        .unwrap();
    let (_, a) = root.class.attribute_by_role(Role::AlarmOverflow).unwrap();
    model
        .update(
            &root.name,
            &[(a.name, halyard_cluster_model::Value::U32(7))],
        )
        .unwrap();
    let mib = mib_over(model);
    let mut ctx = Ctx::default();
    let overflow = oid::join(alarm::ACTIVE_OVERFLOW, &[0]);
    assert_eq!(
        mib.get(&mut ctx, &overflow).await.unwrap(),
        VarBindValue::Value(crate::codec::counter32(7))
    );
    let all = crate::config::View::all();
    let refused = mib
        .set(
            &[(overflow, VarBindValue::Value(crate::codec::counter32(0)))],
            "test",
            halyard_cluster_model::access::Role::Operator,
            &all,
        )
        .await;
    assert_eq!(refused, Err((crate::status::code::NOT_WRITABLE, 1)));
    let maximum = oid::join(alarm::CLEAR_MAXIMUM, &[0]);
    mib.set(
        &[(
            maximum.clone(),
            VarBindValue::Value(crate::codec::gauge32(5)),
        )],
        "test",
        halyard_cluster_model::access::Role::Operator,
        &all,
    )
    .await
    .unwrap();
    assert_eq!(
        mib.get(&mut ctx, &maximum).await.unwrap(),
        VarBindValue::Value(crate::codec::gauge32(5))
    );
}

/// A shelved alarm is out of alarmActiveTable (and so of ituAlarmActiveTable,
/// which lists the same rows), as it is out of ietf-alarms' alarm list.
#[tokio::test]
async fn a_shelved_alarm_is_not_an_active_row() {
    use halyard_cluster_model::model::{PerceivedSeverity, ProbableCause};
    use halyard_cluster_model::{SchemaEnum, Value};
    let model = demo_element();
    for (n, shelf) in [(1, ""), (2, "ne=1/alarmshelf=psu")] {
        model
            .insert(
                halyard_cluster_model::alarm::CLASS,
                &format!("ne=1/alarm={n}"),
                &[
                    ("Resource", Value::Str("ne=1/shelf=1".into())),
                    (
                        "ProbableCause",
                        Value::Enum(ProbableCause::PowerProblem.value()),
                    ),
                    ("Severity", Value::Enum(PerceivedSeverity::Major.value())),
                    ("RaisedAt", Value::Time(halyard_cluster_model::Timestamp(n))),
                    ("Shelf", Value::Str(shelf.into())),
                ],
            )
            .unwrap();
    }
    let mib = mib_over(model);
    let mut ctx = Ctx::default();
    // Rows of one column of alarmActiveTable (alarmActiveResourceId).
    let column = oid::join(alarm::ACTIVE_ENTRY, &[6]);
    let mut cur = column.clone();
    let mut rows = 0;
    while let Some((next, _)) = mib.next(&mut ctx, &cur).await.unwrap() {
        if !next.starts_with(&column) {
            break;
        }
        rows += 1;
        cur = next;
    }
    assert_eq!(rows, 1);
}

/// ENTITY-SENSOR-MIB: a fan's speed gauge (Units "rpm") is a sensor entity
/// of class sensor(8) contained in the fan, and entPhySensorValue reads the
/// gauge; a power supply's watts are another; a board's load (percent) is
/// no sensor type.
#[tokio::test]
async fn gauges_with_sensor_units_are_entity_sensors() {
    use halyard_cluster_model::physical::{self, SENSOR_INDEX_BASE};
    let mib = mib();
    let mut ctx = Ctx::default();
    let snap = mib.snapshot(&mut ctx).await.unwrap();
    let fan = snap
        .objects
        .iter()
        .find(|o| o.name.as_str() == "ne=1/shelf=1/fan=1")
        .unwrap();
    let s = physical::sensors(fan);
    assert_eq!(s.len(), 1);
    let index = s[0].index().unwrap();
    assert!(index >= SENSOR_INDEX_BASE);
    let get = |col: &[u32], i: u32| oid::join(col, &[i]);
    let mut ctx = Ctx::default();
    let value = |v: VarBindValue| match v {
        VarBindValue::Value(ObjectSyntax::Simple(rasn_smi::v2::SimpleSyntax::Integer(i))) => {
            i64::try_from(&i).unwrap()
        }
        other => panic!("{other:?}"),
    };
    let sensor = oid::ENT_SENSOR_ENTRY;
    assert_eq!(
        value(
            mib.get(&mut ctx, &get(&oid::join(sensor, &[1]), index))
                .await
                .unwrap()
        ),
        10,
        "rpm"
    );
    assert_eq!(
        value(
            mib.get(&mut ctx, &get(&oid::join(sensor, &[2]), index))
                .await
                .unwrap()
        ),
        9,
        "units"
    );
    assert_eq!(
        value(
            mib.get(&mut ctx, &get(&oid::join(sensor, &[4]), index))
                .await
                .unwrap()
        ),
        4200
    );
    assert_eq!(
        value(
            mib.get(&mut ctx, &get(&oid::join(sensor, &[5]), index))
                .await
                .unwrap()
        ),
        1,
        "ok"
    );
    let physical_entry = oid::ENT_PHYSICAL_ENTRY;
    assert_eq!(
        value(
            mib.get(&mut ctx, &get(&oid::join(physical_entry, &[5]), index))
                .await
                .unwrap()
        ),
        8,
        "sensor"
    );
    assert_eq!(
        value(
            mib.get(&mut ctx, &get(&oid::join(physical_entry, &[4]), index))
                .await
                .unwrap()
        ),
        i64::from(fan.index),
        "contained in the fan"
    );
    // entPhysicalContainsTable lists it under the fan.
    let contains = oid::join(oid::ENT_CONTAINS_ENTRY, &[1, fan.index, index]);
    assert!(matches!(
        mib.get(&mut ctx, &contains).await.unwrap(),
        VarBindValue::Value(_)
    ));
    // Every sensor is a row of entPhySensorTable and entPhysicalTable.
    let sensors: Vec<u32> = snap.sensors.iter().map(|s| s.0).collect();
    let board = snap
        .objects
        .iter()
        .find(|o| o.class.name == "HostBoard")
        .unwrap();
    let units: Vec<_> = physical::sensors(board).iter().map(|s| s.units()).collect();
    assert_eq!(units, ["celsius"]);
    assert!(sensors.len() >= 4, "{sensors:?}");
}

/// sysName is the element's host name (writable, one value with
/// ietf-system's hostname), the configured name while it is empty.
#[tokio::test]
async fn sys_name_is_the_elements_host_name() {
    let mib = Mib::new(
        Arc::new(demo_element()),
        Arc::new(Engine::new(vec![0x80, 0, 0x7e, 0xd9, 5, 1], 1)),
        SysInfo {
            name: "halyard node a".into(),
            ..SysInfo::default()
        },
        65_507,
    );
    let mut ctx = Ctx::default();
    let sys_name = oid::join(oid::SYSTEM, &[5, 0]);
    let read = |v: VarBindValue| match v {
        VarBindValue::Value(ObjectSyntax::Simple(rasn_smi::v2::SimpleSyntax::String(s))) => {
            String::from_utf8(s.to_vec()).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        read(mib.get(&mut ctx, &sys_name).await.unwrap()),
        "halyard node a"
    );
    let all = crate::config::View::all();
    mib.set(
        &[(
            sys_name.clone(),
            VarBindValue::Value(crate::codec::octets(b"ne1.example.net".to_vec())),
        )],
        "test",
        halyard_cluster_model::access::Role::Operator,
        &all,
    )
    .await
    .unwrap();
    let mut ctx = Ctx::default();
    assert_eq!(
        read(mib.get(&mut ctx, &sys_name).await.unwrap()),
        "ne1.example.net"
    );
}
