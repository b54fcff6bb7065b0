//! Representations: every object, tree, job, notification and error as XML
//! (the default, written through [`crate::xml::Doc`]) or JSON; the XML
//! Schema that describes the XML is generated in `xsd.rs` ([`xsd`]). All
//! of it is driven by the schema metadata; nothing here names an attribute.

use halyard_cluster_model::meta::{AttrMeta, AttrType};
use halyard_cluster_model::port::{JobStatus, ManagedObject, Notification};
use halyard_cluster_model::{SCHEMA, Value};
use serde_json::{Map, Value as Json, json};

use crate::error::ApiError;
use crate::xml::Doc;
pub use crate::xsd::xsd;

/// The media type of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    /// XML unless the client prefers JSON (`Accept` or `?format=json`).
    pub fn negotiate(accept: Option<&str>, query: Option<&str>) -> Format {
        if let Some(q) = query {
            for pair in q.split('&') {
                match pair {
                    "format=json" => return Format::Json,
                    "format=xml" => return Format::Xml,
                    _ => {}
                }
            }
        }
        let Some(accept) = accept else {
            return Format::Xml;
        };
        // The first of the two media types with the highest q wins; XML on a tie.
        let mut best = (Format::Xml, -1.0f32);
        for part in accept.split(',') {
            let mut it = part.split(';');
            let media = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.parse::<f32>().ok())
                .unwrap_or(1.0);
            let f = match media.as_str() {
                "application/json" => Format::Json,
                "application/xml" | "text/xml" | "*/*" | "application/*" => Format::Xml,
                _ => continue,
            };
            if q > best.1 || (q == best.1 && f == Format::Xml) {
                best = (f, q);
            }
        }
        best.0
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "application/xml; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

fn ns() -> &'static str {
    SCHEMA.module.namespace
}

/// A document: the XML declaration and the root element's opening, with
/// the namespace and then `attrs`.
pub fn xml_root(name: &str, attrs: &[(&str, &str)]) -> Doc {
    let mut d = Doc::new();
    let mut all = vec![("xmlns", ns())];
    all.extend_from_slice(attrs);
    d.start(name, &all);
    d
}

/// A value in JSON, after RFC 7951: 32-bit integers and booleans as JSON
/// values, 64-bit integers, decimals, times and enumerations as strings.
pub fn value_json(v: &Value, ty: &AttrType) -> Option<Json> {
    Some(match v {
        Value::Absent => return None,
        Value::Bool(b) => Json::Bool(*b),
        Value::U32(n) => json!(n),
        Value::I32(n) => json!(n),
        _ => Json::String(v.render(ty)),
    })
}

/// The text of a JSON value given for an attribute or parameter.
pub fn json_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn write_values_xml(d: &mut Doc, attrs: &[AttrMeta], values: &[Value]) {
    for (a, v) in attrs.iter().zip(values) {
        if matches!(v, Value::Absent) {
            continue;
        }
        d.leaf(a.yang_name, &v.render(&a.ty));
    }
}

fn values_json(attrs: &[AttrMeta], values: &[Value]) -> Map<String, Json> {
    attrs
        .iter()
        .zip(values)
        .filter_map(|(a, v)| value_json(v, &a.ty).map(|j| (a.yang_name.to_string(), j)))
        .collect()
}

/// One object as an XML element (no declaration).
pub fn object_xml(d: &mut Doc, o: &ManagedObject) {
    let index = o.index.to_string();
    d.start(
        o.class.yang_name,
        &[("class", o.class.name), ("index", &index)],
    );
    write_values_xml(d, o.class.attributes, &o.values);
    d.end(o.class.yang_name);
}

pub fn object_json(o: &ManagedObject) -> Json {
    json!({
        "class": o.class.name,
        "index": o.index,
        "attributes": values_json(o.class.attributes, &o.values),
    })
}

pub fn object_doc(o: &ManagedObject, f: Format) -> String {
    match f {
        Format::Json => object_json(o).to_string(),
        Format::Xml => {
            let index = o.index.to_string();
            let mut d = xml_root(
                o.class.yang_name,
                &[("class", o.class.name), ("index", &index)],
            );
            write_values_xml(&mut d, o.class.attributes, &o.values);
            d.end(o.class.yang_name);
            d.finish()
        }
    }
}

pub fn objects_doc(objs: &[ManagedObject], f: Format) -> String {
    match f {
        Format::Json => {
            json!({ "objects": objs.iter().map(object_json).collect::<Vec<_>>() }).to_string()
        }
        Format::Xml => {
            let mut d = xml_root("objects", &[("count", &objs.len().to_string())]);
            for o in objs {
                object_xml(&mut d, o);
            }
            d.end("objects");
            d.finish()
        }
    }
}

/// The state attributes shown in the tree: enumerations and flags exported
/// as metrics (admin, operational, availability states, presence, ...).
fn tree_states(o: &ManagedObject) -> impl Iterator<Item = (&'static AttrMeta, &Value)> {
    o.class.attributes.iter().zip(&o.values).filter(|(a, v)| {
        a.metric.is_some()
            && matches!(a.ty, AttrType::Enum(_) | AttrType::Boolean)
            && !matches!(v, Value::Absent)
    })
}

/// The containment tree: objects nested under their containers.
pub fn tree_doc(objs: &[ManagedObject], f: Format) -> String {
    use std::collections::HashMap;
    let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
    let present: std::collections::HashSet<u32> = objs.iter().map(|o| o.index).collect();
    let mut roots = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        if o.parent_index == 0 || !present.contains(&o.parent_index) {
            roots.push(i);
        } else {
            children.entry(o.parent_index).or_default().push(i);
        }
    }
    fn xml(d: &mut Doc, objs: &[ManagedObject], ch: &HashMap<u32, Vec<usize>>, i: usize) {
        let o = &objs[i];
        d.start(
            "object",
            &[
                ("name", o.name.as_str()),
                ("class", o.class.name),
                ("index", &o.index.to_string()),
            ],
        );
        for (a, v) in tree_states(o) {
            d.empty(
                "state",
                &[("name", a.yang_name), ("value", &v.render(&a.ty))],
            );
        }
        for &c in ch.get(&o.index).map(Vec::as_slice).unwrap_or(&[]) {
            xml(d, objs, ch, c);
        }
        d.end("object");
    }
    fn js(objs: &[ManagedObject], ch: &HashMap<u32, Vec<usize>>, i: usize) -> Json {
        let o = &objs[i];
        let states: Map<String, Json> = tree_states(o)
            .map(|(a, v)| (a.yang_name.to_string(), Json::String(v.render(&a.ty))))
            .collect();
        json!({
            "name": o.name.as_str(),
            "class": o.class.name,
            "index": o.index,
            "states": states,
            "children": ch.get(&o.index).map(Vec::as_slice).unwrap_or(&[]).iter().map(|&c| js(objs, ch, c)).collect::<Vec<_>>(),
        })
    }
    match f {
        Format::Json => {
            json!({ "tree": roots.iter().map(|&r| js(objs, &children, r)).collect::<Vec<_>>() })
                .to_string()
        }
        Format::Xml => {
            let mut d = xml_root("tree", &[]);
            for &r in &roots {
                xml(&mut d, objs, &children, r);
            }
            d.end("tree");
            d.finish()
        }
    }
}

/// A job's progress, as answered by POST on an operation and GET on the job.
#[derive(Debug, Clone)]
pub struct JobView {
    pub job: String,
    pub operation: String,
    pub target: String,
    pub status: JobStatus,
}

pub fn job_doc(j: &JobView, f: Format) -> String {
    let state = {
        use halyard_cluster_model::SchemaEnum;
        let meta = <halyard_cluster_model::model::JobState as SchemaEnum>::META;
        meta.by_value(j.status.state.value())
            .map_or("unknown", |v| v.yang_name)
    };
    match f {
        Format::Json => json!({
            "job": j.job,
            "operation": j.operation,
            "target": j.target,
            "state": state,
            "finished": j.status.finished(),
            "steps-done": j.status.steps_done,
            "steps-total": j.status.steps_total,
            "detail": j.status.detail,
            "result": j.status.result,
        })
        .to_string(),
        Format::Xml => {
            let mut d = xml_root("job-status", &[]);
            d.leaf("job", &j.job);
            d.leaf("operation", &j.operation);
            d.leaf("target", &j.target);
            d.leaf("state", state);
            d.leaf("finished", &j.status.finished().to_string());
            d.leaf("steps-done", &j.status.steps_done.to_string());
            d.leaf("steps-total", &j.status.steps_total.to_string());
            d.leaf("detail", &j.status.detail);
            if let Some(r) = j.status.result {
                d.leaf("result", &r.to_string());
            }
            d.end("job-status");
            d.finish()
        }
    }
}

pub fn notification_json(n: &Notification) -> Json {
    json!({
        "seq": n.seq,
        "time": n.time.to_string(),
        "class": n.class.name,
        "event": n.class.yang_name,
        "source": n.source.as_str(),
        "severity": n.severity.map(|s| {
            use halyard_cluster_model::SchemaEnum;
            <halyard_cluster_model::model::PerceivedSeverity as SchemaEnum>::META
                .by_value(s.value()).map_or("", |v| v.yang_name)
        }),
        "values": values_json(n.class.attributes, &n.values),
    })
}

pub fn notification_xml(d: &mut Doc, n: &Notification) {
    d.start(
        "notification",
        &[
            ("seq", &n.seq.to_string()),
            ("time", &n.time.to_string()),
            ("source", n.source.as_str()),
        ],
    );
    d.start(n.class.yang_name, &[]);
    write_values_xml(d, n.class.attributes, &n.values);
    d.end(n.class.yang_name);
    d.end("notification");
}

pub fn notifications_doc(ns_: &[std::sync::Arc<Notification>], f: Format) -> String {
    match f {
        Format::Json => {
            json!({ "notifications": ns_.iter().map(|n| notification_json(n)).collect::<Vec<_>>() })
                .to_string()
        }
        Format::Xml => {
            let mut d = xml_root("notifications", &[]);
            for n in ns_ {
                notification_xml(&mut d, n);
            }
            d.end("notifications");
            d.finish()
        }
    }
}

/// Counts of the alarm summary: per severity, active and unacknowledged.
#[derive(Debug, Clone, Default)]
pub struct AlarmSummary {
    /// (severity label, active alarms, unacknowledged ones), most severe first.
    pub rows: Vec<(&'static str, u32, u32)>,
    pub total: u32,
    pub unacknowledged: u32,
}

pub fn summary_doc(s: &AlarmSummary, f: Format) -> String {
    match f {
        Format::Json => json!({
            "total": s.total,
            "unacknowledged": s.unacknowledged,
            "severities": s.rows.iter().map(|(sev, n, u)| json!({"severity": sev, "active": n, "unacknowledged": u})).collect::<Vec<_>>(),
        })
        .to_string(),
        Format::Xml => {
            let mut d = xml_root(
                "alarm-summary",
                &[
                    ("total", &s.total.to_string()),
                    ("unacknowledged", &s.unacknowledged.to_string()),
                ],
            );
            for (sev, n, u) in &s.rows {
                d.empty(
                    "severity",
                    &[
                        ("name", sev),
                        ("active", &n.to_string()),
                        ("unacknowledged", &u.to_string()),
                    ],
                );
            }
            d.end("alarm-summary");
            d.finish()
        }
    }
}

pub fn error_doc(e: &ApiError, f: Format) -> String {
    match f {
        Format::Json => json!({ "error": {
            "status": e.status.as_u16(),
            "code": e.code,
            "message": e.message,
            "change": e.change,
        }})
        .to_string(),
        Format::Xml => {
            let mut d = xml_root("error", &[]);
            d.leaf("status", &e.status.as_u16().to_string());
            d.leaf("code", e.code);
            d.leaf("message", &e.message);
            if let Some(c) = e.change {
                d.leaf("change", &c.to_string());
            }
            d.end("error");
            d.finish()
        }
    }
}

fn type_json(ty: &AttrType) -> Json {
    match ty {
        AttrType::Boolean => json!({"type": "boolean"}),
        AttrType::String { max_len } => json!({"type": "string", "max-length": max_len}),
        AttrType::Uint32 => json!({"type": "uint32"}),
        AttrType::Uint64 => json!({"type": "uint64"}),
        AttrType::Sint32 => json!({"type": "int32"}),
        AttrType::Real64 { scale } => json!({"type": "decimal", "fraction-digits": scale}),
        AttrType::DateTime => json!({"type": "date-and-time"}),
        AttrType::Enum(e) => {
            json!({"type": "enumeration", "enum": e.name, "values": e.values.iter().map(|v| v.yang_name).collect::<Vec<_>>()})
        }
    }
}

/// The class metadata (for the console and for scripts).
pub fn classes_json() -> Json {
    let classes: Vec<Json> = SCHEMA
        .classes
        .iter()
        .filter(|c| !c.is_abstract)
        .map(|c| {
            json!({
                "name": c.name,
                "yang-name": c.yang_name,
                "rdn": c.rdn,
                "indication": c.is_indication,
                "contained-in": c.contained_in,
                "description": c.description,
                "attributes": c.attributes.iter().map(|a| {
                    let mut j = type_json(&a.ty);
                    let m = j.as_object_mut().expect("object");
                    m.insert("name".into(), json!(a.name));
                    m.insert("yang-name".into(), json!(a.yang_name));
                    m.insert("writable".into(), json!(a.writable));
                    m.insert("measure".into(), json!(format!("{:?}", a.measure).to_ascii_lowercase()));
                    m.insert("units".into(), json!(a.units));
                    m.insert("metric".into(), json!(a.metric.as_ref().map(|x| x.name)));
                    m.insert("reference".into(), json!(a.reference));
                    m.insert("description".into(), json!(a.description));
                    Json::Object(m.clone())
                }).collect::<Vec<_>>(),
                "operations": c.methods.iter().map(|m| json!({
                    "name": m.name,
                    "yang-name": m.yang_name,
                    "job": m.job,
                    "description": m.description,
                    "parameters": m.params.iter().map(|p| json!({"name": p.name, "yang-name": p.yang_name, "description": p.description})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "module": SCHEMA.module.yang_module, "namespace": ns(), "classes": classes })
}

pub fn classes_xml() -> String {
    let mut d = xml_root("classes", &[]);
    for c in SCHEMA.classes.iter().filter(|c| !c.is_abstract) {
        let indication = c.is_indication.to_string();
        let mut attrs = vec![
            ("name", c.name),
            ("yang-name", c.yang_name),
            ("indication", indication.as_str()),
        ];
        if let Some(r) = c.rdn {
            attrs.push(("rdn", r));
        }
        d.start("class", &attrs);
        d.leaf("description", c.description);
        for a in c.attributes {
            let writable = a.writable.to_string();
            let mut attrs = vec![
                ("name", a.name),
                ("yang-name", a.yang_name),
                ("writable", writable.as_str()),
            ];
            if let Some(m) = &a.metric {
                attrs.push(("metric", m.name));
            }
            d.empty("attribute", &attrs);
        }
        for m in c.methods {
            d.empty(
                "operation",
                &[
                    ("name", m.name),
                    ("yang-name", m.yang_name),
                    ("job", &m.job.to_string()),
                ],
            );
        }
        d.end("class");
    }
    d.end("classes");
    d.finish()
}

/// The physical view (`/api/v1/hardware`): every component as the MIBs
/// and ietf-hardware show it, with its states and, for a sensor, its
/// reading. Names and enumerations are ietf-hardware's.
pub fn hardware_doc(
    components: &[halyard_cluster_model::physical::Component],
    f: Format,
) -> String {
    use halyard_cluster_model::physical::alarm_bit_names;
    let text = |o: &Option<String>| o.clone();
    match f {
        Format::Json => {
            let rows: Vec<Json> = components
                .iter()
                .map(|c| {
                    let mut o = json!({
                        "index": c.index,
                        "name": c.name,
                        "class": c.class.iana_identity(),
                        "description": c.description,
                        "parent": text(&c.parent),
                        "parent-rel-pos": c.parent_rel_pos,
                        "contains": c.children,
                        "hardware-rev": text(&c.hardware_rev),
                        "serial-num": text(&c.serial_num),
                        "mfg-name": text(&c.mfg_name),
                        "model-name": text(&c.model_name),
                        "alias": text(&c.alias),
                        "is-fru": c.is_fru,
                        "state-last-changed": c.state_last_changed.to_string(),
                        "admin-state": c.admin.yang(),
                        "oper-state": c.oper.yang(),
                        "usage-state": c.usage.yang(),
                        "alarm-state": alarm_bit_names(c.alarm),
                        "standby-state": c.standby.yang(),
                    });
                    if let Some(s) = &c.sensor {
                        o["sensor"] = json!({
                            "value": s.value,
                            "value-type": s.ty.yang(),
                            "value-scale": s.scale.yang(),
                            "oper-status": s.status.yang(),
                            "units": s.units,
                        });
                    }
                    // Absent is left out, as in the objects' documents.
                    if let Json::Object(m) = &mut o {
                        m.retain(|_, v| !v.is_null());
                    }
                    o
                })
                .collect();
            json!({ "components": rows }).to_string()
        }
        Format::Xml => {
            let mut d = xml_root("hardware", &[]);
            for c in components {
                let index = c.index.to_string();
                let pos = c.parent_rel_pos.map(|p| p.to_string());
                let changed = c.state_last_changed.to_string();
                let alarm = alarm_bit_names(c.alarm).join(" ");
                let mut attrs: Vec<(&str, &str)> = vec![
                    ("index", &index),
                    ("name", &c.name),
                    ("class", c.class.iana_identity()),
                ];
                for (k, v) in [
                    ("parent", &c.parent),
                    ("parent-rel-pos", &pos),
                    ("hardware-rev", &c.hardware_rev),
                    ("serial-num", &c.serial_num),
                    ("mfg-name", &c.mfg_name),
                    ("model-name", &c.model_name),
                    ("alias", &c.alias),
                ] {
                    if let Some(v) = v {
                        attrs.push((k, v));
                    }
                }
                attrs.extend([
                    ("is-fru", if c.is_fru { "true" } else { "false" }),
                    ("state-last-changed", changed.as_str()),
                    ("admin-state", c.admin.yang()),
                    ("oper-state", c.oper.yang()),
                    ("usage-state", c.usage.yang()),
                    ("alarm-state", alarm.as_str()),
                    ("standby-state", c.standby.yang()),
                ]);
                d.start("component", &attrs);
                d.leaf("description", &c.description);
                for child in &c.children {
                    d.empty("contains", &[("name", child)]);
                }
                if let Some(s) = &c.sensor {
                    d.empty(
                        "sensor",
                        &[
                            ("value", &s.value.to_string()),
                            ("value-type", s.ty.yang()),
                            ("value-scale", s.scale.yang()),
                            ("oper-status", s.status.yang()),
                            ("units", s.units),
                        ],
                    );
                }
                d.end("component");
            }
            d.end("hardware");
            d.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let cases: &[(Option<&str>, Option<&str>, Format)] = &[
            (None, None, Format::Xml),
            (Some("*/*"), None, Format::Xml),
            (Some("application/json"), None, Format::Json),
            (Some("application/xml"), None, Format::Xml),
            (
                Some("text/html,application/json;q=0.9,*/*;q=0.8"),
                None,
                Format::Json,
            ),
            (
                Some("application/json;q=0.5, application/xml"),
                None,
                Format::Xml,
            ),
            (Some("application/json, application/xml"), None, Format::Xml),
            (Some("image/png"), None, Format::Xml),
            (Some("application/xml"), Some("format=json"), Format::Json),
            (
                Some("application/json"),
                Some("a=1&format=xml"),
                Format::Xml,
            ),
        ];
        for (accept, query, want) in cases {
            assert_eq!(
                Format::negotiate(*accept, *query),
                *want,
                "{accept:?} {query:?}"
            );
        }
    }

    #[test]
    fn escaping() {
        let mut d = Doc::fragment();
        d.leaf("x", "a<b>&\"c'");
        d.empty("y", &[("v", "a<b>&\"c'")]);
        assert_eq!(
            d.finish(),
            "<x>a&lt;b&gt;&amp;&quot;c&apos;</x><y v=\"a&lt;b&gt;&amp;&quot;c&apos;\"/>"
        );
    }

    /// An element read back: name, attributes, text.
    type ReadElement = (String, Vec<(String, String)>, String);

    /// Every element's text and attributes of a document, read back with
    /// quick-xml's Reader, after checking that it holds no character XML
    /// 1.0 forbids (the reader does not check the Char production).
    fn read_back(doc: &str) -> Vec<ReadElement> {
        use quick_xml::events::Event;
        assert!(
            doc.chars().all(halyard_cluster_model::value::is_xml_char),
            "{doc:?}"
        );
        let mut r = quick_xml::Reader::from_str(doc);
        r.config_mut().check_end_names = true;
        let mut out: Vec<ReadElement> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        loop {
            let (e, is_start) = match r.read_event().unwrap_or_else(|e| panic!("{e}: {doc:?}")) {
                Event::Start(e) => (e, true),
                Event::Empty(e) => (e, false),
                Event::End(_) => {
                    open.pop().expect("an end tag closes an open element");
                    continue;
                }
                Event::Text(t) => {
                    if let Some(&i) = open.last() {
                        out[i].2.push_str(&t.xml10_content());
                    }
                    continue;
                }
                Event::GeneralRef(g) => {
                    let c = quick_xml::escape::resolve_predefined_entity(&g)
                        .map(str::to_string)
                        .or_else(|| g.resolve_char_ref().unwrap().map(|c| c.to_string()))
                        .unwrap_or_else(|| panic!("entity {}", &*g));
                    if let Some(&i) = open.last() {
                        out[i].2.push_str(&c);
                    }
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let attrs = e
                .attributes()
                .map(|a| {
                    let a = a.unwrap();
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .unwrap()
                        .into_owned();
                    (a.key.as_ref().to_string(), v)
                })
                .collect();
            out.push((e.name().as_ref().to_string(), attrs, String::new()));
            if is_start {
                open.push(out.len() - 1);
            }
        }
        assert!(open.is_empty(), "unclosed elements in {doc:?}");
        out
    }

    fn text_of<'a>(doc: &'a [ReadElement], name: &str) -> &'a str {
        &doc.iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no <{name}> in {doc:?}"))
            .2
    }

    #[tokio::test]
    async fn the_agents_own_strings_render_well_formed() {
        use halyard_cluster_model::port::{InformationModel, Query};
        const NASTY: &str = "a\u{1}b<&>\"'\u{FFFE}";
        const READ: &str = "a\u{FFFD}b<&>\"'\u{FFFD}";
        let before = crate::xml::REPLACED.get();
        let m = halyard_cluster_model::memory::demo_element();
        let mut objs = m.query(&Query::default()).await.unwrap();
        // A string attribute set past the model's checks, as a bug would.
        let (o, leaf) = objs
            .iter_mut()
            .find_map(|o| {
                let i = o
                    .class
                    .attributes
                    .iter()
                    .position(|a| !a.key && matches!(a.ty, AttrType::String { .. }))?;
                o.values[i] = Value::Str(NASTY.into());
                Some((o.clone(), o.class.attributes[i].yang_name))
            })
            .unwrap();
        for doc in [
            object_doc(&o, Format::Xml),
            objects_doc(std::slice::from_ref(&o), Format::Xml),
        ] {
            assert_eq!(text_of(&read_back(&doc), leaf), READ, "{doc}");
        }
        let n = Notification {
            seq: 1,
            time: halyard_cluster_model::Timestamp(0),
            class: o.class,
            source: o.name.clone(),
            severity: None,
            values: o.values.clone(),
        };
        let doc = notifications_doc(&[std::sync::Arc::new(n)], Format::Xml);
        assert_eq!(text_of(&read_back(&doc), leaf), READ, "{doc}");
        let job = JobView {
            job: NASTY.into(),
            operation: "lock".into(),
            target: o.name.to_string(),
            status: JobStatus {
                state: halyard_cluster_model::model::JobState::Running,
                steps_done: 0,
                steps_total: 1,
                detail: NASTY.into(),
                result: None,
            },
        };
        let doc = read_back(&job_doc(&job, Format::Xml));
        assert_eq!(
            (text_of(&doc, "job"), text_of(&doc, "detail")),
            (READ, READ)
        );
        // An error quoting a client's path: replaced too (it is a 4xx already).
        let e = ApiError::bad_request(NASTY);
        let doc = read_back(&error_doc(&e, Format::Xml));
        assert_eq!(text_of(&doc, "message"), READ);
        // In an attribute (the tree's name attribute is the object's name).
        let mut d = Doc::fragment();
        d.empty("x", &[("v", NASTY)]);
        let doc = read_back(&d.finish());
        assert_eq!(doc[0].1, vec![("v".to_string(), READ.to_string())]);
        // Two characters per copy, seven copies, each counted.
        let replaced = crate::xml::REPLACED.get() - before;
        assert!(replaced >= 14, "{replaced}");
        // Markup characters alone are escaped, never replaced.
        let mut d = Doc::fragment();
        d.leaf("x", "<&>\"'");
        assert_eq!(text_of(&read_back(&d.finish()), "x"), "<&>\"'");
        // The documents without bad data are well-formed as they are.
        read_back(&tree_doc(&objs, Format::Xml));
        read_back(&classes_xml());
        read_back(&xsd());
    }
}
