//! Prometheus metrics (OpenMetrics text) with the official `prometheus-client`.
//!
//! Model families come from `AttrMeta.metric` of every object: counters,
//! gauges, state sets (one series per label, the current one at 1) and
//! flags, labelled with the object's persistent `name` and its `class`.
//! The model's series are kept rendered between scrapes
//! ([`crate::exposition`]): a scrape reads in bounded pages only what
//! changed since the last one, then copies the exposition out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use crate::exposition::{ModelExposition, Sealed};

use halyard_cluster_model::port::{InformationModel, ManagedObject, ModelError};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The media type Prometheus negotiates for OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. about 4 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The HTTP face's own instruments.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub event_streams: Gauge,
    pub scrape_objects: Gauge,
    pub scrape_rendered: Gauge,
    pub scrape_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Requests with wrong credentials.
    pub auth_failures: Counter,
    /// Requests refused unread because their source failed too often.
    pub auth_refused: Counter,
    /// Requests refused as malformed HTTP before any route saw them.
    pub malformed: Counter,
}

impl HttpMetrics {
    /// Creates the instruments and registers them (with the `halyard_http_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            event_streams: Gauge::default(),
            scrape_objects: Gauge::default(),
            scrape_rendered: Gauge::default(),
            scrape_duration: Gauge::default(),
            auth_failures: Counter::default(),
            auth_refused: Counter::default(),
            malformed: Counter::default(),
        };
        registry.register(
            "halyard_http_malformed_requests",
            "Requests refused as malformed HTTP (answered 400 before any route saw them)",
            m.malformed.clone(),
        );
        registry.register(
            "halyard_http_auth_failures",
            "Requests with wrong credentials",
            m.auth_failures.clone(),
        );
        registry.register(
            "halyard_http_auth_refused",
            "Requests refused unread: their address failed to log in too often",
            m.auth_refused.clone(),
        );
        registry.register(
            "halyard_http_requests",
            "HTTP requests served, by method, route and status",
            m.requests.clone(),
        );
        registry.register(
            "halyard_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            m.latency.clone(),
        );
        registry.register(
            "halyard_http_event_streams",
            "Server-sent event streams open now",
            m.event_streams.clone(),
        );
        registry.register(
            "halyard_http_scrape_objects",
            "Objects the last scrape exposed",
            m.scrape_objects.clone(),
        );
        registry.register(
            "halyard_http_scrape_rendered_objects",
            "Objects the last refresh of the exposition read from the model and rendered again (new or changed since the one before)",
            m.scrape_rendered.clone(),
        );
        registry.register(
            "halyard_http_scrape_duration_seconds",
            "Time the last scrape took to answer (with a refresh of the exposition when it had to make one)",
            m.scrape_duration.clone(),
        );
        registry.register(
            "halyard_http_xml_replaced_characters",
            "Characters XML 1.0 forbids replaced by U+FFFD in XML responses (the agent's own data; a client's are refused)",
            crate::xml::REPLACED.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        m
    }
}

/// A family name in base units: (name, factor to multiply values by).
/// Schema units such as `millivolts` become `volts` (Prometheus naming).
pub fn base_unit(name: &str) -> (String, f64) {
    const PREFIXED: &[(&str, &str, f64)] = &[
        ("_milliseconds", "_seconds", 1e-3),
        ("_microseconds", "_seconds", 1e-6),
        ("_millivolts", "_volts", 1e-3),
        ("_milliamperes", "_amperes", 1e-3),
        ("_milliwatts", "_watts", 1e-3),
        ("_kilobytes", "_bytes", 1e3),
        ("_megabytes", "_bytes", 1e6),
        ("_megabits_per_second", "_bits_per_second", 1e6),
        ("_percent", "_ratio", 1e-2),
    ];
    for (from, to, f) in PREFIXED {
        if let Some(stem) = name.strip_suffix(from) {
            return (format!("{stem}{to}"), *f);
        }
    }
    (name.to_string(), 1.0)
}

/// The alarm severity summary over the alarm objects of a scrape.
#[derive(Debug)]
pub struct ModelCollector {
    objects: Vec<ManagedObject>,
}

impl ModelCollector {
    pub fn new(objects: Vec<ManagedObject>) -> Self {
        ModelCollector { objects }
    }
}

impl ModelCollector {
    /// Active (uncleared) alarms by severity, and how many of them are not
    /// acknowledged: low-cardinality aggregates next to the per-alarm series.
    fn encode_alarm_summary(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use halyard_cluster_model::SchemaEnum;
        use halyard_cluster_model::alarm;
        use halyard_cluster_model::model::PerceivedSeverity;
        let meta = <PerceivedSeverity as SchemaEnum>::META;
        let mut active: BTreeMap<&'static str, (i64, i64)> = meta
            .values
            .iter()
            .filter(|v| v.value != PerceivedSeverity::Cleared.value())
            .map(|v| (v.yang_name, (0, 0)))
            .collect();
        // A shelved alarm is out of the alarm list: no alert should fire on it.
        for o in self
            .objects
            .iter()
            .filter(|o| alarm::is_active(o) && alarm::shelf(o).is_none())
        {
            let sev = alarm::severity(o).and_then(|s| meta.by_value(s.value()));
            let acked = alarm::acknowledged(o);
            if let Some(sev) = sev
                && let Some(e) = active.get_mut(sev.yang_name)
            {
                e.0 += 1;
                e.1 += i64::from(!acked);
            }
        }
        for (name, help, pick) in [
            (
                "halyard_alarms_active",
                "Active (uncleared) alarms by severity",
                0,
            ),
            (
                "halyard_alarms_unacknowledged",
                "Active alarms not yet acknowledged, by severity",
                1,
            ),
        ] {
            let mut me = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (sev, counts) in &active {
                let labels = [("severity", *sev)];
                let fe = me.encode_family(&labels)?;
                ConstGauge::new(if pick == 0 { counts.0 } else { counts.1 }).encode(fe)?;
            }
        }
        Ok(())
    }
}

/// Only the alarm summary goes through prometheus-client's encoder; the
/// schema families come from [`ModelExposition::pieces`].
impl Collector for ModelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_alarm_summary(&mut encoder)?;
        Ok(())
    }
}

/// Reads every object of the model in pages of `page` objects.
pub async fn snapshot(
    model: &dyn InformationModel,
    page: usize,
    deadline: Duration,
) -> Result<Vec<ManagedObject>, ModelError> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut after = 0;
    let page = page.max(1);
    loop {
        let left = deadline
            .checked_sub(start.elapsed())
            .ok_or(ModelError::Timeout)?;
        let batch = tokio::time::timeout(left, model.walk(None, after, page))
            .await
            .map_err(|_| ModelError::Timeout)??;
        let n = batch.len();
        if let Some(last) = batch.last() {
            after = last.index;
        }
        out.extend(batch);
        if n < page {
            return Ok(out);
        }
        // Let other tasks (and the model's writers) in between pages.
        tokio::task::yield_now().await;
    }
}

/// The exposition formats: OpenMetrics for clients that ask for it
/// (Prometheus does), the classic text format 0.0.4 for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    Text,
}

impl Exposition {
    pub fn negotiate(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Exposition::OpenMetrics
        } else {
            Exposition::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => CONTENT_TYPE,
            Exposition::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Encodes the registry and a snapshot of the model as one document (the
/// bench; the face sends [`pieces`] as they are).
pub fn encode(
    registry: &Registry,
    objects: Vec<ManagedObject>,
    format: Exposition,
) -> Result<String, std::fmt::Error> {
    let model = ModelExposition::of(&objects).sealed();
    let pieces = pieces(registry, &model, format)?;
    let mut out = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for p in pieces {
        out.extend_from_slice(&p);
    }
    String::from_utf8(out).map_err(|_| std::fmt::Error)
}

/// The document in pieces: the registry's metrics, the model's families
/// (shared with the cache), the alarm summary.
pub fn pieces(
    registry: &Registry,
    model: &Sealed,
    format: Exposition,
) -> Result<Vec<axum::body::Bytes>, std::fmt::Error> {
    use prometheus_client::encoding::{prometheus_text, text};
    let mut alarms = Registry::default();
    alarms.register_collector(Box::new(ModelCollector::new(model.alarms.clone())));
    let (mut head, mut tail) = (String::new(), String::new());
    match format {
        Exposition::OpenMetrics => {
            text::encode_registry(&mut head, registry)?;
            text::encode_registry(&mut tail, &alarms)?;
            text::encode_eof(&mut tail)?;
        }
        Exposition::Text => {
            prometheus_text::encode(&mut head, registry)?;
            prometheus_text::encode(&mut tail, &alarms)?;
        }
    }
    let mut out = vec![head.into()];
    out.extend(model.pieces(format).iter().cloned());
    out.push(tail.into());
    Ok(out)
}

/// Process metrics from `/proc/self` (Linux); nothing elsewhere.
#[derive(Debug)]
struct ProcessCollector;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux ABIs).
const USER_HZ: f64 = 100.0;

fn proc_stat() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime=14, stime=15, starttime=22, vsize=23.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let start: f64 = f.get(19)?.parse().ok()?;
    let vsize: f64 = f.get(20)?.parse().ok()?;
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let _ = vsize;
    Some(((utime + stime) / USER_HZ, btime + start / USER_HZ, vsize))
}

fn proc_status_kb(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find_map(|l| l.strip_prefix(key))?;
    line.trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .map(|kb| kb * 1024.0)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((cpu, start, vsize)) = proc_stat() {
            let me = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(me)?;
            let me = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(start).encode(me)?;
            let me = encoder.encode_descriptor(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(vsize).encode(me)?;
        }
        if let Some(rss) = proc_status_kb("VmRSS") {
            let me = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(rss).encode(me)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let me = encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(fds.count() as i64).encode(me)?;
        }
        // Tasks alive in the agent's runtime: flat on an idle agent, so a
        // soak shows a leak of spawned tasks.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = encoder.encode_descriptor(
                "halyard_runtime_alive_tasks",
                "Tasks alive in the agent's async runtime",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(rt.metrics().num_alive_tasks() as i64).encode(me)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition goes out in chunks that add up to the whole
    /// document; once the receiver is gone, writing fails (the encoding
    /// stops instead of running on for nobody).
    #[test]
    fn base_units() {
        for (name, want, factor) in [
            (
                "halyard_power_supply_input_voltage_millivolts",
                "halyard_power_supply_input_voltage_volts",
                1e-3,
            ),
            (
                "halyard_x_audit_period_milliseconds",
                "halyard_x_audit_period_seconds",
                1e-3,
            ),
            (
                "halyard_host_board_cpu_load_percent",
                "halyard_host_board_cpu_load_ratio",
                1e-2,
            ),
            (
                "halyard_component_outage_seconds",
                "halyard_component_outage_seconds",
                1.0,
            ),
            ("halyard_fan_speed_rpm", "halyard_fan_speed_rpm", 1.0),
            (
                "halyard_port_speed_megabits_per_second",
                "halyard_port_speed_bits_per_second",
                1e6,
            ),
        ] {
            assert_eq!(base_unit(name), (want.to_string(), factor), "{name}");
        }
    }

    #[test]
    fn every_schema_family_has_a_conventional_name() {
        for c in halyard_cluster_model::SCHEMA.object_classes() {
            for a in c.attributes {
                let Some(m) = &a.metric else { continue };
                let (name, _) = base_unit(m.name);
                assert!(name.starts_with("halyard_"), "{name}");
                assert!(
                    !name.ends_with("_total"),
                    "{name}: the crate appends _total"
                );
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{name}"
                );
            }
        }
    }
}
