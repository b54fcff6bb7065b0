//! The key statistics collector, aggregates and thresholds.
//!
//! On a schedule it samples the simulated hardware sensors, pulls every
//! component's gauge attributes into `Statistic` objects (history in the
//! repository journal, with retention), recomputes the configured
//! `Aggregate` objects, and evaluates every `Threshold`: rising and falling
//! values with hysteresis raise and clear `thresholdCrossed` alarms.

use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::meta::Measure;
use halyard_cluster_model::model::{
    AggregateFunction, AggregatePatch, FanPatch, HostBoardPatch, NetworkElementPatch, OperState,
    PerceivedSeverity, PortPatch, PowerSupplyPatch, ProbableCause, StatisticPatch,
    ThresholdDirection, ThresholdPatch,
};
use halyard_cluster_model::port::{InformationModel, ManagedObject, Query, Scope};
use halyard_cluster_model::{ObjectName, SCHEMA, SchemaEnum, Timestamp, Value};

use crate::config::{self, AggregateEntry, ThresholdEntry};
use crate::model::AgentModel;

/// Objects the collector handles between two yields to the runtime.
const YIELD_EVERY: usize = 256;

/// Thousands of objects a cycle: lets the faces' requests in every
/// [`YIELD_EVERY`] objects (the model's calls here never wait).
async fn pace(k: usize) {
    if k % YIELD_EVERY == YIELD_EVERY - 1 {
        tokio::task::yield_now().await;
    }
}

/// What a threshold does on a new sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    Raise,
    Clear,
    Stay,
}

/// Hysteresis: a rising threshold fires at `rising` and re-arms only at
/// `falling`; a falling one mirrors it.
pub fn evaluate(
    direction: ThresholdDirection,
    crossed: bool,
    value: f64,
    rising: f64,
    falling: f64,
) -> Crossing {
    match (direction, crossed) {
        (ThresholdDirection::Rising, false) if value >= rising => Crossing::Raise,
        (ThresholdDirection::Rising, true) if value <= falling => Crossing::Clear,
        (ThresholdDirection::Falling, false) if value <= falling => Crossing::Raise,
        (ThresholdDirection::Falling, true) if value >= rising => Crossing::Clear,
        _ => Crossing::Stay,
    }
}

/// Combines member values.
pub fn aggregate(function: AggregateFunction, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match function {
        AggregateFunction::Sum => values.iter().sum(),
        AggregateFunction::Average => values.iter().sum::<f64>() / values.len() as f64,
        AggregateFunction::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
        AggregateFunction::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

fn stat_name(attr: &str) -> String {
    attr.to_string()
}

#[derive(Debug)]
pub struct Collector {
    model: Arc<AgentModel>,
    aggregates: Vec<AggregateEntry>,
    thresholds: Vec<ThresholdEntry>,
    retention: Duration,
    alarm_retention: Duration,
    tick: u64,
    /// When the simulated hardware was last sampled (traffic since then).
    sampled: Option<Timestamp>,
    /// How often values go to the history, and when they last went.
    history_period: Duration,
    history_at: Option<Timestamp>,
    /// The component classes with gauges of their own ([`gauged_classes`]).
    gauged: Vec<String>,
}

impl Collector {
    pub fn new(
        model: Arc<AgentModel>,
        aggregates: Vec<AggregateEntry>,
        thresholds: Vec<ThresholdEntry>,
        retention: Duration,
        alarm_retention: Duration,
    ) -> Self {
        Collector {
            model,
            aggregates,
            thresholds,
            retention,
            alarm_retention,
            tick: 0,
            sampled: None,
            history_period: Duration::ZERO,
            history_at: None,
            gauged: gauged_classes(),
        }
    }

    /// Statistics go to the history at most this often (every collection
    /// by default).
    pub fn with_history_period(mut self, period: Duration) -> Self {
        self.history_period = period;
        self
    }

    /// Runs one cycle every `period` until `stop`.
    pub async fn run(mut self, period: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.tick().await;
        loop {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            self.cycle().await;
        }
    }

    /// One collection: sensors, statistics, aggregates, thresholds.
    pub async fn cycle(&mut self) {
        self.tick += 1;
        // Each phase's time, for the debug log (what a cycle costs at scale).
        let mut at = std::time::Instant::now();
        let mut lap = || {
            let ms = at.elapsed().as_secs_f64() * 1e3;
            at = std::time::Instant::now();
            ms
        };
        self.simulate_sensors().await;
        let sensors = lap();
        let stats = self.collect().await;
        let collect = lap();
        self.aggregates(&stats).await;
        let aggregates = lap();
        self.thresholds().await;
        let thresholds = lap();
        self.model.refresh_counters().await;
        let counters = lap();
        self.watchdog().await;
        self.model.sync_incidents().await;
        let incidents = lap();
        let cutoff = Timestamp::now().0 - self.retention.as_millis() as i64;
        if let Err(e) = self.model.repo.prune_journal("statistic", cutoff).await {
            tracing::warn!(error = %e, "cannot prune statistics history");
        }
        if let Err(e) = self.model.prune_alarms(self.alarm_retention).await {
            tracing::warn!(error = %e, "cannot prune alarm history");
        }
        let prune = lap();
        tracing::debug!(
            sensors,
            collect,
            aggregates,
            thresholds,
            counters,
            incidents,
            prune,
            "statistics cycle (ms)"
        );
    }

    /// The serving node's watchdog expirations and panicked tasks, on the
    /// element's object (hence in every face and in /metrics).
    async fn watchdog(&self) {
        let m = &self.model;
        let n = m.core.watchdog.expirations();
        let panics = halyard_backend::tasks::panics();
        if let Err(e) = m.store.update(
            &m.root,
            NetworkElementPatch::new()
                .watchdog_expirations(n)
                .task_panics(panics)
                .values(),
        ) {
            tracing::error!(error = %e, "cannot show the watchdog expirations");
        }
    }

    /// Simulated hardware: fans spin unless failed, boards warm with load.
    async fn simulate_sensors(&mut self) {
        let now = Timestamp::now();
        // Seconds of traffic since the last sample (none at the first).
        let dt = self
            .sampled
            .replace(now)
            .map_or(0.0, |t| ((now.0 - t.0).max(0) as f64) / 1000.0);
        let m = &self.model;
        let jitter = |i: u32| {
            ((self.tick as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i.wrapping_mul(40_503))
                % 100) as f64
                / 100.0
        };
        for (k, o) in of_classes(m, self.gauged.clone())
            .await
            .into_iter()
            .enumerate()
        {
            pace(k).await;
            let down = o.get("OperState") == Some(&Value::Enum(OperState::Disabled.value()));
            let j = jitter(o.index);
            let v: Vec<(&str, Value)> = match o.class.name {
                "Fan" => FanPatch::new()
                    .speed(if down { 0 } else { 4150 + (j * 100.0) as u32 })
                    .values()
                    .to_vec(),
                "HostBoard" => HostBoardPatch::new()
                    .cpu_load(if down { 0 } else { 8 + (j * 4.0) as u32 })
                    .temperature(if down { 25 } else { 41 })
                    .values()
                    .to_vec(),
                "PowerSupply" => PowerSupplyPatch::new()
                    .output_power(if down { 0 } else { 290 + (j * 20.0) as u32 })
                    .values()
                    .to_vec(),
                // Ports carry 5-35 % of their speed each way while up;
                // packets of 700 octets on average, an error now and then.
                "Port" => {
                    let counter = |name: &str| match o.get(name) {
                        Some(Value::U64(v)) => *v,
                        _ => 0,
                    };
                    let speed = match o.get("Speed") {
                        Some(Value::U32(v)) => f64::from(*v),
                        _ => 0.0,
                    };
                    let octets = |share: f64| {
                        if down {
                            0
                        } else {
                            (speed * 1e6 / 8.0 * (0.05 + 0.3 * share) * dt) as u64
                        }
                    };
                    let (rx, tx) = (octets(j), octets(jitter(o.index.wrapping_add(7))));
                    let err =
                        u64::from(!down && dt > 0.0 && jitter(o.index.wrapping_add(13)) > 0.97);
                    PortPatch::new()
                        .in_octets(counter("InOctets") + rx)
                        .out_octets(counter("OutOctets") + tx)
                        .in_unicast_packets(counter("InUnicastPackets") + rx / 700)
                        .out_unicast_packets(counter("OutUnicastPackets") + tx / 700)
                        .in_errors(counter("InErrors") + err)
                        .values()
                        .to_vec()
                }
                _ => continue,
            };
            m.set(&o.name, &v);
        }
    }

    /// Pulls every gauge of every component into its Statistic object;
    /// new objects' indices and the history go to the repository in one
    /// transaction each.
    async fn collect(&mut self) -> Vec<ManagedObject> {
        let now = Timestamp::now();
        let record = self
            .history_at
            .is_none_or(|t| now.0 - t.0 >= self.history_period.as_millis() as i64);
        if record {
            self.history_at = Some(now);
        }
        let m = &self.model;
        let mut out = Vec::new();
        let mut fresh = Vec::new();
        let mut history = Vec::new();
        for (k, o) in of_classes(m, self.gauged.clone())
            .await
            .into_iter()
            .enumerate()
        {
            pace(k).await;
            for (i, a) in o.class.attributes.iter().enumerate() {
                if a.measure != Measure::Gauge || a.declared_in == "Component" {
                    continue;
                }
                let Some(value) = o.values[i].as_f64() else {
                    continue;
                };
                let name = format!("{}/stat={}", o.name, stat_name(a.field));
                let patch = StatisticPatch::new()
                    .resource(o.name.to_string())
                    .value(value)
                    .unit(a.units.unwrap_or(""))
                    .collected_at(now);
                let values = patch.values();
                let Ok(n) = ObjectName::parse(&name) else {
                    continue;
                };
                let ok = if m.store.update(&n, values).is_ok() {
                    true
                } else {
                    m.create("Statistic", &name, values, &mut fresh)
                        .await
                        .is_ok()
                };
                if ok {
                    if record {
                        history.push((
                            "statistic".to_string(),
                            name.clone(),
                            serde_json::json!({"time": now.0, "value": value}),
                        ));
                    }
                    if let Ok(s) = m.store.get(&n).await {
                        out.push(s);
                    }
                }
            }
        }
        if let Err(e) = m.persist_indices(fresh).await {
            tracing::warn!(error = %e, "cannot persist statistic indices");
        }
        if let Err(e) = m.repo.journal_many(history).await {
            tracing::warn!(error = %e, "cannot record statistics history");
        }
        out
    }

    async fn aggregates(&self, stats: &[ManagedObject]) {
        let m = &self.model;
        for a in &self.aggregates {
            let Ok(scope) = ObjectName::parse(a.scope.get_ref()) else {
                continue;
            };
            let values: Vec<f64> = stats
                .iter()
                .filter(|s| {
                    s.name.leaf() == ("stat", a.statistic.get_ref().as_str())
                        && s.name.is_within(&scope)
                })
                .filter_map(|s| s.get("Value").and_then(Value::as_f64))
                .collect();
            let function = match a.function {
                config::AggregateFunction::Sum => AggregateFunction::Sum,
                config::AggregateFunction::Average => AggregateFunction::Average,
                config::AggregateFunction::Minimum => AggregateFunction::Minimum,
                config::AggregateFunction::Maximum => AggregateFunction::Maximum,
            };
            let name = format!("{}/agg={}", m.root, a.name.get_ref());
            let v = AggregatePatch::new()
                .scope(a.scope.get_ref().as_str())
                .statistic(a.statistic.get_ref().as_str())
                .function(function)
                .value(aggregate(function, &values).unwrap_or(0.0))
                .members(values.len() as u32);
            match ObjectName::parse(&name) {
                Ok(n) if m.store.get(&n).await.is_ok() => {
                    m.set(&n, v.values());
                }
                Ok(_) => {
                    let _ = m.create_dynamic("Aggregate", &name, v.values()).await;
                }
                Err(_) => {}
            }
        }
    }

    /// Creates configured thresholds (once their statistic exists) and evaluates all.
    async fn thresholds(&self) {
        let m = &self.model;
        for t in &self.thresholds {
            let name = format!(
                "{}/stat={}/thr={}",
                t.resource.get_ref(),
                t.statistic.get_ref(),
                t.name.get_ref()
            );
            let Ok(n) = ObjectName::parse(&name) else {
                continue;
            };
            if m.store.get(&n).await.is_err() {
                let dir = match t.direction {
                    config::Direction::Rising => ThresholdDirection::Rising,
                    config::Direction::Falling => ThresholdDirection::Falling,
                };
                let sev = match t.severity {
                    config::Severity::Critical => PerceivedSeverity::Critical,
                    config::Severity::Major => PerceivedSeverity::Major,
                    config::Severity::Minor => PerceivedSeverity::Minor,
                    config::Severity::Warning => PerceivedSeverity::Warning,
                };
                let _ = m
                    .create_dynamic(
                        "Threshold",
                        &name,
                        ThresholdPatch::new()
                            .direction(dir)
                            .rising(t.rising)
                            .falling(t.falling)
                            .severity(sev)
                            .crossed(false)
                            .values(),
                    )
                    .await;
            }
        }
        for thr in objects(m, "Threshold").await {
            let Some(stat) = thr.name.parent() else {
                continue;
            };
            let Ok(s) = m.store.get(&stat).await else {
                continue;
            };
            let (Some(value), Some(rising), Some(falling)) = (
                s.get("Value").and_then(Value::as_f64),
                thr.get("Rising").and_then(Value::as_f64),
                thr.get("Falling").and_then(Value::as_f64),
            ) else {
                continue;
            };
            let dir = match thr.get("Direction") {
                Some(Value::Enum(v)) => {
                    ThresholdDirection::from_value(*v).unwrap_or(ThresholdDirection::Rising)
                }
                _ => ThresholdDirection::Rising,
            };
            let crossed = thr.get("Crossed") == Some(&Value::Bool(true));
            let sev = match thr.get("Severity") {
                Some(Value::Enum(v)) => {
                    PerceivedSeverity::from_value(*v).unwrap_or(PerceivedSeverity::Major)
                }
                _ => PerceivedSeverity::Major,
            };
            match evaluate(dir, crossed, value, rising, falling) {
                Crossing::Raise => {
                    let text = format!(
                        "{} is {value} ({} {})",
                        stat,
                        if dir == ThresholdDirection::Rising {
                            "at or above"
                        } else {
                            "at or below"
                        },
                        if dir == ThresholdDirection::Rising {
                            rising
                        } else {
                            falling
                        }
                    );
                    if m.raise_alarm(
                        thr.name.as_str(),
                        ProbableCause::ThresholdCrossed,
                        sev,
                        &text,
                    )
                    .await
                    .is_ok()
                    {
                        m.set(&thr.name, ThresholdPatch::new().crossed(true).values());
                    }
                }
                Crossing::Clear => {
                    if m.clear_alarms_matching(
                        thr.name.as_str(),
                        Some(ProbableCause::ThresholdCrossed),
                    )
                    .await
                    .is_ok()
                    {
                        m.set(&thr.name, ThresholdPatch::new().crossed(false).values());
                    }
                }
                Crossing::Stay => {}
            }
        }
    }
}

async fn objects(m: &AgentModel, class: &str) -> Vec<ManagedObject> {
    debug_assert!(SCHEMA.class(class).is_some());
    of_classes(m, vec![class.into()]).await
}

async fn of_classes(m: &AgentModel, classes: Vec<String>) -> Vec<ManagedObject> {
    m.store
        .query(&Query {
            scope: Scope::All,
            classes,
            ..Query::default()
        })
        .await
        .unwrap_or_default()
}

/// The component classes with a gauge of their own (not one every
/// component has): the ones the collector samples and pulls. Reading only
/// those skips the software components, nodes and the rest, half the
/// objects at 10,000 components.
fn gauged_classes() -> Vec<String> {
    SCHEMA
        .classes
        .iter()
        .filter(|c| SCHEMA.is_a(c.name, "Component"))
        .filter(|c| {
            c.attributes
                .iter()
                .any(|a| a.measure == Measure::Gauge && a.declared_in != "Component")
        })
        .map(|c| c.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis() {
        use Crossing::*;
        use ThresholdDirection::Rising;
        // Armed: fires at the rising value, not below.
        assert_eq!(evaluate(Rising, false, 69.9, 70.0, 60.0), Stay);
        assert_eq!(evaluate(Rising, false, 70.0, 70.0, 60.0), Raise);
        // Crossed: stays until the falling value, even below rising.
        assert_eq!(evaluate(Rising, true, 65.0, 70.0, 60.0), Stay);
        assert_eq!(evaluate(Rising, true, 60.0, 70.0, 60.0), Clear);
        // Falling thresholds mirror it.
        assert_eq!(
            evaluate(ThresholdDirection::Falling, false, 10.0, 50.0, 10.0),
            Raise
        );
        assert_eq!(
            evaluate(ThresholdDirection::Falling, true, 30.0, 50.0, 10.0),
            Stay
        );
        assert_eq!(
            evaluate(ThresholdDirection::Falling, true, 50.0, 50.0, 10.0),
            Clear
        );
    }

    #[test]
    fn aggregates() {
        let v = [4200.0, 4100.0, 4300.0];
        assert_eq!(aggregate(AggregateFunction::Sum, &v), Some(12600.0));
        assert_eq!(aggregate(AggregateFunction::Average, &v), Some(4200.0));
        assert_eq!(aggregate(AggregateFunction::Minimum, &v), Some(4100.0));
        assert_eq!(aggregate(AggregateFunction::Maximum, &v), Some(4300.0));
        assert_eq!(aggregate(AggregateFunction::Sum, &[]), None);
    }
}
