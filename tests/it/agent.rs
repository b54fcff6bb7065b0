//! The real `halyard` binary on the demo element, driven by real clients:
//! net-snmp's tools and curl.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halyard_tests::{V3, free_port};
pub(crate) const HC: &str = "1.3.6.1.4.1.32473.77";

pub(crate) use halyard_tests::workspace;

/// Builds the binary once (a no-op when `cargo test --workspace` built it).
fn halyard() -> PathBuf {
    halyard_tests::halyard(false)
}

pub(crate) struct Agent {
    child: Option<Child>,
    data: PathBuf,
    config: Option<PathBuf>,
    /// Further arguments on the command line.
    extra: Vec<String>,
    /// Every line the agent logged.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub(crate) snmp: String,
    pub(crate) http: String,
    pub(crate) netconf: String,
}

impl Agent {
    pub(crate) fn start(data: &Path) -> Agent {
        Self::start_with(data, None)
    }

    pub(crate) fn start_with(data: &Path, config: Option<PathBuf>) -> Agent {
        Self::start_args(data, config, &[])
    }

    pub(crate) fn start_args(data: &Path, config: Option<PathBuf>, extra: &[&str]) -> Agent {
        Self::start_http_on(data, config, extra, "127.0.0.1")
    }

    /// An agent whose HTTP face listens on `http_ip` (a free port).
    pub(crate) fn start_http_on(
        data: &Path,
        config: Option<PathBuf>,
        extra: &[&str],
        http_ip: &str,
    ) -> Agent {
        let (snmp, http, netconf) = (
            format!("127.0.0.1:{}", free_port()),
            format!("{http_ip}:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let mut a = Agent {
            child: None,
            data: data.to_path_buf(),
            config,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            log: Default::default(),
            snmp,
            http,
            netconf,
        };
        a.spawn();
        a
    }

    /// The agent's command line.
    fn command(&self) -> Command {
        let mut cmd = Command::new(halyard());
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--data-dir")
            .arg(&self.data)
            .args([
                "--snmp-listen",
                &self.snmp,
                "--http-listen",
                &self.http,
                "--netconf-listen",
                &self.netconf,
            ])
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    pub(crate) fn spawn(&mut self) {
        let mut child = self.command().spawn().expect("start halyard");
        // The ready line is logged once every face listens.
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains(" ready ") {
                    let _ = tx.send(line.clone());
                }
                log.lock().unwrap().push(line);
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("halyard logged no ready line within 60 s");
        assert!(
            ready.contains("snmp udp") && ready.contains("netconf ssh") && ready.contains("http"),
            "{ready}"
        );
        self.child = Some(child);
    }

    /// Runs a net-snmp tool: options, then this agent, then `rest`.
    pub(crate) fn snmp(&self, tool: &str, opts: &[&str], rest: &[&str]) -> (bool, String) {
        let out = Command::new(tool)
            .args(opts)
            .arg(&self.snmp)
            .args(rest)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    pub(crate) fn walk(&self, oid: &str) -> Vec<(String, String)> {
        let o = Command::new("snmpbulkwalk")
            .args([
                "-v2c", "-c", "public", "-On", "-Oq", "-Oe", "-t", "5", "-r", "3", &self.snmp, oid,
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "snmpbulkwalk {oid}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.trim_matches('"').to_string()))
            })
            .collect()
    }

    pub(crate) fn curl(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "-u",
            "operator:halyard-demo",
            "-H",
            "Accept: application/json",
        ]);
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "-d", b]);
        }
        let out = c
            .arg(format!("http://{}{path}", self.http))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The lines the agent logged so far that contain `needle`.
    pub(crate) fn logged(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub(crate) fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "halyard did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            halyard_tests::kill_tree(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// index -> persistent name, from hcObjectTable.
fn names(a: &Agent) -> Vec<(String, String)> {
    a.walk(&format!("{HC}.1.100.1.3"))
        .into_iter()
        .map(|(oid, name)| (oid.rsplit('.').next().unwrap().to_string(), name))
        .collect()
}

pub(crate) fn index_of(a: &Agent, name: &str) -> String {
    names(a)
        .into_iter()
        .find(|(_, n)| n == name)
        .unwrap_or_else(|| panic!("no object {name}"))
        .0
}

pub(crate) fn get(a: &Agent, oid: &str) -> String {
    let (_, out) = a.snmp("snmpget", &["-v2c", "-c", "public", "-Oqv", "-Oe"], &[oid]);
    out.trim().trim_matches('"').to_string()
}

#[test]
fn the_demo_element_on_snmp_lock_through_crim_and_names_stable_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path());

    // ENTITY-MIB, walked by number: the shelf, controller, fans, PSUs, boards.
    let classes = a.walk("1.3.6.1.2.1.47.1.1.1.1.5");
    let names_ent = a.walk("1.3.6.1.2.1.47.1.1.1.1.7");
    let all: Vec<&str> = names_ent.iter().map(|(_, n)| n.as_str()).collect();
    for want in [
        "ne=1/shelf=1",
        "ne=1/shelf=1/hsc=1",
        "ne=1/shelf=1/fan=1",
        "ne=1/shelf=1/fan=2",
        "ne=1/shelf=1/psu=1",
        "ne=1/shelf=1/psu=2",
        "ne=1/shelf=1/board=1",
        "ne=1/shelf=1/board=2",
    ] {
        assert!(
            all.iter().any(|n| n.contains(want)),
            "entPhysicalTable lacks {want}: {all:?}"
        );
    }
    assert!(
        classes.iter().any(|(_, c)| c == "3"),
        "a chassis(3): {classes:?}"
    );
    assert!(
        classes.iter().any(|(_, c)| c == "7"),
        "a fan(7): {classes:?}"
    );

    // Lock the primary counterd through SNMPv3: CRIM moves the service.
    let comp = "ne=1/shelf=1/node=a/comp=counterd-a";
    let i = index_of(&a, comp);
    let avail = format!("{HC}.1.9.1.12.{i}");
    wait_until("counterd-a in service", || {
        ["3", "4"].contains(&get(&a, &avail).as_str())
    });
    let (ok, out) = a.snmp("snmpset", V3, &[&format!("{HC}.1.9.1.10.{i}"), "i", "1"]);
    assert!(ok, "{out}");
    wait_until("counterd-a off-line", || get(&a, &avail) == "1");
    let other = index_of(&a, "ne=1/shelf=1/node=b/comp=counterd-b");
    wait_until("counterd-b primary", || {
        get(&a, &format!("{HC}.1.9.1.12.{other}")) == "4"
    });
    // The public community is read-only.
    let (ok, out) = a.snmp(
        "snmpset",
        &["-v2c", "-c", "public"],
        &[&format!("{HC}.1.9.1.10.{i}"), "i", "2"],
    );
    assert!(
        !ok || out.contains("noAccess") || out.contains("notWritable"),
        "{out}"
    );
    // The v3 user has a privacy key: without privacy (authNoPriv) it is
    // refused, reads and writes, so no SET travels in clear text.
    let no_priv = [
        "-v3",
        "-l",
        "authNoPriv",
        "-u",
        "operator",
        "-a",
        "SHA-256",
        "-A",
        "halyard-demo-auth",
    ];
    let (ok, out) = a.snmp(
        "snmpset",
        &no_priv,
        &[&format!("{HC}.1.9.1.10.{i}"), "i", "2"],
    );
    assert!(!ok && out.contains("authorizationError"), "{out}");
    let (ok, out) = a.snmp("snmpget", &no_priv, &["1.3.6.1.2.1.1.5.0"]);
    assert!(!ok && out.contains("authorizationError"), "{out}");
    // The SNMP face's own counters are on /metrics: the refused SET counts.
    let (code, metrics) = a.curl("GET", "/metrics", None);
    assert_eq!(code, 200);
    let count = |counter: &str| -> u64 {
        let prefix = format!("halyard_snmp_messages_total{{counter=\"{counter}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {counter} in /metrics"))
    };
    assert!(count("in_pkts") > 10, "{}", count("in_pkts"));
    assert!(count("in_bad_community_uses") >= 1);
    assert!(metrics.contains("halyard_netconf_events_total{counter=\"in_sessions\"}"));
    // And their latency histograms.
    let snmp_count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("halyard_snmp_request_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the SNMP latency histogram");
    assert!(snmp_count > 10, "{snmp_count}");
    assert!(metrics.contains("halyard_netconf_rpc_duration_seconds_bucket{le=\"+Inf\"}"));
    // The write is in the audit trail.
    let audit = a.walk(&format!("{HC}.1.35.1.13"));
    assert!(audit.iter().any(|(_, op)| op.contains(comp)), "{audit:?}");

    let before = names(&a);
    assert!(before.len() > 30);
    // SIGTERM: ordered shutdown, exit 0, components stopped.
    let st = a.signal("-TERM");
    assert!(st.success(), "{st:?}");
    a.spawn();
    let after = names(&a);
    // Every object of the element, and the audit record, keep name and index;
    // assignments are remade by CRIM and may differ.
    for (i, n) in before.iter().filter(|(_, n)| !n.contains("/asg=")) {
        assert!(
            after.contains(&(i.clone(), n.clone())),
            "{n} (index {i}) did not survive the restart: {after:?}"
        );
    }
    assert!(
        before.iter().any(|(_, n)| n.contains("/audit=")),
        "the SET was audited: {before:?}"
    );
}

#[test]
fn a_shelf_power_loss_gives_one_root_alarm_and_alarms_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path());
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/operations/inject-fault",
        Some(r#"{"fault":"power-loss"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    // Alarm table: resource (col 10) and correlation (col 22).
    let alarms = |a: &Agent| {
        let res = a.walk(&format!("{HC}.1.30.1.10"));
        let cor = a.walk(&format!("{HC}.1.30.1.22"));
        res.into_iter()
            .zip(cor)
            .map(|((_, r), (_, c))| (r, c))
            .collect::<Vec<_>>()
    };
    wait_until("the root alarm and secondary ones", || {
        let v = alarms(&a);
        v.iter().any(|(r, c)| r == "ne=1/shelf=1" && c == "2")
            && v.iter().filter(|(_, c)| c == "3").count() >= 2
    });
    let v = alarms(&a);
    let roots: Vec<_> = v.iter().filter(|(_, c)| c == "2" || c == "1").collect();
    assert_eq!(roots.len(), 1, "one root alarm, the rest secondary: {v:?}");
    // The alarm summary counts per severity, for the whole element or a subtree.
    let (code, shelf) = a.curl("GET", "/api/v1/alarms/summary?scope=ne=1/shelf=1", None);
    assert_eq!(code, 200, "{shelf}");
    let (_, elsewhere) = a.curl("GET", "/api/v1/alarms/summary?scope=ne=1/sg=counter", None);
    let total = |b: &str| {
        serde_json::from_str::<serde_json::Value>(b).unwrap()["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("{b}"))
    };
    assert!(total(&shelf) >= 3, "{shelf}");
    assert_eq!(total(&elsewhere), 0, "{elsewhere}");
    // kill -9 of the agent: the alarms were persisted before they were announced.
    let st = a.signal("-KILL");
    assert!(!st.success());
    a.spawn();
    let after = alarms(&a);
    assert!(
        after.iter().any(|(r, c)| r == "ne=1/shelf=1" && c == "2"),
        "{after:?}"
    );
    assert!(after.len() >= v.len());
}

/// RFC 3414 2.2.2: snmpEngineBoots never repeats for an engine ID. 100
/// kill -9 in a row, every other one at a moment during start-up (some
/// while the engine state is written), the rest once the agent answers:
/// each answering agent has the same engine ID and a higher boots count
/// than any before, and no start finds its state torn.
#[test]
fn engine_boots_never_repeats_across_100_kill_9s() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path());
    let get = |a: &Agent, oid: &str| {
        let (ok, out) = a.snmp(
            "snmpget",
            &["-v2c", "-c", "public", "-On", "-Oqv", "-t", "5"],
            &[oid],
        );
        assert!(ok, "{out}");
        out.trim().to_string()
    };
    // snmpEngineID (hex, possibly over lines) and snmpEngineBoots.
    let read = |a: &Agent| {
        let boots = get(a, "1.3.6.1.6.3.10.2.1.2.0");
        let boots: u32 = boots.parse().unwrap_or_else(|_| panic!("boots: {boots}"));
        (get(a, "1.3.6.1.6.3.10.2.1.1.0"), boots)
    };
    let kill = |a: &mut Agent| {
        let child = a.child.take().unwrap();
        halyard_tests::kill_tree(child.id());
        let mut child = child;
        let st = child.wait().unwrap();
        assert!(!st.success());
    };
    let (id, mut last) = read(&a);
    assert!(!id.is_empty() && last >= 1, "{id} {last}");
    let mut answered = 1;
    for i in 0..100 {
        kill(&mut a);
        if i % 2 == 0 {
            // Killed somewhere in its first 40 ms: the state file is read,
            // counted up and synced in that time.
            let child = a.command().stdout(Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_millis((i * 7 % 41) as u64));
            a.child = Some(child);
            continue;
        }
        a.spawn();
        let (now_id, boots) = read(&a);
        assert_eq!(now_id, id, "the engine ID changed at kill {i}");
        assert!(
            boots > last,
            "boots went from {last} to {boots} at kill {i}"
        );
        last = boots;
        answered += 1;
    }
    assert_eq!(answered, 51);
    let state = std::fs::read_to_string(dir.path().join("snmp-engine")).unwrap();
    assert!(state.contains(&format!("boots {last}")), "{state}");
}

#[test]
fn a_power_supplys_power_fault_shows_in_power_good_and_the_agent_refuses_none_of_its_own_updates() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path());
    let attr = |object: &str, name: &str| {
        let (_, body) = a.curl("GET", &format!("/api/v1/objects/{object}"), None);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["attributes"][name].clone()
    };
    let psu = "ne=1/shelf=1/psu=1";
    assert_eq!(attr(psu, "power-good"), true);
    let fault = |f: &str| {
        let (code, body) = a.curl(
            "POST",
            &format!("/api/v1/objects/{psu}/operations/inject-fault"),
            Some(&format!(r#"{{"fault":"{f}"}}"#)),
        );
        assert!((200..300).contains(&code), "{code} {body}");
    };
    fault("power-loss");
    wait_until("power-good false", || attr(psu, "power-good") == false);
    fault("repair");
    wait_until("power-good true", || attr(psu, "power-good") == true);
    // A power fault of the shelf (it has no such flag) is no refused update.
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/operations/inject-fault",
        Some(r#"{"fault":"power-loss"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until("the shelf's alarm", || {
        a.curl("GET", "/api/v1/alarms", None)
            .1
            .contains("ne=1/shelf=1\"")
    });
    assert_eq!(attr("ne=1", "model-update-errors"), "0");
}

#[test]
fn conflicting_operations_one_runs_one_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path());
    let job_name = |body: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["job"]
            .as_str()
            .unwrap_or_else(|| panic!("no job in {body}"))
            .to_string()
    };
    let wait_job = |name: &str| -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        wait_until("the job to finish", || {
            let (_, b) = a.curl("GET", &format!("/api/v1/jobs/{name}"), None);
            last = serde_json::from_str(&b).unwrap_or_default();
            last["finished"] == serde_json::Value::Bool(true)
        });
        last
    };
    // Diagnostics of the shelf hold its subtree while they run.
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/operations/run-diagnostics",
        Some("{}"),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let diag = job_name(&body);
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/fan=1/operations/restart",
        Some("{}"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("locked by") && body.contains(&diag),
        "the reason names the holder: {body}"
    );
    let done = wait_job(&diag);
    assert_eq!(done["state"], "succeeded", "{done}");
    // Locking the shelf is a multi-step job: its components, children first.
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/operations/lock",
        Some(r#"{"reason":"maintenance"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let lock = wait_job(&job_name(&body));
    assert_eq!(lock["state"], "succeeded", "{lock}");
    let total = lock["steps-total"].as_u64().unwrap();
    assert!(total >= 10, "one step per component of the shelf: {lock}");
    assert_eq!(lock["steps-done"].as_u64(), Some(total));
}

#[test]
fn broken_config_files_are_reported_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "syntax.toml",
            "[element]\nname = \"1\"\n[[node]\nname = \"a\"\n",
            ":3:",
        ),
        (
            "unknown-field.toml",
            "[element]\nname = \"1\"\ncolour = \"red\"\n",
            ":3:1: error: unknown field `colour`",
        ),
        (
            "bad-group.toml",
            "[element]\nname = \"1\"\n[[node]]\nname = \"a\"\n[[component]]\nname = \"x\"\nnode = \"a\"\ngroup = \"nope\"\nkind = \"ha-aware\"\ncommand = [\"@counterd\"]\n",
            ":8:9: error: found unknown service group \"nope\"",
        ),
        (
            "bad-model.toml",
            "[element]\nname = \"1\"\n[[service_group]]\nname = \"g\"\nmodel = \"3n\"\nservice_instances = [\"1\"]\n",
            ":5:9: error: unknown variant `3n`, expected one of `2n`, `n+m`, `n-way-active`, `no-redundancy`",
        ),
        (
            "demo-creds-public.toml",
            "[http]\nlisten = [\"0.0.0.0:8080\"]\nusers = [{ name = \"operator\", password = \"halyard-demo\" }]\n[element]\nname = \"1\"\n",
            ":2:11: error: found the demo credentials with non-loopback address",
        ),
        (
            "bad-role.toml",
            "[http]\nusers = [{ name = \"x\", password = \"long-enough\", role = \"root\" }]\n[element]\nname = \"1\"\n",
            ":2:57: error: unknown variant `root`, expected one of `viewer`, `operator`, `admin`",
        ),
        (
            "bad-listen.toml",
            "[snmp]\nlisten = [\"localhost\"]\n[element]\nname = \"1\"\n",
            ":2:11: error: found listen address \"localhost\", expected IP:PORT",
        ),
        (
            "cluster-lease.toml",
            "[cluster]\nlease_ms = 600\n[element]\nname = \"1\"\n[[node]]\nname = \"a\"\ncluster = [\"127.0.0.1:7101\"]\n",
            ":2:12: error: found failure detection 500 ms, expected at least the lease plus two heartbeats",
        ),
        (
            "cluster-address.toml",
            "[element]\nname = \"1\"\n[[node]]\nname = \"a\"\ncluster = [\"127.0.0.1\"]\n",
            ":5:12: error: found address \"127.0.0.1\", expected ip:port",
        ),
    ];
    for (file, text, want) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(halyard())
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
            "{file}: expected a line starting with\n  {expected}\ngot:\n{err}"
        );
    }
    // Several mistakes in one file: every one is reported. (An unknown
    // word stops the reading, as a syntax error does: one at a time.)
    let path = dir.path().join("many.toml");
    std::fs::write(
        &path,
        "[element]\nname = \"1\"\n[[service_group]]\nname = \"g\"\nmodel = \"2n\"\nstandby = \"hot\"\nservice_instances = [\"1 2\"]\n[[component]]\nname = \"x\"\nnode = \"zz\"\ngroup = \"g\"\nkind = \"process\"\ncommand = []\n",
    )
    .unwrap();
    let out = Command::new(halyard())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [":7:22:", ":10:8:", ":13:11:"] {
        assert!(
            err.contains(&format!("{}{want}", path.display())),
            "missing {want} in:\n{err}"
        );
    }
    // A good file passes.
    let ok = Command::new(halyard())
        .arg("check")
        .arg("--config")
        .arg(workspace().join("examples/demo.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn a_threshold_raises_and_clears_its_alarm_with_hysteresis() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path());
    let thr = "ne=1/shelf=1/board=1/stat=temperature/thr=hot";
    let i = index_of(&a, thr);
    let col = |c: u32| format!("{HC}.1.33.1.{c}.{i}");
    let set = |pairs: &[(u32, i64)]| {
        let mut args: Vec<String> = Vec::new();
        for (c, v) in pairs {
            args.extend([col(*c), "i".into(), v.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = a.snmp("snmpset", V3, &refs);
        assert!(ok, "{out}");
    };
    // The board runs at 41 degrees. The alarm of this threshold, if any: severity.
    let alarm = || {
        let res = a.walk(&format!("{HC}.1.30.1.10"));
        let sev = a.walk(&format!("{HC}.1.30.1.13"));
        res.into_iter()
            .zip(sev)
            .find(|((_, r), _)| r == thr)
            .map(|(_, (_, s))| s)
    };
    assert_eq!(get(&a, &col(14)), "2", "not crossed at 41 < 70");
    // Rising 38, falling 35 (fixed point, 3 decimals): crossed, alarm raised.
    set(&[(12, 35_000), (11, 38_000)]);
    wait_until("the threshold to cross", || get(&a, &col(14)) == "1");
    wait_until("its alarm", || alarm().is_some_and(|s| s != "1"));
    // Rising moved above the value: still crossed, because 41 > falling 35.
    set(&[(11, 45_000)]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        get(&a, &col(14)),
        "1",
        "hysteresis: stays crossed between falling and rising"
    );
    assert!(alarm().is_some_and(|s| s != "1"));
    // Falling moved above the value: cleared.
    set(&[(12, 42_000)]);
    wait_until("the threshold to re-arm", || get(&a, &col(14)) == "2");
    wait_until("its alarm to clear", || alarm().as_deref() == Some("1"));
}

/// Job name from an operation's JSON reply.
fn job_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["job"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {body}"))
        .to_string()
}

fn wait_job(a: &Agent, name: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until("the job to finish", || {
        let (_, b) = a.curl("GET", &format!("/api/v1/jobs/{name}"), None);
        last = serde_json::from_str(&b).unwrap_or_default();
        last["finished"] == serde_json::Value::Bool(true)
    });
    last
}

#[test]
fn concurrent_conflicting_commands_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path());
    let ops = [
        "ne=1/shelf=1/operations/lock",
        "ne=1/shelf=1/fan=1/operations/restart",
        "ne=1/shelf=1/node=a/operations/lock",
        "ne=1/shelf=1/node=a/comp=counterd-a/operations/switch-over",
        "ne=1/shelf=1/operations/unlock",
        "ne=1/shelf=1/psu=2/operations/run-diagnostics",
        "ne=1/shelf=1/node=b/comp=ticker-2/operations/restart",
        "ne=1/shelf=1/fan=2/operations/lock",
    ];
    let replies: Vec<(u16, String)> = std::thread::scope(|s| {
        let a = &a;
        let hs: Vec<_> = ops
            .iter()
            .map(|op| s.spawn(move || a.curl("POST", &format!("/api/v1/objects/{op}"), Some("{}"))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut accepted = 0;
    for ((code, body), op) in replies.iter().zip(ops) {
        assert!(
            (200..300).contains(code) || *code == 409,
            "{op}: {code} {body}"
        );
        if *code == 409 {
            assert!(body.contains("locked by"), "{op}: {body}");
        } else {
            accepted += 1;
            let done = wait_job(&a, &job_of(body));
            assert!(
                done["state"] == "succeeded" || done["state"] == "failed",
                "{op}: {done}"
            );
        }
    }
    assert!(accepted >= 1);
    // And the agent still answers.
    let (code, _) = a.curl("GET", "/api/v1/tree", None);
    assert_eq!(code, 200);
}

#[test]
fn with_the_queue_policy_a_conflicting_command_waits_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("queue.toml");
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    std::fs::write(
        &config,
        demo.replace("[agent]\n", "[agent]\nconflict_policy = \"queue\"\n"),
    )
    .unwrap();
    let a = Agent::start_with(&dir.path().join("data"), Some(config));
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/operations/run-diagnostics",
        Some("{}"),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let diag = job_of(&body);
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/fan=1/operations/restart",
        Some("{}"),
    );
    assert!(
        (200..300).contains(&code),
        "queued, not refused: {code} {body}"
    );
    assert!(body.contains("queued"), "{body}");
    let restart = job_of(&body);
    let first = wait_job(&a, &diag);
    let second = wait_job(&a, &restart);
    assert_eq!(first["state"], "succeeded", "{first}");
    assert_eq!(second["state"], "succeeded", "{second}");
}

/// A `snmptrapd` in the foreground on a loopback port, printing what it
/// decodes (with HALYARD-CLUSTER-MIB) to stdout; killed on drop.
pub(crate) struct TrapD {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl TrapD {
    pub(crate) fn start(port: u16) -> TrapD {
        Self::start_with(port, "")
    }

    /// With more snmptrapd.conf lines (v3 users).
    pub(crate) fn start_with(port: u16, extra: &str) -> TrapD {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("snmptrapd.conf");
        std::fs::write(
            &conf,
            format!("disableAuthorization yes\nauthCommunity log,execute,net public\n{extra}"),
        )
        .unwrap();
        // The base SMIv2 modules as tests/run.sh installs them.
        let base = std::env::var("HALYARD_BASE_MIBS").unwrap_or_else(|_| {
            format!(
                "{}/.cache/halyard-npm/node_modules/net-snmp/lib/mibs",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let mibs = format!(
            "+{}:{}:{base}",
            workspace().join("mib").display(),
            workspace().join("mib/standard").display()
        );
        let mut child = Command::new("/usr/sbin/snmptrapd")
            .args(["-f", "-Lo", "-n", "-C", "-c"])
            .arg(&conf)
            .args([
                "-m",
                "+HALYARD-CLUSTER-MIB:ALARM-MIB:ITU-ALARM-MIB:ENTITY-MIB",
                "-M",
                &mibs,
            ])
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", dir.path())
            .env("SNMPCONFPATH", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("snmptrapd (tests/run.sh installs net-snmp)");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut pipe in pipes {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let t = TrapD {
            child,
            out,
            _dir: dir,
        };
        t.wait_for("NET-SNMP version");
        t
    }

    pub(crate) fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub(crate) fn wait_for(&self, needle: &str) -> String {
        let mut text = String::new();
        wait_until(&format!("snmptrapd to print {needle:?}"), || {
            text = self.text();
            text.contains(needle)
        });
        text
    }
}

impl Drop for TrapD {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's configuration with these `traps = [...]` entries (TOML
/// inline tables, one per line), written into `dir`.
fn demo_with_traps(dir: &Path, targets: &[String]) -> PathBuf {
    let config = dir.join("traps.toml");
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let targets = format!(
        "traps = [\n{}]\n\n[netconf]\n",
        targets
            .iter()
            .map(|t| format!("  {t},\n"))
            .collect::<String>()
    );
    assert!(demo.contains("\n[netconf]\n"));
    std::fs::write(
        &config,
        demo.replacen("\n[netconf]\n", &format!("\n{targets}"), 1),
    )
    .unwrap();
    config
}

#[test]
fn the_agent_sends_alarm_traps_and_informs_that_snmptrapd_decodes() {
    let (trap_port, inform_port) = (free_port(), free_port());
    // Both receivers listen before the agent starts: nothing is missed.
    let traps = TrapD::start(trap_port);
    let informs = TrapD::start(inform_port);
    let dir = tempfile::tempdir().unwrap();
    let config = demo_with_traps(
        dir.path(),
        &[
            format!("{{ target = \"127.0.0.1:{trap_port}\", community = \"public\" }}"),
            format!(
                "{{ target = \"127.0.0.1:{inform_port}\", community = \"public\", inform = true }}"
            ),
        ],
    );
    let a = Agent::start_with(&dir.path().join("data"), Some(config));

    let fan = "ne=1/shelf=1/fan=1";
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{fan}/operations/inject-fault"),
        Some(r#"{"fault":"fan-stall"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let text = traps.wait_for("HALYARD-CLUSTER-MIB::hcAlarmRaised");
    assert!(
        text.contains(&format!(
            "HALYARD-CLUSTER-MIB::hcAlarmRaisedResource.0 = STRING: {fan}"
        )),
        "{text}"
    );
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{fan}/operations/inject-fault"),
        Some(r#"{"fault":"repair"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let text = traps.wait_for("HALYARD-CLUSTER-MIB::hcAlarmCleared");
    assert!(
        text.contains(&format!(
            "HALYARD-CLUSTER-MIB::hcAlarmClearedResource.0 = STRING: {fan}"
        )),
        "{text}"
    );

    // The same notifications as informs, acknowledged by the receiver.
    let text = informs.wait_for("HALYARD-CLUSTER-MIB::hcAlarmCleared");
    assert!(
        text.contains("HALYARD-CLUSTER-MIB::hcAlarmRaised"),
        "{text}"
    );
    let counter = |name: &str| -> u64 {
        let (_, metrics) = a.curl("GET", "/metrics", None);
        let prefix = format!("halyard_snmp_messages_total{{counter=\"{name}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    wait_until("two informs acknowledged", || counter("informs_acked") >= 2);
    assert!(counter("traps_sent") >= 2);
    assert_eq!(counter("informs_timed_out"), 0);
}

/// A v3 trap target (#17): informs as the demo's `operator` (SHA-256,
/// AES), which snmptrapd (authoritative for informs, discovered by the
/// agent) authenticates, decrypts and acknowledges.
#[test]
fn v3_informs_reach_snmptrapd_as_the_configured_user() {
    let port = free_port();
    let informs = TrapD::start_with(
        port,
        "createUser operator SHA-256 halyard-demo-auth AES halyard-demo-priv\nauthUser log,execute operator priv\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("v3traps.toml");
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let targets = format!(
        "traps = [{{ target = \"127.0.0.1:{port}\", user = \"operator\", inform = true }}]\n\n[netconf]\n"
    );
    std::fs::write(
        &config,
        demo.replacen("\n[netconf]\n", &format!("\n{targets}"), 1),
    )
    .unwrap();
    let a = Agent::start_with(&dir.path().join("data"), Some(config));
    let fan = "ne=1/shelf=1/fan=1";
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{fan}/operations/inject-fault"),
        Some(r#"{"fault":"fan-stall"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let text = informs.wait_for("HALYARD-CLUSTER-MIB::hcAlarmRaised");
    assert!(
        text.contains(&format!(
            "HALYARD-CLUSTER-MIB::hcAlarmRaisedResource.0 = STRING: {fan}"
        )),
        "{text}"
    );
    let counter = |name: &str| -> u64 {
        let (_, metrics) = a.curl("GET", "/metrics", None);
        let prefix = format!("halyard_snmp_messages_total{{counter=\"{name}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    wait_until("the inform acknowledged", || counter("informs_acked") >= 1);
    assert_eq!(counter("informs_timed_out"), 0);
}

/// The projection at scale: 2,000 extra fans start at once (tens of
/// thousands of HA events in a burst). Every assignment CRIM made is in
/// the tree, acknowledged, once; the element's own hardware included,
/// whose acknowledgements came before the projection subscribed.
#[test]
fn at_scale_every_assignment_is_in_the_tree_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_args(dir.path(), None, &["--demo-scale", "2000"]);
    let assignments = || -> Vec<serde_json::Value> {
        let (code, body) = a.curl("GET", "/api/v1/classes/Assignment", None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["objects"].as_array().cloned().unwrap_or_default()
    };
    let scale = |all: &[serde_json::Value]| {
        all.iter()
            .filter(|o| {
                o["attributes"]["name"]
                    .as_str()
                    .is_some_and(|n| n.contains("/sg=hw-scale-"))
            })
            .count()
    };
    let mut last = Vec::new();
    let settled = (0..240).any(|_| {
        last = assignments();
        // 40 shelves of 50 fans: 50 fan assignments and the chassis's.
        if scale(&last) == 40 * 51
            && last
                .iter()
                .all(|o| o["attributes"]["acknowledged"] == serde_json::json!(true))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
        false
    });
    let unacked: Vec<&str> = last
        .iter()
        .filter(|o| o["attributes"]["acknowledged"] != serde_json::json!(true))
        .filter_map(|o| o["attributes"]["name"].as_str())
        .take(10)
        .collect();
    assert!(
        settled,
        "after 120 s: {} scale assignments (want 2040), unacknowledged: {unacked:?}",
        scale(&last)
    );
    // Each (service instance, component) once.
    let mut names: Vec<&str> = last
        .iter()
        .filter_map(|o| o["attributes"]["name"].as_str())
        .collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n);
    assert!(a.logged("the model refused").is_empty());
}

/// ncclient from a chosen source address (a socket bound to it): whether
/// the password login succeeds.
const NC_LOGIN: &str = r#"
import socket, sys
from ncclient import manager
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=30, source_address=(sys.argv[2], 0))
try:
    m = manager.connect(host=host, port=int(port), sock=s, username="operator", password=sys.argv[3],
                        hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
    m.close_session()
    print("login=ok")
except Exception as e:
    print("login=refused %s" % type(e).__name__)
"#;

/// Password guessing from one address: after five failures it is refused
/// (HTTP 429 with Retry-After, NETCONF login refused) even with the right
/// password, on both faces, while a client at another address is served;
/// once the refusal period is over the right password works again. The
/// refusals are counted in /metrics.
#[test]
fn a_password_guesser_is_refused_on_every_face_and_nobody_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path());
    let curl_from = |source: &str, password: &str| -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", "--interface", source])
            .args(["-u", &format!("operator:{password}")])
            .arg(format!("http://{}/api/v1/tree", a.http))
            .output()
            .expect("curl");
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, head)
    };
    let script = dir.path().join("login.py");
    std::fs::write(&script, NC_LOGIN).unwrap();
    let netconf_from = |source: &str, password: &str| -> String {
        let out = Command::new("python3")
            .arg(&script)
            .args([a.netconf.as_str(), source, password])
            .output()
            .expect("python3 with ncclient");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let guesser = "127.0.0.2";
    for i in 1..=6 {
        let (code, head) = curl_from(guesser, &format!("guess-{i}"));
        assert_eq!(code, 401, "guess {i}: {head}");
    }
    // The sixth failure refused the source for 1 s; each failure after a
    // refusal doubles it. Fail on to 8 s, so that the checks below run
    // inside the refusal even on a loaded machine (a python start can
    // take longer than 1 s).
    let mut failures = 6;
    let mut refusals = 0;
    while failures < 9 {
        let (code, head) = curl_from(guesser, &format!("guess-{failures}"));
        match code {
            401 => failures += 1,
            429 => {
                refusals += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            _ => panic!("guess {failures}: {head}"),
        }
    }
    assert!(
        refusals >= 3,
        "each failure past the fifth refuses the source"
    );
    // Refused now, even with the right password, and told when to retry.
    let (code, head) = curl_from(guesser, "halyard-demo");
    assert_eq!(code, 429, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: "),
        "{head}"
    );
    // The other face shares the record.
    assert!(
        netconf_from(guesser, "halyard-demo").starts_with("login=refused"),
        "NETCONF took a login from a refused address"
    );
    // Somebody else is served all along.
    assert_eq!(curl_from("127.0.0.1", "halyard-demo").0, 200);
    assert_eq!(netconf_from("127.0.0.1", "halyard-demo"), "login=ok");
    // After the refusal (8 s for the ninth failure) the right password works.
    wait_until("the refusal to end", || {
        curl_from(guesser, "halyard-demo").0 == 200
    });
    assert_eq!(netconf_from(guesser, "halyard-demo"), "login=ok");
    let (_, metrics) = a.curl("GET", "/metrics", None);
    let value = |line_start: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
    };
    assert!(value("halyard_http_auth_failures_total") >= 6.0);
    assert!(value("halyard_http_auth_refused_total") >= 1.0);
    assert!(value("halyard_netconf_events_total{counter=\"auth_refused\"}") >= 1.0);
}

/// Passwords stored hashed: `halyard hash-password` makes an Argon2id hash,
/// the config takes it in place of the plain text, curl (Basic) and
/// ncclient log in with the password and not with the hash, the password
/// appears in no log line and no /metrics, and a broken hash is reported
/// at its line by `halyard check`.
#[test]
fn hashed_passwords_log_in_on_http_and_netconf() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let secret = "Correct-Horse-7";
    let mut hasher = Command::new(halyard())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(hasher.stdin.take().unwrap(), "{secret}").unwrap();
    let out = hasher.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let config = dir.path().join("hashed.toml");
    std::fs::write(
        &config,
        demo.replace(
            "password = \"halyard-demo\"",
            &format!("password = \"{phc}\""),
        ),
    )
    .unwrap();
    let check = Command::new(halyard())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let a = Agent::start_with(&dir.path().join("data"), Some(config.clone()));
    let http_code = |password: &str| -> u16 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH"])
            .args(["-u", &format!("operator:{password}")])
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                "{\"label\":\"hashed\"}",
            ])
            .arg(format!(
                "http://{}/api/v1/objects/ne=1/shelf=1/fan=1",
                a.http
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    };
    assert_eq!(http_code(secret), 200);
    assert_eq!(http_code("halyard-demo"), 401);
    assert_eq!(http_code(&phc), 401);
    let script = dir.path().join("login.py");
    std::fs::write(&script, NC_LOGIN).unwrap();
    let netconf = |password: &str| -> String {
        let out = Command::new("python3")
            .arg(&script)
            .args([a.netconf.as_str(), "127.0.0.1", password])
            .output()
            .expect("python3 with ncclient");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(netconf(secret), "login=ok");
    assert!(netconf("halyard-demo").starts_with("login=refused"));
    let (_, metrics) = a.curl("GET", "/metrics", None);
    assert!(!metrics.contains(secret));
    assert!(a.logged(secret).is_empty());
    drop(a);
    // A broken hash is an error at its line.
    let broken = phc[..phc.len() - 10].to_string() + "!!";
    std::fs::write(
        &config,
        demo.replace(
            "password = \"halyard-demo\"",
            &format!("password = \"{broken}\""),
        ),
    )
    .unwrap();
    let check = Command::new(halyard())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(!check.status.success());
    assert!(
        err.contains("hashed.toml:19:") && err.contains("halyard hash-password"),
        "{err}"
    );
}

const NC_SYSTEM: &str = r#"
import sys
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele
host, port = sys.argv[1].rsplit(":", 1)
user, password, what = sys.argv[2], sys.argv[3], sys.argv[4]
m = manager.connect(host=host, port=int(port), username=user, password=password,
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
try:
    if what == "location":
        m.edit_config(target="running", config='''<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><system xmlns="%s">
<location>%s</location></system></config>''' % (SYS, sys.argv[5]))
        print("reply=ok")
    elif what == "get-location":
        r = m.get(filter=("subtree", '<system xmlns="%s"><location/></system>' % SYS))
        loc = r.data_ele.find(".//{%s}location" % SYS)
        print("location=%s" % (loc.text if loc is not None else ""))
    else:
        r = m.dispatch(to_ele('<%s xmlns="%s"/>' % (what, SYS)))
        print("reply=%s" % ("ok" if "<ok" in r.xml else r.xml))
except RPCError as e:
    print("reply=%s" % e.tag)
try:
    m.close_session()
except Exception:
    pass
"#;

/// ietf-system's system-restart and system-shutdown over NETCONF: refused
/// to an operator and a viewer, an admin's restart runs the ordered
/// shutdown and the same process (same pid) comes back with the committed
/// configuration, and an admin's shutdown ends it with status 0.
#[test]
fn system_restart_and_shutdown_are_the_agents_ordered_stop() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let config = dir.path().join("system.toml");
    let old = r#"  { name = "admin", password = "halyard-demo-admin", role = "admin" },
]

[http]"#;
    assert!(demo.contains(old));
    std::fs::write(
        &config,
        demo.replacen(
            old,
            "  { name = \"admin\", password = \"halyard-demo-admin\", role = \"admin\" },\n  { name = \"viewer\", password = \"viewer-pw\", role = \"viewer\" },\n]\n\n[http]",
            1,
        ),
    )
    .unwrap();
    let mut a = Agent::start_with(&dir.path().join("data"), Some(config));
    let script = dir.path().join("system.py");
    std::fs::write(&script, NC_SYSTEM).unwrap();
    let nc = |user: &str, password: &str, what: &[&str]| -> String {
        let out = Command::new("python3")
            .arg(&script)
            .args([a.netconf.as_str(), user, password])
            .args(what)
            .output()
            .expect("python3 with ncclient");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        nc("operator", "halyard-demo", &["system-restart"]),
        "reply=access-denied"
    );
    assert_eq!(
        nc("viewer", "viewer-pw", &["system-shutdown"]),
        "reply=access-denied"
    );
    // The viewer role now holds on NETCONF too: no edits.
    assert_eq!(
        nc("viewer", "viewer-pw", &["location", "nowhere"]),
        "reply=access-denied"
    );
    assert_eq!(
        nc("operator", "halyard-demo", &["location", "rack 7"]),
        "reply=ok"
    );
    let pid = a.pid();
    assert_eq!(a.logged(" ready ").len(), 1);
    // The agent runs with its allocator settings; the components it
    // started get the environment without them.
    let environ = |p: u32| {
        std::fs::read(format!("/proc/{p}/environ"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
            .unwrap_or_default()
    };
    assert!(environ(pid as u32).contains("GLIBC_TUNABLES="));
    let children: Vec<String> = halyard_tests::process_tree(pid as u32)
        .into_iter()
        .filter(|c| *c != pid as u32)
        .map(environ)
        .filter(|e| e.contains("HALYARD_COMPONENT="))
        .collect();
    assert!(!children.is_empty());
    assert!(children.iter().all(|e| !e.contains("GLIBC_TUNABLES=")));
    assert_eq!(
        nc("admin", "halyard-demo-admin", &["system-restart"]),
        "reply=ok"
    );
    wait_until("the agent to be ready again", || {
        a.logged(" ready ").len() == 2
    });
    assert!(
        a.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the restart is the same process"
    );
    assert_eq!(a.pid(), pid);
    assert!(!a.logged("stopping").is_empty());
    assert_eq!(
        nc("operator", "halyard-demo", &["get-location"]),
        "location=rack 7"
    );
    assert_eq!(
        nc("admin", "halyard-demo-admin", &["system-shutdown"]),
        "reply=ok"
    );
    let mut child = a.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "halyard did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!a.logged("stopped").is_empty());
}

/// sysContact, sysLocation and snmpEnableAuthenTraps are the element's
/// attributes: net-snmp's snmpset writes them and HTTP shows the same
/// values. They, and any operator's write (a fan's label over HTTP),
/// survive a restart, which rebuilds the tree from the configuration.
#[test]
fn sys_contact_location_and_authen_traps_are_the_elements_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path());
    const CONTACT: &str = "1.3.6.1.2.1.1.4.0";
    const LOCATION: &str = "1.3.6.1.2.1.1.6.0";
    const AUTHEN_TRAPS: &str = "1.3.6.1.2.1.11.30.0";
    assert_eq!(get(&a, CONTACT), "");
    assert_eq!(get(&a, AUTHEN_TRAPS), "2", "disabled until enabled");
    let (ok, out) = a.snmp(
        "snmpset",
        V3,
        &[
            CONTACT,
            "s",
            "NOC +1 555 0100",
            LOCATION,
            "s",
            "Site 4, row B, rack 12",
            AUTHEN_TRAPS,
            "i",
            "1",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(get(&a, CONTACT), "NOC +1 555 0100");
    let element = |a: &Agent| {
        let (code, body) = a.curl("GET", "/api/v1/objects/ne=1", None);
        assert_eq!(code, 200, "{body}");
        body
    };
    let body = element(&a);
    for want in ["NOC +1 555 0100", "Site 4, row B, rack 12"] {
        assert!(body.contains(want), "{want} not in {body}");
    }
    // A bad value is refused at its varbind; nothing changes.
    let (ok, out) = a.snmp(
        "snmpset",
        V3,
        &[LOCATION, "s", "elsewhere", AUTHEN_TRAPS, "i", "7"],
    );
    assert!(!ok && out.contains("wrongValue"), "{out}");
    assert_eq!(get(&a, LOCATION), "Site 4, row B, rack 12");
    // The public community may not write them.
    let (ok, out) = a.snmp("snmpset", &["-v2c", "-c", "public"], &[CONTACT, "s", "x"]);
    assert!(!ok || out.contains("noAccess"), "{out}");
    let (code, body) = a.curl(
        "PATCH",
        "/api/v1/objects/ne=1/shelf=1/fan=1",
        Some(r#"{"label":"left fan"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    // SIGTERM and start again: the values are kept.
    assert!(a.signal("-TERM").success());
    a.spawn();
    let (_, fan) = a.curl("GET", "/api/v1/objects/ne=1/shelf=1/fan=1", None);
    assert!(fan.contains("left fan"), "{fan}");
    assert_eq!(get(&a, CONTACT), "NOC +1 555 0100");
    assert_eq!(get(&a, LOCATION), "Site 4, row B, rack 12");
    assert_eq!(get(&a, AUTHEN_TRAPS), "1");
    assert!(element(&a).contains("NOC +1 555 0100"));
}

/// ALARM-MIB and ITU-ALARM-MIB (RFC 3877) over the one alarm engine: a
/// fan stall is an active alarm row that net-snmp's snmptable shows with
/// the RFC modules loaded, announced as alarmActiveState (snmptrapd
/// decodes it), and the same count on HTTP; the repair moves it to the
/// clear table with alarmClearState; alarmClearMaximum is the element's
/// attribute, written over SNMPv3 and read back over HTTP.
#[test]
fn alarm_mib_and_itu_alarm_mib_show_the_engines_alarms() {
    let trap_port = free_port();
    let traps = TrapD::start(trap_port);
    let dir = tempfile::tempdir().unwrap();
    let config = demo_with_traps(
        dir.path(),
        &[format!(
            "{{ target = \"127.0.0.1:{trap_port}\", community = \"public\" }}"
        )],
    );
    let a = Agent::start_with(&dir.path().join("data"), Some(config));
    let mibs = [
        "-M",
        &format!(
            "+{}:{}",
            workspace().join("mib/standard").display(),
            std::env::var("HALYARD_BASE_MIBS").unwrap_or_else(|_| format!(
                "{}/.cache/halyard-npm/node_modules/net-snmp/lib/mibs",
                std::env::var("HOME").unwrap_or_default()
            ))
        ),
        "-m",
        "ALARM-MIB:ITU-ALARM-MIB:ENTITY-MIB",
    ]
    .map(String::from);
    let opts = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["-v2c", "-c", "public"].map(String::from).to_vec();
        v.extend(mibs.iter().cloned());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |tool: &str, extra: &[&str], rest: &[&str]| {
        let o = opts(extra);
        let o: Vec<&str> = o.iter().map(String::as_str).collect();
        let (ok, out) = a.snmp(tool, &o, rest);
        assert!(ok, "{tool} {rest:?}: {out}");
        out
    };
    // snmptable's rows: the data lines between `|`, header skipped.
    let table = |name: &str| -> Vec<Vec<String>> {
        run("snmptable", &["-Cf", "|"], &[name])
            .lines()
            .filter(|l| l.contains('|'))
            .skip(1)
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    };
    assert!(table("ALARM-MIB::alarmActiveTable").is_empty());
    // The model: one alarm per alarm type, six states each.
    let model = table("ALARM-MIB::alarmModelTable");
    assert_eq!(model.len() % 6, 0, "{model:?}");
    assert!(model.len() >= 6 * 10, "{model:?}");
    let itu = run(
        "snmpget",
        &[],
        &["ITU-ALARM-MIB::ituAlarmProbableCause.\"\".107.critical"],
    );
    assert!(itu.contains("coolingFanFailure(107)"), "{itu}");

    let fan = "ne=1/shelf=1/fan=1";
    let fan_index = index_of(&a, fan);
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{fan}/operations/inject-fault"),
        Some(r#"{"fault":"fan-stall"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let text = traps.wait_for("ALARM-MIB::alarmActiveState");
    let resource = format!("ENTITY-MIB::entPhysicalDescr.{fan_index}");
    assert!(
        text.contains(&format!("= OID: {resource}")),
        "{resource} not in {text}"
    );
    assert!(
        text.contains("= OID: ALARM-MIB::alarmModelNotificationId.\"\".107.6"),
        "{text}"
    );
    let mut active = Vec::new();
    wait_until("the fan's alarm in alarmActiveTable", || {
        active = table("ALARM-MIB::alarmActiveTable");
        !active.is_empty()
    });
    assert_eq!(active.len(), 1, "{active:?}");
    let row = active[0].join("|");
    for want in [
        "ALARM-MIB::alarmActiveState",
        &resource,
        "(ne=1/shelf=1/fan=1)",
        "ALARM-MIB::alarmModelNotificationId.\"\".107.6",
    ] {
        assert!(row.contains(want), "{want} not in {row}");
    }
    let itu_active = table("ITU-ALARM-MIB::ituAlarmActiveTable");
    assert_eq!(itu_active.len(), 1, "{itu_active:?}");
    assert!(
        itu_active[0].join("|").contains("noChange"),
        "{itu_active:?}"
    );
    // The same count on every channel.
    let (_, summary) = a.curl("GET", "/api/v1/alarms/summary", None);
    let total = serde_json::from_str::<serde_json::Value>(&summary).unwrap()["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{summary}"));
    let stats = run(
        "snmpget",
        &["-Oqv"],
        &[
            "ALARM-MIB::alarmActiveStatsActiveCurrent.\"\"",
            "ALARM-MIB::alarmActiveStatsActives.\"\"",
            "ITU-ALARM-MIB::ituAlarmActiveStatsCriticalCurrent.\"\"",
        ],
    );
    let stats: Vec<&str> = stats.lines().collect();
    assert_eq!(stats, [total.to_string().as_str(), "1", "1"], "{summary}");

    // Repaired: alarmClearState, and the row moves to alarmClearTable.
    let (code, body) = a.curl(
        "POST",
        &format!("/api/v1/objects/{fan}/operations/inject-fault"),
        Some(r#"{"fault":"repair"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let text = traps.wait_for("ALARM-MIB::alarmClearState");
    assert!(
        text.contains("= OID: ALARM-MIB::alarmModelNotificationId.\"\".107.1"),
        "{text}"
    );
    wait_until("the active table empty", || {
        table("ALARM-MIB::alarmActiveTable").is_empty()
    });
    let cleared = table("ALARM-MIB::alarmClearTable");
    assert!(
        cleared.iter().any(|r| r.join("|").contains(&resource)
            && r.join("|")
                .contains("ALARM-MIB::alarmModelNotificationId.\"\".107.1")),
        "{cleared:?}"
    );
    // alarmClearMaximum is the element's MaxClearedAlarms: written over
    // SNMPv3 (the public community may not), read over HTTP.
    let max = "ALARM-MIB::alarmClearMaximum.0";
    let o = opts(&[]);
    let o: Vec<&str> = o.iter().map(String::as_str).collect();
    let (ok, out) = a.snmp("snmpset", &o, &[max, "u", "0"]);
    assert!(!ok || out.contains("noAccess"), "{out}");
    let mut v3: Vec<&str> = V3.to_vec();
    v3.extend(mibs.iter().map(String::as_str));
    let (ok, out) = a.snmp("snmpset", &v3, &[max, "u", "0"]);
    assert!(ok, "{out}");
    let (_, element) = a.curl("GET", "/api/v1/objects/ne=1", None);
    assert!(element.contains(r#""max-cleared-alarms":0"#), "{element}");
    assert!(table("ALARM-MIB::alarmClearTable").is_empty());
}

/// Runs a Python script (an ncclient client) with `args`; its output,
/// once it succeeded.
pub(crate) fn python3(script: &Path, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 with ncclient (tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// edit-config creations and deletions, as ncclient makes them.
const EDIT_OBJECTS_SCRIPT: &str = r#"
import sys
from ncclient import manager
host, port = sys.argv[1].rsplit(":", 1)
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
NS = "urn:halyard:params:xml:ns:yang:halyard-cluster"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
def edit(body):
    m.edit_config(target="running", config='<config xmlns="%s"><element xmlns="%s" xmlns:nc="%s">%s</element></config>' % (NC, NS, NC, body))
if sys.argv[2] == "edit":
    edit('<threshold nc:operation="create"><name>ne=1/shelf=1/board=1/stat=temperature/thr=nc</name>'
         '<rising>90.000</rising><falling>80.000</falling><severity>minor</severity></threshold>')
    edit('<threshold nc:operation="delete"><name>ne=1/shelf=1/board=1/stat=temperature/thr=hot</name></threshold>')
r = m.get_config(source="running", filter=("subtree", '<element xmlns="%s"><threshold/></element>' % NS)).xml
print("created=%s" % ("thr=nc" in r))
print("deleted=%s" % ("thr=hot" not in r))
"#;

/// Configuration objects an operator creates or deletes over NETCONF are
/// kept like attribute writes: after SIGTERM and after kill -9 the created
/// threshold is there with its index and values (and a later write to it),
/// the deleted one of the configuration file stays deleted.
#[test]
fn netconf_created_and_deleted_objects_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path());
    let script = dir.path().join("edit.py");
    std::fs::write(&script, EDIT_OBJECTS_SCRIPT).unwrap();
    let run = |a: &Agent, what: &str| python3(&script, &[&a.netconf, what]);
    let text = run(&a, "edit");
    assert!(
        text.contains("created=True") && text.contains("deleted=True"),
        "{text}"
    );
    let created = "ne=1/shelf=1/board=1/stat=temperature/thr=nc";
    let index = index_of(&a, created);
    let (code, body) = a.curl(
        "PATCH",
        &format!("/api/v1/objects/{created}"),
        Some(r#"{"rising":"95.000"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    // A fault raises an alarm after the creation: the stable indices the
    // agent hands out never meet the created object's.
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/fan=1/operations/inject-fault",
        Some(r#"{"fault":"fan-stall"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until("the fan's alarm", || {
        a.walk(&format!("{HC}.1.30.1.10"))
            .iter()
            .any(|(_, r)| r == "ne=1/shelf=1/fan=1")
    });
    for sig in ["-TERM", "-KILL"] {
        a.signal(sig);
        a.spawn();
        // Statistics (the thresholds' containers) appear at the first
        // collection after the start; the created threshold with them.
        let mut text = String::new();
        wait_until("the created threshold back", || {
            text = run(&a, "check");
            text.contains("created=True")
        });
        assert!(text.contains("deleted=True"), "after {sig}: {text}");
        assert_eq!(index_of(&a, created), index, "after {sig}");
        let (_, body) = a.curl("GET", &format!("/api/v1/objects/{created}"), None);
        assert!(body.contains(r#""rising":"95.000""#), "after {sig}: {body}");
        assert!(
            body.contains(r#""severity":"minor""#),
            "after {sig}: {body}"
        );
    }
}

/// The notifications a NETCONF replay from the agent's start holds, by name
/// (ietf-alarms' and halyard-cluster's inventory change).
const INVENTORY_SCRIPT: &str = r#"
import sys, time
from ncclient import manager
from lxml import etree
host, port = sys.argv[1].rsplit(":", 1)
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
m.create_subscription(start_time="2000-01-01T00:00:00Z")
seen = []
deadline = time.time() + 5
while time.time() < deadline:
    n = m.take_notification(block=True, timeout=1)
    if n is None:
        continue
    for e in etree.fromstring(n.notification_xml.encode()):
        name = etree.QName(e).localname
        if "inventory" in name:
            fields = ",".join("%s=%s" % (etree.QName(c).localname, c.text) for c in e)
            seen.append(name + ("(" + fields + ")" if fields else ""))
print("seen=%s" % ";".join(sorted(seen)))
m.close_session()
"#;

/// The alarm inventory is the release's: a node that starts with other
/// alarm types than it served before (here: its remembered list lacks one
/// and has one this release dropped) announces alarm-inventory-changed on
/// NETCONF (with the schema's own notification saying how many types came
/// and went); a start with the same inventory announces nothing.
#[test]
fn a_release_with_other_alarm_types_announces_alarm_inventory_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path());
    let script = dir.path().join("inventory.py");
    std::fs::write(&script, INVENTORY_SCRIPT).unwrap();
    // A first start has nothing to compare with.
    let text = python3(&script, &[&a.netconf]);
    assert!(text.contains("seen=\n"), "{text}");
    let list = dir.path().join("alarm-inventory");
    let types = std::fs::read_to_string(&list).unwrap();
    assert!(types.lines().count() > 10, "{types}");
    assert!(a.signal("-TERM").success());
    // The release it ran before had a type this one lacks, and lacked one.
    let mut older: Vec<&str> = types.lines().skip(1).collect();
    older.push("retired-type");
    std::fs::write(&list, older.join("\n") + "\n").unwrap();
    a.spawn();
    let text = python3(&script, &[&a.netconf]);
    assert!(
        text.contains("alarm-inventory-changed;")
            && text.contains("alarm-inventory-changed(node=a,added=1,removed=1)"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&list).unwrap(), types);
    // The same release again: nothing to announce.
    assert!(a.signal("-TERM").success());
    a.spawn();
    let text = python3(&script, &[&a.netconf]);
    assert!(text.contains("seen=\n"), "{text}");
}
