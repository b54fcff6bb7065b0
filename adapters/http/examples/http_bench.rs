//! Benchmark of the HTTP face (not a test):
//! `/metrics` scrape time and size for the demo element and for a large
//! in-memory element, and API object reads per second.
//!
//! `cargo run --release -p halyard-http --example http_bench [objects] [seconds]`
//! (defaults: 10000 objects, 5 seconds of reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use halyard_cluster_model::Value;
use halyard_cluster_model::memory::{MemoryModel, demo_element};
use halyard_cluster_model::port::InformationModel;
use halyard_http::{HttpConfig, HttpServer, Limits};

/// An element with `n` objects: nodes under the element, each with 99
/// software components (and the element itself).
fn large_element(n: usize) -> MemoryModel {
    let m = MemoryModel::new();
    m.insert(
        "NetworkElement",
        "ne=1",
        &[("Vendor", Value::Str("Halyard".into()))],
    )
    .unwrap();
    let mut count = 1;
    let mut node = 0;
    while count < n {
        node += 1;
        let nn = format!("ne=1/node=n{node}");
        m.insert("Node", &nn, &[("Address", Value::Str("10.0.0.1".into()))])
            .unwrap();
        count += 1;
        for c in 0..99 {
            if count >= n {
                break;
            }
            m.insert(
                "SoftwareComponent",
                &format!("{nn}/comp=c{c}"),
                &[
                    ("AvailabilityState", Value::Enum(1 + (c % 4) as u32)),
                    ("Restarts", Value::U64(c as u64)),
                    ("Availability", Value::Real(0.999)),
                    ("Pid", Value::U32(1000 + c as u32)),
                ],
            )
            .unwrap();
            count += 1;
        }
    }
    m
}

async fn serve(model: Arc<dyn InformationModel>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = HttpConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        allow_anonymous_read: true,
        limits: Limits {
            requests_per_second: 1_000_000,
            burst: 1_000_000,
            ..Limits::default()
        },
        ..HttpConfig::default()
    };
    let server = HttpServer::bind(config, model).unwrap();
    let base = format!("http://{}", server.local_addrs()[0]);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    (base, tx)
}

/// CPU time of this thread in milliseconds (Linux), which load from
/// other processes on the machine does not inflate the way it does wall time.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn scrape_bench(label: &str, model: Arc<dyn InformationModel>, rounds: usize) {
    let objects = model.walk(None, 0, usize::MAX).await.unwrap().len();
    // The two halves of a scrape, in process: reading the model, encoding.
    let (mut read, mut enc, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    let registry = halyard_http::Registry::default();
    for _ in 0..rounds {
        let t = Instant::now();
        let snap = halyard_http::metrics::snapshot(model.as_ref(), 512, Duration::from_secs(10))
            .await
            .unwrap();
        read.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let c = thread_cpu_ms();
        let text = halyard_http::metrics::encode(
            &registry,
            snap,
            halyard_http::metrics::Exposition::OpenMetrics,
        )
        .unwrap();
        enc.push(t.elapsed().as_secs_f64() * 1000.0);
        cpu.push(thread_cpu_ms() - c);
        assert!(text.ends_with("# EOF\n"));
    }
    println!(
        "scrape {label:>6} in process: read model p50 {:7.2} ms, encode p50 {:7.2} ms wall, {:7.2} ms CPU",
        pct(&mut read, 0.5),
        pct(&mut enc, 0.5),
        pct(&mut cpu, 0.5)
    );
    let (base, _stop) = serve(model).await;
    let client = reqwest::Client::new();
    for (fmt, accept) in [
        ("openmetrics", "application/openmetrics-text;version=1.0.0"),
        ("text 0.0.4", "text/plain"),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        let mut series = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let body = client
                .get(format!("{base}/metrics"))
                .header("Accept", accept)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
            series = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
                .count();
        }
        println!(
            "scrape {label:>6} ({objects:>5} objects, {fmt:<11}): p50 {:7.2} ms  p90 {:7.2} ms  max {:7.2} ms  size {:>9} bytes  {series} series",
            pct(&mut times.clone(), 0.5),
            pct(&mut times.clone(), 0.9),
            pct(&mut times, 1.0),
            size
        );
    }
}

async fn read_bench(seconds: u64) {
    let model: Arc<dyn InformationModel> = Arc::new(demo_element());
    let names: Vec<String> = model
        .walk(None, 0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name.to_string())
        .collect();
    let (base, _stop) = serve(model).await;
    for (fmt, accept) in [("xml", "application/xml"), ("json", "application/json")] {
        for clients in [1usize, 8] {
            let done = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (base, names, done) = (base.clone(), names.clone(), done.clone());
                tasks.push(tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut i = c;
                    while Instant::now() < deadline {
                        let r = client
                            .get(format!("{base}/api/v1/objects/{}", names[i % names.len()]))
                            .header("Accept", accept)
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            println!(
                "object reads ({fmt:<4}, {clients} clients, keep-alive): {:>8.0} per second",
                done.load(Ordering::Relaxed) as f64 / seconds as f64
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let secs: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "halyard-http bench ({} build, {} CPUs)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    scrape_bench("demo", Arc::new(demo_element()), 50).await;
    scrape_bench("large", Arc::new(large_element(n)), 20).await;
    read_bench(secs).await;
}
