//! Benchmark: Net-SNMP `snmpd` serving its default tree against halyard
//! serving the demo element, driven by the same client in one run.
//!
//! - GET of sysName.0 (a scalar both agents serve): requests per second
//!   and p50/p99 latency with 1, 4 and 16 requests outstanding;
//! - GETBULK (max-repetitions 30) from the start of a three-column table
//!   (snmpd: sysORTable, 10 rows; halyard: hcObjectTable, the demo's 17
//!   rows): varbinds per second, 30 per answer for both;
//! - `snmpbulkwalk` of those tables: varbinds per second (30 and 51 per
//!   walk: the fixed cost of each client process favours the longer walk,
//!   so the time per walk is printed too);
//! - all over SNMPv2c and SNMPv3 authPriv (SHA-256, AES-128);
//! - resident memory of each agent process.
//!
//! The client is plain blocking UDP sockets, one thread per outstanding
//! request, the same for both agents.
//!
//! `cargo bench -p halyard-snmp --bench vs_snmpd [-- --secs N --rounds R]`;
//! `-- --cpu`: halyard's own CPU time per request, in process; `-- --floor`:
//! the round trip with no agent behind the socket (a responder on tokio's
//! multi-thread runtime, on its current-thread runtime, and on one blocking
//! thread).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use halyard_cluster_model::memory::demo_element;
use halyard_snmp::oid::to_asn;
use halyard_snmp::usm;
use halyard_snmp::{
    AuthProtocol, Community, Group, PrivProtocol, SecurityLevel, SnmpAgent, SnmpConfig, UsmUser,
};
use rasn::types::{Integer, OctetString};
use rasn_snmp::{v2, v2c, v3};
use tokio::net::UdpSocket;

const AUTH: &str = "authpass-2026";
const PRIV: &str = "privpass-2026";
const SYS_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];
const SYS_OR_TABLE: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 9];
const HC_OBJECT_TABLE: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 77, 1, 100];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-halyard") {
        let port: u16 = args[i + 1].parse().expect("port");
        serve_halyard(port);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-floor-blocking") {
        let port: u16 = args[i + 1].parse().expect("port");
        serve_floor_blocking(port);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-floor") {
        let port: u16 = args[i + 1].parse().expect("port");
        serve_floor(port, false);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-floor-current") {
        let port: u16 = args[i + 1].parse().expect("port");
        serve_floor(port, true);
        return;
    }
    if args.iter().any(|a| a == "--cpu") {
        cpu_profile();
        return;
    }
    if args.iter().any(|a| a == "--floor") {
        floor();
        return;
    }
    let secs: u64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(2);
    // Each cell is measured this many times, the agents alternating, and
    // the median round is kept: a busy machine disturbs both alike.
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = std::env::temp_dir().join(format!("halyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let snmpd_port = free_port();
    let halyard_port = free_port();
    let mut snmpd = start_snmpd(&dir, snmpd_port);
    let mut halyard = start_halyard(halyard_port);
    let agents = [
        (
            "snmpd",
            SocketAddr::from(([127, 0, 0, 1], snmpd_port)),
            SYS_OR_TABLE,
            snmpd.id(),
        ),
        (
            "halyard",
            SocketAddr::from(([127, 0, 0, 1], halyard_port)),
            HC_OBJECT_TABLE,
            halyard.id(),
        ),
    ];
    println!(
        "SNMP benchmark: {secs} s per cell, median of {rounds} alternating rounds, same client for both agents"
    );
    let mut results: Vec<(String, f64, f64, f64)> = Vec::new();
    for v3 in [false, true] {
        let version = if v3 { "v3 authPriv" } else { "v2c" };
        for outstanding in [1usize, 4, 16] {
            let mut cells: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); agents.len()];
            for _ in 0..rounds {
                for (k, (_, addr, _, _)) in agents.iter().enumerate() {
                    cells[k].push(get_load(*addr, v3, outstanding, secs));
                }
            }
            for (k, (name, _, _, _)) in agents.iter().enumerate() {
                let (rate, p50, p99) = median(&mut cells[k]);
                println!(
                    "GET  {version:11} {outstanding:2} outstanding  {name:8} {rate:9.0} req/s  p50 {p50:7.1} us  p99 {p99:7.1} us"
                );
                results.push((
                    format!("get {version} {outstanding} {name}"),
                    rate,
                    p50,
                    p99,
                ));
            }
        }
        let mut cells: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); agents.len()];
        for _ in 0..rounds {
            for (k, (_, addr, table, _)) in agents.iter().enumerate() {
                cells[k].push((bulk_load(*addr, v3, table, 4, secs), 0.0, 0.0));
            }
        }
        for (k, (name, _, _, _)) in agents.iter().enumerate() {
            let (rate, _, _) = median(&mut cells[k]);
            println!("BULK {version:11} r=30, 4 outstanding  {name:8} {rate:9.0} varbinds/s");
            results.push((format!("bulk {version} {name}"), rate, 0.0, 0.0));
        }
        let mut walks: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); agents.len()];
        for _ in 0..rounds {
            for (k, (_, addr, table, _)) in agents.iter().enumerate() {
                let (rate, per_walk) = bulkwalk_rate(*addr, v3, table, secs);
                walks[k].push((rate, per_walk as f64, 0.0));
            }
        }
        for (k, (name, _, _, _)) in agents.iter().enumerate() {
            let (rate, per_walk, _) = median(&mut walks[k]);
            println!(
                "snmpbulkwalk {version:11} -Cr30  {name:8} {rate:9.0} varbinds/s  ({per_walk:.0} per walk, {:.2} ms per walk)",
                per_walk / rate * 1e3
            );
            results.push((format!("walk {version} {name}"), rate, 0.0, 0.0));
        }
    }
    for (name, _, _, pid) in &agents {
        println!("RSS  {name:8} {} kB", rss_kb(*pid));
    }
    println!("ratios (halyard / snmpd):");
    for r in results.iter().filter(|r| r.0.ends_with(" halyard")) {
        let key = r.0.trim_end_matches(" halyard");
        if let Some(s) = results.iter().find(|x| x.0 == format!("{key} snmpd")) {
            if r.2 > 0.0 {
                println!(
                    "  {key:28} throughput x{:.2}  p99 x{:.2}",
                    r.1 / s.1,
                    r.3 / s.3
                );
            } else {
                println!("  {key:28} throughput x{:.2}", r.1 / s.1);
            }
        }
    }
    let _ = snmpd.kill();
    let _ = snmpd.wait();
    let _ = halyard.kill();
    let _ = halyard.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// The round with the median throughput.
fn median(rounds: &mut [(f64, f64, f64)]) -> (f64, f64, f64) {
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    rounds[rounds.len() / 2]
}

use halyard_test_ports::free_port;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn start_snmpd(dir: &std::path::Path, port: u16) -> Child {
    let conf = dir.join("snmpd.conf");
    std::fs::write(
        &conf,
        format!(
            "rocommunity public 127.0.0.1\ncreateUser bench SHA-256 {AUTH} AES {PRIV}\nrouser bench priv\n"
        ),
    )
    .expect("snmpd.conf");
    let mut child = Command::new("/usr/sbin/snmpd")
        .args(["-f", "-Lf", "/dev/null", "-C", "-c"])
        .arg(&conf)
        .arg(format!("udp:127.0.0.1:{port}"))
        .env("SNMP_PERSISTENT_DIR", dir)
        .env("MIBS", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmpd (apt-get install snmpd)");
    // Wait until it answers.
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let ok = Command::new("snmpget")
            .args(["-v2c", "-c", "public", "-t", "0.5", "-r", "0"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1.3.6.1.2.1.1.5.0")
            .env("MIBS", "")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("snmpd did not start");
}

fn start_halyard(port: u16) -> Child {
    start_self("--serve-halyard", port)
}

fn start_self(mode: &str, port: u16) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([mode, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("halyard");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert!(line.starts_with("READY"), "{line}");
    child
}

/// The halyard agent's configuration: `public` and the v3 user `bench`.
fn halyard_config(port: u16) -> SnmpConfig {
    SnmpConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        communities: vec![Community::read_only("public")],
        users: vec![UsmUser {
            name: "bench".into(),
            auth: Some((AuthProtocol::Sha256, AUTH.into())),
            privacy: Some((PrivProtocol::Aes128, PRIV.into())),
            group: "g".into(),
        }],
        groups: vec![Group {
            name: "g".into(),
            read_view: Some("all".into()),
            write_view: None,
            min_level: SecurityLevel::AuthPriv,
            write_min_level: SecurityLevel::AuthPriv,
        }],
        ..SnmpConfig::default()
    }
}

/// The halyard agent alone in this process (so its RSS is its own).
fn serve_halyard(port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = halyard_config(port);
        let agent = SnmpAgent::bind(config, Arc::new(demo_element()))
            .await
            .expect("bind");
        println!("READY");
        agent.run(std::future::pending()).await.expect("run");
    });
}

static IDS: AtomicI32 = AtomicI32::new(1);

/// A v3 USM session: discovered engine, localised keys.
struct Usm {
    engine_id: Vec<u8>,
    boots: u32,
    time: u32,
    since: Instant,
    auth_key: Vec<u8>,
    priv_key: Vec<u8>,
}

fn discover(sock: &std::net::UdpSocket) -> Usm {
    let msg = v3_message(
        &[],
        0,
        0,
        b"",
        4,
        None,
        None,
        scoped(&[], get_pdu(1, SYS_NAME)),
    );
    let mut buf = vec![0u8; 65_536];
    for _ in 0..10 {
        sock.send(&msg).expect("send");
        if let Ok(n) = sock.recv(&mut buf) {
            let m: v3::Message = rasn::ber::decode(&buf[..n]).expect("report");
            let p: v3::USMSecurityParameters =
                rasn::ber::decode(&m.security_parameters).expect("usm");
            let id = p.authoritative_engine_id.to_vec();
            return Usm {
                auth_key: usm::localized_key(AuthProtocol::Sha256, AUTH, &id),
                priv_key: usm::localized_key(AuthProtocol::Sha256, PRIV, &id),
                boots: u32::try_from(&p.authoritative_engine_boots).unwrap_or(0),
                time: u32::try_from(&p.authoritative_engine_time).unwrap_or(0),
                since: Instant::now(),
                engine_id: id,
            };
        }
    }
    panic!("no engine discovery report");
}

fn get_pdu(id: i32, oid: &[u32]) -> v2::Pdus {
    v2::Pdus::GetRequest(v2::GetRequest(v2::Pdu {
        request_id: id,
        error_status: 0,
        error_index: 0,
        variable_bindings: vec![v2::VarBind {
            name: to_asn(oid),
            value: v2::VarBindValue::Unspecified,
        }],
    }))
}

fn bulk_pdu(id: i32, oid: &[u32]) -> v2::Pdus {
    v2::Pdus::GetBulkRequest(v2::GetBulkRequest(v2::BulkPdu {
        request_id: id,
        non_repeaters: 0,
        max_repetitions: 30,
        variable_bindings: vec![v2::VarBind {
            name: to_asn(oid),
            value: v2::VarBindValue::Unspecified,
        }],
    }))
}

fn scoped(engine_id: &[u8], pdu: v2::Pdus) -> v3::ScopedPdu {
    v3::ScopedPdu {
        engine_id: OctetString::from(engine_id.to_vec()),
        name: OctetString::from_static(b""),
        data: pdu,
    }
}

#[allow(clippy::too_many_arguments)]
fn v3_message(
    engine_id: &[u8],
    boots: u32,
    time: u32,
    user: &[u8],
    flags: u8,
    auth_key: Option<&[u8]>,
    priv_key: Option<&[u8]>,
    scoped: v3::ScopedPdu,
) -> Vec<u8> {
    let mut salt = [0u8; 8];
    let data = match priv_key {
        Some(k) => {
            salt = (IDS.fetch_add(1, Ordering::Relaxed) as u64 | 1 << 40).to_be_bytes();
            let mut plain = rasn::ber::encode(&scoped).expect("scoped");
            usm::aes_encrypt(k, boots, time, &salt, &mut plain);
            v3::ScopedPduData::EncryptedPdu(OctetString::from(plain))
        }
        None => v3::ScopedPduData::CleartextPdu(scoped),
    };
    let mac_len = if auth_key.is_some() { 24 } else { 0 };
    let params = v3::USMSecurityParameters {
        authoritative_engine_id: OctetString::from(engine_id.to_vec()),
        authoritative_engine_boots: Integer::from(i64::from(boots)),
        authoritative_engine_time: Integer::from(i64::from(time)),
        user_name: OctetString::from(user.to_vec()),
        authentication_parameters: OctetString::from(vec![0u8; mac_len]),
        privacy_parameters: OctetString::from(if priv_key.is_some() {
            salt.to_vec()
        } else {
            Vec::new()
        }),
    };
    let msg = v3::Message {
        version: Integer::from(3),
        global_data: v3::HeaderData {
            message_id: Integer::from(i64::from(IDS.fetch_add(1, Ordering::Relaxed))),
            max_size: Integer::from(65_507),
            flags: OctetString::from(vec![flags]),
            security_model: Integer::from(3),
        },
        security_parameters: OctetString::from(rasn::ber::encode(&params).expect("usm")),
        scoped_data: data,
    };
    let mut out = rasn::ber::encode(&msg).expect("message");
    if let Some(k) = auth_key {
        let pos = usm::find_auth_params(&out, mac_len).expect("auth params");
        let d = usm::digest(AuthProtocol::Sha256, k, &out);
        out[pos..pos + mac_len].copy_from_slice(&d);
    }
    out
}

/// Encodes a request; returns its bytes.
fn request(usm: Option<&Usm>, pdu: v2::Pdus) -> Vec<u8> {
    match usm {
        None => rasn::ber::encode(&v2c::Message {
            version: Integer::from(1),
            community: OctetString::from_static(b"public"),
            data: pdu,
        })
        .expect("v2c"),
        Some(u) => {
            let time = u.time + u.since.elapsed().as_secs() as u32;
            v3_message(
                &u.engine_id,
                u.boots,
                time,
                b"bench",
                7,
                Some(&u.auth_key),
                Some(&u.priv_key),
                scoped(&u.engine_id, pdu),
            )
        }
    }
}

/// The number of variable bindings in a response (0 if it is none).
fn response_varbinds(usm: Option<&Usm>, bytes: &[u8]) -> usize {
    let pdus = match usm {
        None => match rasn::ber::decode::<v2c::Message<v2::Pdus>>(bytes) {
            Ok(m) => m.data,
            Err(_) => return 0,
        },
        Some(u) => {
            let Ok(m) = rasn::ber::decode::<v3::Message>(bytes) else {
                return 0;
            };
            let Ok(p) = rasn::ber::decode::<v3::USMSecurityParameters>(&m.security_parameters)
            else {
                return 0;
            };
            match m.scoped_data {
                v3::ScopedPduData::EncryptedPdu(data) => {
                    let salt: [u8; 8] = p.privacy_parameters[..].try_into().unwrap_or([0; 8]);
                    let boots = u32::try_from(&p.authoritative_engine_boots).unwrap_or(0);
                    let time = u32::try_from(&p.authoritative_engine_time).unwrap_or(0);
                    let mut plain = data.to_vec();
                    usm::aes_decrypt(&u.priv_key, boots, time, &salt, &mut plain);
                    match rasn::ber::decode::<v3::ScopedPdu>(&plain) {
                        Ok(s) => s.data,
                        Err(_) => return 0,
                    }
                }
                v3::ScopedPduData::CleartextPdu(s) => s.data,
            }
        }
    };
    match pdus {
        v2::Pdus::Response(r) if r.0.error_status == 0 => r.0.variable_bindings.len(),
        _ => 0,
    }
}

/// One BER TLV at `pos`: (tag, content range); definite lengths only.
fn tlv(b: &[u8], pos: usize) -> Option<(u8, std::ops::Range<usize>)> {
    let tag = *b.get(pos)?;
    let first = *b.get(pos + 1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | *b.get(pos + 2 + i)? as usize;
        }
        (len, pos + 2 + n)
    };
    let end = start.checked_add(len).filter(|e| *e <= b.len())?;
    Some((tag, start..end))
}

/// The bindings of a Response PDU (`a2`) with error-status 0, counted by
/// walking its TLVs; 0 for anything else.
fn count_in_response(b: &[u8], pdu: usize) -> usize {
    let Some((0xa2, body)) = tlv(b, pdu) else {
        return 0;
    };
    let Some((_, id)) = tlv(b, body.start) else {
        return 0;
    };
    let Some((0x02, status)) = tlv(b, id.end) else {
        return 0;
    };
    if b[status.clone()].iter().any(|x| *x != 0) {
        return 0;
    }
    let Some((_, index)) = tlv(b, status.end) else {
        return 0;
    };
    let Some((0x30, list)) = tlv(b, index.end) else {
        return 0;
    };
    let (mut pos, mut n) = (list.start, 0);
    while pos < list.end {
        match tlv(b, pos) {
            Some((0x30, vb)) => {
                pos = vb.end;
                n += 1;
            }
            _ => return 0,
        }
    }
    n
}

/// What [`response_varbinds`] counts, without decoding the values: the
/// client's own cost stays small and is the same for both agents (the
/// first answer of every worker is also fully decoded, as a check).
fn response_varbinds_fast(usm: Option<&Usm>, b: &[u8]) -> usize {
    let Some((0x30, msg)) = tlv(b, 0) else {
        return 0;
    };
    let Some((_, version)) = tlv(b, msg.start) else {
        return 0;
    };
    match usm {
        None => match tlv(b, version.end) {
            Some((0x04, community)) => count_in_response(b, community.end),
            _ => 0,
        },
        Some(u) => {
            let Some((0x30, header)) = tlv(b, version.end) else {
                return 0;
            };
            let Some((0x04, params)) = tlv(b, header.end) else {
                return 0;
            };
            // USM parameters: engine ID, boots, time, user, auth, privacy.
            let Some((0x30, seq)) = tlv(b, params.start) else {
                return 0;
            };
            let mut fields = Vec::with_capacity(6);
            let mut pos = seq.start;
            while pos < seq.end && fields.len() < 6 {
                let Some((_, r)) = tlv(b, pos) else {
                    return 0;
                };
                pos = r.end;
                fields.push(r);
            }
            let [_, boots, time, _, _, salt] = &fields[..] else {
                return 0;
            };
            let int = |r: &std::ops::Range<usize>| {
                b[r.clone()]
                    .iter()
                    .fold(0u32, |a, x| a << 8 | u32::from(*x))
            };
            let Ok(salt) = <[u8; 8]>::try_from(&b[salt.clone()]) else {
                return 0;
            };
            let Some((0x04, data)) = tlv(b, params.end) else {
                return 0;
            };
            let mut plain = b[data].to_vec();
            usm::aes_decrypt(&u.priv_key, int(boots), int(time), &salt, &mut plain);
            let Some((0x30, scoped)) = tlv(&plain, 0) else {
                return 0;
            };
            let Some((_, engine)) = tlv(&plain, scoped.start) else {
                return 0;
            };
            let Some((_, context)) = tlv(&plain, engine.end) else {
                return 0;
            };
            count_in_response(&plain, context.end)
        }
    }
}

/// One worker: request, wait, repeat until the deadline. Returns the
/// latencies (us) and the variable bindings received. A plain blocking
/// socket on its own thread: the cheapest client there is, so that what
/// it measures is the agents (an async client added its runtime's
/// wake-ups to every round trip, the same for both agents, which hid
/// part of the difference between them at one request outstanding).
fn worker(
    addr: SocketAddr,
    v3: bool,
    bulk: Option<&'static [u32]>,
    end: Instant,
) -> (Vec<f64>, usize) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let usm = if v3 { Some(discover(&sock)) } else { None };
    let mut buf = vec![0u8; 65_536];
    let mut lat = Vec::new();
    let mut varbinds = 0;
    while Instant::now() < end {
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let pdu = match bulk {
            Some(t) => bulk_pdu(id, t),
            None => get_pdu(id, SYS_NAME),
        };
        let msg = request(usm.as_ref(), pdu);
        let t = Instant::now();
        sock.send(&msg).expect("send");
        // A lost answer times out and is not counted.
        if let Ok(n) = sock.recv(&mut buf) {
            let k = response_varbinds_fast(usm.as_ref(), &buf[..n]);
            if lat.is_empty() {
                assert_eq!(k, response_varbinds(usm.as_ref(), &buf[..n]), "{addr}");
            }
            if k > 0 {
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                varbinds += k;
            }
        }
    }
    (lat, varbinds)
}

/// `outstanding` workers, one thread each, for `secs` seconds.
fn run_workers(
    addr: SocketAddr,
    v3: bool,
    bulk: Option<&'static [u32]>,
    outstanding: usize,
    secs: u64,
) -> (Vec<f64>, usize, f64) {
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let threads: Vec<_> = (0..outstanding)
        .map(|_| std::thread::spawn(move || worker(addr, v3, bulk, end)))
        .collect();
    let mut lat = Vec::new();
    let mut varbinds = 0;
    for t in threads {
        let (l, v) = t.join().expect("worker");
        lat.extend(l);
        varbinds += v;
    }
    (lat, varbinds, start.elapsed().as_secs_f64())
}

fn get_load(addr: SocketAddr, v3: bool, outstanding: usize, secs: u64) -> (f64, f64, f64) {
    let (mut lat, _, took) = run_workers(addr, v3, None, outstanding, secs);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p) as usize]
        }
    };
    (lat.len() as f64 / took, pct(0.50), pct(0.99))
}

fn bulk_load(
    addr: SocketAddr,
    v3: bool,
    table: &'static [u32],
    outstanding: usize,
    secs: u64,
) -> f64 {
    let (_, varbinds, took) = run_workers(addr, v3, Some(table), outstanding, secs);
    varbinds as f64 / took
}

/// Repeated `snmpbulkwalk -Cr30` of the table for about `secs` seconds;
/// varbinds per second. The client is made as cheap as it can be, the
/// same for both agents, so that the agents' share shows: no MIB loading
/// (`-m ''`), numeric quick output (`-On -Oq`) to /dev/null, and for v3
/// the master keys (`-3m`/`-3M`) instead of the passwords, which would
/// cost it two 1 MiB hashes per run. One counted walk first gives the
/// bindings per walk (the table does not change meanwhile).
fn bulkwalk_rate(addr: SocketAddr, v3: bool, table: &[u32], secs: u64) -> (f64, usize) {
    let oid = halyard_snmp::oid::format(table);
    let hex = |k: Vec<u8>| format!("0x{}", halyard_snmp::engine::to_hex(&k));
    let mut args: Vec<String> = if v3 {
        vec![
            "-v3".into(),
            "-l".into(),
            "authPriv".into(),
            "-u".into(),
            "bench".into(),
            "-a".into(),
            "SHA-256".into(),
            "-3m".into(),
            hex(usm::password_to_key(AuthProtocol::Sha256, AUTH)),
            "-x".into(),
            "AES".into(),
            "-3M".into(),
            hex(usm::password_to_key(AuthProtocol::Sha256, PRIV)),
        ]
    } else {
        ["-v2c", "-c", "public"].map(String::from).to_vec()
    };
    args.extend(["-m", "", "-On", "-Oq", "-Cr30", "-t", "5"].map(String::from));
    args.push(addr.to_string());
    args.push(oid);
    let walk = |out: Stdio| {
        Command::new("snmpbulkwalk")
            .args(&args)
            .env("MIBS", "")
            .stdout(out)
            .stderr(Stdio::null())
            .output()
            .expect("snmpbulkwalk")
    };
    let first = walk(Stdio::piped());
    assert!(first.status.success(), "snmpbulkwalk failed against {addr}");
    let per_walk = String::from_utf8_lossy(&first.stdout).lines().count();
    let start = Instant::now();
    let mut walks = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        if walk(Stdio::null()).status.success() {
            walks += 1;
        }
    }
    (
        (walks * per_walk) as f64 / start.elapsed().as_secs_f64(),
        per_walk,
    )
}

/// `--cpu`: halyard's own cost per request, in this process, without
/// sockets: the whole `handle_datagram` and its parts (decode, encode,
/// crypto), to see where the time of a request goes.
fn cpu_profile() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let agent = SnmpAgent::bind(halyard_config(0), Arc::new(demo_element()))
            .await
            .expect("bind");
        let probe = v3_message(&[], 0, 0, b"", 4, None, None, scoped(&[], get_pdu(1, SYS_NAME)));
        let report = agent.handle_datagram(&probe).await.expect("report");
        let m: v3::Message = rasn::ber::decode(&report).expect("report");
        let p: v3::USMSecurityParameters = rasn::ber::decode(&m.security_parameters).expect("usm");
        let id = p.authoritative_engine_id.to_vec();
        let usm = Usm {
            auth_key: usm::localized_key(AuthProtocol::Sha256, AUTH, &id),
            priv_key: usm::localized_key(AuthProtocol::Sha256, PRIV, &id),
            boots: u32::try_from(&p.authoritative_engine_boots).unwrap_or(0),
            time: u32::try_from(&p.authoritative_engine_time).unwrap_or(0),
            since: Instant::now(),
            engine_id: id,
        };
        let n = 20_000u32;
        let model = demo_element();
        let t = cpu_ns();
        for _ in 0..n {
            std::hint::black_box(
                halyard_cluster_model::port::InformationModel::walk(&model, None, 0, 31).await,
            )
            .ok();
        }
        println!(
            "model walk of 31 rows: {:.0} ns",
            (cpu_ns() - t) as f64 / f64::from(n)
        );
        let mib = halyard_snmp::mib::Mib::new(
            Arc::new(demo_element()),
            Arc::new(halyard_snmp::engine::Engine::new(vec![1, 2, 3, 4, 5], 1)),
            halyard_snmp::mib::SysInfo::default(),
            65_507,
        );
        let t = cpu_ns();
        for _ in 0..n {
            let mut ctx = halyard_snmp::mib::Ctx::for_rows(31);
            let mut cur = HC_OBJECT_TABLE.to_vec();
            for _ in 0..30 {
                cur = mib.next(&mut ctx, &cur).await.unwrap().unwrap().0;
            }
        }
        println!(
            "30 x mib.next: {:.0} ns",
            (cpu_ns() - t) as f64 / f64::from(n)
        );
        for (what, u, pdu) in [
            ("GET  v2c", None, get_pdu(7, SYS_NAME)),
            ("GET  v3 authPriv", Some(&usm), get_pdu(7, SYS_NAME)),
            ("BULK v2c r=30", None, bulk_pdu(7, HC_OBJECT_TABLE)),
            ("BULK v3 authPriv r=30", Some(&usm), bulk_pdu(7, HC_OBJECT_TABLE)),
        ] {
            let msg = request(u, pdu);
            let out = agent.handle_datagram(&msg).await.expect("answer");
            assert!(response_varbinds(u, &out) > 0, "{what}: no answer");
            let t = cpu_ns();
            for _ in 0..n {
                std::hint::black_box(agent.handle_datagram(&msg).await);
            }
            let whole = (cpu_ns() - t) as f64 / f64::from(n);
            let t = cpu_ns();
            for _ in 0..n {
                std::hint::black_box(response_varbinds(u, &out));
            }
            let client = (cpu_ns() - t) as f64 / f64::from(n);
            let t = cpu_ns();
            for _ in 0..n {
                std::hint::black_box(response_varbinds_fast(u, &out));
            }
            let fast = (cpu_ns() - t) as f64 / f64::from(n);
            assert_eq!(response_varbinds_fast(u, &out), response_varbinds(u, &out));
            println!("  the bench client's count of the answer {fast:6.0} ns");
            let mut enc = 0.0;
            if u.is_none() {
                let m: v2c::Message<v2::Pdus> = rasn::ber::decode(&out).expect("answer");
                let t = cpu_ns();
                for _ in 0..n {
                    std::hint::black_box(rasn::ber::encode(&m).expect("encode"));
                }
                enc = (cpu_ns() - t) as f64 / f64::from(n);
            }
            println!("  rasn encode of the answer {enc:6.0} ns");
            println!(
                "{what:24} handle_datagram {whole:8.0} ns   (client decode of the answer {client:6.0} ns, {} octets)",
                out.len()
            );
        }
    });
}

/// CPU time of this thread (ns): a busy machine does not inflate it.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `--serve-floor`: no agent at all, the same runtime as halyard's (two
/// workers), answering each GetRequest by retagging it as a Response: the
/// round trip through the kernel, the runtime and the client alone.
fn serve_floor(port: u16, current: bool) {
    let rt = if current {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async {
        let sock = UdpSocket::bind(("127.0.0.1", port)).await.expect("bind");
        println!("READY");
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            if retag_as_response(&mut buf[..n]) {
                let _ = sock.send_to(&buf[..n], from).await;
            }
        }
    });
}

/// Turns a v2c request into its answer by retagging its PDU as a Response
/// (SEQUENCE, version, community, then the PDU tag); false if it is not one.
fn retag_as_response(m: &mut [u8]) -> bool {
    let pdu = tlv(m, 0)
        .and_then(|(_, s)| tlv(m, s.start))
        .and_then(|(_, v)| tlv(m, v.end))
        .map(|(_, c)| c.end);
    match pdu.filter(|at| *at < m.len()) {
        Some(at) => {
            m[at] = 0xa2;
            true
        }
        None => false,
    }
}

/// `--serve-floor-blocking`: the same responder on one plain thread with a
/// blocking socket (snmpd's shape: one thread, one wait per datagram).
fn serve_floor_blocking(port: u16) {
    let sock = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("bind");
    println!("READY");
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if retag_as_response(&mut buf[..n]) {
            let _ = sock.send_to(&buf[..n], from);
        }
    }
}

/// `--floor`: GET v2c against the floor server, to show how much of a
/// round trip is left to any agent.
fn floor() {
    for (mode, name) in [
        ("--serve-floor", "floor (tokio, 2 workers)"),
        ("--serve-floor-current", "floor (tokio, current thread)"),
        ("--serve-floor-blocking", "floor (one blocking thread)"),
    ] {
        floor_of(mode, name);
    }
}

fn floor_of(mode: &str, name: &str) {
    let port = free_port();
    let mut child = start_self(mode, port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for outstanding in [1usize, 4, 16] {
        let mut rounds: Vec<_> = (0..3)
            .map(|_| get_load(addr, false, outstanding, 2))
            .collect();
        let (rate, p50, p99) = median(&mut rounds);
        println!(
            "GET  v2c {outstanding:2} outstanding  {name} {rate:9.0} req/s  p50 {p50:7.1} us  p99 {p99:7.1} us"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
