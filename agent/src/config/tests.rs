//! The config module's tests: the words of a fixed set, and one test per
//! section checker.

use super::*;

/// The line of `text` (1-based) that first contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
        + 1
}

/// `valid` parses; `invalid` is refused with an error in t.toml on the
/// line containing `at` whose message contains `message`.
fn refused(valid: &str, invalid: &str, at: &str, message: &str) {
    if let Err(e) = parse("t.toml", valid) {
        panic!("the valid text is refused:\n{e}\n{valid}");
    }
    let errs = parse("t.toml", invalid)
        .expect_err("the invalid text is accepted")
        .0;
    let line = line_of(invalid, at);
    assert!(
        errs.iter().any(|e| e.file == "t.toml"
            && e.line == line
            && e.col > 0
            && e.message.contains(message)),
        "no error at t.toml:{line} containing {message:?}: {errs:#?}"
    );
}

/// `[element]` followed by `rest`.
fn with_element(rest: &str) -> String {
    format!("[element]\nname = \"1\"\n{rest}")
}

/// Every field that takes a word of a fixed set, each on its own line.
const WORDS: &str = r#"[agent]
conflict_policy = "queue"
[[snmp.users]]
name = "u"
auth = "SHA-256"
auth_pass = "12345678"
priv = "AES-128"
priv_pass = "12345678"
[[http.users]]
name = "h"
password = "long-enough"
role = "viewer"
[[netconf.users]]
name = "n"
password = "long-enough"
role = "admin"
[element]
name = "1"
[[shelf]]
name = "s"
[[shelf.fru]]
kind = "linecard"
name = "1"
slot = 1
type = "lc"
[[node]]
name = "a"
[[service_group]]
name = "g"
model = "n+m"
standby = "warm"
first_recovery = "hot-restart"
service_instances = ["1"]
[[component]]
name = "c"
node = "a"
group = "g"
kind = "ha-aware"
command = ["x"]
checkpoint = "asynchronous"
admin = "locked"
[[fru_type]]
name = "lc"
class = "linecard"
instantiate = "manual"
[[fru_type.components]]
name = "m"
kind = "process"
command = ["y"]
checkpoint = "none"
admin = "unlocked"
[[aggregate]]
name = "a"
statistic = "speed"
function = "maximum"
scope = "ne=1"
[[threshold]]
name = "t"
statistic = "speed"
resource = "ne=1/shelf=s/linecard=1"
rising = 2.0
falling = 1.0
direction = "falling"
severity = "minor"
"#;

#[test]
fn words_become_their_enums() {
    let c = parse("w.toml", WORDS).unwrap();
    assert_eq!(
        c.agent.conflict_policy,
        crate::config::ConflictPolicy::Queue
    );
    assert_eq!(c.snmp.users[0].auth, SnmpAuth::Sha256);
    assert_eq!(c.snmp.users[0].privacy, Some(SnmpPriv::Aes));
    assert_eq!(c.http.users[0].role, Role::Viewer);
    assert_eq!(c.netconf.users[0].role, Role::Admin);
    assert_eq!(c.shelves[0].frus[0].kind, FruClass::Linecard);
    let g = &c.groups[0];
    assert_eq!(
        (g.model, g.standby, g.first_recovery),
        (RedundancyModel::NPlusM, Standby::Warm, Recovery::HotRestart)
    );
    let x = &c.components[0];
    assert_eq!(*x.kind.get_ref(), ComponentKind::HaAware);
    assert_eq!(
        (x.checkpoint, x.admin),
        (Checkpoint::Asynchronous, Admin::Locked)
    );
    let t = &c.fru_types[0];
    assert_eq!(
        (t.class, t.instantiate),
        (FruClass::Linecard, Instantiate::Manual)
    );
    let m = &t.components[0];
    assert_eq!(
        (m.kind, m.checkpoint, m.admin),
        (FruComponentKind::Process, Checkpoint::None, Admin::Unlocked)
    );
    assert_eq!(c.aggregates[0].function, AggregateFunction::Maximum);
    let th = &c.thresholds[0];
    assert_eq!(
        (th.direction, th.severity),
        (Direction::Falling, Severity::Minor)
    );
}

#[test]
fn omitted_words_take_their_defaults() {
    let text = with_element(
        "[[http.users]]\nname = \"h\"\n[[node]]\nname = \"a\"\n[[service_group]]\nname = \"g\"\nmodel = \"2n\"\nservice_instances = [\"1\"]\n[[component]]\nname = \"c\"\nnode = \"a\"\ngroup = \"g\"\nkind = \"process\"\ncommand = [\"x\"]\n[[fru_type]]\nname = \"t\"\nclass = \"fan\"\ncomponents = [{ name = \"m\", kind = \"process\", command = [\"y\"] }]\n[[threshold]]\nname = \"t\"\nstatistic = \"speed\"\nresource = \"ne=1\"\nrising = 2.0\nfalling = 1.0\n",
    );
    let c = parse("d.toml", &text).unwrap();
    assert_eq!(
        c.agent.conflict_policy,
        crate::config::ConflictPolicy::Reject
    );
    assert_eq!(c.http.users[0].role, Role::Operator);
    let g = &c.groups[0];
    assert_eq!(
        (g.standby, g.first_recovery),
        (Standby::Hot, Recovery::FailOver)
    );
    let x = &c.components[0];
    assert_eq!(
        (x.checkpoint, x.admin),
        (Checkpoint::Synchronous, Admin::Unlocked)
    );
    assert_eq!(c.fru_types[0].instantiate, Instantiate::Dynamic);
    assert_eq!(c.fru_types[0].components[0].checkpoint, Checkpoint::None);
    let th = &c.thresholds[0];
    assert_eq!(
        (th.direction, th.severity),
        (Direction::Rising, Severity::Major)
    );
}

#[test]
fn an_unknown_word_names_file_line_column_and_the_expected_words() {
    // The line (by its start) whose word is replaced, and the words expected.
    let cases: &[(&str, &[&str])] = &[
        ("conflict_policy = ", &["reject", "queue"]),
        (
            "auth = ",
            &[
                "SHA", "SHA-1", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "MD5",
            ],
        ),
        (
            "priv = ",
            &[
                "DES",
                "AES",
                "AES-128",
                "AES-192",
                "AES-256",
                "AES-192-C",
                "AES-256-C",
            ],
        ),
        ("role = \"viewer", &["viewer", "operator", "admin"]),
        ("role = \"admin", &["viewer", "operator", "admin"]),
        (
            "kind = \"linecard",
            &["hsc", "fan", "psu", "board", "linecard"],
        ),
        ("model = ", &["2n", "n+m", "n-way-active", "no-redundancy"]),
        ("standby = ", &["hot", "warm"]),
        (
            "first_recovery = ",
            &["soft-reset", "hot-restart", "fail-over"],
        ),
        ("kind = \"ha-aware", &["ha-aware", "process", "proxy"]),
        (
            "checkpoint = \"asynchronous",
            &["none", "synchronous", "asynchronous"],
        ),
        ("admin = \"locked", &["locked", "unlocked"]),
        ("class = ", &["hsc", "fan", "psu", "board", "linecard"]),
        ("instantiate = ", &["dynamic", "manual"]),
        ("kind = \"process", &["ha-aware", "process"]),
        (
            "checkpoint = \"none",
            &["none", "synchronous", "asynchronous"],
        ),
        ("admin = \"unlocked", &["locked", "unlocked"]),
        ("function = ", &["sum", "average", "minimum", "maximum"]),
        ("direction = ", &["rising", "falling"]),
        ("severity = ", &["critical", "major", "minor", "warning"]),
    ];
    for (start, expected) in cases {
        let line = WORDS
            .lines()
            .position(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starts with {start:?}"));
        let text: String = WORDS
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == line {
                    format!("{}\"bogus\"\n", &l[..l.find('"').unwrap()])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let errs = parse("w.toml", &text).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        let col = text.lines().nth(line).unwrap().find('"').unwrap() + 1;
        let shown = errs.to_string();
        let at = format!("w.toml:{}:{col}: error: unknown variant `bogus`", line + 1);
        assert!(
            shown.starts_with(&at),
            "{start}: expected {at}, got {shown}"
        );
        for w in *expected {
            assert!(
                shown.contains(&format!("`{w}`")),
                "{start}: {w} not in {shown}"
            );
        }
        // Only the words of this field: a FRU type's component is no proxy.
        if !expected.contains(&"proxy") {
            assert!(!shown.contains("`proxy`"), "{shown}");
        }
    }
}

#[test]
fn the_demo_parses_with_its_fru_types() {
    let c = parse("demo.toml", DEMO).unwrap();
    assert!(
        c.fru_types
            .iter()
            .any(|t| t.instantiate == Instantiate::Manual)
    );
    assert_eq!(*c.hotswap.poll_ms.get_ref(), 500);
}

#[test]
fn hot_swap_mistakes_are_reported_with_file_line_col() {
    let text = r#"
[element]
name = "1"

[hotswap]
poll_ms = 0

[[service_group]]
name = "g"
model = "2n"
service_instances = ["1"]

[[shelf]]
name = "1"
fru = [
  { kind = "fan", name = "1", slot = 2 },
  { kind = "fan", name = "2", slot = 2, type = "lc" },
  { kind = "psu", name = "1", slot = 3, type = "nope" },
]

[[fru_type]]
name = "lc"
class = "linecard"
instantiate = "manual"
components = [
  { name = "a", kind = "process", command = [] },
  { name = "a", kind = "process", command = ["x"], group = "h", admin = "locked", checkpoint = "none" },
]
"#;
    let errs = parse("hs.toml", text).unwrap_err().0;
    let at = |line: usize, needle: &str| {
        assert!(
            errs.iter()
                .any(|e| e.line == line && e.message.contains(needle)),
            "no error at line {line} containing {needle:?}: {errs:#?}"
        );
    };
    at(6, "expected a polling period");
    at(17, "second unit in slot 2");
    at(17, "of class linecard on a unit of kind fan");
    at(18, "unknown FRU type \"nope\"");
    at(26, "found an empty command");
    at(27, "second component of the FRU type named \"a\"");
    at(27, "unknown service group \"h\"");
    assert_eq!(errs.len(), 7, "{errs:#?}");
    assert!(errs.iter().all(|e| e.file == "hs.toml" && e.col > 0));
}

// One test per section checker.

#[test]
fn check_release_refuses_a_short_watchdog() {
    let ok = with_element("[release]\nload_server = \"/srv/releases\"\nwatchdog_ms = 1000\n");
    refused(
        &ok,
        &ok.replace("= 1000", "= 999"),
        "watchdog_ms",
        "found watchdog_ms = 999, expected at least 1000",
    );
}

#[test]
fn check_element_refuses_a_name_with_a_space() {
    refused(
        &with_element(""),
        "[element]\nname = \"a b\"\n",
        "name",
        "found element name \"a b\"",
    );
}

#[test]
fn check_faces_refuses_a_listen_address_without_port_and_public_demo_credentials() {
    let ok = with_element("[http]\nlisten = [\"127.0.0.1:8080\"]\n");
    refused(
        &ok,
        &ok.replace("127.0.0.1:8080", "localhost"),
        "listen",
        "found listen address \"localhost\", expected IP:PORT",
    );
    let ok = with_element(
        "[snmp]\nlisten = [\"127.0.0.1:1161\"]\nusers = [{ name = \"u\", auth = \"SHA\", auth_pass = \"halyard-demo-auth\" }]\n",
    );
    refused(
        &ok,
        &ok.replace("127.0.0.1", "0.0.0.0"),
        "listen",
        "found the demo credentials with non-loopback address 0.0.0.0:1161",
    );
    // The demo's admin alone is demo credentials too.
    let ok = with_element(
        "[netconf]\nlisten = [\"127.0.0.1:8830\"]\nusers = [{ name = \"admin\", password = \"halyard-demo-admin\", role = \"admin\" }]\n",
    );
    refused(
        &ok,
        &ok.replace("127.0.0.1", "0.0.0.0"),
        "listen",
        "found the demo credentials with non-loopback address 0.0.0.0:8830",
    );
}

#[test]
fn check_snmp_users_refuses_a_short_passphrase_and_priv_without_priv_pass() {
    let ok = with_element(
        "[[snmp.users]]\nname = \"u\"\nauth = \"MD5\"\nauth_pass = \"12345678\"\npriv = \"AES\"\npriv_pass = \"abcdefgh\"\n",
    );
    refused(
        &ok,
        &ok.replace("\"12345678\"", "\"1234567\""),
        "auth_pass",
        "found a passphrase of fewer than 8 characters",
    );
    refused(
        &ok,
        &ok.replace("priv_pass = \"abcdefgh\"\n", ""),
        "name = \"u\"",
        "found only one of priv and priv_pass",
    );
}

#[test]
fn check_groups_refuses_a_group_without_service_instances() {
    let ok = with_element(
        "[[service_group]]\nname = \"g\"\nmodel = \"2n\"\nservice_instances = [\"1\"]\n",
    );
    refused(
        &ok,
        &ok.replace("[\"1\"]", "[]"),
        "name = \"g\"",
        "found a service group without service instances",
    );
}

#[test]
fn check_fru_types_refuses_an_unknown_group() {
    let ok = with_element(
        "[[service_group]]\nname = \"g\"\nmodel = \"2n\"\nservice_instances = [\"1\"]\n[[fru_type]]\nname = \"t\"\nclass = \"board\"\n[[fru_type.components]]\nname = \"m\"\nkind = \"ha-aware\"\ncommand = [\"y\"]\ngroup = \"g\"\n",
    );
    refused(
        &ok,
        &ok.replace("group = \"g\"", "group = \"h\""),
        "group = \"h\"",
        "found unknown service group \"h\", expected one of: g",
    );
}

#[test]
fn check_shelves_refuses_two_units_in_a_slot() {
    let ok = with_element(
        "[[shelf]]\nname = \"s\"\nfru = [\n  { kind = \"fan\", name = \"1\", slot = 1 },\n  { kind = \"fan\", name = \"2\", slot = 2 },\n]\n",
    );
    refused(
        &ok,
        &ok.replace("slot = 2", "slot = 1"),
        "name = \"2\"",
        "found a second unit in slot 1 of shelf \"s\"",
    );
}

#[test]
fn check_nodes_refuses_an_unknown_shelf_and_a_cluster_address_without_port() {
    let ok = with_element(
        "[[shelf]]\nname = \"s\"\n[[node]]\nname = \"a\"\nshelf = \"s\"\ncluster = [\"127.0.0.1:7101\"]\n",
    );
    refused(
        &ok,
        &ok.replace("shelf = \"s\"", "shelf = \"t\""),
        "shelf = \"t\"",
        "found unknown shelf \"t\", expected one of: s",
    );
    refused(
        &ok,
        &ok.replace(":7101", ""),
        "cluster",
        "found address \"127.0.0.1\", expected ip:port",
    );
}

#[test]
fn check_cluster_refuses_a_lease_not_above_the_heartbeat() {
    let ok = with_element(
        "[cluster]\nheartbeat_ms = 50\nlease_ms = 300\n[[node]]\nname = \"a\"\ncluster = [\"127.0.0.1:7101\"]\n",
    );
    refused(
        &ok,
        &ok.replace("lease_ms = 300", "lease_ms = 50"),
        "lease_ms",
        "found lease 50 ms, expected more than the heartbeat (50 ms)",
    );
}

#[test]
fn check_components_refuses_an_unknown_node_and_stats_on_a_process() {
    let ok = with_element(
        "[[node]]\nname = \"a\"\n[[service_group]]\nname = \"g\"\nmodel = \"2n\"\nservice_instances = [\"1\"]\n[[component]]\nname = \"c\"\nnode = \"a\"\ngroup = \"g\"\nkind = \"process\"\ncommand = [\"x\"]\n",
    );
    refused(
        &ok,
        &ok.replace("node = \"a\"", "node = \"b\""),
        "node = \"b\"",
        "found unknown node \"b\", expected one of: a",
    );
    refused(
        &ok,
        &format!("{ok}stats = [\"s\"]\n"),
        "kind = \"process\"",
        "found stats on a component that is not a proxy",
    );
}

#[test]
fn check_hotswap_refuses_a_zero_poll_period() {
    let ok = with_element("[hotswap]\npoll_ms = 100\n");
    refused(
        &ok,
        &ok.replace("100", "0"),
        "poll_ms",
        "found 0, expected a polling period in ms",
    );
}

#[test]
fn check_aggregates_refuses_a_scope_that_is_no_name() {
    let ok = with_element(
        "[[aggregate]]\nname = \"a\"\nstatistic = \"speed\"\nfunction = \"sum\"\nscope = \"ne=1/shelf=1\"\n",
    );
    refused(
        &ok,
        &ok.replace("ne=1/shelf=1", "shelf 1"),
        "scope",
        "found scope \"shelf 1\", expected a persistent name",
    );
}

#[test]
fn check_thresholds_refuses_falling_above_rising() {
    let ok = with_element(
        "[[threshold]]\nname = \"t\"\nstatistic = \"speed\"\nresource = \"ne=1\"\nrising = 2.0\nfalling = 1.0\n",
    );
    refused(
        &ok,
        &ok.replace("falling = 1.0", "falling = 3.0"),
        "name = \"t\"",
        "found falling 3 above rising 2, expected falling <= rising",
    );
}

/// DES was once accepted and AES-128 used instead, so net-snmp's `-x DES`
/// failed with "decryption error". Every protocol named is the one used
/// now, and a name not known is refused where it is written.
#[test]
fn privacy_protocols_are_taken_as_written_or_refused() {
    for (word, want) in [
        ("DES", SnmpPriv::Des),
        ("AES-192", SnmpPriv::Aes192),
        ("AES-256-C", SnmpPriv::Aes256Reeder),
    ] {
        let text = WORDS.replace("priv = \"AES-128\"", &format!("priv = \"{word}\""));
        let c = parse("w.toml", &text).unwrap();
        assert_eq!(c.snmp.users[0].privacy, Some(want), "{word}");
    }
    let text = WORDS.replace("priv = \"AES-128\"", "priv = \"3DES\"");
    let line = text.lines().position(|l| l.starts_with("priv = ")).unwrap() + 1;
    let e = parse("w.toml", &text).unwrap_err().to_string();
    assert!(e.contains(&format!("w.toml:{line}:")), "{e}");
    assert!(e.contains("3DES") && e.contains("`AES-256-C`"), "{e}");
}

#[test]
fn check_snmp_traps_refuses_a_bad_address_and_an_unknown_or_doubled_v3_user() {
    let ok = with_element(
        "[[snmp.users]]\nname = \"u\"\nauth = \"SHA-256\"\nauth_pass = \"12345678\"\n\
         [[snmp.traps]]\ntarget = \"127.0.0.1:162\"\nuser = \"u\"\ninform = true\n",
    );
    refused(
        &ok,
        &ok.replace("\"127.0.0.1:162\"", "\"nms.example\""),
        "target",
        "expected an address and port",
    );
    refused(
        &ok,
        &ok.replace("user = \"u\"", "user = \"nobody\""),
        "user = ",
        "found user \"nobody\", expected one of [[snmp.users]]",
    );
    refused(
        &ok,
        &ok.replace("user = \"u\"", "user = \"u\"\ncommunity = \"public\""),
        "user = ",
        "found both community and user",
    );
}

#[test]
fn snmp_read_and_write_levels_default_to_the_keys_and_are_checked() {
    let ok = with_element(
        "[[snmp.users]]\nname = \"u\"\nauth = \"MD5\"\nauth_pass = \"12345678\"\npriv = \"AES\"\npriv_pass = \"abcdefgh\"\nread_level = \"authNoPriv\"\nwrite_level = \"authPriv\"\n",
    );
    let c = parse("t.toml", &ok).unwrap();
    assert_eq!(
        c.snmp.users[0].levels(),
        (SnmpLevel::AuthNoPriv, SnmpLevel::AuthPriv)
    );
    // Unset: the strongest level the keys allow, for both.
    let plain = ok.replace(
        "read_level = \"authNoPriv\"\nwrite_level = \"authPriv\"\n",
        "",
    );
    let c = parse("t.toml", &plain).unwrap();
    assert_eq!(
        c.snmp.users[0].levels(),
        (SnmpLevel::AuthPriv, SnmpLevel::AuthPriv)
    );
    refused(
        &ok,
        &ok.replace("write_level = \"authPriv\"", "write_level = \"authNoPriv\"")
            .replace("read_level = \"authNoPriv\"", "read_level = \"authPriv\""),
        "write_level",
        "found a write level weaker than the read level",
    );
    refused(
        &ok,
        &ok.replace("priv = \"AES\"\npriv_pass = \"abcdefgh\"\n", ""),
        "write_level",
        "found authPriv for a user without priv_pass",
    );
}

#[test]
fn check_http_tls_wants_a_certificate_with_its_key_and_a_known_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let ok = with_element(&format!(
        "[http]\ntls = \"on\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    refused(
        &ok,
        &ok.replace(&format!("tls_key = \"{}\"\n", key.display()), ""),
        "tls_cert",
        "found only one of tls_cert and tls_key",
    );
    refused(
        &ok,
        &ok.replace("k.pem", "missing.pem"),
        "tls_key",
        "expected a readable PEM file",
    );
    refused(&ok, &ok.replace("\"on\"", "\"yes\""), "tls =", "yes");
}

#[test]
fn check_roles_wants_one_role_per_user_on_every_face() {
    let ok = with_element(
        "[[snmp.users]]\nname = \"olga\"\nauth = \"SHA-256\"\nauth_pass = \"12345678\"\nwrite = true\n\
         [http]\nusers = [{ name = \"olga\", password = \"http-password\", role = \"operator\" }]\n\
         [netconf]\nusers = [{ name = \"olga\", password = \"netconf-password\", role = \"operator\" }]\n",
    );
    refused(
        &ok,
        &ok.replace(
            "\"netconf-password\", role = \"operator\"",
            "\"netconf-password\", role = \"viewer\"",
        ),
        "netconf-password",
        "expected one role for one user on every face",
    );
    refused(
        &ok,
        &ok.replace("write = true", "write = false"),
        "name = \"olga\"",
        "expected write = true",
    );
}
