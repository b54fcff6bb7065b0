//! Representations: every object, tree, job, notification and error as XML
//! (the default) or JSON, and the XML Schema that describes the XML. All of
//! it is driven by the schema metadata; nothing here names an attribute.

use std::fmt::Write as _;

use halyard_cluster_model::meta::{AttrMeta, AttrType, ClassMeta};
use halyard_cluster_model::port::{JobStatus, ManagedObject, Notification};
use halyard_cluster_model::{SCHEMA, Value};
use serde_json::{Map, Value as Json, json};

use crate::error::ApiError;

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

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Never emit what XML 1.0 forbids (the model refuses such values).
            c if !halyard_cluster_model::value::is_xml_char(c) => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn ns() -> &'static str {
    SCHEMA.module.namespace
}

/// XML declaration and the root element's opening with the namespace.
pub fn xml_root(name: &str, attrs: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{name} xmlns=\"{}\"{attrs}>",
        ns()
    )
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

fn write_values_xml(out: &mut String, attrs: &[AttrMeta], values: &[Value]) {
    for (a, v) in attrs.iter().zip(values) {
        if matches!(v, Value::Absent) {
            continue;
        }
        let _ = write!(out, "<{0}>{1}</{0}>", a.yang_name, esc(&v.render(&a.ty)));
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
pub fn object_xml(out: &mut String, o: &ManagedObject) {
    let _ = write!(
        out,
        "<{} class=\"{}\" index=\"{}\">",
        o.class.yang_name, o.class.name, o.index
    );
    write_values_xml(out, o.class.attributes, &o.values);
    let _ = write!(out, "</{}>", o.class.yang_name);
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
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let _ = write!(
                s,
                "<{} xmlns=\"{}\" class=\"{}\" index=\"{}\">",
                o.class.yang_name,
                ns(),
                o.class.name,
                o.index
            );
            write_values_xml(&mut s, o.class.attributes, &o.values);
            let _ = write!(s, "</{}>", o.class.yang_name);
            s
        }
    }
}

pub fn objects_doc(objs: &[ManagedObject], f: Format) -> String {
    match f {
        Format::Json => {
            json!({ "objects": objs.iter().map(object_json).collect::<Vec<_>>() }).to_string()
        }
        Format::Xml => {
            let mut s = xml_root("objects", &format!(" count=\"{}\"", objs.len()));
            for o in objs {
                object_xml(&mut s, o);
            }
            s.push_str("</objects>");
            s
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
    fn xml(out: &mut String, objs: &[ManagedObject], ch: &HashMap<u32, Vec<usize>>, i: usize) {
        let o = &objs[i];
        let _ = write!(
            out,
            "<object name=\"{}\" class=\"{}\" index=\"{}\">",
            esc(o.name.as_str()),
            o.class.name,
            o.index
        );
        for (a, v) in tree_states(o) {
            let _ = write!(
                out,
                "<state name=\"{}\" value=\"{}\"/>",
                a.yang_name,
                esc(&v.render(&a.ty))
            );
        }
        for &c in ch.get(&o.index).map(Vec::as_slice).unwrap_or(&[]) {
            xml(out, objs, ch, c);
        }
        out.push_str("</object>");
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
            let mut s = xml_root("tree", "");
            for &r in &roots {
                xml(&mut s, objs, &children, r);
            }
            s.push_str("</tree>");
            s
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
            let mut s = xml_root("job-status", "");
            let _ = write!(
                s,
                "<job>{}</job><operation>{}</operation><target>{}</target><state>{state}</state><finished>{}</finished><steps-done>{}</steps-done><steps-total>{}</steps-total><detail>{}</detail>",
                esc(&j.job),
                esc(&j.operation),
                esc(&j.target),
                j.status.finished(),
                j.status.steps_done,
                j.status.steps_total,
                esc(&j.status.detail)
            );
            if let Some(r) = j.status.result {
                let _ = write!(s, "<result>{r}</result>");
            }
            s.push_str("</job-status>");
            s
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

pub fn notification_xml(out: &mut String, n: &Notification) {
    let _ = write!(
        out,
        "<notification seq=\"{}\" time=\"{}\" source=\"{}\"><{}>",
        n.seq,
        n.time,
        esc(n.source.as_str()),
        n.class.yang_name
    );
    write_values_xml(out, n.class.attributes, &n.values);
    let _ = write!(out, "</{}></notification>", n.class.yang_name);
}

pub fn notifications_doc(ns_: &[std::sync::Arc<Notification>], f: Format) -> String {
    match f {
        Format::Json => {
            json!({ "notifications": ns_.iter().map(|n| notification_json(n)).collect::<Vec<_>>() })
                .to_string()
        }
        Format::Xml => {
            let mut s = xml_root("notifications", "");
            for n in ns_ {
                notification_xml(&mut s, n);
            }
            s.push_str("</notifications>");
            s
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
            let mut o = xml_root(
                "alarm-summary",
                &format!(" total=\"{}\" unacknowledged=\"{}\"", s.total, s.unacknowledged),
            );
            for (sev, n, u) in &s.rows {
                let _ = write!(
                    o,
                    "<severity name=\"{sev}\" active=\"{n}\" unacknowledged=\"{u}\"/>"
                );
            }
            o.push_str("</alarm-summary>");
            o
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
            let mut s = xml_root("error", "");
            let _ = write!(
                s,
                "<status>{}</status><code>{}</code><message>{}</message>",
                e.status.as_u16(),
                e.code,
                esc(&e.message)
            );
            if let Some(c) = e.change {
                let _ = write!(s, "<change>{c}</change>");
            }
            s.push_str("</error>");
            s
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
    let mut s = xml_root("classes", "");
    for c in SCHEMA.classes.iter().filter(|c| !c.is_abstract) {
        let _ = write!(
            s,
            "<class name=\"{}\" yang-name=\"{}\" indication=\"{}\"",
            c.name, c.yang_name, c.is_indication
        );
        if let Some(r) = c.rdn {
            let _ = write!(s, " rdn=\"{r}\"");
        }
        let _ = write!(s, "><description>{}</description>", esc(c.description));
        for a in c.attributes {
            let _ = write!(
                s,
                "<attribute name=\"{}\" yang-name=\"{}\" writable=\"{}\"",
                a.name, a.yang_name, a.writable
            );
            if let Some(m) = &a.metric {
                let _ = write!(s, " metric=\"{}\"", m.name);
            }
            s.push_str("/>");
        }
        for m in c.methods {
            let _ = write!(
                s,
                "<operation name=\"{}\" yang-name=\"{}\" job=\"{}\"/>",
                m.name, m.yang_name, m.job
            );
        }
        s.push_str("</class>");
    }
    s.push_str("</classes>");
    s
}

/// An attribute's element declaration, with its description (and units,
/// and whether it can be written) as documentation.
fn xsd_element(out: &mut String, a: &AttrMeta) {
    let _ = write!(out, "<xs:element name=\"{}\" minOccurs=\"0\"", a.yang_name);
    match a.ty {
        AttrType::Boolean => out.push_str(" type=\"xs:boolean\">"),
        AttrType::Uint32 => out.push_str(" type=\"xs:unsignedInt\">"),
        AttrType::Uint64 => out.push_str(" type=\"xs:unsignedLong\">"),
        AttrType::Sint32 => out.push_str(" type=\"xs:int\">"),
        AttrType::DateTime => out.push_str(" type=\"xs:dateTime\">"),
        AttrType::Enum(e) => {
            let _ = write!(out, " type=\"hc:{}\">", enum_type_name(e.name));
        }
        AttrType::String { .. } | AttrType::Real64 { .. } => out.push('>'),
    }
    let mut doc = a.description.to_string();
    if let Some(u) = a.units {
        let _ = write!(doc, " Units: {u}.");
    }
    if a.writable {
        doc.push_str(" Writable.");
    }
    let _ = write!(
        out,
        "<xs:annotation><xs:documentation>{}</xs:documentation></xs:annotation>",
        esc(&doc)
    );
    match a.ty {
        AttrType::String { max_len } => {
            let _ = write!(
                out,
                "<xs:simpleType><xs:restriction base=\"xs:string\"><xs:maxLength value=\"{max_len}\"/></xs:restriction></xs:simpleType>"
            );
        }
        AttrType::Real64 { scale } => {
            let _ = write!(
                out,
                "<xs:simpleType><xs:restriction base=\"xs:decimal\"><xs:fractionDigits value=\"{}\"/></xs:restriction></xs:simpleType>",
                scale.max(1)
            );
        }
        _ => {}
    }
    out.push_str("</xs:element>");
}

fn enum_type_name(name: &str) -> String {
    format!("{name}Type")
}

fn class_type(out: &mut String, c: &ClassMeta) {
    let _ = write!(
        out,
        "<xs:complexType name=\"{}Type\"><xs:annotation><xs:documentation>{}</xs:documentation></xs:annotation><xs:sequence>",
        c.name,
        esc(c.description)
    );
    for a in c.attributes {
        xsd_element(out, a);
    }
    out.push_str("</xs:sequence><xs:attribute name=\"class\" type=\"xs:string\"/><xs:attribute name=\"index\" type=\"xs:unsignedInt\"/></xs:complexType>");
}

/// The XML Schema of every document the API serves, generated from `SCHEMA`.
pub fn xsd() -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:hc=\"{0}\" targetNamespace=\"{0}\" elementFormDefault=\"qualified\" version=\"{1}\">\n",
        ns(),
        SCHEMA.module.revision
    );
    let _ = writeln!(
        s,
        "<xs:annotation><xs:documentation>Documents of the Halyard HTTP API, generated from the {} schema (revision {}).</xs:documentation></xs:annotation>",
        SCHEMA.module.name, SCHEMA.module.revision
    );
    for e in SCHEMA.enums {
        let _ = write!(
            s,
            "<xs:simpleType name=\"{}\"><xs:restriction base=\"xs:string\">",
            enum_type_name(e.name)
        );
        for v in e.values {
            let _ = write!(s, "<xs:enumeration value=\"{}\"/>", v.yang_name);
        }
        s.push_str("</xs:restriction></xs:simpleType>\n");
    }
    let concrete: Vec<&ClassMeta> = SCHEMA
        .classes
        .iter()
        .copied()
        .filter(|c| !c.is_abstract)
        .collect();
    for c in &concrete {
        class_type(&mut s, c);
        let _ = writeln!(
            s,
            "<xs:element name=\"{}\" type=\"hc:{}Type\"/>",
            c.yang_name, c.name
        );
    }
    // objects: any number of objects of any class.
    s.push_str("<xs:element name=\"objects\"><xs:complexType><xs:choice minOccurs=\"0\" maxOccurs=\"unbounded\">");
    for c in concrete.iter().filter(|c| !c.is_indication) {
        let _ = write!(s, "<xs:element ref=\"hc:{}\"/>", c.yang_name);
    }
    s.push_str("</xs:choice><xs:attribute name=\"count\" type=\"xs:unsignedInt\"/></xs:complexType></xs:element>\n");
    // the containment tree.
    s.push_str(concat!(
        "<xs:complexType name=\"TreeObjectType\"><xs:sequence>",
        "<xs:element name=\"state\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType>",
        "<xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"value\" type=\"xs:string\" use=\"required\"/>",
        "</xs:complexType></xs:element>",
        "<xs:element name=\"object\" type=\"hc:TreeObjectType\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>",
        "</xs:sequence>",
        "<xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"class\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"index\" type=\"xs:unsignedInt\" use=\"required\"/>",
        "</xs:complexType>\n",
        "<xs:element name=\"tree\"><xs:complexType><xs:sequence><xs:element name=\"object\" type=\"hc:TreeObjectType\" minOccurs=\"0\" maxOccurs=\"unbounded\"/></xs:sequence></xs:complexType></xs:element>\n",
    ));
    // notifications.
    s.push_str("<xs:element name=\"notifications\"><xs:complexType><xs:sequence><xs:element name=\"notification\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:choice>");
    for c in concrete.iter().filter(|c| c.is_indication) {
        let _ = write!(s, "<xs:element ref=\"hc:{}\"/>", c.yang_name);
    }
    s.push_str("</xs:choice><xs:attribute name=\"seq\" type=\"xs:unsignedLong\" use=\"required\"/><xs:attribute name=\"time\" type=\"xs:dateTime\" use=\"required\"/><xs:attribute name=\"source\" type=\"xs:string\" use=\"required\"/></xs:complexType></xs:element></xs:sequence></xs:complexType></xs:element>\n");
    s.push_str(concat!(
        "<xs:element name=\"job-status\"><xs:complexType><xs:sequence>",
        "<xs:element name=\"job\" type=\"xs:string\"/><xs:element name=\"operation\" type=\"xs:string\"/><xs:element name=\"target\" type=\"xs:string\"/>",
        "<xs:element name=\"state\" type=\"hc:JobStateType\"/><xs:element name=\"finished\" type=\"xs:boolean\"/>",
        "<xs:element name=\"steps-done\" type=\"xs:unsignedInt\"/><xs:element name=\"steps-total\" type=\"xs:unsignedInt\"/>",
        "<xs:element name=\"detail\" type=\"xs:string\"/><xs:element name=\"result\" type=\"xs:unsignedInt\" minOccurs=\"0\"/>",
        "</xs:sequence></xs:complexType></xs:element>\n",
        "<xs:element name=\"alarm-summary\"><xs:complexType><xs:sequence><xs:element name=\"severity\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType>",
        "<xs:attribute name=\"name\" type=\"hc:PerceivedSeverityType\" use=\"required\"/><xs:attribute name=\"active\" type=\"xs:unsignedInt\" use=\"required\"/><xs:attribute name=\"unacknowledged\" type=\"xs:unsignedInt\" use=\"required\"/>",
        "</xs:complexType></xs:element></xs:sequence>",
        "<xs:attribute name=\"total\" type=\"xs:unsignedInt\" use=\"required\"/><xs:attribute name=\"unacknowledged\" type=\"xs:unsignedInt\" use=\"required\"/></xs:complexType></xs:element>\n",
        "<xs:element name=\"error\"><xs:complexType><xs:sequence>",
        "<xs:element name=\"status\" type=\"xs:unsignedShort\"/><xs:element name=\"code\" type=\"xs:string\"/><xs:element name=\"message\" type=\"xs:string\"/><xs:element name=\"change\" type=\"xs:unsignedInt\" minOccurs=\"0\"/>",
        "</xs:sequence></xs:complexType></xs:element>\n",
        "<xs:element name=\"classes\"><xs:complexType><xs:sequence><xs:element name=\"class\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:sequence>",
        "<xs:element name=\"description\" type=\"xs:string\"/>",
        "<xs:element name=\"attribute\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"yang-name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"writable\" type=\"xs:boolean\" use=\"required\"/><xs:attribute name=\"metric\" type=\"xs:string\"/></xs:complexType></xs:element>",
        "<xs:element name=\"operation\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"yang-name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"job\" type=\"xs:boolean\" use=\"required\"/></xs:complexType></xs:element>",
        "</xs:sequence><xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"yang-name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"indication\" type=\"xs:boolean\" use=\"required\"/><xs:attribute name=\"rdn\" type=\"xs:string\"/>",
        "</xs:complexType></xs:element></xs:sequence></xs:complexType></xs:element>\n",
        "</xs:schema>\n",
    ));
    s
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
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
