//! A malformed-input suite: crafted datagrams, each counted in the right
//! counter and dropped or answered with a Report; the agent keeps serving.

use std::net::UdpSocket;
use std::time::Duration;

use halyard_snmp::AuthProtocol;
use halyard_snmp::oid::to_asn;
use halyard_snmp::usm;
use rasn::types::{Integer, OctetString};
use rasn_snmp::{v2, v2c, v3};

use crate::harness::*;

fn get_pdu(request_id: i32) -> v2::Pdu {
    v2::Pdu {
        request_id,
        error_status: 0,
        error_index: 0,
        variable_bindings: vec![v2::VarBind {
            name: to_asn(&[1, 3, 6, 1, 2, 1, 1, 5, 0]),
            value: v2::VarBindValue::Unspecified,
        }],
    }
}

fn v2c_msg(version: i64, community: &str, data: v2::Pdus) -> Vec<u8> {
    rasn::ber::encode(&v2c::Message {
        version: Integer::from(version),
        community: OctetString::from(community.as_bytes().to_vec()),
        data,
    })
    .unwrap()
}

fn v2c_get(community: &str) -> Vec<u8> {
    v2c_msg(
        1,
        community,
        v2::Pdus::GetRequest(v2::GetRequest(get_pdu(7))),
    )
}

struct V3 {
    engine_id: Vec<u8>,
    boots: i64,
    time: i64,
    user: &'static str,
    flags: u8,
    model: i64,
    max_size: i64,
    auth: Option<(AuthProtocol, Vec<u8>)>,
    priv_params: Vec<u8>,
    scoped: v3::ScopedPduData,
}

impl V3 {
    fn encode(&self) -> Vec<u8> {
        let mac_len = self.auth.as_ref().map_or(0, |(p, _)| p.mac_len());
        let params = v3::USMSecurityParameters {
            authoritative_engine_id: OctetString::from(self.engine_id.clone()),
            authoritative_engine_boots: Integer::from(self.boots),
            authoritative_engine_time: Integer::from(self.time),
            user_name: OctetString::from(self.user.as_bytes().to_vec()),
            authentication_parameters: OctetString::from(vec![0u8; mac_len]),
            privacy_parameters: OctetString::from(self.priv_params.clone()),
        };
        let msg = v3::Message {
            version: Integer::from(3),
            global_data: v3::HeaderData {
                message_id: Integer::from(4242),
                max_size: Integer::from(self.max_size),
                flags: OctetString::from(vec![self.flags]),
                security_model: Integer::from(self.model),
            },
            security_parameters: OctetString::from(rasn::ber::encode(&params).unwrap()),
            scoped_data: self.scoped.clone(),
        };
        let mut out = rasn::ber::encode(&msg).unwrap();
        if let Some((p, key)) = &self.auth {
            let pos = usm::find_auth_params(&out, mac_len).unwrap();
            let d = usm::digest(*p, key, &out);
            out[pos..pos + mac_len].copy_from_slice(&d);
        }
        out
    }
}

fn cleartext(engine_id: &[u8]) -> v3::ScopedPduData {
    v3::ScopedPduData::CleartextPdu(v3::ScopedPdu {
        engine_id: OctetString::from(engine_id.to_vec()),
        name: OctetString::from_static(b""),
        data: v2::Pdus::GetRequest(v2::GetRequest(get_pdu(9))),
    })
}

/// Expected fate of a datagram.
#[derive(Debug, PartialEq)]
enum Fate {
    Dropped,
    /// A Report carrying this usmStats / framework counter OID.
    Report(&'static str),
}

#[test]
fn malformed_datagrams_are_counted_and_the_agent_keeps_answering() {
    let r = start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let id = r.engine.id.clone();
    let boots = i64::from(r.engine.boots);
    let time = i64::from(r.engine.time());
    let sha512 = usm::localized_key(AuthProtocol::Sha512, AUTH_PASS, &id);
    let sha256 = usm::localized_key(AuthProtocol::Sha256, AUTH_PASS, &id);
    let base = |user: &'static str, flags: u8| V3 {
        engine_id: id.clone(),
        boots,
        time,
        user,
        flags,
        model: 3,
        max_size: 65_507,
        auth: None,
        priv_params: Vec::new(),
        scoped: cleartext(&id),
    };
    let good = v2c_get("public");
    let mut with_junk = good.clone();
    with_junk.extend_from_slice(&[0, 0, 0]);
    let mut bad_request_id = good.clone();
    // request-id 7 (02 01 07) becomes the 5-octet 2^31 (02 05 00 80 00 00 00).
    let pos = bad_request_id
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x07])
        .unwrap();
    bad_request_id.splice(pos..pos + 3, [0x02, 0x05, 0x00, 0x80, 0, 0, 0]);
    let fix_len = |mut v: Vec<u8>| {
        // Re-length the outer and PDU sequences after an edit (short forms).
        let n = v.len() - 2;
        v[1] = n as u8;
        v
    };
    let bad_request_id = {
        let mut v = bad_request_id;
        let pdu = v.iter().position(|b| *b == 0xa0).unwrap();
        v[pdu + 1] += 4;
        fix_len(v)
    };
    let sysname = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00];
    let replace_oid = |oid: &[u8]| -> Vec<u8> {
        let mut v = good.clone();
        let pos = v.windows(sysname.len()).position(|w| w == sysname).unwrap();
        v.splice(pos..pos + sysname.len(), oid.iter().copied());
        let delta = oid.len() as isize - sysname.len() as isize;
        // Fix the lengths of the four enclosing constructed headers (outer,
        // PDU, varbind list, varbind; all short form).
        let mut i = 0;
        let mut fixed = 0;
        while fixed < 4 && i < pos {
            if matches!(v[i], 0x30 | 0xa0) {
                fixed += 1;
                v[i + 1] = (v[i + 1] as isize + delta) as u8;
                i += 2;
            } else {
                i += 2 + v[i + 1] as usize;
            }
        }
        v
    };
    let huge_subid = replace_oid(&[
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x9f, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ]);
    let open_subid = replace_oid(&[0x06, 0x04, 0x2b, 0x06, 0x01, 0x81]);

    let auth_ok = |mut m: V3| {
        m.auth = Some((AuthProtocol::Sha512, sha512.clone()));
        m
    };
    // Authenticated with the wrong key.
    let wrong_digest = V3 {
        auth: Some((AuthProtocol::Sha512, vec![1u8; 64])),
        ..base("auther", 5)
    }
    .encode();
    let decryption_error = V3 {
        auth: Some((AuthProtocol::Sha256, sha256.clone())),
        priv_params: vec![1, 2, 3],
        scoped: v3::ScopedPduData::EncryptedPdu(OctetString::from(vec![0x55; 40])),
        ..base("admin", 7)
    }
    .encode();

    let cases: Vec<(&str, Vec<u8>, Fate, &str)> = vec![
        ("empty", vec![], Fate::Dropped, "parse"),
        ("one byte", vec![0x30], Fate::Dropped, "parse"),
        ("text", b"hello, agent".to_vec(), Fate::Dropped, "parse"),
        (
            "truncated half",
            good[..good.len() / 2].to_vec(),
            Fate::Dropped,
            "parse",
        ),
        (
            "truncated last",
            good[..good.len() - 1].to_vec(),
            Fate::Dropped,
            "parse",
        ),
        ("trailing junk", with_junk, Fate::Dropped, "parse"),
        (
            "huge length",
            [&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff], &good[2..]].concat(),
            Fate::Dropped,
            "parse",
        ),
        (
            "nine length octets",
            vec![0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1],
            Fate::Dropped,
            "parse",
        ),
        (
            "indefinite length",
            [&[0x30, 0x80], &good[2..], &[0, 0]].concat(),
            Fate::Dropped,
            "parse",
        ),
        (
            "nine-octet version",
            vec![0x30, 0x0b, 0x02, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            Fate::Dropped,
            "parse",
        ),
        (
            "wrong outer tag",
            [&[0x31], &good[1..]].concat(),
            Fate::Dropped,
            "parse",
        ),
        (
            "unknown pdu tag",
            {
                let mut v = good.clone();
                let p = v.iter().position(|b| *b == 0xa0).unwrap();
                v[p] = 0xa9;
                v
            },
            Fate::Dropped,
            "parse",
        ),
        (
            "request-id above 2^31",
            bad_request_id,
            Fate::Dropped,
            "parse",
        ),
        ("huge sub-identifier", huge_subid, Fate::Dropped, "parse"),
        (
            "unterminated sub-identifier",
            open_subid,
            Fate::Dropped,
            "parse",
        ),
        (
            "community as integer",
            {
                let mut v = good.clone();
                v[5] = 0x02;
                v
            },
            Fate::Dropped,
            "parse",
        ),
        (
            "oversize garbage",
            [
                &[0x30u8, 0x82, 0xea, 0x5c, 0x02, 0x01, 0x01][..],
                &vec![0xa5; 60_000],
            ]
            .concat(),
            Fate::Dropped,
            "parse",
        ),
        (
            "v3 security parameters garbage",
            {
                let mut m = base("auther", 4);
                m.engine_id = vec![];
                let mut v = m.encode();
                // The security-parameters OCTET STRING holds a SEQUENCE: break its tag.
                let at = v
                    .windows(4)
                    .position(|w| {
                        w[0] == 0x04 && w[2] == 0x30 && w[3] as usize == w[1] as usize - 2
                    })
                    .unwrap();
                v[at + 2] = 0x31;
                v
            },
            Fate::Dropped,
            "parse",
        ),
        (
            "version -1",
            v2c_msg(
                -1,
                "public",
                v2::Pdus::GetRequest(v2::GetRequest(get_pdu(1))),
            ),
            Fate::Dropped,
            "badVersion",
        ),
        (
            "version 2",
            v2c_msg(
                2,
                "public",
                v2::Pdus::GetRequest(v2::GetRequest(get_pdu(1))),
            ),
            Fate::Dropped,
            "badVersion",
        ),
        (
            "version 2^31-1",
            v2c_msg(
                0x7fff_ffff,
                "public",
                v2::Pdus::GetRequest(v2::GetRequest(get_pdu(1))),
            ),
            Fate::Dropped,
            "badVersion",
        ),
        (
            "bad community",
            v2c_get("private"),
            Fate::Dropped,
            "badCommunity",
        ),
        (
            "empty community",
            v2c_get(""),
            Fate::Dropped,
            "badCommunity",
        ),
        (
            "v1 bad community",
            {
                let mut v = v2c_get("wrong");
                v[4] = 0; // version 0
                v
            },
            Fate::Dropped,
            "badCommunity",
        ),
        (
            "response to the agent",
            v2c_msg(1, "public", v2::Pdus::Response(v2::Response(get_pdu(3)))),
            Fate::Dropped,
            "unknownPdu",
        ),
        (
            "trap to the agent",
            v2c_msg(1, "public", v2::Pdus::Trap(v2::Trap(get_pdu(3)))),
            Fate::Dropped,
            "unknownPdu",
        ),
        (
            "v3 discovery",
            V3 {
                engine_id: vec![],
                ..base("", 4)
            }
            .encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.4.0"),
            "unknownEngine",
        ),
        (
            "v3 wrong engine",
            V3 {
                engine_id: vec![0x80, 0, 0, 0, 1, 2, 3],
                ..base("auther", 4)
            }
            .encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.4.0"),
            "unknownEngine",
        ),
        (
            "v3 unknown user",
            base("mallory", 4).encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.3.0"),
            "unknownUser",
        ),
        (
            "v3 wrong digest",
            wrong_digest,
            Fate::Report("1.3.6.1.6.3.15.1.1.5.0"),
            "wrongDigest",
        ),
        (
            "v3 out of window (time)",
            auth_ok(V3 {
                time: time + 1000,
                ..base("auther", 5)
            })
            .encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.2.0"),
            "notInTime",
        ),
        (
            "v3 out of window (boots)",
            auth_ok(V3 {
                boots: boots + 1,
                ..base("auther", 5)
            })
            .encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.2.0"),
            "notInTime",
        ),
        (
            "v3 boots at maximum",
            auth_ok(V3 {
                boots: 0x7fff_ffff,
                ..base("auther", 5)
            })
            .encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.2.0"),
            "notInTime",
        ),
        (
            "v3 unsupported level",
            base("auther", 7).encode(),
            Fate::Report("1.3.6.1.6.3.15.1.1.1.0"),
            "unsupportedLevel",
        ),
        (
            "v3 decryption error",
            decryption_error,
            Fate::Report("1.3.6.1.6.3.15.1.1.6.0"),
            "decryption",
        ),
        (
            "v3 unknown security model",
            V3 {
                model: 99,
                ..base("auther", 4)
            }
            .encode(),
            Fate::Dropped,
            "unknownModel",
        ),
        (
            "v3 priv without auth",
            base("auther", 6).encode(),
            Fate::Dropped,
            "invalid",
        ),
        (
            "v3 empty flags",
            {
                let mut v = base("auther", 4).encode();
                let at = v.windows(3).position(|w| w == [0x04, 0x01, 0x04]).unwrap();
                v.splice(at..at + 3, [0x04, 0x00]);
                // Shrink the header sequence and the outer length (short forms).
                let h = v.iter().skip(5).position(|b| *b == 0x30).unwrap() + 5;
                v[h + 1] -= 1;
                v[1] -= 1;
                v
            },
            Fate::Dropped,
            "invalid",
        ),
        (
            "v3 max size below 484",
            V3 {
                max_size: 100,
                ..base("auther", 4)
            }
            .encode(),
            Fate::Dropped,
            "invalid",
        ),
    ];
    assert!(cases.len() >= 30);
    let mut buf = vec![0u8; 65_536];
    for (name, datagram, fate, _) in &cases {
        // A report is awaited as long as a loaded machine may need; a
        // dropped datagram gets a short window (nothing ever comes).
        let wait = match fate {
            Fate::Dropped => Duration::from_millis(200),
            Fate::Report(_) => Duration::from_secs(10),
        };
        sock.set_read_timeout(Some(wait)).unwrap();
        sock.send_to(datagram, r.addr).unwrap();
        let got = match sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        };
        match fate {
            Fate::Dropped => assert!(got.is_none(), "{name}: answered"),
            Fate::Report(oid) => {
                let bytes = got.unwrap_or_else(|| panic!("{name}: no report"));
                let m: v3::Message = rasn::ber::decode(&bytes).unwrap();
                let v3::ScopedPduData::CleartextPdu(s) = m.scoped_data else {
                    panic!("{name}: encrypted report");
                };
                let v2::Pdus::Report(rep) = s.data else {
                    panic!("{name}: not a report: {:?}", s.data);
                };
                let got = halyard_snmp::oid::format(&rep.0.variable_bindings[0].name);
                assert_eq!(&got, oid, "{name}");
                let usm: v3::USMSecurityParameters =
                    rasn::ber::decode(&m.security_parameters).unwrap();
                assert_eq!(&usm.authoritative_engine_id[..], &id[..], "{name}");
                if *oid == "1.3.6.1.6.3.15.1.1.2.0" {
                    // notInTimeWindow reports are authenticated.
                    assert_eq!(m.global_data.flags[0] & 1, 1, "{name}");
                }
            }
        }
    }
    // Count what each counter should hold, then read them with snmpget.
    let count = |k: &str| cases.iter().filter(|c| c.3 == k).count() as u64;
    let mut args = v2c("public", r.addr);
    args.push("-On".into());
    let wanted = [
        ("1.3.6.1.2.1.11.6.0", count("parse")),
        ("1.3.6.1.2.1.11.3.0", count("badVersion")),
        ("1.3.6.1.2.1.11.4.0", count("badCommunity")),
        ("1.3.6.1.6.3.11.2.1.1.0", count("unknownModel")),
        ("1.3.6.1.6.3.11.2.1.2.0", count("invalid")),
        ("1.3.6.1.6.3.11.2.1.3.0", count("unknownPdu")),
        ("1.3.6.1.6.3.15.1.1.1.0", count("unsupportedLevel")),
        ("1.3.6.1.6.3.15.1.1.2.0", count("notInTime")),
        ("1.3.6.1.6.3.15.1.1.3.0", count("unknownUser")),
        ("1.3.6.1.6.3.15.1.1.4.0", count("unknownEngine")),
        ("1.3.6.1.6.3.15.1.1.5.0", count("wrongDigest")),
        ("1.3.6.1.6.3.15.1.1.6.0", count("decryption")),
    ];
    for (o, _) in &wanted {
        args.push(format!(".{o}"));
    }
    let out = tool("snmpget", &args);
    assert!(out.ok, "{out:?}");
    let lines = numeric_lines(&out.stdout);
    assert_eq!(lines.len(), wanted.len(), "{out:?}");
    for ((o, n), (got_oid, v)) in wanted.iter().zip(&lines) {
        assert_eq!(halyard_snmp::oid::format(got_oid), *o);
        assert_eq!(v, &format!("Counter32: {n}"), "{o}");
        assert!(*n > 0, "{o}: no case");
    }
    // And it still answers, over every version.
    let out = tool(
        "snmpget",
        &cat(v2c("public", r.addr), &["-On", ".1.3.6.1.2.1.1.5.0"]),
    );
    assert!(out.stdout.contains("halyard-demo"), "{out:?}");
    let out = tool(
        "snmpget",
        &cat(
            v3("admin", "authPriv", r.addr),
            &["-On", ".1.3.6.1.2.1.1.5.0"],
        ),
    );
    assert!(out.stdout.contains("halyard-demo"), "{out:?}");
}
