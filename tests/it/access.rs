//! The access model, face by face: the same users (a viewer, an operator in
//! a group with a stored rule, an operator outside it) and the same rules
//! give the same answer over HTTP (curl), NETCONF (ncclient and
//! netconf-console2) and SNMPv3
//! (net-snmp's snmpset), compared with one table; an admin edits the rules
//! at run time and the next request obeys them; refusals are counted.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::agent::{Agent, HC, index_of, python3};
use halyard_tests::workspace;

/// Each user's password (HTTP and NETCONF) and SNMPv3 passphrases.
const USERS: &[(&str, &str)] = &[
    ("ann", "viewer"),
    ("olga", "operator"),
    ("otto", "operator"),
    ("adam", "admin"),
];

fn password(user: &str) -> String {
    format!("{user}-secret-1")
}

/// The demo's configuration with these users on every face.
fn config(dir: &Path) -> PathBuf {
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let snmp: String = USERS
        .iter()
        .map(|(u, role)| {
            format!(
                "  {{ name = \"{u}\", auth = \"SHA-256\", auth_pass = \"{u}-auth-pass\", priv = \"AES\", priv_pass = \"{u}-priv-pass\", write = {} }},\n",
                *role != "viewer"
            )
        })
        .collect();
    let logins: String = USERS
        .iter()
        .map(|(u, role)| {
            format!(
                "  {{ name = \"{u}\", password = \"{}\", role = \"{role}\" }},\n",
                password(u)
            )
        })
        .collect();
    let swap = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the demo config changed: {from}");
        text.replacen(from, to, 1)
    };
    let mut text = swap(
        demo,
        "users = [\n  { name = \"operator\", auth",
        &format!("users = [\n{snmp}  {{ name = \"operator\", auth"),
    );
    text = swap(
        text,
        "users = [\n  { name = \"operator\", password = \"halyard-demo\" },",
        &format!("users = [\n{logins}  {{ name = \"operator\", password = \"halyard-demo\" }},"),
    );
    text = swap(
        text,
        "users = [\n  { name = \"operator\", password = \"halyard-demo\", role = \"operator\" },",
        &format!(
            "users = [\n{logins}  {{ name = \"operator\", password = \"halyard-demo\", role = \"operator\" }},"
        ),
    );
    let path = dir.join("access.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// ncclient as `user`: `label <list> <name> <text>` writes an object's
/// label in running; `lock` locks and unlocks running. Prints `ok` or
/// `denied:<error-tag>` (any other error fails).
const NC_SCRIPT: &str = r#"
import sys
from ncclient import manager
from ncclient.operations.rpc import RPCError
addr, user, password, what = sys.argv[1:5]
host, port = addr.rsplit(":", 1)
m = manager.connect(host=host, port=int(port), username=user, password=password,
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
NS = "urn:halyard:params:xml:ns:yang:halyard-cluster"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
try:
    if what == "label":
        lst, name, text = sys.argv[5:8]
        m.edit_config(target="running", config=
            '<config xmlns="%s"><element xmlns="%s"><%s><name>%s</name><label>%s</label></%s></element></config>'
            % (NC, NS, lst, name, text, lst))
    elif what == "lock":
        m.lock(target="running")
        m.unlock(target="running")
    elif what == "nacm-add":
        m.edit_config(target="running", config=
            '<config xmlns="%s"><nacm xmlns="%s" xmlns:hc="%s"><rule-list><name>no-shelf</name>'
            '<group>operator</group><rule><name>no-shelf-labels</name><module-name>halyard-cluster</module-name>'
            '<path>/hc:element/hc:shelf/hc:label</path><access-operations>update</access-operations>'
            '<action>deny</action></rule></rule-list></nacm></config>' % (NC, NACM, NS))
    elif what == "nacm-delete":
        m.edit_config(target="running", config=
            '<config xmlns="%s"><nacm xmlns="%s"><rule-list xmlns:nc="%s" nc:operation="delete">'
            '<name>no-shelf</name></rule-list></nacm></config>' % (NC, NACM, NC))
    elif what == "read":
        x = m.get(filter=("subtree", '<element xmlns="%s"><power-supply/><fan/></element>' % NS)).data_xml
        print("psu=%s" % ("ne=1/shelf=1/psu=1" in x))
        print("fans=%s" % ("ne=1/shelf=1/fan=1" in x))
        print("fan-label=%s" % ("<label>" in x.split("<fan>", 1)[-1]))
    elif what == "listen":
        import time
        from lxml import etree
        m.create_subscription()
        print("subscribed", flush=True)
        seen = set()
        deadline = time.time() + float(sys.argv[5])
        while time.time() < deadline:
            n = m.take_notification(block=True, timeout=1)
            if n is None:
                continue
            for e in etree.fromstring(n.notification_xml.encode()):
                seen.add(etree.QName(e).localname)
        print("seen=%s" % ",".join(sorted(seen)))
    elif what == "nacm-get":
        print(m.get_config(source="running", filter=("subtree", '<nacm xmlns="%s"/>' % NACM)).data_xml)
        print(m.get(filter=("subtree", '<nacm xmlns="%s"/>' % NACM)).data_xml)
    print("ok")
except RPCError as e:
    print("denied:%s" % e.tag if e.tag == "access-denied" else "error:%s:%s" % (e.tag, e.message))
m.close_session()
"#;

struct Faces<'a> {
    a: &'a Agent,
    script: PathBuf,
}

impl Faces<'_> {
    fn http(&self, user: &str, method: &str, path: &str, body: &str) -> (u16, String) {
        http_with(self.a, user, &password(user), method, path, body)
    }

    /// Whether the HTTP API lets `user` set the object's label.
    fn http_label(&self, user: &str, object: &str, text: &str) -> bool {
        let (code, body) = self.http(
            user,
            "PATCH",
            &format!("/api/v1/objects/{object}"),
            &format!(r#"{{"label":"{text}"}}"#),
        );
        match code {
            200..=299 => true,
            403 => {
                assert!(body.contains("access"), "{user} {object}: {body}");
                false
            }
            _ => panic!("{user} PATCH {object}: {code} {body}"),
        }
    }

    fn netconf(&self, user: &str, args: &[&str]) -> String {
        let pw = password(user);
        let mut all = vec![self.a.netconf.as_str(), user, pw.as_str()];
        all.extend_from_slice(args);
        python3(&self.script, &all).trim().to_string()
    }

    /// Whether netconf-console2 (a second NETCONF client) may set the
    /// object's label in running as `user`.
    fn console2_label(&self, user: &str, list: &str, object: &str, text: &str) -> bool {
        let (host, port) = self.a.netconf.rsplit_once(':').unwrap();
        let edit = self
            .script
            .with_file_name(format!("edit-{user}-{text}.xml"));
        // netconf-console2 wraps the file in <config> itself.
        std::fs::write(
            &edit,
            format!(
                r#"<element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><{list}><name>{object}</name><label>{text}</label></{list}></element>"#
            ),
        )
        .unwrap();
        let out = Command::new("netconf-console2")
            .args([
                "--host",
                host,
                "--port",
                port,
                "-u",
                user,
                "-p",
                &password(user),
            ])
            .args(["--db", "running", "--edit-config"])
            .arg(&edit)
            .output()
            .expect("netconf-console2");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if text.contains("access-denied") {
            return false;
        }
        assert!(
            out.status.success() && !text.contains("rpc-error"),
            "{user} netconf-console2 edit-config {object}: {text}"
        );
        true
    }

    fn netconf_label(&self, user: &str, list: &str, object: &str, text: &str) -> bool {
        match self.netconf(user, &["label", list, object, text]).as_str() {
            "ok" => true,
            "denied:access-denied" => false,
            other => panic!("{user} edit-config {object}: {other}"),
        }
    }

    /// snmpget as the user's v3 identity: the value, or None when the
    /// instance is not there (or hidden).
    fn snmp_get(&self, user: &str, oid: &str) -> Option<String> {
        let (auth, privacy) = (format!("{user}-auth-pass"), format!("{user}-priv-pass"));
        let (ok, out) = self.a.snmp(
            "snmpget",
            &[
                "-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", &auth, "-x", "AES",
                "-X", &privacy, "-t", "5", "-r", "1", "-Oqv",
            ],
            &[oid],
        );
        assert!(ok, "{user} snmpget {oid}: {out}");
        let v = out.trim().trim_matches('"').to_string();
        (!v.starts_with("No Such")).then_some(v)
    }

    /// Whether snmpset as the user's v3 identity sets the label column.
    fn snmp_label(&self, user: &str, oid: &str, text: &str) -> bool {
        let (auth, privacy) = (format!("{user}-auth-pass"), format!("{user}-priv-pass"));
        let (ok, out) = self.a.snmp(
            "snmpset",
            &[
                "-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", &auth, "-x", "AES",
                "-X", &privacy, "-t", "5", "-r", "1",
            ],
            &[oid, "s", text],
        );
        if !ok {
            assert!(
                out.contains("noAccess") || out.contains("authorizationError"),
                "{user} snmpset {oid}: {out}"
            );
        }
        ok
    }
}

#[test]
fn every_face_gives_the_same_answer_from_one_access_model() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    let script = dir.path().join("nc.py");
    std::fs::write(&script, NC_SCRIPT).unwrap();
    let f = Faces { a: &a, script };

    // An admin adds a group and a rule at run time; an operator may not.
    let (code, body) = f.http(
        "olga",
        "PUT",
        "/api/v1/objects/ne=1/accessgroup=night",
        r#"{"class":"AccessGroup","users":"olga"}"#,
    );
    assert_eq!(code, 403, "an operator created an access group: {body}");
    for (path, body) in [
        (
            "ne=1/accessgroup=night",
            r#"{"class":"AccessGroup","users":"olga"}"#,
        ),
        (
            "ne=1/rulelist=night-shift",
            r#"{"class":"AccessRuleList","groups":"night"}"#,
        ),
        (
            "ne=1/rulelist=night-shift/rule=no-fan-labels",
            r#"{"class":"AccessRule","module":"halyard-cluster","path":"/halyard-cluster:element/fan/label","operations":"update","action":"deny","comment":"fans are the day shift's"}"#,
        ),
    ] {
        let (code, text) = f.http("adam", "PUT", &format!("/api/v1/objects/{path}"), body);
        assert!((200..300).contains(&code), "PUT {path}: {code} {text}");
    }
    // A rule that does not parse is refused with what is wrong.
    let (code, text) = f.http(
        "adam",
        "PUT",
        "/api/v1/objects/ne=1/rulelist=night-shift/rule=bad",
        r#"{"class":"AccessRule","rpc":"lock","path":"/x","operations":"read"}"#,
    );
    assert!(code >= 400 && text.contains("one of rpc"), "{code} {text}");

    let fan = "ne=1/shelf=1/fan=1";
    let shelf = "ne=1/shelf=1";
    let fan_oid = format!("{HC}.1.5.1.19.{}", index_of(&a, fan));
    let shelf_oid = format!("{HC}.1.2.1.19.{}", index_of(&a, shelf));
    // user, object, its NETCONF list, its SNMP column, allowed?
    let table: &[(&str, &str, &str, &str, bool)] = &[
        ("ann", fan, "fan", &fan_oid, false),
        ("ann", shelf, "shelf", &shelf_oid, false),
        ("olga", fan, "fan", &fan_oid, false),
        ("olga", shelf, "shelf", &shelf_oid, true),
        ("otto", fan, "fan", &fan_oid, true),
        ("otto", shelf, "shelf", &shelf_oid, true),
    ];
    let mut refused = 0;
    for (i, (user, object, list, oid, allowed)) in table.iter().enumerate() {
        let text = format!("{user}-{i}");
        let answers = [
            ("HTTP", f.http_label(user, object, &text)),
            ("NETCONF", f.netconf_label(user, list, object, &text)),
            (
                "netconf-console2",
                f.console2_label(user, list, object, &format!("{text}c")),
            ),
            ("SNMP", f.snmp_label(user, oid, &text)),
        ];
        for (face, got) in answers {
            assert_eq!(got, *allowed, "{face}: {user} writing {object}'s label");
            refused += usize::from(!got);
        }
    }
    // What one face wrote, every face reads.
    let (_, body) = f.http("ann", "GET", &format!("/api/v1/objects/{shelf}"), "");
    assert!(body.contains(r#""label":"otto-5""#), "{body}");

    // Reads: the night shift does not see power supplies, nor fans'
    // labels; nobody else is affected.
    for (path, body) in [
        (
            "ne=1/rulelist=night-shift/rule=no-psu",
            r#"{"class":"AccessRule","path":"/halyard-cluster:element/power-supply","operations":"read","action":"deny"}"#,
        ),
        (
            "ne=1/rulelist=night-shift/rule=no-fan-label-reads",
            r#"{"class":"AccessRule","path":"/halyard-cluster:element/fan/label","operations":"read","action":"deny"}"#,
        ),
    ] {
        let (code, text) = f.http("adam", "PUT", &format!("/api/v1/objects/{path}"), body);
        assert!((200..300).contains(&code), "PUT {path}: {code} {text}");
    }
    // The faces read the rules again within 250 ms.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let psu = "ne=1/shelf=1/psu=1";
    let psu_oid = format!("{HC}.1.6.1.19.{}", index_of(&a, psu));
    for (user, hidden) in [("olga", true), ("otto", false), ("ann", false)] {
        let (code, body) = f.http(user, "GET", &format!("/api/v1/objects/{psu}"), "");
        assert_eq!(
            code,
            if hidden { 404 } else { 200 },
            "HTTP: {user} reading {psu}: {body}"
        );
        let (code, body) = f.http(user, "GET", &format!("/api/v1/objects/{fan}"), "");
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            body.contains(r#""label""#),
            !hidden,
            "HTTP: {user} reading the fan's label: {body}"
        );
        // Neither it nor what it contains is listed.
        let (_, list) = f.http(user, "GET", "/api/v1/classes/PowerSupply", "");
        assert_eq!(
            list.contains(psu),
            !hidden,
            "HTTP: {user}'s power supplies: {list}"
        );
        let (_, tree) = f.http(user, "GET", "/api/v1/tree", "");
        assert_eq!(
            tree.contains(&format!("{psu}/")),
            !hidden,
            "HTTP: {user}'s tree shows what the power supply contains"
        );
        let nc = f.netconf(user, &["read"]);
        assert!(nc.contains("fans=True"), "NETCONF: {user}: {nc}");
        assert!(
            nc.contains(&format!("psu={}", if hidden { "False" } else { "True" })),
            "NETCONF: {user}: {nc}"
        );
        assert!(
            nc.contains(&format!(
                "fan-label={}",
                if hidden { "False" } else { "True" }
            )),
            "NETCONF: {user}: {nc}"
        );
        assert_eq!(
            f.snmp_get(user, &psu_oid).is_none(),
            hidden,
            "SNMP: {user} reading {psu}"
        );
        assert_eq!(
            f.snmp_get(user, &fan_oid).is_none(),
            hidden,
            "SNMP: {user} reading the fan's label"
        );
    }

    // A viewer may not lock a datastore; an operator may.
    assert_eq!(f.netconf("ann", &["lock"]), "denied:access-denied");
    assert_eq!(f.netconf("olga", &["lock"]), "ok");

    // Every refusal of a write is counted on the element, shown by every
    // face, and audited with the user and the rule.
    let (_, ne) = f.http("ann", "GET", "/api/v1/objects/ne=1", "");
    let v: serde_json::Value = serde_json::from_str(&ne).unwrap();
    let denials = v["attributes"]["access-denials"]
        .as_str()
        .map(|s| s.parse::<usize>().unwrap())
        .or_else(|| {
            v["attributes"]["access-denials"]
                .as_u64()
                .map(|n| n as usize)
        })
        .unwrap_or_else(|| panic!("no access-denials in {ne}"));
    // The model refuses the HTTP and both NETCONF clients' writes and
    // olga's SNMP SET (ann's SNMP identity is read-only: SNMP refuses its
    // SET itself; NETCONF refuses ann's edit-config as an RPC) and olga's
    // PUT above.
    assert_eq!(refused, 12);
    assert_eq!(denials, 7, "{ne}");
    let (_, metrics) = f.http("ann", "GET", "/metrics", "");
    // Counted by face, user and rule.
    for (face, n) in [("http", 1), ("netconf", 2), ("snmp", 1)] {
        let series = format!(
            "halyard_access_denials_total{{face=\"{face}\",user=\"olga\",rule=\"night-shift/no-fan-labels\"}} {n}"
        );
        assert!(metrics.contains(&series), "no {series} in /metrics");
    }
    assert!(
        metrics.contains(
            "halyard_access_denials_total{face=\"netconf\",user=\"ann\",rule=\"role viewer/nothing-else\"} 5"
        ),
        "NETCONF's RPC refusals by rule"
    );
    // NETCONF refused ann's four edit-configs (two clients) and her lock
    // as RPCs.
    let rpc_refusals = metrics
        .lines()
        .find(|l| l.starts_with("halyard_netconf_events_total{counter=\"access_denied\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("NETCONF's refusals are not in /metrics"));
    assert_eq!(rpc_refusals, "5");
    assert!(
        !a.logged("night-shift/no-fan-labels").is_empty(),
        "the refusing rule is not logged"
    );

    // The same model is ietf-netconf-acm's /nacm: an operator may not edit
    // it; an admin adds a rule list for the operator role over NETCONF,
    // and HTTP obeys it at once.
    assert_eq!(f.netconf("olga", &["nacm-add"]), "denied:access-denied");
    assert_eq!(f.netconf("adam", &["nacm-add"]), "ok");
    assert!(!f.http_label("otto", shelf, "otto-nacm"));
    assert!(f.http_label("adam", shelf, "adam-nacm"));
    let nacm = f.netconf("ann", &["nacm-get"]);
    for needle in [
        "<name>night-shift</name>",
        "<group>night</group>",
        "<path>/halyard-cluster:element/fan/label</path>",
        "<name>no-shelf-labels</name>",
        "<user-name>olga</user-name>",
        "<denied-data-writes>",
    ] {
        assert!(nacm.contains(needle), "{needle} not in /nacm: {nacm}");
    }
    assert_eq!(f.netconf("adam", &["nacm-delete"]), "ok");
    assert!(f.http_label("otto", shelf, "otto-after"));

    // The admin removes the list: the next write obeys at once.
    let (code, text) = f.http(
        "adam",
        "DELETE",
        "/api/v1/objects/ne=1/rulelist=night-shift",
        "",
    );
    assert!((200..300).contains(&code), "{code} {text}");
    assert!(f.http_label("olga", fan, "olga-after"));
    assert!(f.netconf_label("olga", "fan", fan, "olga-after-nc"));
    assert!(f.snmp_label("olga", &fan_oid, "olga-after-snmp"));
}

/// Bearer tokens issued at run time: a user issues one for itself (shown
/// once), it authenticates with the user's role, lists only the owner's,
/// another user cannot revoke it, the owner does and the next request with
/// it is refused; an expired one is refused; no token is in a log line or
/// in /metrics.
#[test]
fn issued_tokens_authenticate_until_revoked_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    let script = dir.path().join("nc.py");
    std::fs::write(&script, NC_SCRIPT).unwrap();
    let f = Faces { a: &a, script };
    let bearer = |token: &str, method: &str, path: &str, body: &str| {
        let auth = ["-H".to_string(), format!("Authorization: Bearer {token}")];
        http_request(&a, &auth, method, path, body)
    };
    let issue = |user: &str, body: &str| -> (String, String) {
        let (code, text) = f.http(user, "POST", "/api/v1/tokens", body);
        assert_eq!(code, 201, "{user} issuing a token: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        (
            v["token"].as_str().unwrap().to_string(),
            v["id"].as_str().unwrap().to_string(),
        )
    };
    let (olga, olga_id) = issue("olga", r#"{"comment":"nightly job"}"#);
    let (ann, _) = issue("ann", "");
    assert!(olga.starts_with("hly_") && olga.len() > 60, "{olga}");
    // The token is the user, with the user's role.
    let shelf = "/api/v1/objects/ne=1/shelf=1";
    assert_eq!(
        bearer(&olga, "PATCH", shelf, r#"{"label":"by-token"}"#).0,
        200
    );
    assert_eq!(
        bearer(&ann, "PATCH", shelf, r#"{"label":"by-viewer-token"}"#).0,
        403
    );
    assert_eq!(bearer(&ann, "GET", shelf, "").0, 200);
    let (_, listed) = bearer(&olga, "GET", "/api/v1/tokens", "");
    assert!(
        listed.contains(&olga_id) && listed.contains("nightly job"),
        "{listed}"
    );
    assert!(!listed.contains(&olga), "a listing shows the token itself");
    let (_, theirs) = f.http("otto", "GET", "/api/v1/tokens", "");
    assert!(
        !theirs.contains(&olga_id),
        "otto sees olga's token: {theirs}"
    );
    let (_, all) = f.http("adam", "GET", "/api/v1/tokens", "");
    assert!(all.contains(&olga_id), "an admin lists every token: {all}");
    // Only its owner (or an admin) revokes it.
    let path = format!("/api/v1/tokens/{olga_id}");
    assert_eq!(f.http("otto", "DELETE", &path, "").0, 404);
    assert_eq!(bearer(&olga, "GET", shelf, "").0, 200);
    assert_eq!(f.http("olga", "DELETE", &path, "").0, 204);
    assert_eq!(bearer(&olga, "GET", shelf, "").0, 401);
    // An expired token is refused.
    let (short, _) = issue("otto", r#"{"expires-in":"1"}"#);
    assert_eq!(bearer(&short, "GET", shelf, "").0, 200);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(bearer(&short, "GET", shelf, "").0, 401);
    // What each may do, as the console is told.
    let rights = |user: &str| -> serde_json::Value {
        let (code, text) = f.http(user, "GET", "/api/v1/access", "");
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    let (ann_r, olga_r, adam_r) = (rights("ann"), rights("olga"), rights("adam"));
    assert_eq!(ann_r["role"], "viewer");
    assert_eq!(ann_r["classes"]["Fan"]["operations"], serde_json::json!([]));
    assert_eq!(ann_r["classes"]["Fan"]["writable"], serde_json::json!([]));
    let olga_ops = olga_r["classes"]["Fan"]["operations"].as_array().unwrap();
    assert!(olga_ops.iter().any(|o| o == "Lock"), "{olga_r}");
    let olga_writes = olga_r["classes"]["Fan"]["writable"].as_array().unwrap();
    assert!(olga_writes.iter().any(|a| a == "label"), "{olga_r}");
    assert_eq!(olga_r["classes"]["AccessRule"]["create"], false);
    assert_eq!(adam_r["classes"]["AccessRule"]["create"], true);

    // Secrets stay secret.
    let (_, metrics) = f.http("adam", "GET", "/metrics", "");
    for t in [&olga, &ann, &short] {
        assert!(a.logged(t).is_empty(), "a token in the log");
        assert!(!metrics.contains(t.as_str()), "a token in /metrics");
    }
}

/// The demo's configuration with secrets of the site's own (the agent
/// refuses the demo's off loopback).
fn site_config(dir: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(config(dir)).unwrap();
    for (demo, own) in [
        ("halyard-demo-admin", "site-admin-secret-1"),
        ("halyard-demo-auth", "site-auth-secret-1"),
        ("halyard-demo-priv", "site-priv-secret-1"),
        ("halyard-demo", "site-operator-secret-1"),
    ] {
        text = text.replace(demo, own);
    }
    let path = dir.join("site.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// On a network address the HTTP face speaks HTTPS by default, with a
/// self-signed certificate made on the first start and kept (its key
/// readable by the agent's user only), whose SHA-256 fingerprint the log
/// gives as openssl computes it; plain HTTP gets no answer there.
#[test]
fn http_off_loopback_is_https_with_a_logged_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut a = Agent::start_http_on(&data, Some(site_config(dir.path())), &[], "0.0.0.0");
    let port = a.http.rsplit(':').next().unwrap().to_string();
    let cert = data.join("http-tls/cert.pem");
    let logged = |a: &Agent| -> String {
        let line = a
            .logged("HTTP face speaks HTTPS")
            .pop()
            .expect("the HTTPS line in the log");
        line.split("sha256_fingerprint=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no fingerprint in {line}"))
            .to_string()
    };
    let fp = logged(&a);
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl");
    let openssl = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        openssl.trim().ends_with(&format!("={fp}")),
        "{openssl} vs {fp}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("http-tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    let curl = |url: &str| -> u16 {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "10",
                "--cacert",
            ])
            .arg(&cert)
            .args(["-u", &format!("olga:{}", password("olga")), url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    assert_eq!(curl(&format!("https://127.0.0.1:{port}/api/v1/tree")), 200);
    assert_ne!(curl(&format!("http://127.0.0.1:{port}/api/v1/tree")), 200);
    // Kept across a restart.
    a.signal("-TERM");
    a.spawn();
    assert_eq!(logged(&a), fp);
    assert_eq!(curl(&format!("https://localhost:{port}/api/v1/tree")), 200);

    // `halyard user` over HTTPS, the certificate pinned from the data dir.
    let url = format!("https://127.0.0.1:{port}");
    let data_arg = data.display().to_string();
    let user_cli = |args: &[&str], stdin: &str, pin: Option<&str>| -> (bool, String) {
        let mut all = vec!["--url", url.as_str(), "--as", "adam"];
        if let Some(p) = pin {
            all.extend(["--fingerprint", p]);
        }
        all.extend_from_slice(args);
        halyard_user(&["--data-dir", &data_arg], &password("adam"), &all, stdin)
    };
    let (ok, out) = user_cli(
        &["add", "nina", "--role", "operator", "--password-stdin"],
        "nina-secret-1\n",
        None,
    );
    assert!(ok, "{out}");
    let nina = |path: &str| -> u16 {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "10",
                "--cacert",
            ])
            .arg(&cert)
            .args(["-u", "nina:nina-secret-1", &format!("{url}{path}")])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    assert_eq!(nina("/api/v1/tree"), 200);
    // Another certificate is refused before anything is sent.
    let wrong = "AB:".repeat(31) + "AB";
    let (ok, out) = user_cli(&["del", "nina"], "", Some(&wrong));
    assert!(!ok && out.contains("not the pinned one"), "{out}");
    assert_eq!(nina("/api/v1/tree"), 200);
    // A key added, rotated and listed by its fingerprint.
    let keys: Vec<(PathBuf, String)> = ["one", "two"]
        .iter()
        .map(|n| {
            let k = dir.path().join(format!("nina_{n}"));
            halyard_tests::keygen(&k);
            let public = k.with_extension("pub");
            let fp = halyard_tests::key_fingerprint(&public);
            (public, fp)
        })
        .collect();
    for (file, fp) in &keys {
        let (ok, out) = user_cli(&["key", "nina", "laptop", file.to_str().unwrap()], "", None);
        assert!(ok && out.contains(fp.as_str()), "{out}");
    }
    let (ok, listed) = user_cli(&["list"], "", None);
    assert!(ok && listed.contains("role=operator"), "{listed}");
    assert!(
        listed.contains(&keys[1].1) && !listed.contains(&keys[0].1),
        "{listed}"
    );
    // A private key file is named as not a public key, and nothing is sent.
    let (ok, out) = user_cli(
        &[
            "key",
            "nina",
            "desk",
            keys[0].0.with_extension("").to_str().unwrap(),
        ],
        "",
        None,
    );
    assert!(!ok && out.contains("nina_one"), "{out}");
    // A new password, then removal.
    let (ok, out) = user_cli(&["passwd", "nina"], "nina-secret-2\n", None);
    assert!(ok, "{out}");
    assert_eq!(nina("/api/v1/tree"), 401);
    let (ok, out) = user_cli(&["del", "nina"], "", None);
    assert!(ok, "{out}");
    let (_, listed) = user_cli(&["list"], "", None);
    assert!(!listed.contains("nina"), "{listed}");
    assert!(a.logged("nina-secret").is_empty(), "a password in the log");
}

/// Notifications obey the rules too (RFC 8341 §3.4.6): a rule denying the
/// night shift ietf-alarms' notifications keeps alarm-notification from
/// olga, who still gets halyard-cluster's alarm-raised; otto gets both;
/// the kept-back notifications are counted.
#[test]
fn notifications_a_rule_denies_are_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    let script = dir.path().join("nc.py");
    std::fs::write(&script, NC_SCRIPT).unwrap();
    let f = Faces {
        a: &a,
        script: script.clone(),
    };
    for (path, body) in [
        (
            "ne=1/accessgroup=night",
            r#"{"class":"AccessGroup","users":"olga"}"#,
        ),
        (
            "ne=1/rulelist=night-shift",
            r#"{"class":"AccessRuleList","groups":"night"}"#,
        ),
        (
            "ne=1/rulelist=night-shift/rule=no-alarm-notifications",
            r#"{"class":"AccessRule","module":"ietf-alarms","notification":"*","operations":"read","action":"deny"}"#,
        ),
    ] {
        let (code, text) = f.http("adam", "PUT", &format!("/api/v1/objects/{path}"), body);
        assert!((200..300).contains(&code), "PUT {path}: {code} {text}");
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    let listen = |user: &str| {
        let mut child = Command::new("python3")
            .arg(&script)
            .args([a.netconf.as_str(), user, &password(user), "listen", "12"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with ncclient");
        // Wait until it is subscribed.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line.trim(), "subscribed", "{user}");
        (child, out)
    };
    let (mut olga, mut olga_out) = listen("olga");
    let (mut otto, mut otto_out) = listen("otto");
    let (code, body) = f.http(
        "otto",
        "POST",
        "/api/v1/objects/ne=1/shelf=1/fan=1/operations/inject-fault",
        r#"{"fault":"fan-stall"}"#,
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let seen = |child: &mut std::process::Child,
                out: &mut std::io::BufReader<std::process::ChildStdout>| {
        let mut rest = String::new();
        std::io::Read::read_to_string(out, &mut rest).unwrap();
        assert!(child.wait().unwrap().success(), "{rest}");
        rest
    };
    let olga_seen = seen(&mut olga, &mut olga_out);
    let otto_seen = seen(&mut otto, &mut otto_out);
    assert!(
        otto_seen.contains("alarm-notification") && otto_seen.contains("alarm-raised"),
        "otto: {otto_seen}"
    );
    assert!(olga_seen.contains("alarm-raised"), "olga: {olga_seen}");
    assert!(
        !olga_seen.contains("alarm-notification"),
        "olga got what the rule denies: {olga_seen}"
    );
    let (_, metrics) = f.http("adam", "GET", "/metrics", "");
    assert!(
        metrics.contains("halyard_netconf_events_total{counter=\"denied_notifications\"}")
            && !metrics
                .contains("halyard_netconf_events_total{counter=\"denied_notifications\"} 0"),
        "the kept-back notifications are not counted"
    );
}

/// ncclient with an SSH key and nothing else: `ok` after a `<get>` of the
/// element's name, or `refused` when the server does not take the key.
pub(crate) const KEY_SCRIPT: &str = r#"
import sys
from ncclient import manager
from ncclient.transport.errors import AuthenticationError
addr, user, key = sys.argv[1:4]
host, port = addr.rsplit(":", 1)
try:
    m = manager.connect(host=host, port=int(port), username=user, key_filename=key,
                        hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
except AuthenticationError:
    print("refused")
    sys.exit(0)
x = m.get(filter=("subtree", '<element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><access-user/></element>')).data_xml
print("argon2" if "argon2" in x else "ok")
m.close_session()
"#;

#[test]
fn users_and_keys_added_at_run_time_log_in_on_http_and_netconf() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    let script = dir.path().join("nc.py");
    std::fs::write(&script, NC_SCRIPT).unwrap();
    let f = Faces { a: &a, script };
    let basic = |user: &str, pass: &str, method: &str, path: &str, body: &str| {
        http_with(&a, user, pass, method, path, body).0
    };
    let nina = "/api/v1/objects/ne=1/user=nina";
    let user_body = |pass: &str| {
        format!(
            r#"{{"class":"AccessUser","role":"operator","password":"{pass}","comment":"night shift"}}"#
        )
    };
    // Only an admin adds users.
    let (code, body) = f.http("otto", "PUT", nina, &user_body("nina-secret-1"));
    assert_eq!(code, 403, "an operator added a user: {body}");
    let (code, body) = f.http("adam", "PUT", nina, &user_body("nina-secret-1"));
    assert_eq!(code, 201, "{body}");
    // Nina logs in on HTTP and NETCONF with her role at once.
    let shelf = "/api/v1/objects/ne=1/shelf=1";
    assert_eq!(
        basic(
            "nina",
            "nina-secret-1",
            "PATCH",
            shelf,
            r#"{"label":"by-nina"}"#
        ),
        200
    );
    assert_eq!(basic("nina", "nina-secret-x", "GET", shelf, ""), 401);
    assert!(f.netconf_label("nina", "shelf", "ne=1/shelf=1", "by-nina-nc"));
    // Her password is never read back, as text or as its hash, on any face.
    let (code, read) = f.http("adam", "GET", nina, "");
    assert_eq!(code, 200, "{read}");
    assert!(read.contains("night shift"), "{read}");
    assert!(
        !read.contains("nina-secret") && !read.contains("argon2"),
        "{read}"
    );
    let (ok, walk) = a.snmp("snmpwalk", &["-v2c", "-c", "public"], &[HC]);
    assert!(
        ok && walk.contains("night shift"),
        "the user's row is served: {ok}"
    );
    assert!(
        !walk.contains("argon2") && !walk.contains("nina-secret"),
        "a password over SNMP"
    );

    // An SSH key: written as its public key line, kept as its fingerprint.
    let key = dir.path().join("nina_ed25519");
    halyard_tests::keygen(&key);
    let line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let fp = halyard_tests::key_fingerprint(&key.with_extension("pub"));
    let keypath = format!("{nina}/sshkey=laptop");
    let (code, body) = f.http(
        "adam",
        "PUT",
        &keypath,
        &format!(
            r#"{{"class":"AccessKey","key":"{}","comment":"laptop"}}"#,
            line.trim()
        ),
    );
    assert_eq!(code, 201, "{body}");
    let (_, read) = f.http("adam", "GET", &keypath, "");
    assert!(read.contains(&fp), "the key kept as {fp}: {read}");
    let keyscript = dir.path().join("key.py");
    std::fs::write(&keyscript, KEY_SCRIPT).unwrap();
    let by_key = |user: &str| {
        python3(
            &keyscript,
            &[a.netconf.as_str(), user, key.to_str().unwrap()],
        )
        .trim()
        .to_string()
    };
    assert_eq!(by_key("nina"), "ok");
    // Another user may not log in with nina's key.
    assert_eq!(by_key("ann"), "refused");
    // Deleting the key revokes it.
    assert_eq!(f.http("adam", "DELETE", &keypath, "").0, 204);
    assert_eq!(by_key("nina"), "refused");

    // A new password replaces the old one at once.
    let (code, body) = f.http("adam", "PATCH", nina, r#"{"password":"nina-secret-2"}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(basic("nina", "nina-secret-1", "GET", shelf, ""), 401);
    assert_eq!(basic("nina", "nina-secret-2", "GET", shelf, ""), 200);
    // A user of the configuration comes first: a model user of that name
    // does not change its password or role.
    let (code, body) = f.http(
        "adam",
        "PUT",
        "/api/v1/objects/ne=1/user=ann",
        &user_body("ann-other"),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(basic("ann", "ann-other", "GET", shelf, ""), 401);
    assert_eq!(
        basic("ann", &password("ann"), "PATCH", shelf, r#"{"label":"x"}"#),
        403
    );
    // A removed user is refused everywhere.
    assert_eq!(f.http("adam", "DELETE", nina, "").0, 204);
    assert_eq!(basic("nina", "nina-secret-2", "GET", shelf, ""), 401);

    // No password reaches the log, as text or hash.
    for secret in ["nina-secret-1", "nina-secret-2", "ann-other", "$argon2"] {
        assert!(a.logged(secret).is_empty(), "{secret} in the log");
    }
}

/// Runs `halyard <before> user <args>` with `stdin`, as the admin whose
/// password is given: whether it succeeded, and what it printed.
pub(crate) fn halyard_user(
    before: &[&str],
    admin_password: &str,
    args: &[&str],
    stdin: &str,
) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(halyard_tests::halyard(false))
        .args(before)
        .arg("user")
        .args(args)
        .env("HALYARD_PASSWORD", admin_password)
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("halyard user");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// One request as `user` (Basic) with a JSON body: the status and the
/// (JSON) answer.
fn http_with(
    a: &Agent,
    user: &str,
    pass: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let auth = ["-u".to_string(), format!("{user}:{pass}")];
    http_request(a, &auth, method, path, body)
}

/// One request with these curl authentication arguments and a JSON body:
/// the status and the (JSON) answer.
fn http_request(a: &Agent, auth: &[String], method: &str, path: &str, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", method])
        .args(auth)
        .args(["-H", "Accept: application/json"])
        .args(["-H", "Content-Type: application/json", "-d", body])
        .arg(format!("http://{}{path}", a.http))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `halyard user` against the agent's HTTP API as adam.
fn user_cli(a: &Agent, args: &[&str], stdin: &str) -> (bool, String) {
    let url = format!("http://{}", a.http);
    let mut all = vec!["--url", url.as_str(), "--as", "adam"];
    all.extend_from_slice(args);
    halyard_user(&[], &password("adam"), &all, stdin)
}

/// SNMPv3 users of the element: `halyard user snmp` localizes the
/// passphrases for the node's engine and stores only the localized keys;
/// net-snmp (its protocols) and pysnmp (all of them, Reeder's AES key
/// extension too) get answers with each pair; the role decides writes; a
/// deleted user is unknown at once; the passphrases are nowhere in the
/// data directory, the log or any answer.
#[test]
fn snmpv3_users_of_the_element_keep_only_localized_keys() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    // (user, auth, priv): every protocol of RFC 3414, 7860 and 3826, and
    // both AES-192/256 key extensions.
    let pairs: &[(&str, &str, Option<&str>)] = &[
        ("p-md5-des", "MD5", Some("DES")),
        ("p-sha-aes", "SHA", Some("AES")),
        ("p-224-aes", "SHA-224", Some("AES")),
        ("p-256-none", "SHA-256", None),
        ("p-384-192", "SHA-384", Some("AES-192")),
        ("p-512-256", "SHA-512", Some("AES-256")),
        ("p-256-192c", "SHA-256", Some("AES-192-C")),
        ("p-512-256c", "SHA-512", Some("AES-256-C")),
    ];
    let auth_pass = |u: &str| format!("{u}-auth-secret");
    let priv_pass = |u: &str| format!("{u}-priv-secret");
    for (u, auth, privacy) in pairs {
        let role = match *u {
            "p-sha-aes" => "viewer",
            "p-384-192" => "admin",
            _ => "operator",
        };
        let (ok, out) = user_cli(&a, &["add", u, "--role", role], "");
        assert!(ok, "{out}");
        let mut args = vec!["snmp", *u, "--auth", *auth];
        if let Some(p) = privacy {
            args.extend(["--priv", *p]);
        }
        let (ok, out) = user_cli(&a, &args, &format!("{}\n{}\n", auth_pass(u), priv_pass(u)));
        assert!(ok && out.contains("localized for"), "{out}");
    }
    let v3 = |u: &str, auth: &str, privacy: Option<&str>| -> Vec<String> {
        let mut v = vec![
            "-v3".to_string(),
            "-u".into(),
            u.into(),
            "-a".into(),
            auth.into(),
        ];
        v.extend(["-A".into(), auth_pass(u)]);
        match privacy {
            Some(p) => v.extend([
                "-l".into(),
                "authPriv".into(),
                "-x".into(),
                p.into(),
                "-X".into(),
                priv_pass(u),
            ]),
            None => v.extend(["-l".into(), "authNoPriv".into()]),
        }
        v.extend(["-t".into(), "5".into(), "-r".into(), "1".into()]);
        v
    };
    let sys_name = "1.3.6.1.2.1.1.5.0";
    // Users appear within the face's 250 ms re-read.
    std::thread::sleep(std::time::Duration::from_millis(600));
    // SNMP-VIEW-BASED-ACM-MIB shows each in its role's group, and the
    // groups' access rows: the operator group writes at authPriv, the
    // viewer group reads only.
    let string_index = |s: &str| {
        std::iter::once(s.len().to_string())
            .chain(s.bytes().map(|b| b.to_string()))
            .collect::<Vec<_>>()
            .join(".")
    };
    let groups = a.walk("1.3.6.1.6.3.16.1.2.1.3");
    let group_of = |u: &str| {
        let oid = format!(".1.3.6.1.6.3.16.1.2.1.3.3.{}", string_index(u));
        groups
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        group_of("p-md5-des").as_deref(),
        Some("operator"),
        "{groups:?}"
    );
    assert_eq!(group_of("p-sha-aes").as_deref(), Some("viewer"));
    assert_eq!(group_of("p-384-192").as_deref(), Some("admin"));
    let access = a.walk("1.3.6.1.6.3.16.1.4.1");
    let access_of = |group: &str, col: u32, level: u32| {
        let oid = format!(
            ".1.3.6.1.6.3.16.1.4.1.{col}.{}.0.3.{level}",
            string_index(group)
        );
        access
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        access_of("operator", 6, 3).as_deref(),
        Some("all"),
        "{access:?}"
    );
    assert_eq!(access_of("viewer", 5, 3).as_deref(), Some("all"));
    assert_eq!(access_of("viewer", 6, 3).as_deref(), Some(""));
    for (u, auth, privacy) in pairs {
        // net-snmp knows Blumenthal's AES-192/256 only.
        if privacy.is_some_and(|p| p.ends_with("-C")) {
            continue;
        }
        let opts = v3(u, auth, *privacy);
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        let (ok, out) = a.snmp("snmpget", &opts, &[sys_name]);
        assert!(ok && out.contains("halyard"), "{u} with net-snmp: {out}");
    }
    let users: Vec<serde_json::Value> = pairs
        .iter()
        .map(|(u, auth, privacy)| {
            let mut j = serde_json::json!({"name": u, "auth": auth, "auth_pass": auth_pass(u)});
            if let Some(p) = privacy {
                j["priv"] = serde_json::json!(p);
                j["priv_pass"] = serde_json::json!(priv_pass(u));
            }
            j
        })
        .collect();
    let (host, port) = a.snmp.rsplit_once(':').unwrap();
    let out = python3(
        &workspace().join("adapters/snmp/tests/peers/pysnmp_get.py"),
        &[host, port, &serde_json::to_string(&users).unwrap()],
    );
    for (u, _, _) in pairs {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("\"user\": \"{u}\"")))
            .unwrap_or_else(|| panic!("no pysnmp answer for {u}: {out}"));
        assert!(
            line.contains("\"error\": null") && line.contains("halyard"),
            "{line}"
        );
    }
    // The role decides writes: an operator sets sysLocation, a viewer may not.
    let set = |u: &str, auth: &str, privacy: Option<&str>| {
        let opts = v3(u, auth, privacy);
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        a.snmp(
            "snmpset",
            &opts,
            &["1.3.6.1.2.1.1.6.0", "s", &format!("by {u}")],
        )
    };
    let (ok, out) = set("p-512-256", "SHA-512", Some("AES-256"));
    assert!(ok, "{out}");
    let (ok, out) = set("p-sha-aes", "SHA", Some("AES"));
    assert!(!ok && out.contains("noAccess"), "{out}");
    // The element's access settings are an admin's: the admin user sets
    // exec-default over SNMP, an operator gets noAccess.
    let ne = halyard_cluster_model::SCHEMA
        .class("NetworkElement")
        .unwrap();
    let (_, exec) = ne.attribute("ExecDefault").unwrap();
    let exec_oid = format!(
        "{HC}.1.{}.1.{}.{}",
        ne.oid,
        exec.column,
        index_of(&a, "ne=1")
    );
    let set_exec = |u: &str, auth: &str, privacy: Option<&str>| {
        let opts = v3(u, auth, privacy);
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        a.snmp("snmpset", &opts, &[&exec_oid, "i", "1"])
    };
    let (ok, out) = set_exec("p-224-aes", "SHA-224", Some("AES"));
    assert!(
        !ok && out.contains("noAccess"),
        "an operator set exec-default: {out}"
    );
    let (ok, out) = set_exec("p-384-192", "SHA-384", Some("AES-192"));
    assert!(ok, "the admin user: {out}");
    // A wrong passphrase is a wrong digest.
    let (ok, out) = a.snmp(
        "snmpget",
        &[
            "-v3",
            "-l",
            "authNoPriv",
            "-u",
            "p-256-none",
            "-a",
            "SHA-256",
            "-A",
            "not-the-passphrase",
            "-t",
            "2",
            "-r",
            "0",
        ],
        &[sys_name],
    );
    assert!(!ok && out.contains("Authentication failure"), "{out}");
    // Keys are never read back, and passphrases never left the command.
    let (code, body) = Faces {
        a: &a,
        script: PathBuf::new(),
    }
    .http("adam", "GET", "/api/v1/classes/AccessSnmpKey", "");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("sha512")
            && !body.contains("auth-key\":\"")
            && !body.contains("priv-key\":\""),
        "{body}"
    );
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    for (u, _, _) in pairs {
        for secret in [auth_pass(u), priv_pass(u)] {
            for f in &files {
                let bytes = std::fs::read(f).unwrap_or_default();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in {}",
                    f.display()
                );
            }
        }
    }
    // A deleted user is unknown at once.
    let (ok, out) = user_cli(&a, &["del", "p-512-256"], "");
    assert!(ok, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(600));
    let opts = v3("p-512-256", "SHA-512", Some("AES-256"));
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let (ok, out) = a.snmp("snmpget", &opts, &[sys_name]);
    assert!(!ok && out.contains("Unknown user name"), "{out}");
    // ...and gone from SNMP-VIEW-BASED-ACM-MIB.
    let gone = format!(".1.3.6.1.6.3.16.1.2.1.3.3.{}", string_index("p-512-256"));
    let groups = a.walk("1.3.6.1.6.3.16.1.2.1.3");
    assert!(!groups.iter().any(|(o, _)| *o == gone), "{groups:?}");
}

/// The element's notification targets (#17), added and removed at run
/// time by an admin: a v2c target with a community, a v3 trap target as an
/// element user (its keys for this node's engine, which is authoritative
/// for traps) and a v3 inform target as the same user (its keys for the
/// receiver's engine, stored with `halyard user snmp --engine`). Three
/// snmptrapd decode the alarm; SNMP-TARGET-MIB shows the rows; the
/// community is never read back; a deleted target gets nothing more.
#[test]
fn notification_targets_added_at_run_time_get_traps_and_informs_until_deleted() {
    use crate::agent::TrapD;
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    let (v2_port, v3_port, inform_port) = (
        halyard_tests::free_port(),
        halyard_tests::free_port(),
        halyard_tests::free_port(),
    );
    // snmptrapd's engine ID from its `engineID` text (net-snmp: enterprise
    // 8072, format 4 = text).
    let trapd_engine: String = "80001f8804"
        .chars()
        .chain(
            "halyard-trapd"
                .bytes()
                .flat_map(|b| format!("{b:02x}").chars().collect::<Vec<_>>()),
        )
        .collect();
    let (ok, out) = user_cli(&a, &["add", "nms", "--role", "viewer"], "");
    assert!(ok, "{out}");
    let (ok, out) = user_cli(
        &a,
        &[
            "snmp",
            "nms",
            "--auth",
            "SHA-256",
            "--priv",
            "AES",
            "--engine",
            &trapd_engine,
        ],
        "nms-auth-secret\nnms-priv-secret\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains(&trapd_engine), "{out}");
    // This node's engine, as the CLI localized for it.
    let engine = out
        .lines()
        .filter_map(|l| l.split("(engine ").nth(1))
        .map(|e| e.trim_end_matches(')').to_string())
        .find(|e| *e != trapd_engine)
        .unwrap_or_else(|| panic!("no node engine in {out}"));
    let user_line = "createUser {e}nms SHA-256 nms-auth-secret AES nms-priv-secret\nauthUser log,execute nms priv\n";
    let v2 = TrapD::start(v2_port);
    let v3 = TrapD::start_with(
        v3_port,
        &user_line.replace("{e}", &format!("-e 0x{engine} ")),
    );
    let informs = TrapD::start_with(
        inform_port,
        &format!("engineID halyard-trapd\n{}", user_line.replace("{e}", "")),
    );
    // A receiver whose engine the user has no keys for.
    let stranger_port = halyard_tests::free_port();
    let _stranger = TrapD::start_with(
        stranger_port,
        &format!("engineID other-trapd\n{}", user_line.replace("{e}", "")),
    );

    let put = |user: &str, name: &str, body: &str| {
        let path = format!("/api/v1/objects/ne=1/notifytarget={name}");
        http_with(&a, user, &password(user), "PUT", &path, body)
    };
    let v2_body = format!(
        r#"{{"class":"NotificationTarget","address":"127.0.0.1:{v2_port}","community":"public","comment":"v2c receiver"}}"#
    );
    // Only an admin adds a target.
    let (code, body) = put("olga", "v2", &v2_body);
    assert_eq!(code, 403, "an operator added a target: {body}");
    // A bad address is refused, saying what is expected.
    let (code, body) = put(
        "adam",
        "bad",
        r#"{"class":"NotificationTarget","address":"nms.example:162","community":"public"}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("not a UDP address") && body.contains("192.0.2.7:162"),
        "{body}"
    );
    for (name, body) in [
        ("v2", v2_body.clone()),
        (
            "v3",
            format!(
                r#"{{"class":"NotificationTarget","address":"127.0.0.1:{v3_port}","user":"nms"}}"#
            ),
        ),
        (
            "inform",
            format!(
                r#"{{"class":"NotificationTarget","address":"127.0.0.1:{inform_port}","user":"nms","kind":"inform","timeout":2000,"retries":3}}"#
            ),
        ),
        (
            "stranger",
            format!(
                r#"{{"class":"NotificationTarget","address":"127.0.0.1:{stranger_port}","user":"nms","kind":"inform","timeout":2000,"retries":3}}"#
            ),
        ),
    ] {
        let (code, out) = put("adam", name, &body);
        assert!((200..300).contains(&code), "{name}: {code} {out}");
        // The community is never read back.
        assert!(!out.contains("\"public\""), "{out}");
    }
    let (code, body) = a.curl("GET", "/api/v1/objects/ne=1/notifytarget=v2", None);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("public"), "the community read back: {body}");
    assert!(body.contains(&format!("127.0.0.1:{v2_port}")), "{body}");

    // SNMP-TARGET-MIB shows the three rows (nonVolatile, active), the v3
    // ones with their user and level authPriv; the v2c one no community.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let implied = |name: &str| {
        name.bytes()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(".")
    };
    let addr = a.walk("1.3.6.1.6.3.12.1.2.1");
    let params = a.walk("1.3.6.1.6.3.12.1.3.1");
    let cell = |rows: &[(String, String)], entry: &str, col: u32, name: &str| {
        let oid = format!(".{entry}.{col}.{}", implied(name));
        rows.iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {oid} in {rows:?}"))
    };
    for name in ["v2", "v3", "inform"] {
        assert_eq!(
            cell(&addr, "1.3.6.1.6.3.12.1.2.1", 8, name),
            "3",
            "{name}: storage"
        );
        assert_eq!(
            cell(&addr, "1.3.6.1.6.3.12.1.2.1", 9, name),
            "1",
            "{name}: status"
        );
    }
    assert_eq!(cell(&addr, "1.3.6.1.6.3.12.1.2.1", 6, "inform"), "inform");
    assert_eq!(cell(&addr, "1.3.6.1.6.3.12.1.2.1", 4, "inform"), "200");
    assert_eq!(cell(&params, "1.3.6.1.6.3.12.1.3.1", 4, "v3"), "nms");
    assert_eq!(cell(&params, "1.3.6.1.6.3.12.1.3.1", 5, "v3"), "3");
    assert_eq!(cell(&params, "1.3.6.1.6.3.12.1.3.1", 4, "v2"), "");
    assert!(!format!("{addr:?}{params:?}").contains("public"));

    // An alarm reaches all three receivers.
    let fan = "ne=1/shelf=1/fan=1";
    let fault = |f: &str| {
        let (code, body) = a.curl(
            "POST",
            &format!("/api/v1/objects/{fan}/operations/inject-fault"),
            Some(&format!(r#"{{"fault":"{f}"}}"#)),
        );
        assert!((200..300).contains(&code), "{code} {body}");
    };
    fault("fan-stall");
    for (t, name) in [(&v2, "v2"), (&v3, "v3"), (&informs, "inform")] {
        let text = t.wait_for("HALYARD-CLUSTER-MIB::hcAlarmRaised");
        assert!(
            text.contains(&format!("hcAlarmRaisedResource.0 = STRING: {fan}")),
            "{name}: {text}"
        );
    }
    let acked = || -> u64 {
        let (_, metrics) = a.curl("GET", "/metrics", None);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("halyard_snmp_messages_total{counter=\"informs_acked\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    crate::agent::wait_until("the inform acknowledged", || acked() >= 1);

    // The v2c target deleted: the clearing reaches the other two only.
    let v2_path = "/api/v1/objects/ne=1/notifytarget=v2";
    let (code, _) = http_with(&a, "adam", &password("adam"), "DELETE", v2_path, "");
    assert_eq!(code, 204);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    fault("repair");
    v3.wait_for("HALYARD-CLUSTER-MIB::hcAlarmCleared");
    informs.wait_for("HALYARD-CLUSTER-MIB::hcAlarmCleared");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !v2.text().contains("hcAlarmCleared"),
        "a deleted target still gets notifications: {}",
        v2.text()
    );
    let addr = a.walk("1.3.6.1.6.3.12.1.2.1");
    assert!(
        !addr
            .iter()
            .any(|(o, _)| o.ends_with(&format!(".9.{}", implied("v2")))),
        "the deleted target's row stays: {addr:?}"
    );
    // The receiver without keys: said once, with its engine ID, and its
    // informs not sent (no retries, no warning per notification).
    let stranger: String = "other-trapd".bytes().map(|b| format!("{b:02x}")).collect();
    let said = a.logged("no keys of the user for the inform receiver's engine");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains(&stranger), "{said:?}");
    assert!(a.logged("snmp inform not acknowledged").is_empty());
    // Nothing secret in the log.
    assert!(a.logged("nms-auth-secret").is_empty() && a.logged("nms-priv-secret").is_empty());
}

/// One ncclient session, driven line by line on stdin: `edit <text>` writes
/// the first fan's label, `get` reads it; each prints `ok`, `denied:<tag>`
/// or `closed` (the server ended the session).
const NC_SESSION: &str = r#"
import sys
from ncclient import manager
from ncclient.operations.rpc import RPCError
addr, user, password = sys.argv[1:4]
host, port = addr.rsplit(":", 1)
m = manager.connect(host=host, port=int(port), username=user, password=password,
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
NS = "urn:halyard:params:xml:ns:yang:halyard-cluster"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
print("ready", flush=True)
for line in sys.stdin:
    what, _, text = line.strip().partition(" ")
    try:
        if what == "edit":
            m.edit_config(target="running", config=
                '<config xmlns="%s"><element xmlns="%s"><fan><name>ne=1/shelf=1/fan=1</name><label>%s</label></fan></element></config>'
                % (NC, NS, text))
        else:
            m.get(filter=("subtree", '<element xmlns="%s"><fan/></element>' % NS))
        print("ok", flush=True)
    except RPCError as e:
        print("denied:%s" % e.tag if e.tag == "access-denied" else "error:%s" % e.tag, flush=True)
    except Exception as e:
        print("closed", flush=True)
        break
"#;

/// A model user's open NETCONF session follows the user (#17): its role
/// lowered from operator to viewer, the next edit of the same session is
/// refused; the user deleted, the session ends at its next RPC.
#[test]
fn an_open_netconf_session_of_a_model_user_follows_its_role_and_removal() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start_with(dir.path(), Some(config(dir.path())));
    let admin = |method: &str, body: &str| {
        let path = "/api/v1/objects/ne=1/user=vera";
        http_with(&a, "adam", &password("adam"), method, path, body).0
    };
    let code = admin(
        "PUT",
        r#"{"class":"AccessUser","role":"operator","password":"vera-secret-1"}"#,
    );
    assert!((200..300).contains(&code), "{code}");
    let script = dir.path().join("session.py");
    std::fs::write(&script, NC_SESSION).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .args([a.netconf.as_str(), "vera", "vera-secret-1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with ncclient");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next(), "ready");
    let mut ask = |line: &str| {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        next()
    };
    assert_eq!(ask("edit vera-was-here"), "ok", "an operator edits");
    assert_eq!(admin("PATCH", r#"{"role":"viewer"}"#), 200);
    assert_eq!(
        ask("edit vera-again"),
        "denied:access-denied",
        "the same session, a viewer now"
    );
    assert_eq!(ask("get"), "ok", "a viewer reads");
    assert!(!a.logged("the user's role changed").is_empty());
    assert_eq!(admin("DELETE", ""), 204);
    assert_eq!(ask("get"), "closed", "the session of a removed user");
    let _ = child.wait();
    assert!(!a.logged("the user was removed: session closed").is_empty());
}
