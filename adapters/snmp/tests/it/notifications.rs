//! Traps and informs received by a real `snmptrapd`.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halyard_cluster_model::{ObjectName, SCHEMA, Value};
use halyard_snmp::engine::Counter;
use halyard_snmp::{NotifyKind, TrapSecurity, TrapTarget};

use crate::harness::*;

/// A `snmptrapd` in the foreground, logging to stdout, killed on drop.
struct TrapD {
    child: Child,
    out: Arc<Mutex<String>>,
    dir: std::path::PathBuf,
}

impl TrapD {
    fn start(port: u16, conf_text: &str) -> TrapD {
        let dir = temp_dir("trapd");
        let conf = dir.join("snmptrapd.conf");
        std::fs::write(&conf, conf_text).unwrap();
        std::fs::write(dir.join("snmp.conf"), "mibs :\n").unwrap();
        let mut args = s(&["-f", "-Lo", "-C", "-c", conf.to_str().unwrap()]);
        // Only the modules needed: -C skips snmp.conf and its empty list.
        args.extend(s(&[
            "-M",
            &format!("+{0}:{0}/standard:{1}", repo_mib_dir(), base_mibs()),
        ]));
        args.extend(s(&[
            "-m",
            "SNMPv2-MIB:HALYARD-CLUSTER-MIB:ENTITY-STATE-MIB",
        ]));
        args.push(format!("udp:127.0.0.1:{port}"));
        let mut child = Command::new("/usr/sbin/snmptrapd")
            .args(&args)
            .env("SNMP_PERSISTENT_DIR", &dir)
            .env("SNMPCONFPATH", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("snmptrapd");
        let out = Arc::new(Mutex::new(String::new()));
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
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
        let t = TrapD { child, out, dir };
        t.wait_for("NET-SNMP version", Duration::from_secs(20));
        t
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let t = self.text();
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < end,
                "snmptrapd never printed {needle:?}:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TrapD {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The values of an indication, by attribute name; the rest take the
/// first label or an empty string.
fn values(class: &str, set: &[(&str, Value)]) -> Vec<Value> {
    let c = SCHEMA.class(class).unwrap();
    c.attributes
        .iter()
        .map(|a| {
            set.iter()
                .find(|(n, _)| *n == a.name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| halyard_cluster_model::memory::default_value(a))
        })
        .collect()
}

fn label(class: &str, attr: &str, name: &str) -> Value {
    let (_, a) = SCHEMA.class(class).unwrap().attribute(attr).unwrap();
    match a.ty {
        halyard_cluster_model::AttrType::Enum(e) => Value::Enum(e.by_name(name).unwrap().value),
        _ => panic!("{attr} is no enumeration"),
    }
}

#[test]
fn traps_and_informs_reach_snmptrapd() {
    let trap_port = free_udp_port();
    let inform_port = free_udp_port();
    const COMMUNITY_CONF: &str = "authCommunity log,execute,net public\n";
    const ENGINE_ID: [u8; 9] = [0x80, 0x00, 0x7e, 0xd9, 0x05, 0xca, 0xfe, 0x00, 0x01];

    let v3_port = free_udp_port();
    let trapd = TrapD::start(trap_port, COMMUNITY_CONF);
    // The v3 receiver knows our user under our (authoritative) engine ID.
    let v3d = TrapD::start(
        v3_port,
        &format!(
            "createUser -e 0x{} admin SHA-256 {AUTH_PASS} AES {PRIV_PASS}\nauthUser log admin priv\n",
            halyard_snmp::engine::to_hex(&ENGINE_ID)
        ),
    );
    let r = start_with(|mut c| {
        c.engine_id = Some(ENGINE_ID.to_vec());
        c.trap_targets = vec![
            TrapTarget {
                address: ([127, 0, 0, 1], v3_port).into(),
                security: TrapSecurity::Usm {
                    user: "admin".into(),
                },
                kind: NotifyKind::Trap,
            },
            TrapTarget {
                address: ([127, 0, 0, 1], trap_port).into(),
                security: TrapSecurity::Community("public".into()),
                kind: NotifyKind::Trap,
            },
            TrapTarget {
                address: ([127, 0, 0, 1], inform_port).into(),
                security: TrapSecurity::Community("public".into()),
                kind: NotifyKind::Inform {
                    timeout: Duration::from_millis(300),
                    retries: 100,
                },
            },
        ];
        c
    });
    let fan = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
    r.model
        .publish(
            "AlarmRaised",
            &fan,
            values(
                "AlarmRaised",
                &[
                    ("Alarm", Value::Str("ne=1/alarm=7".into())),
                    ("Resource", Value::Str(fan.to_string())),
                    (
                        "EventType",
                        label("AlarmRaised", "EventType", "equipmentAlarm"),
                    ),
                    ("Severity", label("AlarmRaised", "Severity", "major")),
                    ("AdditionalText", Value::Str("fan speed low".into())),
                ],
            ),
        )
        .unwrap();
    r.model
        .publish(
            "AlarmCleared",
            &fan,
            values(
                "AlarmCleared",
                &[
                    ("Alarm", Value::Str("ne=1/alarm=7".into())),
                    ("Resource", Value::Str(fan.to_string())),
                ],
            ),
        )
        .unwrap();
    let text = trapd.wait_for(
        "HALYARD-CLUSTER-MIB::hcAlarmCleared",
        Duration::from_secs(20),
    );
    assert!(
        text.contains("OID: HALYARD-CLUSTER-MIB::hcAlarmRaised"),
        "{text}"
    );
    assert!(
        text.contains("HALYARD-CLUSTER-MIB::hcAlarmRaisedResource.0 = STRING: ne=1/shelf=1/fan=1"),
        "{text}"
    );
    assert!(
        text.contains("HALYARD-CLUSTER-MIB::hcAlarmRaisedSeverity.0 = INTEGER: major("),
        "{text}"
    );
    assert!(
        text.contains(
            "HALYARD-CLUSTER-MIB::hcAlarmRaisedAdditionalText.0 = STRING: fan speed low\t"
        ),
        "{text}"
    );
    // The same over SNMPv3 authPriv (SHA-256, AES), decoded by snmptrapd.
    let text = v3d.wait_for(
        "HALYARD-CLUSTER-MIB::hcAlarmCleared",
        Duration::from_secs(20),
    );
    assert!(
        text.contains("OID: HALYARD-CLUSTER-MIB::hcAlarmRaised"),
        "{text}"
    );
    assert!(
        text.contains("HALYARD-CLUSTER-MIB::hcAlarmRaisedResource.0 = STRING: ne=1/shelf=1/fan=1"),
        "{text}"
    );
    assert_eq!(r.engine.get(Counter::TrapsSent), 4);

    // Nobody listens for informs yet: the agent retries.
    let end = Instant::now() + Duration::from_secs(20);
    while r.engine.get(Counter::InformsSent) < 3 {
        assert!(Instant::now() < end, "inform not retried");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(r.engine.get(Counter::InformsAcked), 0);
    let informd = TrapD::start(inform_port, COMMUNITY_CONF);
    let text = informd.wait_for(
        "HALYARD-CLUSTER-MIB::hcAlarmCleared",
        Duration::from_secs(30),
    );
    assert!(
        text.contains("OID: HALYARD-CLUSTER-MIB::hcAlarmRaised"),
        "{text}"
    );
    let end = Instant::now() + Duration::from_secs(10);
    while r.engine.get(Counter::InformsAcked) < 2 {
        assert!(Instant::now() < end, "informs not acknowledged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(r.engine.get(Counter::InformsSent) >= 4);
    assert_eq!(r.engine.get(Counter::InformsTimedOut), 0);
    // The targets as SNMP-TARGET-MIB and SNMP-NOTIFICATION-MIB show
    // them (net-snmp's snmptable with the RFC modules loaded).
    let table = |name: &str| {
        snmptable(
            r.addr,
            "SNMP-TARGET-MIB:SNMP-NOTIFICATION-MIB",
            &["-Ci"],
            name,
        )
    };
    let addr = table("SNMP-TARGET-MIB::snmpTargetAddrTable");
    let rows: Vec<&str> = addr.lines().filter(|l| l.contains("target-")).collect();
    assert_eq!(rows.len(), 3, "{addr}");
    assert!(
        // TAddress: 127.0.0.1 and the port (SNMPv2-TM's display is not loaded).
        rows[2].contains(&format!(
            "\"7F 00 00 01 {:02X} {:02X} \"",
            inform_port >> 8,
            inform_port & 0xff
        )) && rows[2].contains("|30|100|inform|target-3|readOnly|active"),
        "{addr}"
    );
    assert!(rows[1].contains("|trap|target-2|"), "{addr}");
    let params = table("SNMP-TARGET-MIB::snmpTargetParamsTable");
    assert!(
        params
            .lines()
            .any(|l| l.starts_with("'target-1'|3|3|admin|authPriv|")),
        "{params}"
    );
    assert!(
        !params.contains("public"),
        "the community is not shown: {params}"
    );
    let notify = table("SNMP-NOTIFICATION-MIB::snmpNotifyTable");
    assert!(
        notify
            .lines()
            .any(|l| l.starts_with("'inform'|inform|inform|readOnly|active")),
        "{notify}"
    );
    assert!(
        notify
            .lines()
            .any(|l| l.starts_with("'trap'|trap|trap|readOnly|active")),
        "{notify}"
    );
}

/// SNMPv3 informs: the receiver is the authoritative engine, discovered
/// first; keys are localised for it. snmptrapd knows the user under its
/// own engine ID.
#[test]
fn v3_informs_are_acknowledged_by_snmptrapd() {
    let port = free_udp_port();
    let trapd = TrapD::start(
        port,
        &format!("createUser admin SHA-256 {AUTH_PASS} AES {PRIV_PASS}\nauthUser log admin priv\n"),
    );
    let r = start_with(|mut c| {
        c.trap_targets = vec![TrapTarget {
            address: ([127, 0, 0, 1], port).into(),
            security: TrapSecurity::Usm {
                user: "admin".into(),
            },
            kind: NotifyKind::Inform {
                timeout: Duration::from_millis(1000),
                retries: 5,
            },
        }];
        c
    });
    let node = ObjectName::parse("ne=1/shelf=1/node=a").unwrap();
    r.model
        .publish(
            "StateChanged",
            &node,
            values(
                "StateChanged",
                &[
                    ("Component", Value::Str(node.to_string())),
                    ("AdminState", label("StateChanged", "AdminState", "locked")),
                    ("Reason", Value::Str("operator lock".into())),
                ],
            ),
        )
        .unwrap();
    let text = trapd.wait_for(
        "HALYARD-CLUSTER-MIB::hcStateChanged",
        Duration::from_secs(20),
    );
    assert!(
        text.contains("HALYARD-CLUSTER-MIB::hcStateChangedAdminState.0 = INTEGER: locked(1)"),
        "{text}"
    );
    // A physical entity's operational state change is also ENTITY-STATE-MIB's
    // entStateOperDisabled, with its admin state and alarms.
    let fan = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
    r.model
        .publish(
            "StateChanged",
            &fan,
            values(
                "StateChanged",
                &[
                    ("Component", Value::Str(fan.to_string())),
                    ("OperState", label("StateChanged", "OperState", "disabled")),
                    ("OperStateChanged", Value::Bool(true)),
                ],
            ),
        )
        .unwrap();
    let text = trapd.wait_for(
        "ENTITY-STATE-MIB::entStateOperDisabled",
        Duration::from_secs(20),
    );
    assert!(
        text.contains("ENTITY-STATE-MIB::entStateAdmin.")
            && text.contains("ENTITY-STATE-MIB::entStateAlarm."),
        "{text}"
    );
    let end = Instant::now() + Duration::from_secs(10);
    while r.engine.get(Counter::InformsAcked) < 2 {
        assert!(Instant::now() < end, "v3 inform not acknowledged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(r.engine.get(Counter::InformsTimedOut), 0);
}

/// snmpEnableAuthenTraps: a bad community and a wrong digest each send an
/// authenticationFailure trap.
#[test]
fn authentication_failures_are_trapped_when_enabled() {
    let port = free_udp_port();
    let trapd = TrapD::start(port, COMMUNITY_CONF_TOP);
    let r = start_with(|mut c| {
        c.authentication_failure_traps = Some(true);
        c.trap_targets = vec![TrapTarget {
            address: ([127, 0, 0, 1], port).into(),
            security: TrapSecurity::Community("public".into()),
            kind: NotifyKind::Trap,
        }];
        c
    });
    let out = tool(
        "snmpget",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.11.30.0"]),
    );
    assert!(out.stdout.contains("INTEGER: 1"), "{out:?}");
    let bad = tool(
        "snmpget",
        &s(&[
            "-v2c",
            "-c",
            "wrong",
            "-t",
            "0.5",
            "-r",
            "0",
            &r.addr.to_string(),
            ".1.3.6.1.2.1.1.5.0",
        ]),
    );
    assert!(!bad.ok, "{bad:?}");
    let text = trapd.wait_for("SNMPv2-MIB::authenticationFailure", Duration::from_secs(20));
    assert_eq!(text.matches("authenticationFailure").count(), 1, "{text}");
    let mut args = v3("admin", "authPriv", r.addr);
    let i = args.iter().position(|a| a == AUTH_PASS).unwrap();
    args[i] = "not-the-password".into();
    let bad = tool("snmpget", &cat(args, &["-On", ".1.3.6.1.2.1.1.5.0"]));
    assert!(!bad.ok, "{bad:?}");
    let end = Instant::now() + Duration::from_secs(20);
    while trapd.text().matches("authenticationFailure").count() < 2 {
        assert!(
            Instant::now() < end,
            "no trap for the wrong digest: {}",
            trapd.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const COMMUNITY_CONF_TOP: &str = "authCommunity log,execute,net public\n";
