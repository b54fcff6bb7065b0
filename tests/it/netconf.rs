//! NETCONF on the real agent, with ncclient: a candidate commit locks a
//! component through CRIM, an injected fault reaches a subscribed session,
//! and yanglint accepts the data of a full get.

use std::process::Command;

use crate::agent::{HC, get, index_of, wait_until};

const SCRIPT: &str = r#"
import sys, time
from ncclient import manager
from lxml import etree
host, port = sys.argv[1].rsplit(":", 1)
NS = "urn:halyard:params:xml:ns:yang:halyard-cluster"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
print("base11=%s" % ("urn:ietf:params:netconf:base:1.1" in m.server_capabilities))
running = m.get_config(source="running").data_xml
print("running-has-counterd=%s" % ("ne=1/shelf=1/node=a/comp=counterd-a" in running))
m.lock(target="candidate")
m.edit_config(target="candidate", config="""
<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><element xmlns="%s"><software-component>
  <name>ne=1/shelf=1/node=a/comp=counterd-a</name><admin-state>locked</admin-state>
</software-component></element></config>""" % NS)
m.commit()
m.unlock(target="candidate")
print("committed=yes")
m.create_subscription()
r = m.dispatch(etree.fromstring("""
<action xmlns="urn:ietf:params:xml:ns:yang:1"><element xmlns="%s"><shelf>
  <name>ne=1/shelf=1</name><inject-fault><fault>power-loss</fault></inject-fault>
</shelf></element></action>""" % NS))
got = ""
deadline = time.time() + 30
while time.time() < deadline and "alarm-raised" not in got:
    n = m.take_notification(timeout=5)
    if n is not None:
        got += n.notification_xml
print("alarm-notification=%s" % ("alarm-raised" in got and "ne=1/shelf=1" in got))
data = m.get(filter=("subtree", '<element xmlns="%s"/>' % NS)).data_ele
with open(sys.argv[2], "wb") as f:
    f.write(b"".join(etree.tostring(c) for c in data))
MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
g = m.get(filter=("subtree", '<netconf-state xmlns="%s"><schemas/></netconf-state>' % MON)).data_ele
names = []
for sch in g.iter("{%s}schema" % MON):
    ident = sch.find("{%s}identifier" % MON).text
    ver = sch.find("{%s}version" % MON).text
    with open("%s/%s@%s.yang" % (sys.argv[3], ident, ver), "w") as f:
        f.write(m.get_schema(ident, version=ver).data)
    names.append(ident)
print("schemas=%s" % ",".join(sorted(names)))
m.close_session()
"#;

#[test]
fn ncclient_commits_a_lock_through_crim_and_receives_the_fault_alarm() {
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = crate::netconf_correctness::traced_agent(dir.path());
    let script = dir.path().join("nc.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let data = dir.path().join("get.xml");
    let mods = dir.path().join("mods");
    std::fs::create_dir_all(&mods).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&a.netconf)
        .arg(&data)
        .arg(&mods)
        .output()
        .expect("python3 with ncclient (tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "base11=True",
        "running-has-counterd=True",
        "committed=yes",
        "alarm-notification=True",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    // Every module the server lists is served by get-schema, and compiles.
    assert!(
        text.contains("schemas=") && text.contains("halyard-cluster"),
        "{text}"
    );
    for entry in std::fs::read_dir(&mods).unwrap() {
        let p = entry.unwrap().path();
        let o = Command::new("yanglint")
            .arg("-p")
            .arg(&mods)
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "yanglint rejects {}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The commit went through CRIM: counterd-a is off-line, its pair primary.
    let i = index_of(&a, "ne=1/shelf=1/node=a/comp=counterd-a");
    wait_until("counterd-a locked", || {
        get(&a, &format!("{HC}.1.9.1.10.{i}")) == "1"
    });
    // yanglint accepts the element's data from a full get.
    let o = Command::new("yanglint")
        .args(["-t", "get", "-f", "xml"])
        .arg(halyard_tests::yang_module())
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "yanglint: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    drop(a);
    // Every reply and notification of the session validates.
    crate::netconf_correctness::check_trace(&trace);
}
