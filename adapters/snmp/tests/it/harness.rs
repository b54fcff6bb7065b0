//! Starting the agent and running net-snmp commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use halyard_cluster_model::memory::{MemoryModel, demo_element};
use halyard_cluster_model::port::InformationModel;
use halyard_snmp::engine::Engine;
use halyard_snmp::{
    AuthProtocol, Community, Group, PrivProtocol, SecurityLevel, SnmpAgent, SnmpConfig, UsmUser,
    View,
};

pub const AUTH_PASS: &str = "authpass-2026";
pub const PRIV_PASS: &str = "privpass-2026";

/// A running agent; stopped (and every task ended) on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub model: Arc<MemoryModel>,
    pub engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "halyard-snmp-it-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The default test configuration: read-only `public`, a read-write v3
/// user `admin` (SHA-256 / AES), a read-only `reader` (SHA-1 / AES) and an
/// authNoPriv `auther` (SHA-512).
pub fn config(dir: &std::path::Path) -> SnmpConfig {
    SnmpConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        communities: vec![Community::read_only("public")],
        users: vec![
            UsmUser {
                name: "admin".into(),
                auth: Some((AuthProtocol::Sha256, AUTH_PASS.into())),
                privacy: Some((PrivProtocol::Aes128, PRIV_PASS.into())),
                group: "operators".into(),
            },
            UsmUser {
                name: "reader".into(),
                auth: Some((AuthProtocol::Sha1, AUTH_PASS.into())),
                privacy: Some((PrivProtocol::Aes128, PRIV_PASS.into())),
                group: "observers".into(),
            },
            UsmUser {
                name: "limited".into(),
                auth: Some((AuthProtocol::Sha256, AUTH_PASS.into())),
                privacy: Some((PrivProtocol::Aes128, PRIV_PASS.into())),
                group: "system-only".into(),
            },
            UsmUser {
                name: "auther".into(),
                auth: Some((AuthProtocol::Sha512, AUTH_PASS.into())),
                privacy: None,
                group: "observers".into(),
            },
        ],
        groups: vec![
            Group {
                name: "operators".into(),
                read_view: Some("all".into()),
                write_view: Some("all".into()),
                min_level: SecurityLevel::AuthPriv,
                write_min_level: SecurityLevel::AuthPriv,
            },
            Group {
                name: "observers".into(),
                read_view: Some("all".into()),
                write_view: None,
                min_level: SecurityLevel::AuthNoPriv,
                write_min_level: SecurityLevel::AuthNoPriv,
            },
            Group {
                name: "system-only".into(),
                read_view: Some("system".into()),
                write_view: Some("system".into()),
                min_level: SecurityLevel::AuthPriv,
                write_min_level: SecurityLevel::AuthPriv,
            },
        ],
        views: [(
            "system".to_string(),
            View {
                included: vec![vec![1, 3, 6, 1, 2, 1, 1]],
                excluded: vec![vec![1, 3, 6, 1, 2, 1, 1, 4]],
            },
        )]
        .into(),
        engine_state: Some(dir.join("snmp-engine")),
        sys_name: "halyard-demo".into(),
        sys_location: Some("lab rack 1".into()),
        sys_contact: Some("ops@example.org".into()),
        ..SnmpConfig::default()
    }
}

pub fn start() -> Running {
    start_with(|c| c)
}

pub fn start_with(adjust: impl FnOnce(SnmpConfig) -> SnmpConfig) -> Running {
    let model = Arc::new(demo_element());
    start_model(model.clone(), model, adjust)
}

pub fn start_model(
    model: Arc<MemoryModel>,
    port: Arc<dyn InformationModel>,
    adjust: impl FnOnce(SnmpConfig) -> SnmpConfig,
) -> Running {
    let dir = temp_dir("agent");
    let cfg = adjust(config(&dir));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let agent = SnmpAgent::bind(cfg, port).await.expect("bind");
            ready_tx
                .send((agent.local_addrs()[0], agent.engine()))
                .expect("ready");
            agent
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("run");
        });
    });
    let (addr, engine) = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("agent started");
    Running {
        addr,
        model,
        engine,
        stop: Some(tx),
        thread: Some(thread),
        dir,
    }
}

pub fn repo_mib_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../mib").to_string()
}

pub fn base_mibs() -> String {
    std::env::var("HALYARD_BASE_MIBS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/halyard-npm/node_modules/net-snmp/lib/mibs",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// `-M` and `-m` arguments that load HALYARD-CLUSTER-MIB.
pub fn mib_args() -> Vec<String> {
    vec![
        "-M".into(),
        format!("+{}:{}", repo_mib_dir(), base_mibs()),
        "-m".into(),
        "+HALYARD-CLUSTER-MIB".into(),
    ]
}

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={} stdout:\n{}\nstderr:\n{}",
            self.ok,
            self.stdout.lines().take(60).collect::<Vec<_>>().join("\n"),
            self.stderr
        )
    }
}

/// Runs a net-snmp tool with an isolated persistent directory.
pub fn tool(bin: &str, args: &[String]) -> Out {
    let persist = temp_dir("persist");
    // Load no MIB unless asked (-m), as Debian's /etc/snmp/snmp.conf does.
    std::fs::write(persist.join("snmp.conf"), "mibs :\n").expect("snmp.conf");
    let o: Output = Command::new(bin)
        .args(args)
        .env("SNMP_PERSISTENT_DIR", &persist)
        .env("SNMPCONFPATH", &persist)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let _ = std::fs::remove_dir_all(&persist);
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// net-snmp's snmptable over v2c `public`, with the standard MIB texts
/// in `mib/standard` and `modules` loaded, `|` between columns; `extra`
/// options before the table's name. Its output; fails the test if it fails.
pub fn snmptable(addr: SocketAddr, modules: &str, extra: &[&str], table: &str) -> String {
    let mut args = v2c("public", addr);
    args.extend(s(&[
        "-M",
        &format!("+{}/standard", repo_mib_dir()),
        "-m",
        &format!("+{modules}"),
        "-Cf",
        "|",
    ]));
    args.extend(s(extra));
    args.push(table.to_string());
    let t = tool("snmptable", &args);
    assert!(t.ok, "{t:?}");
    t.stdout
}

pub fn v2c(community: &str, addr: SocketAddr) -> Vec<String> {
    s(&[
        "-v2c",
        "-c",
        community,
        "-t",
        "5",
        "-r",
        "1",
        &addr.to_string(),
    ])
}

pub fn v3(user: &str, level: &str, addr: SocketAddr) -> Vec<String> {
    let mut a = s(&["-v3", "-l", level, "-u", user, "-t", "5", "-r", "1"]);
    let auth = match user {
        "admin" | "limited" => "SHA-256",
        "reader" => "SHA",
        _ => "SHA-512",
    };
    a.extend(s(&["-a", auth, "-A", AUTH_PASS]));
    if level == "authPriv" {
        a.extend(s(&["-x", "AES", "-X", PRIV_PASS]));
    }
    a.push(addr.to_string());
    a
}

pub fn cat(a: Vec<String>, b: &[&str]) -> Vec<String> {
    let mut a = a;
    a.extend(s(b));
    a
}

/// Parses `-On` output: (oid, rest of line).
pub fn numeric_lines(out: &str) -> Vec<(Vec<u32>, String)> {
    out.lines()
        .filter_map(|l| {
            let (o, v) = l.split_once(" = ")?;
            if v.starts_with("No more variables left") {
                return None;
            }
            let oid = halyard_snmp::oid::parse(o.trim())?;
            Some((oid, v.to_string()))
        })
        .collect()
}

pub use halyard_test_ports::free_port as free_udp_port;
