//! Software upgrades of the three-node example, every node under its boot
//! supervisor (`halyard boot`), releases on a load-server directory: a
//! rolling upgrade, a release that crashes at start-up and is rolled back
//! by the fail-safe commit, a split-mode upgrade and COpCo's arbitration
//! against it. The checker samples every 2N member's own role at 100 Hz
//! or more throughout: never two primaries, and no gap but the brief
//! hand-over of a switch-over.

use halyard_tests::{
    CheckReport, Checker, Cluster, NODES, make_hanging_release, make_release, wait_until,
};

use crate::cluster::{assert_one_primary, node_object, serial, wait_steady};

/// `python3 -m http.server` serving a load-server directory; killed on drop.
struct HttpLoadServer {
    child: std::process::Child,
    url: String,
}

impl HttpLoadServer {
    fn start(dir: &std::path::Path) -> HttpLoadServer {
        let port = halyard_tests::free_port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let url = format!("http://127.0.0.1:{port}");
        wait_until("the HTTP load server", 20, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        HttpLoadServer { child, url }
    }
}

impl Drop for HttpLoadServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example under `halyard boot` on release 1, with `releases` on the
/// load server (`(version, crashes at start-up)`), steady and reporting.
fn upgradable(
    dir: &std::path::Path,
    releases: &[(&str, bool)],
    http: bool,
) -> (Cluster, Option<HttpLoadServer>) {
    let ls = dir.join("load-server");
    for (v, crash) in releases {
        make_release(false, &ls, v, *crash);
    }
    let server = http.then(|| HttpLoadServer::start(&ls));
    let url = server
        .as_ref()
        .map_or_else(|| ls.display().to_string(), |s| s.url.clone());
    let c = Cluster::start_upgradable(dir, false, &url);
    wait_steady(&c);
    wait_until("every node reports release 1 committed", 60, || {
        c.on_release("1")
    });
    (c, server)
}

/// The campaign as the first node that answers shows it.
fn campaign(c: &Cluster, id: u32) -> Option<serde_json::Value> {
    NODES
        .iter()
        .find_map(|n| c.attrs(n, &format!("ne=1/campaign={id}")))
}

fn campaign_state(c: &Cluster, id: u32) -> String {
    campaign(c, id)
        .map(|a| format!("{} ({})", a["state"], a["detail"]))
        .unwrap_or_default()
}

/// Waits for the campaign to end and returns its final state.
fn finished(c: &Cluster, id: u32, secs: u64) -> serde_json::Value {
    let mut last = String::new();
    wait_until(&format!("campaign {id} to finish"), secs, || {
        let s = campaign_state(c, id);
        if s != last {
            eprintln!("campaign {id}: {s}");
            last = s.clone();
        }
        campaign(c, id).is_some_and(|a| a["state"] != "running" && a["state"] != "paused")
    });
    campaign(c, id).unwrap()
}

/// Every pair had exactly one primary at every sample, at 100 Hz or more:
/// its switch-overs are timed, the old primary stepping down at the very
/// instant its standby takes over.
fn assert_handed_over(r: &CheckReport) {
    assert_one_primary(r);
    eprintln!(
        "checker: {} samples at {:.0} Hz; samples without a primary {:?}; longest gaps {:?}",
        r.samples,
        r.rate_hz(),
        r.without_primary,
        r.longest_gap
    );
    assert!(
        r.without_primary.is_empty(),
        "samples without a primary: {:?}; longest gaps {:?}; the first: {:#?}",
        r.without_primary,
        r.longest_gap,
        r.gap_samples
    );
}

#[test]
fn a_rolling_upgrade_hands_every_pair_over_and_a_release_that_crashes_is_rolled_back() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = upgradable(
        dir.path(),
        &[("1", false), ("2", false), ("3", true)],
        false,
    );
    let checker = Checker::start(&c);

    // An unknown release and an unknown method are refused with the reason.
    let (code, body) = c.invoke_full(
        "n1",
        "ne=1",
        "Upgrade",
        &[("Release", "9"), ("Method", "rolling")],
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not on the load server"), "{body}");

    let (code, body) = c.invoke_full(
        "n2",
        "ne=1",
        "Upgrade",
        &[("Release", "2"), ("Method", "rolling")],
    );
    assert_eq!(code, 202, "{body}");
    // A second campaign while the first runs: COpCo refuses it, naming it.
    let (code, body) = c.invoke_full(
        "n3",
        "ne=1",
        "Upgrade",
        &[("Release", "2"), ("Method", "reboot")],
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("campaign 1"), "{body}");

    let done = finished(&c, 1, 400);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["steps-done"], done["steps-total"], "{done}");
    wait_until("every node on release 2, committed", 60, || {
        c.on_release("2")
    });
    for n in NODES {
        assert_eq!(
            c.attrs(n, "ne=1").unwrap()["software-version"],
            "2",
            "the element's committed release as {n} shows it"
        );
    }
    wait_steady(&c);
    // Every node serves the releases it holds to its peers (propagation
    // copies from the node that fetched): the manifest and its files only.
    let (code, body) = c.curl("n3", "GET", "/releases/2/manifest.json");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"bin/halyard\""), "{body}");
    let (code, _) = c.curl("n3", "GET", "/releases/2/etc/release.txt");
    assert_eq!(code, 200);
    for path in [
        "/releases/2/slots.json",
        "/releases/2/../slots.json",
        "/releases/9/manifest.json",
    ] {
        assert_eq!(c.curl("n3", "GET", path).0, 404, "{path}");
    }

    // Release 3 crashes at start-up: the first node's supervisor falls back
    // to release 2 by itself, and the campaign rolls back.
    let (code, body) = c.invoke_full(
        "n1",
        "ne=1",
        "Upgrade",
        &[("Release", "3"), ("Method", "rolling")],
    );
    assert_eq!(code, 202, "{body}");
    let done = finished(&c, 2, 400);
    assert_eq!(done["state"], "rolled-back", "{done}");
    assert!(
        done["detail"].as_str().unwrap().contains("release 3"),
        "the reason names the failed release: {done}"
    );
    wait_until("every node back on release 2, committed", 60, || {
        c.on_release("2")
    });
    let fell_back: Vec<String> = NODES
        .iter()
        .filter_map(|n| c.attrs("n1", &node_object(n)))
        .filter_map(|a| a["fallback"].as_str().map(str::to_string))
        .filter(|f| f.contains("release 3"))
        .collect();
    assert_eq!(
        fell_back.len(),
        1,
        "one node tried release 3: {fell_back:?}"
    );
    let release3 = c.attrs("n2", "ne=1/release=3").unwrap();
    assert_eq!(release3["state"], "failed", "{release3}");
    wait_steady(&c);
    assert_handed_over(&checker.finish());
}

#[test]
fn a_split_mode_upgrade_hands_every_pair_over_and_copco_refuses_a_power_off_meanwhile() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    // Releases come from an HTTP load server (python's http.server).
    let (c, _server) = upgradable(dir.path(), &[("1", false), ("2", false)], true);
    let checker = Checker::start(&c);
    let (code, body) = c.invoke_full(
        "n1",
        "ne=1",
        "Upgrade",
        &[("Release", "2"), ("Method", "splitMode")],
    );
    assert_eq!(code, 202, "{body}");
    // Powering the shelf off in the middle of it is refused, with the reason.
    let (code, body) = c.invoke_full("n2", "ne=1/shelf=1", "Lock", &[("Reason", "power-off")]);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("upgrade campaign 1"), "{body}");
    let done = finished(&c, 1, 400);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["method"], "split-mode", "{done}");
    wait_until("every node on release 2, committed", 60, || {
        c.on_release("2")
    });
    wait_steady(&c);
    assert_handed_over(&checker.finish());
    // Once it is over, the shelf is free again.
    let (code, body) = c.invoke_full("n2", "ne=1/shelf=1", "Lock", &[("Reason", "power-off")]);
    assert_eq!(code, 202, "{body}");
}

/// The campaign table over SNMP, walked with HALYARD-CLUSTER-MIB.
fn snmp_campaigns(c: &Cluster, node: &str) -> String {
    let base = std::env::var("HALYARD_BASE_MIBS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/halyard-npm/node_modules/net-snmp/lib/mibs",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let mibs = format!(
        "+{}:{base}",
        halyard_tests::workspace().join("mib").display()
    );
    let out = std::process::Command::new("snmpwalk")
        .args(["-v2c", "-c", "public", "-t", "5", "-r", "2"])
        .args(["-m", "+HALYARD-CLUSTER-MIB", "-M", &mibs])
        .arg(&c.nodes.iter().find(|n| n.name == node).unwrap().snmp)
        .arg("HALYARD-CLUSTER-MIB::hcCampTable")
        .output()
        .expect("snmpwalk");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The campaign's name, state and step count over NETCONF (ncclient).
fn netconf_campaign(c: &Cluster, node: &str) -> String {
    c.netconf_list(node, "upgrade-campaign", &["name", "state", "steps-done"])
        .iter()
        .map(|v| v.join(" ") + "\n")
        .collect()
}

#[test]
fn an_operator_pauses_resumes_and_rolls_back_a_campaign_and_every_face_shows_it() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = upgradable(dir.path(), &[("1", false), ("2", false)], false);
    let (code, body) = c.invoke_full(
        "n3",
        "ne=1",
        "Upgrade",
        &[("Release", "2"), ("Method", "rolling")],
    );
    assert_eq!(code, 202, "{body}");
    wait_until("n1 shows the campaign", 10, || {
        c.attrs("n1", "ne=1/campaign=1").is_some()
    });
    let (code, body) = c.invoke_full("n1", "ne=1/campaign=1", "Pause", &[]);
    assert_eq!(code, 202, "{body}");
    // The serving node shows it at once; the others within a tick.
    let paused = c.attrs("n1", "ne=1/campaign=1").unwrap();
    assert_eq!(paused["state"], "paused", "{paused}");
    wait_until("every node shows the campaign paused", 10, || {
        NODES.iter().all(|n| {
            c.attrs(n, "ne=1/campaign=1")
                .is_some_and(|a| a["state"] == "paused")
        })
    });
    let paused = c.attrs("n1", "ne=1/campaign=1").unwrap();
    // Paused: no step moves on.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let still = campaign(&c, 1).unwrap();
    assert_eq!(still["steps-done"], paused["steps-done"], "{still}");
    // Every face shows the paused campaign.
    let walk = snmp_campaigns(&c, "n2");
    assert!(
        walk.contains("hcCampState") && walk.contains("paused"),
        "{walk}"
    );
    let nc = netconf_campaign(&c, "n1");
    assert!(nc.contains("ne=1/campaign=1 paused"), "{nc}");

    let (code, body) = c.invoke_full("n2", "ne=1/campaign=1", "Resume", &[]);
    assert_eq!(code, 202, "{body}");
    // Once the first node runs release 2 (uncommitted), roll back.
    wait_until("a node on trial release 2", 120, || {
        NODES.iter().any(|n| {
            c.attrs("n1", &node_object(n))
                .is_some_and(|a| a["software-version"] == "2" && a["committed-version"] == "1")
        })
    });
    let (code, body) = c.invoke_full("n1", "ne=1/campaign=1", "Rollback", &[]);
    assert_eq!(code, 202, "{body}");
    let done = finished(&c, 1, 300);
    assert_eq!(done["state"], "rolled-back", "{done}");
    assert!(
        done["detail"]
            .as_str()
            .unwrap()
            .contains("rollback requested by operator"),
        "{done}"
    );
    wait_until("every node back on release 1, committed", 60, || {
        c.on_release("1")
    });
    let walk = snmp_campaigns(&c, "n3");
    assert!(walk.contains("rolledBack"), "{walk}");
    // The lock is released: a new campaign may start.
    let (code, body) = c.invoke_full(
        "n2",
        "ne=1",
        "Upgrade",
        &[("Release", "2"), ("Method", "reboot")],
    );
    assert_eq!(code, 202, "{body}");
    let done = finished(&c, 2, 300);
    assert_eq!(done["state"], "succeeded", "{done}");
    wait_until("every node on release 2, committed", 60, || {
        c.on_release("2")
    });
    // And Prometheus: the campaign's state set and its steps.
    let (_, metrics) = c.curl("n1", "GET", "/metrics");
    assert!(
        metrics.lines().any(|l| l.contains("upgrade_campaign_state")
            && l.contains("ne=1/campaign=2")
            && l.contains("\"succeeded\"")
            && l.ends_with(" 1")),
        "no succeeded state for campaign 2 in /metrics"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("upgrade_campaign_steps_done") && l.contains("ne=1/campaign=2")),
        "no steps gauge for campaign 2 in /metrics"
    );
}

#[test]
fn a_release_that_never_becomes_healthy_is_ended_by_the_watchdog_and_rolled_back() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = upgradable(dir.path(), &[("1", false)], false);
    make_hanging_release(&dir.path().join("load-server"), "4");
    let (code, body) = c.invoke_full(
        "n1",
        "ne=1",
        "Upgrade",
        &[("Release", "4"), ("Method", "rolling")],
    );
    assert_eq!(code, 202, "{body}");
    // The test config's watchdog is 20 s.
    let done = finished(&c, 1, 300);
    assert_eq!(done["state"], "rolled-back", "{done}");
    assert!(
        done["detail"].as_str().unwrap().contains("watchdog"),
        "the reason is the watchdog: {done}"
    );
    wait_until("every node back on release 1, committed", 60, || {
        c.on_release("1")
    });
    wait_steady(&c);
}
