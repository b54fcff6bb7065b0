//! ietf-alarms (RFC 8632): `/alarms` from the one alarm engine's objects,
//! read through [`halyard_cluster_model::alarm`] as every face reads them.
//! Alarm types are the identities of the generated alarm-types module
//! ([`halyard_cluster_model::alarm_types`]), one per probable cause.
//!
//! An ietf-alarms alarm is the state of one (resource, alarm type): the
//! engine folds a repeat of an active alarm into it and makes a new object
//! when a cleared one is raised again, so the list shows, per resource
//! and type, the latest object. Read-only for now: no control, shelving,
//! operator state or purge.

use std::collections::{BTreeMap, HashMap};

use halyard_cluster_model::model::{PerceivedSeverity, ProbableCause};
use halyard_cluster_model::port::{ManagedObject, Notification};
use halyard_cluster_model::{SCHEMA, SchemaEnum, Timestamp, alarm, alarm_types};

use crate::xml::{Element, XMLNS_DECL};

/// RFC 8632's namespace.
pub const ALARMS_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-alarms";
/// RFC 8632's X.733 augmentation.
pub const X733_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-alarms-x733";

/// ietf-alarms-x733's event type, probable cause (the IANAItuProbableCause
/// number, as ALARM-MIB and ITU-ALARM-MIB give it) and its X.733 name.
fn x733_cause(e: &mut Element, cause: ProbableCause) {
    let x = |n: &str, t: String| Element::with_text(X733_NS, n, t);
    e.push(x(
        "event-type",
        alarm::event_type(cause).yang_name().to_string(),
    ));
    e.push(x("probable-cause", cause.value().to_string()));
    e.push(x("probable-cause-string", cause.label().to_string()));
}
/// The features of ietf-alarms the server supports: the summary, operator
/// actions (the `ack` state: the engine's acknowledgement), and the root
/// cause of a secondary alarm (the engine's root-cause suppression).
pub const FEATURES: &[&str] = &["alarm-summary", "operator-actions", "root-cause-analysis"];

fn leaf(name: &str, text: impl Into<String>) -> Element {
    Element::with_text(ALARMS_NS, name, text)
}

/// The identity of an alarm type, with its prefix declared.
fn type_id(cause: ProbableCause) -> Element {
    let mut e = leaf(
        "alarm-type-id",
        format!("{}:{}", alarm_types::PREFIX, cause.yang_name()),
    );
    e.attrs.push((
        XMLNS_DECL.into(),
        alarm_types::PREFIX.into(),
        alarm_types::NAMESPACE.into(),
    ));
    e
}

/// The resource as an instance-identifier of its list entry in the
/// schema's module (its class known by its last RDN), else its persistent
/// name: the same in the alarm list and in notifications.
fn resource(leaf_name: &str, name: &str) -> Element {
    let class = halyard_cluster_model::ObjectName::parse(name)
        .ok()
        .and_then(|n| SCHEMA.class_by_rdn(n.leaf().0))
        .filter(|c| SCHEMA.object_classes().any(|o| o.name == c.name));
    match class {
        Some(c) => {
            let mut e = leaf(leaf_name, crate::data::entry_path(c, name, None));
            e.attrs.push((
                XMLNS_DECL.into(),
                SCHEMA.module.prefix.into(),
                SCHEMA.module.namespace.into(),
            ));
            e
        }
        None => leaf(leaf_name, name),
    }
}

/// The ietf-alarms `alarm-notification` of an alarm indication (raised,
/// changed or cleared), beside the schema's own notification.
pub fn notification(n: &Notification) -> Option<Element> {
    let (res, cause, severity, text) = alarm::indication(n.class, &n.values)?;
    let mut e = Element::new(ALARMS_NS, "alarm-notification");
    e.push(resource("resource", &res));
    e.push(type_id(cause));
    e.push(leaf("alarm-type-qualifier", ""));
    e.push(leaf("time", n.time.to_string()));
    e.push(leaf("perceived-severity", severity_name(severity)));
    e.push(leaf("alarm-text", text));
    x733_cause(&mut e, cause);
    Some(e)
}

fn severity_name(s: PerceivedSeverity) -> &'static str {
    match s {
        PerceivedSeverity::Cleared => "cleared",
        PerceivedSeverity::Indeterminate => "indeterminate",
        PerceivedSeverity::Warning => "warning",
        PerceivedSeverity::Minor => "minor",
        PerceivedSeverity::Major => "major",
        PerceivedSeverity::Critical => "critical",
    }
}

/// The alarm object behind an alarm-list entry's keys (its resource as an
/// instance-identifier or a persistent name, and its type identity): the
/// latest of that resource and type.
pub fn find<'a>(
    objects: &'a [ManagedObject],
    resource: &str,
    type_id: &str,
) -> Option<&'a ManagedObject> {
    let name = resource
        .split_once("name='")
        .and_then(|(_, r)| r.split_once('\''))
        .or_else(|| {
            resource
                .split_once("name=\"")
                .and_then(|(_, r)| r.split_once('"'))
        })
        .map_or(resource, |(n, _)| n);
    let ident = type_id.rsplit(':').next().unwrap_or(type_id);
    let cause = ProbableCause::ALL
        .into_iter()
        .find(|c| c.yang_name() == ident)?;
    objects
        .iter()
        .filter(|o| alarm::is_alarm(o))
        .filter(|o| alarm::resource(o) == Some(name) && alarm::cause(o) == Some(cause))
        .max_by_key(|o| (alarm::times(o).0, o.index))
}

/// `/alarms` of the element: alarm inventory, summary and alarm list.
pub fn render(objects: &[ManagedObject], started: Timestamp) -> Element {
    let by_name: HashMap<&str, &ManagedObject> =
        objects.iter().map(|o| (o.name.as_str(), o)).collect();
    // The latest alarm object of each (resource, type), and when the
    // first was raised (the entry's time-created).
    let mut latest: BTreeMap<(&str, u32), &ManagedObject> = BTreeMap::new();
    let mut created: HashMap<(&str, u32), Timestamp> = HashMap::new();
    for o in objects.iter().filter(|o| alarm::is_alarm(o)) {
        let (Some(r), Some(c)) = (alarm::resource(o), alarm::cause(o)) else {
            continue;
        };
        let e = latest.entry((r, c.value())).or_insert(o);
        if (alarm::times(o).0, o.index) > (alarm::times(e).0, e.index) {
            *e = o;
        }
        if let Some(t) = alarm::times(o).0 {
            let first = created.entry((r, c.value())).or_insert(t);
            *first = (*first).min(t);
        }
    }
    let mut top = Element::new(ALARMS_NS, "alarms");

    let mut inventory = Element::new(ALARMS_NS, "alarm-inventory");
    for cause in ProbableCause::ALL {
        let mut t = Element::new(ALARMS_NS, "alarm-type");
        t.push(type_id(cause));
        t.push(leaf("alarm-type-qualifier", ""));
        // The agent clears every alarm it raises when its cause goes.
        t.push(leaf("will-clear", "true"));
        let text = ProbableCause::META
            .by_value(cause.value())
            .map_or("", |v| v.description);
        t.push(leaf("description", text));
        x733_cause(&mut t, cause);
        inventory.push(t);
    }
    top.push(inventory);

    let mut summary = Element::new(ALARMS_NS, "summary");
    for s in alarm::ACTIVE_SEVERITIES.iter().rev() {
        let (mut cleared, mut not_cleared) = (0u32, 0u32);
        for a in latest.values() {
            if alarm::last_severity(a) == Some(*s) {
                if alarm::is_active(a) {
                    not_cleared += 1;
                } else {
                    cleared += 1;
                }
            }
        }
        let mut e = Element::new(ALARMS_NS, "alarm-summary");
        e.push(leaf("severity", severity_name(*s)));
        e.push(leaf("total", (cleared + not_cleared).to_string()));
        e.push(leaf("not-cleared", not_cleared.to_string()));
        e.push(leaf("cleared", cleared.to_string()));
        summary.push(e);
    }
    top.push(summary);

    let mut list = Element::new(ALARMS_NS, "alarm-list");
    let mut entries = Vec::new();
    let mut last_changed = None;
    for (key, a) in &latest {
        let r = key.0;
        let (Some(cause), Some(sev)) = (alarm::cause(a), alarm::last_severity(a)) else {
            continue;
        };
        let (Some(raised), Some(changed)) = (alarm::times(a).0, alarm::last_changed(a)) else {
            continue;
        };
        last_changed = last_changed.max(Some(changed));
        let mut e = Element::new(ALARMS_NS, "alarm");
        e.push(resource("resource", r));
        e.push(type_id(cause));
        e.push(leaf("alarm-type-qualifier", ""));
        // A secondary alarm names its root alarm's resource.
        if let Some(root) = alarm::root_alarm(a)
            .and_then(|n| by_name.get(n))
            .and_then(|root| alarm::resource(root))
        {
            e.push(resource("root-cause-resource", root));
        }
        let first = created.get(key).copied().unwrap_or(raised);
        e.push(leaf("time-created", first.to_string()));
        e.push(leaf("is-cleared", (!alarm::is_active(a)).to_string()));
        e.push(leaf("last-raised", raised.to_string()));
        e.push(leaf("last-changed", changed.to_string()));
        e.push(leaf("perceived-severity", severity_name(sev)));
        e.push(leaf("alarm-text", alarm::text(a)));
        if let Some((who, at)) = alarm::acknowledgement(a) {
            let mut c = Element::new(ALARMS_NS, "operator-state-change");
            c.push(leaf("time", at.to_string()));
            c.push(leaf("operator", who));
            c.push(leaf("state", "ack"));
            e.push(c);
        }
        x733_cause(&mut e, cause);
        if let Some(t) = alarm::trend(a) {
            e.push(Element::with_text(
                X733_NS,
                "trend-indication",
                t.yang_name(),
            ));
        }
        entries.push(e);
    }
    list.push(leaf("number-of-alarms", entries.len().to_string()));
    list.push(leaf(
        "last-changed",
        last_changed.unwrap_or(started).to_string(),
    ));
    for e in entries {
        list.push(e);
    }
    top.push(list);
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::Value;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::model::AlarmCorrelation;
    use halyard_cluster_model::port::{InformationModel, Query};

    /// The demo with a shelf's root alarm, a fan's secondary one, and a
    /// power supply's alarm cleared and raised again (two objects, one
    /// ietf-alarms alarm).
    async fn demo_alarms() -> Vec<ManagedObject> {
        let m = demo_element();
        let mut n = 0;
        let mut raise = |resource: &str,
                         cause: ProbableCause,
                         sev: PerceivedSeverity,
                         at: i64,
                         cleared: Option<i64>,
                         root: &str| {
            n += 1;
            let mut v = vec![
                ("Resource", Value::Str(resource.into())),
                ("ProbableCause", Value::Enum(cause.value())),
                ("Severity", Value::Enum(sev.value())),
                ("LastSeverity", Value::Enum(sev.value())),
                ("SpecificProblem", Value::Str(format!("problem {n}"))),
                ("RaisedAt", Value::Time(Timestamp(at))),
                ("ChangedAt", Value::Time(Timestamp(at))),
                ("RootAlarm", Value::Str(root.into())),
                (
                    "Correlation",
                    Value::Enum(if root.is_empty() {
                        AlarmCorrelation::Root.value()
                    } else {
                        AlarmCorrelation::Secondary.value()
                    }),
                ),
            ];
            if let Some(c) = cleared {
                v.push(("ClearedAt", Value::Time(Timestamp(c))));
                v.push(("Severity", Value::Enum(PerceivedSeverity::Cleared.value())));
            }
            m.insert("Alarm", &format!("ne=1/alarm={n}"), &v).unwrap();
        };
        use PerceivedSeverity as S;
        raise(
            "ne=1/shelf=1",
            ProbableCause::PowerProblem,
            S::Critical,
            1_000,
            None,
            "",
        );
        raise(
            "ne=1/shelf=1/fan=1",
            ProbableCause::CoolingFanFailure,
            S::Major,
            2_000,
            None,
            "ne=1/alarm=1",
        );
        let psu = "ne=1/shelf=1/psu=2";
        raise(
            psu,
            ProbableCause::PowerSupplyFailure,
            S::Minor,
            3_000,
            Some(4_000),
            "",
        );
        raise(
            psu,
            ProbableCause::PowerSupplyFailure,
            S::Warning,
            5_000,
            Some(6_000),
            "",
        );
        m.query(&Query::default()).await.unwrap()
    }

    #[tokio::test]
    async fn one_alarm_per_resource_and_type_with_summary_and_root_cause() {
        let x = render(&demo_alarms().await, Timestamp(0)).to_xml();
        assert!(x.contains("<number-of-alarms>3</number-of-alarms>"), "{x}");
        // The latest object of the power supply's type: cleared, warning.
        assert!(
            x.contains("<last-raised>1970-01-01T00:00:05.000Z</last-raised><last-changed>1970-01-01T00:00:06.000Z</last-changed><perceived-severity>warning</perceived-severity><alarm-text>problem 4</alarm-text>"),
            "{x}"
        );
        assert!(
            x.contains("<root-cause-resource xmlns:hc=\"urn:halyard:params:xml:ns:yang:halyard-cluster\">/hc:element/hc:shelf[hc:name='ne=1/shelf=1']</root-cause-resource>"),
            "{x}"
        );
        // Created when first raised.
        assert!(
            x.contains(
                "<time-created>1970-01-01T00:00:03.000Z</time-created><is-cleared>true</is-cleared>"
            ),
            "{x}"
        );
        assert!(
            x.contains("<alarm-summary><severity>critical</severity><total>1</total><not-cleared>1</not-cleared><cleared>0</cleared></alarm-summary>"),
            "{x}"
        );
        assert!(
            x.contains("<alarm-summary><severity>warning</severity><total>1</total><not-cleared>0</not-cleared><cleared>1</cleared></alarm-summary>"),
            "{x}"
        );
        assert!(
            x.contains("<last-changed>1970-01-01T00:00:06.000Z</last-changed><alarm>"),
            "{x}"
        );
    }

    /// An alarm indication gives an alarm-notification with the same
    /// resource and type as its alarm-list entry; a cleared one says so.
    #[tokio::test]
    async fn alarm_indications_become_alarm_notifications() {
        use halyard_cluster_model::ObjectName;
        use halyard_cluster_model::model::{AlarmClearedPatch, AlarmRaisedPatch};
        let note = |class: &str, values: Vec<(&'static str, Value)>| {
            let class = SCHEMA.class(class).unwrap();
            let mut v = vec![Value::Absent; class.attributes.len()];
            for (a, x) in values {
                v[class.attribute(a).unwrap().0] = x;
            }
            Notification {
                seq: 1,
                time: Timestamp(7_000),
                class,
                source: ObjectName::parse("ne=1/shelf=1/fan=1").unwrap(),
                severity: None,
                values: v,
            }
        };
        let raised = note(
            "AlarmRaised",
            AlarmRaisedPatch::new()
                .alarm("ne=1/alarm=9")
                .resource("ne=1/shelf=1/fan=1")
                .probable_cause(ProbableCause::CoolingFanFailure)
                .severity(PerceivedSeverity::Major)
                .specific_problem("fan stalled")
                .values()
                .to_vec(),
        );
        let x = notification(&raised).unwrap().to_xml();
        assert!(
            x.contains("/hc:element/hc:fan[hc:name='ne=1/shelf=1/fan=1']</resource>")
                && x.contains(">hc-at:cooling-fan-failure</alarm-type-id>")
                && x.contains("<time>1970-01-01T00:00:07.000Z</time><perceived-severity>major</perceived-severity><alarm-text>fan stalled</alarm-text>"),
            "{x}"
        );
        let cleared = note(
            "AlarmCleared",
            AlarmClearedPatch::new()
                .alarm("ne=1/alarm=9")
                .resource("ne=1/shelf=1/fan=1")
                .probable_cause(ProbableCause::CoolingFanFailure)
                .values()
                .to_vec(),
        );
        let x = notification(&cleared).unwrap().to_xml();
        assert!(
            x.contains("<perceived-severity>cleared</perceived-severity>"),
            "{x}"
        );
        // Not an alarm indication: nothing.
        let other = note("FruChanged", Vec::new());
        assert!(notification(&other).is_none());
    }

    /// libyang accepts the rendering against the published ietf-alarms and
    /// the generated alarm-types module.
    #[tokio::test]
    async fn yanglint_accepts_the_alarms_tree() {
        let xml = render(&demo_alarms().await, Timestamp(0)).to_xml();
        crate::conformance::check_get_content(&xml).unwrap();
    }

    /// Every probable cause is an identity of the generated module.
    #[test]
    fn alarm_types_are_the_generated_modules_identities() {
        for c in ProbableCause::ALL {
            assert!(
                alarm_types::TEXT.contains(&format!("identity {} {{", c.yang_name())),
                "{c}: {}",
                alarm_types::TEXT
            );
        }
    }
}
