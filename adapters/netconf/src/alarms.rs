//! ietf-alarms (RFC 8632): `/alarms` from the one alarm engine's objects,
//! read through [`halyard_cluster_model::alarm`] as every face reads them.
//! Alarm types are the identities of the generated alarm-types module
//! ([`halyard_cluster_model::alarm_types`]), one per probable cause.
//!
//! An ietf-alarms alarm is the state of one (resource, alarm type): the
//! engine folds a repeat of an active alarm into it and makes a new object
//! when a cleared one is raised again, so the list shows, per resource
//! and type, the latest object; its status changes are those of all its
//! objects. Control (status changes kept, shelves) is configuration: the
//! element's attributes and its alarm shelves ([`control`], [`edit`]).

use std::collections::{BTreeMap, HashMap};

use halyard_cluster_model::model::{OperatorState, PerceivedSeverity, ProbableCause};
use halyard_cluster_model::port::{ManagedObject, Notification};
use halyard_cluster_model::{ObjectName, SCHEMA, SchemaEnum, Timestamp, Value, alarm, alarm_types};

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
/// The features of ietf-alarms the server supports: shelving (the
/// element's alarm shelves), history (alarms' status changes, compress),
/// the summary, operator actions (every operator state, kept with who,
/// when and why; `ack` is also the engine's acknowledgement), and from the
/// engine's root-cause suppression the root cause of a secondary alarm and
/// the resources a root alarm's secondaries are on (its impact).
pub const FEATURES: &[&str] = &[
    "alarm-shelving",
    "alarm-history",
    "alarm-summary",
    "operator-actions",
    "root-cause-analysis",
    "service-impact-analysis",
];

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
/// changed or cleared), or `alarm-inventory-changed`, beside the schema's
/// own notification.
pub fn notification(n: &Notification) -> Option<Element> {
    if n.class.name == alarm::INVENTORY_CHANGED {
        return Some(Element::new(ALARMS_NS, "alarm-inventory-changed"));
    }
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

/// The persistent name a resource names: the key of an instance-identifier
/// of a halyard-cluster entry (as the alarm list gives it), or the text
/// itself (a persistent name).
pub fn resource_name(resource: &str) -> &str {
    resource
        .split_once("name='")
        .and_then(|(_, r)| r.split_once('\''))
        .or_else(|| {
            resource
                .split_once("name=\"")
                .and_then(|(_, r)| r.split_once('"'))
        })
        .map_or(resource, |(n, _)| n)
}

/// The alarm type an `alarm-type-id` names (its identity, with or without
/// a prefix).
pub fn alarm_type(type_id: &str) -> Option<ProbableCause> {
    type_id.rsplit(':').next().unwrap_or(type_id).parse().ok()
}

/// The alarm object behind an alarm-list entry's keys (its resource as an
/// instance-identifier or a persistent name, and its type identity): the
/// latest of that resource and type.
pub fn find<'a>(
    objects: &'a [ManagedObject],
    resource: &str,
    type_id: &str,
) -> Option<&'a ManagedObject> {
    let name = resource_name(resource);
    let cause = alarm_type(type_id)?;
    objects
        .iter()
        .filter(|o| alarm::is_alarm(o))
        .filter(|o| alarm::resource(o) == Some(name) && alarm::cause(o) == Some(cause))
        .max_by_key(|o| (alarm::times(o).0, o.index))
}

/// The latest alarm object of each (resource, type), when the first was
/// raised (the entry's time-created), and the status changes of all its
/// objects, newest first.
struct Entry<'a> {
    latest: &'a ManagedObject,
    created: Option<Timestamp>,
    changes: Vec<(Timestamp, PerceivedSeverity, &'a str)>,
    /// Operators' actions (time, operator, state, text), newest first.
    actions: Vec<(Timestamp, &'a str, OperatorState, &'a str)>,
}

fn entries(objects: &[ManagedObject]) -> BTreeMap<(&str, u32), Entry<'_>> {
    let mut changes: HashMap<&str, Vec<(Timestamp, PerceivedSeverity, &str)>> = HashMap::new();
    let mut parents: HashMap<u32, &str> = HashMap::new();
    for o in objects.iter().filter(|o| alarm::is_alarm(o)) {
        parents.insert(o.index, o.name.as_str());
    }
    type Action<'a> = (Timestamp, &'a str, OperatorState, &'a str);
    let mut actions: HashMap<&str, Vec<Action>> = HashMap::new();
    for o in objects {
        let Some(parent) = parents.get(&o.parent_index) else {
            continue;
        };
        if let Some(c) = alarm::status_change(o) {
            changes.entry(parent).or_default().push(c);
        } else if let Some(a) = alarm::operator_action(o) {
            actions.entry(parent).or_default().push(a);
        }
    }
    let mut out: BTreeMap<(&str, u32), Entry> = BTreeMap::new();
    for o in objects.iter().filter(|o| alarm::is_alarm(o)) {
        let (Some(r), Some(c)) = (alarm::resource(o), alarm::cause(o)) else {
            continue;
        };
        let e = out.entry((r, c.value())).or_insert(Entry {
            latest: o,
            created: None,
            changes: Vec::new(),
            actions: Vec::new(),
        });
        if (alarm::times(o).0, o.index) > (alarm::times(e.latest).0, e.latest.index) {
            e.latest = o;
        }
        if let Some(t) = alarm::times(o).0 {
            e.created = Some(e.created.map_or(t, |f| f.min(t)));
        }
        e.changes
            .extend(changes.get(o.name.as_str()).into_iter().flatten().copied());
        e.actions
            .extend(actions.get(o.name.as_str()).into_iter().flatten().copied());
    }
    for e in out.values_mut() {
        // Newest first; one per instant (the list's key is the time).
        e.changes.sort_by_key(|c| std::cmp::Reverse(c.0));
        e.changes.dedup_by_key(|c| c.0);
        e.actions.sort_by_key(|c| std::cmp::Reverse(c.0));
        e.actions.dedup_by_key(|c| c.0);
    }
    out
}

/// The state leaves of an alarm (ietf-alarms resource-alarm-parameters):
/// is-cleared, last-raised, last-changed, severity, text and the status
/// changes; None for an alarm without its times or severity.
fn alarm_state(e: &Entry, into: &mut Element) -> Option<Timestamp> {
    let a = e.latest;
    let sev = alarm::last_severity(a)?;
    let (Some(raised), Some(changed)) = (alarm::times(a).0, alarm::last_changed(a)) else {
        return None;
    };
    into.push(leaf("is-cleared", (!alarm::is_active(a)).to_string()));
    into.push(leaf("last-raised", raised.to_string()));
    into.push(leaf("last-changed", changed.to_string()));
    into.push(leaf("perceived-severity", severity_name(sev)));
    into.push(leaf("alarm-text", alarm::text(a)));
    let mut changes = e.changes.clone();
    // An alarm of an older release, which kept no status changes: its
    // present state is the one change known.
    if changes.is_empty() {
        let now = if alarm::is_active(a) {
            sev
        } else {
            PerceivedSeverity::Cleared
        };
        changes.push((changed, now, alarm::text(a)));
    }
    for (time, severity, text) in changes {
        let mut c = Element::new(ALARMS_NS, "status-change");
        c.push(leaf("time", time.to_string()));
        c.push(leaf("perceived-severity", severity_name(severity)));
        c.push(leaf("alarm-text", text));
        into.push(c);
    }
    Some(changed)
}

/// The entry's operator-state-change list, newest first (an alarm
/// acknowledged by an older release, which kept no actions: its
/// acknowledgement).
fn operator_changes(e: &Entry, into: &mut Element) {
    let mut push = |time: Timestamp, who: &str, state: &str, text: &str| {
        let mut c = Element::new(ALARMS_NS, "operator-state-change");
        c.push(leaf("time", time.to_string()));
        c.push(leaf("operator", who));
        c.push(leaf("state", state));
        if !text.is_empty() {
            c.push(leaf("text", text));
        }
        into.push(c);
    };
    if e.actions.is_empty() {
        if let Some((who, at)) = alarm::acknowledgement(e.latest) {
            push(at, who, "ack", "");
        }
        return;
    }
    for (time, who, state, text) in &e.actions {
        push(*time, who, state.yang_name(), text);
    }
}

/// `/alarms/control` of the element's objects: the status changes kept
/// per alarm and the shelves. Notification of status changes is always
/// all-state-changes (the default, not shown).
pub fn control(objects: &[ManagedObject]) -> Element {
    let mut c = Element::new(ALARMS_NS, "control");
    if let Some(root) = objects
        .iter()
        .find(|o| o.parent_index == 0 && o.class.attribute(alarm::MAX_STATUS_CHANGES).is_some())
    {
        c.push(leaf(
            "max-alarm-status-changes",
            alarm::max_status_changes(root).map_or("infinite".to_string(), |n| n.to_string()),
        ));
    }
    let mut shelving = Element::new(ALARMS_NS, "alarm-shelving");
    for s in objects
        .iter()
        .filter(|o| SCHEMA.is_a(o.class.name, alarm::SHELF_CLASS))
    {
        let mut e = Element::new(ALARMS_NS, "shelf");
        e.push(leaf("name", alarm::shelf_name(s)));
        let (resource_match, cause, _) = alarm::shelf_match(s);
        if let Some(r) = resource_match {
            e.push(resource("resource", r));
        }
        if let Some(cause) = cause {
            let mut t = Element::new(ALARMS_NS, "alarm-type");
            t.push(type_id(cause));
            t.push(leaf("alarm-type-qualifier-match", ""));
            e.push(t);
        }
        let reason = alarm::shelf_reason(s);
        if !reason.is_empty() {
            e.push(leaf("description", reason));
        }
        shelving.push(e);
    }
    c.push(shelving);
    c
}

/// `/alarms` of the element: control, alarm inventory, summary, alarm
/// list and shelved alarms.
pub fn render(objects: &[ManagedObject], started: Timestamp) -> Element {
    let by_name: HashMap<&str, &ManagedObject> =
        objects.iter().map(|o| (o.name.as_str(), o)).collect();
    let all = entries(objects);
    let shelves_active = objects
        .iter()
        .any(|o| SCHEMA.is_a(o.class.name, alarm::SHELF_CLASS));
    let mut top = Element::new(ALARMS_NS, "alarms");
    top.push(control(objects));

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

    // The summary counts the alarm list: shelved alarms are not in it.
    let listed = || all.values().filter(|e| alarm::shelf(e.latest).is_none());
    let mut summary = Element::new(ALARMS_NS, "summary");
    for s in alarm::ACTIVE_SEVERITIES.iter().rev() {
        let (mut cleared, mut not_cleared) = (0u32, 0u32);
        for e in listed() {
            if alarm::last_severity(e.latest) == Some(*s) {
                if alarm::is_active(e.latest) {
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
    if shelves_active {
        summary.push(Element::new(ALARMS_NS, "shelves-active"));
    }
    top.push(summary);

    // The resources each root alarm's active secondaries are on.
    let mut impacted: HashMap<&str, Vec<&str>> = HashMap::new();
    for o in objects.iter().filter(|o| alarm::is_active(o)) {
        if let (Some(root), Some(res)) = (alarm::root_alarm(o), alarm::resource(o)) {
            let v = impacted.entry(root).or_default();
            if !v.contains(&res) {
                v.push(res);
            }
        }
    }
    let mut list = Element::new(ALARMS_NS, "alarm-list");
    let mut shelved = Vec::new();
    let mut listed_entries = Vec::new();
    let (mut last_changed, mut shelved_changed) = (None, None);
    for (key, entry) in &all {
        let a = entry.latest;
        let Some(cause) = alarm::cause(a) else {
            continue;
        };
        let shelf = alarm::shelf(a);
        let tag = if shelf.is_some() {
            "shelved-alarm"
        } else {
            "alarm"
        };
        let mut e = Element::new(ALARMS_NS, tag);
        e.push(resource("resource", key.0));
        e.push(type_id(cause));
        e.push(leaf("alarm-type-qualifier", ""));
        // A root alarm names the resources its secondaries are on.
        for res in impacted.get(a.name.as_str()).into_iter().flatten() {
            e.push(resource("impacted-resource", res));
        }
        // A secondary alarm names its root alarm's resource.
        if let Some(root) = alarm::root_alarm(a)
            .and_then(|n| by_name.get(n))
            .and_then(|root| alarm::resource(root))
        {
            e.push(resource("root-cause-resource", root));
        }
        if let Some(shelf) = shelf {
            let name = shelf.rsplit_once('=').map_or(shelf, |(_, n)| n);
            e.push(leaf("shelf-name", name));
        } else {
            let first = entry.created.or(alarm::times(a).0);
            if let Some(first) = first {
                e.push(leaf("time-created", first.to_string()));
            }
        }
        let Some(changed) = alarm_state(entry, &mut e) else {
            continue;
        };
        operator_changes(entry, &mut e);
        x733_cause(&mut e, cause);
        if let Some(t) = alarm::trend(a) {
            e.push(Element::with_text(
                X733_NS,
                "trend-indication",
                t.yang_name(),
            ));
        }
        if shelf.is_some() {
            shelved_changed = shelved_changed.max(Some(changed));
            shelved.push(e);
        } else {
            last_changed = last_changed.max(Some(changed));
            listed_entries.push(e);
        }
    }
    list.push(leaf("number-of-alarms", listed_entries.len().to_string()));
    list.push(leaf(
        "last-changed",
        last_changed.unwrap_or(started).to_string(),
    ));
    for e in listed_entries {
        list.push(e);
    }
    top.push(list);
    let mut sh = Element::new(ALARMS_NS, "shelved-alarms");
    sh.push(leaf("number-of-shelved-alarms", shelved.len().to_string()));
    if let Some(t) = shelved_changed {
        sh.push(leaf("shelved-alarms-last-changed", t.to_string()));
    }
    for e in shelved {
        sh.push(e);
    }
    top.push(sh);
    top
}

/// `/alarms` of a configuration datastore: its control.
pub fn alarms_config(store: &crate::data::ConfigStore) -> Element {
    let objects = store.objects();
    let mut top = Element::new(ALARMS_NS, "alarms");
    top.push(control(&objects));
    top
}

/// Applies an edit-config of `/alarms` to a configuration store: the
/// control's max-alarm-status-changes is the element's attribute, each
/// alarm-shelving shelf an alarm shelf of the element (created, replaced,
/// merged or deleted as the edit says). A shelf matches one resource (an
/// instance-identifier of a halyard-cluster entry, as the alarm list gives
/// it, or its persistent name) and one alarm type at most; the server
/// notifies all state changes.
pub fn edit(
    store: &mut crate::data::ConfigStore,
    alarms: &Element,
    op: crate::data::Op,
) -> Result<(), crate::error::RpcError> {
    use crate::data::Op;
    use crate::error::{RpcError, Tag};
    let unsupported = |what: &str, msg: String| {
        RpcError::application(Tag::OperationNotSupported, msg).with_info("bad-element", what)
    };
    let invalid = |what: &str, msg: String| {
        RpcError::application(Tag::InvalidValue, msg).with_info("bad-element", what)
    };
    let op_of = crate::data::op_of;
    let Some(root) = store
        .entries
        .iter()
        .find(|(n, e)| {
            n.parent().is_none() && e.class.attribute(alarm::MAX_STATUS_CHANGES).is_some()
        })
        .map(|(n, _)| n.clone())
    else {
        return Err(RpcError::application(
            Tag::DataMissing,
            "the element has no configuration entry",
        ));
    };
    let shelf_class = SCHEMA
        .class(alarm::SHELF_CLASS)
        .ok_or_else(|| RpcError::operation_failed("the schema has no alarm shelves"))?;
    let op = op_of(alarms, op)?;
    for control in &alarms.children {
        if control.ns != ALARMS_NS || control.name != "control" {
            return Err(unsupported(
                &control.name,
                format!("/alarms/{} is not configuration", control.name),
            ));
        }
        let cop = op_of(control, op)?;
        for item in &control.children {
            let iop = op_of(item, cop)?;
            match item.name.as_str() {
                "max-alarm-status-changes" => {
                    let entry = store.entries.get_mut(&root).expect("root entry");
                    let (i, a) = entry
                        .class
                        .attribute(alarm::MAX_STATUS_CHANGES)
                        .expect("the root has it");
                    entry.values[i] = match (iop, item.trimmed()) {
                        (Op::None, _) => continue,
                        (Op::Delete | Op::Remove, _) => {
                            Value::parse(&a.ty, a.default.unwrap_or("32")).unwrap_or(Value::U32(32))
                        }
                        (_, "infinite") => Value::U32(0),
                        (_, n) => match n.parse::<u16>() {
                            Ok(n) => Value::U32(u32::from(n)),
                            Err(_) => {
                                return Err(invalid(
                                    &item.name,
                                    format!("'{n}' is neither a uint16 nor infinite"),
                                ));
                            }
                        },
                    };
                }
                "notify-status-changes" => {
                    if !matches!(iop, Op::Delete | Op::Remove | Op::None)
                        && item.trimmed() != "all-state-changes"
                    {
                        return Err(unsupported(
                            &item.name,
                            format!(
                                "notify-status-changes '{}' is not supported: the server notifies all state changes",
                                item.trimmed()
                            ),
                        ));
                    }
                }
                "notify-severity-level" => {
                    return Err(unsupported(
                        &item.name,
                        "the server notifies all state changes, at every severity".into(),
                    ));
                }
                "alarm-shelving" => {
                    let sop = op_of(item, iop)?;
                    let shelves: Vec<ObjectName> = store
                        .entries
                        .keys()
                        .filter(|n| {
                            n.parent().as_ref() == Some(&root)
                                && Some(n.leaf().0) == shelf_class.rdn
                        })
                        .cloned()
                        .collect();
                    match sop {
                        Op::Delete if shelves.is_empty() && item.children.is_empty() => {
                            return Err(RpcError::application(
                                Tag::DataMissing,
                                "there are no alarm shelves",
                            )
                            .with_info("bad-element", "alarm-shelving"));
                        }
                        Op::Delete | Op::Remove | Op::Replace => {
                            for n in shelves {
                                store.entries.remove(&n);
                            }
                            if sop != Op::Replace {
                                continue;
                            }
                        }
                        _ => {}
                    }
                    for shelf in &item.children {
                        edit_shelf(store, &root, shelf_class, shelf, op_of(shelf, sop)?)?;
                    }
                }
                other => {
                    return Err(unsupported(
                        other,
                        format!("/alarms/control/{other} is not supported"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// One `shelf` entry of an edit: an alarm shelf of the element.
fn edit_shelf(
    store: &mut crate::data::ConfigStore,
    root: &ObjectName,
    class: &'static halyard_cluster_model::ClassMeta,
    shelf: &Element,
    op: crate::data::Op,
) -> Result<(), crate::error::RpcError> {
    use crate::data::Op;
    use crate::error::{RpcError, Tag};
    let bad = |tag: Tag, what: &str, msg: String| {
        RpcError::application(tag, msg).with_info("bad-element", what)
    };
    if shelf.ns != ALARMS_NS || shelf.name != "shelf" {
        return Err(bad(
            Tag::UnknownElement,
            &shelf.name,
            format!("'{}' is no element of alarm-shelving", shelf.name),
        ));
    }
    let key = shelf
        .find(ALARMS_NS, "name")
        .map(|n| n.trimmed().to_string())
        .ok_or_else(|| bad(Tag::MissingElement, "name", "a shelf needs its name".into()))?;
    let rdn = class
        .rdn
        .ok_or_else(|| RpcError::operation_failed("alarm shelves have no relative name"))?;
    let name = root.child(rdn, &key).map_err(|_| {
        bad(
            Tag::InvalidValue,
            "name",
            format!("shelf name '{key}': use letters, digits, '.', '-' and '_'"),
        )
    })?;
    let exists = store.entries.contains_key(&name);
    match op {
        Op::Delete if !exists => {
            return Err(bad(
                Tag::DataMissing,
                "shelf",
                format!("there is no shelf '{key}'"),
            ));
        }
        Op::Delete | Op::Remove => {
            store.entries.remove(&name);
            return Ok(());
        }
        Op::Create if exists => {
            return Err(bad(
                Tag::DataExists,
                "shelf",
                format!("shelf '{key}' exists"),
            ));
        }
        Op::None if !exists => {
            return Err(bad(
                Tag::DataMissing,
                "shelf",
                format!("there is no shelf '{key}'"),
            ));
        }
        _ => {}
    }
    // Checked whole before the store changes.
    let mut sets: Vec<(&str, String)> = Vec::new();
    let mut set = |attr: &'static str, v: String| sets.push((attr, v));
    let resources: Vec<&Element> = shelf
        .children
        .iter()
        .filter(|c| c.name == "resource")
        .collect();
    if resources.len() > 1 {
        return Err(bad(
            Tag::OperationNotSupported,
            "resource",
            "a shelf matches one resource on this server".into(),
        ));
    }
    if let Some(r) = resources.first() {
        let text = r.trimmed();
        // An instance-identifier of a halyard-cluster entry, or a
        // persistent name.
        let object = resource_name(text);
        if ObjectName::parse(object).is_err() {
            return Err(bad(
                Tag::OperationNotSupported,
                "resource",
                format!(
                    "resource '{text}': a shelf matches a resource as the alarm list names it (an instance-identifier of a halyard-cluster entry) or by its persistent name"
                ),
            ));
        }
        set(alarm::SHELF_RESOURCE, object.to_string());
    }
    let types: Vec<&Element> = shelf
        .children
        .iter()
        .filter(|c| c.name == "alarm-type")
        .collect();
    if types.len() > 1 {
        return Err(bad(
            Tag::OperationNotSupported,
            "alarm-type",
            "a shelf matches one alarm type on this server".into(),
        ));
    }
    if let Some(t) = types.first() {
        let id = t
            .find(ALARMS_NS, "alarm-type-id")
            .map(|e| e.trimmed().to_string())
            .unwrap_or_default();
        let Some(cause) = alarm_type(&id) else {
            return Err(bad(
                Tag::InvalidValue,
                "alarm-type-id",
                format!("'{id}' is no alarm type of this element (see the alarm inventory)"),
            ));
        };
        let qualifier = t
            .find(ALARMS_NS, "alarm-type-qualifier-match")
            .map(|e| e.trimmed())
            .unwrap_or("");
        if !qualifier.is_empty() && qualifier != ".*" {
            return Err(bad(
                Tag::OperationNotSupported,
                "alarm-type-qualifier-match",
                "the element's alarm types have no qualifiers: match them with an empty pattern"
                    .into(),
            ));
        }
        set(alarm::SHELF_ALARM_TYPE, cause.yang_name().to_string());
    }
    if let Some(d) = shelf.find(ALARMS_NS, "description") {
        set(alarm::SHELF_REASON, d.trimmed().to_string());
    }
    if op == Op::Replace || !exists {
        store
            .entries
            .insert(name.clone(), crate::data::ConfigEntry::fresh(class));
    }
    let entry = store.entries.get_mut(&name).expect("entry present");
    for (attr, v) in sets {
        if let Some((i, _)) = entry.class.attribute(attr) {
            entry.values[i] = Value::Str(v);
        }
    }
    Ok(())
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
        // And the root alarm (the shelf's) names the fan its secondary is on.
        assert!(
            x.contains("<impacted-resource xmlns:hc=\"urn:halyard:params:xml:ns:yang:halyard-cluster\">/hc:element/hc:fan[hc:name='ne=1/shelf=1/fan=1']</impacted-resource>"),
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

    /// A shelf holding the fan's alarm moves it from the alarm list to the
    /// shelved alarms; status changes of all of an alarm's objects are
    /// listed newest first; control shows the shelf and the bound; libyang
    /// accepts it all.
    #[tokio::test]
    async fn shelved_alarms_and_status_changes() {
        let m = demo_element();
        for (n, (res, cause, shelf)) in [
            ("ne=1/shelf=1", ProbableCause::PowerProblem, ""),
            (
                "ne=1/shelf=1/fan=1",
                ProbableCause::CoolingFanFailure,
                "ne=1/alarmshelf=fans",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let n = n + 1;
            m.insert(
                "Alarm",
                &format!("ne=1/alarm={n}"),
                &[
                    ("Resource", Value::Str(res.into())),
                    ("ProbableCause", Value::Enum(cause.value())),
                    ("Severity", Value::Enum(PerceivedSeverity::Major.value())),
                    (
                        "LastSeverity",
                        Value::Enum(PerceivedSeverity::Major.value()),
                    ),
                    ("SpecificProblem", Value::Str(format!("now {n}"))),
                    ("RaisedAt", Value::Time(Timestamp(1_000))),
                    ("ChangedAt", Value::Time(Timestamp(2_000))),
                    ("Shelf", Value::Str(shelf.into())),
                ],
            )
            .unwrap();
            for (k, (t, sev, text)) in [
                (1_000, PerceivedSeverity::Minor, "first"),
                (2_000, PerceivedSeverity::Major, "now"),
            ]
            .into_iter()
            .enumerate()
            {
                let v = alarm::status_change_values(Timestamp(t), sev, text);
                m.insert(
                    alarm::CHANGE_CLASS,
                    &format!("ne=1/alarm={n}/change={}", k + 1),
                    &v,
                )
                .unwrap();
            }
        }
        m.insert(
            alarm::SHELF_CLASS,
            "ne=1/alarmshelf=fans",
            &[
                ("Resource", Value::Str("ne=1/shelf=1/fan=1".into())),
                ("AlarmType", Value::Str("cooling-fan-failure".into())),
                ("Reason", Value::Str("fan swap tonight".into())),
            ],
        )
        .unwrap();
        let objs = m.query(&Query::default()).await.unwrap();
        let x = render(&objs, Timestamp(0)).to_xml();
        assert!(x.contains("<number-of-alarms>1</number-of-alarms>"), "{x}");
        // The summary counts the listed alarm only.
        assert!(
            x.contains("<severity>major</severity><total>1</total><not-cleared>1</not-cleared>"),
            "{x}"
        );
        assert!(
            x.contains("<number-of-shelved-alarms>1</number-of-shelved-alarms>"),
            "{x}"
        );
        let shelved = &x[x.find("<shelved-alarm>").expect("a shelved alarm")..];
        assert!(
            shelved.contains("fan[hc:name='ne=1/shelf=1/fan=1']</resource>")
                && shelved.contains("<shelf-name>fans</shelf-name>"),
            "{shelved}"
        );
        assert!(
            x.contains("<status-change><time>1970-01-01T00:00:02.000Z</time><perceived-severity>major</perceived-severity><alarm-text>now</alarm-text></status-change><status-change><time>1970-01-01T00:00:01.000Z</time><perceived-severity>minor</perceived-severity><alarm-text>first</alarm-text></status-change>"),
            "{x}"
        );
        assert!(x.contains("<shelves-active/>"), "{x}");
        assert!(
            x.contains("<shelf><name>fans</name><resource xmlns:hc=")
                && x.contains("<alarm-type-qualifier-match/></alarm-type><description>fan swap tonight</description></shelf>"),
            "{x}"
        );
        assert!(
            x.contains("<max-alarm-status-changes>32</max-alarm-status-changes>"),
            "{x}"
        );
        crate::conformance::check_get_content(&x).unwrap();
    }

    /// An edit of /alarms/control makes the element's shelves and bound;
    /// what cannot be kept is refused with the reason.
    #[tokio::test]
    async fn control_edits_become_shelves_and_the_bound() {
        use crate::data::{ConfigStore, Op};
        let objs = demo_element().query(&Query::default()).await.unwrap();
        let mut store = ConfigStore::from_objects(&objs);
        let edit_of = |xml: &str| crate::xml::parse(xml, 64).unwrap();
        let e = edit_of(&format!(
            "<alarms xmlns='{ALARMS_NS}'><control><max-alarm-status-changes>infinite</max-alarm-status-changes>\
             <alarm-shelving><shelf><name>fans</name>\
             <resource xmlns:hc='urn:halyard:params:xml:ns:yang:halyard-cluster'>/hc:element/hc:fan[hc:name='ne=1/shelf=1/fan=1']</resource>\
             <alarm-type><alarm-type-id xmlns:hc-at='{}'>hc-at:cooling-fan-failure</alarm-type-id><alarm-type-qualifier-match/></alarm-type>\
             <description>swap</description></shelf></alarm-shelving></control></alarms>",
            alarm_types::NAMESPACE
        ));
        edit(&mut store, &e, Op::Merge).unwrap();
        let x = alarms_config(&store).to_xml();
        assert!(
            x.contains("<max-alarm-status-changes>infinite</max-alarm-status-changes>")
                && x.contains("<name>fans</name>")
                && x.contains("fan[hc:name='ne=1/shelf=1/fan=1']</resource>")
                && x.contains("hc-at:cooling-fan-failure</alarm-type-id>"),
            "{x}"
        );
        crate::conformance::check_get_content(&x).unwrap();
        // Two resources in one shelf: refused, nothing half-made.
        let two = edit_of(&format!(
            "<alarms xmlns='{ALARMS_NS}'><control><alarm-shelving><shelf><name>x</name>\
             <resource>ne=1/shelf=1</resource><resource>ne=1/shelf=2</resource></shelf></alarm-shelving></control></alarms>"
        ));
        let err = edit(&mut store, &two, Op::Merge).unwrap_err();
        assert!(format!("{err:?}").contains("one resource"), "{err:?}");
        // An unknown alarm type: invalid-value.
        let bad = edit_of(&format!(
            "<alarms xmlns='{ALARMS_NS}'><control><alarm-shelving><shelf><name>y</name>\
             <alarm-type><alarm-type-id>nope</alarm-type-id><alarm-type-qualifier-match/></alarm-type></shelf></alarm-shelving></control></alarms>"
        ));
        let err = edit(&mut store, &bad, Op::Merge).unwrap_err();
        assert!(format!("{err:?}").contains("no alarm type"), "{err:?}");
        // Deleted: gone.
        let del = edit_of(&format!(
            "<alarms xmlns='{ALARMS_NS}' xmlns:nc='urn:ietf:params:xml:ns:netconf:base:1.0'><control><alarm-shelving>\
             <shelf nc:operation='delete'><name>fans</name></shelf></alarm-shelving></control></alarms>"
        ));
        edit(&mut store, &del, Op::Merge).unwrap();
        assert!(!alarms_config(&store).to_xml().contains("<shelf>"));
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
