//! The RFC 7860 crypto set with two real managers: net-snmp (every pair
//! its build offers) and pysnmp (every pair, both AES-192/256 key
//! extensions).

use halyard_snmp::{AuthProtocol, PrivProtocol, UsmUser};

use crate::harness::*;

const AUTHS: [(&str, AuthProtocol); 6] = [
    ("MD5", AuthProtocol::Md5),
    ("SHA", AuthProtocol::Sha1),
    ("SHA-224", AuthProtocol::Sha224),
    ("SHA-256", AuthProtocol::Sha256),
    ("SHA-384", AuthProtocol::Sha384),
    ("SHA-512", AuthProtocol::Sha512),
];

/// net-snmp's names; `-C` is the Reeder key extension.
const PRIVS: [(&str, PrivProtocol); 6] = [
    ("DES", PrivProtocol::Des),
    ("AES", PrivProtocol::Aes128),
    ("AES-192", PrivProtocol::Aes192),
    ("AES-256", PrivProtocol::Aes256),
    ("AES-192-C", PrivProtocol::Aes192Reeder),
    ("AES-256-C", PrivProtocol::Aes256Reeder),
];

fn user_name(auth: &str, privacy: Option<&str>) -> String {
    format!("u-{auth}-{}", privacy.unwrap_or("none")).to_lowercase()
}

/// One user per pair, and one authNoPriv user per authentication.
fn every_pair() -> Running {
    start_with(|mut c| {
        for (a, ap) in AUTHS {
            c.users.push(UsmUser {
                name: user_name(a, None),
                auth: Some((ap, AUTH_PASS.into())),
                privacy: None,
                group: "observers".into(),
            });
            for (p, pp) in PRIVS {
                c.users.push(UsmUser {
                    name: user_name(a, Some(p)),
                    auth: Some((ap, AUTH_PASS.into())),
                    privacy: Some((pp, PRIV_PASS.into())),
                    group: "observers".into(),
                });
            }
        }
        c
    })
}

#[test]
fn net_snmp_talks_every_auth_and_priv_pair_it_has() {
    let r = every_pair();
    let mut tried = 0;
    for (a, _) in AUTHS {
        // Debian's net-snmp has the Blumenthal AES-192/256 only.
        for p in [
            None,
            Some("DES"),
            Some("AES"),
            Some("AES-192"),
            Some("AES-256"),
        ] {
            let level = if p.is_some() {
                "authPriv"
            } else {
                "authNoPriv"
            };
            let mut args = s(&["-v3", "-l", level, "-u", &user_name(a, p), "-t", "3"]);
            args.extend(s(&["-r", "1", "-a", a, "-A", AUTH_PASS]));
            if let Some(p) = p {
                args.extend(s(&["-x", p, "-X", PRIV_PASS]));
            }
            args.extend(s(&["-Ov", &r.addr.to_string(), "1.3.6.1.2.1.1.5.0"]));
            let out = tool("snmpget", &args);
            assert!(out.ok, "{a} {p:?}: {out:?}");
            assert!(out.stdout.contains("halyard-demo"), "{a} {p:?}: {out:?}");
            tried += 1;
        }
    }
    assert_eq!(tried, 30);
}

/// Runs the pysnmp peer over `users`: (user, error, value) per user.
fn pysnmp_get(r: &Running, users: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/pysnmp_get.py");
    let out = std::process::Command::new("python3")
        .args([
            script,
            "127.0.0.1",
            &r.addr.port().to_string(),
            &serde_json::Value::from(users.to_vec()).to_string(),
        ])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pysnmp: {stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), users.len(), "{stderr}");
    lines
}

fn user(name: &str, auth: &str, privacy: Option<&str>) -> serde_json::Value {
    let mut u = serde_json::json!({"name": name, "auth": auth, "auth_pass": AUTH_PASS});
    if let Some(p) = privacy {
        u["priv"] = p.into();
        u["priv_pass"] = PRIV_PASS.into();
    }
    u
}

#[test]
fn pysnmp_talks_every_auth_and_priv_pair_in_both_aes_key_extensions() {
    let r = every_pair();
    let mut users = Vec::new();
    for (a, _) in AUTHS {
        users.push(user(&user_name(a, None), a, None));
        for (p, _) in PRIVS {
            users.push(user(&user_name(a, Some(p)), a, Some(p)));
        }
    }
    for got in pysnmp_get(&r, &users) {
        assert_eq!(got["error"], serde_json::Value::Null, "{got}");
        assert_eq!(got["value"], "halyard-demo", "{got}");
    }
    assert_eq!(users.len(), 42);

    // The two extensions really differ where the localised key is short
    // (MD5's 16 octets, SHA-1's 20): a manager set for the other variant
    // is refused with a decryption error, and the agent counts it.
    let before = r
        .engine
        .get(halyard_snmp::engine::Counter::DecryptionErrors);
    let crossed = [
        user(&user_name("MD5", Some("AES-256")), "MD5", Some("AES-256-C")),
        user(&user_name("SHA", Some("AES-192-C")), "SHA", Some("AES-192")),
    ];
    for got in pysnmp_get(&r, &crossed) {
        assert_ne!(got["error"], serde_json::Value::Null, "{got}");
    }
    let after = r
        .engine
        .get(halyard_snmp::engine::Counter::DecryptionErrors);
    assert!(after >= before + 2, "decryption errors {before} -> {after}");
}

/// Reads and writes have their own minimum level: a user read at
/// authNoPriv is refused a SET at authNoPriv (noAccess, nothing changes)
/// and may SET at authPriv.
#[test]
fn writes_need_their_own_security_level() {
    use halyard_snmp::{Group, SecurityLevel};
    let r = start_with(|mut c| {
        c.users.push(UsmUser {
            name: "split".into(),
            auth: Some((AuthProtocol::Sha256, AUTH_PASS.into())),
            privacy: Some((PrivProtocol::Aes128, PRIV_PASS.into())),
            group: "split".into(),
        });
        c.groups.push(Group {
            name: "split".into(),
            read_view: Some("all".into()),
            write_view: Some("all".into()),
            min_level: SecurityLevel::AuthNoPriv,
            write_min_level: SecurityLevel::AuthPriv,
        });
        c
    });
    let label = crate::netsnmp::instance(&r, "ne=1/shelf=1/node=a/comp=counterd-a", "Label");
    let args = |level: &str| {
        let mut a = s(&["-v3", "-l", level, "-u", "split", "-t", "3", "-r", "1"]);
        a.extend(s(&["-a", "SHA-256", "-A", AUTH_PASS]));
        if level == "authPriv" {
            a.extend(s(&["-x", "AES", "-X", PRIV_PASS]));
        }
        a.push(r.addr.to_string());
        a
    };
    let read = tool("snmpget", &cat(args("authNoPriv"), &["-Ov", &label]));
    assert!(read.ok, "{read:?}");
    let set = |level: &str, text: &str| tool("snmpset", &cat(args(level), &[&label, "s", text]));
    let out = set("authNoPriv", "in-clear");
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains("noAccess"), "{out:?}");
    let now = tool("snmpget", &cat(args("authPriv"), &["-Ov", &label]));
    assert!(!now.stdout.contains("in-clear"), "{now:?}");
    let out = set("authPriv", "private");
    assert!(out.ok, "{out:?}");
    let now = tool("snmpget", &cat(args("authNoPriv"), &["-Ov", &label]));
    assert!(now.stdout.contains("private"), "{now:?}");
}
