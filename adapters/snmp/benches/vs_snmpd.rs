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
//!
//! `-- --v3-pairs [--secs N --rounds R]`: the cost of SNMPv3 authentication
//! and privacy per protocol pair. Both agents get one user per pair (see
//! [`PAIRS`]); GET of sysName.0 with 1 and 4 requests outstanding per pair
//! and agent, against v2c as the baseline; every pair goes through the same
//! client code (`usm::build_message`, `PrivKey::decrypt`) for both agents.

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
        serve_halyard(port, args.iter().any(|a| a == "--v3-pairs"));
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
    if args.iter().any(|a| a == "--v3-pairs") {
        v3_pairs(secs, rounds);
        return;
    }
    let dir = std::env::temp_dir().join(format!("halyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let snmpd_port = free_port();
    let halyard_port = free_port();
    let mut snmpd = start_snmpd(&dir, snmpd_port, false);
    let mut halyard = start_halyard(halyard_port, false);
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
    // One v3 session per agent, discovered and keyed before any timing.
    let sessions: Vec<Arc<Usm>> = agents.iter().map(|a| discover(a.1, BENCH)).collect();
    let mut results: Vec<(String, f64, f64, f64)> = Vec::new();
    for v3 in [false, true] {
        let version = if v3 { "v3 authPriv" } else { "v2c" };
        for outstanding in [1usize, 4, 16] {
            let mut cells: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); agents.len()];
            for _ in 0..rounds {
                for (k, (_, addr, _, _)) in agents.iter().enumerate() {
                    let usm = sessions.get(k).filter(|_| v3);
                    cells[k].push(get_load(*addr, usm, outstanding, secs));
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
                let usm = sessions.get(k).filter(|_| v3);
                cells[k].push((bulk_load(*addr, usm, table, 4, secs), 0.0, 0.0));
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

/// snmpd with `public` and the v3 user `bench`; with `pairs`, also one
/// user per protocol pair of [`PAIRS`] that net-snmp supports.
fn start_snmpd(dir: &std::path::Path, port: u16, pairs: bool) -> Child {
    let conf = dir.join("snmpd.conf");
    let mut text = format!(
        "rocommunity public 127.0.0.1\ncreateUser bench SHA-256 {AUTH} AES {PRIV}\nrouser bench priv\n"
    );
    for cred in PAIRS.iter().filter(|_| pairs).filter_map(|p| p.cred) {
        let Some(line) = snmpd_user(cred) else {
            continue;
        };
        text.push_str(&line);
    }
    std::fs::write(&conf, text).expect("snmpd.conf");
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

/// The `createUser` and `rouser` lines of a pair's user; `None` where
/// net-snmp has no such protocol (Reeder's AES key extension).
fn snmpd_user(cred: Cred) -> Option<String> {
    let auth = match cred.auth {
        AuthProtocol::Md5 => "MD5",
        AuthProtocol::Sha1 => "SHA",
        AuthProtocol::Sha224 => "SHA-224",
        AuthProtocol::Sha256 => "SHA-256",
        AuthProtocol::Sha384 => "SHA-384",
        AuthProtocol::Sha512 => "SHA-512",
    };
    let user = cred.user;
    Some(match cred.privacy {
        None => format!("createUser {user} {auth} {AUTH}\nrouser {user} auth\n"),
        Some(p) => {
            let privacy = match p {
                PrivProtocol::Des => "DES",
                PrivProtocol::Aes128 => "AES",
                PrivProtocol::Aes192 => "AES-192",
                PrivProtocol::Aes256 => "AES-256",
                PrivProtocol::Aes192Reeder | PrivProtocol::Aes256Reeder => return None,
            };
            format!("createUser {user} {auth} {AUTH} {privacy} {PRIV}\nrouser {user} priv\n")
        }
    })
}

fn start_halyard(port: u16, pairs: bool) -> Child {
    let extra: &[&str] = if pairs { &["--v3-pairs"] } else { &[] };
    start_self("--serve-halyard", port, extra)
}

fn start_self(mode: &str, port: u16, extra: &[&str]) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([mode, &port.to_string()])
        .args(extra)
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

/// The halyard agent's configuration: `public` and the v3 user `bench`;
/// with `pairs`, also one user per protocol pair of [`PAIRS`], in the
/// group whose minimum level is the pair's (authNoPriv or authPriv).
fn halyard_config(port: u16, pairs: bool) -> SnmpConfig {
    let user = |cred: Cred| UsmUser {
        name: cred.user.into(),
        auth: Some((cred.auth, AUTH.into())),
        privacy: cred.privacy.map(|p| (p, PRIV.into())),
        group: if cred.privacy.is_some() {
            "g"
        } else {
            "g-auth"
        }
        .into(),
    };
    let group = |name: &str, min_level| Group {
        name: name.into(),
        read_view: Some("all".into()),
        write_view: None,
        min_level,
        write_min_level: SecurityLevel::AuthPriv,
    };
    let mut users = vec![user(BENCH)];
    let mut groups = vec![group("g", SecurityLevel::AuthPriv)];
    if pairs {
        users.extend(PAIRS.iter().filter_map(|p| p.cred).map(user));
        groups.push(group("g-auth", SecurityLevel::AuthNoPriv));
    }
    SnmpConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        communities: vec![Community::read_only("public")],
        users,
        groups,
        ..SnmpConfig::default()
    }
}

/// The halyard agent alone in this process (so its RSS is its own).
fn serve_halyard(port: u16, pairs: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = halyard_config(port, pairs);
        let agent = SnmpAgent::bind(config, Arc::new(demo_element()))
            .await
            .expect("bind");
        println!("READY");
        agent.run(std::future::pending()).await.expect("run");
    });
}

static IDS: AtomicI32 = AtomicI32::new(1);

/// A v3 user as the client knows it: its name and protocols (the
/// passwords are [`AUTH`] and [`PRIV`]).
#[derive(Debug, Clone, Copy)]
struct Cred {
    user: &'static str,
    auth: AuthProtocol,
    privacy: Option<PrivProtocol>,
}

/// The default mode's user: SHA-256 and AES-128.
const BENCH: Cred = Cred {
    user: "bench",
    auth: AuthProtocol::Sha256,
    privacy: Some(PrivProtocol::Aes128),
};

/// A v3 USM session: discovered engine, the user's keys localised for it.
struct Usm {
    user: &'static str,
    engine_id: Vec<u8>,
    boots: u32,
    time: u32,
    auth: AuthProtocol,
    auth_key: Vec<u8>,
    privacy: Option<usm::PrivKey>,
    since: Instant,
}

impl Usm {
    /// Localises the user's keys for the engine (a 1 MiB hash per key:
    /// done once per agent and user, before any timing).
    fn new(cred: Cred, engine_id: Vec<u8>, boots: u32, time: u32) -> Usm {
        Usm {
            user: cred.user,
            auth: cred.auth,
            auth_key: usm::localized_key(cred.auth, AUTH, &engine_id),
            privacy: cred
                .privacy
                .map(|p| usm::PrivKey::new(cred.auth, p, PRIV, &engine_id)),
            boots,
            time,
            engine_id,
            since: Instant::now(),
        }
    }

    /// The authentication and privacy bits of msgFlags at the user's level.
    fn level_flags(&self) -> u8 {
        1 | u8::from(self.privacy.is_some()) << 1
    }
}

/// The engine discovery probe (RFC 3414 4): noAuthNoPriv, no engine ID,
/// no user, reportable.
fn probe() -> Vec<u8> {
    usm::build_message(&usm::Outgoing {
        msg_id: IDS.fetch_add(1, Ordering::Relaxed),
        max_size: 65_507,
        engine_id: &[],
        boots: 0,
        time: 0,
        user: b"",
        auth: None,
        privacy: None,
        salt: 0,
        reportable: true,
        scoped: scoped(&[], get_pdu(1, SYS_NAME)),
    })
    .expect("probe")
}

/// The engine ID, boots and time of the report that answers [`probe`].
fn engine_of(report: &[u8]) -> (Vec<u8>, u32, u32) {
    let m: v3::Message = rasn::ber::decode(report).expect("report");
    let p: v3::USMSecurityParameters = rasn::ber::decode(&m.security_parameters).expect("usm");
    (
        p.authoritative_engine_id.to_vec(),
        u32::try_from(&p.authoritative_engine_boots).unwrap_or(0),
        u32::try_from(&p.authoritative_engine_time).unwrap_or(0),
    )
}

/// Discovers the agent's engine and keys `cred` for it.
fn discover(addr: SocketAddr, cred: Cred) -> Arc<Usm> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let msg = probe();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..10 {
        sock.send(&msg).expect("send");
        if let Ok(n) = sock.recv(&mut buf) {
            let (id, boots, time) = engine_of(&buf[..n]);
            return Arc::new(Usm::new(cred, id, boots, time));
        }
    }
    panic!("{addr}: no engine discovery report");
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

/// Encodes a request; returns its bytes. For v3, `usm::build_message`
/// encrypts and authenticates it as the session's user's level asks.
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
            usm::build_message(&usm::Outgoing {
                msg_id: IDS.fetch_add(1, Ordering::Relaxed),
                max_size: 65_507,
                engine_id: &u.engine_id,
                boots: u.boots,
                time,
                user: u.user.as_bytes(),
                auth: Some((u.auth, &u.auth_key)),
                privacy: u.privacy.as_ref(),
                // Unique per message (DES takes its low half).
                salt: IDS.fetch_add(1, Ordering::Relaxed) as u64 | 1 << 40,
                reportable: true,
                scoped: scoped(&u.engine_id, pdu),
            })
            .expect("v3 request")
        }
    }
}

/// The variable bindings of a response with error-status 0, fully decoded
/// (and for v3 decrypted with the session's privacy key); anything else,
/// described, as the error.
fn response_bindings(usm: Option<&Usm>, bytes: &[u8]) -> Result<Vec<v2::VarBind>, String> {
    let pdus = match usm {
        None => {
            rasn::ber::decode::<v2c::Message<v2::Pdus>>(bytes)
                .map_err(|e| format!("not a v2c message: {e}"))?
                .data
        }
        Some(u) => {
            let m = rasn::ber::decode::<v3::Message>(bytes)
                .map_err(|e| format!("not a v3 message: {e}"))?;
            let p = rasn::ber::decode::<v3::USMSecurityParameters>(&m.security_parameters)
                .map_err(|e| format!("bad USM parameters: {e}"))?;
            match m.scoped_data {
                v3::ScopedPduData::EncryptedPdu(data) => {
                    let key = u
                        .privacy
                        .as_ref()
                        .ok_or("an encrypted answer to an authNoPriv request")?;
                    let boots = u32::try_from(&p.authoritative_engine_boots).unwrap_or(0);
                    let time = u32::try_from(&p.authoritative_engine_time).unwrap_or(0);
                    let plain = key
                        .decrypt(boots, time, &p.privacy_parameters, &data)
                        .ok_or("undecryptable (privacy parameters or length)")?;
                    rasn::ber::decode::<v3::ScopedPdu>(&plain)
                        .map_err(|e| format!("decrypted into no scoped PDU (wrong key?): {e}"))?
                        .data
                }
                v3::ScopedPduData::CleartextPdu(s) => s.data,
            }
        }
    };
    let names = |b: &[v2::VarBind]| {
        b.iter()
            .map(|vb| halyard_snmp::oid::format(&vb.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match pdus {
        v2::Pdus::Response(r) if r.0.error_status == 0 => Ok(r.0.variable_bindings),
        v2::Pdus::Response(r) => Err(format!("a Response with error-status {}", r.0.error_status)),
        v2::Pdus::Report(r) => Err(format!("a Report of {}", names(&r.0.variable_bindings))),
        _ => Err("a PDU other than a Response".into()),
    }
}

/// The number of variable bindings in a response (0 if it is none).
fn response_varbinds(usm: Option<&Usm>, bytes: &[u8]) -> usize {
    response_bindings(usm, bytes).map_or(0, |b| b.len())
}

/// Checks an answer in full and panics, saying why, unless it is what the
/// request asked for: a response that decodes (and decrypts) to
/// `fast` bindings; for v3 at the user's level with a digest that
/// verifies under the user's key; for a GET, sysName.0 with a value.
fn check_answer(
    usm: Option<&Usm>,
    bytes: &[u8],
    get: bool,
    fast: usize,
    addr: impl std::fmt::Display,
) {
    let who = match usm {
        None => format!("{addr} v2c"),
        Some(u) => format!("{addr} user {}", u.user),
    };
    let bindings = response_bindings(usm, bytes)
        .unwrap_or_else(|e| panic!("{who}: the answer is not a response: {e}"));
    assert_eq!(
        fast,
        bindings.len(),
        "{who}: fast count against full decode"
    );
    if let Some(u) = usm {
        let m: v3::Message = rasn::ber::decode(bytes).expect("v3 answer");
        let p: v3::USMSecurityParameters = rasn::ber::decode(&m.security_parameters).expect("usm");
        let flags = m.global_data.flags.first().copied().unwrap_or(0);
        assert_eq!(
            flags & 3,
            u.level_flags(),
            "{who}: answered at another security level"
        );
        assert!(
            usm::verify(u.auth, &u.auth_key, &p.authentication_parameters, bytes),
            "{who}: the answer's digest does not verify"
        );
    }
    if get {
        let ok = matches!(
            &bindings[..],
            [v2::VarBind { name, value: v2::VarBindValue::Value(_) }] if **name == *SYS_NAME
        );
        assert!(ok, "{who}: not a value of sysName.0: {bindings:?}");
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

/// The bindings of the Response in a scoped PDU (a v3 message's
/// plaintext), counted as [`count_in_response`] does.
fn count_in_scoped(b: &[u8]) -> usize {
    let Some((0x30, scoped)) = tlv(b, 0) else {
        return 0;
    };
    let Some((_, engine)) = tlv(b, scoped.start) else {
        return 0;
    };
    let Some((_, context)) = tlv(b, engine.end) else {
        return 0;
    };
    count_in_response(b, context.end)
}

/// What [`response_varbinds`] counts, without decoding the values: the
/// client's own cost stays small and is the same for both agents (the
/// first answer of every worker is also fully decoded, as a check). For
/// v3, an answer counts only at the session's security level and when it
/// decrypts, with the session's privacy key, into a Response.
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
            // msgID, msgMaxSize, msgFlags.
            let Some((_, id)) = tlv(b, header.start) else {
                return 0;
            };
            let Some((_, max_size)) = tlv(b, id.end) else {
                return 0;
            };
            let Some((0x04, flags)) = tlv(b, max_size.end) else {
                return 0;
            };
            if b.get(flags.start).map(|f| f & 3) != Some(u.level_flags()) {
                return 0;
            }
            let Some((0x04, params)) = tlv(b, header.end) else {
                return 0;
            };
            let Some(key) = &u.privacy else {
                return count_in_scoped(&b[params.end..]);
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
            let Some((0x04, data)) = tlv(b, params.end) else {
                return 0;
            };
            match key.decrypt(int(boots), int(time), &b[salt.clone()], &b[data]) {
                Some(plain) => count_in_scoped(&plain),
                None => 0,
            }
        }
    }
}

/// One worker: request, wait, repeat until the deadline. Returns the
/// latencies (us), the variable bindings received and the answers that
/// were not a response with them (not counted). A plain blocking
/// socket on its own thread: the cheapest client there is, so that what
/// it measures is the agents (an async client added its runtime's
/// wake-ups to every round trip, the same for both agents, which hid
/// part of the difference between them at one request outstanding).
/// The first answer is checked in full ([`check_answer`]): a run whose
/// answers are not real panics rather than measure anything.
fn worker(
    addr: SocketAddr,
    usm: Option<Arc<Usm>>,
    bulk: Option<&'static [u32]>,
    end: Instant,
) -> (Vec<f64>, usize, usize) {
    let usm = usm.as_deref();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = vec![0u8; 65_536];
    let mut lat = Vec::new();
    let mut varbinds = 0;
    let mut others = 0;
    let mut checked = false;
    while Instant::now() < end {
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let pdu = match bulk {
            Some(t) => bulk_pdu(id, t),
            None => get_pdu(id, SYS_NAME),
        };
        let msg = request(usm, pdu);
        let t = Instant::now();
        sock.send(&msg).expect("send");
        // A lost answer times out and is not counted.
        if let Ok(n) = sock.recv(&mut buf) {
            let k = response_varbinds_fast(usm, &buf[..n]);
            let took = t.elapsed();
            if !checked {
                check_answer(usm, &buf[..n], bulk.is_none(), k, addr);
                checked = true;
            }
            if k > 0 {
                lat.push(took.as_secs_f64() * 1e6);
                varbinds += k;
            } else {
                others += 1;
            }
        }
    }
    (lat, varbinds, others)
}

/// `outstanding` workers, one thread each, for `secs` seconds.
fn run_workers(
    addr: SocketAddr,
    usm: Option<&Arc<Usm>>,
    bulk: Option<&'static [u32]>,
    outstanding: usize,
    secs: u64,
) -> (Vec<f64>, usize, f64) {
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let threads: Vec<_> = (0..outstanding)
        .map(|_| {
            let usm = usm.cloned();
            std::thread::spawn(move || worker(addr, usm, bulk, end))
        })
        .collect();
    let mut lat = Vec::new();
    let mut varbinds = 0;
    let mut others = 0;
    for t in threads {
        let (l, v, o) = t.join().expect("worker");
        lat.extend(l);
        varbinds += v;
        others += o;
    }
    if others > 0 {
        eprintln!(
            "warning: {addr}: {others} answers were not a response with the bindings asked for (not counted)"
        );
    }
    (lat, varbinds, start.elapsed().as_secs_f64())
}

fn get_load(addr: SocketAddr, usm: Option<&Arc<Usm>>, outstanding: usize, secs: u64) -> Figures {
    let (lat, _, took) = run_workers(addr, usm, None, outstanding, secs);
    figures(lat, took)
}

/// Requests per second and p50/p99 of a cell's latencies.
fn figures(mut lat: Vec<f64>, took: f64) -> Figures {
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
    usm: Option<&Arc<Usm>>,
    table: &'static [u32],
    outstanding: usize,
    secs: u64,
) -> f64 {
    let (_, varbinds, took) = run_workers(addr, usm, Some(table), outstanding, secs);
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

/// A protocol pair of `--v3-pairs`; no user: v2c with `public`, the
/// baseline.
struct Pair {
    label: &'static str,
    cred: Option<Cred>,
}

const fn pair(
    label: &'static str,
    user: &'static str,
    auth: AuthProtocol,
    privacy: Option<PrivProtocol>,
) -> Pair {
    Pair {
        label,
        cred: Some(Cred {
            user,
            auth,
            privacy,
        }),
    }
}

/// The pairs measured by `--v3-pairs`, each with its own user on both
/// agents (snmpd: those [`snmpd_user`] can write; not Reeder's AES).
const PAIRS: &[Pair] = &[
    Pair {
        label: "v2c",
        cred: None,
    },
    pair("MD5/none", "md5-none", AuthProtocol::Md5, None),
    pair(
        "SHA-1/DES",
        "sha1-des",
        AuthProtocol::Sha1,
        Some(PrivProtocol::Des),
    ),
    pair(
        "SHA-1/AES-128",
        "sha1-aes128",
        AuthProtocol::Sha1,
        Some(PrivProtocol::Aes128),
    ),
    pair(
        "SHA-224/AES-128",
        "sha224-aes128",
        AuthProtocol::Sha224,
        Some(PrivProtocol::Aes128),
    ),
    pair(
        "SHA-256/AES-128",
        "sha256-aes128",
        AuthProtocol::Sha256,
        Some(PrivProtocol::Aes128),
    ),
    pair(
        "SHA-384/AES-192",
        "sha384-aes192",
        AuthProtocol::Sha384,
        Some(PrivProtocol::Aes192),
    ),
    pair(
        "SHA-512/AES-256",
        "sha512-aes256",
        AuthProtocol::Sha512,
        Some(PrivProtocol::Aes256),
    ),
    pair(
        "SHA-256/AES-256-R",
        "sha256-aes256r",
        AuthProtocol::Sha256,
        Some(PrivProtocol::Aes256Reeder),
    ),
];

/// One pair on one agent: its session and the rounds measured, per
/// number of requests outstanding.
struct Subject {
    addr: SocketAddr,
    /// The agent's process, for its CPU time.
    pid: u32,
    usm: Option<Arc<Usm>>,
    /// The client's CPU time per round trip (us): see [`client_cost`].
    client_us: f64,
    rounds: Vec<Vec<Cell>>,
}

const PAIR_OUTSTANDING: [usize; 2] = [1, 4];

/// Requests per second, p50 and p99 (us) of one cell.
type Figures = (f64, f64, f64);

/// One round of a pair on an agent: the figures and the agent's CPU time
/// per answer (us).
type Cell = (Figures, f64);

/// `--v3-pairs`: GET of sysName.0 per protocol pair, both agents, the
/// same client; the rounds alternate the agents and go through every
/// pair in turn, so that the v2c baseline and the pairs share the
/// machine's moods alike. Besides the latencies, each agent process's
/// own CPU time per answer (all its threads), which a busy machine does
/// not inflate the way it inflates a round trip.
fn v3_pairs(secs: u64, rounds: usize) {
    let dir = std::env::temp_dir().join(format!("halyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let snmpd_port = free_port();
    let halyard_port = free_port();
    let mut snmpd = start_snmpd(&dir, snmpd_port, true);
    let mut halyard = start_halyard(halyard_port, true);
    let agents = [
        (
            "snmpd",
            SocketAddr::from(([127, 0, 0, 1], snmpd_port)),
            snmpd.id(),
        ),
        (
            "halyard",
            SocketAddr::from(([127, 0, 0, 1], halyard_port)),
            halyard.id(),
        ),
    ];
    // Discovery and keys first, and one GET per pair and agent checked in
    // full (a user an agent refuses panics here, before any timing).
    let mut subjects: Vec<[Option<Subject>; 2]> = PAIRS
        .iter()
        .map(|p| {
            agents.map(|(name, addr, pid)| {
                let usm = match p.cred {
                    None => None,
                    Some(c) if name == "snmpd" && snmpd_user(c).is_none() => return None,
                    Some(c) => Some(discover(addr, c)),
                };
                let client_us = client_cost(addr, usm.as_ref());
                Some(Subject {
                    addr,
                    pid,
                    usm,
                    client_us,
                    rounds: vec![Vec::new(); PAIR_OUTSTANDING.len()],
                })
            })
        })
        .collect();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for pair in &mut subjects {
            for (j, outstanding) in PAIR_OUTSTANDING.into_iter().enumerate() {
                for s in pair.iter_mut().flatten() {
                    let cpu = process_cpu_ns(s.pid);
                    let (lat, _, took) =
                        run_workers(s.addr, s.usm.as_ref(), None, outstanding, secs);
                    let cpu = process_cpu_ns(s.pid).saturating_sub(cpu);
                    let per_answer = cpu as f64 / 1e3 / lat.len().max(1) as f64;
                    s.rounds[j].push((figures(lat, took), per_answer));
                }
            }
        }
    }
    println!(
        "SNMPv3 cost per protocol pair: GET sysName.0, {secs} s per cell, median of {rounds} alternating rounds, same client for both agents"
    );
    // The median round by throughput: [pair][outstanding][agent].
    let medians: Vec<Vec<[Option<Cell>; 2]>> = subjects
        .iter_mut()
        .map(|pair| {
            (0..PAIR_OUTSTANDING.len())
                .map(|j| {
                    pair.each_mut().map(|s| {
                        let r = &mut s.as_mut()?.rounds[j];
                        r.sort_by(|a, b| a.0.0.total_cmp(&b.0.0));
                        Some(r[r.len() / 2])
                    })
                })
                .collect()
        })
        .collect();
    for (j, outstanding) in PAIR_OUTSTANDING.into_iter().enumerate() {
        for (i, p) in PAIRS.iter().enumerate() {
            for (k, (name, _, _)) in agents.iter().enumerate() {
                let label = p.label;
                match (medians[i][j][k], &subjects[i][k]) {
                    (Some(((rate, p50, p99), cpu)), Some(s)) => println!(
                        "GET  {label:17} {outstanding} outstanding  {name:8} {rate:9.0} req/s  p50 {p50:7.1} us  p99 {p99:7.1} us  agent CPU {cpu:5.1} us/answer  (client {:.1} us)",
                        s.client_us
                    ),
                    _ => println!("GET  {label:17} {outstanding} outstanding  {name:8}       n/a"),
                }
            }
        }
    }
    println!(
        "per pair: halyard / snmpd, and the auth cost: each agent's p50 / CPU per answer minus its own for v2c; the client's CPU (the same code for both agents) is part of the p50"
    );
    let client_base = subjects[0][1].as_ref().map_or(0.0, |s| s.client_us);
    for (j, outstanding) in PAIR_OUTSTANDING.into_iter().enumerate() {
        for (i, p) in PAIRS.iter().enumerate() {
            let [s, h] = medians[i][j];
            let ratios = match (s, h) {
                (Some((s, _)), Some((h, _))) => {
                    format!("throughput x{:.2}  p50 x{:.2}", h.0 / s.0, h.1 / s.1)
                }
                _ => "throughput   n/a  p50   n/a".into(),
            };
            let cost = |k: usize| match (medians[i][j][k], medians[0][j][k]) {
                (Some((m, cpu)), Some((b, base_cpu))) => {
                    format!("{:+6.1} / {:+5.1} us", m.1 - b.1, cpu - base_cpu)
                }
                _ => "           n/a    ".into(),
            };
            let client = subjects[i][1]
                .as_ref()
                .map_or(0.0, |s| s.client_us - client_base);
            println!(
                "  {:17} {outstanding} outstanding  {ratios}  auth cost halyard {}  snmpd {}  (client {client:+.1} us)",
                p.label,
                cost(1),
                cost(0),
            );
        }
    }
    let _ = snmpd.kill();
    let _ = snmpd.wait();
    let _ = halyard.kill();
    let _ = halyard.wait();
    let _ = std::fs::remove_dir_all(dir);
    println!("halyard in process, CPU per GET (handle_datagram, no socket), and over v2c:");
    let cpu = halyard_cpu_per_pair();
    for (p, us) in PAIRS.iter().zip(&cpu) {
        println!("  {:17} {us:5.1} us  ({:+.1} us)", p.label, us - cpu[0]);
    }
}

/// CPU time (ns) of all the threads of a process so far.
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| {
            std::fs::read_to_string(t.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// halyard's own CPU time per GET (us) for each pair of [`PAIRS`], in this
/// thread and without sockets (`handle_datagram`, as `--cpu` does): the
/// agent's share of the auth cost, free of the round trip's noise.
fn halyard_cpu_per_pair() -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let agent = SnmpAgent::bind(halyard_config(0, true), Arc::new(demo_element()))
            .await
            .expect("bind");
        let report = agent.handle_datagram(&probe()).await.expect("report");
        let (id, boots, time) = engine_of(&report);
        let mut out = Vec::new();
        for p in PAIRS {
            let usm = p.cred.map(|c| Usm::new(c, id.clone(), boots, time));
            let msg = request(usm.as_ref(), get_pdu(7, SYS_NAME));
            let answer = agent.handle_datagram(&msg).await.expect("answer");
            let k = response_varbinds_fast(usm.as_ref(), &answer);
            check_answer(usm.as_ref(), &answer, true, k, "in process");
            // Long enough for the scheduler's ticks not to matter.
            let (t, start) = (cpu_ns(), Instant::now());
            let mut n = 0u32;
            while start.elapsed() < Duration::from_millis(300) {
                for _ in 0..100 {
                    std::hint::black_box(agent.handle_datagram(&msg).await);
                }
                n += 100;
            }
            out.push((cpu_ns() - t) as f64 / f64::from(n) / 1e3);
        }
        out
    })
}

/// The client's own CPU time per round trip (us), in this thread and
/// without the socket: encoding a GET (for v3 also encrypting and
/// authenticating it) and counting a real answer of the agent (for v3
/// also decrypting it). One answer is first fetched and checked in full.
fn client_cost(addr: SocketAddr, usm: Option<&Arc<Usm>>) -> f64 {
    let usm = usm.map(|u| &**u);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = vec![0u8; 65_536];
    let answer = (0..10)
        .find_map(|_| {
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            sock.send(&request(usm, get_pdu(id, SYS_NAME)))
                .expect("send");
            let n = sock.recv(&mut buf).ok()?;
            Some(buf[..n].to_vec())
        })
        .unwrap_or_else(|| panic!("{addr}: no answer"));
    let k = response_varbinds_fast(usm, &answer);
    check_answer(usm, &answer, true, k, addr);
    // The thread's CPU time is only brought up to date at the scheduler's
    // ticks: a loop of a few hundred milliseconds keeps that error small.
    let (t, start) = (cpu_ns(), Instant::now());
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(300) {
        for i in 0..100 {
            std::hint::black_box(request(usm, get_pdu(i, SYS_NAME)));
            std::hint::black_box(response_varbinds_fast(usm, &answer));
        }
        n += 100;
    }
    (cpu_ns() - t) as f64 / f64::from(n) / 1e3
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
        let agent = SnmpAgent::bind(halyard_config(0, false), Arc::new(demo_element()))
            .await
            .expect("bind");
        let report = agent.handle_datagram(&probe()).await.expect("report");
        let (id, boots, time) = engine_of(&report);
        let usm = Usm::new(BENCH, id, boots, time);
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
    let mut child = start_self(mode, port, &[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for outstanding in [1usize, 4, 16] {
        let mut rounds: Vec<_> = (0..3)
            .map(|_| get_load(addr, None, outstanding, 2))
            .collect();
        let (rate, p50, p99) = median(&mut rounds);
        println!(
            "GET  v2c {outstanding:2} outstanding  {name} {rate:9.0} req/s  p50 {p50:7.1} us  p99 {p99:7.1} us"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
