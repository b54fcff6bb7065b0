//! Proxies for non-peer nodes (FIG. 8) with the real `halyard` binary and
//! a real OpenSSH server standing in for the non-peer node.

use std::path::Path;

use halyard_tests::{RemoteServices, Sshd, remote_service_pid, remote_service_toml};

use crate::agent::{Agent, HC, get, index_of, wait_until};

const NP: &str = "ne=1/node=np1";
const PROXY: &str = "ne=1/node=a/comp=proxy-np1";
const APP_CONF: &str = "# from the repository\nthreshold = 5\nname = \"np 1\"\n";

fn config(sshd: &Sshd, remote: &Path) -> String {
    format!(
        r#"[agent]
node = "a"

[snmp]
communities = [{{ name = "public" }}]

[netconf]
users = [{{ name = "operator", password = "halyard-demo" }}]

[http]
users = [{{ name = "operator", password = "halyard-demo", role = "operator" }}]

[element]
name = "1"

[[node]]
name = "a"

{np}
[[node.file]]
path = "{remote}/etc/app.conf"
contents = {conf}

[[node.file]]
path = "{remote}/etc/motd"
source = "{remote}.motd"

[[service_group]]
name = "np1-proxy"
model = "no-redundancy"
first_recovery = "hot-restart"
max_restarts = 10
service_instances = ["np1"]

[[component]]
name = "proxy-np1"
node = "a"
group = "np1-proxy"
kind = "proxy"
target = "np1"
{service}audit_period_ms = 300
stats_period_ms = 300
"#,
        np = sshd.node_toml("np1"),
        remote = remote.display(),
        conf = serde_json::to_string(APP_CONF).unwrap(),
        service = remote_service_toml(remote),
    )
}

fn attrs(a: &Agent, object: &str) -> Option<serde_json::Value> {
    let (code, body) = a.curl("GET", &format!("/api/v1/objects/{object}"), None);
    (code == 200)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap()["attributes"].clone())
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The severity of the node's highTemperature alarm, if there is one.
fn np_alarm(a: &Agent) -> Option<String> {
    let (code, body) = a.curl("GET", "/api/v1/alarms", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["objects"].as_array().unwrap().iter().find_map(|o| {
        let at = &o["attributes"];
        (at["resource"] == NP && at["probable-cause"] == "high-temperature")
            .then(|| text(&at["severity"]))
    })
}

#[test]
fn a_proxy_manages_a_non_peer_node_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let remote = dir.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let _services = RemoteServices(remote.clone());
    // A file given by its source on the peer node, read when the agent starts.
    std::fs::write(remote.with_extension("motd"), "welcome to np1\n").unwrap();
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(&cfg, config(&sshd, &remote)).unwrap();
    let a = Agent::start_with(&dir.path().join("data"), Some(cfg));

    // Started over SSH: the service runs on the "remote", with the
    // repository's configuration written there first.
    wait_until("the remote service to run", || {
        remote_service_pid(&remote).is_some()
    });
    assert_eq!(
        std::fs::read_to_string(remote.join("etc/app.conf")).unwrap(),
        APP_CONF
    );
    assert_eq!(
        std::fs::read_to_string(remote.join("etc/motd")).unwrap(),
        "welcome to np1\n"
    );
    let first = remote_service_pid(&remote).unwrap();
    wait_until("the proxy to be primary", || {
        attrs(&a, PROXY).is_some_and(|p| p["availability-state"] == "primary")
    });
    let p = attrs(&a, PROXY).unwrap();
    assert_eq!(p["kind"], "proxy", "{p}");
    let np = attrs(&a, NP).unwrap();
    assert_eq!(np["kind"], "non-peer", "{np}");
    assert_eq!(np["proxied-by"], "a", "{np}");
    assert_eq!(np["address"], "127.0.0.1", "{np}");

    // Statistics relayed: one start so far.
    wait_until("the relayed statistic", || {
        attrs(&a, &format!("{NP}/stat=sessions"))
            .is_some_and(|s| text(&s["value"]) == "1.000" || text(&s["value"]) == "1")
    });
    let s = attrs(&a, &format!("{NP}/stat=sessions")).unwrap();
    assert_eq!(s["resource"], NP, "{s}");
    assert_eq!(s["unit"], "count", "{s}");
    // Alarms relayed: raised while the node says so, cleared after.
    assert_eq!(np_alarm(&a), None);
    std::fs::write(remote.join("hot"), "").unwrap();
    wait_until("the relayed alarm", || {
        np_alarm(&a).as_deref() == Some("major")
    });
    std::fs::remove_file(remote.join("hot")).unwrap();
    wait_until("the relayed alarm to clear", || {
        np_alarm(&a).as_deref() == Some("cleared")
    });

    // The same over SNMP: the non-peer node's row and its statistic.
    let i = index_of(&a, NP);
    assert_eq!(
        get(&a, &format!("{HC}.1.3.1.44.{i}")),
        "a",
        "ProxiedBy over SNMP"
    );
    index_of(&a, &format!("{NP}/stat=sessions"));

    // The remote service dies: the health audit fails, the proxy is
    // restarted (a new incarnation) and starts the service again.
    std::fs::write(remote.join("etc/app.conf"), "changed on the node").unwrap();
    let restarts =
        |a: &Agent| attrs(a, PROXY).map_or(0, |p| text(&p["restarts"]).parse::<u64>().unwrap_or(0));
    assert_eq!(restarts(&a), 0);
    halyard_tests::kill9(&first.to_string());
    wait_until("the proxy to restart the remote service", || {
        remote_service_pid(&remote).is_some_and(|p| p != first)
    });
    wait_until("the restart to be counted", || restarts(&a) >= 1);
    let starts = std::fs::read_to_string(remote.join("starts")).unwrap();
    assert_eq!(
        starts.lines().collect::<Vec<_>>(),
        ["1", "2"],
        "incarnations started"
    );
    // A restart pushes the repository's configuration again.
    assert_eq!(
        std::fs::read_to_string(remote.join("etc/app.conf")).unwrap(),
        APP_CONF
    );
    wait_until("the proxy to be primary again", || {
        attrs(&a, PROXY).is_some_and(|p| p["availability-state"] == "primary")
    });
    wait_until("the statistic to follow", || {
        attrs(&a, &format!("{NP}/stat=sessions"))
            .is_some_and(|s| text(&s["value"]).starts_with('2'))
    });
    // Locked, the proxy leaves its role (like a process, it stops
    // nothing: the service runs on, unmanaged); unlocked, it takes the
    // node over again.
    let running = remote_service_pid(&remote).unwrap();
    let op = |op: &str, body: Option<&str>| {
        let (code, reply) = a.curl(
            "POST",
            &format!("/api/v1/objects/{PROXY}/operations/{op}"),
            body,
        );
        assert!((200..300).contains(&code), "{op}: {code} {reply}");
    };
    op("lock", Some(r#"{"reason":"maintenance of np1"}"#));
    wait_until("the locked proxy to leave its role", || {
        attrs(&a, PROXY).is_some_and(|p| p["availability-state"] != "primary")
            && attrs(&a, NP).is_some_and(|n| n["proxied-by"] == "")
    });
    assert_eq!(remote_service_pid(&remote), Some(running));
    op("unlock", None);
    wait_until("the proxy to be primary after the unlock", || {
        attrs(&a, PROXY).is_some_and(|p| p["availability-state"] == "primary")
            && attrs(&a, NP).is_some_and(|n| n["proxied-by"] == "a")
    });
    assert_eq!(remote_service_pid(&remote), Some(running));
    drop(a);
    // The service outlives the agent (another proxy, or the next start,
    // takes it over as it runs).
    assert_eq!(remote_service_pid(&remote), Some(running));
    // (`_services` kills it at the end.)
}

/// The proxy pair of the cluster test: (component, host node).
const PAIR: [(&str, &str); 2] = [("proxy-n1", "n1"), ("proxy-n2", "n2")];

fn cluster_extra(sshd: &Sshd, remote: &Path) -> String {
    let mut t = format!(
        "{np}\n[[node.file]]\npath = \"{remote}/etc/app.conf\"\ncontents = {conf}\n\n\
         [[service_group]]\nname = \"np1-proxy\"\nmodel = \"2n\"\nfirst_recovery = \"fail-over\"\n\
         service_instances = [\"np1\"]\n",
        np = sshd.node_toml("np1"),
        remote = remote.display(),
        conf = serde_json::to_string(APP_CONF).unwrap(),
    );
    for (comp, host) in PAIR {
        t.push_str(&format!(
            "\n[[component]]\nname = \"{comp}\"\nnode = \"{host}\"\ngroup = \"np1-proxy\"\n\
             kind = \"proxy\"\ntarget = \"np1\"\n{}audit_period_ms = 300\nstats_period_ms = 500\n",
            remote_service_toml(remote)
        ));
    }
    t
}

/// The proxy a node says is primary, and the np1 object's ProxiedBy there.
fn proxy_view(c: &halyard_tests::Cluster, node: &str) -> Option<(String, String)> {
    let primary = PAIR.iter().find(|(comp, host)| {
        c.attrs(node, &format!("ne=1/shelf=1/node={host}/comp={comp}"))
            .is_some_and(|a| a["availability-state"] == "primary")
    })?;
    let np = c.attrs(node, NP)?;
    Some((primary.1.to_string(), text(&np["proxied-by"])))
}

#[test]
fn the_proxy_fails_over_to_another_peer_node_when_its_host_is_killed() {
    let _one = crate::cluster::serial();
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let remote = dir.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let _services = RemoteServices(remote.clone());
    let mut c =
        halyard_tests::Cluster::start_extended(dir.path(), false, &cluster_extra(&sshd, &remote));
    halyard_tests::wait_until("the remote service to run", 60, || {
        remote_service_pid(&remote).is_some()
    });
    // Every node knows which peer node proxies np1.
    let mut host = String::new();
    halyard_tests::wait_until("every node to name the primary proxy's host", 30, || {
        let views: Vec<_> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| proxy_view(&c, n))
            .collect();
        match &views[0] {
            Some((h, by)) if h == by && views.iter().all(|v| v == &views[0]) => {
                host = h.clone();
                true
            }
            _ => false,
        }
    });
    let other = if host == "n1" { "n2" } else { "n1" };
    // Relayed alarms are committed to the log: every node shows them.
    let alarm_on = |node: &str| -> Option<String> {
        let (code, body) = c.curl(node, "GET", "/api/v1/alarms");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["objects"].as_array().unwrap().iter().find_map(|o| {
            let at = &o["attributes"];
            (at["resource"] == NP && at["probable-cause"] == "high-temperature")
                .then(|| text(&at["severity"]))
        })
    };
    std::fs::write(remote.join("hot"), "").unwrap();
    halyard_tests::wait_until("the relayed alarm on every node", 30, || {
        ["n1", "n2", "n3"]
            .iter()
            .all(|n| alarm_on(n).as_deref() == Some("major"))
    });
    std::fs::remove_file(remote.join("hot")).unwrap();
    halyard_tests::wait_until("the relayed alarm cleared on every node", 30, || {
        ["n1", "n2", "n3"]
            .iter()
            .all(|n| alarm_on(n).as_deref() == Some("cleared"))
    });
    let service = remote_service_pid(&remote).unwrap();
    assert_eq!(
        std::fs::read_to_string(remote.join("etc/app.conf")).unwrap(),
        APP_CONF
    );
    // Edited on the node meanwhile: the new primary pushes it again.
    std::fs::write(remote.join("etc/app.conf"), "edited on the node").unwrap();

    c.kill9(&host);
    halyard_tests::wait_until("the other proxy to take np1 over", 30, || {
        ["n3", other]
            .iter()
            .all(|n| proxy_view(&c, n) == Some((other.to_string(), other.to_string())))
    });
    halyard_tests::wait_until("the configuration pushed by the new primary", 10, || {
        std::fs::read_to_string(remote.join("etc/app.conf")).is_ok_and(|t| t == APP_CONF)
    });
    // The service kept running through the fail-over (start is idempotent).
    assert_eq!(remote_service_pid(&remote), Some(service));
    // And the new primary manages it: killed, it is started again.
    halyard_tests::kill9(&service.to_string());
    halyard_tests::wait_until("the new primary to start the service again", 30, || {
        remote_service_pid(&remote).is_some_and(|p| p != service)
    });
    // The relayed statistic shows on the proxy's node.
    halyard_tests::wait_until("the relayed statistic on the new host", 30, || {
        c.attrs(other, &format!("{NP}/stat=sessions")).is_some()
    });
}

#[test]
fn broken_proxy_configs_are_reported_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "not checked here").unwrap();
    let head = "[element]\nname = \"1\"\n[[node]]\nname = \"a\"\n[[service_group]]\nname = \"g\"\nmodel = \"2n\"\nservice_instances = [\"1\"]\n";
    let np = format!(
        "[[node]]\nname = \"np\"\nnon_peer = true\nssh = {{ key = \"{}\" }}\n",
        key.display()
    );
    let comp = "[[component]]\nname = \"p\"\nnode = \"a\"\ngroup = \"g\"\nkind = \"proxy\"\ncommand = [\"true\"]\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no-target.toml",
            format!("{head}{np}{comp}"),
            ":14:8: error: found a proxy without a target",
        ),
        (
            "peer-target.toml",
            format!("{head}{np}{comp}target = \"a\"\n"),
            ":19:10: error: found peer node \"a\" as a proxy's target",
        ),
        (
            "non-peer-host.toml",
            format!(
                "{head}{np}{}target = \"np\"\n",
                comp.replace("node = \"a\"", "node = \"np\"")
            ),
            ":15:8: error: found non-peer node \"np\" as a proxy's host",
        ),
        (
            "no-ssh.toml",
            format!("{head}[[node]]\nname = \"np\"\nnon_peer = true\n{comp}target = \"np\"\n"),
            ":18:10: error: found target node \"np\" without ssh access",
        ),
        (
            "missing-key.toml",
            format!(
                "{head}[[node]]\nname = \"np\"\nnon_peer = true\nssh = {{ key = \"/nonexistent/key\" }}\n"
            ),
            ":12:15: error: cannot read key /nonexistent/key",
        ),
        (
            "bad-host-key.toml",
            format!(
                "{head}[[node]]\nname = \"np\"\nnon_peer = true\nssh = {{ host_key = \"MD5:aa\", key = \"{}\" }}\n",
                key.display()
            ),
            ":12:20: error: found host key \"MD5:aa\", expected a fingerprint SHA256:",
        ),
        (
            "relative-file.toml",
            format!("{head}{np}[[node.file]]\npath = \"etc/app.conf\"\ncontents = \"x\"\n"),
            ":14:8: error: found file path \"etc/app.conf\", expected an absolute path",
        ),
        (
            "target-on-process.toml",
            format!(
                "{head}{}target = \"a\"\n",
                comp.replace("\"proxy\"", "\"process\"")
            ),
            ":15:10: error: found target on a component that is not a proxy",
        ),
    ];
    for (file, text, want) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, &text).unwrap();
        let out = std::process::Command::new(halyard_tests::halyard(false))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        let expected = format!("{}{want}", path.display());
        assert!(
            err.lines().any(|l| l.starts_with(&expected)),
            "{file}: expected a line starting with\n  {expected}\ngot:\n{err}\n{text}"
        );
    }
}

/// A 2N pair of processes beside a proxy whose non-peer node hangs (its
/// sshd and sessions stopped with SIGSTOP, remote calls allowed 20 s): the
/// pair's fail-over keeps its usual time, because no decision of the core
/// waits on a proxy's SSH calls (#15 item 2).
#[test]
fn a_hanging_ssh_target_does_not_slow_a_process_fail_over_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let remote = dir.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let _services = RemoteServices(remote.clone());
    std::fs::write(remote.with_extension("motd"), "welcome to np1\n").unwrap();
    let mut toml = config(&sshd, &remote).replace(
        "stats_period_ms = 300\n",
        "stats_period_ms = 300\ntimeout_ms = 20000\n",
    );
    toml.push_str(
        r#"
[[service_group]]
name = "pair"
model = "2n"
first_recovery = "fail-over"
service_instances = ["work"]

[[component]]
name = "p1"
node = "a"
group = "pair"
kind = "process"
command = ["sleep", "100000"]

[[component]]
name = "p2"
node = "a"
group = "pair"
kind = "process"
command = ["sleep", "100000"]
"#,
    );
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(&cfg, toml).unwrap();
    let a = Agent::start_with(&dir.path().join("data"), Some(cfg));
    let member = |c: &str| format!("ne=1/node=a/comp={c}");
    let state = |c: &str| attrs(&a, &member(c)).map(|p| text(&p["availability-state"]));
    let primary = || {
        ["p1", "p2"]
            .into_iter()
            .find(|c| state(c).as_deref() == Some("primary"))
    };
    wait_until("the proxy and the pair to be in service", || {
        attrs(&a, PROXY).is_some_and(|p| p["availability-state"] == "primary")
            && primary().is_some()
            && ["p1", "p2"]
                .iter()
                .all(|c| matches!(state(c).as_deref(), Some("primary" | "secondary")))
    });
    // Kills the pair's primary; the time until the other one is primary.
    let fail_over = || {
        let victim = primary().unwrap();
        let other = if victim == "p1" { "p2" } else { "p1" };
        // Its pid reads 0 between incarnations: wait for the running one.
        let mut pid = String::new();
        wait_until("the primary's pid", || {
            pid = text(&attrs(&a, &member(victim)).unwrap()["pid"]);
            pid.parse::<u32>().is_ok_and(|p| p > 1)
        });
        let began = std::time::Instant::now();
        halyard_tests::kill9(&pid);
        wait_until("the other member to take over", || {
            state(other).as_deref() == Some("primary")
        });
        let took = began.elapsed();
        wait_until("the victim to be back as secondary", || {
            state(victim).as_deref() == Some("secondary")
        });
        took
    };
    let usual = fail_over();
    // The non-peer node stalls: every SSH call of the proxy (audit every
    // 300 ms, statistics) now hangs for up to 20 s.
    sshd.signal_all("-STOP");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stalled = fail_over();
    sshd.signal_all("-CONT");
    eprintln!("process fail-over: {usual:?} usually, {stalled:?} beside a hanging SSH target");
    assert!(
        stalled < std::time::Duration::from_secs(5),
        "a fail-over took {stalled:?} while a proxy's target hung (usually {usual:?})"
    );
}
