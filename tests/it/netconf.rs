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
AL = "urn:ietf:params:xml:ns:yang:ietf-alarms"
while time.time() < deadline and not ("alarm-raised" in got and AL in got):
    n = m.take_notification(timeout=5)
    if n is not None:
        got += n.notification_xml
print("alarm-notification=%s" % ("alarm-raised" in got and "ne=1/shelf=1" in got))
# The same alarm as ietf-alarms' alarm-notification.
print("ietf-alarm-notification=%s" % ("<alarm-notification" in got
      and "hc-at:power-problem" in got and "[hc:name='ne=1/shelf=1']" in got))
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
    let text = crate::agent::python3(
        &script,
        &[&a.netconf, &data.to_string_lossy(), &mods.to_string_lossy()],
    );
    for want in [
        "base11=True",
        "running-has-counterd=True",
        "committed=yes",
        "alarm-notification=True",
        "ietf-alarm-notification=True",
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

const HARDWARE_SCRIPT: &str = r#"
import sys
from ncclient import manager
host, port = sys.argv[1].rsplit(":", 1)
HW = "urn:ietf:params:xml:ns:yang:ietf-hardware"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
q = lambda e, n: e.find("{%s}%s" % (HW, n))
t = lambda e, n: (q(e, n).text or "") if q(e, n) is not None else ""
data = m.get(filter=("subtree", '<hardware xmlns="%s"/>' % HW)).data_ele
for c in data.iter("{%s}component" % HW):
    st = q(c, "state")
    print("component %s %s %s %s %s [%s]" % (t(c, "physical-index"), t(c, "name"),
          t(c, "class").split(":")[-1], t(c, "parent") or "-", t(st, "oper-state"),
          t(st, "alarm-state")))
    print("made %s %s|%s" % (t(c, "physical-index"), t(c, "mfg-name"), t(c, "model-name")))
# An XPath filter on the standard module selects by class.
x = m.get(filter=("xpath", ({"hw": HW},
    "/hw:hardware/hw:component[hw:class='ianahw:fan']/hw:name"))).data_ele
print("xpath-fans=%s" % ",".join(sorted(e.text for e in x.iter("{%s}name" % HW))))
# The yang-library lists the module with its features.
LIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
lib = m.get(filter=("subtree", '<yang-library xmlns="%s"/>' % LIB)).data_ele
for mod in lib.iter("{%s}module" % LIB):
    if mod.find("{%s}name" % LIB).text == "ietf-hardware":
        print("library-features=%s" % ",".join(sorted(f.text for f in mod.iter("{%s}feature" % LIB))))
print("schema-served=%s" % ("module ietf-hardware" in m.get_schema("ietf-hardware").data))
AL = "urn:ietf:params:xml:ns:yang:ietf-alarms"
al = m.get(filter=("subtree", '<alarms xmlns="%s"><alarm-list/><summary/></alarms>' % AL)).data_ele
for a in al.iter("{%s}alarm" % AL):
    f = lambda n: a.find("{%s}%s" % (AL, n))
    res = f("resource").text.split("name='")[-1].rstrip("']")
    print("alarm %s %s cleared=%s %s" % (res, f("alarm-type-id").text.split(":")[-1],
          f("is-cleared").text, f("perceived-severity").text))
    X = lambda n: a.findtext("{urn:ietf:params:xml:ns:yang:ietf-alarms-x733}%s" % n)
    print("x733 %s %s %s %s %s %s" % (res, f("is-cleared").text, X("probable-cause"),
          X("probable-cause-string"), X("event-type"), X("trend-indication") or "-"))
total = sum(int(s.find("{%s}not-cleared" % AL).text) for s in al.iter("{%s}alarm-summary" % AL))
print("summary-not-cleared=%d" % total)
print("number-of-alarms=%s" % al.find(".//{%s}number-of-alarms" % AL).text)
# NMDA (RFC 8526): <get-data> and <edit-data>, by ncclient's dispatch.
from lxml import etree
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
HC = "urn:halyard:params:xml:ns:yang:halyard-cluster"
def nmda(body):
    r = m.dispatch(etree.fromstring('<%s xmlns="%s" xmlns:ds="%s">%s</%s>' % (
        body[0], NMDA, DS, body[1], body[0])))
    return etree.fromstring(r.xml.encode())
op = nmda(("get-data", '<datastore>ds:operational</datastore><subtree-filter><hardware xmlns="%s"/></subtree-filter>' % HW))
print("get-data-components=%d" % len(op.findall(".//{%s}component" % HW)))
print("get-components=%d" % len(data.findall(".//{%s}component" % HW)))
nmda(("edit-data", '<datastore>ds:running</datastore><config><element xmlns="%s"><network-element><name>ne=1</name><location>NMDA row 5</location></network-element></element></config>' % HC))
run = nmda(("get-data", '<datastore>ds:running</datastore><subtree-filter><element xmlns="%s"><network-element/></element></subtree-filter>' % HC))
print("running-location=%s" % run.findtext(".//{%s}location" % HC))
cur = nmda(("get-data", '<datastore>ds:operational</datastore><xpath-filter xmlns:hc="%s">/hc:element/hc:network-element/hc:location</xpath-filter>' % HC))
print("operational-location=%s" % cur.findtext(".//{%s}location" % HC))
SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
sy = m.get(filter=("subtree", '<system xmlns="%s"/>' % SYS)).data_ele
print("system-location=%s" % sy.findtext(".//{%s}location" % SYS))
ss = m.get(filter=("subtree", '<system-state xmlns="%s"/>' % SYS)).data_ele
print("os-name=%s" % ss.findtext(".//{%s}os-name" % SYS))
# The clock's time zone: an offset from UTC, shown by the state clock.
nmda(("edit-data", '<datastore>ds:running</datastore><config><system xmlns="%s"><clock><timezone-utc-offset>120</timezone-utc-offset></clock></system></config>' % SYS))
ss = m.get(filter=("subtree", '<system-state xmlns="%s"><clock/></system-state>' % SYS)).data_ele
print("clock-offset=%s" % ss.findtext(".//{%s}current-datetime" % SYS)[-6:])
cf = m.get_config(source="running", filter=("subtree", '<system xmlns="%s"><clock/></system>' % SYS)).data_ele
print("config-offset=%s" % cf.findtext(".//{%s}timezone-utc-offset" % SYS))
try:
    nmda(("edit-data", '<datastore>ds:running</datastore><config><system xmlns="%s"><clock><timezone-utc-offset>1501</timezone-utc-offset></clock></system></config>' % SYS))
    print("offset-1501=accepted")
except Exception as e:
    print("offset-1501=%s" % getattr(e, "tag", e))
shallow = nmda(("get-data", '<datastore>ds:operational</datastore><subtree-filter><hardware xmlns="%s"/></subtree-filter><max-depth>1</max-depth>' % HW))
hw_el = shallow.find(".//{%s}hardware" % HW)
print("max-depth-1=%s" % (hw_el is not None and len(hw_el) == 0))
# NMDA origins (RFC 8342): with-origin and the origin filters.
OR = "urn:ietf:params:xml:ns:yang:ietf-origin"
nmda(("edit-data", '<datastore>ds:running</datastore><config><hardware xmlns="%s" xmlns:ianahw="urn:ietf:params:xml:ns:yang:iana-hardware"><component><name>ne=1/shelf=1/fan=1</name><class>ianahw:fan</class><alias>left fan</alias></component></hardware></config>' % HW))
def origin(e):
    while e is not None:
        if e.get("{%s}origin" % OR):
            return e.get("{%s}origin" % OR)
        e = e.getparent()
    return "none"
def fan1(doc):
    return [c for c in doc.iter("{%s}component" % HW) if c.findtext("{%s}name" % HW) == "ne=1/shelf=1/fan=1"][0]
wo = nmda(("get-data", '<datastore>ds:operational</datastore><subtree-filter><hardware xmlns="%s"/><system xmlns="%s"/></subtree-filter><with-origin/>' % (HW, SYS)))
print("origin-hardware=%s" % wo.find(".//{%s}hardware" % HW).get("{%s}origin" % OR))
print("origin-system-location=%s" % origin(wo.find(".//{%s}location" % SYS)))
f = fan1(wo)
print("origin-fan1-alias=%s" % origin(f.find("{%s}alias" % HW)))
print("origin-fan1-parent-rel-pos=%s" % origin(f.find("{%s}parent-rel-pos" % HW)))
print("origin-fan1-serial=%s" % f.find("{%s}serial-num" % HW).get("{%s}origin" % OR))
kept = lambda doc: ",".join(n for n in ["alias", "parent-rel-pos", "serial-num"] if fan1(doc).find("{%s}%s" % (HW, n)) is not None)
only = nmda(("get-data", '<datastore>ds:operational</datastore><subtree-filter><hardware xmlns="%s"/></subtree-filter><origin-filter xmlns:or="%s">or:intended</origin-filter>' % (HW, OR)))
print("filter-intended=%s" % kept(only))
neg = nmda(("get-data", '<datastore>ds:operational</datastore><subtree-filter><hardware xmlns="%s"/></subtree-filter><negated-origin-filter xmlns:or="%s">or:intended</negated-origin-filter>' % (HW, OR)))
print("filter-not-intended=%s" % kept(neg))
try:
    nmda(("get-data", '<datastore>ds:running</datastore><with-origin/>'))
    print("origin-on-running=accepted")
except Exception as e:
    print("origin-on-running=%s" % getattr(e, "tag", e))
try:
    nmda(("get-data", '<datastore>ds:intended</datastore>'))
    print("intended=accepted")
except Exception as e:
    print("intended=refused %s" % ("invalid-value" in str(getattr(e, "tag", "")) or "not a datastore" in str(e)))
m.close_session()
"#;

const SENSORS_SCRIPT: &str = r#"
import sys
from ncclient import manager
host, port = sys.argv[1].rsplit(":", 1)
HW = "urn:ietf:params:xml:ns:yang:ietf-hardware"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
t = lambda e, n: e.findtext("{%s}%s" % (HW, n)) or ""
data = m.get(filter=("subtree", '<hardware xmlns="%s"/>' % HW)).data_ele
rows = []
for c in data.iter("{%s}component" % HW):
    d = c.find("{%s}sensor-data" % HW)
    if d is not None:
        rows.append((int(t(c, "physical-index")), "%s %s %s %s %s %s" % (t(c, "physical-index"), t(c, "name"),
              t(d, "value"), t(d, "value-type"), t(d, "value-scale"), t(d, "oper-status"))))
for _, r in sorted(rows):
    print(r)
m.close_session()
"#;

const PURGE_SCRIPT: &str = r#"
import sys
from ncclient import manager
from lxml import etree
host, port = sys.argv[1].rsplit(":", 1)
AL = "urn:ietf:params:xml:ns:yang:ietf-alarms"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
# A unit inserted (the demo's simulated hot-swap bus, over HTTP) is
# ietf-hardware's hardware-state-change, and the new card is a component.
import base64, json, time, urllib.request, urllib.error
m.create_subscription()
req = urllib.request.Request("http://%s/api/v1/objects/ne=1/shelf=1/hsc=1/operations/insert" % sys.argv[2],
    data=json.dumps({"slot": "8", "fru-type": "linecard-10g", "serial-number": "T0008",
                     "hardware-revision": "A"}).encode(),
    headers={"Content-Type": "application/json", "Accept": "application/json",
             "Authorization": "Basic " + base64.b64encode(b"operator:halyard-demo").decode()})
try:
    urllib.request.urlopen(req, timeout=30).read()
except urllib.error.HTTPError as e:
    print("insert-refused=%s %s" % (e.code, e.read().decode()))
got = ""
deadline = time.time() + 30
while time.time() < deadline and "hardware-state-change" not in got:
    n = m.take_notification(timeout=5)
    if n is not None:
        got += n.notification_xml
print("hardware-state-change=%s" % ("hardware-state-change" in got))
HW = "urn:ietf:params:xml:ns:yang:ietf-hardware"
hw = m.get(filter=("subtree", '<hardware xmlns="%s"><component><name>ne=1/shelf=1/linecard=slot-8</name></component></hardware>' % HW)).data_ele
print("new-card-class=%s" % hw.findtext(".//{%s}class" % HW))
def purge(body):
    r = m.dispatch(etree.fromstring('<action xmlns="urn:ietf:params:xml:ns:yang:1"><alarms xmlns="%s"><alarm-list><purge-alarms>%s</purge-alarms></alarm-list></alarms></action>' % (AL, body)))
    return etree.fromstring(r.xml.encode()).findtext(".//{%s}purged-alarms" % AL)
HC = "urn:halyard:params:xml:ns:yang:halyard-cluster"
AT = "urn:halyard:params:xml:ns:yang:halyard-cluster-alarm-types"
def set_state(state):
    m.dispatch(etree.fromstring('<action xmlns="urn:ietf:params:xml:ns:yang:1"><alarms xmlns="%s"><alarm-list><alarm>'
        '<resource xmlns:hc="%s">/hc:element/hc:shelf[hc:name=\'ne=1/shelf=1\']</resource>'
        '<alarm-type-id xmlns:hc-at="%s">hc-at:power-problem</alarm-type-id><alarm-type-qualifier/>'
        '<set-operator-state><state>%s</state><text>on it</text></set-operator-state></alarm></alarm-list></alarms></action>'
        % (AL, HC, AT, state)))
set_state("ack")
lst = m.get(filter=("subtree", '<alarms xmlns="%s"><alarm-list/></alarms>' % AL)).data_ele
acked = [a for a in lst.iter("{%s}alarm" % AL)
         if a.find("{%s}operator-state-change" % AL) is not None]
print("acked=%s" % ",".join("%s:%s:%s" % (a.findtext("{%s}resource" % AL).split("'")[1],
      a.findtext("{%s}operator-state-change/{%s}state" % (AL, AL)),
      a.findtext("{%s}operator-state-change/{%s}operator" % (AL, AL))) for a in acked))
try:
    set_state("closed")
    print("closed=accepted")
except Exception as e:
    print("closed=%s" % getattr(e, "tag", e))
print("purge-old=%s" % purge("<alarm-clearance-status>any</alarm-clearance-status><older-than><hours>1</hours></older-than>"))
# The operator-state filter: the closed alarm, by its closer only.
print("purge-closed-by-other=%s" % purge("<alarm-clearance-status>any</alarm-clearance-status><operator-state-filter><state>closed</state><user>nobody</user></operator-state-filter>"))
print("purge-closed=%s" % purge("<alarm-clearance-status>any</alarm-clearance-status><operator-state-filter><state>closed</state><user>operator</user></operator-state-filter>"))
print("purge-active=%s" % purge("<alarm-clearance-status>not-cleared</alarm-clearance-status>"))
try:
    purge("<alarm-clearance-status>sometimes</alarm-clearance-status>")
    print("bad-status=accepted")
except Exception as e:
    print("bad-status=%s" % getattr(e, "tag", e))
m.close_session()
"#;

/// ietf-hardware and ENTITY-MIB / ENTITY-STATE-MIB are one physical view,
/// and ietf-alarms and hcAlarmTable one alarm engine (and NMDA's
/// <get-data>/<edit-data> read and write the same datastores):
/// ncclient's `/hardware` and net-snmp's entPhysicalTable and entStateTable
/// list the same entities, with the same indices, classes, containers,
/// operational states and alarmed entities, after a shelf power loss
/// raised alarms. Every reply validates against the published ietf-hardware.
#[test]
fn ietf_hardware_and_the_entity_mib_show_one_physical_view() {
    use crate::agent::wait_until;
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = crate::netconf_correctness::traced_agent(dir.path());
    let (code, body) = a.curl(
        "POST",
        "/api/v1/objects/ne=1/shelf=1/operations/inject-fault",
        Some(r#"{"fault":"power-loss"}"#),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let shelf = index_of(&a, "ne=1/shelf=1");
    const ENT_STATE: &str = "1.3.6.1.2.1.131.1.1.1";
    wait_until("the shelf's alarm in entStateAlarm", || {
        let (_, out) = a.snmp(
            "snmpget",
            &["-v2c", "-c", "public", "-Oqv", "-Ox"],
            &[&format!("{ENT_STATE}.5.{shelf}")],
        );
        out.trim().trim_matches('"').trim() != "00"
    });
    // The power loss spreads over a few seconds (units go disabled, their
    // alarms come): compare the faces once the physical states and the
    // alarms hold still for two seconds.
    let settled = || {
        (
            a.walk(&format!("{ENT_STATE}.3")),
            a.walk(&format!("{ENT_STATE}.5")),
            a.walk(&format!("{}.1.30.1.13", crate::agent::HC)),
        )
    };
    let mut before = settled();
    wait_until("the states to settle after the power loss", || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let now = settled();
        std::mem::replace(&mut before, now) == before
    });
    let script = dir.path().join("hw.py");
    std::fs::write(&script, HARDWARE_SCRIPT).unwrap();
    let text = crate::agent::python3(&script, &[&a.netconf]);
    // index -> (name, class, parent, oper, alarmed) from NETCONF.
    let mut hw = std::collections::BTreeMap::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("component ")) {
        let (head, alarms) = l.split_once(" [").unwrap();
        let f: Vec<&str> = head.split(' ').collect();
        hw.insert(
            f[0].to_string(),
            (
                f[1].to_string(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].to_string(),
                !alarms.trim_end_matches(']').is_empty(),
            ),
        );
    }
    assert!(hw.len() >= 8, "{text}");
    let name_of = |i: &str| hw.get(i).map(|v| v.0.clone());
    // The same from SNMP: entPhysicalClass(5), entPhysicalContainedIn(4),
    // entStateOper(3), entStateAlarm(5).
    let column = |oid: String| -> std::collections::BTreeMap<String, String> {
        a.walk(&oid)
            .into_iter()
            .map(|(o, v)| (o.rsplit('.').next().unwrap().to_string(), v))
            .collect()
    };
    let classes = column("1.3.6.1.2.1.47.1.1.1.1.5".into());
    let contained = column("1.3.6.1.2.1.47.1.1.1.1.4".into());
    let oper = column(format!("{ENT_STATE}.3"));
    assert_eq!(
        classes.keys().collect::<Vec<_>>(),
        hw.keys().collect::<Vec<_>>(),
        "the same entities by index\n{text}"
    );
    let class_name = |v: &str| match v {
        "3" => "chassis",
        "6" => "power-supply",
        "7" => "fan",
        "9" => "module",
        "10" => "port",
        "11" => "stack",
        "8" => "sensor",
        "12" => "cpu",
        other => panic!("unexpected entPhysicalClass {other}"),
    };
    for (i, (name, class, parent, op, alarmed)) in &hw {
        assert_eq!(class_name(&classes[i]), class, "{name}");
        let snmp_parent = name_of(&contained[i]).unwrap_or_else(|| "-".into());
        assert_eq!(&snmp_parent, parent, "{name}");
        let snmp_oper = match oper[i].as_str() {
            "2" => "disabled",
            "3" => "enabled",
            _ => "unknown",
        };
        assert_eq!(snmp_oper, op, "{name}");
        let (_, bits) = a.snmp(
            "snmpget",
            &["-v2c", "-c", "public", "-Oqv", "-Ox"],
            &[&format!("{ENT_STATE}.5.{i}")],
        );
        let snmp_alarmed = bits.trim().trim_matches('"').trim() != "00";
        assert_eq!(snmp_alarmed, *alarmed, "{name}: entStateAlarm {bits}");
    }
    assert!(hw[&shelf].4, "the shelf is alarmed on both faces\n{text}");
    // The element is an entity (a stack of shelves) that holds the shelf;
    // every entity's maker is the element's vendor; models as configured.
    let element = index_of(&a, "ne=1");
    assert_eq!(hw[&element].1, "stack", "{text}");
    assert_eq!(hw[&shelf].2, "ne=1", "{text}");
    let made: std::collections::BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("made "))
        .filter_map(|l| l.split_once(' '))
        .map(|(i, m)| (i.to_string(), m.to_string()))
        .collect();
    let mfg = column("1.3.6.1.2.1.47.1.1.1.1.12".into());
    let model = column("1.3.6.1.2.1.47.1.1.1.1.13".into());
    for (i, m) in &made {
        assert_eq!(&format!("{}|{}", mfg[i], model[i]), m, "entity {i}");
    }
    let fan = index_of(&a, "ne=1/shelf=1/fan=1");
    assert_eq!(made[&fan], "Halyard|FT-120", "{text}");
    assert_eq!(made[&shelf], "Halyard|HS-7", "{text}");
    assert_eq!(made[&element], "Halyard|demo", "{text}");
    // entPhysicalVendorType: the generated MIB's registration of the class.
    let (_, vendor_type) = a.snmp(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            "-Oqv",
            "-M",
            &format!(
                "+{}:{}",
                crate::agent::workspace().join("mib").display(),
                crate::agent::workspace().join("mib/standard").display()
            ),
            "-m",
            "+HALYARD-CLUSTER-MIB",
        ],
        &[&format!("1.3.6.1.2.1.47.1.1.1.1.3.{fan}")],
    );
    assert!(
        vendor_type.contains("HALYARD-CLUSTER-MIB::hcFanType"),
        "{vendor_type}"
    );
    assert!(
        text.contains("xpath-fans=ne=1/shelf=1/fan=1,ne=1/shelf=1/fan=2"),
        "{text}"
    );
    assert!(
        text.contains("library-features=entity-mib,hardware-sensor,hardware-state"),
        "{text}"
    );
    assert!(text.contains("schema-served=True"), "{text}");
    // ENTITY-SENSOR-MIB and ietf-hardware's sensor-data read the same
    // sensors, and /metrics has each reading in base units. The readings
    // move every statistics period: the faces are compared between two
    // equal SNMP readings (nothing moved in between).
    let sensors_script = dir.path().join("sensors.py");
    std::fs::write(&sensors_script, SENSORS_SCRIPT).unwrap();
    let strip = |v: &String| v.trim_start_matches("INTEGER: ").to_string();
    let snmp = || -> Vec<(String, String, String, String)> {
        let col = |c: u32| column(format!("1.3.6.1.2.1.99.1.1.1.{c}"));
        let (ty, scale, value, status) = (col(1), col(2), col(4), col(5));
        value
            .iter()
            .map(|(i, v)| {
                (
                    i.clone(),
                    strip(v),
                    strip(&ty[i]),
                    strip(&scale[i]) + "/" + &strip(&status[i]),
                )
            })
            .collect()
    };
    let mut agreed = false;
    for _ in 0..15 {
        let before = snmp();
        let nc = crate::agent::python3(&sensors_script, &[&a.netconf]);
        let (_, metrics) = a.curl("GET", "/metrics", None);
        if snmp() != before {
            continue;
        }
        let nc: Vec<Vec<&str>> = nc.lines().map(|l| l.split(' ').collect()).collect();
        assert!(before.len() >= 8, "{before:?}");
        assert_eq!(
            nc.len(),
            before.len(),
            "the same sensors\n{nc:?}\n{before:?}"
        );
        for (f, (index, value, ty, scale_status)) in nc.iter().zip(&before) {
            let (name, nc_value, nc_type, nc_scale, nc_status) = (f[1], f[2], f[3], f[4], f[5]);
            assert_eq!(f[0], index, "{name}");
            assert_eq!(
                nc_value, value,
                "{name}: sensor-data against entPhySensorValue"
            );
            let smi = |t: &str| match t {
                "rpm" => "10",
                "watts" => "6",
                "volts-DC" => "4",
                "celsius" => "8",
                "milli" => "8",
                "units" => "9",
                "ok" => "1",
                "unavailable" => "2",
                "nonoperational" => "3",
                other => panic!("unexpected {other}"),
            };
            assert_eq!(smi(nc_type), ty, "{name}");
            assert_eq!(
                format!("{}/{}", smi(nc_scale), smi(nc_status)),
                *scale_status,
                "{name}"
            );
            // The gauge's family in base units, labelled with the entity.
            let (entity, attr) = name.split_once("/sensor=").unwrap();
            let family = |x: &halyard_cluster_model::meta::AttrMeta| {
                halyard_http::metrics::base_unit(x.metric.as_ref().unwrap().name)
            };
            let line = halyard_cluster_model::SCHEMA
                .object_classes()
                .flat_map(|c| c.attributes.iter())
                .filter(|x| x.yang_name == attr && x.metric.is_some())
                .find_map(|x| {
                    let (fam, factor) = family(x);
                    metrics
                        .lines()
                        .find(|l| l.starts_with(&format!("{fam}{{name=\"{entity}\"")))
                        .map(|l| (l.to_string(), factor))
                })
                .unwrap_or_else(|| panic!("no family of {name} in /metrics"));
            let exposed: f64 = line.0.rsplit(' ').next().unwrap().parse().unwrap();
            let reading: f64 = nc_value.parse().unwrap();
            let exp = if nc_scale == "milli" { 1e-3 } else { 1.0 };
            assert!(
                (exposed - reading * exp).abs() < 1e-9 && (line.1 - exp).abs() < 1e-12,
                "{name}: /metrics {} against sensor-data {nc_value} {nc_scale}",
                line.0
            );
        }
        agreed = true;
        break;
    }
    assert!(
        agreed,
        "the readings never held still between two SNMP walks"
    );
    // NMDA: <get-data> of operational is <get>'s data; <edit-data> on
    // running is seen in running and operational; max-depth prunes; a
    // datastore the server lacks is refused.
    let count = |key: &str| -> usize {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    assert_eq!(
        count("get-data-components="),
        count("get-components="),
        "{text}"
    );
    assert!(count("get-data-components=") >= 8, "{text}");
    for want in [
        "running-location=NMDA row 5",
        "operational-location=NMDA row 5",
        // ietf-system shows the element's location and the platform.
        "system-location=NMDA row 5",
        "os-name=Linux",
        "clock-offset=+02:00",
        "config-offset=120",
        "offset-1501=invalid-value",
        "max-depth-1=True",
        "intended=refused True",
        // Origins: what running holds is intended, the system's own
        // configuration (a component's position) is system, state has none;
        // the filters select configuration and keep state.
        "origin-hardware=or:intended",
        "origin-system-location=or:intended",
        "origin-fan1-alias=or:intended",
        "origin-fan1-parent-rel-pos=or:system",
        "origin-fan1-serial=None",
        "filter-intended=alias,serial-num\n",
        "filter-not-intended=parent-rel-pos,serial-num\n",
        "origin-on-running=invalid-value",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    // ietf-alarms and HALYARD-CLUSTER-MIB's hcAlarmTable are one alarm
    // engine: the resources with an active alarm are the same, and the
    // summary counts them.
    let resources = a.walk(&format!("{}.1.30.1.10", crate::agent::HC));
    let severities = a.walk(&format!("{}.1.30.1.13", crate::agent::HC));
    let mut snmp_active: Vec<String> = resources
        .into_iter()
        .zip(severities)
        .filter(|(_, (_, sev))| sev != "1")
        .map(|((_, r), _)| r.trim_matches('"').to_string())
        .collect();
    snmp_active.sort();
    let mut nc_active: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("alarm "))
        .filter(|l| l.contains("cleared=false"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    nc_active.sort();
    assert!(nc_active.contains(&"ne=1/shelf=1".to_string()), "{text}");
    assert_eq!(nc_active, snmp_active, "{text}");
    // ietf-alarms-x733's probable cause of every active alarm is the alarm
    // type of its ALARM-MIB row (alarmModelIndex in alarmActiveModelPointer).
    let x733: Vec<Vec<&str>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("x733 "))
        .map(|l| l.split(' ').collect())
        .collect();
    let mut nc_causes: Vec<String> = x733
        .iter()
        .filter(|f| f[1] == "false")
        .map(|f| f[2].to_string())
        .collect();
    nc_causes.sort();
    let mut mib_causes: Vec<String> = a
        .walk("1.3.6.1.2.1.118.1.2.2.1.13")
        .into_iter()
        .map(|(_, v)| v.rsplit('.').nth(1).unwrap_or_default().to_string())
        .collect();
    mib_causes.sort();
    assert_eq!(nc_causes, mib_causes, "{text}");
    assert!(
        x733.iter().any(|f| f[0] == "ne=1/shelf=1"
            && f[2] == "58"
            && f[3] == "powerProblem"
            && f[4] == "environmental-alarm"),
        "{text}"
    );
    assert!(
        text.contains(&format!("summary-not-cleared={}", nc_active.len())),
        "{text}"
    );
    // ietf-alarms purge-alarms: nothing is an hour old; every active one goes.
    let purge = dir.path().join("purge.py");
    std::fs::write(&purge, PURGE_SCRIPT).unwrap();
    let purged = crate::agent::python3(&purge, &[&a.netconf, &a.http]);
    // set-operator-state: ack is the engine's acknowledgement, seen as the
    // entry's operator-state-change; closed is kept too.
    assert!(
        purged.contains("acked=ne=1/shelf=1:ack:operator"),
        "{purged}"
    );
    assert!(purged.contains("closed=accepted"), "{purged}");
    assert!(purged.contains("purge-closed-by-other=0"), "{purged}");
    assert!(purged.contains("purge-closed=1"), "{purged}");
    assert!(purged.contains("hardware-state-change=True"), "{purged}");
    assert!(purged.contains("new-card-class=ianahw:module"), "{purged}");
    assert!(purged.contains("purge-old=0"), "{purged}");
    assert!(
        purged.contains(&format!("purge-active={}", nc_active.len() - 1)),
        "{purged} (active before: {nc_active:?})"
    );
    assert!(purged.contains("bad-status=invalid-value"), "{purged}");
    drop(a);
    crate::netconf_correctness::check_trace(&trace);
}

const SYSTEM_SCRIPT: &str = r#"
import sys
from ncclient import manager
from ncclient.operations.rpc import RPCError
host, port = sys.argv[1].rsplit(":", 1)
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
def edit(target, body):
    return m.edit_config(target=target, config='<config xmlns="%s"><system xmlns="%s" xmlns:nc="%s">%s</system></config>' % (NC, SYS, NC, body))
def shown(source):
    d = m.get_config(source=source, filter=("subtree", '<system xmlns="%s"/>' % SYS)).data_ele
    return "%s|%s" % (d.findtext(".//{%s}contact" % SYS), d.findtext(".//{%s}location" % SYS))
if sys.argv[2] == "set":
    edit("running", "<contact>NOC +1 555 0199</contact><location>Site 9, rack 2</location>")
    print("running=%s" % shown("running"))
    edit("running", "<hostname>ne1.example.net</hostname>")
    d = m.get_config(source="running", filter=("subtree", '<system xmlns="%s"/>' % SYS)).data_ele
    print("hostname=%s" % d.findtext(".//{%s}hostname" % SYS))
    try:
        edit("running", "<hostname>core router 1</hostname>")
        print("bad-hostname=accepted")
    except RPCError as e:
        print("bad-hostname=%s" % e.tag)
    try:
        edit("running", "<clock><timezone-utc-offset>60</timezone-utc-offset></clock>")
        print("clock=accepted")
    except RPCError as e:
        print("clock=%s" % e.tag)
    # A time-zone name needs a time-zone database: refused, not dropped.
    try:
        edit("running", "<clock><timezone-name>Europe/Berlin</timezone-name></clock>")
        print("timezone-name=accepted")
    except RPCError as e:
        print("timezone-name=%s" % e.tag)
    edit("candidate", "<location>Site 10</location>")
    print("candidate=%s" % shown("candidate"))
    print("running-before-commit=%s" % shown("running"))
    m.commit()
elif sys.argv[2] == "delete":
    edit("running", '<location nc:operation="delete"/>')
    print("running=%s" % shown("running"))
"#;

/// ietf-system's contact, hostname and location are configuration (RFC
/// 7317): ncclient edits them in running and candidate (get-config shows
/// them), net-snmp reads the same values as sysContact, sysName and
/// sysLocation; a host name that is no domain name and the rest of
/// /system are refused, not silently dropped.
#[test]
fn ietf_system_contact_and_location_are_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let a = crate::agent::Agent::start(dir.path());
    let script = dir.path().join("system.py");
    std::fs::write(&script, SYSTEM_SCRIPT).unwrap();
    let text = crate::agent::python3(&script, &[&a.netconf, "set"]);
    for want in [
        "running=NOC +1 555 0199|Site 9, rack 2",
        "hostname=ne1.example.net",
        "bad-hostname=invalid-value",
        "clock=accepted",
        "timezone-name=operation-not-supported",
        "candidate=NOC +1 555 0199|Site 10",
        "running-before-commit=NOC +1 555 0199|Site 9, rack 2",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert_eq!(get(&a, "1.3.6.1.2.1.1.4.0"), "NOC +1 555 0199");
    // ietf-system's hostname is sysName.
    assert_eq!(get(&a, "1.3.6.1.2.1.1.5.0"), "ne1.example.net");
    assert_eq!(get(&a, "1.3.6.1.2.1.1.6.0"), "Site 10", "committed");
    let text = crate::agent::python3(&script, &[&a.netconf, "delete"]);
    assert!(text.contains("running=NOC +1 555 0199|None"), "{text}");
    assert_eq!(get(&a, "1.3.6.1.2.1.1.6.0"), "");
}

const SHELVING_SCRIPT: &str = r#"
import sys, time, base64, json, urllib.request
from ncclient import manager
from ncclient.operations.rpc import RPCError
from lxml import etree
host, port = sys.argv[1].rsplit(":", 1)
AL = "urn:ietf:params:xml:ns:yang:ietf-alarms"
HC = "urn:halyard:params:xml:ns:yang:halyard-cluster"
AT = "urn:halyard:params:xml:ns:yang:halyard-cluster-alarm-types"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SHELF = "/hc:element/hc:shelf[hc:name='ne=1/shelf=1']"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
def control(body):
    m.edit_config(target="running", config='<config xmlns="%s"><alarms xmlns="%s" xmlns:nc="%s"><control>%s</control></alarms></config>' % (NC, AL, NC, body))
def fault(f):
    req = urllib.request.Request("http://%s/api/v1/objects/ne=1/shelf=1/operations/inject-fault" % sys.argv[2],
        data=json.dumps({"fault": f}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json",
                 "Authorization": "Basic " + base64.b64encode(b"operator:halyard-demo").decode()})
    urllib.request.urlopen(req, timeout=30).read()
def alarms():
    return m.get(filter=("subtree", '<alarms xmlns="%s"/>' % AL)).data_ele
def ours(a):
    return ((a.findtext("{%s}resource" % AL) or "").endswith("[hc:name='ne=1/shelf=1']")
            and (a.findtext("{%s}alarm-type-id" % AL) or "").endswith(":power-problem"))
def find(root, kind):
    for a in root.iter("{%s}%s" % (AL, kind)):
        if ours(a):
            return a
    return None
def wait(what, cond):
    deadline = time.time() + 60
    while time.time() < deadline:
        r = cond()
        if r is not None:
            return r
        time.sleep(0.5)
    print("timeout=%s" % what, flush=True)
    return None
def shelved_where(pred):
    s = find(alarms(), "shelved-alarm")
    return s if s is not None and pred(s) else None
changes = lambda a: len(a.findall("{%s}status-change" % AL))
ops = lambda a: ",".join("%s:%s%s" % (c.findtext("{%s}state" % AL), c.findtext("{%s}operator" % AL),
    (":" + c.findtext("{%s}text" % AL)) if c.find("{%s}text" % AL) is not None else "")
    for c in a.findall("{%s}operator-state-change" % AL))
def set_state(state, text):
    m.dispatch(etree.fromstring('''<action xmlns="urn:ietf:params:xml:ns:yang:1"><alarms xmlns="%s"><alarm-list><alarm>
      <resource xmlns:hc="%s">%s</resource><alarm-type-id xmlns:hc-at="%s">hc-at:power-problem</alarm-type-id><alarm-type-qualifier/>
      <set-operator-state><state>%s</state><text>%s</text></set-operator-state></alarm></alarm-list></alarms></action>'''
      % (AL, HC, SHELF, AT, state, text)))
cleared = lambda a: a.findtext("{%s}is-cleared" % AL) == "true"
control("""<max-alarm-status-changes>16</max-alarm-status-changes><alarm-shelving><shelf>
  <name>psu-swap</name><resource xmlns:hc="%s">%s</resource>
  <alarm-type><alarm-type-id xmlns:hc-at="%s">hc-at:power-problem</alarm-type-id><alarm-type-qualifier-match></alarm-type-qualifier-match></alarm-type>
  <description>PSU swap, ticket 4711</description></shelf></alarm-shelving>""" % (HC, SHELF, AT))
cfg = m.get_config(source="running", filter=("subtree", '<alarms xmlns="%s"/>' % AL)).data_ele
print("config-shelf=%s|%s|%s" % (cfg.findtext(".//{%s}shelf/{%s}name" % (AL, AL)),
      cfg.findtext(".//{%s}shelf/{%s}description" % (AL, AL)),
      cfg.findtext(".//{%s}max-alarm-status-changes" % AL)))
try:
    control("""<alarm-shelving><shelf><name>bad</name><alarm-type><alarm-type-id xmlns:hc-at="%s">hc-at:no-such-type</alarm-type-id>
      <alarm-type-qualifier-match></alarm-type-qualifier-match></alarm-type></shelf></alarm-shelving>""" % AT)
    print("bad-type=accepted")
except RPCError as e:
    print("bad-type=%s" % e.tag)
m.create_subscription()
fault("power-loss")
if wait("shelved", lambda: shelved_where(lambda s: True)) is not None:
    al = alarms()
    s = find(al, "shelved-alarm")
    print("shelved=%s in-list=%s" % (s.findtext("{%s}shelf-name" % AL), find(al, "alarm") is not None))
    print("shelved-ops=%s" % ops(s))
    print("shelves-active=%s" % (al.find(".//{%s}summary/{%s}shelves-active" % (AL, AL)) is not None))
# What else the power loss raised is announced; the shelved alarm is not.
got = []
deadline = time.time() + 5
while time.time() < deadline:
    n = m.take_notification(timeout=1)
    if n is not None:
        got.append(n.notification_xml)
notified = set()
for x in got:
    for n in etree.fromstring(x.encode()).iter("{%s}alarm-notification" % AL):
        notified.add("%s|%s" % (n.findtext("{%s}resource" % AL).split("name='")[-1].rstrip("']"),
                                n.findtext("{%s}alarm-type-id" % AL).split(":")[-1]))
print("notified=%s;" % ";".join(sorted(notified)))
# The units the power loss took down: ietf-hardware's oper-disabled, each
# a component of /hardware.
HW = "urn:ietf:params:xml:ns:yang:ietf-hardware"
down = set()
for x in got:
    for n in etree.fromstring(x.encode()).iter("{%s}hardware-state-oper-disabled" % HW):
        down.add(n.findtext("{%s}name" % HW))
hw = m.get(filter=("subtree", '<hardware xmlns="%s"><component><name/></component></hardware>' % HW)).data_ele
names = set(c.text for c in hw.iter("{%s}name" % HW))
print("oper-disabled=%s;" % ";".join(sorted(down)))
print("oper-disabled-in-hardware=%s" % (len(down) > 0 and down <= names))
# Cleared and raised again on the shelf: three status changes.
fault("repair")
wait("cleared", lambda: shelved_where(cleared))
fault("power-loss")
s = wait("reopened", lambda: shelved_where(lambda s: not cleared(s)))
if s is not None:
    print("shelved-changes=%d" % changes(s))
    print("severities=%s" % ",".join(c.findtext("{%s}perceived-severity" % AL) for c in s.findall("{%s}status-change" % AL)))
control('<alarm-shelving><shelf nc:operation="delete"><name>psu-swap</name></shelf></alarm-shelving>')
a = wait("unshelved", lambda: find(alarms(), "alarm"))
if a is not None:
    print("unshelved=True changes=%d" % changes(a))
    print("unshelved-ops=%s" % ops(a))
set_state("closed", "PSU replaced")
print("closed-ops=%s" % ops(find(alarms(), "alarm")).split(",")[0])
try:
    set_state("done", "")
    print("bad-state=accepted")
except RPCError as e:
    print("bad-state=%s" % e.tag)
cfg = m.get_config(source="running", filter=("subtree", '<alarms xmlns="%s"/>' % AL)).data_ele
print("config-shelves-left=%d" % len(cfg.findall(".//{%s}shelf" % AL)))
r = m.dispatch(etree.fromstring('''<action xmlns="urn:ietf:params:xml:ns:yang:1"><alarms xmlns="%s"><alarm-list><compress-alarms>
  <resource xmlns:hc="%s">%s</resource><alarm-type-id xmlns:hc-at="%s">hc-at:power-problem</alarm-type-id>
  </compress-alarms></alarm-list></alarms></action>''' % (AL, HC, SHELF, AT)))
print("compressed=%s" % etree.fromstring(r.xml.encode()).findtext(".//{%s}compressed-alarms" % AL))
print("changes-after-compress=%d" % changes(find(alarms(), "alarm")))
m.close_session()
"#;

/// ietf-alarms shelving and history with ncclient on the demo: a shelf
/// configured in running holds the shelf's power alarm (listed under
/// shelved-alarms, not in the alarm list, not announced) while the rest of
/// the power loss is announced; its clear and re-raise are its status
/// changes; the shelf deleted puts it back in the list; compress-alarms
/// leaves its latest status change. Every reply validates.
#[test]
fn ietf_alarms_shelving_history_and_compress() {
    let _load = crate::cluster::not_beside_a_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = crate::netconf_correctness::traced_agent(dir.path());
    let script = dir.path().join("shelving.py");
    std::fs::write(&script, SHELVING_SCRIPT).unwrap();
    let text = crate::agent::python3(&script, &[&a.netconf, &a.http]);
    assert!(!text.contains("timeout="), "{text}");
    for want in [
        "config-shelf=psu-swap|PSU swap, ticket 4711|16",
        "bad-type=invalid-value",
        "shelved=psu-swap in-list=False",
        "shelves-active=True",
        "oper-disabled-in-hardware=True",
        // The shelf itself fails; its units go off-line as contained.
        "oper-disabled=ne=1/shelf=1;",
        "shelved-changes=3",
        "severities=critical,cleared,critical",
        "unshelved=True changes=3",
        "shelved-ops=shelved:system:shelf psu-swap\n",
        // Newest first: taken off the shelf, and the two raises onto it.
        "unshelved-ops=un-shelved:system:no shelf holds it,shelved:system:shelf psu-swap,shelved:system:shelf psu-swap\n",
        "closed-ops=closed:operator:PSU replaced\n",
        "bad-state=invalid-value",
        "config-shelves-left=0",
        "compressed=1",
        "changes-after-compress=1",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    // What else the power loss raised is announced (the units under the
    // shelf); the shelved alarm is not.
    let notified = text
        .lines()
        .find_map(|l| l.strip_prefix("notified="))
        .unwrap_or_default();
    assert!(notified.contains("ne=1/shelf=1/"), "{text}");
    assert!(!notified.contains("ne=1/shelf=1|power-problem;"), "{text}");
    drop(a);
    crate::netconf_correctness::check_trace(&trace);
}

const HARDWARE_CONFIG_SCRIPT: &str = r#"
import sys
from ncclient import manager
from ncclient.operations.rpc import RPCError
host, port = sys.argv[1].rsplit(":", 1)
HW = "urn:ietf:params:xml:ns:yang:ietf-hardware"
IANA = "urn:ietf:params:xml:ns:yang:iana-hardware"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
def edit(body):
    m.edit_config(target="running", config='<config xmlns="%s"><hardware xmlns="%s" xmlns:ianahw="%s">%s</hardware></config>' % (NC, HW, IANA, body))
FAN = "<name>ne=1/shelf=1/fan=1</name><class>ianahw:fan</class>"
state = sys.argv[2]
edit("<component>%s<alias>left fan</alias><state><admin-state>%s</admin-state></state></component>" % (FAN, state))
cfg = m.get_config(source="running", filter=("subtree",
    '<hardware xmlns="%s"><component><name>ne=1/shelf=1/fan=1</name></component></hardware>' % HW)).data_ele
print("config=%s|%s" % (cfg.findtext(".//{%s}alias" % HW), cfg.findtext(".//{%s}admin-state" % HW)))
try:
    edit("<component><name>ne=1/shelf=1/fan=1</name><class>ianahw:cpu</class></component>")
    print("wrong-class=accepted")
except RPCError as e:
    print("wrong-class=%s" % e.tag)
"#;

/// ietf-hardware's alias and admin-state are configuration (RFC 8348):
/// ncclient locks a fan and names it in running; net-snmp's entStateAdmin
/// and entPhysicalAlias show it, and unlocking it over ietf-hardware
/// unlocks it everywhere. A class that is not the entity's is refused.
#[test]
fn ietf_hardware_admin_state_and_alias_are_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (a, trace) = crate::netconf_correctness::traced_agent(dir.path());
    let script = dir.path().join("hwcfg.py");
    std::fs::write(&script, HARDWARE_CONFIG_SCRIPT).unwrap();
    let fan = index_of(&a, "ne=1/shelf=1/fan=1");
    let text = crate::agent::python3(&script, &[&a.netconf, "locked"]);
    for want in ["config=left fan|locked", "wrong-class=invalid-value"] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    wait_until("the fan locked (entStateAdmin)", || {
        get(&a, &format!("1.3.6.1.2.1.131.1.1.1.2.{fan}")) == "2"
    });
    assert_eq!(
        get(&a, &format!("1.3.6.1.2.1.47.1.1.1.1.14.{fan}")),
        "left fan"
    );
    let text = crate::agent::python3(&script, &[&a.netconf, "unlocked"]);
    assert!(text.contains("config=left fan|unlocked"), "{text}");
    wait_until("the fan unlocked (entStateAdmin)", || {
        get(&a, &format!("1.3.6.1.2.1.131.1.1.1.2.{fan}")) == "4"
    });
    drop(a);
    crate::netconf_correctness::check_trace(&trace);
}
