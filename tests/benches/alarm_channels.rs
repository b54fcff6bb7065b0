//! Fault-to-alarm latency on every channel (release build).
//!
//!     cargo bench -p halyard-tests --bench alarm_channels -- [faults]
//!
//! The demo element runs with a trap target on a loopback UDP port. Four
//! listeners wait for each alarm: the ALARM-MIB `alarmActiveState` trap
//! (a UDP socket here: the datagram carries the notification's OID), the
//! ietf-alarms `alarm-notification` (ncclient's create-subscription, a
//! Python process printing each arrival's wall-clock time), the HTTP
//! server-sent event of `/api/v1/alarms/events`, and `/metrics` (polled
//! every 5 ms until `halyard_alarms_active` counts it). Each fault is
//! injected over HTTP and repaired once every channel saw it; the faults
//! go round the shelf's fans and power supplies (fan-stall, crash) so that
//! no resource raises more than three alarms a minute (the agent damps a
//! flapping alarm). Printed per channel: p50, p99 and the largest time
//! from the injection request's start to the alarm's arrival.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use halyard_tests::{free_port, halyard, wait_until, workspace};

/// ALARM-MIB alarmActiveState (1.3.6.1.2.1.118.0.2), BER-encoded.
const ACTIVE_STATE_OID: &[u8] = &[0x06, 0x08, 0x2b, 6, 1, 2, 1, 0x76, 0, 2];

const CHANNELS: [&str; 4] = [
    "ALARM-MIB trap",
    "ietf-alarms notification",
    "SSE event",
    "/metrics",
];

/// (resource, fault) in turn: five resources, one alarm each per round.
const FAULTS: [(&str, &str); 5] = [
    ("ne=1/shelf=1/fan=1", "fan-stall"),
    ("ne=1/shelf=1/psu=1", "crash"),
    ("ne=1/shelf=1/fan=2", "fan-stall"),
    ("ne=1/shelf=1/psu=2", "crash"),
    ("ne=1/shelf=1/hsc=1", "crash"),
];

const SUBSCRIBER: &str = r#"
import sys, time
from ncclient import manager
host, port = sys.argv[1].rsplit(":", 1)
m = manager.connect(host=host, port=int(port), username="operator", password="halyard-demo",
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
AL = "urn:ietf:params:xml:ns:yang:ietf-alarms"
m.create_subscription(filter=("subtree", '<alarm-notification xmlns="%s"/>' % AL))
print("subscribed", flush=True)
while True:
    n = m.take_notification(timeout=3600)
    if n is None:
        continue
    t = time.time()
    x = n.notification_xml
    name = x.split("[hc:name='", 1)[-1].split("'", 1)[0]
    cleared = "<perceived-severity>cleared</perceived-severity>" in x
    print("%.6f %s %s" % (t, name, "cleared" if cleared else "raised"), flush=True)
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An arrival: the channel, the resource (empty when the channel does not
/// say), and when.
type Arrival = (usize, String, f64);

fn http_request(http: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Basic b3BlcmF0b3I6aGFseWFyZC1kZW1v\r\n\
         Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

fn active_alarms(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("halyard_alarms_active{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let faults: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let trap_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let trap_port = trap_socket.local_addr().unwrap().port();
    let (snmp, http, netconf) = (free_port(), free_port(), free_port());
    let demo = std::fs::read_to_string(workspace().join("examples/demo.toml")).unwrap();
    let config = demo
        .replace("127.0.0.1:1161", &format!("127.0.0.1:{snmp}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:8830", &format!("127.0.0.1:{netconf}"))
        .replacen(
            "\n[netconf]\n",
            &format!(
                "\ntraps = [{{ target = \"127.0.0.1:{trap_port}\", community = \"public\" }}]\n\n[netconf]\n"
            ),
            1,
        );
    let config_path = dir.path().join("bench.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent: Child = Command::new(halyard(true))
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("halyard");
    let http = format!("127.0.0.1:{http}");
    wait_until("the agent's HTTP face", 60, || {
        TcpStream::connect(&http).is_ok() && http_request(&http, "GET", "/metrics", None).0 == 200
    });

    let (tx, rx) = mpsc::channel::<Arrival>();
    // The trap receiver.
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            while let Ok(n) = trap_socket.recv(&mut buf) {
                let t = now();
                if buf[..n]
                    .windows(ACTIVE_STATE_OID.len())
                    .any(|w| w == ACTIVE_STATE_OID)
                {
                    // The resource is in the varbinds as an OID; the
                    // order of arrival says which fault it is.
                    let _ = tx.send((0, String::new(), t));
                }
            }
        });
    }
    // The NETCONF subscriber.
    let script = dir.path().join("subscriber.py");
    std::fs::write(&script, SUBSCRIBER).unwrap();
    let mut sub = Command::new("python3")
        .arg(&script)
        .arg(format!("127.0.0.1:{netconf}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with ncclient");
    let mut sub_out = BufReader::new(sub.stdout.take().unwrap());
    let mut line = String::new();
    sub_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "subscribed", "{line}");
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in sub_out.lines().map_while(Result::ok) {
                let f: Vec<&str> = l.split(' ').collect();
                if f.len() == 3 && f[2] == "raised" {
                    let _ = tx.send((1, f[1].to_string(), f[0].parse().unwrap_or(0.0)));
                }
            }
        });
    }
    // The SSE stream.
    {
        let tx = tx.clone();
        let http = http.clone();
        let mut s = TcpStream::connect(&http).unwrap();
        write!(
            s,
            "GET /api/v1/alarms/events HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\n\
             Authorization: Basic b3BlcmF0b3I6aGFseWFyZC1kZW1v\r\n\r\n"
        )
        .unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(s).lines().map_while(Result::ok) {
                let t = now();
                if l.starts_with("data:")
                    && l.contains("AlarmRaised")
                    && let Some(r) = FAULTS.iter().find(|(r, _)| l.contains(&format!("\"{r}\"")))
                {
                    let _ = tx.send((2, r.0.to_string(), t));
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    let base = active_alarms(&http_request(&http, "GET", "/metrics", None).1);

    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); CHANNELS.len()];
    let mut missed = [0usize; 4];
    let round = Instant::now();
    for k in 0..faults {
        let (resource, fault) = FAULTS[k % FAULTS.len()];
        // At most three alarms per resource a minute.
        let earliest = Duration::from_secs_f64(21.0 * (k / FAULTS.len()) as f64);
        if let Some(wait) = earliest.checked_sub(round.elapsed()) {
            std::thread::sleep(wait);
        }
        while rx.try_recv().is_ok() {}
        let t0 = now();
        let (code, body) = http_request(
            &http,
            "POST",
            &format!("/api/v1/objects/{resource}/operations/inject-fault"),
            Some(&format!("{{\"fault\":\"{fault}\"}}")),
        );
        assert!((200..300).contains(&code), "{body}");
        let mut seen: [Option<f64>; 4] = [None; 4];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && seen.iter().any(Option::is_none) {
            if seen[3].is_none() {
                let m = http_request(&http, "GET", "/metrics", None).1;
                if active_alarms(&m) > base {
                    seen[3] = Some(now());
                }
            }
            while let Ok((ch, r, t)) = rx.try_recv() {
                if seen[ch].is_none() && (r.is_empty() || r == resource) {
                    seen[ch] = Some(t);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (ch, s) in seen.iter().enumerate() {
            match s {
                Some(t) => latencies[ch].push((t - t0) * 1000.0),
                None => missed[ch] += 1,
            }
        }
        let (code, body) = http_request(
            &http,
            "POST",
            &format!("/api/v1/objects/{resource}/operations/inject-fault"),
            Some("{\"fault\":\"repair\"}"),
        );
        assert!((200..300).contains(&code), "{body}");
        wait_until("the alarm to clear", 30, || {
            active_alarms(&http_request(&http, "GET", "/metrics", None).1) <= base
        });
    }
    let _ = sub.kill();
    let _ = sub.wait();
    let _ = agent.kill();
    let _ = agent.wait();

    println!("fault-to-alarm latency, {faults} faults (ms from the injection request):");
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>7}",
        "channel", "p50", "p99", "max", "missed"
    );
    for (ch, name) in CHANNELS.iter().enumerate() {
        let mut v = latencies[ch].clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            println!(
                "{name:<26} {:>8} {:>8} {:>8} {:>7}",
                "-", "-", "-", missed[ch]
            );
            continue;
        }
        println!(
            "{name:<26} {:>8.1} {:>8.1} {:>8.1} {:>7}",
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v[v.len() - 1],
            missed[ch]
        );
    }
}
