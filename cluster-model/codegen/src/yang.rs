//! YANG 1.1 backend: one list per concrete class under the top container,
//! keyed by the persistent name; writable attributes are configuration,
//! the rest `config false`; methods are actions; indications notifications.

use std::fmt::Write;

use crate::ir::{ClassDef, Measure, Method, Property, Schema, Type};
use crate::names;

/// The top-level container every list lives in.
pub const TOP_CONTAINER: &str = "element";

fn quoted(text: &str, indent: usize) -> String {
    let text = text.replace('\\', "\\\\").replace('"', "\\\"");
    // Continuation lines align one column after the opening quote.
    let pad = " ".repeat(indent + 1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + word.len() + 1 > 60 {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    lines.push(cur);
    format!("\"{}\"", lines.join(&format!("\n{pad}")))
}

struct W {
    out: String,
    depth: usize,
}

impl W {
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{}{s}", "  ".repeat(self.depth));
    }
    fn open(&mut self, s: &str) {
        self.line(&format!("{s} {{"));
        self.depth += 1;
    }
    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }
    fn desc(&mut self, text: &str) {
        let pad = "  ".repeat(self.depth + 1);
        self.line("description");
        let _ = writeln!(self.out, "{pad}{};", quoted(text, pad.len()));
    }
    fn blank(&mut self) {
        self.out.push('\n');
    }
}

fn type_stmt(w: &mut W, ty: &Type, measure: Measure, max_len: Option<u32>) {
    match (ty, measure) {
        (Type::Boolean, _) => w.line("type boolean;"),
        (Type::String, _) => {
            w.open("type string");
            w.line(&format!("length \"0..{}\";", max_len.unwrap_or(255)));
            w.close();
        }
        (Type::Uint32, Measure::Counter) => w.line("type yang:counter32;"),
        (Type::Uint32, Measure::Gauge) => w.line("type yang:gauge32;"),
        (Type::Uint32, Measure::None) => w.line("type uint32;"),
        (Type::Uint64, _) => w.line("type yang:counter64;"),
        (Type::Sint32, _) => w.line("type int32;"),
        (Type::Real64 { scale }, _) => {
            w.open("type decimal64");
            w.line(&format!("fraction-digits {};", (*scale).max(1)));
            w.close();
        }
        (Type::DateTime, _) => w.line("type yang:date-and-time;"),
        (Type::Enum(e), _) => w.line(&format!("type {};", names::kebab(e))),
    }
}

fn leaf(w: &mut W, p: &Property, list_config: bool) {
    w.open(&format!("leaf {}", p.yang_name));
    type_stmt(w, &p.ty, p.measure, p.max_len);
    if let Some(u) = &p.units {
        w.line(&format!("units \"{u}\";"));
    }
    // A secret is never read back: no default (it would read as a value)
    // and not mandatory (replies leave it out).
    if list_config && p.write && !p.secret {
        match &p.default {
            Some(d) => w.line(&format!("default \"{d}\";")),
            None => w.line("mandatory true;"),
        }
    }
    if list_config && !p.write && !p.key {
        w.line("config false;");
    }
    if p.secret {
        w.line("nacm:default-deny-all;");
    }
    w.desc(&p.description);
    w.close();
}

fn action(w: &mut W, m: &Method) {
    w.open(&format!("action {}", m.yang_name));
    w.desc(&m.description);
    if !m.params.is_empty() {
        w.open("input");
        for p in &m.params {
            w.open(&format!("leaf {}", p.yang_name));
            type_stmt(w, &p.ty, Measure::None, None);
            w.desc(&p.description);
            w.close();
        }
        w.close();
    }
    w.open("output");
    w.open("leaf result");
    type_stmt(w, &m.returns, Measure::None, None);
    w.desc("Result code of the operation: 0 when accepted.");
    w.close();
    if m.job {
        w.open("leaf job");
        w.line("type string;");
        w.desc("Persistent name of the job that runs the operation; poll it for progress.");
        w.close();
    }
    w.close();
    w.close();
}

fn list(w: &mut W, c: &ClassDef) {
    let config = c.attributes.iter().any(|a| a.write);
    w.open(&format!("list {}", c.yang_name));
    let key = c
        .attributes
        .iter()
        .find(|a| a.key)
        .map_or("name", |a| a.yang_name.as_str());
    w.line(&format!("key \"{key}\";"));
    if !config {
        w.line("config false;");
    }
    w.desc(&c.description);
    for a in &c.attributes {
        leaf(w, a, config);
    }
    for m in &c.methods {
        action(w, m);
    }
    w.close();
}

/// Opens a generated module: its identity (name, namespace, prefix), one
/// its imports (module, prefix, reference), the schema module's organization
/// and contact, `description` with the generated-file notice, and the
/// schema's revision.
fn header(
    w: &mut W,
    m: &crate::ir::Module,
    (name, namespace, prefix): (&str, &str, &str),
    imports: &[(&str, &str, &str)],
    description: &str,
) {
    w.open(&format!("module {name}"));
    w.line("yang-version 1.1;");
    w.line(&format!("namespace \"{namespace}\";"));
    w.line(&format!("prefix {prefix};"));
    w.blank();
    for (import, import_prefix, reference) in imports {
        w.open(&format!("import {import}"));
        w.line(&format!("prefix {import_prefix};"));
        w.line(&format!("reference \"{reference}\";"));
        w.close();
        w.blank();
    }
    w.line(&format!(
        "organization\n    {};",
        quoted(&m.organization, 4)
    ));
    w.line(&format!("contact\n    {};", quoted(&m.contact, 4)));
    w.desc(&format!(
        "{description} Generated by halyard-schema from cluster-model/schema: do not edit; change the schema and run `cargo codegen`."
    ));
    w.blank();
    w.open(&format!("revision {}", m.revision));
    w.desc("Generated from the Halyard schema of this revision.");
    w.line("reference \"cluster-model/schema of the Halyard project\";");
    w.close();
}

/// The alarm-types module's name, namespace and prefix, derived from the
/// schema module's.
pub fn alarm_types_names(m: &crate::ir::Module) -> (String, String, String) {
    (
        format!("{}-alarm-types", m.yang_module),
        format!("{}-alarm-types", m.namespace),
        format!("{}-at", m.prefix),
    )
}

/// The enumeration of the attribute with the `alarmType` role, if any.
fn alarm_type_enum(schema: &Schema) -> Option<&crate::ir::EnumDef> {
    schema.classes.iter().find_map(|c| {
        c.attributes.iter().find_map(|p| match (&p.role, &p.ty) {
            (Some(r), crate::ir::Type::Enum(e)) if r == "alarmType" => schema.enum_def(e),
            _ => None,
        })
    })
}

/// The alarm types as ietf-alarms (RFC 8632) identities: one per value of
/// the enumeration of the attribute with the `alarmType` role, under one
/// abstract identity of the element's. A module of its own, so that the
/// schema's module need not import ietf-alarms. None without the role.
pub fn generate_alarm_types(schema: &Schema) -> Option<String> {
    let e = alarm_type_enum(schema)?;
    let m = &schema.module;
    let (name, namespace, prefix) = alarm_types_names(m);
    let mut w = W {
        out: String::new(),
        depth: 0,
    };
    header(
        &mut w,
        m,
        (&name, &namespace, &prefix),
        &[(
            "ietf-alarms",
            "al",
            "RFC 8632: A YANG Data Model for Alarm Management",
        )],
        &format!(
            "The alarm types of the {} module's element, as ietf-alarms alarm-type-id identities: one per {} value.",
            m.yang_module, e.name
        ),
    );
    let base = format!("{}-alarm", m.yang_module);
    w.blank();
    w.open(&format!("identity {base}"));
    w.line("base al:alarm-type-id;");
    w.desc(&format!(
        "Every alarm type of the element: {}",
        e.description
    ));
    w.close();
    for v in &e.values {
        w.blank();
        w.open(&format!("identity {}", names::kebab(&v.name)));
        w.line(&format!("base {base};"));
        w.desc(&v.description);
        w.close();
    }
    w.close();
    Some(w.out)
}

/// Generates the YANG module text.
pub fn generate(schema: &Schema) -> String {
    let m = &schema.module;
    let mut w = W {
        out: String::new(),
        depth: 0,
    };
    let mut imports = vec![(
        "ietf-yang-types",
        "yang",
        "RFC 6991: Common YANG Data Types",
    )];
    // A secret leaf is marked nacm:default-deny-all (RFC 8341 §3.4.5).
    if schema
        .classes
        .iter()
        .any(|c| c.attributes.iter().any(|a| a.secret))
    {
        imports.push((
            "ietf-netconf-acm",
            "nacm",
            "RFC 8341: Network Configuration Access Control Model",
        ));
    }
    header(
        &mut w,
        m,
        (&m.yang_module, &m.namespace, &m.prefix),
        &imports,
        &m.description,
    );

    for e in &schema.enums {
        w.blank();
        w.open(&format!("typedef {}", names::kebab(&e.name)));
        w.open("type enumeration");
        for v in &e.values {
            w.open(&format!("enum {}", names::kebab(&v.name)));
            w.line(&format!("value {};", v.value));
            w.desc(&v.description);
            w.close();
        }
        w.close();
        w.desc(&e.description);
        w.close();
    }

    w.blank();
    w.open(&format!("container {TOP_CONTAINER}"));
    w.desc("The managed element: every managed object, one list per class.");
    for c in schema.object_classes() {
        list(&mut w, c);
    }
    w.close();

    for c in schema.indications() {
        w.blank();
        w.open(&format!("notification {}", c.yang_name));
        w.desc(&c.description);
        for a in &c.attributes {
            leaf(&mut w, a, false);
        }
        w.close();
    }
    w.close();
    w.out
}
