//! A three-node halyard cluster on loopback, made of real processes, for
//! the cluster tests and the fail-over benchmark.
//!
//! The config is `examples/three-node.toml` with free ports and data
//! directories in a temporary directory, so the example itself is what
//! runs. Each node logs to `<dir>/<node>.log`.

use halyard_backend::client::Timeline;

pub mod chaos;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// net-snmp options for the demo's v3 write user (authPriv, SHA-256, AES).
pub const V3: &[&str] = &[
    "-v3",
    "-l",
    "authPriv",
    "-u",
    "operator",
    "-a",
    "SHA-256",
    "-A",
    "halyard-demo-auth",
    "-x",
    "AES",
    "-X",
    "halyard-demo-priv",
];

/// The 2N service instances of the example and their members' hosts.
pub const PAIRS: [(&str, [(&str, &str); 2]); 2] = [
    ("counter", [("counterd-a", "n1"), ("counterd-b", "n2")]),
    ("session", [("session-a", "n3"), ("session-b", "n2")]),
];

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped YANG module of the schema (`yang/<module>@<revision>.yang`).
pub fn yang_module() -> PathBuf {
    let m = &halyard_cluster_model::SCHEMA.module;
    workspace()
        .join("yang")
        .join(format!("{}@{}.yang", m.yang_module, m.revision))
}

/// Builds the agent once (a no-op when the workspace is built): release,
/// or with the tests' own profile.
/// `HALYARD_BIN` names a binary to run instead (a soak keeps its own copy
/// while the workspace is rebuilt).
pub fn halyard(release: bool) -> PathBuf {
    static BIN: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BIN[usize::from(release)]
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("HALYARD_BIN") {
                return PathBuf::from(bin);
            }
            // Otherwise the profile the tests themselves were built with
            // (a custom one has its own directory in a shared target dir).
            let dir = if release {
                "release".to_string()
            } else {
                own_profile_dir().unwrap_or_else(|| "debug".into())
            };
            let profile = if dir == "debug" { "dev" } else { dir.as_str() };
            let st = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "halyard-agent",
                    "--bin",
                    "halyard",
                ])
                .args(["--profile", profile])
                .current_dir(workspace())
                .status()
                .expect("cargo build");
            assert!(st.success(), "cannot build halyard");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace().join("target"), PathBuf::from);
            target.join(dir).join("halyard")
        })
        .clone()
}

/// The running test's profile directory: `<target>/<dir>/deps/<test>`.
fn own_profile_dir() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    (deps.file_name()? == "deps")
        .then(|| deps.parent()?.file_name()?.to_str().map(str::to_string))
        .flatten()
}

pub use halyard_test_ports::free_port;

/// A node appended to the example: its `[[node]]` section (free ports, a
/// data directory in `dir`; `join` for one admitted later) and its handle.
fn extra_node(dir: &Path, name: &str, join: bool) -> (String, Node) {
    let data = dir.join(name);
    let (cluster, snmp, netconf, http) = (free_port(), free_port(), free_port(), free_port());
    let join = if join { "join = true\n" } else { "" };
    let toml = format!(
        r#"
[[node]]
name = "{name}"
shelf = "1"
{join}cluster = ["127.0.0.1:{cluster}", "127.0.0.2:{cluster}"]
data_dir = "{}"
snmp = ["127.0.0.1:{snmp}"]
netconf = ["127.0.0.1:{netconf}"]
http = ["127.0.0.1:{http}"]
"#,
        data.display()
    );
    (toml, Node::on_loopback(name, data, snmp, netconf, http))
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub data: PathBuf,
    pub http: String,
    pub snmp: String,
    pub netconf: String,
    child: Option<Child>,
}

impl Node {
    /// A node (not started) serving its faces on these loopback ports.
    fn on_loopback(name: &str, data: PathBuf, snmp: u16, netconf: u16, http: u16) -> Node {
        Node {
            name: name.to_string(),
            data,
            http: format!("127.0.0.1:{http}"),
            snmp: format!("127.0.0.1:{snmp}"),
            netconf: format!("127.0.0.1:{netconf}"),
            child: None,
        }
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub nodes: Vec<Node>,
    bin: PathBuf,
    /// Nodes run under their boot supervisor (`halyard boot`).
    boot: bool,
}

impl Cluster {
    /// Writes the config and starts every node; returns once each logged
    /// its ready line.
    pub fn start(dir: &Path, release: bool) -> Cluster {
        Self::start_with(dir, release, None, "", None, &[])
    }

    /// The example with `extra` appended to its config (more nodes,
    /// groups, components).
    pub fn start_extended(dir: &Path, release: bool, extra: &str) -> Cluster {
        Self::start_with(dir, release, None, extra, None, &[])
    }

    /// The example run from release stores: each node under `halyard boot`,
    /// installing release `1` from `load_server`, a directory or an
    /// `http://` URL (see [`make_release`]).
    pub fn start_upgradable(dir: &Path, release: bool, load_server: &str) -> Cluster {
        Self::start_with(dir, release, None, "", Some(load_server), &[])
    }

    /// The example plus `joiner`, a fourth node configured to join later
    /// (`join = true`) with one ticker of its own, `ticker-4`; it is
    /// started too, and waits to be admitted.
    pub fn start_joining(dir: &Path, release: bool, joiner: &str) -> Cluster {
        Self::start_with(dir, release, Some(joiner), "", None, &[])
    }

    /// The example with more founding members (voters from the start,
    /// serving every face, hosting no component): `n4`, `n5`, ...
    pub fn start_larger(dir: &Path, release: bool, founders: &[&str]) -> Cluster {
        Self::start_with(dir, release, None, "", None, founders)
    }

    /// The example with more founding members (see
    /// [`start_larger`](Self::start_larger)), from release stores when
    /// `load_server` is given (see [`start_upgradable`](Self::start_upgradable)).
    pub fn start_sized(
        dir: &Path,
        release: bool,
        load_server: Option<&str>,
        founders: &[&str],
    ) -> Cluster {
        Self::start_with(dir, release, None, "", load_server, founders)
    }

    /// Every node's name, the example's three first.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn start_with(
        dir: &Path,
        release: bool,
        joiner: Option<&str>,
        extra: &str,
        load_server: Option<&str>,
        founders: &[&str],
    ) -> Cluster {
        let mut text = std::fs::read_to_string(workspace().join("examples/three-node.toml"))
            .expect("examples/three-node.toml");
        let mut nodes = Vec::new();
        for (i, n) in NODES.iter().enumerate() {
            let data = dir.join(n);
            let cluster = free_port();
            let (snmp, netconf, http) = (free_port(), free_port(), free_port());
            for (old, new) in [
                (format!(":{}\"", 7101 + i), format!(":{cluster}\"")),
                (
                    format!("127.0.0.1:{}\"", 1161 + i),
                    format!("127.0.0.1:{snmp}\""),
                ),
                (
                    format!("127.0.0.1:{}\"", 8830 + i),
                    format!("127.0.0.1:{netconf}\""),
                ),
                (
                    format!("127.0.0.1:{}\"", 8080 + i),
                    format!("127.0.0.1:{http}\""),
                ),
                (
                    format!("\"./halyard-data/{n}\""),
                    format!("\"{}\"", data.display()),
                ),
            ] {
                assert!(text.contains(&old), "{old} not in the example");
                text = text.replace(&old, &new);
            }
            nodes.push(Node::on_loopback(n, data, snmp, netconf, http));
        }
        for f in founders {
            let (toml, node) = extra_node(dir, f, false);
            text.push_str(&toml);
            nodes.push(node);
        }
        if let Some(j) = joiner {
            let (toml, node) = extra_node(dir, j, true);
            text.push_str(&toml);
            // It brings one ticker of its own.
            text.push_str(&format!(
                r#"
[[component]]
name = "ticker-4"
node = "{j}"
group = "ticker"
kind = "ha-aware"
command = ["@counterd"]
env = {{ COUNTERD_INTERVAL_MS = "1000" }}
checkpoint = "asynchronous"
"#
            ));
            nodes.push(node);
        }
        // A timed switch-over's lead must cover two commits and the old
        // primary's acknowledgement; a debug build on a loaded CI machine
        // takes far longer than the release build the default is for.
        // Likewise the components' lease: it is renewed every heartbeat
        // and runs out `failure_ms` less two heartbeats after the last
        // round trip with a majority, so a debug agent stalled for 300 ms
        // (its runtime busy with a node's loss, on a loaded machine) lets
        // its primaries quiesce: safe, but not the hand-over the upgrade
        // tests check. Twice the failure time gives it 800 ms.
        if !release {
            for (from, to) in [
                ("switchover_lead_ms = 500\n", "switchover_lead_ms = 2000\n"),
                ("failure_ms = 500\n", "failure_ms = 1000\n"),
            ] {
                assert!(text.contains(from), "{from} not in the example");
                text = text.replace(from, to);
            }
        }
        text.push('\n');
        text.push_str(extra);
        if let Some(ls) = load_server {
            text.push_str(&format!(
                "\n[release]\nload_server = \"{ls}\"\ninitial = \"1\"\nwatchdog_ms = 20000\n"
            ));
        }
        let config = dir.join("three-node.toml");
        std::fs::write(&config, text).unwrap();
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            config,
            nodes,
            bin: halyard(release),
            boot: load_server.is_some(),
        };
        let names = c.names();
        for n in &names {
            c.spawn(n);
        }
        for n in &names {
            c.wait_ready(n);
        }
        c
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("node")
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("node")
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts a node (again); see [`Cluster::wait_ready`].
    pub fn spawn(&mut self, name: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(name))
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        if self.boot {
            // The supervisor, the node it runs and the node's daemons share
            // a process group, so kill9 takes them all.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd.arg("--config").arg(&self.config).args(["--node", name]);
        if self.boot {
            cmd.arg("boot");
        }
        let child = cmd
            .env("RUST_LOG", "info,openraft=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start halyard");
        self.node_mut(name).child = Some(child);
    }

    /// Waits for the node's latest ready line.
    pub fn wait_ready(&self, name: &str) {
        let starts = |t: &str| t.matches(" starting ").count();
        let readies = |t: &str| t.matches(" ready ").count();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let t = std::fs::read_to_string(self.log(name)).unwrap_or_default();
            if starts(&t) > 0 && readies(&t) >= starts(&t) {
                return;
            }
            if let Some(c) = self.node(name).child.as_ref()
                && t.contains("\nError: ")
            {
                panic!("{name} (pid {}) failed to start:\n{t}", c.id());
            }
            assert!(
                Instant::now() < deadline,
                "{name} logged no ready line within 90 s:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self, name: &str) {
        let boot = self.boot;
        if let Some(mut c) = self.node_mut(name).child.take() {
            kill_tree(c.id());
            if boot {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", c.id())])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the process to end.
    pub fn stop(&mut self, name: &str) -> std::process::ExitStatus {
        let mut c = self.node_mut(name).child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "{name} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's process id while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.node(name).child.as_ref().map(Child::id)
    }

    /// The agent's own pid: under `halyard boot`, the supervisor's child
    /// (the node it runs), else the process started.
    pub fn agent_pid(&self, name: &str) -> Option<u32> {
        let pid = self.pid(name)?;
        if !self.boot {
            return Some(pid);
        }
        let out = Command::new("ps")
            .args(["-o", "pid=", "--ppid", &pid.to_string()])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find_map(|p| p.parse::<u32>().ok())
    }

    /// A signal (`STOP`, `CONT`, ...) to the agent process alone, or with
    /// `tree` to it and every process descended from it (its components).
    pub fn signal(&self, name: &str, sig: &str, tree: bool) {
        let pids = if tree {
            // Under `halyard boot`, the supervisor too: the whole machine.
            let Some(pid) = self.pid(name) else { return };
            process_tree(pid)
        } else {
            let Some(pid) = self.agent_pid(name) else {
                return;
            };
            vec![pid]
        };
        for p in pids {
            let _ = Command::new("kill")
                .args([&format!("-{sig}"), &p.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    pub fn running(&self, name: &str) -> bool {
        self.node(name).child.is_some()
    }

    /// A counterd's `<count> <state>`, asked on its query socket.
    /// None while its node is down (its daemons exit a moment after).
    pub fn query(&self, component: &str) -> Option<(u64, String)> {
        let host = host_of(component)?;
        if !self.running(host) {
            return None;
        }
        query_socket(&self.query_path(component)?)
    }

    /// A counterd's query socket, in its host's data directory.
    pub fn query_path(&self, component: &str) -> Option<PathBuf> {
        let host = host_of(component)?;
        Some(self.node(host).data.join(format!("run/{component}.q")))
    }

    /// HTTP on a node, as the demo operator.
    pub fn curl(&self, node: &str, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args([
                "-s",
                "-m",
                "10",
                "-w",
                "\n%{http_code}",
                "-X",
                method,
                "-u",
                "operator:halyard-demo",
                "-H",
                "Accept: application/json",
            ])
            .arg(format!("http://{}{path}", self.node(node).http))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// curl of a node's HTTP face with a body, as `user` (basic auth, or
    /// a bearer token when `password` starts with `hly_`).
    pub fn curl_as(
        &self,
        node: &str,
        user: &str,
        password: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-m", "10", "-w", "\n%{http_code}", "-X", method]);
        if password.starts_with("hly_") {
            cmd.args(["-H", &format!("Authorization: Bearer {password}")]);
        } else {
            cmd.args(["-u", &format!("{user}:{password}")]);
        }
        let out = cmd
            .args([
                "-H",
                "Accept: application/json",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-d", body])
            .arg(format!("http://{}{path}", self.node(node).http))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// An object's attributes as a node serves them.
    pub fn attrs(&self, node: &str, object: &str) -> Option<serde_json::Value> {
        let (code, body) = self.curl(node, "GET", &format!("/api/v1/objects/{object}"));
        if code != 200 {
            return None;
        }
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .map(|v| v["attributes"].clone())
    }

    /// Every node runs and has committed `version`, as every node shows it.
    pub fn on_release(&self, version: &str) -> bool {
        NODES.iter().all(|seen_by| {
            NODES.iter().all(|n| {
                self.attrs(seen_by, &format!("ne=1/shelf=1/node={n}"))
                    .is_some_and(|a| {
                        a["software-version"] == version && a["committed-version"] == version
                    })
            })
        })
    }

    /// The master as `node` knows it.
    pub fn master(&self, node: &str) -> Option<String> {
        self.attrs(node, "ne=1")?["master"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_string)
    }

    /// Invokes an operation on an object through a node; returns the HTTP status.
    pub fn invoke(&self, node: &str, object: &str, op: &str, form: &[(&str, &str)]) -> u16 {
        self.invoke_full(node, object, op, form).0
    }

    /// Invokes an operation; returns the HTTP status and the body.
    pub fn invoke_full(
        &self,
        node: &str,
        object: &str,
        op: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-m",
            "10",
            "-w",
            "\n%{http_code}",
            "-H",
            "Accept: application/json",
            "-u",
            "operator:halyard-demo",
        ]);
        for (k, v) in form {
            c.args(["--data-urlencode", &format!("{k}={v}")]);
        }
        if form.is_empty() {
            c.args(["-X", "POST"]);
        }
        let out = c
            .arg(format!(
                "http://{}/api/v1/objects/{object}/operations/{op}",
                self.node(node).http
            ))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// A list of the element as a node serves it over NETCONF (ncclient
    /// `get` with a subtree filter): per entry, the given leaves' texts.
    pub fn netconf_list(&self, node: &str, list: &str, leaves: &[&str]) -> Vec<Vec<String>> {
        const SCRIPT: &str = r#"
import sys
from ncclient import manager
host, port = sys.argv[1].rsplit(":", 1)
lst, leaves = sys.argv[2], sys.argv[3:]
NS = "urn:halyard:params:xml:ns:yang:halyard-cluster"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
data = m.get(filter=("subtree", '<element xmlns="%s"><%s/></element>' % (NS, lst))).data_ele
for n in data.iter("{%s}%s" % (NS, lst)):
    print("\t".join((n.find("{%s}%s" % (NS, l)).text or "") for l in leaves))
m.close_session()
"#;
        let out = Command::new("python3")
            .args(["-c", SCRIPT, &self.node(node).netconf, list])
            .args(leaves)
            .output()
            .expect("python3 with ncclient");
        assert!(
            out.status.success(),
            "ncclient: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// The node table over NETCONF: (node object, membership) pairs.
    pub fn netconf_nodes(&self, node: &str) -> Vec<(String, String)> {
        self.netconf_list(node, "node", &["name", "membership"])
            .into_iter()
            .map(|v| (v[0].clone(), v[1].clone()))
            .collect()
    }

    /// The SNMP index of an object as a node serves it (hcObjectTable).
    pub fn snmp_index(&self, node: &str, object: &str) -> Option<String> {
        let out = Command::new("snmpwalk")
            .args(["-v2c", "-c", "public", "-On", "-Oq", "-t", "5", "-r", "2"])
            .arg(&self.node(node).snmp)
            .arg("1.3.6.1.4.1.32473.77.1.100.1.3")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (oid, name) = l.split_once(' ')?;
            (name.trim().trim_matches('"') == object)
                .then(|| oid.rsplit('.').next().unwrap_or_default().to_string())
        })
    }

    /// A net-snmp tool against a node, as the demo's v3 write user.
    pub fn snmp_v3(&self, tool: &str, node: &str, rest: &[&str]) -> (bool, String) {
        let out = Command::new(tool)
            .args(V3)
            .args(["-t", "5", "-r", "2"])
            .arg(&self.node(node).snmp)
            .args(rest)
            .output()
            .expect("net-snmp tool");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// The node hosting the primary of a 2N pair, with its count.
    pub fn primary_of(&self, pair: &str) -> Option<(String, u64)> {
        let (_, members) = PAIRS.iter().find(|(p, _)| *p == pair)?;
        members.iter().find_map(|(c, _)| {
            self.query(c)
                .filter(|(_, s)| s == "primary")
                .map(|(n, _)| (c.to_string(), n))
        })
    }

    /// The 2N pairs whose primary runs on `node` now.
    pub fn pairs_served_by(&self, node: &str) -> Vec<&'static str> {
        PAIRS
            .iter()
            .filter(|(p, _)| {
                self.primary_of(p)
                    .is_some_and(|(comp, _)| host_of(&comp) == Some(node))
            })
            .map(|(p, _)| *p)
            .collect()
    }

    /// Both pairs have a primary and a secondary.
    pub fn steady(&self) -> bool {
        PAIRS.iter().all(|(_, members)| {
            let states: Vec<String> = members
                .iter()
                .filter_map(|(c, _)| self.query(c).map(|(_, s)| s))
                .collect();
            states.iter().filter(|s| *s == "primary").count() == 1
                && states.iter().filter(|s| *s == "secondary").count() == 1
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let names = self.names();
        for n in &names {
            self.kill9(n);
        }
        // A failed test shows what the nodes said last.
        if std::thread::panicking() {
            for n in &names {
                let t = std::fs::read_to_string(self.log(n)).unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                let warned: Vec<&&str> = lines
                    .iter()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .collect();
                eprintln!("---- {n}.log: its last warnings and errors ----");
                for l in &warned[warned.len().saturating_sub(30)..] {
                    eprintln!("{}", l.chars().take(300).collect::<String>());
                }
                eprintln!("---- last lines of {n}.log ----");
                for l in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("{}", l.chars().take(300).collect::<String>());
                }
            }
        }
    }
}

/// Puts release `version` on the load server: the agent binary (or, with
/// `crash`, an executable that crashes at start-up) and a file naming the
/// version, packed with `halyard pack`.
pub fn make_release(release: bool, load_server: &Path, version: &str, crash: bool) -> PathBuf {
    let dir = load_server.join(version);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    let exe = dir.join("bin/halyard");
    if crash {
        std::fs::write(
            &exe,
            format!(
                "#!/bin/sh\necho \"release {version}: crashing at start-up\" >&2\nkill -SEGV $$\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        std::fs::copy(halyard(release), &exe).unwrap();
    }
    std::fs::write(
        dir.join("etc/release.txt"),
        format!("halyard release {version}\n"),
    )
    .unwrap();
    pack(release, &dir, version);
    dir
}

/// Writes a release's manifest with `halyard pack`.
fn pack(release: bool, dir: &Path, version: &str) {
    let st = Command::new(halyard(release))
        .args(["pack", "--release", version])
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "halyard pack failed");
}

/// Puts release `version` on the load server as an executable that never
/// becomes healthy (it sleeps): only the boot supervisor's watchdog ends it.
pub fn make_hanging_release(load_server: &Path, version: &str) -> PathBuf {
    let dir = make_release(false, load_server, version, true);
    let exe = dir.join("bin/halyard");
    std::fs::write(
        &exe,
        format!(
            "#!/bin/sh\necho \"release {version}: hanging at start-up\" >&2\nexec sleep 3600\n"
        ),
    )
    .unwrap();
    pack(false, &dir, version);
    dir
}

/// The node hosting a component of the example.
pub fn host_of(component: &str) -> Option<&'static str> {
    match component {
        "counterd-a" | "ticker-1" => Some("n1"),
        "counterd-b" | "session-b" | "ticker-2" => Some("n2"),
        "session-a" | "ticker-3" => Some("n3"),
        "ticker-4" => Some("n4"),
        _ => None,
    }
}

/// A counterd's count and the state it is in now.
pub fn query_socket(path: &Path) -> Option<(u64, String)> {
    let answer = query_answer(path)?;
    let (n, state) = answer.lines().next()?.trim().split_once(' ')?;
    Some((n.parse().ok()?, state.to_string()))
}

/// A counterd query socket's whole answer.
fn query_answer(path: &Path) -> Option<String> {
    let mut s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A counterd's role history, from its query socket's answer.
pub fn role_history(path: &Path) -> Option<Timeline> {
    Timeline::from_query_answer(&query_answer(path)?)
}

pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the role checker saw.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub samples: u64,
    pub elapsed: Duration,
    /// (pair, time since start, primaries seen) for every sample with two.
    pub double_primaries: Vec<(String, Duration, Vec<String>)>,
    /// Per pair, the longest run of samples without a primary.
    pub longest_gap: Vec<(String, Duration)>,
    /// Per pair, the samples that saw no primary at all.
    pub without_primary: Vec<(String, u64)>,
    /// The first samples without a primary: (pair, time since start, what
    /// each member answered), so a failure says why (no answer, a
    /// lapsed lease, a late promotion).
    pub gap_samples: Vec<(String, Duration, Vec<String>)>,
    /// The first samples with two primaries, likewise.
    pub double_samples: Vec<(String, Duration, Vec<String>)>,
    /// (pair, time since start, highest count a primary showed before,
    /// the lower count a primary showed then): checkpointed state lost.
    pub count_regressions: Vec<(String, Duration, u64, u64)>,
}

impl CheckReport {
    pub fn rate_hz(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Samples every pair member's own role (its query socket) as fast as it
/// can, at least 100 times a second, until stopped. A sample is an
/// instant: the members are asked one after the other, and each tells the
/// role it held at the sample's instant (counterd answers with its recent
/// role history), so a change between two queries is not miscounted as
/// two primaries or none.
#[derive(Debug)]
pub struct Checker {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<CheckReport>>,
    pub live: Arc<Mutex<CheckReport>>,
}

impl Checker {
    pub fn start(c: &Cluster) -> Checker {
        let sockets: Vec<(String, Vec<PathBuf>)> = PAIRS
            .iter()
            .map(|(p, members)| {
                (
                    p.to_string(),
                    members
                        .iter()
                        .filter_map(|(comp, _)| c.query_path(comp))
                        .collect(),
                )
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(CheckReport::default()));
        let (s2, l2) = (stop.clone(), live.clone());
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut r = CheckReport::default();
            let mut highest = vec![0u64; sockets.len()];
            let mut gaps: Vec<(Option<Instant>, Duration)> =
                vec![(None, Duration::ZERO); sockets.len()];
            while !s2.load(Ordering::SeqCst) {
                let t = Instant::now();
                for (i, (pair, paths)) in sockets.iter().enumerate() {
                    let instant = halyard_backend::protocol::unix_ns();
                    let mut primaries = Vec::new();
                    let mut seen = Vec::new();
                    for p in paths {
                        let name = p.file_name().unwrap_or_default().to_string_lossy();
                        let Some(answer) = query_answer(p) else {
                            seen.push(format!("{name}: no answer"));
                            continue;
                        };
                        let timeline = Timeline::from_query_answer(&answer);
                        let role = timeline
                            .as_ref()
                            .and_then(|h| h.at(instant))
                            .map(str::to_string);
                        // The history's tail is what explains a gap.
                        let history = timeline.as_ref().map(|h| h.render()).unwrap_or_default();
                        let tail: Vec<&str> = history.split(' ').rev().take(4).collect();
                        seen.push(format!(
                            "{name} at {instant}: {} (… {})",
                            role.as_deref().unwrap_or("-"),
                            tail.into_iter().rev().collect::<Vec<_>>().join(" ")
                        ));
                        if role.as_deref() != Some("primary") {
                            continue;
                        }
                        primaries.push(p.display().to_string());
                        // A checkpointed count never goes back, whichever
                        // member shows it as primary.
                        let count = answer
                            .split_whitespace()
                            .next()
                            .and_then(|n| n.parse::<u64>().ok());
                        if let Some(n) = count {
                            let high = &mut highest[i];
                            if n < *high {
                                r.count_regressions
                                    .push((pair.clone(), t - start, *high, n));
                            }
                            *high = (*high).max(n);
                        }
                    }
                    if primaries.len() > 1 {
                        r.double_primaries
                            .push((pair.clone(), t - start, primaries.clone()));
                        if r.double_samples.len() < 8 {
                            r.double_samples
                                .push((pair.clone(), t - start, seen.clone()));
                        }
                    }
                    if primaries.is_empty() {
                        if r.gap_samples.len() < 8 {
                            r.gap_samples.push((pair.clone(), t - start, seen));
                        }
                        match r.without_primary.iter_mut().find(|(p, _)| p == pair) {
                            Some((_, n)) => *n += 1,
                            None => r.without_primary.push((pair.clone(), 1)),
                        }
                    }
                    let g = &mut gaps[i];
                    if primaries.is_empty() {
                        let since = *g.0.get_or_insert(t);
                        g.1 = g.1.max(t - since);
                    } else {
                        g.0 = None;
                    }
                }
                r.samples += 1;
                r.elapsed = start.elapsed();
                r.longest_gap = sockets
                    .iter()
                    .zip(&gaps)
                    .map(|((p, _), g)| (p.clone(), g.1))
                    .collect();
                *l2.lock().unwrap() = r.clone();
                // At most 500 Hz, so the checker does not starve the nodes.
                let spent = t.elapsed();
                if spent < Duration::from_millis(2) {
                    std::thread::sleep(Duration::from_millis(2) - spent);
                }
            }
            r
        });
        Checker {
            stop,
            handle: Some(handle),
            live,
        }
    }

    pub fn finish(mut self) -> CheckReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// A private OpenSSH server on a free loopback port, standing in for a
/// non-peer node: `/usr/sbin/sshd -D -e` as the current user with a
/// generated host key and client key (`StrictModes no`, no PAM). Its log
/// is `<dir>/sshd.log`; `dir` is also the "remote" file system's root for
/// the tests.
#[derive(Debug)]
pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    pub client_key: PathBuf,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub host_fingerprint: String,
    pub user: String,
    child: Option<Child>,
}

/// Makes an ed25519 key pair without passphrase at `path` (and `.pub`).
pub fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "halyard-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(st.success());
}

/// A public key file's SHA-256 fingerprint as `ssh-keygen -l` prints it.
pub fn key_fingerprint(public: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .expect("ssh-keygen");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_string()
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("host_ed25519");
        let client_key = dir.join("client_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        std::fs::copy(
            client_key.with_extension("pub"),
            dir.join("authorized_keys"),
        )
        .unwrap();
        let host_fingerprint = key_fingerprint(&host_key.with_extension("pub"));
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
            ),
        )
        .unwrap();
        // sshd running as root wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server) is installed");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            dir: dir.to_path_buf(),
            port,
            client_key,
            host_fingerprint,
            user,
            child: Some(child),
        }
    }

    /// The `[[node]]` lines of a non-peer node reached through this sshd.
    pub fn node_toml(&self, name: &str) -> String {
        format!(
            "[[node]]\nname = \"{name}\"\nnon_peer = true\naddress = \"127.0.0.1\"\n\
             ssh = {{ port = {}, user = \"{}\", key = \"{}\", host_key = \"{}\" }}\n",
            self.port,
            self.user,
            self.client_key.display(),
            self.host_fingerprint
        )
    }
}

impl Sshd {
    /// Sends `signal` (`-STOP`, `-CONT`) to the server and to every
    /// session process it forked: a stalled, not dead, non-peer node (its
    /// TCP port still accepts, nothing answers).
    pub fn signal_all(&self, signal: &str) {
        let Some(c) = &self.child else { return };
        for pid in process_tree(c.id()) {
            // Some have exited since ps listed them.
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// SIGKILL to one process by a pid the test read (from a file, an
/// attribute): never 0, 1 or a negative number, which `kill` takes as
/// "my process group" or "every process" (a member's `pid` reads 0
/// between incarnations, and `kill -9 0` took the whole test run with it,
/// cargo and its shell included, with nothing printed).
pub fn kill9(pid: &str) {
    let n: i64 = pid
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a pid: {pid:?}"));
    assert!(n > 1, "refusing kill -9 {n}: not one process");
    let _ = Command::new("kill")
        .args(["-9", &n.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// `pid` and every process descended from it (children first listed after
/// their parents), read from ps before anything is signalled.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() {
        let out = Command::new("ps")
            .args(["-o", "pid=", "--ppid", &pids[i].to_string()])
            .output()
            .expect("ps (procps) is installed");
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        i += 1;
    }
    pids
}

/// SIGKILL to `pid` and everything descended from it, as a node crash
/// would: components run in process groups of their own, so the agent's
/// group alone would leave them running.
pub fn kill_tree(pid: u32) {
    for p in process_tree(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.signal_all("-CONT");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A service on the "remote" node for the proxy tests, all in `dir`: the
/// proxy component's TOML lines (`command`, `stop`, `health`, `stats`)
/// for an OCF-style `sleep` daemon whose pid is in `<dir>/svc.pid`; every
/// start appends its incarnation to `<dir>/starts`; `stats` prints a
/// metric and raises highTemperature while `<dir>/hot` exists.
pub fn remote_service_toml(dir: &Path) -> String {
    let d = dir.display();
    // Alive, not a zombie (killed daemons may wait long for a reaper; a
    // zombie's command line is empty) and ours (a stale pid may be another
    // process's now).
    let alive = "alive() { [ \"$(tr '\\0' ' ' < /proc/\"$1\"/cmdline 2>/dev/null)\" = 'sleep 100000 ' ]; }; ";
    let start = format!(
        "{alive}if [ -f {d}/svc.pid ] && alive $(cat {d}/svc.pid); then exit 0; fi; \
         sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > {d}/svc.pid; echo $! >> {d}/all.pids; \
         echo $HALYARD_INCARNATION >> {d}/starts"
    );
    // Only the service itself: a stale pid may be another process's now.
    let stop =
        format!("{alive}p=$(cat {d}/svc.pid) && if alive $p; then kill $p; fi; rm -f {d}/svc.pid");
    let health = format!("{alive}alive $(cat {d}/svc.pid)");
    let stats = format!(
        "echo '# np stats'; echo \"metric sessions $(wc -l < {d}/starts) count\"; \
         if [ -f {d}/hot ]; then echo 'alarm raise highTemperature major inlet at 71 C'; \
         else echo 'alarm clear highTemperature'; fi"
    );
    let q = |s: &str| format!("[\"sh\", \"-c\", {}]", toml_str(s));
    format!(
        "command = {}\nstop = {}\nhealth = {}\nstats = {}\n",
        q(&start),
        q(&stop),
        q(&health),
        q(&stats)
    )
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}

/// The command line of a remote service (`/proc/<pid>/cmdline`).
const SERVICE_CMDLINE: &[u8] = b"sleep\x00100000\x00";

/// Kills every remote service ever started in `dir` when dropped (a
/// failed test leaves none behind).
#[derive(Debug)]
pub struct RemoteServices(pub PathBuf);

impl Drop for RemoteServices {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(self.0.join("all.pids")).unwrap_or_default();
        // Only those still running: the pid of one that died long ago may
        // be another process's now (pid_max is 32,768 here, and a test run
        // starts tens of thousands), and a kill -9 of it took the test
        // runner's own shell with it.
        for p in pids.split_whitespace().filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == SERVICE_CMDLINE)
        }) {
            let _ = Command::new("kill")
                .args(["-9", p])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The pid of the remote service, when it runs.
pub fn remote_service_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("svc.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let zombie = status
        .lines()
        .any(|l| l.starts_with("State:") && l.contains('Z'));
    (!zombie).then_some(pid)
}
