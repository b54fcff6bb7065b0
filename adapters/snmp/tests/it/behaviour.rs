//! Concurrency, deadlines, message-size limits, IPv6 and engine state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use halyard_cluster_model::memory::{MemoryModel, demo_element};
use halyard_cluster_model::port::*;

use crate::harness::*;
use crate::netsnmp::instance;

/// The demo element, where every read of a fan takes three seconds.
struct SlowFans(Arc<MemoryModel>);

const SLOW: Duration = Duration::from_secs(6);

/// Overrides one call; the rest reach the demo element.
#[async_trait]
impl Forward for SlowFans {
    fn base(&self) -> &dyn InformationModel {
        &*self.0
    }
    async fn get_by_index(&self, index: u32) -> Result<ManagedObject, ModelError> {
        let o = self.0.get_by_index(index).await?;
        if o.class.name == "Fan" {
            tokio::time::sleep(SLOW).await;
        }
        Ok(o)
    }
}

#[test]
fn a_slow_model_call_blocks_nothing_else_and_meets_its_deadline() {
    let model = Arc::new(demo_element());
    let r = start_model(model.clone(), Arc::new(SlowFans(model)), |mut c| {
        c.request_timeout = Duration::from_secs(2);
        c
    });
    let speed = instance(&r, "ne=1/shelf=1/fan=1", "Speed");
    let addr = r.addr;
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let out = tool(
            "snmpget",
            &cat(
                s(&[
                    "-v2c",
                    "-c",
                    "public",
                    "-t",
                    "10",
                    "-r",
                    "0",
                    &addr.to_string(),
                ]),
                &["-On", &speed],
            ),
        );
        (out, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    // While the fan read hangs in the model, other requests are served.
    for _ in 0..5 {
        let t = Instant::now();
        let out = tool(
            "snmpget",
            &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.1.5.0"]),
        );
        assert!(out.stdout.contains("halyard-demo"), "{out:?}");
        // Blocked behind the slow call, it would wait for the deadline.
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
    let (out, took) = slow.join().unwrap();
    assert!(out.stderr.contains("genErr"), "{out:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < SLOW,
        "deadline not applied: {took:?}"
    );
}

#[test]
fn responses_fit_the_message_size_and_too_big_only_when_nothing_fits() {
    let r = start_with(|mut c| {
        c.max_message_size = 600;
        c
    });
    // GETBULK asking for far too much: trimmed, not refused.
    let out = tool(
        "snmpbulkget",
        &cat(
            v2c("public", r.addr),
            &["-On", "-Cn0", "-Cr500", ".1.3.6.1.4.1.32473.77"],
        ),
    );
    assert!(out.ok, "{out:?}");
    let n = numeric_lines(&out.stdout).len();
    assert!(n > 5 && n < 500, "{n} bindings: {out:?}");
    // The whole walk still works in small messages.
    let walk = tool(
        "snmpbulkwalk",
        &cat(v2c("public", r.addr), &["-On", "-Cr100", ".1"]),
    );
    assert!(
        walk.ok && !walk.stderr.contains("OID not increasing"),
        "{walk:?}"
    );
    assert!(numeric_lines(&walk.stdout).len() > 300);
    // A GET whose answer cannot fit: tooBig.
    let mut args = cat(v2c("public", r.addr), &["-On"]);
    for _ in 0..20 {
        args.push(".1.3.6.1.2.1.1.1.0".into());
    }
    let out = tool("snmpget", &args);
    assert!(out.stderr.contains("tooBig"), "{out:?}");

    // A GETBULK of which not one binding fits: tooBig, never empty.
    let big = start_with(|mut c| {
        c.max_message_size = 600;
        c.sys_descr = "x".repeat(700);
        c
    });
    let out = tool(
        "snmpbulkget",
        &cat(
            v2c("public", big.addr),
            &["-On", "-Cn0", "-Cr5", ".1.3.6.1.2.1.1"],
        ),
    );
    assert!(out.stderr.contains("tooBig"), "{out:?}");
    // The bindings after it still come, one GETNEXT at a time.
    let out = tool(
        "snmpbulkget",
        &cat(
            v2c("public", big.addr),
            &["-On", "-Cn0", "-Cr5", ".1.3.6.1.2.1.1.1.0"],
        ),
    );
    assert_eq!(numeric_lines(&out.stdout).len(), 5, "{out:?}");
}

#[test]
fn serves_ipv4_and_ipv6_on_one_port() {
    let port = free_udp_port();
    let r = start_with(|mut c| {
        c.listen = vec![
            format!("[::]:{port}").parse().unwrap(),
            format!("0.0.0.0:{port}").parse().unwrap(),
        ];
        c
    });
    assert!(r.addr.is_ipv6());
    let out = tool(
        "snmpget",
        &s(&[
            "-v2c",
            "-c",
            "public",
            "-t",
            "5",
            "-On",
            &format!("127.0.0.1:{port}"),
            ".1.3.6.1.2.1.1.5.0",
        ]),
    );
    assert!(out.stdout.contains("halyard-demo"), "{out:?}");
    let target = format!("udp6:[::1]:{port}");
    let out = tool(
        "snmpget",
        &s(&[
            "-v2c",
            "-c",
            "public",
            "-t",
            "5",
            "-On",
            &target,
            ".1.3.6.1.2.1.1.5.0",
        ]),
    );
    assert!(out.stdout.contains("halyard-demo"), "{out:?}");
    let out = tool(
        "snmpget",
        &s(&[
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "admin",
            "-a",
            "SHA-256",
            "-A",
            AUTH_PASS,
            "-x",
            "AES",
            "-X",
            PRIV_PASS,
            "-t",
            "5",
            "-On",
            &target,
            ".1.3.6.1.2.1.1.5.0",
        ]),
    );
    assert!(out.stdout.contains("halyard-demo"), "{out:?}");
}

#[test]
fn engine_boots_persist_across_restarts() {
    let dir = temp_dir("boots");
    let state = dir.join("engine");
    let mut ids = Vec::new();
    for boots in 1..=3 {
        let st = state.clone();
        let r = start_with(move |mut c| {
            c.engine_state = Some(st);
            c
        });
        assert_eq!(r.engine.boots, boots);
        ids.push(r.engine.id.clone());
        let out = tool(
            "snmpget",
            &cat(
                v3("admin", "authPriv", r.addr),
                &["-On", ".1.3.6.1.6.3.10.2.1.2.0"],
            ),
        );
        assert!(out.stdout.contains(&format!("INTEGER: {boots}")), "{out:?}");
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The committed fuzz seed corpus goes through the agent's whole receive
/// path in every test run: no panic, and the well-formed seeds answered.
#[test]
fn fuzz_seed_corpus_replays_cleanly() {
    use halyard_snmp::{SnmpAgent, SnmpConfig};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/decode_message");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("corpus")
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 15, "{} seeds", seeds.len());
    let answered = crate::netsnmp::block_on(async {
        let tmp = temp_dir("fuzz");
        let mut c = config(&tmp);
        c.engine_id = Some(vec![0x80, 0x00, 0x7e, 0xd9, 0x05, 1, 2, 3, 4]);
        c.engine_state = None;
        let agent = SnmpAgent::bind(
            SnmpConfig {
                communities: vec![halyard_snmp::Community {
                    name: "public".into(),
                    view: halyard_snmp::View::all(),
                    write: true,
                }],
                ..c
            },
            Arc::new(demo_element()),
        )
        .await
        .unwrap();
        let mut answered = 0;
        for (_, s) in &seeds {
            if agent.handle_datagram(s).await.is_some() {
                answered += 1;
            }
            // Every prefix and a bit flip of every seed, too.
            for cut in 0..s.len() {
                let _ = agent.handle_datagram(&s[..cut]).await;
            }
            for i in 0..s.len() {
                let mut m = s.clone();
                m[i] ^= 0x41;
                let _ = agent.handle_datagram(&m).await;
            }
        }
        std::fs::remove_dir_all(tmp).unwrap();
        answered
    });
    // v1/v2c requests, v3 discovery and the authenticated v3 seeds (engine
    // boots 1, time within the window) are answered; trap, garbage not.
    assert_eq!(answered, 13, "answered");
}

/// GETBULK (RFC 3416 4.2.3): non-repeaters answered once, then
/// max-repetitions rows of the repeaters, endOfMibView repeated for a
/// repeater past the end.
#[test]
fn getbulk_honours_non_repeaters_and_max_repetitions() {
    use halyard_snmp::oid::{format, to_asn};
    use rasn::types::{Integer, OctetString};
    use rasn_snmp::{v2, v2c};
    let r = start();
    let vb = |o: &[u32]| v2::VarBind {
        name: to_asn(o),
        value: v2::VarBindValue::Unspecified,
    };
    let msg = rasn::ber::encode(&v2c::Message {
        version: Integer::from(1),
        community: OctetString::from_static(b"public"),
        data: v2::Pdus::GetBulkRequest(v2::GetBulkRequest(v2::BulkPdu {
            request_id: 77,
            non_repeaters: 1,
            max_repetitions: 3,
            variable_bindings: vec![
                vb(&[1, 3, 6, 1, 2, 1, 1, 1]),
                vb(&[1, 3, 6, 1, 6, 3, 17]),
                vb(&[1, 3, 6, 1, 2, 1, 1, 5, 0]),
            ],
        })),
    })
    .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&msg, r.addr).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let m: v2c::Message<v2::Pdus> = rasn::ber::decode(&buf[..n]).unwrap();
    let v2::Pdus::Response(resp) = m.data else {
        panic!("not a response");
    };
    assert_eq!(resp.0.request_id, 77);
    let got: Vec<(String, bool)> = resp
        .0
        .variable_bindings
        .iter()
        .map(|b| {
            (
                format(&b.name),
                matches!(b.value, v2::VarBindValue::EndOfMibView),
            )
        })
        .collect();
    // Nothing follows the SNMP modules' arc 17 (VACM is 16).
    let end = "1.3.6.1.6.3.17".to_string();
    assert_eq!(
        got,
        vec![
            ("1.3.6.1.2.1.1.1.0".to_string(), false),
            (end.clone(), true),
            ("1.3.6.1.2.1.1.6.0".to_string(), false),
            (end.clone(), true),
            ("1.3.6.1.2.1.1.7.0".to_string(), false),
            (end, true),
            ("1.3.6.1.2.1.1.8.0".to_string(), false),
        ]
    );
}

/// Configuration mistakes are refused at bind time with a reason.
#[test]
fn bad_configurations_are_refused() {
    use halyard_snmp::{
        AuthProtocol, NotifyKind, PrivProtocol, SnmpAgent, SnmpError, TrapSecurity, TrapTarget,
        UsmUser,
    };
    let dir = temp_dir("badcfg");
    let user = |auth: Option<&str>, privacy: Option<&str>, group: &str| UsmUser {
        name: "u".into(),
        auth: auth.map(|p| (AuthProtocol::Sha1, p.to_string())),
        privacy: privacy.map(|p| (PrivProtocol::Aes128, p.to_string())),
        group: group.into(),
    };
    let cases: Vec<(halyard_snmp::SnmpConfig, &str)> = vec![
        (
            {
                let mut c = config(&dir);
                c.users = vec![user(None, Some("privpass-1"), "operators")];
                c
            },
            "privacy needs authentication",
        ),
        (
            {
                let mut c = config(&dir);
                c.users = vec![user(Some("short"), None, "operators")];
                c
            },
            "at least 8 characters",
        ),
        (
            {
                let mut c = config(&dir);
                c.users = vec![user(Some("authpass-1"), None, "nobody")];
                c
            },
            "no group nobody",
        ),
        (
            {
                let mut c = config(&dir);
                c.groups[0].read_view = Some("nowhere".into());
                c
            },
            "no view named nowhere",
        ),
        (
            {
                let mut c = config(&dir);
                c.trap_targets = vec![TrapTarget {
                    address: ([127, 0, 0, 1], 162).into(),
                    security: TrapSecurity::Usm {
                        user: "ghost".into(),
                    },
                    kind: NotifyKind::Trap,
                }];
                c
            },
            "no user ghost",
        ),
        (
            {
                let mut c = config(&dir);
                c.listen.clear();
                c
            },
            "no listen address",
        ),
    ];
    crate::netsnmp::block_on(async {
        for (c, want) in cases {
            let err = SnmpAgent::bind(c, Arc::new(demo_element()))
                .await
                .expect_err(want);
            assert!(err.to_string().contains(want), "{err} / {want}");
            assert!(matches!(
                err,
                SnmpError::Config(_) | SnmpError::NoListenAddress
            ));
        }
        // A port in use is a Bind error naming the address.
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = config(&dir);
        c.listen = vec![held.local_addr().unwrap()];
        let err = SnmpAgent::bind(c, Arc::new(demo_element()))
            .await
            .expect_err("in use");
        assert!(matches!(err, SnmpError::Bind { addr, .. } if addr == held.local_addr().unwrap()));
    });
    std::fs::remove_dir_all(dir).unwrap();
}

/// `run` returns when shutdown resolves, and every task it spawned is
/// gone: the port is free again and nothing answers.
#[test]
fn shutdown_stops_every_task() {
    let port = free_udp_port();
    let r = start_with(|mut c| {
        c.listen = vec![([127, 0, 0, 1], port).into()];
        c.trap_targets = vec![halyard_snmp::TrapTarget {
            address: ([127, 0, 0, 1], free_udp_port()).into(),
            security: halyard_snmp::TrapSecurity::Community("public".into()),
            kind: halyard_snmp::NotifyKind::Trap,
        }];
        c
    });
    let out = tool(
        "snmpget",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.1.5.0"]),
    );
    assert!(out.ok, "{out:?}");
    let engine = r.engine.clone();
    drop(r);
    // The socket is closed: the port can be bound again.
    let again = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("port released");
    drop(again);
    // The notification sender is gone too: only this test holds the engine.
    assert_eq!(Arc::strong_count(&engine), 1);
}

/// SNMPv3 answers fit the manager's msgMaxSize (here the minimum, 484).
#[test]
fn v3_getbulk_is_trimmed_to_the_managers_max_size() {
    use halyard_snmp::AuthProtocol;
    use halyard_snmp::oid::to_asn;
    use halyard_snmp::usm;
    use rasn::types::OctetString;
    use rasn_snmp::{v2, v3};
    let r = start();
    let key = usm::localized_key(AuthProtocol::Sha512, AUTH_PASS, &r.engine.id);
    let msg = usm::build_message(&usm::Outgoing {
        msg_id: 99,
        max_size: 484,
        engine_id: &r.engine.id,
        boots: r.engine.boots,
        time: r.engine.time(),
        user: b"auther",
        auth: Some((AuthProtocol::Sha512, &key)),
        privacy: None,
        salt: 0,
        reportable: true,
        scoped: v3::ScopedPdu {
            engine_id: OctetString::from(r.engine.id.clone()),
            name: OctetString::from_static(b""),
            data: v2::Pdus::GetBulkRequest(v2::GetBulkRequest(v2::BulkPdu {
                request_id: 5,
                non_repeaters: 0,
                max_repetitions: 200,
                variable_bindings: vec![v2::VarBind {
                    name: to_asn(&[1, 3, 6, 1, 4, 1, 32473, 77, 1]),
                    value: v2::VarBindValue::Unspecified,
                }],
            })),
        },
    })
    .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&msg, r.addr).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(n <= 484, "{n} octets");
    let m: v3::Message = rasn::ber::decode(&buf[..n]).unwrap();
    let v3::ScopedPduData::CleartextPdu(s) = m.scoped_data else {
        panic!("encrypted answer to authNoPriv");
    };
    let v2::Pdus::Response(resp) = s.data else {
        panic!("not a response: {:?}", s.data);
    };
    assert_eq!(resp.0.error_status, 0);
    let k = resp.0.variable_bindings.len();
    assert!((5..200).contains(&k), "{k} bindings in {n} octets");
}
