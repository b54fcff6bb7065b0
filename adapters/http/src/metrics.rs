//! Prometheus metrics (OpenMetrics text) with the official `prometheus-client`.
//!
//! Model families come from `AttrMeta.metric` of every object: counters,
//! gauges, state sets (one series per label, the current one at 1) and
//! flags, labelled with the object's persistent `name` and its `class`.
//! A scrape reads the model in bounded pages (no lock of ours is held across
//! an await), then encodes synchronously from that snapshot.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use halyard_cluster_model::meta::{AttrType, MetricKind};
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
            "Objects read from the model by the last scrape",
            m.scrape_objects.clone(),
        );
        registry.register(
            "halyard_http_scrape_duration_seconds",
            "Time the last scrape took to read the model and encode it",
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

struct FamilyPlan {
    kind: MetricKind,
    help: &'static str,
    factor: f64,
    /// (object, attribute position)
    series: Vec<(usize, usize)>,
}

/// A snapshot of the model, encoded as metric families.
#[derive(Debug)]
pub struct ModelCollector {
    objects: Vec<ManagedObject>,
}

impl ModelCollector {
    pub fn new(objects: Vec<ManagedObject>) -> Self {
        ModelCollector { objects }
    }

    /// The families and their series, in name order. Keyed by the schema's
    /// static family name, so planning allocates nothing per object.
    fn plan(&self) -> Vec<(String, FamilyPlan)> {
        let mut fams: BTreeMap<&'static str, FamilyPlan> = BTreeMap::new();
        for (oi, o) in self.objects.iter().enumerate() {
            for (ai, a) in o.class.attributes.iter().enumerate() {
                let Some(m) = &a.metric else { continue };
                fams.entry(m.name)
                    .or_insert_with(|| FamilyPlan {
                        kind: m.kind,
                        help: a.description,
                        factor: base_unit(m.name).1,
                        series: Vec::new(),
                    })
                    .series
                    .push((oi, ai));
            }
        }
        let mut out: Vec<(String, FamilyPlan)> =
            fams.into_iter().map(|(n, f)| (base_unit(n).0, f)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
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

impl ModelCollector {
    /// Writes every schema family straight into `out`. prometheus-client's
    /// generic encoder spent about 300 ns a series (50 ms for 10,000
    /// components); this writer emits the same exposition, line for line,
    /// at a fraction of that. The registry's own metrics still go through
    /// prometheus-client.
    pub fn write_families<W: std::fmt::Write>(
        &self,
        out: &mut W,
        format: Exposition,
    ) -> std::fmt::Result {
        use halyard_cluster_model::Value as V;
        // Each object's `{name="…",class="…"` once, not once per series.
        let labels = Labels::of(&self.objects);
        for (name, f) in self.plan() {
            let counter = f.kind == MetricKind::Counter;
            let help = f.help.trim_end_matches('.');
            // OpenMetrics names the family without `_total`; the text format with it.
            let family = if counter && format == Exposition::Text {
                format!("{name}_total")
            } else {
                name.clone()
            };
            let sample = if counter {
                format!("{name}_total")
            } else {
                name
            };
            writeln!(
                out,
                "# HELP {family} {}",
                help.replace('\\', "\\\\").replace('\n', "\\n")
            )?;
            writeln!(
                out,
                "# TYPE {family} {}",
                if counter { "counter" } else { "gauge" }
            )?;
            let mut ints = itoa::Buffer::new();
            let mut floats = ryu::Buffer::new();
            let mut head = String::with_capacity(256);
            for (oi, ai) in f.series {
                let o = &self.objects[oi];
                let a = &o.class.attributes[ai];
                let v = &o.values[ai];
                head.clear();
                head.push_str(&sample);
                head.push_str(labels.get(oi));
                match (f.kind, &a.ty) {
                    (MetricKind::StateSet, AttrType::Enum(e)) => {
                        let current = match v {
                            V::Enum(x) => Some(*x),
                            _ => None,
                        };
                        for label in e.values {
                            out.write_str(&head)?;
                            out.write_str(",state=\"")?;
                            out.write_str(label.yang_name)?;
                            out.write_str(if current == Some(label.value) {
                                "\"} 1\n"
                            } else {
                                "\"} 0\n"
                            })?;
                        }
                    }
                    _ => {
                        let value: &str = match (v, f.factor == 1.0) {
                            // Integers stay integers (exact, and cheaper to format).
                            (V::U64(n), true) => ints.format(*n),
                            (V::U32(n), true) => ints.format(*n),
                            (V::I32(n), true) => ints.format(*n),
                            (V::Bool(b), _) => {
                                if *b {
                                    "1"
                                } else {
                                    "0"
                                }
                            }
                            _ => match v.as_f64() {
                                Some(x) => float(&mut floats, x * f.factor),
                                None => continue,
                            },
                        };
                        out.write_str(&head)?;
                        out.write_str("} ")?;
                        out.write_str(value)?;
                        out.write_char('\n')?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A float as Prometheus reads it (`1.0`, `0.25`, `NaN`, `+Inf`).
fn float(buf: &mut ryu::Buffer, x: f64) -> &str {
    if x.is_nan() {
        "NaN"
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }
    } else {
        buf.format_finite(x)
    }
}

/// Every object's label set, `{name="…",class="…"` (escaped), in one
/// buffer: one allocation for the scrape instead of one per series.
struct Labels {
    text: String,
    /// End of each object's labels in `text`.
    ends: Vec<usize>,
}

impl Labels {
    fn of(objects: &[ManagedObject]) -> Labels {
        let mut text = String::with_capacity(objects.len() * 64);
        let mut ends = Vec::with_capacity(objects.len());
        for o in objects {
            text.push_str("{name=\"");
            escape_label(&mut text, o.name.as_str());
            text.push_str("\",class=\"");
            escape_label(&mut text, o.class.name);
            text.push('"');
            ends.push(text.len());
        }
        Labels { text, ends }
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Only the alarm summary goes through prometheus-client's encoder; the
/// schema families are written by [`ModelCollector::write_families`].
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

/// Encodes the registry and the model snapshot as one document.
pub fn encode(
    registry: &Registry,
    objects: Vec<ManagedObject>,
    format: Exposition,
) -> Result<String, std::fmt::Error> {
    // About 500 bytes an object at 10,000 components (25 MB for 50,000
    // objects); reserving 1,600 touched 80 MB a scrape and left the
    // process 60 MB larger after a few scrapes.
    let mut out = String::with_capacity(256 + objects.len() * 600);
    encode_into(&mut out, registry, objects, format)?;
    Ok(out)
}

/// Writes the registry and the model snapshot into `out` as one document.
pub fn encode_into<W: std::fmt::Write>(
    out: &mut W,
    registry: &Registry,
    objects: Vec<ManagedObject>,
    format: Exposition,
) -> std::fmt::Result {
    use prometheus_client::encoding::{prometheus_text, text};
    let collector = ModelCollector::new(objects);
    match format {
        Exposition::OpenMetrics => {
            text::encode_registry(out, registry)?;
            collector.write_families(out, format)?;
            let mut model = Registry::default();
            model.register_collector(Box::new(collector));
            text::encode_registry(out, &model)?;
            text::encode_eof(out)?;
        }
        Exposition::Text => {
            prometheus_text::encode(out, registry)?;
            collector.write_families(out, format)?;
            let mut model = Registry::default();
            model.register_collector(Box::new(collector));
            prometheus_text::encode(out, &model)?;
        }
    }
    Ok(())
}

/// Size of the pieces a scrape's exposition is sent in.
const CHUNK: usize = 256 * 1024;

/// A writer that hands the exposition on in chunks while it is written, so
/// that sending overlaps encoding (25 MB at 10,000 components). Writing
/// fails once the receiver is gone (the client left): the encoding stops.
#[derive(Debug)]
pub struct Chunks {
    buf: String,
    tx: tokio::sync::mpsc::Sender<axum::body::Bytes>,
    sent: usize,
}

impl Chunks {
    pub fn new(tx: tokio::sync::mpsc::Sender<axum::body::Bytes>) -> Chunks {
        Chunks {
            buf: String::with_capacity(CHUNK + 4096),
            tx,
            sent: 0,
        }
    }

    fn flush(&mut self) -> std::fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK + 4096));
        self.sent += b.len();
        self.tx
            .blocking_send(axum::body::Bytes::from(b))
            .map_err(|_| std::fmt::Error)
    }

    /// Sends what is left; the bytes sent in all.
    pub fn finish(mut self) -> Result<usize, std::fmt::Error> {
        self.flush()?;
        Ok(self.sent)
    }
}

impl std::fmt::Write for Chunks {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }
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
    fn chunks_add_up_and_stop_when_nobody_reads() {
        use std::fmt::Write as _;
        let objects = futures_util::FutureExt::now_or_never(
            halyard_cluster_model::port::InformationModel::query(
                &halyard_cluster_model::memory::demo_element(),
                &halyard_cluster_model::port::Query::default(),
            ),
        )
        .unwrap()
        .unwrap();
        let registry = Registry::default();
        let whole = encode(&registry, objects.clone(), Exposition::Text).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let mut out = Chunks::new(tx);
        encode_into(&mut out, &registry, objects, Exposition::Text).unwrap();
        assert_eq!(out.finish().unwrap(), whole.len());
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.extend_from_slice(&b);
        }
        assert_eq!(String::from_utf8(got).unwrap(), whole);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let mut out = Chunks::new(tx);
        assert!(out.write_str(&"x".repeat(CHUNK)).is_err());
    }

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
