//! Prometheus metric names for attributes (the naming conventions of
//! prometheus.io/docs/practices/naming: prefix, snake case, base unit suffix).

use crate::ir::{Measure, Property, Schema, Type};
use crate::names;

/// How an attribute is exposed to Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic; the exposition appends `_total`.
    Counter,
    Gauge,
    /// An enumeration: one series per state, the current one at 1.
    StateSet,
    /// A boolean as 0 or 1.
    Flag,
}

/// The metric of an attribute, if it has one. The name is the family name
/// without `_total` (prometheus-client appends it to counters). Attributes
/// are named after the class that declares them, so an attribute inherited
/// by many classes is one family with a `class` label.
pub fn metric_for(schema: &Schema, p: &Property) -> Option<(String, MetricKind)> {
    let kind = match (p.measure, &p.ty) {
        (Measure::Counter, _) => MetricKind::Counter,
        (Measure::Gauge, _) => MetricKind::Gauge,
        (Measure::None, Type::Enum(_)) if p.metric => MetricKind::StateSet,
        (Measure::None, Type::Boolean) if p.metric => MetricKind::Flag,
        _ => return None,
    };
    let mut name = format!(
        "{}_{}_{}",
        schema.module.metric_prefix,
        names::snake(&p.declared_in),
        names::snake(&p.name)
    );
    if let Some(unit) = &p.units {
        let suffix = format!("_{}", names::snake(unit));
        if !name.ends_with(&suffix) {
            name.push_str(&suffix);
        }
    }
    Some((name, kind))
}

/// Every metric family of the schema: (name, kind, help), sorted, deduplicated.
pub fn families(schema: &Schema) -> Vec<(String, MetricKind, String)> {
    let mut out: Vec<(String, MetricKind, String)> = schema
        .object_classes()
        .flat_map(|c| c.attributes.iter())
        .filter_map(|p| metric_for(schema, p).map(|(n, k)| (n, k, p.description.clone())))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}
