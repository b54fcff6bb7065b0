//! `/metrics`: promtool's lint, the OpenMetrics exposition, and a real
//! Prometheus server scraping the face on loopback.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{Harness, client, eventually, free_port, temp_dir};

async fn scrape(h: &Harness, accept: Option<&str>) -> (String, String) {
    let mut req = client().get(h.url("/metrics"));
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_reports_nothing() {
    let h = Harness::start().await;
    // Some traffic, so the request counter and histogram have series.
    for p in [
        "/api/v1/tree",
        "/api/v1/objects/ne=1/nope=1",
        "/api/v1/alarms",
    ] {
        client().get(h.url(p)).send().await.unwrap();
    }
    let (ct, text) = scrape(&h, None).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool:\n{report}\n{text}"
    );
    // What the families look like.
    for line in [
        "halyard_component_availability_state{name=\"ne=1/shelf=1/node=a/comp=counterd-a\",class=\"SoftwareComponent\",state=\"primary\"} 1",
        "halyard_component_availability_state{name=\"ne=1/shelf=1/node=a/comp=counterd-a\",class=\"SoftwareComponent\",state=\"secondary\"} 0",
        "halyard_component_admin_state{name=\"ne=1/shelf=1/fan=1\",class=\"Fan\",state=\"unlocked\"} 1",
        "halyard_fan_speed_rpm{name=\"ne=1/shelf=1/fan=2\",class=\"Fan\"} 4150",
        "halyard_component_restarts_total{name=\"ne=1/shelf=1/psu=1\",class=\"PowerSupply\"} 0",
        "halyard_hardware_fru_present{name=\"ne=1/shelf=1/hsc=1\",class=\"HotSwapController\"} 1",
        "# TYPE halyard_http_requests_total counter",
        "# TYPE halyard_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    // Base units: millivolts are exposed as volts.
    assert!(
        text.contains("halyard_power_supply_input_voltage_volts{"),
        "{text}"
    );
    assert!(!text.contains("_total_total") && !text.contains("millivolts"));
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_when_asked() {
    let h = Harness::start().await;
    let (ct, text) = scrape(
        &h,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(
        text.contains("# TYPE halyard_component_restarts counter"),
        "{text}"
    );
    assert!(
        text.contains(
            "halyard_component_restarts_total{name=\"ne=1/shelf=1/fan=1\",class=\"Fan\"} 0"
        )
    );
    // A scrape shows the model as of at most a second ago: a change
    // shows within about that.
    let (_, before) = scrape(&h, None).await;
    assert!(!before.contains("ne=1/alarm=1"), "{before}");
    h.model
        .raise_alarm("ne=1/shelf=1/fan=1", "critical", "stalled")
        .await;
    let after = scrape_until(&h, |t| t.contains("ne=1/alarm=1")).await;
    assert!(
        after.contains(
            "halyard_alarm_severity{name=\"ne=1/alarm=1\",class=\"Alarm\",state=\"critical\"} 1"
        ),
        "{after}"
    );
    assert!(
        after.contains("halyard_alarms_active{severity=\"critical\"} 1"),
        "{after}"
    );
    assert!(
        after.contains("halyard_alarms_unacknowledged{severity=\"critical\"} 1"),
        "{after}"
    );
    assert!(
        after.contains("halyard_alarms_active{severity=\"major\"} 0"),
        "{after}"
    );
    assert!(
        before.contains("halyard_alarms_active{severity=\"critical\"} 0"),
        "{before}"
    );
    // Shelved (ietf-alarms shelving), it is out of the alarm list: no
    // alert is to fire on it.
    h.model
        .inner
        .update(
            &halyard_cluster_model::ObjectName::parse("ne=1/alarm=1").unwrap(),
            &[(
                "Shelf",
                halyard_cluster_model::Value::Str("ne=1/alarmshelf=work".into()),
            )],
        )
        .unwrap();
    let shelved = scrape_until(&h, |t| {
        t.contains("halyard_alarms_active{severity=\"critical\"} 0")
    })
    .await;
    assert!(
        shelved.contains("halyard_alarms_active{severity=\"critical\"} 0"),
        "{shelved}"
    );
}

/// Scrapes until the exposition `shows` a change made just before: it
/// follows the model within about a second (the kept exposition is
/// refreshed every half second while someone scrapes, and a scrape
/// refreshes one older than a second). Asserts it took less than 5 s
/// (generous for a loaded machine).
async fn scrape_until(h: &Harness, shows: impl Fn(&str) -> bool) -> String {
    let changed = std::time::Instant::now();
    loop {
        let (_, text) = scrape(h, None).await;
        if shows(&text) || changed.elapsed() > Duration::from_secs(10) {
            assert!(
                changed.elapsed() < Duration::from_secs(5),
                "the change showed after {:?}",
                changed.elapsed()
            );
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_component_states() {
    let h = Harness::start().await;
    let dir = temp_dir("prometheus");
    let port = free_port();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: halyard\n    static_configs:\n      - targets: ['{}']\n",
        h.addr
    );
    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian package) is installed");
    let q = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=halyard_component_availability_state%7Bstate%3D%22primary%22%7D"
    );
    let result: Vec<Json> = eventually(
        "Prometheus to scrape the face",
        Duration::from_secs(90),
        || {
            let q = q.clone();
            async move {
                let r = client().get(&q).send().await.ok()?;
                let j: Json = r.json_text_opt().await?;
                let res = j["data"]["result"].as_array()?.clone();
                let has = res
                    .iter()
                    .any(|s| s["metric"]["name"] == "ne=1/shelf=1/node=a/comp=counterd-a");
                has.then_some(res)
            }
        },
    )
    .await;
    let primary: Vec<(&str, &str, &str)> = result
        .iter()
        .map(|s| {
            (
                s["metric"]["name"].as_str().unwrap(),
                s["metric"]["class"].as_str().unwrap(),
                s["value"][1].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        primary.contains(&(
            "ne=1/shelf=1/node=a/comp=counterd-a",
            "SoftwareComponent",
            "1"
        )),
        "{primary:?}"
    );
    assert!(
        primary.contains(&(
            "ne=1/shelf=1/node=b/comp=counterd-b",
            "SoftwareComponent",
            "0"
        )),
        "{primary:?}"
    );
    assert!(
        primary.contains(&("ne=1/shelf=1/fan=1", "Fan", "1")),
        "{primary:?}"
    );
    // The target is healthy and the face's own counter is there.
    let up: Json = client()
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/query?query=up%7Bjob%3D%22halyard%22%7D"
        ))
        .send()
        .await
        .unwrap()
        .json_text_opt()
        .await
        .unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let rq = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=halyard_http_requests_total%7Broute%3D%22%2Fmetrics%22%7D"
    );
    eventually(
        "the face's request counter in Prometheus",
        Duration::from_secs(30),
        || {
            let rq = rq.clone();
            async move {
                let j = client().get(&rq).send().await.ok()?.json_text_opt().await?;
                let n = j["data"]["result"].as_array()?.len();
                (n > 0).then_some(())
            }
        },
    )
    .await;
    prom.kill().await.unwrap();
    let _ = prom.wait().await;
    let _ = std::fs::remove_dir_all(dir);
}

trait JsonOpt {
    async fn json_text_opt(self) -> Option<Json>;
}

impl JsonOpt for reqwest::Response {
    async fn json_text_opt(self) -> Option<Json> {
        serde_json::from_str(&self.text().await.ok()?).ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_reads_the_model_in_bounded_pages() {
    let mut cfg = crate::config(true);
    cfg.limits.page_size = 4;
    let h = Harness::with_config(cfg).await;
    let objects = h.model.inner.len();
    let (_, text) = scrape(&h, None).await;
    let walks = h.model.walks.lock().unwrap().clone();
    assert!(walks.iter().all(|l| *l == 4), "{walks:?}");
    assert!(
        walks.len() > objects / 4,
        "{} pages for {objects} objects",
        walks.len()
    );
    // Every object is still there.
    assert!(
        text.contains(&format!("halyard_http_scrape_objects {objects}")),
        "{text}"
    );
    for name in [
        "ne=1/shelf=1/psu=2",
        "ne=1/sg=counter/si=1",
        "ne=1/shelf=1/node=b/comp=counterd-b",
    ] {
        assert!(text.contains(&format!("name=\"{name}\"")), "{name}");
    }
    let (_, again) = scrape(&h, None).await;
    assert!(
        again.contains(&format!("halyard_http_scrape_objects {objects}")),
        "{again}"
    );
}

/// Requests that are not HTTP are answered 400 by the connection itself,
/// before any route sees them; they are counted on `/metrics`, and a good
/// request is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_counted() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start().await;
    let count = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("halyard_http_malformed_requests_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no malformed counter\n{text}"))
    };
    let before = count(&scrape(&h, None).await.1);
    for text in [
        &b"GET /api/v1/objects/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"BREW / HTCPCP/1.0\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost x\r\n\r\n"[..],
    ] {
        let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        s.write_all(text).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
            .await
            .expect("closed after the answer")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let text = scrape(&h, None).await.1;
    assert_eq!(count(&text), before + 3, "{text}");
    // Counted apart from the requests the routes answered.
    assert!(!text.contains("status=\"400\""), "{text}");
    let r = client().get(h.url("/api/v1/tree")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
