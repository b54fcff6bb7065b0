//! Hot swap end to end: the real `halyard` on the demo element with a
//! directory-watching bus, a unit inserted and removed by writing and
//! deleting its slot file, seen through HTTP, SNMP (ENTITY-MIB by number,
//! hcObjectTable) and snmptrapd; the simulated bus through the hot-swap
//! controller's operations; manual instantiation and locked components.

use std::path::Path;
use std::time::{Duration, Instant};

use halyard_tests::free_port;

use crate::agent::{Agent, HC, TrapD, get, index_of, wait_until, workspace};

const ENT: &str = "1.3.6.1.2.1.47.1.1.1";
const SHELF: &str = "ne=1/shelf=1";

/// Writes a slot file the way a bus manager should: elsewhere, then renamed.
fn insert(dir: &Path, slot: u32, ty: &str, serial: &str) {
    let shelf = dir.join("1");
    std::fs::create_dir_all(&shelf).unwrap();
    let tmp = shelf.join(format!(".slot-{slot}.tmp"));
    std::fs::write(
        &tmp,
        format!("type = \"{ty}\"\nserial = \"{serial}\"\nrevision = \"B\"\n"),
    )
    .unwrap();
    std::fs::rename(tmp, shelf.join(format!("slot-{slot}.toml"))).unwrap();
}

fn attrs(a: &Agent, object: &str) -> Option<serde_json::Value> {
    let (code, body) = a.curl("GET", &format!("/api/v1/objects/{object}"), None);
    (code == 200)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap()["attributes"].clone())
}

fn attr(a: &Agent, object: &str, name: &str) -> String {
    attrs(a, object).map_or_else(String::new, |v| match &v[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn swap_events(a: &Agent) -> u64 {
    attr(a, &format!("{SHELF}/hsc=1"), "swap-events")
        .parse()
        .unwrap()
}

/// entPhysicalTable rows by column, of one entity.
fn entity(a: &Agent, index: &str) -> std::collections::BTreeMap<u32, String> {
    a.walk(ENT)
        .into_iter()
        .filter_map(|(oid, v)| {
            let rest = oid.strip_prefix(&format!(".{ENT}.1."))?;
            let (col, idx) = rest.split_once('.')?;
            (idx == index).then(|| (col.parse().unwrap(), v))
        })
        .collect()
}

/// Active alarms of a resource: (probable cause, severity).
fn alarms_of(a: &Agent, resource: &str) -> Vec<(String, String)> {
    let (code, body) = a.curl("GET", "/api/v1/alarms", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["attributes"])
        .filter(|o| o["resource"] == resource)
        .map(|o| {
            (
                o["probable-cause"].as_str().unwrap().to_string(),
                o["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// entLastChangeTime in ticks.
fn last_change(a: &Agent) -> u64 {
    let (ok, out) = a.snmp(
        "snmpget",
        &["-v2c", "-c", "public", "-Oqv", "-Ot"],
        &["1.3.6.1.2.1.47.1.4.1.0"],
    );
    assert!(ok, "{out}");
    out.trim().parse().unwrap_or_else(|_| panic!("{out}"))
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_job(a: &Agent, body: &str) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let job = v["job"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();
    wait_until(&format!("job {job}"), || {
        let (_, b) = a.curl("GET", &format!("/api/v1/jobs/{job}"), None);
        b.contains("\"succeeded\"")
    });
}

#[test]
fn hot_swap_instantiates_a_unit_in_entphysicaltable_and_its_removal_takes_the_subtree_and_alarms() {
    let trap_port = free_port();
    let traps = TrapD::start(trap_port);
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let config = demo
        .replacen(
            "\n[hotswap]\npoll_ms = 500\n",
            &format!(
                "\n[hotswap]\ndirectory = \"{}\"\npoll_ms = 200\n",
                bus.display()
            ),
            1,
        )
        .replacen(
            "\n[netconf]\n",
            &format!(
                "traps = [{{ target = \"127.0.0.1:{trap_port}\", community = \"public\" }}]\n\n[netconf]\n"
            ),
            1,
        );
    assert!(config.contains("directory = ") && config.contains("traps = "));
    let path = dir.path().join("hotswap.toml");
    std::fs::write(&path, config).unwrap();
    let a = Agent::start_with(&dir.path().join("data"), Some(path));
    assert_eq!(swap_events(&a), 0);
    let shelf_index = index_of(&a, SHELF);

    // Insertion: the unit and its component managers appear, and CRIM
    // gives the unlocked ones a role; the locked one is not started.
    let unit = format!("{SHELF}/linecard=slot-8");
    let portd = format!("{unit}/comp=portd");
    let diagd = format!("{unit}/comp=diagd");
    let changed = last_change(&a);
    let t0 = Instant::now();
    insert(&bus, 8, "linecard-10g", "LC0008");
    // The unit's own hardware and its component managers are started
    // side by side: wait for both (a loaded run saw portd primary while the
    // unit's simulated hardware had not reported yet).
    wait_until(
        "the inserted unit and its component manager to be primary",
        || {
            attr(&a, &portd, "availability-state") == "primary"
                && attr(&a, &unit, "availability-state") == "primary"
        },
    );
    assert!(t0.elapsed() < Duration::from_secs(15));
    let u = attrs(&a, &unit).unwrap();
    assert_eq!(u["present"], true, "{u}");
    assert_eq!(u["slot"], 8, "{u}");
    assert_eq!(u["serial-number"], "LC0008", "{u}");
    assert_eq!(u["availability-state"], "primary", "{u}");
    let pid = attr(&a, &portd, "pid");
    assert!(pid != "0" && alive(&pid), "portd runs: pid {pid}");
    assert_eq!(attr(&a, &diagd, "admin-state"), "locked");
    assert_eq!(
        attr(&a, &diagd, "pid"),
        "0",
        "a locked component is not started"
    );
    assert_eq!(attr(&a, &diagd, "incarnation"), "0");
    assert_eq!(attr(&a, &diagd, "availability-state"), "off-line");
    assert_eq!(swap_events(&a), 1);

    // ENTITY-MIB by number: a module contained in the shelf, with its
    // slot, name and serial; its components hang under it in hcObjectTable.
    let idx = index_of(&a, &unit);
    let row = entity(&a, &idx);
    assert_eq!(
        row.get(&4),
        Some(&shelf_index),
        "entPhysicalContainedIn: {row:?}"
    );
    assert_eq!(
        row.get(&5).map(String::as_str),
        Some("9"),
        "entPhysicalClass module: {row:?}"
    );
    assert_eq!(
        row.get(&6).map(String::as_str),
        Some("8"),
        "entPhysicalParentRelPos: {row:?}"
    );
    assert_eq!(row.get(&7), Some(&unit), "entPhysicalName: {row:?}");
    assert_eq!(
        row.get(&11).map(String::as_str),
        Some("LC0008"),
        "entPhysicalSerialNum: {row:?}"
    );
    assert_eq!(
        row.get(&16).map(String::as_str),
        Some("1"),
        "entPhysicalIsFRU: {row:?}"
    );
    // Its ports are physical entities contained in it, at their positions.
    let ports: Vec<String> = (1..=2).map(|k| format!("{unit}/port={k}")).collect();
    let port_idx: Vec<String> = ports.iter().map(|p| index_of(&a, p)).collect();
    for (k, pi) in port_idx.iter().enumerate() {
        let row = entity(&a, pi);
        assert_eq!(
            row.get(&4),
            Some(&idx),
            "port contained in the card: {row:?}"
        );
        assert_eq!(
            row.get(&5).map(String::as_str),
            Some("10"),
            "class port: {row:?}"
        );
        let pos = (k + 1).to_string();
        assert_eq!(row.get(&6), Some(&pos), "port position: {row:?}");
        assert_eq!(
            row.get(&16).map(String::as_str),
            Some("2"),
            "not a FRU: {row:?}"
        );
    }
    assert_eq!(attrs(&a, &ports[0]).unwrap()["speed"], 10000);
    assert_eq!(u["ports"], 2, "{u}");
    // And the element's interfaces (IF-MIB): ifName and ifHighSpeed by the
    // same index, ifNumber counting them.
    for (p, pi) in ports.iter().zip(&port_idx) {
        assert_eq!(&get(&a, &format!("1.3.6.1.2.1.31.1.1.1.1.{pi}")), p);
        assert_eq!(get(&a, &format!("1.3.6.1.2.1.31.1.1.1.15.{pi}")), "10000");
    }
    assert_eq!(get(&a, "1.3.6.1.2.1.2.1.0"), "2");
    // The ports' traffic (the simulated hardware's, sampled with the
    // statistics): ifHCInOctets grows, ifInOctets is its low 32 bits.
    let octets = |pi: &str| -> u64 {
        get(&a, &format!("1.3.6.1.2.1.31.1.1.1.6.{pi}"))
            .parse()
            .unwrap_or(0)
    };
    let first = {
        let mut v = 0;
        crate::agent::wait_until("traffic on the first port", || {
            v = octets(&port_idx[0]);
            v > 0
        });
        v
    };
    crate::agent::wait_until("more traffic", || octets(&port_idx[0]) > first);
    // Both in one request (one reading of the model): the Counter32 is the
    // low 32 bits of the Counter64.
    let (ok, out) = a.snmp(
        "snmpget",
        &["-v2c", "-c", "public", "-Oqv"],
        &[
            &format!("1.3.6.1.2.1.2.2.1.10.{}", port_idx[0]),
            &format!("1.3.6.1.2.1.31.1.1.1.6.{}", port_idx[0]),
        ],
    );
    assert!(ok, "{out}");
    let v: Vec<u64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(v.len(), 2, "{out}");
    assert_eq!(v[0], v[1] % (1 << 32), "{out}");
    for c in [&portd, &diagd] {
        let ci = index_of(&a, c);
        assert_eq!(
            get(&a, &format!("{HC}.1.100.1.4.{ci}")),
            idx,
            "hcObjectParent of {c}"
        );
    }
    let inserted_at = last_change(&a);
    assert!(
        inserted_at > changed,
        "entLastChangeTime {changed} -> {inserted_at}"
    );
    let text = traps.wait_for("HALYARD-CLUSTER-MIB::hcFruChanged");
    // ENTITY-MIB entConfigChange, by number or by name.
    wait_until("snmptrapd to print entConfigChange", || {
        let t = traps.text();
        t.contains("mib-2.47.2.0.1") || t.contains("entConfigChange")
    });
    assert!(
        text.contains(&format!("hcFruChangedFru.0 = STRING: {unit}")),
        "{text}"
    );

    // Removal: the subtree goes from HTTP and ENTITY-MIB, the processes
    // stop, the unit (in service) is alarmed and the alarm is a trap.
    std::fs::remove_file(bus.join("1/slot-8.toml")).unwrap();
    wait_until("the removed unit to leave the tree", || {
        attrs(&a, &unit).is_none()
    });
    for gone in [&portd, &diagd, &"ne=1/sg=fru-1-linecard-slot-8".to_string()]
        .into_iter()
        .chain(&ports)
    {
        assert!(attrs(&a, gone).is_none(), "{gone} is gone");
    }
    for i in std::iter::once(&idx).chain(&port_idx) {
        assert!(entity(&a, i).is_empty(), "no entPhysicalTable row for {i}");
    }
    assert!(
        last_change(&a) > inserted_at,
        "entLastChangeTime moves on removal"
    );
    assert!(
        !a.walk(&format!("{HC}.1.100.1.3"))
            .iter()
            .any(|(_, n)| n.starts_with(&unit)),
        "hcObjectTable has nothing of the subtree"
    );
    wait_until("portd to stop", || !alive(&pid));
    assert_eq!(
        alarms_of(&a, &unit),
        vec![("replaceable-unit-missing".to_string(), "major".to_string())]
    );
    let text = traps.wait_for(&format!("hcAlarmRaisedResource.0 = STRING: {unit}"));
    assert!(
        text.contains("hcFruChangedPresent.0 = INTEGER: false(2)"),
        "{text}"
    );
    assert_eq!(swap_events(&a), 2);

    // Back in its slot: instantiated again (same entity index), alarm cleared.
    insert(&bus, 8, "linecard-10g", "LC0018");
    wait_until("the unit back in service", || {
        attr(&a, &portd, "availability-state") == "primary"
    });
    assert_eq!(index_of(&a, &unit), idx, "the entity keeps its index");
    assert_eq!(
        alarms_of(&a, &unit),
        vec![(
            "replaceable-unit-missing".to_string(),
            "cleared".to_string()
        )]
    );
    assert_eq!(swap_events(&a), 3);

    // Manual instantiation through the simulated bus (the controller's
    // Insert): everything locked, nothing started until the unit is unlocked.
    let manual = format!("{SHELF}/linecard=slot-9");
    let mportd = format!("{manual}/comp=portd");
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{SHELF}/hsc=1/operations/insert"),
        Some(r#"{"slot":"9","fru-type":"linecard-10g-manual","serial-number":"M0009","hardware-revision":"A"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until("the manual unit's objects", || attrs(&a, &mportd).is_some());
    std::thread::sleep(Duration::from_secs(1));
    for o in [&manual, &mportd] {
        assert_eq!(attr(&a, o, "admin-state"), "locked", "{o}");
        assert_eq!(attr(&a, o, "availability-state"), "off-line", "{o}");
    }
    assert_eq!(attr(&a, &mportd, "pid"), "0", "not started while locked");
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{manual}/operations/unlock"),
        Some("{}"),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_job(&a, &body);
    wait_until("the unlocked unit's component manager to run", || {
        attr(&a, &mportd, "availability-state") == "primary"
    });
    assert_ne!(attr(&a, &mportd, "pid"), "0");

    // A unit that never served is removed without an alarm.
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{SHELF}/hsc=1/operations/insert"),
        Some(r#"{"slot":"10","fru-type":"linecard-10g-manual","serial-number":"M0010"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let idle = format!("{SHELF}/linecard=slot-10");
    wait_until("the idle unit", || attrs(&a, &idle).is_some());
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{SHELF}/hsc=1/operations/remove"),
        Some(r#"{"slot":"10"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until("the idle unit to go", || attrs(&a, &idle).is_none());
    assert!(alarms_of(&a, &idle).is_empty());
    assert_eq!(swap_events(&a), 6);

    // A configured unit (fan 2, slot 3) taken out stays in the tree, not
    // present, off-line and alarmed; back in, it serves again.
    let fan = format!("{SHELF}/fan=2");
    insert(&bus, 3, "fan", "FAN0002");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(swap_events(&a), 6, "a unit already in its slot is no event");
    std::fs::remove_file(bus.join("1/slot-3.toml")).unwrap();
    wait_until("the configured unit to be out", || {
        attr(&a, &fan, "present") == "false"
    });
    wait_until("the configured unit off-line", || {
        attr(&a, &fan, "availability-state") == "off-line"
    });
    assert_eq!(
        alarms_of(&a, &fan),
        vec![("replaceable-unit-missing".to_string(), "major".to_string())]
    );
    let fan_index = index_of(&a, &fan);
    assert!(!entity(&a, &fan_index).is_empty(), "still an entity");
    insert(&bus, 3, "fan", "FAN0022");
    wait_until("the configured unit back in service", || {
        attr(&a, &fan, "availability-state") == "primary"
    });
    assert_eq!(attr(&a, &fan, "present"), "true");
    assert_eq!(attr(&a, &fan, "serial-number"), "FAN0022");
    assert_eq!(
        alarms_of(&a, &fan),
        vec![(
            "replaceable-unit-missing".to_string(),
            "cleared".to_string()
        )]
    );
    assert_eq!(swap_events(&a), 8);

    // An unknown FRU type instantiates nothing.
    insert(&bus, 11, "no-such-card", "X");
    std::thread::sleep(Duration::from_secs(1));
    assert!(attrs(&a, &format!("{SHELF}/linecard=slot-11")).is_none());
    assert_eq!(swap_events(&a), 8);
}

/// Body of a refused operation: (status, error text).
fn refused(a: &Agent, op: &str, body: &str) -> (u16, String) {
    let (code, text) = a.curl(
        "POST",
        &format!("/api/v1/objects/{SHELF}/hsc=1/operations/{op}"),
        Some(body),
    );
    (code, text)
}

#[test]
fn hot_swap_operations_that_would_change_nothing_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(&dir.path().join("data"));

    // An unknown FRU type: refused, naming it and the known ones.
    let (code, body) = refused(
        &a,
        "insert",
        r#"{"slot":"11","fru-type":"no-such-card","serial-number":"X"}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("unknown FRU type") && body.contains("no-such-card"),
        "{body}"
    );
    assert!(
        body.contains("linecard-10g"),
        "names the known types: {body}"
    );

    // An empty slot: nothing to remove.
    let (code, body) = refused(&a, "remove", r#"{"slot":"12"}"#);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("slot 12") && body.contains("empty"), "{body}");

    // An occupied slot (fan 2 is configured in slot 3): nothing to insert.
    let (code, body) = refused(
        &a,
        "insert",
        r#"{"slot":"3","fru-type":"linecard-10g","serial-number":"Y"}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("slot 3") && body.contains(&format!("{SHELF}/fan=2")),
        "{body}"
    );

    // Nothing happened, and the refusals are in the audit trail.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(swap_events(&a), 0);
    assert!(attrs(&a, &format!("{SHELF}/linecard=slot-11")).is_none());
    let (code, body) = a.curl("GET", "/api/v1/classes/AuditRecord", None);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("rejected") && body.contains("no-such-card"),
        "audit records of the refusals: {body}"
    );

    // A valid insertion still works.
    let (code, body) = refused(
        &a,
        "insert",
        r#"{"slot":"11","fru-type":"linecard-10g","serial-number":"Z"}"#,
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_job(&a, &body);
    wait_until("the unit", || {
        attrs(&a, &format!("{SHELF}/linecard=slot-11")).is_some()
    });
}
