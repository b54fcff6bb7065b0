//! NETCONF correctness on the real agent (issue #19), each case driven by
//! ncclient (or paramiko, ncclient's SSH layer, where ncclient hides what is
//! tested): a confirmed commit that times out is rolled back with every side
//! effect; `<validate>` and `<commit>` refuse a candidate that would delete
//! the element; a replace never invents a state; an action is bound to its
//! list's class; XML-illegal characters are refused; a lock is refused over
//! another session's edits; a mistyped password leaves password login open.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::agent::{Agent, workspace};

const SCRIPT: &str = r#"
import sys, time, re
from ncclient import manager
from ncclient.operations import RPCError
from lxml import etree
host, port = sys.argv[1].rsplit(":", 1)
case = sys.argv[2]
out_dir = sys.argv[3]
NS = "urn:halyard:params:xml:ns:yang:halyard-cluster"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"

def connect(password="halyard-demo"):
    return manager.connect(host=host, port=int(port), username="operator", password=password,
                           hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)

def cfg(body, extra=""):
    return '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" %s><element xmlns="%s">%s</element></config>' % (extra, NS, body)

def leaf(m, lst, name, leafname, source="running"):
    f = '<element xmlns="%s"><%s><name>%s</name><%s/></%s></element>' % (NS, lst, name, leafname, lst)
    if source == "state":
        d = m.get(filter=("subtree", f)).data_ele
    else:
        d = m.get_config(source=source, filter=("subtree", f)).data_ele
    e = d.find(".//{%s}%s" % (NS, leafname))
    return None if e is None else (e.text or "")

def count(m, lst):
    d = m.get_config(source="running", filter=("subtree", '<element xmlns="%s"><%s/></element>' % (NS, lst))).data_ele
    return len(d.findall(".//{%s}%s" % (NS, lst)))

def error_of(f):
    try:
        f()
    except RPCError as e:
        return "%s|%s" % (e.tag, e.message)
    return "ok"

PSU = "ne=1/shelf=1/psu=1"
FAN = "ne=1/shelf=1/fan=1"

if case == "confirmed-timeout":
    m = connect()
    m.create_subscription()
    label0 = leaf(m, "power-supply", PSU, "label")
    print("admin-before=%s" % leaf(m, "power-supply", PSU, "admin-state"))
    m.lock(target="candidate")
    m.edit_config(target="candidate", config=cfg(
        "<power-supply><name>%s</name><admin-state>locked</admin-state><label>relabelled</label></power-supply>" % PSU))
    m.dispatch(etree.fromstring('<commit xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><confirmed/><confirm-timeout>2</confirm-timeout></commit>'))
    m.unlock(target="candidate")
    print("admin-committed=%s" % leaf(m, "power-supply", PSU, "admin-state"))
    print("avail-committed=%s" % leaf(m, "power-supply", PSU, "availability-state", "state"))
    notes = []
    deadline = time.time() + 40
    rolled = False
    while time.time() < deadline:
        n = m.take_notification(timeout=1)
        if n is not None:
            notes.append(n.notification_xml)
        if leaf(m, "power-supply", PSU, "admin-state") == "unlocked" and \
           leaf(m, "power-supply", PSU, "availability-state", "state") != "off-line" and \
           any("<confirm-event>timeout" in x for x in notes) and \
           any("netconf-config-change" in x and "<server" in x for x in notes):
            rolled = True
            break
    print("rolled-back=%s" % rolled)
    print("admin-after=%s" % leaf(m, "power-supply", PSU, "admin-state"))
    print("label-restored=%s" % (leaf(m, "power-supply", PSU, "label") == label0))
    print("avail-after=%s" % leaf(m, "power-supply", PSU, "availability-state", "state"))
    timeouts = [x for x in notes if "<confirm-event>timeout" in x]
    for i, x in enumerate(timeouts + [x for x in notes if "netconf-config-change" in x]):
        with open("%s/notif-%d.xml" % (out_dir, i), "w") as f:
            f.write(x)
    print("timeout-has-session=%s" % any(("username" in x or "session-id" in x) for x in timeouts))
    audit = m.get(filter=("subtree", '<element xmlns="%s"><audit-record/></element>' % NS)).data_xml
    print("audited=%s" % ("confirmed-commit-rollback" in audit))
    m.close_session()

elif case == "validate-wipe":
    m = connect()
    fans0, sw0 = count(m, "fan"), count(m, "software-component")
    m.lock(target="candidate")
    one_fan = '<source>%s</source>' % cfg("<fan><name>%s</name><label>only</label></fan>" % FAN)
    r = error_of(lambda: m.dispatch(etree.fromstring(
        '<copy-config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><target><candidate/></target>%s</copy-config>' % one_fan)))
    print("copy=%s" % r)
    print("validate=%s" % error_of(lambda: m.validate(source="candidate")))
    print("commit=%s" % error_of(lambda: m.commit()))
    m.discard_changes()
    # default-operation=replace with partial content builds the same candidate.
    r = error_of(lambda: m.edit_config(target="candidate", default_operation="replace",
                                       config=cfg("<fan><name>%s</name></fan>" % FAN)))
    print("replace-edit=%s" % r)
    print("validate2=%s" % error_of(lambda: m.validate(source="candidate")))
    print("commit2=%s" % error_of(lambda: m.commit()))
    m.discard_changes()
    m.unlock(target="candidate")
    print("intact=%s" % (count(m, "fan") == fans0 and count(m, "software-component") == sw0 and fans0 > 0))
    m.close_session()

elif case == "replace-defaults":
    m = connect()
    r = error_of(lambda: m.edit_config(target="running", config=cfg(
        '<fan xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="replace"><name>%s</name><label>new label</label></fan>' % FAN)))
    print("replace=%s" % r)
    print("fan-admin=%s" % leaf(m, "fan", FAN, "admin-state"))
    print("fan-label=%s" % leaf(m, "fan", FAN, "label"))
    r = error_of(lambda: m.edit_config(target="running", config=cfg(
        '<fan><name>%s</name><label xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"/></fan>' % FAN)))
    print("delete-leaf=%s" % r)
    print("fan-admin2=%s" % leaf(m, "fan", FAN, "admin-state"))
    print("fan-label2=[%s]" % leaf(m, "fan", FAN, "label"))
    r = error_of(lambda: m.edit_config(target="running", config=cfg(
        "<fan><name>ne=1/shelf=1/fan=9</name><label>phantom</label></fan>")))
    print("create-fan=%s" % r)
    # test-only tests what the set would do: the model refuses it as well.
    r = error_of(lambda: m.edit_config(target="running", test_option="test-only", config=cfg(
        "<fan><name>ne=1/shelf=1/fan=9</name><label>phantom</label></fan>")))
    print("test-only-create=%s" % r)
    print("phantom=%s" % (leaf(m, "fan", "ne=1/shelf=1/fan=9", "admin-state") is not None))
    m.close_session()

elif case == "action-class":
    m = connect()
    act = lambda lst, name, body: error_of(lambda: m.dispatch(etree.fromstring(
        '<action xmlns="urn:ietf:params:xml:ns:yang:1"><element xmlns="%s"><%s><name>%s</name>%s</%s></element></action>'
        % (NS, lst, name, body, lst))))
    print("fan-on-shelf=%s" % act("fan", "ne=1/shelf=1", "<lock><reason>x</reason></lock>"))
    print("fan-on-psu=%s" % act("fan", PSU, "<restart/>"))
    print("shelf-admin=%s" % leaf(m, "shelf", "ne=1/shelf=1", "admin-state"))
    print("psu-restarts=%s" % leaf(m, "power-supply", PSU, "restarts", "state"))
    m.close_session()

elif case == "discovery":
    MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
    YL = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
    NOTIF = "urn:ietf:params:xml:ns:netmod:notification"
    m = connect()
    caps = list(m.server_capabilities)
    print("hello-has-yang11=%s" % any("module=halyard-cluster" in c or "module=ietf-yang-library" in c for c in caps))
    st = m.get(filter=("subtree", '<netconf xmlns="%s"><streams/></netconf>' % NOTIF)).data_ele
    names = [e.text for e in st.iter("{%s}name" % NOTIF)]
    replay = [e.text for e in st.iter("{%s}replaySupport" % NOTIF)]
    print("streams=%s replay=%s" % (",".join(names), ",".join(replay)))
    lib = m.get(filter=("subtree", '<yang-library xmlns="%s"/>' % YL)).data_ele
    mods = {}
    for mod in lib.iter("{%s}module" % YL):
        mods[mod.find("{%s}name" % YL).text] = [f.text for f in mod.findall("{%s}feature" % YL)]
    print("nc-notifications-listed=%s" % ("nc-notifications" in mods))
    print("netconf-features=%s" % ",".join(sorted(mods.get("ietf-netconf", []))))
    g = m.get(filter=("subtree", '<netconf-state xmlns="%s"><schemas/></netconf-state>' % MON)).data_ele
    listed = set(mods)
    served = set()
    for sch in g.iter("{%s}schema" % MON):
        ident = sch.find("{%s}identifier" % MON).text
        ver = sch.find("{%s}version" % MON).text
        if m.get_schema(ident, version=ver).data.lstrip().startswith("module " + ident):
            served.add(ident)
    print("unserved=%s" % ",".join(sorted(listed - served)))
    def dropped():
        d = m.get(filter=("subtree", '<netconf-state xmlns="%s"><statistics/></netconf-state>' % MON)).data_ele
        return int(d.find(".//{%s}dropped-sessions" % MON).text)
    d0 = dropped()
    victim = connect()
    m.kill_session(victim.session_id)
    time.sleep(1)
    print("dropped-delta=%d" % (dropped() - d0))
    m.close_session()

elif case == "xpath":
    m = connect()
    def sel(expr):
        try:
            d = m.get(filter=("xpath", ({"hc": NS}, expr))).data_ele
        except RPCError as e:
            return "error:" + e.tag
        return ",".join(sorted(e.text for e in d.iter("{%s}name" % NS) if e.getparent().tag != "{%s}element" % NS))
    cases = {
        "or": "/hc:element/hc:fan[hc:name='ne=1/shelf=1/fan=1' or hc:name='ne=1/shelf=1/fan=2']",
        "number": "/hc:element/hc:fan[hc:slot=2.0]",
        "parent": "/hc:element/hc:fan/hc:label/..",
        "dot": "/hc:element/hc:fan/hc:name[.='ne=1/shelf=1/fan=2']",
        "descendant": "//hc:power-supply",
        "contains": "/hc:element/hc:fan[contains(hc:name, 'fan=2')]",
        "not-equal": "/hc:element/hc:fan[hc:name!='ne=1/shelf=1/fan=1']",
        "greater": "/hc:element/hc:fan[hc:slot>2]",
        "count": "/hc:element[count(hc:fan)=2]/hc:fan[1]",
    }
    for k, v in cases.items():
        print("xpath-%s=%s" % (k, sel(v)))
    m.close_session()

elif case == "lock-over-edits":
    x = connect()
    y = connect()
    x.edit_config(target="candidate", config=cfg("<fan><name>%s</name><label>x-half-done</label></fan>" % FAN))
    y.edit_config(target="candidate", config=cfg("<fan><name>ne=1/shelf=1/fan=2</name><label>y</label></fan>"))
    print("y-lock=%s" % error_of(lambda: y.lock(target="candidate")))
    x.discard_changes()
    print("y-lock-after-discard=%s" % error_of(lambda: y.lock(target="candidate")))
    y.unlock(target="candidate")
    x.close_session(); y.close_session()

elif case == "commit-writes-its-edits-only":
    SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
    def system(body):
        return '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><system xmlns="%s">%s</system></config>' % (SYS, body)
    def sysleaf(m, name, source):
        d = m.get_config(source=source, filter=("subtree", '<system xmlns="%s"><%s/></system>' % (SYS, name))).data_ele
        e = d.find(".//{%s}%s" % (SYS, name))
        return None if e is None else (e.text or "")
    x = connect()
    y = connect()
    # y edits one leaf of the entry in the candidate...
    y.edit_config(target="candidate", config=system("<location>y-location</location>"))
    # ...while x changes another leaf of it in running.
    x.edit_config(target="running", config=system("<contact>x-contact</contact>"))
    print("candidate-contact=%s" % sysleaf(y, "contact", "candidate"))
    y.commit()
    print("running-contact=%s" % sysleaf(x, "contact", "running"))
    print("running-location=%s" % sysleaf(x, "location", "running"))
    x.close_session(); y.close_session()

"#;

/// The demo element, with every NETCONF message traced to `trace`.
pub(crate) fn traced_agent(dir: &Path) -> (Agent, PathBuf) {
    let trace = dir.join("trace");
    std::fs::create_dir_all(&trace).unwrap();
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let config = demo.replacen(
        "\n[netconf]\n",
        &format!("\n[netconf]\ntrace_dir = \"{}\"\n", trace.display()),
        1,
    );
    // The demo's admin (halyard-demo-admin) is the HTTP admin the tests use.
    assert!(config.contains("trace_dir") && config.contains("halyard-demo-admin"));
    let path = dir.join("traced.toml");
    std::fs::write(&path, config).unwrap();
    (Agent::start_with(&dir.join("data"), Some(path)), trace)
}

/// yanglint over every reply and notification the agent sent.
pub(crate) fn check_trace(trace: &Path) {
    let r = halyard_netconf::conformance::check_trace(trace, &workspace().join("yang"));
    assert!(r.is_clean(), "what the agent sent: {}", r.summary());
}

fn run(case: &str) -> (String, PathBuf, tempfile::TempDir) {
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = traced_agent(dir.path());
    let script = dir.path().join("nc.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&a.netconf)
        .arg(case)
        .arg(&out_dir)
        .output()
        .expect("python3 with ncclient (tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{case}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(a);
    check_trace(&trace);
    (text, out_dir, dir)
}

fn expect(text: &str, wants: &[&str]) {
    for w in wants {
        assert!(text.contains(w), "missing {w} in:\n{text}");
    }
}

/// The directory of IETF YANG modules the `pyang` package ships.
fn ietf_modules() -> PathBuf {
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, os; print(os.path.join(sys.prefix, 'share', 'yang', 'modules', 'ietf'))",
        ])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

#[test]
fn a_confirmed_commit_that_times_out_is_rolled_back_with_its_side_effects() {
    let (text, out, _d) = run("confirmed-timeout");
    expect(
        &text,
        &[
            "admin-before=unlocked",
            "admin-committed=locked",
            "rolled-back=True",
            "admin-after=unlocked",
            "label-restored=True",
            "timeout-has-session=False",
            "audited=True",
        ],
    );
    assert!(!text.contains("avail-after=off-line"), "{text}");
    // Every notification sent about the rollback validates against
    // ietf-netconf-notifications (the timeout's `when` forbids session
    // parameters).
    let mods = ietf_modules();
    let mut n = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        let o = Command::new("yanglint")
            .args(["-t", "nc-notif", "-f", "xml", "-p"])
            .arg(&mods)
            .arg("-p")
            .arg(workspace().join("yang"))
            .arg(mods.join("ietf-netconf-notifications.yang"))
            .arg(halyard_tests::yang_module())
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "yanglint rejects {}: {}{}\n{}",
            p.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&p).unwrap_or_default()
        );
        n += 1;
    }
    assert!(
        n >= 2,
        "expected the timeout and config-change notifications, got {n}"
    );
}

#[test]
fn validate_and_commit_refuse_a_candidate_that_would_wipe_the_element() {
    let (text, _, _d) = run("validate-wipe");
    expect(&text, &["copy=ok", "replace-edit=ok", "intact=True"]);
    for key in ["validate=", "commit=", "validate2=", "commit2="] {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        assert!(
            !line.ends_with("=ok") && line.contains("stands for hardware or a running component"),
            "{line}\n{text}"
        );
    }
}

#[test]
fn replace_and_leaf_delete_use_the_module_defaults_and_hardware_is_never_invented() {
    let (text, _, _d) = run("replace-defaults");
    expect(
        &text,
        &[
            "replace=ok",
            "fan-admin=unlocked",
            "fan-label=new label",
            "delete-leaf=ok",
            "fan-admin2=unlocked",
            "fan-label2=[]",
            "phantom=False",
        ],
    );
    assert!(
        text.contains("create-fan=") && !text.contains("create-fan=ok"),
        "{text}"
    );
    assert!(
        text.contains("test-only-create=") && !text.contains("test-only-create=ok"),
        "{text}"
    );
}

#[test]
fn an_action_on_an_entry_of_another_class_is_data_missing() {
    let (text, _, _d) = run("action-class");
    expect(
        &text,
        &[
            "fan-on-shelf=data-missing",
            "fan-on-psu=data-missing",
            "shelf-admin=unlocked",
            "psu-restarts=0",
        ],
    );
}

#[test]
fn discovery_every_module_served_features_streams_and_monitoring() {
    let (text, _, _d) = run("discovery");
    expect(
        &text,
        &[
            "hello-has-yang11=False",
            "streams=NETCONF replay=true",
            "nc-notifications-listed=True",
            "netconf-features=candidate,confirmed-commit,rollback-on-error,validate,writable-running,xpath",
            "unserved=\n",
            "dropped-delta=0",
        ],
    );
}

#[test]
fn xpath_filters_are_xpath_1_0_as_advertised() {
    let (text, _, _d) = run("xpath");
    let (f1, f2) = ("ne=1/shelf=1/fan=1", "ne=1/shelf=1/fan=2");
    let p1 = "ne=1/shelf=1/psu=1";
    let p2 = "ne=1/shelf=1/psu=2";
    expect(
        &text,
        &[
            &format!("xpath-or={f1},{f2}\n"),
            &format!("xpath-number={f1}\n"),
            &format!("xpath-parent={f1},{f2}\n"),
            &format!("xpath-dot={f2}\n"),
            &format!("xpath-descendant={p1},{p2}\n"),
            &format!("xpath-contains={f2}\n"),
            &format!("xpath-not-equal={f2}\n"),
            &format!("xpath-greater={f2}\n"),
            &format!("xpath-count={f1}\n"),
        ],
    );
}

#[test]
fn a_lock_is_refused_while_another_sessions_edits_are_in_the_candidate() {
    let (text, _, _d) = run("lock-over-edits");
    expect(&text, &["y-lock=lock-denied", "y-lock-after-discard=ok"]);
}

/// A commit writes what the candidate changed, not the values running had
/// when it was edited: a leaf another session changed meanwhile stays (the
/// chaos round's lost commit, with two sessions on one entry).
#[test]
fn a_commit_writes_only_what_the_candidate_changed() {
    let (text, _, _d) = run("commit-writes-its-edits-only");
    expect(
        &text,
        &[
            "candidate-contact=x-contact\n",
            "running-contact=x-contact\n",
            "running-location=y-location\n",
        ],
    );
}

/// A NETCONF session through OpenSSH's client (`ssh -s netconf`), password
/// login through SSH_ASKPASS answering `passwords` in turn: for input
/// ncclient refuses to send, and for OpenSSH's own retry behaviour.
fn openssh_session(a: &Agent, dir: &Path, passwords: &[&str], input: &str) -> (String, usize) {
    let answers = dir.join("answers");
    std::fs::write(&answers, passwords.join("\n") + "\n").unwrap();
    let count = dir.join("count");
    let _ = std::fs::remove_file(&count);
    let askpass = dir.join("askpass.sh");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\nsed -n \"${{n}}p\" {a}\n",
            c = count.display(),
            a = answers.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (host, port) = a.netconf.rsplit_once(':').unwrap();
    let mut child = Command::new("ssh")
        .args(["-p", port])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=3",
            "-o",
            "ConnectTimeout=30",
        ])
        .arg(format!("operator@{host}"))
        .args(["-s", "netconf"])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("OpenSSH's ssh (tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let asked = std::fs::read_to_string(&count)
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    (String::from_utf8_lossy(&out.stdout).into_owned(), asked)
}

const HELLO: &str = r#"<?xml version="1.0"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>"#;

fn rpc(id: u32, body: &str) -> String {
    format!(
        r#"<rpc message-id="{id}" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{body}</rpc>]]>]]>"#
    )
}

#[test]
fn characters_xml_forbids_are_refused_and_never_stored() {
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = traced_agent(dir.path());
    let edit = |r: &str| {
        format!(
            r#"<edit-config><target><running/></target><config><element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><fan><name>ne=1/shelf=1/fan=1</name><label>bad{r}x</label></fan></element></config></edit-config>"#
        )
    };
    let get = r#"<get-config><source><running/></source><filter type="subtree"><element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><fan><name>ne=1/shelf=1/fan=1</name></fan></element></filter></get-config>"#;
    let mut input = HELLO.to_string();
    input += &rpc(1, &edit("&#1;"));
    input += &rpc(2, &edit("&#0;"));
    input += &rpc(3, &edit("\u{1}"));
    input += &rpc(4, get);
    input += &rpc(5, "<close-session/>");
    let (out, _) = openssh_session(&a, dir.path(), &["halyard-demo"], &input);
    let replies: Vec<&str> = out.split("]]>]]>").collect();
    let reply = |id: u32| {
        replies
            .iter()
            .find(|r| r.contains(&format!("message-id=\"{id}\"")))
            .unwrap_or_else(|| panic!("no reply {id} in {out}"))
    };
    for id in 1..=3 {
        let r = reply(id);
        assert!(
            r.contains("<error-tag>invalid-value</error-tag>") && r.contains("label"),
            "reply {id}: {r}"
        );
    }
    let got = reply(4);
    assert!(
        got.contains("<label></label>") || got.contains("<label/>"),
        "{got}"
    );
    assert!(!out.contains('\u{1}') && !out.contains('\u{0}'), "{out}");
    // The other faces refuse it too: SNMP (a SET of the fan's label with
    // 0x01 in it) and HTTP (an admin's PATCH).
    let i = crate::agent::index_of(&a, "ne=1/shelf=1/fan=1");
    let (ok, out) = a.snmp(
        "snmpset",
        halyard_tests::V3,
        &[
            &format!("{}.1.5.1.19.{i}", crate::agent::HC),
            "x",
            "62616401",
        ],
    );
    assert!(!ok && out.contains("wrongValue"), "snmpset: {out}");
    let http = |body: &str| {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH"])
            .args([
                "-u",
                "admin:halyard-demo-admin",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-d", body])
            .arg(format!(
                "http://{}/api/v1/objects/ne=1/shelf=1/fan=1",
                a.http
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(http(r#"{"label":"bad\u0001x"}"#), "422");
    assert_eq!(http(r#"{"label":"fine"}"#), "200");
    // And nothing of it reached the model.
    let (code, body) = a.curl("GET", "/api/v1/objects/ne=1/shelf=1/fan=1", None);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("bad") && body.contains("fine"), "{body}");
    drop(a);
    check_trace(&trace);
}

#[test]
fn a_mistyped_password_leaves_password_login_open() {
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path());
    let input = HELLO.to_string() + &rpc(1, "<close-session/>");
    let (out, asked) = openssh_session(&a, dir.path(), &["wrong-password", "halyard-demo"], &input);
    assert_eq!(asked, 2, "OpenSSH asked {asked} times: {out}");
    assert!(
        out.contains("<capabilities>") && out.contains("<ok/>"),
        "no session after a retried password: {out}"
    );
    // The failure is in the audit trail, with the count and the delay.
    let (code, body) = a.curl("GET", "/api/v1/classes/AuditRecord", None);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("login from 127.0.0.1 (password)")
            && body.contains("password failures 1 of 3 on this connection")
            && body.contains("ms delay"),
        "{body}"
    );
}

#[test]
fn chunked_framing_accepts_crlf_headers_and_a_stray_end_of_message_marker() {
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = traced_agent(dir.path());
    let hello11 = r#"<?xml version="1.0"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>]]>]]>"#;
    let chunk = |m: &str, eol: &str| format!("{eol}#{}{eol}{m}{eol}##{eol}", m.len());
    let rpc11 = |id: u32, body: &str| {
        format!(
            r#"<rpc message-id="{id}" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{body}</rpc>"#
        )
    };
    let mut input = hello11.to_string();
    // CRLF line ends in the chunk headers (as some Windows-built clients send).
    input += &chunk(
        &rpc11(1, "<get-config><source><running/></source></get-config>"),
        "\r\n",
    );
    // A stray end-of-message marker between two messages.
    input += "]]>]]>";
    input += &chunk(&rpc11(2, "<close-session/>"), "\n");
    let (out, _) = openssh_session(&a, dir.path(), &["halyard-demo"], &input);
    assert!(
        out.contains(r#"message-id="1""#) && out.contains("ne=1/shelf=1/fan=1"),
        "no reply to the CRLF-framed get-config: {out}"
    );
    assert!(
        out.contains(r#"message-id="2""#) && out.contains("<ok/>"),
        "no reply after the stray marker: {out}"
    );
    // Unsafe framing still ends the session, with malformed-message: a chunk
    // size with a leading zero; the rpc after it is never answered.
    let mut bad = hello11.to_string() + "\n#04\n<rpc\n##\n";
    bad += &chunk(
        &rpc11(3, "<get-config><source><running/></source></get-config>"),
        "\n",
    );
    let (out, _) = openssh_session(&a, dir.path(), &["halyard-demo"], &bad);
    assert!(
        out.contains("<error-tag>malformed-message</error-tag>")
            && !out.contains(r#"message-id="3""#),
        "{out}"
    );
    drop(a);
    check_trace(&trace);
}
