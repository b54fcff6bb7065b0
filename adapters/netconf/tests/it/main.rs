//! End-to-end tests of the NETCONF face with real clients: ncclient
//! (paramiko), libssh2 (ssh2-python), OpenSSH `ssh -s netconf`,
//! netconf-console2, and yanglint for the data of a full `<get>`.
//!
//! Each test starts the server in-process on 127.0.0.1:0 over
//! `memory::demo_element()` with its own temporary directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::memory::{MemoryModel, demo_element};
use halyard_cluster_model::model::{AdminState, PerceivedSeverity};
use halyard_cluster_model::port::InformationModel;
use halyard_cluster_model::{ObjectName, SchemaEnum, Value};
use halyard_netconf::{NetconfConfig, NetconfServer, Stats, UserConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

/// The file name of the schema's YANG module.
fn ours() -> String {
    let m = &halyard_cluster_model::SCHEMA.module;
    format!("{}@{}.yang", m.yang_module, m.revision)
}

const PASSWORD: &str = "admin-pw";
/// Generous: the machine is shared and Python starts slowly.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// The helpers every Python script imports.
const NCHELP: &str = r#"
import sys, time, socket, re
import paramiko
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

PORT = int(sys.argv[1])
HC = "urn:halyard:params:xml:ns:yang:halyard-cluster"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"

def connect(user="admin", password="admin-pw"):
    return manager.connect(host="127.0.0.1", port=PORT, username=user, password=password,
                           hostkey_verify=False, allow_agent=False, look_for_keys=False,
                           timeout=60, device_params={"name": "default"})

def raw_channel(user="admin", password="admin-pw"):
    t = paramiko.Transport(("127.0.0.1", PORT))
    t.connect(username=user, password=password)
    ch = t.open_session()
    ch.invoke_subsystem("netconf")
    ch.settimeout(60)
    return t, ch

def read_until(ch, marker):
    buf = b""
    while marker not in buf:
        d = ch.recv(65536)
        if not d:
            break
        buf += d
    return buf

HELLO10 = b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>'
HELLO11 = b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>]]>]]>'

def chunk(msg):
    return b"\n#%d\n%s\n##\n" % (len(msg), msg)

def rpc(body, mid="1"):
    return ('<rpc xmlns="%s" message-id="%s">%s</rpc>' % (NC, mid, body)).encode()

def session_id_of(hello):
    return int(re.search(rb"<session-id>(\d+)</session-id>", hello).group(1))
"#;

struct Server {
    port: u16,
    model: Arc<MemoryModel>,
    stats: Arc<Stats>,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// pyang ships the IETF modules get-schema serves in these tests.
fn pyang_modules() -> Vec<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import pyang,os,sys;print(os.path.join(sys.prefix,'share','yang','modules'))",
        ])
        .output()
        .expect("python3 runs");
    let base = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    vec![base.join("ietf"), base.join("iana")]
}

fn key_user_config(dir: &Path) -> UserConfig {
    let key = dir.join("client_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success());
    let public = std::fs::read_to_string(dir.join("client_key.pub")).unwrap();
    UserConfig {
        name: "keyuser".into(),
        password: None,
        authorized_keys: vec![public],
        access: Default::default(),
    }
}

async fn start_with(f: impl FnOnce(&mut NetconfConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let model = Arc::new(demo_element());
    let mut config = NetconfConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("keys/ssh_host_ed25519_key"),
    );
    config.users = vec![
        UserConfig {
            name: "admin".into(),
            password: Some(PASSWORD.into()),
            authorized_keys: Vec::new(),
            access: halyard_netconf::Access::Admin,
        },
        UserConfig {
            name: "oper".into(),
            password: Some("oper-pw".into()),
            authorized_keys: Vec::new(),
            access: Default::default(),
        },
        key_user_config(dir.path()),
    ];
    config.auth_rejection_time = Duration::from_millis(200);
    config.read_only_users = vec!["oper".into()];
    let trace = dir.path().join("trace");
    std::fs::create_dir_all(&trace).unwrap();
    config.trace_dir = Some(trace);
    f(&mut config);
    let server = NetconfServer::bind(config, model.clone() as Arc<dyn InformationModel>)
        .await
        .expect("server binds");
    let port = server.local_addrs()[0].port();
    let stats = server.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    std::fs::write(dir.path().join("nchelp.py"), NCHELP).unwrap();
    Server {
        port,
        model,
        stats,
        dir,
        stop: Some(tx),
        task,
    }
}

async fn start() -> Server {
    start_with(|_| {}).await
}

impl Server {
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("from nchelp import *\n{body}")).unwrap();
        p
    }

    /// Runs a Python script (with the helpers) to completion; returns stdout.
    async fn python(&self, name: &str, body: &str) -> String {
        let p = self.script(name, body);
        let out = tokio::time::timeout(
            SCRIPT_TIMEOUT,
            Command::new("python3")
                .arg(&p)
                .arg(self.port.to_string())
                .current_dir(self.dir.path())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} timed out"))
        .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        stdout
    }

    async fn admin_state(&self, name: &str) -> Value {
        self.model
            .get(&ObjectName::parse(name).unwrap())
            .await
            .unwrap()
            .get("AdminState")
            .unwrap()
            .clone()
    }

    /// Stops the server, then checks with yanglint every reply and every
    /// notification it sent during the test (the message trace).
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("server stops")
            .expect("server task ends cleanly");
        let trace = self.dir.path().join("trace");
        let yang = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../yang");
        let r = tokio::task::spawn_blocking(move || {
            halyard_netconf::conformance::check_trace(&trace, &yang)
        })
        .await
        .unwrap();
        assert!(r.is_clean(), "what the server sent: {}", r.summary());
    }
}

fn locked() -> Value {
    Value::Enum(AdminState::Locked.value())
}

fn unlocked() -> Value {
    Value::Enum(AdminState::Unlocked.value())
}

fn line_value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in output:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ncclient_negotiates_base11_reads_and_commits_the_candidate() {
    let s = start().await;
    let out = s
        .python(
            "basics.py",
            r#"
from ncclient.transport.session import NetconfBase
m = connect()
print("base=%s" % ("1.1" if m._session._base == NetconfBase.BASE_11 else "1.0"))
print("session=%d" % int(m.session_id))
caps = list(m.server_capabilities)
print("caps_ok=%s" % (all(any(c.startswith(x) for c in caps) for x in [
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:xpath:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
    "urn:ietf:params:netconf:capability:with-defaults:1.0",
    "urn:ietf:params:netconf:capability:yang-library:1.0"]) and
    # A YANG 1.1 module is announced through the yang-library only (RFC 7950 5.6.4).
    not any("module=halyard-cluster" in c for c in caps)))
r = m.get_config(source="running")
x = r.data_xml
print("running_has_fan=%s" % ("<name>ne=1/shelf=1/fan=1</name>" in x))
print("running_has_state=%s" % ("<speed>" in x))
cfg = '''<config xmlns="%s"><element xmlns="%s"><fan><name>ne=1/shelf=1/fan=1</name>
<admin-state>locked</admin-state></fan></element></config>''' % (NC, HC)
m.edit_config(target="candidate", config=cfg)
c = m.get_config(source="candidate").data_xml
print("candidate_locked=%s" % bool(re.search(r"fan=1</name>\s*<admin-state>locked", c)))
r = m.get_config(source="running").data_xml
print("running_still_unlocked=%s" % bool(re.search(r"fan=1</name>\s*<admin-state>unlocked", r)))
m.commit()
r = m.get_config(source="running").data_xml
print("running_locked=%s" % bool(re.search(r"fan=1</name>\s*<admin-state>locked", r)))
# subtree filter on operational state
f = '<element xmlns="%s"><fan><name>ne=1/shelf=1/fan=2</name><speed/></fan></element>' % HC
g = m.get(filter=("subtree", f)).data_xml
print("subtree=%s" % ("<speed>4150</speed>" in g and "fan=1" not in g and "psu" not in g))
# XPath filter with a key predicate
g = m.get(filter=("xpath", ({"hc": HC}, "/hc:element/hc:power-supply[hc:name='ne=1/shelf=1/psu=2']/hc:output-power"))).data_xml
print("xpath=%s" % ("<output-power>295</output-power>" in g and "psu=1" not in g))
# monitoring: our own session is listed
g = m.get(filter=("subtree", '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><sessions/></netconf-state>')).data_xml
print("monitoring=%s" % ("<session-id>%d</session-id>" % int(m.session_id) in g and "<username>admin</username>" in g))
# get-schema returns the module text
sch = m.get_schema("halyard-cluster")
print("schema=%s" % ("module halyard-cluster" in sch.data))
# discard-changes, with-defaults, validate
m.edit_config(target="candidate", config=cfg.replace("locked", "unlocked"))
m.discard_changes()
c = m.get_config(source="candidate").data_xml
print("discarded=%s" % bool(re.search(r"fan=1</name>\s*<admin-state>locked", c)))
m.validate(source="candidate")
print("validated=True")
m.close_session()
"#,
        )
        .await;
    assert_eq!(line_value(&out, "base"), "1.1", "{out}");
    for key in [
        "caps_ok",
        "running_has_fan",
        "candidate_locked",
        "running_still_unlocked",
        "running_locked",
        "subtree",
        "xpath",
        "monitoring",
        "schema",
        "discarded",
        "validated",
    ] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    assert_eq!(line_value(&out, "running_has_state"), "False", "{out}");
    // The commit reached the model as one transaction.
    assert_eq!(s.admin_state("ne=1/shelf=1/fan=1").await, locked());
    assert_eq!(s.admin_state("ne=1/shelf=1/fan=2").await, unlocked());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_commit_rolls_back_after_its_timeout() {
    let s = start().await;
    let out = s
        .python(
            "confirmed.py",
            r#"
m = connect()
cfg = '''<config xmlns="%s"><element xmlns="%s"><power-supply><name>ne=1/shelf=1/psu=1</name>
<admin-state>locked</admin-state></power-supply></element></config>''' % (NC, HC)
m.edit_config(target="candidate", config=cfg)
m.commit(confirmed=True, timeout="2")
r = m.get_config(source="running").data_xml
print("applied=%s" % bool(re.search(r"psu=1</name>\s*<admin-state>locked", r)))
time.sleep(5)
r = m.get_config(source="running").data_xml
print("rolled_back=%s" % bool(re.search(r"psu=1</name>\s*<admin-state>unlocked", r)))
# A confirmed commit that is confirmed stays.
m.edit_config(target="candidate", config=cfg)
m.commit(confirmed=True, timeout="2")
m.commit()
time.sleep(3)
r = m.get_config(source="running").data_xml
print("confirmed_stays=%s" % bool(re.search(r"psu=1</name>\s*<admin-state>locked", r)))
m.close_session()
"#,
        )
        .await;
    for key in ["applied", "rolled_back", "confirmed_stays"] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    assert_eq!(s.admin_state("ne=1/shelf=1/psu=1").await, locked());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_contention_reports_the_holder_and_kill_session_releases_it() {
    let s = start().await;
    let out = s
        .python(
            "locks.py",
            r#"
# A read-only user reads but gets access-denied for any change.
ro = connect(user="oper", password="oper-pw")
print("read_only_reads=%s" % ("fan=1" in ro.get_config(source="running").data_xml))
try:
    ro.edit_config(target="running", config='<config xmlns="%s"><element xmlns="%s"><fan><name>ne=1/shelf=1/fan=1</name><admin-state>locked</admin-state></fan></element></config>' % (NC, HC))
    print("read_only_edit_denied=False")
except RPCError as e:
    print("read_only_edit_denied=%s" % (e.tag == "access-denied" and e.type == "protocol"))
try:
    ro.lock("running")
    print("read_only_lock_denied=False")
except RPCError as e:
    print("read_only_lock_denied=%s" % (e.tag == "access-denied"))
try:
    ro.dispatch(to_ele('<action xmlns="urn:ietf:params:xml:ns:yang:1"><element xmlns="%s"><fan><name>ne=1/shelf=1/fan=1</name><lock/></fan></element></action>' % HC))
    print("read_only_action_denied=False")
except RPCError as e:
    print("read_only_action_denied=%s" % (e.tag == "access-denied"))
ro.close_session()
m1 = connect()
m2 = connect()
m1.lock("running")
try:
    m2.lock("running")
    print("denied=False")
except RPCError as e:
    print("denied=%s" % (e.tag == "lock-denied"))
    print("holder_ok=%s" % ("<session-id>%d</session-id>" % int(m1.session_id) in e.info.replace("nc:", "")))
    print("type=%s" % e.type)
# An edit of the locked datastore by the other session is refused with in-use.
cfg = '''<config xmlns="%s"><element xmlns="%s"><fan><name>ne=1/shelf=1/fan=2</name>
<admin-state>locked</admin-state></fan></element></config>''' % (NC, HC)
try:
    m2.edit_config(target="running", config=cfg)
    print("in_use=False")
except RPCError as e:
    print("in_use=%s" % (e.tag == "in-use"))
# Candidate with another session's changes cannot be locked.
m1.edit_config(target="candidate", config=cfg)
try:
    m2.lock("candidate")
    print("cand_denied=False")
except RPCError as e:
    print("cand_denied=%s" % (e.tag == "lock-denied"))
m2.kill_session(m1.session_id)
m2.lock("running")
print("relocked=True")
m2.edit_config(target="running", config=cfg)
m2.unlock("running")
m2.close_session()
"#,
        )
        .await;
    for key in [
        "read_only_reads",
        "read_only_edit_denied",
        "read_only_lock_denied",
        "read_only_action_denied",
        "denied",
        "holder_ok",
        "in_use",
        "cand_denied",
        "relocked",
    ] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    assert_eq!(line_value(&out, "type"), "protocol", "{out}");
    assert_eq!(s.admin_state("ne=1/shelf=1/fan=2").await, locked());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_delivered_live_and_replayed() {
    let s = start().await;
    let alarm = |text: &str| {
        vec![
            Value::Str("ne=1/alarm=7".into()),
            Value::Str("ne=1/shelf=1/fan=1".into()),
            Value::Absent,
            Value::Absent,
            Value::Enum(PerceivedSeverity::Major.value()),
            Value::Str("fan stalled".into()),
            Value::Str(text.into()),
            Value::Absent,
        ]
    };
    let fan = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
    // An alarm from before the subscription, for replay.
    s.model
        .publish("AlarmRaised", &fan, alarm("earlier"))
        .unwrap();
    let p = s.script(
        "notif.py",
        r#"
m = connect()
m.create_subscription(filter=("subtree", '<alarm-raised xmlns="%s"/>' % HC), start_time="2000-01-01T00:00:00Z")
n = m.take_notification(timeout=60)
open("notif-alarm.xml", "w").write(n.notification_xml)
print("replayed=%s" % ("earlier" in n.notification_xml and "<alarm-raised" in n.notification_xml), flush=True)
n = m.take_notification(timeout=60)
print("replay_complete=%s" % ("replayComplete" in n.notification_xml), flush=True)
# Interleave: RPCs work on a subscribed session.
m.get_config(source="running")
print("SUBSCRIBED", flush=True)
n = m.take_notification(timeout=60)
print("live=%s" % ("live one" in n.notification_xml and "<severity>major</severity>" in n.notification_xml), flush=True)
m2 = connect()
try:
    m2.create_subscription(start_time="2099-01-01T00:00:00Z")
    print("future_refused=False")
except RPCError as e:
    print("future_refused=%s" % (e.tag == "bad-element"))
# A filtered subscription with a stop time in the past: the alarms in the
# window are filtered out, then replayComplete and notificationComplete.
m2.create_subscription(filter=("subtree", '<state-changed xmlns="%s"/>' % HC),
                       start_time="2000-01-01T00:00:00Z",
                       stop_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1)))
n = m2.take_notification(timeout=60)
print("filtered_first_is_replay_complete=%s" % ("replayComplete" in n.notification_xml))
n = m2.take_notification(timeout=60)
print("complete=%s" % ("notificationComplete" in n.notification_xml))
# An XPath-filtered live subscription that ends at its stopTime.
m3 = connect()
stop = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 8))
m3.create_subscription(filter=("xpath", ({"hc": HC}, "/hc:alarm-raised[hc:severity='critical']")),
                       start_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)),
                       stop_time=stop)
print("XPATH", flush=True)
got = []
while True:
    n = m3.take_notification(timeout=60)
    if n is None:
        break
    got.append(n.notification_xml)
    if "notificationComplete" in n.notification_xml:
        break
print("xpath_filtered=%s" % (len(got) == 3 and "replayComplete" in got[0] and "fans on fire" in got[1] and "notificationComplete" in got[2]))
# RFC 6470 events of the server: a config change and a killed session.
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
m4 = connect()
m4.create_subscription(filter=['<netconf-config-change xmlns="%s"/>' % NCN, '<netconf-session-end xmlns="%s"/>' % NCN])
m5 = connect()
m5.edit_config(target="running", config='<config xmlns="%s"><element xmlns="%s"><fan><name>ne=1/shelf=1/fan=2</name><admin-state>locked</admin-state></fan></element></config>' % (NC, HC))
n = m4.take_notification(timeout=60).notification_xml
open("notif-change.xml", "w").write(n)
print("config_change=%s" % ("<netconf-config-change" in n and "<session-id>%d</session-id>" % int(m5.session_id) in n
      and "fan=2']/hc:admin-state</target>" in n and "<operation>replace</operation>" in n), flush=True)
m4.kill_session(m5.session_id)
n = m4.take_notification(timeout=60).notification_xml
open("notif-end.xml", "w").write(n)
print("session_end=%s" % ("<netconf-session-end" in n and "<killed-by>%d</killed-by>" % int(m4.session_id) in n
      and "<termination-reason>killed</termination-reason>" in n), flush=True)
m.close_session()
m2.close_session()
m3.close_session()
m4.close_session()
"#,
    );
    let mut child = Command::new("python3")
        .arg(&p)
        .arg(s.port.to_string())
        .current_dir(s.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = String::new();
    tokio::time::timeout(SCRIPT_TIMEOUT, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            out.push_str(&l);
            out.push('\n');
            if l == "SUBSCRIBED" {
                s.model
                    .publish("AlarmRaised", &fan, alarm("live one"))
                    .unwrap();
            }
            if l == "XPATH" {
                // Only the critical one passes the XPath filter.
                s.model
                    .publish("AlarmRaised", &fan, alarm("major again"))
                    .unwrap();
                let mut v = alarm("fans on fire");
                v[4] = Value::Enum(PerceivedSeverity::Critical.value());
                s.model.publish("AlarmRaised", &fan, v).unwrap();
            }
        }
    })
    .await
    .expect("notification script finishes");
    let status = child.wait().await.unwrap();
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(status.success(), "{out}\n{err}");
    for key in [
        "replayed",
        "replay_complete",
        "live",
        "future_refused",
        "filtered_first_is_replay_complete",
        "complete",
        "xpath_filtered",
        "config_change",
        "session_end",
    ] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}\n{err}");
    }
    assert!(Stats::get(&s.stats.out_notifications) >= 5);
    // The notifications validate against their modules.
    let yang = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../yang");
    let ietf = &pyang_modules()[0];
    for (file, module) in [
        ("notif-alarm.xml", ietf.join("ietf-yang-types.yang")),
        (
            "notif-change.xml",
            ietf.join("ietf-netconf-notifications.yang"),
        ),
        (
            "notif-end.xml",
            ietf.join("ietf-netconf-notifications.yang"),
        ),
    ] {
        let o = Command::new("yanglint")
            .arg("-p")
            .arg(ietf)
            .arg("-p")
            .arg(&yang)
            .args(["-t", "nc-notif", "-f", "xml"])
            .arg(&module)
            .arg(yang.join(ours()))
            .arg(s.dir.path().join(file))
            .output()
            .await
            .unwrap();
        assert!(
            o.status.success(),
            "yanglint rejects {file}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(s.dir.path().join(file)).unwrap_or_default()
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_the_offending_session() {
    let s = start_with(|c| c.limits.max_message_size = 64 * 1024).await;
    let out = s
        .python(
            "bad.py",
            r#"
good = connect()
results = {}

# Wrong password: refused, counted.
try:
    connect(password="wrong")
    results["wrong_password"] = False
except Exception as e:
    results["wrong_password"] = "uthentication" in type(e).__name__ + str(e)

# Malformed XML (base:1.0): malformed-message, the session survives.
t, ch = raw_channel()
h = read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
ch.sendall(b"<rpc xmlns='" + NC.encode() + b"' message-id='1'><get></rpc>]]>]]>")
r = read_until(ch, b"]]>]]>")
results["malformed"] = b"<error-tag>malformed-message</error-tag>" in r and b"<error-type>rpc</error-type>" in r
ch.sendall(b'<rpc xmlns="urn:not-netconf" message-id="2"><get/></rpc>]]>]]>')
r = read_until(ch, b"]]>]]>")
results["wrong_ns"] = b"<error-tag>unknown-namespace</error-tag>" in r and b"<bad-namespace>urn:not-netconf</bad-namespace>" in r
ch.sendall(rpc('<get-config><source><running/></source><filter type="subtree"><element xmlns="%s"><shelf/></element></filter></get-config>' % HC, "3") + b"]]>]]>")
r = read_until(ch, b"]]>]]>")
results["survives"] = b"<name>ne=1/shelf=1</name>" in r and b'message-id="3"' in r
ch.sendall(rpc('<frobnicate/>', "4") + b"]]>]]>")
r = read_until(ch, b"]]>]]>")
results["unknown_op"] = b"<error-tag>operation-not-supported</error-tag>" in r
ch.sendall(b'<rpc xmlns="' + NC.encode() + b'"><get/></rpc>]]>]]>')
r = read_until(ch, b"]]>]]>")
results["missing_attr"] = b"<error-tag>missing-attribute</error-tag>" in r and b"<bad-attribute>message-id</bad-attribute>" in r
t.close()

# Edit errors carry tag, type and path.
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
def edit(body, mid):
    ch.sendall(rpc('<edit-config><target><candidate/></target><config><element xmlns="%s">%s</element></config></edit-config>' % (HC, body), mid) + b"]]>]]>")
    return read_until(ch, b"]]>]]>")
r = edit('<fan><name>ne=1/shelf=1/fan=1</name><admin-state>sideways</admin-state></fan>', "5")
results["invalid_value"] = b"<error-tag>invalid-value</error-tag>" in r and b"<error-type>application</error-type>" in r and b"hc:fan[hc:name='ne=1/shelf=1/fan=1']/hc:admin-state</error-path>" in r
r = edit('<fan><name>ne=1/shelf=1/fan=1</name><colour>red</colour></fan>', "6")
results["unknown_element"] = b"<error-tag>unknown-element</error-tag>" in r and b"<bad-element>colour</bad-element>" in r
r = edit('<fan xmlns:nc="%s" nc:operation="create"><name>ne=1/shelf=1/fan=1</name></fan>' % NC, "7")
results["data_exists"] = b"<error-tag>data-exists</error-tag>" in r
r = edit('<fan xmlns:nc="%s" nc:operation="delete"><name>ne=1/shelf=1/fan=9</name></fan>' % NC, "8")
results["data_missing"] = b"<error-tag>data-missing</error-tag>" in r
r = edit('<fan><admin-state>locked</admin-state></fan>', "9")
results["missing_element"] = b"<error-tag>missing-element</error-tag>" in r
ch.sendall(rpc('<lock><target><startup/></target></lock>', "10") + b"]]>]]>")
r = read_until(ch, b"]]>]]>")
results["bad_target"] = b"<error-tag>invalid-value</error-tag>" in r
t.close()

# Broken chunk header (base:1.1): that session is closed.
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO11)
ch.sendall(b"\n#abc\n<rpc/>\n##\n")
r = b""
try:
    while True:
        d = ch.recv(65536)
        if not d:
            break
        r += d
    results["bad_chunk_closed"] = True
except socket.timeout:
    results["bad_chunk_closed"] = False
results["bad_chunk_reported"] = b"malformed-message" in r
t.close()

# Oversize message: closed.
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
try:
    ch.sendall(b"<rpc>" + b"x" * (200 * 1024))
except Exception:
    pass
try:
    r = read_until(ch, b"\x00never")
    results["oversize_closed"] = True
except socket.timeout:
    results["oversize_closed"] = False
t.close()

# A client that vanishes in the middle of a chunk.
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO11)
ch.sendall(b"\n#500\n<rpc xmlns=")
time.sleep(0.2)
t.sock.close()

# A bad hello.
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(b"<hello xmlns='urn:wrong'/>]]>]]>")
try:
    read_until(ch, b"\x00never")
    results["bad_hello_closed"] = True
except socket.timeout:
    results["bad_hello_closed"] = False
t.close()

# The first session still works.
g = good.get_config(source="running").data_xml
results["good_still_served"] = "<name>ne=1/shelf=1/fan=1</name>" in g
good.close_session()
for k, v in results.items():
    print("%s=%s" % (k, v))
"#,
        )
        .await;
    for key in [
        "wrong_password",
        "malformed",
        "wrong_ns",
        "survives",
        "unknown_op",
        "missing_attr",
        "invalid_value",
        "unknown_element",
        "data_exists",
        "data_missing",
        "missing_element",
        "bad_target",
        "bad_chunk_closed",
        "bad_chunk_reported",
        "oversize_closed",
        "bad_hello_closed",
        "good_still_served",
    ] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    // Malformed SSH: no identification line, and a packet that is not one
    // after it. Each connection is refused and counted.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let before = Stats::get(&s.stats.ssh_errors);
    for text in [
        &b"<hello/>]]>]]>\r\n"[..],
        &b"SSH-2.0-garbage\r\n\x00\x00\x00\x05\x00\x00\x00\x00\x00]]>]]>"[..],
    ] {
        let mut t = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .unwrap();
        t.write_all(text).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), t.read_to_end(&mut answer))
            .await
            .expect("the server closes a malformed SSH connection")
            .ok();
    }
    assert_eq!(Stats::get(&s.stats.ssh_errors), before + 2, "{:?}", s.stats);
    assert!(Stats::get(&s.stats.auth_failures) >= 1);
    assert!(Stats::get(&s.stats.framing_errors) >= 3, "{:?}", s.stats);
    assert!(Stats::get(&s.stats.in_bad_hellos) >= 1);
    // The server still accepts new sessions.
    let out = s
        .python(
            "after.py",
            "m = connect()\nprint('ok=%s' % ('fan=2' in m.get_config(source='running').data_xml))\n",
        )
        .await;
    assert_eq!(line_value(&out, "ok"), "True");
    s.stop().await;
}

/// The lost-hello race (CRATES.md §2): libssh2 clients that write their
/// hello right after the subsystem request, many at once, plus paramiko;
/// every session must receive the server hello and a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_is_never_lost_under_many_concurrent_eager_clients() {
    // libssh2 for Python; tests/run.sh installs ncclient but not this one yet.
    let have = Command::new("python3")
        .args(["-c", "import ssh2"])
        .status()
        .await
        .unwrap();
    if !have.success() {
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "ssh2-python"])
            .status()
            .await
            .unwrap();
        assert!(st.success(), "cannot install ssh2-python from PyPI");
    }
    let s = start().await;
    let out = s
        .python(
            "race.py",
            r#"
import threading
from ssh2.session import Session as S2
GET = b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get-config><source><running/></source></get-config></rpc>]]>]]>'
ok = []
bad = []
def libssh2_once(i):
    try:
        sock = socket.create_connection(("127.0.0.1", PORT), timeout=60)
        s = S2()
        s.handshake(sock)
        s.userauth_password("admin", "admin-pw")
        ch = s.open_session()
        ch.subsystem("netconf")
        # Write at once, before reading anything: the pattern that lost hellos;
        # in one write or two.
        if i % 2:
            ch.write(HELLO10 + GET)
        else:
            ch.write(HELLO10)
            ch.write(GET)
        buf = b""
        deadline = time.time() + 60
        while buf.count(b"]]>]]>") < 2 and time.time() < deadline:
            n, d = ch.read(65536)
            if n > 0:
                buf += d
            elif n == 0 and ch.eof():
                break
        if b"<hello" in buf and b"<session-id>" in buf and b"fan=1" in buf:
            ok.append(i)
        else:
            bad.append((i, buf[:200]))
        ch.close()
        s.disconnect()
        sock.close()
    except Exception as e:
        bad.append((i, repr(e)))

def paramiko_once(i):
    try:
        t = paramiko.Transport(("127.0.0.1", PORT))
        t.connect(username="admin", password="admin-pw")
        ch = t.open_session()
        ch.settimeout(60)
        ch.invoke_subsystem("netconf")
        ch.sendall(HELLO10 + GET)
        buf = b""
        while buf.count(b"]]>]]>") < 2:
            d = ch.recv(65536)
            if not d:
                break
            buf += d
        if b"<hello" in buf and b"fan=1" in buf:
            ok.append(i)
        else:
            bad.append((i, buf[:200]))
        t.close()
    except Exception as e:
        bad.append((i, repr(e)))

total = 0
for round in range(5):
    threads = [threading.Thread(target=libssh2_once, args=(round * 100 + k,)) for k in range(10)]
    threads += [threading.Thread(target=paramiko_once, args=(round * 100 + 50 + k,)) for k in range(3)]
    total += len(threads)
    for th in threads: th.start()
    for th in threads: th.join()
print("total=%d" % total)
print("ok=%d" % len(ok))
print("bad=%r" % bad)
"#,
        )
        .await;
    assert_eq!(line_value(&out, "bad"), "[]", "{out}");
    assert_eq!(line_value(&out, "ok"), line_value(&out, "total"), "{out}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_subsystem_with_a_public_key() {
    let s = start().await;
    let key = s.dir.path().join("client_key");
    let input = format!(
        "{}{}",
        r#"<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>"#,
        r#"<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7"><get><filter type="subtree"><element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><node/></element></filter></get></rpc>]]>]]><rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="8"><close-session/></rpc>]]>]]>"#
    );
    let mut child = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ])
        .arg(&key)
        .args([
            "-p",
            &s.port.to_string(),
            "-s",
            "keyuser@127.0.0.1",
            "netconf",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("ssh finishes")
        .unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("<session-id>"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("<name>ne=1/shelf=1/node=a</name>"), "{text}");
    assert!(text.contains(r#"message-id="8"><ok/>"#), "{text}");
    assert!(!text.contains("fan=1"), "{text}");
    // Commands and shells are refused: only the netconf subsystem is served.
    let o = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ])
        .arg(&key)
        .args(["-p", &s.port.to_string(), "keyuser@127.0.0.1", "id"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    // A key that is not authorized is refused, logged and counted.
    let other = s.dir.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let failures = Stats::get(&s.stats.auth_failures);
    let o = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ])
        .arg(&other)
        .args([
            "-p",
            &s.port.to_string(),
            "-s",
            "keyuser@127.0.0.1",
            "netconf",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(Stats::get(&s.stats.auth_failures) > failures);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yanglint_validates_a_full_get_and_every_served_module() {
    let s = start().await;
    // A user with an SSH key and SNMP keys: their secrets (never read
    // back, not mandatory in the module) leave the data valid.
    {
        use halyard_cluster_model::Value;
        use halyard_cluster_model::users::names;
        let str = |v: &str| Value::Str(v.to_string());
        s.model
            .insert(
                names::USER,
                "ne=1/user=nina",
                &[(
                    names::PASSWORD,
                    str("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
                )],
            )
            .unwrap();
        s.model
            .insert(
                names::KEY,
                "ne=1/user=nina/sshkey=laptop",
                &[(
                    names::KEY_ATTR,
                    str("SHA256:fvtvJzYQtMSrYGTFtSsDVXY7PeaWk3lbCYH0f7x9mAk"),
                )],
            )
            .unwrap();
        s.model
            .insert(
                names::SNMP_KEY,
                "ne=1/user=nina/snmpkey=80007ed905775617ee840fbc25752c3bb9",
                &[
                    (names::AUTH_PROTOCOL, Value::Enum(4)),
                    (names::AUTH_KEY, str(&"ab".repeat(32))),
                ],
            )
            .unwrap();
    }
    let mods = s.dir.path().join("mods");
    std::fs::create_dir_all(&mods).unwrap();
    let out = s
        .python(
            "yl.py",
            r#"
from lxml import etree
m = connect()
r = m.get()
with open("get-data.xml", "wb") as f:
    f.write(b"".join(etree.tostring(c) for c in r.data_ele))
r = m.get_config(source="running")
with open("get-config-data.xml", "wb") as f:
    f.write(b"".join(etree.tostring(c) for c in r.data_ele))
g = m.get(filter=("subtree", '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas/></netconf-state>')).data_ele
names = []
for sch in g.iter("{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}schema"):
    ident = sch.find("{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}identifier").text
    ver = sch.find("{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}version").text
    text = m.get_schema(ident, version=ver).data
    with open("mods/%s@%s.yang" % (ident, ver), "w") as f:
        f.write(text)
    names.append(ident)
print("modules=%s" % ",".join(sorted(names)))
m.close_session()
"#,
        )
        .await;
    let modules = line_value(&out, "modules").to_string();
    for m in [
        "halyard-cluster",
        "ietf-netconf",
        "ietf-netconf-monitoring",
        "ietf-netconf-with-defaults",
        "ietf-netconf-notifications",
        "ietf-netconf-acm",
        "notifications",
        "nc-notifications",
        "ietf-yang-library",
        "ietf-yang-types",
        "ietf-inet-types",
        "ietf-datastores",
        "ietf-hardware",
        "iana-hardware",
        "ietf-alarms",
        halyard_cluster_model::alarm_types::NAME,
        "ietf-system",
        "iana-crypt-hash",
        "ietf-netconf-nmda",
    ] {
        assert!(
            modules.split(',').any(|x| x == m),
            "{m} not served: {modules}"
        );
    }
    // Every module get-schema returned compiles with yanglint (imports from the same dir).
    for entry in std::fs::read_dir(&mods).unwrap() {
        let p = entry.unwrap().path();
        let o = Command::new("yanglint")
            .arg("-p")
            .arg(&mods)
            .arg(&p)
            .output()
            .await
            .unwrap();
        assert!(
            o.status.success(),
            "yanglint rejects {}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The data of a full <get> validates against the modules it uses.
    let data = s.dir.path().join("get-data.xml");
    let our_file = ours();
    let alarm_types_file = format!(
        "{}@{}.yang",
        halyard_cluster_model::alarm_types::NAME,
        halyard_cluster_model::SCHEMA.module.revision
    );
    let wanted = [
        our_file.as_str(),
        "ietf-netconf-monitoring@2010-10-04.yang",
        "ietf-yang-library@2019-01-04.yang",
        "ietf-datastores@2018-02-14.yang",
        "nc-notifications@2008-07-14.yang",
        "ietf-hardware@2018-03-13.yang",
        "iana-hardware@2018-03-13.yang",
        "ietf-alarms@2019-09-11.yang",
        "ietf-alarms-x733@2019-09-11.yang",
        &alarm_types_file,
        "ietf-system@2014-08-06.yang",
        "ietf-netconf-acm@2018-02-14.yang",
    ];
    let o = Command::new("yanglint")
        .arg("-p")
        .arg(&mods)
        .args(["-t", "get", "-f", "xml"])
        .args(wanted.iter().map(|w| mods.join(w)))
        .arg(&data)
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "yanglint rejects the <get> data: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    // And the data of <get-config>.
    let o = Command::new("yanglint")
        .arg("-p")
        .arg(&mods)
        .args(["-t", "getconfig", "-f", "xml"])
        .args(wanted.iter().map(|w| mods.join(w)))
        .arg(s.dir.path().join("get-config-data.xml"))
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "yanglint rejects the <get-config> data: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netconf_console2_gets_and_edits() {
    let s = start().await;
    let port = s.port.to_string();
    let base = [
        "--host",
        "127.0.0.1",
        "--port",
        port.as_str(),
        "-u",
        "admin",
        "-p",
        PASSWORD,
    ];
    let run = |args: Vec<String>| {
        let mut c = Command::new("netconf-console2");
        c.args(base)
            .args(args)
            .current_dir(s.dir.path())
            .kill_on_drop(true);
        c
    };
    let o = tokio::time::timeout(
        SCRIPT_TIMEOUT,
        run(vec!["--get".into(), "-x".into(), "/element/shelf".into()]).output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("<name>ne=1/shelf=1</name>"), "{text}");
    assert!(!text.contains("fan=1"), "{text}");
    let edit = s.dir.path().join("edit.xml");
    std::fs::write(
        &edit,
        // netconf-console2 wraps the file in <config> itself.
        r#"<element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><host-board><name>ne=1/shelf=1/board=2</name><admin-state>locked</admin-state></host-board></element>"#,
    )
    .unwrap();
    let o = tokio::time::timeout(
        SCRIPT_TIMEOUT,
        run(vec![
            "--db".into(),
            "candidate".into(),
            "--edit-config".into(),
            edit.display().to_string(),
            "--commit".into(),
        ])
        .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains("rpc-error"), "{text}");
    assert_eq!(s.admin_state("ne=1/shelf=1/board=2").await, locked());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_invoke_operations_on_the_model() {
    let s = start().await;
    let out = s
        .python(
            "action.py",
            r#"
m = connect()
r = m.dispatch(to_ele('''<action xmlns="urn:ietf:params:xml:ns:yang:1"><element xmlns="%s">
<fan><name>ne=1/shelf=1/fan=2</name><lock/></fan></element></action>''' % HC))
print("result=%s" % ("<result" in r.xml))
try:
    m.dispatch(to_ele('''<action xmlns="urn:ietf:params:xml:ns:yang:1"><element xmlns="%s">
<fan><name>ne=1/shelf=1/fan=2</name><fly/></fan></element></action>''' % HC))
    print("unknown_action=False")
except RPCError as e:
    print("unknown_action=%s" % (e.tag == "unknown-element"))
try:
    m.dispatch(to_ele('''<action xmlns="urn:ietf:params:xml:ns:yang:1"><element xmlns="%s">
<fan><name>ne=1/shelf=1/fan=77</name><lock/></fan></element></action>''' % HC))
    print("missing_target=False")
except RPCError as e:
    print("missing_target=%s" % (e.tag == "data-missing"))
m.close_session()
"#,
        )
        .await;
    for key in ["result", "unknown_action", "missing_target"] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    let inv = s.model.invocations();
    assert_eq!(inv.len(), 1, "{inv:?}");
    assert_eq!(inv[0].target.as_str(), "ne=1/shelf=1/fan=2");
    assert_eq!(inv[0].principal.user, "admin");
    s.stop().await;
}

/// ietf-system's system-restart and system-shutdown: admin only, answered
/// before the agent is asked; set-current-datetime is refused (the host's
/// clock is the operating system's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_restart_and_shutdown_are_for_admins_and_answered_first() {
    use halyard_cluster_model::port::SystemAction;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let s = start_with(|c| c.system = Some(tx)).await;
    let out = s
        .python(
            "system.py",
            r#"
SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
def call(m, name, body=""):
    try:
        r = m.dispatch(to_ele('<%s xmlns="%s">%s</%s>' % (name, SYS, body, name)))
        return "ok" if "<ok" in r.xml else r.xml
    except RPCError as e:
        return e.tag
ro = connect("oper", "oper-pw")
print("readonly_restart=%s" % call(ro, "system-restart"))
ro.close_session()
op = manager.connect(host="127.0.0.1", port=PORT, username="keyuser", key_filename="client_key",
                     hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=60,
                     device_params={"name": "default"})
print("operator_shutdown=%s" % call(op, "system-shutdown"))
op.close_session()
m = connect()
print("datetime=%s" % call(m, "set-current-datetime", "<current-datetime>2026-12-06T00:00:00Z</current-datetime>"))
print("restart=%s" % call(m, "system-restart"))
print("shutdown=%s" % call(m, "system-shutdown"))
m.close_session()
"#,
        )
        .await;
    assert_eq!(
        line_value(&out, "readonly_restart"),
        "access-denied",
        "{out}"
    );
    assert_eq!(
        line_value(&out, "operator_shutdown"),
        "access-denied",
        "{out}"
    );
    assert_eq!(
        line_value(&out, "datetime"),
        "operation-not-supported",
        "{out}"
    );
    assert_eq!(line_value(&out, "restart"), "ok", "{out}");
    assert_eq!(line_value(&out, "shutdown"), "ok", "{out}");
    // Each was handed to the agent once, in order, after its reply.
    assert_eq!(rx.try_recv(), Ok(SystemAction::Restart));
    assert_eq!(rx.try_recv(), Ok(SystemAction::Shutdown));
    assert!(rx.try_recv().is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_is_generated_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k/host_key");
    let bind = || {
        let mut c = NetconfConfig::new("127.0.0.1:0".parse().unwrap(), path.clone());
        c.users.push(UserConfig {
            name: "a".into(),
            password: Some("b".into()),
            authorized_keys: Vec::new(),
            access: Default::default(),
        });
        NetconfServer::bind(c, Arc::new(demo_element()) as Arc<dyn InformationModel>)
    };
    let first = bind().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(first);
    let _second = bind().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // A bad authorized key is a configuration error, not a silent skip.
    let mut c = NetconfConfig::new("127.0.0.1:0".parse().unwrap(), path.clone());
    c.users.push(UserConfig {
        name: "x".into(),
        password: None,
        authorized_keys: vec!["ssh-ed25519 not-base64".into()],
        access: Default::default(),
    });
    let e = NetconfServer::bind(c, Arc::new(demo_element()) as Arc<dyn InformationModel>)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("user x"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_config_options_copy_and_delete_config() {
    let s = start().await;
    let out = s
        .python(
            "options.py",
            r#"
results = {}
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
n = [100]
def call(body):
    n[0] += 1
    ch.sendall(rpc(body, str(n[0])) + b"]]>]]>")
    r = read_until(ch, b"]]>]]>").decode()
    assert 'message-id="%d"' % n[0] in r, r
    return r
def edit(target, body, extra=""):
    return call('<edit-config><target><%s/></target>%s<config><element xmlns="%s">%s</element></config></edit-config>' % (target, extra, HC, body))
def running():
    return call('<get-config><source><running/></source></get-config>')
def candidate():
    return call('<get-config><source><candidate/></source></get-config>')
FAN1 = '<fan><name>ne=1/shelf=1/fan=1</name><admin-state>locked</admin-state></fan>'
BAD = '<fan><name>ne=1/shelf=1/fan=2</name><admin-state>sideways</admin-state></fan>'
def fan1_locked(x):
    return bool(re.search(r"fan=1</name>\s*<admin-state>locked", x))

# test-only validates without applying.
r = edit("running", FAN1, "<test-option>test-only</test-option>")
results["test_only_ok"] = "<ok/>" in r and not fan1_locked(running())
# rollback-on-error (and stop-on-error): nothing applied when one part fails.
r = edit("running", FAN1 + BAD, "<error-option>rollback-on-error</error-option>")
results["rollback_on_error"] = "invalid-value" in r and not fan1_locked(running())
# continue-on-error: the good part is applied, the error reported.
r = edit("running", FAN1 + BAD, "<error-option>continue-on-error</error-option>")
results["continue_on_error"] = "invalid-value" in r and fan1_locked(running())
# default-operation none: a leaf without operation changes nothing; a leaf with merge does.
r = edit("candidate", '<fan><name>ne=1/shelf=1/fan=2</name><admin-state>locked</admin-state></fan>', "<default-operation>none</default-operation>")
results["none_ok"] = "<ok/>" in r and bool(re.search(r"fan=2</name>\s*<admin-state>unlocked", candidate()))
r = edit("candidate", '<fan><name>ne=1/shelf=1/fan=2</name><admin-state xmlns:nc="%s" nc:operation="merge">locked</admin-state></fan>' % NC, "<default-operation>none</default-operation>")
results["none_with_merge"] = bool(re.search(r"fan=2</name>\s*<admin-state>locked", candidate()))
r = call("<discard-changes/>")
# create a new node in the candidate, commit: the model gets a Create.
r = edit("candidate", '<node xmlns:nc="%s" nc:operation="create"><name>ne=1/shelf=1/node=c</name><admin-state>locked</admin-state></node>' % NC)
r = call("<commit/>")
results["created"] = "<ok/>" in r and "node=c" in running()
# delete it again through the candidate.
r = edit("candidate", '<node xmlns:nc="%s" nc:operation="delete"><name>ne=1/shelf=1/node=c</name></node>' % NC)
r = call("<commit/>")
results["deleted"] = "<ok/>" in r and "node=c" not in running()
# A fan outside a shelf: validate and commit refuse it with its path.
edit("candidate", '<fan><name>ne=1/fan=x</name><admin-state>locked</admin-state></fan>')
r = call('<validate><source><candidate/></source></validate>')
results["validate_refuses"] = "<error-tag>operation-failed</error-tag>" in r and "hc:fan[hc:name='ne=1/fan=x']</error-path>" in r
r = call("<commit/>")
results["commit_refuses"] = "<error-tag>operation-failed</error-tag>" in r and "hc:fan[hc:name='ne=1/fan=x']</error-path>" in r and "fan=x" not in running()
call("<discard-changes/>")
# Deleting a node through the candidate removes its components too.
edit("candidate", '<node xmlns:nc="%s" nc:operation="delete"><name>ne=1/shelf=1/node=b</name></node>' % NC)
r = call("<commit/>")
x = running()
results["subtree_deleted"] = "<ok/>" in r and "node=b" not in x and "node=a" in x
# copy-config running -> candidate, then candidate -> running (no change).
r = call("<copy-config><target><candidate/></target><source><running/></source></copy-config>")
results["copy_to_candidate"] = "<ok/>" in r
r = call("<copy-config><target><running/></target><source><candidate/></source></copy-config>")
results["copy_to_running"] = "<ok/>" in r and fan1_locked(running())
r = call("<copy-config><target><running/></target><source><running/></source></copy-config>")
results["copy_same"] = "invalid-value" in r
# delete-config of the candidate empties it; running is untouched; running cannot be deleted.
r = call("<delete-config><target><candidate/></target></delete-config>")
results["delete_candidate"] = "<ok/>" in r and "ne=1/shelf=1/fan=1" not in candidate() and "ne=1/shelf=1/fan=1" in running()
r = call("<delete-config><target><running/></target></delete-config>")
results["delete_running_refused"] = "rpc-error" in r
r = call("<discard-changes/>")
results["discard"] = "ne=1/shelf=1/fan=1" in candidate()
# with-defaults: known modes accepted, others refused.
r = call('<get><with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">report-all</with-defaults><filter type="subtree"><element xmlns="%s"><shelf/></element></filter></get>' % HC)
results["with_defaults"] = "<name>ne=1/shelf=1</name>" in r
r = call('<get><with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">bogus</with-defaults></get>')
results["with_defaults_bad"] = "invalid-value" in r
# A persistent confirmed commit survives its session and is cancelled by persist-id.
edit("candidate", '<fan><name>ne=1/shelf=1/fan=2</name><admin-state>locked</admin-state></fan>')
r = call("<commit><confirmed/><confirm-timeout>60</confirm-timeout><persist>p-1</persist></commit>")
results["persist_commit"] = "<ok/>" in r
t.close()
time.sleep(0.5)
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
results["persist_survives"] = bool(re.search(r"fan=2</name>\s*<admin-state>locked", running()))
r = call("<cancel-commit><persist-id>wrong</persist-id></cancel-commit>")
results["cancel_wrong_id"] = "invalid-value" in r
r = call("<cancel-commit><persist-id>p-1</persist-id></cancel-commit>")
results["cancelled"] = "<ok/>" in r and bool(re.search(r"fan=2</name>\s*<admin-state>unlocked", running()))
r = call("<close-session/>")
t.close()
for k, v in results.items():
    print("%s=%s" % (k, v))
"#,
        )
        .await;
    for key in [
        "test_only_ok",
        "rollback_on_error",
        "continue_on_error",
        "none_ok",
        "none_with_merge",
        "created",
        "deleted",
        "validate_refuses",
        "commit_refuses",
        "subtree_deleted",
        "copy_to_candidate",
        "copy_to_running",
        "copy_same",
        "delete_candidate",
        "delete_running_refused",
        "discard",
        "with_defaults",
        "with_defaults_bad",
        "persist_commit",
        "persist_survives",
        "cancel_wrong_id",
        "cancelled",
    ] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    assert!(
        s.model
            .get(&ObjectName::parse("ne=1/shelf=1/node=c").unwrap())
            .await
            .is_err()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_and_session_limit() {
    let s = start_with(|c| {
        c.idle_timeout = Duration::from_secs(2);
        c.limits.max_sessions = 3;
        c.limits.hello_timeout = Duration::from_secs(3);
    })
    .await;
    let out = s
        .python(
            "limits.py",
            r#"
results = {}
# An idle session is closed by the server.
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
start = time.time()
read_until(ch, b"\x00never")
results["idle_closed"] = 1.5 < time.time() - start < 30
t.close()
time.sleep(0.5)
# A TCP peer that never speaks SSH is dropped after the hello timeout (3 s).
raw = socket.create_connection(("127.0.0.1", PORT))
raw.settimeout(60)
start = time.time()
data = b""
while True:
    d = raw.recv(4096)
    if not d:
        break
    data += d
results["silent_tcp_dropped"] = data.startswith(b"SSH-2.0-") and 2 < time.time() - start < 30
raw.close()
# At most three sessions: the fourth subsystem request is refused.
held = [raw_channel() for _ in range(3)]
for t, ch in held:
    read_until(ch, b"]]>]]>")
    ch.sendall(HELLO10)
try:
    raw_channel()
    results["limit"] = False
except Exception as e:
    results["limit"] = True
for t, ch in held:
    t.close()
time.sleep(0.5)
t, ch = raw_channel()
h = read_until(ch, b"]]>]]>")
results["after_limit"] = b"<session-id>" in h
ch.sendall(HELLO10)
for k, v in results.items():
    print("%s=%s" % (k, v))
"#,
        )
        .await;
    for key in ["idle_closed", "silent_tcp_dropped", "limit", "after_limit"] {
        assert_eq!(line_value(&out, key), "True", "{key}: {out}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_session() {
    let s = start().await;
    let p = s.script(
        "shutdown.py",
        r#"
t, ch = raw_channel()
read_until(ch, b"]]>]]>")
ch.sendall(HELLO10)
m = connect()
m.lock("running")
print("WAITING", flush=True)
start = time.time()
read_until(ch, b"\x00never")
print("closed_in=%.1f" % (time.time() - start), flush=True)
"#,
    );
    let mut child = Command::new("python3")
        .arg(&p)
        .arg(s.port.to_string())
        .current_dir(s.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(SCRIPT_TIMEOUT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("WAITING"));
    let port = s.port;
    s.stop().await;
    let next = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the session is closed at shutdown")
        .unwrap()
        .unwrap_or_default();
    let secs: f64 = next
        .strip_prefix("closed_in=")
        .unwrap_or_else(|| panic!("{next}"))
        .parse()
        .unwrap();
    assert!(secs < 30.0, "{secs}");
    // Nothing listens any more.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
    let _ = child.wait().await;
}
