//! NETCONF benchmark with a Rust client (russh), so no client-side polling
//! tick distorts the figures (ncclient's transport polls every 100 ms).
//!
//! Starts the server in-process over the demo element plus `--demo-scale N`
//! extra configuration items (nodes), then measures:
//! - `<get>` of the full operational tree: latency and MB/s;
//! - edit-config (candidate) + commit pairs per second.
//!
//! `cargo run --release -p halyard-netconf --example netconf_bench -- --demo-scale 10000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use halyard_cluster_model::memory::demo_element;
use halyard_cluster_model::model::{AccessAction, AdminState};
use halyard_cluster_model::port::InformationModel;
use halyard_cluster_model::{SchemaEnum, Value};
use halyard_netconf::framing::{FrameReader, Framing, encode};
use halyard_netconf::{NetconfConfig, NetconfServer, UserConfig};
use russh::client;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

type Stream = russh::ChannelStream<client::Msg>;

struct Client {
    reader: FrameReader<ReadHalf<Stream>>,
    writer: WriteHalf<Stream>,
    next_id: u64,
}

impl Client {
    async fn connect(port: u16) -> Client {
        let config = Arc::new(client::Config::default());
        let mut h = client::connect(config, ("127.0.0.1", port), Trusting)
            .await
            .expect("ssh connect");
        let auth = h
            .authenticate_password("bench", "bench-pw")
            .await
            .expect("auth");
        assert!(auth.success(), "authentication failed");
        let ch = h.channel_open_session().await.expect("session");
        ch.request_subsystem(true, "netconf")
            .await
            .expect("subsystem");
        let (rd, mut wr) = tokio::io::split(ch.into_stream());
        // Keep the connection alive for the client's lifetime.
        std::mem::forget(h);
        let mut reader = FrameReader::new(rd, 1 << 30);
        let hello = r#"<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>"#;
        wr.write_all(&encode(hello, Framing::EndOfMessage))
            .await
            .unwrap();
        let server_hello = reader.read_message().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&server_hello).contains("base:1.1"));
        reader.framing = Framing::Chunked;
        Client {
            reader,
            writer: wr,
            next_id: 1,
        }
    }

    async fn rpc(&mut self, body: &str) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = format!(
            r#"<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="{id}">{body}</rpc>"#
        );
        self.writer
            .write_all(&encode(&msg, Framing::Chunked))
            .await
            .unwrap();
        let reply = self.reader.read_message().await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&reply).contains("<rpc-error>"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        reply
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = arg("--demo-scale", 0);
    let gets = arg("--gets", 10);
    let edits = arg("--edits", 200);
    let model = demo_element();
    let unlocked = Value::Enum(AdminState::Unlocked.value());
    for i in 0..scale {
        model
            .insert(
                "Node",
                &format!("ne=1/shelf=1/node=n{i}"),
                &[("AdminState", unlocked.clone())],
            )
            .expect("scaled node");
    }
    let objects = model.len();
    let dir = std::env::temp_dir().join(format!("halyard-netconf-bench-{}", std::process::id()));
    let mut config = NetconfConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("host_key"));
    config.users.push(UserConfig {
        name: "bench".into(),
        password: Some("bench-pw".into()),
        authorized_keys: Vec::new(),
        access: Default::default(),
    });
    let shared_model = Arc::new(model);
    let server = NetconfServer::bind(config, shared_model.clone() as Arc<dyn InformationModel>)
        .await
        .expect("bind");
    let port = server.local_addrs()[0].port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let mut c = Client::connect(port).await;
    // Warm up.
    c.rpc("<get/>").await;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..gets {
        bytes += c.rpc("<get/>").await.len();
    }
    let el = t.elapsed();
    let per = el / gets as u32;
    println!(
        "objects={objects} get: {gets} x {:.1} KiB, {:.2} ms each, {:.1} MB/s",
        bytes as f64 / gets as f64 / 1024.0,
        per.as_secs_f64() * 1e3,
        bytes as f64 / el.as_secs_f64() / 1e6
    );

    // The same <get> checked against the access rules: a rule list of the
    // user's group denying one leaf of every node, so every object is
    // checked and masked (the worst case; with no rule that denies a read
    // the check is skipped).
    let deny = Value::Enum(AccessAction::Deny.value());
    type Object<'a> = (&'a str, &'a str, Vec<(&'a str, Value)>);
    let rules: [Object; 3] = [
        (
            "AccessGroup",
            "ne=1/accessgroup=bench",
            vec![("Users", Value::Str("bench".into()))],
        ),
        (
            "AccessRuleList",
            "ne=1/rulelist=bench",
            vec![("Groups", Value::Str("bench".into()))],
        ),
        (
            "AccessRule",
            "ne=1/rulelist=bench/rule=no-labels",
            vec![
                (
                    "Path",
                    Value::Str("/halyard-cluster:element/node/label".into()),
                ),
                ("Operations", Value::Str("read".into())),
                ("Action", deny),
            ],
        ),
    ];
    for (class, name, values) in &rules {
        let values: Vec<(&str, Value)> = values.clone();
        shared_model
            .insert(class, name, &values)
            .expect("access objects");
    }
    // The face reads the rules again after 250 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.rpc("<get/>").await;
    let t = Instant::now();
    let mut checked_bytes = 0;
    for _ in 0..gets {
        checked_bytes += c.rpc("<get/>").await.len();
    }
    let checked = t.elapsed() / gets as u32;
    println!(
        "objects={objects} get checked by the access rules: {:.1} KiB, {:.2} ms each = {:.2} x unchecked",
        checked_bytes as f64 / gets as f64 / 1024.0,
        checked.as_secs_f64() * 1e3,
        checked.as_secs_f64() / per.as_secs_f64()
    );
    for (_, name, _) in rules.iter().rev() {
        shared_model
            .transact(halyard_cluster_model::port::Transaction {
                principal: halyard_cluster_model::port::Principal::new(
                    "bench",
                    halyard_cluster_model::model::Protocol::Internal,
                ),
                changes: vec![halyard_cluster_model::port::Change::Delete {
                    object: halyard_cluster_model::ObjectName::parse(name).unwrap(),
                }],
            })
            .await
            .expect("access objects removed");
    }

    let config_items = scale.max(2);
    let t = Instant::now();
    for i in 0..edits {
        let name = if scale > 0 {
            format!("ne=1/shelf=1/node=n{}", i % config_items)
        } else {
            format!(
                "ne=1/shelf=1/node={}",
                if i.is_multiple_of(2) { "a" } else { "b" }
            )
        };
        let state = if (i / config_items).is_multiple_of(2) {
            "locked"
        } else {
            "unlocked"
        };
        c.rpc(&format!(
            r#"<edit-config><target><candidate/></target><config><element xmlns="urn:halyard:params:xml:ns:yang:halyard-cluster"><node><name>{name}</name><admin-state>{state}</admin-state></node></element></config></edit-config>"#
        ))
        .await;
        c.rpc("<commit/>").await;
    }
    let el = t.elapsed();
    println!(
        "objects={objects} edit-config+commit: {edits} pairs in {:.2} s = {:.0} pairs/s ({:.2} ms per pair)",
        el.as_secs_f64(),
        edits as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1e3 / edits as f64
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    let _ = std::fs::remove_dir_all(&dir);
}
