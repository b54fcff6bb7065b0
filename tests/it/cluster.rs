//! The three-node example (examples/three-node.toml) as real processes:
//! `kill -9` of a node and of the master, a partition, a lost link. A
//! checker samples every 2N member's own role at 100 Hz or more and fails
//! the test if one service instance ever has two primaries.

use std::process::Command;
use std::time::{Duration, Instant};

use halyard_tests::{Checker, Cluster, NODES, PAIRS, host_of, wait_until};

/// One three-node cluster at a time: each is three agents and seven
/// daemons, and the checker's 100 Hz must not starve on two cores. Tests
/// that load the machine as much (an agent driven by Python clients and
/// checked by yanglint) take the shared side: they run beside each other,
/// never beside a cluster.
static ONE_AT_A_TIME: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub(crate) fn serial() -> std::sync::RwLockWriteGuard<'static, ()> {
    ONE_AT_A_TIME.write().unwrap_or_else(|e| e.into_inner())
}

/// See [`ONE_AT_A_TIME`]: never beside a cluster test.
pub(crate) fn not_beside_a_cluster() -> std::sync::RwLockReadGuard<'static, ()> {
    ONE_AT_A_TIME.read().unwrap_or_else(|e| e.into_inner())
}

/// Waits until both pairs have a primary and a secondary.
pub(crate) fn wait_steady(c: &Cluster) {
    wait_until("a primary and a secondary in every 2N pair", 60, || {
        c.steady()
    });
}

/// The master as `node` shows it, once it shows one: the membership view
/// may follow the first assignments by a moment.
pub(crate) fn wait_master(c: &Cluster, node: &str) -> String {
    let mut master = None;
    wait_until(&format!("{node} to show a master"), 30, || {
        master = c.master(node);
        master.is_some()
    });
    master.unwrap()
}

/// Kills the master with SIGKILL; returns the survivors once both name
/// the same new master, and that master.
pub(crate) fn kill_the_master(c: &mut Cluster, master: &str) -> (Vec<&'static str>, String) {
    c.kill9(master);
    let survivors: Vec<&'static str> = NODES.iter().copied().filter(|n| *n != master).collect();
    wait_until("a new master", 20, || {
        survivors
            .iter()
            .all(|n| c.master(n).is_some_and(|m| m != master))
    });
    let new_master = c.master(survivors[0]).unwrap();
    assert_eq!(c.master(survivors[1]).as_deref(), Some(new_master.as_str()));
    (survivors, new_master)
}

pub(crate) fn node_object(n: &str) -> String {
    format!("ne=1/shelf=1/node={n}")
}

pub(crate) fn assert_one_primary(r: &halyard_tests::CheckReport) {
    assert!(
        r.rate_hz() >= 100.0,
        "the checker sampled at {:.0} Hz only",
        r.rate_hz()
    );
    assert!(
        r.double_primaries.is_empty(),
        "two primaries at once: {:?}",
        &r.double_primaries[..r.double_primaries.len().min(5)]
    );
}

#[test]
fn a_node_killed_with_sigkill_has_its_primaries_taken_over_with_their_state_and_rejoins_as_standby()
{
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);

    let (primary, before) = c.primary_of("counter").unwrap();
    let victim = host_of(&primary).unwrap();
    // Let it count a little more, then read the count just before the kill.
    std::thread::sleep(Duration::from_millis(300));
    let (before, _) = c.query(&primary).unwrap_or((before, String::new()));
    c.kill9(victim);

    // Every pair is served again, by the survivors (the victim's daemons
    // exit when their agent's socket closes, a moment after the kill).
    wait_until("every 2N pair primary again after kill -9", 20, || {
        PAIRS.iter().all(|(p, _)| {
            c.primary_of(p)
                .is_some_and(|(comp, _)| host_of(&comp) != Some(victim))
        })
    });
    let (now, after) = c.primary_of("counter").unwrap();
    assert_ne!(now, primary);
    assert!(
        after >= before,
        "the count went back from {before} to {after}: checkpointed state was lost"
    );
    // It keeps counting as primary.
    wait_until("the new primary counting", 10, || {
        c.query(&now).is_some_and(|(n, _)| n > after)
    });

    // The survivors show the node down, in HTTP and in SNMP (hcNodeMembership).
    let survivor = NODES.iter().find(|n| **n != victim).unwrap();
    wait_until("the lost node shown down", 10, || {
        c.attrs(survivor, &node_object(victim))
            .is_some_and(|a| a["membership"] == "down")
    });
    // Every survivor lists the outage of the victim's counterd among its
    // availability incidents (recorded as each applied the loss).
    for n in NODES.iter().filter(|n| **n != victim) {
        wait_until(&format!("the incident on {n}"), 20, || {
            let (_, body) = c.curl(n, "GET", "/api/v1/classes/AvailabilityIncident");
            body.contains(&format!("comp={primary}"))
        });
    }
    // NETCONF (ncclient) and Prometheus on the survivor say the same.
    let nc = c.netconf_nodes(survivor);
    assert!(
        nc.contains(&(node_object(victim), "down".to_string())),
        "NETCONF node list: {nc:?}"
    );
    let (_, metrics) = c.curl(survivor, "GET", "/metrics");
    assert!(
        metrics.lines().any(|l| l.contains("membership")
            && l.contains(&node_object(victim))
            && l.contains("\"down\"")
            && l.ends_with(" 1")),
        "no membership=down series for {victim} in /metrics"
    );
    // The change was announced as a MembershipChanged notification.
    let (_, body) = c.curl(survivor, "GET", "/api/v1/notifications");
    let ns: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        ns["notifications"].as_array().unwrap().iter().any(|n| {
            n["class"] == "MembershipChanged"
                && n["values"]["node"] == victim
                && n["values"]["state"] == "down"
        }),
        "no MembershipChanged(down) for {victim}: {body}"
    );
    let snmp = c
        .nodes
        .iter()
        .find(|n| n.name == *survivor)
        .unwrap()
        .snmp
        .clone();
    let out = Command::new("snmpwalk")
        .args(["-v2c", "-c", "public", "-On", "-Oq", "-Oe", &snmp])
        .arg(format!("{}.1.3.1.42", "1.3.6.1.4.1.32473.77"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(" 4")).count(),
        1,
        "one node down (4) in hcNodeMembership:\n{text}"
    );

    // The node comes back and its components rejoin as standbys.
    c.spawn(victim);
    c.wait_ready(victim);
    wait_until(
        "the restarted node's counterd back as secondary",
        60,
        || c.query(&primary).is_some_and(|(_, s)| s == "secondary"),
    );
    wait_steady(&c);
    wait_until("the node a member again", 20, || {
        c.attrs(survivor, &node_object(victim))
            .is_some_and(|a| a["membership"] == "member")
    });
    let r = checker.finish();
    assert_one_primary(&r);
}

#[test]
fn the_master_killed_a_new_master_is_elected_and_no_decision_is_lost() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let master = wait_master(&c, "n1");
    // A decision taken through a node that is not the master (the write is
    // forwarded): lock ticker-3.
    let via = NODES.iter().find(|n| **n != master).unwrap();
    let ticker = "ne=1/shelf=1/node=n3/comp=ticker-3";
    assert_eq!(c.invoke(via, ticker, "Lock", &[("Reason", "test")]), 202);
    for n in NODES {
        wait_until(&format!("ticker-3 locked as {n} sees it"), 20, || {
            c.attrs(n, ticker)
                .is_some_and(|a| a["admin-state"] == "locked")
        });
    }

    // An attribute written over SNMPv3 on a follower is committed to the
    // log and read back from every node (hcSwLabel of ticker-3).
    let index = c
        .snmp_index(via, ticker)
        .expect("ticker-3 in hcObjectTable");
    let label_oid = format!("1.3.6.1.4.1.32473.77.1.9.1.19.{index}");
    let (ok, out) = c.snmp_v3("snmpset", via, &[&label_oid, "s", "rack 4, left"]);
    assert!(ok, "snmpset: {out}");
    for n in NODES {
        wait_until(&format!("the label as {n} reads it"), 20, || {
            c.attrs(n, ticker)
                .is_some_and(|a| a["label"] == "rack 4, left")
        });
        // And every node's audit trail records who set it, from where.
        wait_until(&format!("the audit record on {n}"), 20, || {
            let (_, body) = c.curl(n, "GET", "/api/v1/classes/AuditRecord");
            body.contains("rack 4, left") && body.contains("snmp")
        });
    }

    let (survivors, _) = kill_the_master(&mut c, &master);
    // The decision committed before is still there.
    for n in &survivors {
        assert_eq!(c.attrs(n, ticker).unwrap()["admin-state"], "locked");
    }
    wait_until("every 2N pair primary after the master's death", 20, || {
        PAIRS.iter().all(|(p, _)| {
            c.primary_of(p)
                .is_some_and(|(comp, _)| host_of(&comp) != Some(master.as_str()))
        })
    });
    // A new decision through the new master's cluster.
    assert_eq!(c.invoke(survivors[1], ticker, "Unlock", &[]), 202);
    // The old master returns as a follower and its replica catches up.
    c.spawn(&master);
    c.wait_ready(&master);
    wait_until("the old master caught up (ticker-3 unlocked)", 60, || {
        c.attrs(&master, ticker)
            .is_some_and(|a| a["admin-state"] == "unlocked")
    });
    // Its replica rebuilt the label from the log too.
    wait_until("the old master's replica has the label", 30, || {
        c.attrs(&master, ticker)
            .is_some_and(|a| a["label"] == "rack 4, left")
    });
    wait_until("the old master a follower member", 30, || {
        c.attrs(&master, &node_object(&master))
            .is_some_and(|a| a["role"] == "follower" && a["membership"] == "member")
    });
    // Reads are the same from every node (each applies the log at its own
    // pace, and its model re-reads the replica every second).
    wait_until("every node reads ticker-3 unlocked", 20, || {
        NODES.iter().all(|n| {
            c.attrs(n, ticker)
                .is_some_and(|a| a["admin-state"] == "unlocked")
        })
    });
    wait_steady(&c);
    assert_one_primary(&checker.finish());
}

#[test]
fn a_partitioned_node_gives_up_its_primaries_and_the_majority_serves() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let (primary, before) = c.primary_of("counter").unwrap();
    let cut = host_of(&primary).unwrap();
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != cut).collect();
    // Both ways: the cut node drops the others, the others drop it.
    for o in &others {
        assert_eq!(c.invoke(cut, &node_object(o), "Disconnect", &[]), 202);
        assert_eq!(c.invoke(o, &node_object(cut), "Disconnect", &[]), 202);
    }
    // The cut-off primary demotes itself; the majority promotes the standby.
    wait_until("the cut-off node's counterd no longer primary", 10, || {
        c.query(&primary).is_some_and(|(_, s)| s != "primary")
    });
    wait_until("the counter served on the majority side", 20, || {
        c.primary_of("counter")
            .is_some_and(|(p, n)| p != primary && n >= before)
    });
    wait_until("the session pair served on the majority side", 20, || {
        c.primary_of("session")
            .is_some_and(|(p, _)| host_of(&p) != Some(cut))
    });
    std::thread::sleep(Duration::from_secs(1));
    // Heal: the node rejoins and its components come back as standbys.
    for o in &others {
        assert_eq!(c.invoke(cut, &node_object(o), "Reconnect", &[]), 202);
        assert_eq!(c.invoke(o, &node_object(cut), "Reconnect", &[]), 202);
    }
    wait_until("the healed node's counterd back as secondary", 60, || {
        c.query(&primary).is_some_and(|(_, s)| s == "secondary")
    });
    wait_steady(&c);
    let r = checker.finish();
    assert_one_primary(&r);
}

#[test]
fn losing_one_cluster_link_fails_no_node() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let (primary, _) = c.primary_of("counter").unwrap();
    for n in NODES {
        assert_eq!(
            c.invoke(
                n,
                &node_object(n),
                "SetLinkDown",
                &[("Link", "0"), ("Down", "true")]
            ),
            202
        );
    }
    // Well past failure detection (500 ms) and the lease (300 ms).
    std::thread::sleep(Duration::from_secs(3));
    for n in NODES {
        for m in NODES {
            assert_eq!(
                c.attrs(n, &node_object(m)).unwrap()["membership"],
                "member",
                "{n} sees {m}"
            );
        }
    }
    assert_eq!(c.primary_of("counter").unwrap().0, primary);
    assert!(c.steady());
    // Decisions still commit over the remaining link.
    let ticker = "ne=1/shelf=1/node=n3/comp=ticker-3";
    assert_eq!(
        c.invoke("n1", ticker, "Lock", &[("Reason", "link test")]),
        202
    );
    wait_until("the lock committed over link 1", 20, || {
        c.attrs("n2", ticker)
            .is_some_and(|a| a["admin-state"] == "locked")
    });
    let lost = std::fs::read_to_string(c.log("n1")).unwrap();
    assert!(
        !lost.contains("no heartbeat: declaring the node lost"),
        "a node was declared lost with one link down"
    );

    // COpCo's locks are the cluster's: while a job started on n2 holds the
    // shelf, a conflicting command on n3 is refused, naming that job.
    assert_eq!(
        c.invoke("n2", "ne=1/shelf=1", "Lock", &[("Reason", "maintenance")]),
        202
    );
    let (code, body) = c.invoke_full("n3", "ne=1/shelf=1/node=n1/comp=ticker-1", "Restart", &[]);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("on node n2"), "{body}");
}

#[test]
fn a_node_stopped_with_sigterm_hands_over_its_primaries_and_exits() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let (session_primary, _) = c.primary_of("session").unwrap();
    let leaving = host_of(&session_primary).unwrap();
    assert!(c.stop(leaving).success(), "{leaving} did not exit cleanly");
    wait_until("the session pair served by the other node", 20, || {
        c.primary_of("session")
            .is_some_and(|(p, _)| host_of(&p) != Some(leaving))
    });
    let survivor = NODES.iter().find(|n| **n != leaving).unwrap();
    wait_until("the leaving node shown down", 10, || {
        c.attrs(survivor, &node_object(leaving))
            .is_some_and(|a| a["membership"] == "down")
    });
    assert_one_primary(&checker.finish());
}

#[test]
fn a_fourth_node_is_admitted_by_a_management_operation_and_takes_part() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start_joining(dir.path(), false, "n4");
    wait_steady(&c);
    // Configured, running, not admitted: shown joining; its ticker has no role.
    wait_until("n4 shown joining", 20, || {
        c.attrs("n1", &node_object("n4"))
            .is_some_and(|a| a["membership"] == "joining")
    });
    assert_ne!(
        c.query("ticker-4").map(|(_, s)| s),
        Some("primary".to_string())
    );
    // Admitted through another node's face (forwarded to the master).
    let (code, body) = c.invoke_full("n2", &node_object("n4"), "Admit", &[]);
    assert_eq!(code, 202, "{body}");
    for n in ["n1", "n2", "n3", "n4"] {
        wait_until(&format!("n4 a member as {n} sees it"), 30, || {
            c.attrs(n, &node_object("n4"))
                .is_some_and(|a| a["membership"] == "member")
        });
    }
    // Its component registers and gets a role from CRIM.
    wait_until("ticker-4 given a role", 30, || {
        c.query("ticker-4")
            .is_some_and(|(_, s)| s == "secondary" || s == "spare" || s == "primary")
    });
    // With four voters, losing one node still leaves a majority: fail-over works.
    let (primary, before) = c.primary_of("counter").unwrap();
    let victim = host_of(&primary).unwrap();
    c.kill9(victim);
    wait_until("the counter served again among four voters", 20, || {
        c.primary_of("counter")
            .is_some_and(|(p, n)| host_of(&p) != Some(victim) && n >= before)
    });
}

#[test]
fn a_master_cut_off_from_the_majority_is_replaced_and_gives_up_its_primaries() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let master = wait_master(&c, "n1");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != master).collect();
    for o in &others {
        assert_eq!(c.invoke(&master, &node_object(o), "Disconnect", &[]), 202);
        assert_eq!(c.invoke(o, &node_object(&master), "Disconnect", &[]), 202);
    }
    // The majority elects another master and serves every pair.
    wait_until("a new master on the majority side", 20, || {
        others
            .iter()
            .all(|n| c.master(n).is_some_and(|m| m != master))
    });
    wait_until("every pair served on the majority side", 20, || {
        PAIRS.iter().all(|(p, _)| {
            c.primary_of(p)
                .is_some_and(|(comp, _)| host_of(&comp) != Some(master.as_str()))
        })
    });
    wait_until("the old master declared lost by the majority", 20, || {
        others.iter().all(|n| {
            c.attrs(n, &node_object(&master))
                .is_some_and(|a| a["membership"] == "down")
        })
    });
    // The old master's own daemons hold no primary.
    for (_, members) in PAIRS {
        for (comp, host) in members {
            if host == master {
                assert_ne!(
                    c.query(comp).map(|(_, s)| s),
                    Some("primary".into()),
                    "{comp}"
                );
            }
        }
    }
    for o in &others {
        assert_eq!(c.invoke(&master, &node_object(o), "Reconnect", &[]), 202);
        assert_eq!(c.invoke(o, &node_object(&master), "Reconnect", &[]), 202);
    }
    // It rejoins as a follower and a member, its components as standbys.
    wait_until("the old master a follower member again", 30, || {
        others.iter().all(|n| {
            c.attrs(n, &node_object(&master))
                .is_some_and(|a| a["membership"] == "member" && a["role"] == "follower")
        })
    });
    wait_steady(&c);
    assert_one_primary(&checker.finish());
}

#[test]
fn a_failures_black_box_reaches_every_node_through_the_cluster_log() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let (primary, _) = c.primary_of("counter").unwrap();
    let host = host_of(&primary).unwrap();
    let component = format!("{}/comp={primary}", node_object(host));
    assert_eq!(
        c.invoke(host, &component, "InjectFault", &[("Fault", "crash")]),
        202
    );
    // Another node's incident for the failure links to the black box,
    // which the failing node shipped through the replicated cluster log.
    let other = *NODES.iter().find(|n| **n != host).unwrap();
    let mut first = String::new();
    wait_until(
        "the incident with its black box on another node",
        30,
        || {
            let (_, body) = c.curl(other, "GET", "/api/v1/classes/AvailabilityIncident");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let found = v["objects"].as_array().into_iter().flatten().find_map(|o| {
                let a = &o["attributes"];
                (a["component"] == component.as_str())
                    .then(|| a["black-box"].as_str().unwrap_or_default().to_string())
                    .filter(|b| !b.is_empty())
            });
            first = found.unwrap_or_default();
            !first.is_empty()
        },
    );
    let rec = c
        .attrs(other, &first)
        .expect("the black box's first record");
    assert_eq!(rec["source"], component.as_str(), "{rec}");
    assert_eq!(rec["node-name"], host, "{rec}");
    assert!(
        rec["message"]
            .as_str()
            .unwrap()
            .starts_with("black box: started incarnation"),
        "{rec}"
    );
    // One log: every node has the same record.
    for n in NODES {
        wait_until(&format!("the record on {n}"), 10, || {
            c.attrs(n, &first)
                .is_some_and(|r| r["message"] == rec["message"] && r["time"] == rec["time"])
        });
    }
}

#[test]
fn a_unit_inserted_and_removed_on_the_master_is_seen_by_every_node() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let master = wait_master(&c, "n1");
    let hsc = "ne=1/shelf=1/hsc=1";
    let insert = [
        ("Slot", "8"),
        ("FruType", "linecard-10g"),
        ("SerialNumber", "LC0008"),
    ];
    // Only the master's hot-swap manager acts on the bus.
    let other = NODES.iter().find(|n| **n != master).unwrap();
    let (code, body) = c.invoke_full(other, hsc, "Insert", &insert);
    assert!(!(200..300).contains(&code), "{code} {body}");
    assert!(body.contains("master"), "{body}");

    assert_eq!(c.invoke(&master, hsc, "Insert", &insert), 202);
    let unit = "ne=1/shelf=1/linecard=slot-8";
    let portd = format!("{unit}/comp=portd");
    for n in NODES {
        wait_until(&format!("{n} to show the unit serving"), 30, || {
            c.attrs(n, &portd)
                .is_some_and(|a| a["availability-state"] == "primary")
        });
        assert_eq!(c.attrs(n, hsc).unwrap()["swap-events"], "1", "{n}");
        assert_eq!(c.attrs(n, unit).unwrap()["serial-number"], "LC0008", "{n}");
    }

    assert_eq!(c.invoke(&master, hsc, "Remove", &[("Slot", "8")]), 202);
    for n in NODES {
        wait_until(&format!("{n} to drop the unit"), 30, || {
            c.attrs(n, unit).is_none() && c.attrs(n, &portd).is_none()
        });
        wait_until(&format!("{n} to show the missing-unit alarm"), 30, || {
            let (_, alarms) = c.curl(n, "GET", "/api/v1/alarms");
            alarms.contains(&format!("\"resource\":\"{unit}\""))
                && alarms.contains("replaceable-unit-missing")
        });
        assert_eq!(c.attrs(n, hsc).unwrap()["swap-events"], "2", "{n}");
    }
}

#[test]
fn a_unit_inserted_as_the_master_dies_is_instantiated_by_the_next_master() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    // Every node watches the same directory bus, quickly.
    let mut c = Cluster::start_extended(
        dir.path(),
        false,
        &format!(
            "[hotswap]\ndirectory = \"{}\"\npoll_ms = 20\n",
            bus.display()
        ),
    );
    wait_steady(&c);
    let master = wait_master(&c, "n1");
    // The master is gone before its bus could see the unit; the others see
    // it (in 20 ms) before they elect a new master (150 ms at the least).
    c.kill9(&master);
    let shelf = bus.join("1");
    std::fs::create_dir_all(&shelf).unwrap();
    let tmp = shelf.join(".slot-8.tmp");
    std::fs::write(
        &tmp,
        "type = \"linecard-10g\"\nserial = \"LC0808\"\nrevision = \"B\"\n",
    )
    .unwrap();
    std::fs::rename(tmp, shelf.join("slot-8.toml")).unwrap();
    let survivor = NODES.iter().find(|n| **n != master).unwrap();
    wait_until("a new master", 30, || {
        c.master(survivor).is_some_and(|m| m != master)
    });
    let portd = "ne=1/shelf=1/linecard=slot-8/comp=portd";
    for n in NODES.iter().filter(|n| **n != master) {
        wait_until(&format!("{n} to show the unit serving"), 30, || {
            c.attrs(n, portd)
                .is_some_and(|a| a["availability-state"] == "primary")
        });
        let unit = c.attrs(n, "ne=1/shelf=1/linecard=slot-8").unwrap();
        assert_eq!(unit["serial-number"], "LC0808", "{n}");
    }
}

#[test]
fn a_stalled_agents_primaries_quiesce_by_their_lease_before_the_standbys_take_over() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let (primary, _) = c.primary_of("counter").unwrap();
    let stalled = host_of(&primary).unwrap();
    // The agent stops; its counterd runs on, and nobody can fence it.
    c.signal(stalled, "STOP", false);
    wait_until("the standby primary on another node", 20, || {
        c.primary_of("counter")
            .is_some_and(|(p, _)| host_of(&p) != Some(stalled))
    });
    // The stalled node's counterd says it quiesced at its lease's end.
    let (_, state) = c.query(&primary).expect("the daemon answers");
    assert_eq!(state, halyard_backend::client::QUIESCED, "{primary}");
    // Since before the standby took over: its history says so.
    let history = |comp: &str| {
        halyard_tests::role_history(&c.query_path(comp).unwrap()).expect("the daemon answers")
    };
    let latest = |comp: &str, state: &str| {
        history(comp)
            .changes()
            .iter()
            .rev()
            .find(|(_, s)| s == state)
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no {state} in {comp}'s history"))
    };
    let quiesced_at = latest(&primary, halyard_backend::client::QUIESCED);
    let (other, _) = c.primary_of("counter").unwrap();
    let promoted_at = latest(&other, "primary");
    assert!(
        quiesced_at < promoted_at,
        "quiesced at {quiesced_at}, the standby promoted at {promoted_at}"
    );
    std::thread::sleep(Duration::from_millis(500));
    c.signal(stalled, "CONT", false);
    wait_steady(&c);
    assert_one_primary(&checker.finish());
}

#[test]
fn a_dead_node_is_evicted_and_replaced_and_the_new_majority_fails_over() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start_joining(dir.path(), false, "n4");
    wait_steady(&c);
    // n3 dies for good.
    c.kill9("n3");
    wait_until("n3 shown down", 20, || {
        c.attrs("n1", &node_object("n3"))
            .is_some_and(|a| a["membership"] == "down")
    });
    // A node is evicted through another node's face, never its own.
    let (code, body) = c.invoke_full("n2", &node_object("n2"), "Evict", &[]);
    assert_eq!(code, 422, "{body}");
    let (code, body) = c.invoke_full("n1", &node_object("n3"), "Evict", &[]);
    assert_eq!(code, 202, "{body}");
    for n in ["n1", "n2"] {
        wait_until(&format!("n3 shown left on {n}"), 20, || {
            c.attrs(n, &node_object("n3"))
                .is_some_and(|a| a["membership"] == "left")
        });
    }
    // Its replacement, configured to join, is admitted.
    let (code, body) = c.invoke_full("n2", &node_object("n4"), "Admit", &[]);
    assert_eq!(code, 202, "{body}");
    for n in ["n1", "n2", "n4"] {
        wait_until(&format!("n4 a member as {n} sees it"), 30, || {
            c.attrs(n, &node_object("n4"))
                .is_some_and(|a| a["membership"] == "member")
        });
    }
    // Three voters again (n1, n2, n4): one more loss leaves a majority, and
    // the counter fails over. Had n3 stayed a voter, two of four would
    // not be one.
    let (primary, before) = c.primary_of("counter").unwrap();
    let victim = host_of(&primary).unwrap();
    c.kill9(victim);
    wait_until("the counter served again by the new majority", 30, || {
        c.primary_of("counter")
            .is_some_and(|(p, n)| host_of(&p) != Some(victim) && n >= before)
    });
    let survivor = ["n1", "n2"].into_iter().find(|n| *n != victim).unwrap();
    wait_until("a master among the survivors", 30, || {
        c.master(survivor)
            .is_some_and(|m| m == survivor || m == "n4")
    });
}

#[test]
fn a_node_that_hears_nobody_releases_its_primaries_and_the_majority_takes_over() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let (primary, before) = c.primary_of("counter").unwrap();
    let deaf = host_of(&primary).unwrap();
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != deaf).collect();
    // One way only: everybody still hears it, so nobody misses its
    // heartbeats; it says it let go of its roles instead.
    for o in &others {
        assert_eq!(
            c.invoke(deaf, &node_object(o), "SetDeaf", &[("Deaf", "true")]),
            202
        );
    }
    wait_until("the counter served by the majority", 20, || {
        c.primary_of("counter")
            .is_some_and(|(p, n)| host_of(&p) != Some(deaf) && n >= before)
    });
    let master_log = others
        .iter()
        .map(|o| std::fs::read_to_string(c.log(o)).unwrap())
        .collect::<String>();
    assert!(
        master_log.contains("cut off from the majority and released its roles"),
        "the majority did not declare the deaf node lost on its word"
    );
    for o in &others {
        assert_eq!(
            c.invoke(deaf, &node_object(o), "SetDeaf", &[("Deaf", "false")]),
            202
        );
    }
    wait_until("the deaf node's counterd back as secondary", 60, || {
        c.query(&primary).is_some_and(|(_, s)| s == "secondary")
    });
    wait_steady(&c);
    assert_one_primary(&checker.finish());
}

#[test]
fn seven_nodes_lose_three_at_once_and_the_four_left_serve_and_shrink_the_membership() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let extra = ["n4", "n5", "n6", "n7"];
    let mut c = Cluster::start_larger(dir.path(), false, &extra);
    let all: Vec<&str> = NODES.iter().copied().chain(extra).collect();
    wait_steady(&c);
    for seen_by in ["n1", "n7"] {
        wait_until(&format!("seven members as {seen_by} sees them"), 60, || {
            all.iter().all(|n| {
                c.attrs(seen_by, &node_object(n))
                    .is_some_and(|a| a["membership"] == "member")
            })
        });
    }
    let checker = Checker::start(&c);
    // Three at once, the counter primary's node among them: four of seven
    // are still a majority.
    let (primary, before) = c.primary_of("counter").unwrap();
    let victims = [host_of(&primary).unwrap(), "n5", "n6"];
    for v in victims {
        c.kill9(v);
    }
    wait_until("the counter served again by the four", 30, || {
        c.primary_of("counter")
            .is_some_and(|(p, n)| !victims.contains(&host_of(&p).unwrap()) && n >= before)
    });
    let survivors: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| !victims.contains(n))
        .collect();
    wait_until("the survivors agree on a master among them", 30, || {
        let m: Vec<Option<String>> = survivors.iter().map(|n| c.master(n)).collect();
        m[0].as_deref().is_some_and(|x| survivors.contains(&x)) && m.iter().all(|x| *x == m[0])
    });
    // The dead extra nodes are evicted: the membership shrinks to five.
    for v in ["n5", "n6"] {
        let (code, body) = c.invoke_full(survivors[0], &node_object(v), "Evict", &[]);
        assert_eq!(code, 202, "{body}");
    }
    for n in &survivors {
        wait_until(&format!("n5 and n6 shown left on {n}"), 30, || {
            ["n5", "n6"].iter().all(|v| {
                c.attrs(n, &node_object(v))
                    .is_some_and(|a| a["membership"] == "left")
            })
        });
    }
    assert_one_primary(&checker.finish());
}

/// The access model is the element's configuration: a rule an admin adds
/// on one node is enforced by every node, and a bearer token issued on one
/// node authenticates on all of them until it is revoked on any, after
/// which every node refuses it. The delays are printed (the goal is under
/// a second; the bound here is generous for a loaded machine).
#[test]
fn access_rules_and_revoked_tokens_reach_every_node() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let admin =
        |n: &str, m: &str, p: &str, b: &str| c.curl_as(n, "admin", "halyard-demo-admin", m, p, b);
    let shelf = "/api/v1/objects/ne=1/shelf=1";
    let relabel = |n: &str, who: &str, secret: &str, text: &str| {
        c.curl_as(
            n,
            who,
            secret,
            "PATCH",
            shelf,
            &format!(r#"{{"label":"{text}"}}"#),
        )
        .0
    };
    for n in NODES {
        assert_eq!(relabel(n, "operator", "halyard-demo", n), 200, "{n}");
    }
    for (path, body) in [
        (
            "ne=1/rulelist=no-shelves",
            r#"{"class":"AccessRuleList","groups":"operator"}"#,
        ),
        (
            "ne=1/rulelist=no-shelves/rule=labels",
            r#"{"class":"AccessRule","path":"/halyard-cluster:element/shelf/label","operations":"update","action":"deny"}"#,
        ),
    ] {
        let (code, text) = admin("n1", "PUT", &format!("/api/v1/objects/{path}"), body);
        assert!((200..300).contains(&code), "PUT {path}: {code} {text}");
    }
    let t0 = Instant::now();
    for n in NODES {
        wait_until(&format!("{n} to enforce the rule"), 30, || {
            relabel(n, "operator", "halyard-demo", "after") == 403
        });
        eprintln!(
            "rule enforced on {n} {:?} after n1 committed it",
            t0.elapsed()
        );
    }
    // A token issued on n2 works on every node.
    let (code, text) = c.curl_as(
        "n2",
        "operator",
        "halyard-demo",
        "POST",
        "/api/v1/tokens",
        "",
    );
    assert_eq!(code, 201, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (token, id) = (v["token"].as_str().unwrap(), v["id"].as_str().unwrap());
    for n in NODES {
        wait_until(&format!("{n} to take the token"), 30, || {
            c.curl_as(n, "", token, "GET", shelf, "").0 == 200
        });
    }
    let (code, text) = c.curl_as(
        "n3",
        "operator",
        "halyard-demo",
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        "",
    );
    assert_eq!(code, 204, "{text}");
    let t1 = Instant::now();
    for n in NODES {
        wait_until(&format!("{n} to refuse the revoked token"), 30, || {
            c.curl_as(n, "", token, "GET", shelf, "").0 == 401
        });
        eprintln!(
            "token refused on {n} {:?} after it was revoked on n3",
            t1.elapsed()
        );
    }

    // A user with an SSH key, added on n1, logs in with it on every node
    // (ncclient); the key deleted on n2 is refused by every node.
    let key = dir.path().join("nina_ed25519");
    halyard_tests::keygen(&key);
    let line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let user = "/api/v1/objects/ne=1/user=nina";
    let (code, text) = admin(
        "n1",
        "PUT",
        user,
        r#"{"class":"AccessUser","role":"operator"}"#,
    );
    assert_eq!(code, 201, "{text}");
    let body = format!(r#"{{"class":"AccessKey","key":"{}"}}"#, line.trim());
    let (code, text) = admin("n1", "PUT", &format!("{user}/sshkey=laptop"), &body);
    assert_eq!(code, 201, "{text}");
    let script = dir.path().join("key.py");
    std::fs::write(&script, crate::access::KEY_SCRIPT).unwrap();
    let by_key = |n: &str| {
        crate::agent::python3(
            &script,
            &[c.node(n).netconf.as_str(), "nina", key.to_str().unwrap()],
        )
        .trim()
        .to_string()
    };
    for n in NODES {
        wait_until(&format!("{n} to take nina's key"), 30, || by_key(n) == "ok");
    }
    let (code, text) = admin("n2", "DELETE", &format!("{user}/sshkey=laptop"), "");
    assert_eq!(code, 204, "{text}");
    // Each login attempt takes a second or more (python, SSH, and the
    // server's delay after a refused key): the count of attempts tells
    // whether the first one was already refused.
    let t2 = Instant::now();
    for n in NODES {
        let mut attempts = 0;
        wait_until(&format!("{n} to refuse the deleted key"), 30, || {
            attempts += 1;
            by_key(n) == "refused"
        });
        eprintln!(
            "key refused on {n} at attempt {attempts}, {:?} after it was deleted on n2",
            t2.elapsed()
        );
    }

    // SNMPv3 keys localized for each node's engine (every node shows every
    // engine ID): nina gets answers from all three; deleted, from none.
    for n in NODES {
        wait_until(&format!("every engine ID on {n}"), 30, || {
            c.curl(n, "GET", "/api/v1/classes/Node")
                .1
                .matches("\"snmp-engine-id\":\"80")
                .count()
                == NODES.len()
        });
    }
    let url = format!("http://{}", c.node("n1").http);
    let user_cli = |args: &[&str], stdin: &str| -> (bool, String) {
        let mut all = vec!["--url", url.as_str(), "--as", "admin"];
        all.extend_from_slice(args);
        crate::access::halyard_user(&[], "halyard-demo-admin", &all, stdin)
    };
    let (ok, out) = user_cli(
        &["snmp", "nina", "--auth", "SHA-384", "--priv", "AES-256"],
        "nina-auth-secret\nnina-priv-secret\n",
    );
    assert!(
        ok && out.matches("localized for").count() == NODES.len(),
        "{out}"
    );
    let snmpget = |n: &str| {
        Command::new("snmpget")
            .args(["-v3", "-l", "authPriv", "-u", "nina", "-a", "SHA-384"])
            .args([
                "-A",
                "nina-auth-secret",
                "-x",
                "AES-256",
                "-X",
                "nina-priv-secret",
            ])
            .args([
                "-t",
                "2",
                "-r",
                "0",
                "-Oqv",
                &c.node(n).snmp,
                "1.3.6.1.2.1.1.5.0",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    for n in NODES {
        wait_until(&format!("{n} to answer nina over SNMPv3"), 30, || {
            snmpget(n)
        });
    }
    let (ok, out) = user_cli(&["del", "nina"], "");
    assert!(ok, "{out}");
    let t3 = Instant::now();
    for n in NODES {
        wait_until(&format!("{n} to refuse the deleted SNMP user"), 30, || {
            !snmpget(n)
        });
        eprintln!(
            "SNMP user refused on {n} {:?} after it was deleted on n1",
            t3.elapsed()
        );
    }
}

/// A planned switch-over hands the service instance over at one instant.
/// The old primary writes checkpoints up to that instant, so a write may
/// still be on its way through the log, or not yet applied on the new
/// primary's node, when the new primary reads the state. The read fences
/// the instance through the log and returns the state as committed, so no
/// count goes back (the chaos round saw 2060 -> 2059 before the fence).
/// The new primary's node is made to lag: what it sends is delayed, so the
/// master commits with the third node and tells it late.
#[test]
fn planned_switch_overs_back_and_forth_lose_no_checkpointed_count() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let checker = Checker::start(&c);
    let impair = |n: &str, delay: &str| {
        let code = c.invoke(n, &node_object(n), "SetImpairment", &[("DelayMs", delay)]);
        assert!(
            (200..300).contains(&code),
            "SetImpairment {delay} ms on {n}: {code}"
        );
    };
    let rounds = 12;
    let mut lagging = 0;
    for round in 0..rounds {
        let (primary, _) = c.primary_of("counter").expect("a counter primary");
        let host = host_of(&primary).unwrap();
        let object = format!("{}/comp={primary}", node_object(host));
        let next = PAIRS
            .iter()
            .find(|(p, _)| *p == "counter")
            .and_then(|(_, m)| m.iter().find(|(comp, _)| *comp != primary))
            .map(|(_, node)| *node)
            .unwrap();
        let lag = c.master(host).is_some_and(|m| m != next);
        let t = Instant::now();
        if lag {
            impair(next, "40");
            lagging += 1;
        }
        // Through a node that is not the primary's host every other round:
        // the operation is decided by the master wherever it arrives.
        let via = if round % 2 == 0 {
            host
        } else {
            NODES.iter().find(|n| **n != host).unwrap()
        };
        assert_eq!(
            c.invoke(via, &object, "SwitchOver", &[]),
            202,
            "round {round}: SwitchOver of {object} through {via}"
        );
        wait_until(
            &format!("round {round}: the other member primary"),
            20,
            || {
                c.primary_of("counter")
                    .is_some_and(|(now, _)| now != primary)
            },
        );
        if lag {
            impair(next, "0");
        }
        wait_steady(&c);
        eprintln!(
            "round {round}: {primary} -> {next}, lagging {lag}, {} ms",
            t.elapsed().as_millis()
        );
        let live = checker.live.lock().unwrap().count_regressions.clone();
        assert!(
            live.is_empty(),
            "round {round}: the count went back: {live:?}"
        );
    }
    assert!(
        lagging > 0,
        "the new primary's node never lagged (it was always the master)"
    );
    // The pair keeps counting after the last hand-over.
    let (now, after) = c.primary_of("counter").unwrap();
    wait_until("the last primary counting", 10, || {
        c.query(&now).is_some_and(|(n, _)| n > after)
    });
    let r = checker.finish();
    assert!(
        r.count_regressions.is_empty(),
        "the count went back: {:?}",
        r.count_regressions
    );
    assert_one_primary(&r);
}

/// The element's notification targets (#17) are sent to by the master
/// alone, and a hardware alarm is the element's, not its host's: an alarm
/// of the shared shelf (hosted by the master) raised through a follower is
/// shown by every node and reaches a snmptrapd once, not once per node;
/// with the master killed, the survivors still show it, and its repair
/// through the next master clears it everywhere, the clearing sent once.
#[test]
fn an_element_notification_target_gets_each_notification_once_from_the_master() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), false);
    wait_steady(&c);
    let port = halyard_tests::free_port();
    let trapd = crate::agent::TrapD::start(port);
    let master = wait_master(&c, "n1");
    let via = *NODES.iter().find(|n| **n != master).unwrap();
    let (code, body) = c.curl_as(
        via,
        "admin",
        "halyard-demo-admin",
        "PUT",
        "/api/v1/objects/ne=1/notifytarget=noc",
        &format!(
            r#"{{"class":"NotificationTarget","address":"127.0.0.1:{port}","community":"public"}}"#
        ),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    // Every node applies it and its SNMP face re-reads within 250 ms.
    std::thread::sleep(Duration::from_millis(1500));
    let fan = "ne=1/shelf=1/fan=1";
    let count = |what: &str| {
        trapd
            .text()
            .matches(&format!("hcAlarm{what}Resource.0 = STRING: {fan}"))
            .count()
    };
    let active_on = |c: &Cluster, n: &str| {
        let (_, body) = c.curl(n, "GET", "/api/v1/classes/Alarm");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["attributes"]["resource"] == fan)
            .filter(|a| a["attributes"]["severity"] != "cleared")
            .count()
    };
    let (code, body) = c.invoke_full(via, fan, "InjectFault", &[("Fault", "fan-stall")]);
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until("the alarm trap", 20, || count("Raised") >= 1);
    for n in NODES {
        wait_until(&format!("the alarm shown by {n}"), 20, || {
            active_on(&c, n) == 1
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        count("Raised"),
        1,
        "sent by more than one node: {}",
        trapd.text()
    );

    let (survivors, new_master) = kill_the_master(&mut c, &master);
    // The new master's role reaches its SNMP face within 250 ms.
    wait_until("the new master shown as master", 20, || {
        c.attrs(&new_master, &node_object(&new_master))
            .is_some_and(|a| a["role"] == "master")
    });
    std::thread::sleep(Duration::from_millis(1000));
    for n in &survivors {
        assert_eq!(active_on(&c, n), 1, "{n} lost the alarm with the master");
    }
    let (code, body) = c.invoke_full(survivors[0], fan, "InjectFault", &[("Fault", "repair")]);
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until("the clearing trap from the new master", 20, || {
        count("Cleared") >= 1
    });
    for n in &survivors {
        wait_until(&format!("the alarm cleared on {n}"), 20, || {
            active_on(&c, n) == 0
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        count("Cleared"),
        1,
        "sent by more than one node: {}",
        trapd.text()
    );
    assert_eq!(count("Raised"), 1, "raised again: {}", trapd.text());
}
