//! Walks, tables and SETs with the net-snmp command-line tools.

use std::collections::BTreeSet;

use halyard_cluster_model::port::InformationModel;
use halyard_cluster_model::{ObjectName, Value};

use crate::harness::*;

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub fn object(r: &Running, name: &str) -> halyard_cluster_model::port::ManagedObject {
    block_on(r.model.get(&ObjectName::parse(name).unwrap())).expect("object")
}

/// `<root>.1.<class>.1.<column>.<index>` of an attribute of an object.
pub fn instance(r: &Running, name: &str, attribute: &str) -> String {
    let o = object(r, name);
    let (_, a) = o.class.attribute(attribute).expect("attribute");
    format!(
        ".1.3.6.1.4.1.32473.77.1.{}.1.{}.{}",
        o.class.oid, a.column, o.index
    )
}

fn assert_strictly_increasing(lines: &[(Vec<u32>, String)]) {
    for w in lines.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "not increasing: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// What every whole-tree walk must contain.
fn assert_whole_tree(lines: &[(Vec<u32>, String)], r: &Running) {
    let oids: BTreeSet<String> = lines
        .iter()
        .map(|(o, _)| halyard_snmp::oid::format(o))
        .collect();
    for want in [
        "1.3.6.1.2.1.1.1.0",
        "1.3.6.1.2.1.1.5.0",
        "1.3.6.1.2.1.11.1.0",
        "1.3.6.1.2.1.11.6.0",
        "1.3.6.1.6.3.10.2.1.1.0",
        "1.3.6.1.6.3.10.2.1.2.0",
        "1.3.6.1.6.3.15.1.1.4.0",
    ] {
        assert!(oids.contains(want), "{want} missing");
    }
    // Every attribute of every demo object, in its generated table.
    let objects = block_on(r.model.walk(None, 0, usize::MAX)).unwrap();
    assert_eq!(objects.len(), 17);
    for o in &objects {
        for (a, v) in o.class.attributes.iter().zip(&o.values) {
            let want = format!(
                "1.3.6.1.4.1.32473.77.1.{}.1.{}.{}",
                o.class.oid, a.column, o.index
            );
            assert_eq!(
                oids.contains(&want),
                !matches!(v, Value::Absent),
                "{} {} ({want})",
                o.name,
                a.name
            );
        }
        for col in [2, 3, 4] {
            let want = format!("1.3.6.1.4.1.32473.77.1.100.1.{col}.{}", o.index);
            assert!(oids.contains(&want), "{want}");
        }
    }
}

#[test]
fn v2c_walk_and_bulkwalk_return_the_whole_tree_in_order() {
    let r = start();
    let walk = tool("snmpwalk", &cat(v2c("public", r.addr), &["-On", ".1"]));
    assert!(walk.ok, "{walk:?}");
    assert!(!walk.stderr.contains("OID not increasing"), "{walk:?}");
    let wl = numeric_lines(&walk.stdout);
    assert_strictly_increasing(&wl);
    assert_whole_tree(&wl, &r);
    assert!(
        walk.stdout
            .contains(".1.3.6.1.2.1.1.5.0 = STRING: \"halyard-demo\""),
        "{walk:?}"
    );
    // The walk ends at the end of the MIB view: the last column of
    // SNMP-VIEW-BASED-ACM-MIB's last table (vacmViewTreeFamilyStatus).
    let last = halyard_snmp::oid::format(&wl.last().unwrap().0);
    assert!(last.starts_with("1.3.6.1.6.3.16.1.5.2.1.6."), "{last}");

    for reps in ["-Cr1", "-Cr10", "-Cr50"] {
        let bulk = tool(
            "snmpbulkwalk",
            &cat(v2c("public", r.addr), &["-On", reps, ".1"]),
        );
        assert!(bulk.ok, "{bulk:?}");
        assert!(!bulk.stderr.contains("OID not increasing"), "{bulk:?}");
        let bl = numeric_lines(&bulk.stdout);
        assert_strictly_increasing(&bl);
        let a: Vec<_> = wl.iter().map(|x| &x.0).collect();
        let b: Vec<_> = bl.iter().map(|x| &x.0).collect();
        assert_eq!(a, b, "bulkwalk {reps} differs from walk");
    }
    // Counters count: every walk step was a packet in and out.
    let get = tool(
        "snmpget",
        &cat(
            v2c("public", r.addr),
            &["-On", ".1.3.6.1.2.1.11.1.0", ".1.3.6.1.2.1.11.2.0"],
        ),
    );
    assert!(get.ok, "{get:?}");
    let g = numeric_lines(&get.stdout);
    let count = |s: &str| -> u64 { s.rsplit(' ').next().unwrap().parse().unwrap() };
    assert!(count(&g[0].1) > wl.len() as u64, "{get:?}");
    assert!(count(&g[1].1) >= wl.len() as u64, "{get:?}");
}

#[test]
fn v1_get_and_walk() {
    let r = start();
    let walk = tool(
        "snmpwalk",
        &cat(
            s(&[
                "-v1",
                "-c",
                "public",
                "-t",
                "5",
                "-r",
                "1",
                &r.addr.to_string(),
            ]),
            &["-On", ".1.3.6.1.2.1.1"],
        ),
    );
    assert!(walk.ok, "{walk:?}");
    // Eight scalars and sysORTable's 14 rows of 3 columns.
    assert_eq!(numeric_lines(&walk.stdout).len(), 8 + 42, "{walk:?}");
    let get = tool(
        "snmpget",
        &cat(
            s(&[
                "-v1",
                "-c",
                "public",
                "-t",
                "5",
                "-r",
                "1",
                &r.addr.to_string(),
            ]),
            &["-On", ".1.3.6.1.2.1.1.5.0", ".1.3.6.1.2.1.1.99.0"],
        ),
    );
    assert!(
        get.stdout.contains("noSuchName") || get.stderr.contains("noSuchName"),
        "{get:?}"
    );
}

#[test]
fn v3_authpriv_sha256_aes_walk() {
    let r = start();
    let walk = tool(
        "snmpwalk",
        &cat(v3("admin", "authPriv", r.addr), &["-On", ".1"]),
    );
    assert!(walk.ok, "{walk:?}");
    assert!(!walk.stderr.contains("OID not increasing"), "{walk:?}");
    let wl = numeric_lines(&walk.stdout);
    assert_strictly_increasing(&wl);
    assert_whole_tree(&wl, &r);

    // SHA-1 + AES and SHA-512 authNoPriv users, bulk.
    let bulk = tool(
        "snmpbulkwalk",
        &cat(v3("reader", "authPriv", r.addr), &["-On", "-Cr20", ".1"]),
    );
    assert!(bulk.ok, "{bulk:?}");
    assert_eq!(numeric_lines(&bulk.stdout).len(), wl.len());
    let get = tool(
        "snmpget",
        &cat(
            v3("auther", "authNoPriv", r.addr),
            &["-On", ".1.3.6.1.6.3.10.2.1.2.0"],
        ),
    );
    assert!(get.ok, "{get:?}");
    assert!(get.stdout.contains("INTEGER: 1"), "engine boots: {get:?}");

    // A wrong password is refused (usmStatsWrongDigests report).
    let mut bad = v3("admin", "authPriv", r.addr);
    let i = bad.iter().position(|a| a == AUTH_PASS).unwrap();
    bad[i] = "wrong-password".into();
    let out = tool("snmpget", &cat(bad, &["-On", ".1.3.6.1.2.1.1.5.0"]));
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("Authentication failure"), "{out:?}");
    // VACM views: the system group minus sysContact, nothing else.
    let out = tool(
        "snmpwalk",
        &cat(v3("limited", "authPriv", r.addr), &["-On", ".1"]),
    );
    assert!(out.ok, "{out:?}");
    let names: Vec<String> = numeric_lines(&out.stdout)
        .iter()
        .map(|(o, _)| halyard_snmp::oid::format(o))
        .collect();
    assert_eq!(names.len(), 7 + 42, "{out:?}");
    assert!(
        names.iter().all(|n| n.starts_with("1.3.6.1.2.1.1.")),
        "{out:?}"
    );
    assert!(!names.contains(&"1.3.6.1.2.1.1.4.0".to_string()), "{out:?}");
    let out = tool(
        "snmpget",
        &cat(
            v3("limited", "authPriv", r.addr),
            &["-On", ".1.3.6.1.2.1.1.4.0", ".1.3.6.1.6.3.15.1.1.4.0"],
        ),
    );
    assert_eq!(out.stdout.matches("No Such Object").count(), 2, "{out:?}");
    let out = tool(
        "snmpset",
        &cat(
            v3("limited", "authPriv", r.addr),
            &[&instance(&r, "ne=1/shelf=1/fan=1", "Label"), "s", "x"],
        ),
    );
    assert!(out.stderr.contains("noAccess"), "{out:?}");

    // VACM: the operators group needs authPriv; authNoPriv is refused.
    let out = tool(
        "snmpget",
        &cat(
            v3("admin", "authNoPriv", r.addr),
            &["-On", ".1.3.6.1.2.1.1.5.0"],
        ),
    );
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("authorizationError"), "{out:?}");
    // An unknown user too.
    let out = tool(
        "snmpget",
        &cat(
            v3("nobody", "authPriv", r.addr),
            &["-On", ".1.3.6.1.2.1.1.5.0"],
        ),
    );
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("Unknown user name"), "{out:?}");
}

#[test]
fn symbolic_names_and_snmptable() {
    let r = start();
    // A datetime, shown as DateAndTime.
    let alarm = r
        .model
        .insert(
            "Alarm",
            "ne=1/alarm=3",
            &[
                ("Resource", Value::Str("ne=1/shelf=1/psu=1".into())),
                (
                    "RaisedAt",
                    Value::Time(halyard_cluster_model::Timestamp(1_795_714_200_200)),
                ),
            ],
        )
        .unwrap();
    let mut args = v2c("public", r.addr);
    args.extend(mib_args());
    args.push(".1.3.6.1.4.1.32473.77".into());
    let walk = tool("snmpwalk", &args);
    assert!(walk.ok, "{walk:?}");
    assert!(!walk.stderr.contains("OID not increasing"), "{walk:?}");
    // Every value has the syntax the MIB declares.
    assert!(!walk.stdout.contains("Wrong Type"), "{walk:?}");
    let lines: Vec<&str> = walk.stdout.lines().filter(|l| l.contains(" = ")).collect();
    assert!(lines.len() > 250, "{walk:?}");
    for l in &lines {
        assert!(
            l.starts_with("HALYARD-CLUSTER-MIB::hc"),
            "not symbolic: {l}"
        );
    }
    let comp = object(&r, "ne=1/shelf=1/node=a/comp=counterd-a").index;
    let want = format!("HALYARD-CLUSTER-MIB::hcSwAdminState.{comp} = INTEGER: unlocked(2)");
    assert!(walk.stdout.contains(&want), "{walk:?}");
    let want =
        format!("HALYARD-CLUSTER-MIB::hcAlarmRaisedAt.{alarm} = STRING: 2026-11-26,17:30:0.2,+0:0");
    assert!(walk.stdout.contains(&want), "{walk:?}");
    let fan = object(&r, "ne=1/shelf=1/fan=1").index;
    let want =
        format!("HALYARD-CLUSTER-MIB::hcObjectClass.{fan} = OID: HALYARD-CLUSTER-MIB::hcFanEntry");
    assert!(walk.stdout.contains(&want), "{walk:?}");

    let mut args = v2c("public", r.addr);
    args.extend(mib_args());
    args.extend(s(&["-Cb", "HALYARD-CLUSTER-MIB::hcSwTable"]));
    let table = tool("snmptable", &args);
    assert!(table.ok, "{table:?}");
    assert!(
        table
            .stdout
            .contains("SNMP table: HALYARD-CLUSTER-MIB::hcSwTable"),
        "{table:?}"
    );
    let header = table
        .stdout
        .lines()
        .find(|l| l.contains("Name"))
        .unwrap_or("");
    assert!(
        header.contains("AdminState") && header.contains("AvailabilityState"),
        "{table:?}"
    );
    let rows: Vec<&str> = table
        .stdout
        .lines()
        .filter(|l| l.contains("comp=counterd-"))
        .collect();
    assert_eq!(rows.len(), 2, "{table:?}");
    assert!(
        rows[0].contains("primary") && rows[1].contains("secondary"),
        "{table:?}"
    );
}

#[test]
fn entity_mib_lists_the_hardware_with_containment() {
    let r = start();
    let walk = tool(
        "snmpwalk",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.47.1.1.1"]),
    );
    assert!(walk.ok, "{walk:?}");
    let lines = numeric_lines(&walk.stdout);
    let col = |c: u32| -> Vec<(u32, String)> {
        lines
            .iter()
            .filter(|(o, _)| o.len() == 13 && o[11] == c)
            .map(|(o, v)| (o[12], v.clone()))
            .collect()
    };
    let names = col(7);
    let shelf = object(&r, "ne=1/shelf=1").index;
    let element = object(&r, "ne=1").index;
    let want = [
        // The element is a stack holding its shelves.
        ("ne=1", 11, 0),
        ("ne=1/shelf=1", 3, element),
        ("ne=1/shelf=1/hsc=1", 9, shelf),
        ("ne=1/shelf=1/fan=1", 7, shelf),
        ("ne=1/shelf=1/fan=2", 7, shelf),
        ("ne=1/shelf=1/psu=1", 6, shelf),
        ("ne=1/shelf=1/psu=2", 6, shelf),
        ("ne=1/shelf=1/board=1", 9, shelf),
        ("ne=1/shelf=1/board=2", 9, shelf),
    ];
    // Besides, each gauge with a sensor's units is a sensor entity
    // (class 8) in its entity (ENTITY-SENSOR-MIB).
    let sensors = [
        ("ne=1/shelf=1/fan=1", "speed"),
        ("ne=1/shelf=1/fan=2", "speed"),
        ("ne=1/shelf=1/psu=1", "output-power"),
        ("ne=1/shelf=1/psu=1", "input-voltage"),
        ("ne=1/shelf=1/psu=2", "output-power"),
        ("ne=1/shelf=1/psu=2", "input-voltage"),
        ("ne=1/shelf=1/board=1", "temperature"),
        ("ne=1/shelf=1/board=2", "temperature"),
    ];
    assert_eq!(names.len(), want.len() + sensors.len(), "{walk:?}");
    let class = col(5);
    let contained = col(4);
    for (entity, sensor) in sensors {
        let name = format!("STRING: \"{entity}/sensor={sensor}\"");
        let (idx, _) = names
            .iter()
            .find(|(_, n)| *n == name)
            .unwrap_or_else(|| panic!("no {name}: {walk:?}"));
        assert!(class.contains(&(*idx, "INTEGER: 8".into())), "{name}");
        let parent = object(&r, entity).index;
        assert!(
            contained.contains(&(*idx, format!("INTEGER: {parent}"))),
            "{name} in {entity}"
        );
    }
    for (name, phys_class, parent) in want {
        let idx = object(&r, name).index;
        assert!(
            names.contains(&(idx, format!("STRING: \"{name}\""))),
            "{name}"
        );
        assert!(
            class.contains(&(idx, format!("INTEGER: {phys_class}"))),
            "{name} class"
        );
        assert!(
            contained.contains(&(idx, format!("INTEGER: {parent}"))),
            "{name} parent"
        );
    }
    // entPhysicalContainsTable: the element contains the shelf, the shelf
    // the seven FRUs.
    let contains = tool(
        "snmpwalk",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.47.1.3.3"]),
    );
    let pairs: Vec<(u32, u32)> = numeric_lines(&contains.stdout)
        .iter()
        .map(|(o, _)| (o[12], o[13]))
        .collect();
    assert_eq!(pairs.len(), 8 + sensors.len(), "{contains:?}");
    assert!(pairs.contains(&(element, shelf)), "{contains:?}");
    assert_eq!(
        pairs.iter().filter(|(p, _)| *p == shelf).count(),
        7,
        "{contains:?}"
    );
    // Serial numbers and FRU flags.
    let fan = object(&r, "ne=1/shelf=1/fan=1").index;
    assert!(col(11).contains(&(fan, "STRING: \"HY0002\"".into())));
    assert!(col(16).contains(&(fan, "INTEGER: 1".into())));
    // An active major alarm on the fan shows in entStateAlarm (bit 3).
    r.model
        .insert(
            "Alarm",
            "ne=1/alarm=1",
            &[
                ("Resource", Value::Str("ne=1/shelf=1/fan=1".into())),
                ("Severity", Value::Enum(major())),
            ],
        )
        .unwrap();
    let alarm = tool(
        "snmpget",
        &cat(
            v2c("public", r.addr),
            &[
                "-On",
                "-Ox",
                &format!(".1.3.6.1.2.1.131.1.1.1.5.{fan}"),
                &format!(
                    ".1.3.6.1.2.1.131.1.1.1.5.{}",
                    object(&r, "ne=1/shelf=1/fan=2").index
                ),
            ],
        ),
    );
    let a = numeric_lines(&alarm.stdout);
    assert_eq!(a[0].1.trim(), "Hex-STRING: 10", "{alarm:?}");
    assert_eq!(a[1].1.trim(), "Hex-STRING: 00", "{alarm:?}");
    // ENTITY-STATE-MIB: unlocked(4), providingService(4) for a primary fan.
    let state = tool(
        "snmpget",
        &cat(
            v2c("public", r.addr),
            &[
                "-On",
                &format!(".1.3.6.1.2.1.131.1.1.1.2.{fan}"),
                &format!(".1.3.6.1.2.1.131.1.1.1.6.{fan}"),
            ],
        ),
    );
    assert!(state.ok, "{state:?}");
    let s = numeric_lines(&state.stdout);
    assert_eq!(s[0].1, "INTEGER: 4");
    assert_eq!(s[1].1, "INTEGER: 4");
    // Every entStateTable row has entStateLastChanged (RFC 4268: the
    // agent's start when nothing changed since), so snmptable's columns
    // line up with their rows.
    let table = tool(
        "snmpwalk",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.131.1.1.1"]),
    );
    assert!(table.ok, "{table:?}");
    let rows = |c: u32| -> Vec<u32> {
        numeric_lines(&table.stdout)
            .iter()
            .filter(|(o, _)| o.len() == 12 && o[10] == c)
            .map(|(o, _)| o[11])
            .collect()
    };
    assert!(!rows(2).is_empty(), "{table:?}");
    assert_eq!(rows(1), rows(2), "entStateLastChanged rows: {table:?}");
}

#[test]
fn set_through_v3_write_user_and_refusals() {
    let r = start();
    let comp = "ne=1/shelf=1/node=a/comp=counterd-a";
    let admin = instance(&r, comp, "AdminState");
    let label = instance(&r, comp, "Label");
    let locked = Value::Enum(1);
    assert_ne!(object(&r, comp).get("AdminState"), Some(&locked));

    // v2c public is read-only: noAccess, nothing changes.
    let out = tool("snmpset", &cat(v2c("public", r.addr), &[&admin, "i", "1"]));
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("noAccess"), "{out:?}");
    assert_ne!(object(&r, comp).get("AdminState"), Some(&locked));
    // A read-only v3 user too.
    let out = tool(
        "snmpset",
        &cat(v3("reader", "authPriv", r.addr), &[&admin, "i", "1"]),
    );
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("noAccess"), "{out:?}");

    // One bad varbind among good ones: nothing changes, error-index 2.
    let out = tool(
        "snmpset",
        &cat(
            v3("admin", "authPriv", r.addr),
            &[&label, "s", "new-label", &admin, "i", "99"],
        ),
    );
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("wrongValue"), "{out:?}");
    // error-index 2: the failed object is the admin state, not the label.
    let failed = format!("Failed object: iso{}\n", admin.trim_start_matches(".1"));
    assert!(out.stderr.contains(&failed), "{out:?}");
    assert_eq!(
        object(&r, comp).get("Label"),
        Some(&Value::Str(String::new()))
    );
    // A read-only column: notWritable.
    let serial = instance(&r, "ne=1/shelf=1/fan=1", "SerialNumber");
    let out = tool(
        "snmpset",
        &cat(
            v3("admin", "authPriv", r.addr),
            &[&label, "s", "x", &serial, "s", "x"],
        ),
    );
    assert!(out.stderr.contains("notWritable"), "{out:?}");
    // Wrong type.
    let out = tool(
        "snmpset",
        &cat(v3("admin", "authPriv", r.addr), &[&admin, "s", "locked"]),
    );
    assert!(out.stderr.contains("wrongType"), "{out:?}");
    // A row that does not exist: noCreation.
    let missing = format!("{}.999", admin.rsplit_once('.').unwrap().0);
    let out = tool(
        "snmpset",
        &cat(v3("admin", "authPriv", r.addr), &[&missing, "i", "1"]),
    );
    assert!(out.stderr.contains("noCreation"), "{out:?}");
    assert_eq!(
        object(&r, comp).get("Label"),
        Some(&Value::Str(String::new()))
    );

    // The write user locks the component, and sets its label, at once.
    let out = tool(
        "snmpset",
        &cat(
            v3("admin", "authPriv", r.addr),
            &[&admin, "i", "1", &label, "s", "locked by NMS"],
        ),
    );
    assert!(out.ok, "{out:?}");
    let o = object(&r, comp);
    assert_eq!(o.get("AdminState"), Some(&locked));
    assert_eq!(o.get("Label"), Some(&Value::Str("locked by NMS".into())));
    let mut args = v2c("public", r.addr);
    args.extend(mib_args());
    args.push(admin.clone());
    let get = tool("snmpget", &args);
    assert!(get.stdout.contains("INTEGER: locked(1)"), "{get:?}");
    // The community's misuse was counted (snmpInBadCommunityUses).
    let get = tool(
        "snmpget",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.11.5.0"]),
    );
    assert!(get.stdout.contains("Counter32: 1"), "{get:?}");
}

fn major() -> u32 {
    let (_, a) = halyard_cluster_model::SCHEMA
        .class("Alarm")
        .unwrap()
        .attribute("Severity")
        .unwrap();
    match a.ty {
        halyard_cluster_model::AttrType::Enum(e) => e.by_name("major").unwrap().value,
        _ => unreachable!("Severity is an enumeration"),
    }
}

/// sysORTable lists every MIB module the agent serves, as snmptable shows
/// it with the MIBs loaded, and each listed module answers a walk.
#[test]
fn sys_or_table_lists_the_served_mibs() {
    let r = start();
    let mut args = v2c("public", r.addr);
    args.extend(mib_args());
    args.extend(s(&["-Cf", "|", "SNMPv2-MIB::sysORTable"]));
    let table = tool("snmptable", &args);
    assert!(table.ok, "{table:?}");
    let rows: Vec<&str> = table
        .stdout
        .lines()
        .filter(|l| l.matches('|').count() == 2)
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 14, "{table:?}");
    for want in [
        "|SNMPv2-MIB: ",
        "|SNMP-FRAMEWORK-MIB: ",
        "|SNMP-MPD-MIB: ",
        "|SNMP-TARGET-MIB: ",
        "|SNMP-NOTIFICATION-MIB: ",
        "|SNMP-USER-BASED-SM-MIB: ",
        "|SNMP-VIEW-BASED-ACM-MIB: ",
        "|ENTITY-MIB: ",
        "|ENTITY-STATE-MIB: ",
        "|ENTITY-SENSOR-MIB: ",
        "|IF-MIB: ",
        "|ALARM-MIB: ",
        "|ITU-ALARM-MIB: ",
        "|HALYARD-CLUSTER-MIB: ",
    ] {
        assert!(rows.iter().any(|l| l.contains(want)), "{want}: {table:?}");
    }
    assert!(
        rows.iter().all(|l| l.ends_with("|0:0:00:00.00")),
        "{table:?}"
    );
    // Every module listed has objects under it.
    let mut args = v2c("public", r.addr);
    args.extend(s(&["-On", "-Oq", ".1.3.6.1.2.1.1.9.1.2"]));
    let ids = tool("snmpwalk", &args);
    let listed: Vec<&str> = ids
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        listed,
        [
            ".1.3.6.1.6.3.1",
            ".1.3.6.1.6.3.10",
            ".1.3.6.1.6.3.11",
            ".1.3.6.1.6.3.12",
            ".1.3.6.1.6.3.13",
            ".1.3.6.1.6.3.15",
            ".1.3.6.1.6.3.16",
            ".1.3.6.1.2.1.47",
            ".1.3.6.1.2.1.131",
            ".1.3.6.1.2.1.99",
            ".1.3.6.1.2.1.31",
            ".1.3.6.1.2.1.118",
            ".1.3.6.1.2.1.121",
            ".1.3.6.1.4.1.32473.77"
        ],
        "{ids:?}"
    );
    for id in &listed {
        // No notification target is configured here: snmpNotifyTable has
        // no row (the notifications test reads it with targets).
        if *id == ".1.3.6.1.6.3.13" {
            continue;
        }
        // IF-MIB's ifNumber is in the interfaces group (mib-2.2); the demo
        // has no line card, so ifXTable (under ifMIB) has no row.
        let id = if *id == ".1.3.6.1.2.1.31" {
            ".1.3.6.1.2.1.2"
        } else {
            id
        };
        let mut args = v2c("public", r.addr);
        args.extend(s(&["-On", id]));
        let walk = tool("snmpwalk", &args);
        assert!(
            walk.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{id}."))),
            "nothing under {id}: {walk:?}"
        );
    }
}

/// snmpSetSerialNo (TestAndIncr) as net-snmp's snmpset uses it for an
/// advisory lock: a SET with the current value succeeds, with the label
/// change in the same PDU, and moves it on; a SET with a stale value is
/// inconsistentValue and changes nothing, the other varbind included.
#[test]
fn snmp_set_serial_no_is_a_test_and_increment_lock() {
    let r = start();
    let serial_oid = ".1.3.6.1.6.3.1.1.6.1.0";
    let read = || -> i64 {
        let out = tool(
            "snmpget",
            &cat(v2c("public", r.addr), &["-Oqv", serial_oid]),
        );
        out.stdout.trim().parse().unwrap_or(-1)
    };
    let comp = "ne=1/shelf=1/node=a/comp=counterd-a";
    let label = instance(&r, comp, "Label");
    let now = read();
    assert!(now >= 0);
    let current = now.to_string();
    let out = tool(
        "snmpset",
        &cat(
            v3("admin", "authPriv", r.addr),
            &[serial_oid, "i", &current, &label, "s", "locked-by-serial"],
        ),
    );
    assert!(out.ok, "{out:?}");
    assert_eq!(read(), now + 1);
    assert_eq!(
        object(&r, comp).get("Label"),
        Some(&Value::Str("locked-by-serial".into()))
    );
    // The stale value: refused, and the label stays.
    let out = tool(
        "snmpset",
        &cat(
            v3("admin", "authPriv", r.addr),
            &[&label, "s", "second", serial_oid, "i", &current],
        ),
    );
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("inconsistentValue"), "{out:?}");
    assert!(
        out.stderr
            .contains("Failed object: iso.3.6.1.6.3.1.1.6.1.0"),
        "{out:?}"
    );
    assert_eq!(read(), now + 1);
    assert_eq!(
        object(&r, comp).get("Label"),
        Some(&Value::Str("locked-by-serial".into()))
    );
}

/// IF-MIB: a line card's ports are the element's interfaces. net-snmp's
/// snmptable, with IF-MIB loaded, shows them in ifTable and ifXTable with
/// their descriptions, speeds (ifSpeed saturated at 10 Gb/s, ifHighSpeed
/// in Mb/s), states and aliases; ifNumber counts them.
#[test]
fn if_mib_lists_the_line_cards_ports() {
    use halyard_cluster_model::{AttrType, SCHEMA};
    let r = start();
    let label = |class: &str, attr: &str, name: &str| {
        let (_, a) = SCHEMA.class(class).unwrap().attribute(attr).unwrap();
        match &a.ty {
            AttrType::Enum(m) => Value::Enum(m.by_name(name).unwrap().value),
            _ => panic!("{attr} is no enumeration"),
        }
    };
    r.model
        .insert("LineCard", "ne=1/shelf=1/linecard=slot-8", &[])
        .unwrap();
    let mut ports = Vec::new();
    for (p, oper, alias) in [(1, "enabled", "uplink"), (2, "disabled", "")] {
        let index = r
            .model
            .insert(
                "Port",
                &format!("ne=1/shelf=1/linecard=slot-8/port={p}"),
                &[
                    ("Position", Value::U32(p)),
                    ("Speed", Value::U32(10_000)),
                    ("OperState", label("Port", "OperState", oper)),
                    ("AdminState", label("Port", "AdminState", "unlocked")),
                    ("Label", Value::Str(alias.into())),
                ],
            )
            .unwrap();
        if p == 1 {
            // Past 2^32: ifInOctets is the low 32 bits, ifHCInOctets all.
            r.model
                .update(
                    &halyard_cluster_model::ObjectName::parse(
                        "ne=1/shelf=1/linecard=slot-8/port=1",
                    )
                    .unwrap(),
                    &[
                        ("InOctets", Value::U64(5_000_000_000)),
                        ("OutErrors", Value::U64(3)),
                    ],
                )
                .unwrap();
        }
        ports.push(index);
    }
    let table = |name: &str| snmptable(r.addr, "IF-MIB", &[], name);
    let if_table = table("IF-MIB::ifTable");
    let rows: Vec<&str> = if_table
        .lines()
        .filter(|l| l.contains("linecard=slot-8/port="))
        .collect();
    assert_eq!(rows.len(), 2, "{if_table}");
    assert!(
        rows[0].contains("|Port ne=1/shelf=1/linecard=slot-8/port=1|ethernetCsmacd|")
            && rows[0].contains("|4294967295|")
            && rows[0].contains("|up|up|"),
        "{if_table}"
    );
    assert!(rows[1].contains("|up|down|"), "{if_table}");
    let if_x = table("IF-MIB::ifXTable");
    assert!(
        if_x.lines()
            .any(|l| l.starts_with("ne=1/shelf=1/linecard=slot-8/port=1|")
                && l.contains("|10000|")
                && l.contains("|uplink|")),
        "{if_x}"
    );
    let n = tool(
        "snmpget",
        &cat(v2c("public", r.addr), &["-Oqv", ".1.3.6.1.2.1.2.1.0"]),
    );
    assert_eq!(n.stdout.trim(), "2", "{n:?}");
    // Counters, 32 and 64 bits; the other port's start at 0 with it.
    let get = |oid: String| {
        tool("snmpget", &cat(v2c("public", r.addr), &["-Oqv", &oid]))
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(
        get(format!(".1.3.6.1.2.1.2.2.1.10.{}", ports[0])),
        "705032704"
    );
    assert_eq!(
        get(format!(".1.3.6.1.2.1.31.1.1.1.6.{}", ports[0])),
        "5000000000"
    );
    assert_eq!(get(format!(".1.3.6.1.2.1.2.2.1.20.{}", ports[0])), "3");
    let other = get(format!(".1.3.6.1.2.1.2.2.1.10.{}", ports[1]));
    assert_eq!(other, "0");
    // ENTITY-MIB's entAliasMappingTable: each port's entity is its ifIndex.
    let aliases = tool(
        "snmpwalk",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.47.1.3.2"]),
    );
    let want: Vec<String> = ports
        .iter()
        .map(|i| format!(".1.3.6.1.2.1.47.1.3.2.1.2.{i}.0 = OID: .1.3.6.1.2.1.2.2.1.1.{i}"))
        .collect();
    assert_eq!(
        aliases.stdout.lines().collect::<Vec<_>>(),
        want,
        "{aliases:?}"
    );
}

/// SNMP-VIEW-BASED-ACM-MIB shows the face's access control as net-snmp's
/// snmptable reads it with the module loaded: each user in its group, the
/// community as `community-1` (never its name: a secret), each group's
/// views per security level, and the views' subtrees.
#[test]
fn vacm_tables_show_groups_access_and_views() {
    let r = start();
    let table = |name: &str| -> String {
        let mut args = v2c("public", r.addr);
        // The standard module, byte-exact as shipped in mib/standard.
        args.extend([
            "-M".to_string(),
            format!("+{}/standard:{}", repo_mib_dir(), base_mibs()),
            "-m".to_string(),
            "+SNMP-VIEW-BASED-ACM-MIB".to_string(),
        ]);
        args.extend(s(&["-Ci", "-Cf", "|", name]));
        let t = tool("snmptable", &args);
        assert!(t.ok, "{t:?}");
        t.stdout
    };
    let groups = table("SNMP-VIEW-BASED-ACM-MIB::vacmSecurityToGroupTable");
    // Index: the security model (3 USM, 1 v1, 2 v2c) and name.
    for row in [
        "3.limited|system-only|readOnly|active",
        "3.admin|operators|readOnly|active",
        "2.community-1|community-1|readOnly|active",
        "1.community-1|community-1|readOnly|active",
    ] {
        assert!(
            groups.lines().any(|l| l.replace('"', "").contains(row)),
            "{row} not in {groups}"
        );
    }
    let access = table("SNMP-VIEW-BASED-ACM-MIB::vacmAccessTable");
    // The group "system-only" reads and writes its view at authPriv.
    assert!(
        access.lines().any(|l| l.contains("system-only")
            && l.contains("authPriv")
            && l.matches("system").count() >= 3),
        "{access}"
    );
    let views = table("SNMP-VIEW-BASED-ACM-MIB::vacmViewTreeFamilyTable");
    assert!(
        views
            .lines()
            .any(|l| l.contains("system") && l.contains("included")),
        "{views}"
    );
    assert!(
        views
            .lines()
            .any(|l| l.contains("system") && l.contains("excluded")),
        "{views}"
    );
    for t in [&groups, &access, &views] {
        assert!(!t.contains("public"), "the community's name is shown: {t}");
    }
}
