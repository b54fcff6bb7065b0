//! The XML Schema of every XML document the API serves
//! (`/api/v1/schema.xsd`), generated from the schema metadata.

use std::fmt::Write as _;

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::meta::{AttrMeta, AttrType, ClassMeta};

use crate::xml::Doc;

fn ns() -> &'static str {
    SCHEMA.module.namespace
}

/// An attribute's element declaration, with its description (and units,
/// and whether it can be written) as documentation.
fn xsd_element(d: &mut Doc, a: &AttrMeta) {
    let ty = match a.ty {
        AttrType::Boolean => Some("xs:boolean".to_string()),
        AttrType::Uint32 => Some("xs:unsignedInt".to_string()),
        AttrType::Uint64 => Some("xs:unsignedLong".to_string()),
        AttrType::Sint32 => Some("xs:int".to_string()),
        AttrType::DateTime => Some("xs:dateTime".to_string()),
        AttrType::Enum(e) => Some(format!("hc:{}", enum_type_name(e.name))),
        AttrType::String { .. } | AttrType::Real64 { .. } => None,
    };
    let mut attrs = vec![("name", a.yang_name), ("minOccurs", "0")];
    if let Some(t) = &ty {
        attrs.push(("type", t.as_str()));
    }
    d.start("xs:element", &attrs);
    let mut doc = a.description.to_string();
    if let Some(u) = a.units {
        let _ = write!(doc, " Units: {u}.");
    }
    if a.writable {
        doc.push_str(" Writable.");
    }
    d.start("xs:annotation", &[]);
    d.leaf("xs:documentation", &doc);
    d.end("xs:annotation");
    let restriction = match a.ty {
        AttrType::String { max_len } => Some(("xs:string", "xs:maxLength", max_len.to_string())),
        AttrType::Real64 { scale } => {
            Some(("xs:decimal", "xs:fractionDigits", scale.max(1).to_string()))
        }
        _ => None,
    };
    if let Some((base, facet, value)) = restriction {
        d.start("xs:simpleType", &[]);
        d.start("xs:restriction", &[("base", base)]);
        d.empty(facet, &[("value", &value)]);
        d.end("xs:restriction");
        d.end("xs:simpleType");
    }
    d.end("xs:element");
}

fn enum_type_name(name: &str) -> String {
    format!("{name}Type")
}

fn class_type(d: &mut Doc, c: &ClassMeta) {
    d.start("xs:complexType", &[("name", &format!("{}Type", c.name))]);
    d.start("xs:annotation", &[]);
    d.leaf("xs:documentation", c.description);
    d.end("xs:annotation");
    d.start("xs:sequence", &[]);
    for a in c.attributes {
        xsd_element(d, a);
    }
    d.end("xs:sequence");
    d.raw("<xs:attribute name=\"class\" type=\"xs:string\"/><xs:attribute name=\"index\" type=\"xs:unsignedInt\"/>");
    d.end("xs:complexType");
}

/// The XML Schema of every document the API serves, generated from `SCHEMA`.
/// A required attribute whose value is one of `values` (ietf-hardware's
/// names), or, with `list`, a space-separated list of them.
fn enum_attribute(d: &mut Doc, name: &str, values: &[&str], list: bool) {
    d.start("xs:attribute", &[("name", name), ("use", "required")]);
    d.start("xs:simpleType", &[]);
    if list {
        d.start("xs:list", &[]);
        d.start("xs:simpleType", &[]);
    }
    d.start("xs:restriction", &[("base", "xs:string")]);
    let mut seen = std::collections::BTreeSet::new();
    for v in values.iter().filter(|v| seen.insert(**v)) {
        d.empty("xs:enumeration", &[("value", v)]);
    }
    d.end("xs:restriction");
    if list {
        d.end("xs:simpleType");
        d.end("xs:list");
    }
    d.end("xs:simpleType");
    d.end("xs:attribute");
}

fn attribute(d: &mut Doc, name: &str, ty: &str, required: bool) {
    let mut a = vec![("name", name), ("type", ty)];
    if required {
        a.push(("use", "required"));
    }
    d.empty("xs:attribute", &a);
}

/// `hardware`: the physical view's document.
fn hardware_xsd(d: &mut Doc) {
    use halyard_cluster_model::meta::PhysicalClass;
    use halyard_cluster_model::physical::{
        ALARM_BIT_NAMES, Admin, Oper, SensorScale, SensorStatus, SensorType, Standby, Usage,
    };
    let unbounded = [("minOccurs", "0"), ("maxOccurs", "unbounded")];
    d.start("xs:element", &[("name", "hardware")]);
    d.start("xs:complexType", &[]);
    d.start("xs:sequence", &[]);
    d.start(
        "xs:element",
        &[&[("name", "component")][..], &unbounded].concat(),
    );
    d.start("xs:complexType", &[]);
    d.start("xs:sequence", &[]);
    d.empty(
        "xs:element",
        &[("name", "description"), ("type", "xs:string")],
    );
    d.start(
        "xs:element",
        &[&[("name", "contains")][..], &unbounded].concat(),
    );
    d.start("xs:complexType", &[]);
    attribute(d, "name", "xs:string", true);
    d.end("xs:complexType");
    d.end("xs:element");
    d.start("xs:element", &[("name", "sensor"), ("minOccurs", "0")]);
    d.start("xs:complexType", &[]);
    attribute(d, "value", "xs:long", true);
    enum_attribute(
        d,
        "value-type",
        &SensorType::ALL.iter().map(|v| v.yang()).collect::<Vec<_>>(),
        false,
    );
    enum_attribute(
        d,
        "value-scale",
        &SensorScale::ALL
            .iter()
            .map(|v| v.yang())
            .collect::<Vec<_>>(),
        false,
    );
    enum_attribute(
        d,
        "oper-status",
        &SensorStatus::ALL
            .iter()
            .map(|v| v.yang())
            .collect::<Vec<_>>(),
        false,
    );
    attribute(d, "units", "xs:string", true);
    d.end("xs:complexType");
    d.end("xs:element");
    d.end("xs:sequence");
    attribute(d, "index", "xs:unsignedInt", true);
    attribute(d, "name", "xs:string", true);
    enum_attribute(
        d,
        "class",
        &PhysicalClass::ALL
            .iter()
            .map(|c| c.iana_identity())
            .collect::<Vec<_>>(),
        false,
    );
    for n in [
        "parent",
        "hardware-rev",
        "serial-num",
        "mfg-name",
        "model-name",
        "alias",
    ] {
        attribute(d, n, "xs:string", false);
    }
    attribute(d, "parent-rel-pos", "xs:unsignedInt", false);
    attribute(d, "is-fru", "xs:boolean", true);
    attribute(d, "state-last-changed", "xs:dateTime", true);
    enum_attribute(
        d,
        "admin-state",
        &Admin::ALL.iter().map(|v| v.yang()).collect::<Vec<_>>(),
        false,
    );
    enum_attribute(
        d,
        "oper-state",
        &Oper::ALL.iter().map(|v| v.yang()).collect::<Vec<_>>(),
        false,
    );
    enum_attribute(
        d,
        "usage-state",
        &Usage::ALL.iter().map(|v| v.yang()).collect::<Vec<_>>(),
        false,
    );
    // Space-separated: ietf-hardware's alarm-state bits.
    enum_attribute(d, "alarm-state", &ALARM_BIT_NAMES, true);
    enum_attribute(
        d,
        "standby-state",
        &Standby::ALL.iter().map(|v| v.yang()).collect::<Vec<_>>(),
        false,
    );
    d.end("xs:complexType");
    d.end("xs:element");
    d.end("xs:sequence");
    d.end("xs:complexType");
    d.end("xs:element");
    d.raw("\n");
}

pub fn xsd() -> String {
    let mut s = Doc::new();
    s.start(
        "xs:schema",
        &[
            ("xmlns:xs", "http://www.w3.org/2001/XMLSchema"),
            ("xmlns:hc", ns()),
            ("targetNamespace", ns()),
            ("elementFormDefault", "qualified"),
            ("version", SCHEMA.module.revision),
        ],
    );
    s.raw("\n");
    s.start("xs:annotation", &[]);
    s.leaf(
        "xs:documentation",
        &format!(
            "Documents of the Halyard HTTP API, generated from the {} schema (revision {}).",
            SCHEMA.module.name, SCHEMA.module.revision
        ),
    );
    s.end("xs:annotation");
    s.raw("\n");
    for e in SCHEMA.enums {
        s.start("xs:simpleType", &[("name", &enum_type_name(e.name))]);
        s.start("xs:restriction", &[("base", "xs:string")]);
        for v in e.values {
            s.empty("xs:enumeration", &[("value", v.yang_name)]);
        }
        s.end("xs:restriction");
        s.end("xs:simpleType");
        s.raw("\n");
    }
    let concrete: Vec<&ClassMeta> = SCHEMA
        .classes
        .iter()
        .copied()
        .filter(|c| !c.is_abstract)
        .collect();
    for c in &concrete {
        class_type(&mut s, c);
        s.empty(
            "xs:element",
            &[
                ("name", c.yang_name),
                ("type", &format!("hc:{}Type", c.name)),
            ],
        );
        s.raw("\n");
    }
    // objects: any number of objects of any class.
    s.raw("<xs:element name=\"objects\"><xs:complexType><xs:choice minOccurs=\"0\" maxOccurs=\"unbounded\">");
    for c in concrete.iter().filter(|c| !c.is_indication) {
        s.empty("xs:element", &[("ref", &format!("hc:{}", c.yang_name))]);
    }
    s.raw("</xs:choice><xs:attribute name=\"count\" type=\"xs:unsignedInt\"/></xs:complexType></xs:element>\n");
    // the containment tree.
    s.raw(concat!(
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
    s.raw("<xs:element name=\"notifications\"><xs:complexType><xs:sequence><xs:element name=\"notification\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:choice>");
    for c in concrete.iter().filter(|c| c.is_indication) {
        s.empty("xs:element", &[("ref", &format!("hc:{}", c.yang_name))]);
    }
    s.raw("</xs:choice><xs:attribute name=\"seq\" type=\"xs:unsignedLong\" use=\"required\"/><xs:attribute name=\"time\" type=\"xs:dateTime\" use=\"required\"/><xs:attribute name=\"source\" type=\"xs:string\" use=\"required\"/></xs:complexType></xs:element></xs:sequence></xs:complexType></xs:element>\n");
    s.raw(concat!(
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
    ));
    hardware_xsd(&mut s);
    s.raw(concat!(
        "<xs:element name=\"error\"><xs:complexType><xs:sequence>",
        "<xs:element name=\"status\" type=\"xs:unsignedShort\"/><xs:element name=\"code\" type=\"xs:string\"/><xs:element name=\"message\" type=\"xs:string\"/><xs:element name=\"change\" type=\"xs:unsignedInt\" minOccurs=\"0\"/>",
        "</xs:sequence></xs:complexType></xs:element>\n",
        "<xs:element name=\"classes\"><xs:complexType><xs:sequence><xs:element name=\"class\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:sequence>",
        "<xs:element name=\"description\" type=\"xs:string\"/>",
        "<xs:element name=\"attribute\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"yang-name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"writable\" type=\"xs:boolean\" use=\"required\"/><xs:attribute name=\"metric\" type=\"xs:string\"/></xs:complexType></xs:element>",
        "<xs:element name=\"operation\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType><xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"yang-name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"job\" type=\"xs:boolean\" use=\"required\"/></xs:complexType></xs:element>",
        "</xs:sequence><xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"yang-name\" type=\"xs:string\" use=\"required\"/><xs:attribute name=\"indication\" type=\"xs:boolean\" use=\"required\"/><xs:attribute name=\"rdn\" type=\"xs:string\"/>",
        "</xs:complexType></xs:element></xs:sequence></xs:complexType></xs:element>\n",
    ));
    s.end("xs:schema");
    s.raw("\n");
    s.finish()
}
