//! SMIv2 backend: the vendor MIB.
//!
//! Layout under the module identity (`enterprises.<Enterprise>.<Arc>`):
//! `.0` notifications, `.1` objects, `.2` conformance, `.3` objects carried
//! by notifications. Under objects, every concrete class has a table at its
//! `Oid(n)` arc; `.100` is the object table (every instance with its class,
//! persistent name and container) and `.101` the child table (containment,
//! walkable parent by parent, like ENTITY-MIB's entPhysicalChildTable). All
//! tables share one index, `hcObjectIndex`, stable across restarts.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::ir::{ClassDef, Measure, Property, Schema, Type};
use crate::names;

pub const OBJECT_TABLE_ARC: u32 = 100;
pub const CHILD_TABLE_ARC: u32 = 101;

/// Wraps description text at 68 columns, escaping nothing (SMI strings
/// cannot contain `"`; validation keeps them out).
fn quoted(text: &str, indent: &str) -> String {
    let text = text.replace('"', "'");
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + word.len() + 1 > 64 {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    lines.push(cur);
    let mut out = String::from("\"");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
            out.push(' ');
        }
        out.push_str(l);
    }
    out.push('"');
    out
}

/// The MODULE-IDENTITY descriptor: `HALYARD-CLUSTER-MIB` -> `halyardClusterMIB`.
pub fn module_identity(schema: &Schema) -> String {
    schema
        .module
        .mib_module
        .split('-')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_ascii_lowercase()
            } else if w == "MIB" {
                w.to_string()
            } else {
                let lower = w.to_ascii_lowercase();
                lower[..1].to_ascii_uppercase() + &lower[1..]
            }
        })
        .collect()
}

// Textual conventions take the schema name as prefix: with the short MIB
// prefix, `HcNodeKind` would differ from the column `hcNodeKind` only in case.
fn tc_name(schema: &Schema, enum_name: &str) -> String {
    names::pascal(&schema.module.name) + enum_name
}

fn fixed_tc(schema: &Schema, scale: u32) -> String {
    format!("{}Fixed{scale}", names::pascal(&schema.module.name))
}

fn syntax(schema: &Schema, p: &Property) -> String {
    match (&p.ty, p.measure) {
        (Type::Boolean, _) => "TruthValue".into(),
        (Type::String, _) => format!("DisplayString (SIZE (0..{}))", p.max_len.unwrap_or(255)),
        (Type::Uint32, Measure::Counter) => "Counter32".into(),
        (Type::Uint32, Measure::Gauge) => "Gauge32".into(),
        (Type::Uint32, Measure::None) => "Unsigned32".into(),
        (Type::Uint64, _) => "Counter64".into(),
        (Type::Sint32, _) => "Integer32".into(),
        (Type::Real64 { scale }, _) => fixed_tc(schema, *scale),
        (Type::DateTime, _) => "DateAndTime".into(),
        (Type::Enum(e), _) => tc_name(schema, e),
    }
}

fn units(p: &Property) -> String {
    p.units
        .as_ref()
        .map(|u| format!("    UNITS       \"{u}\"\n"))
        .unwrap_or_default()
}

/// Generates the MIB text.
pub fn generate(schema: &Schema) -> String {
    let m = &schema.module;
    let p = &m.mib_prefix;
    let root = module_identity(schema);
    let date = m.revision.replace('-', "") + "0000Z";
    let mut o = String::new();

    // Imports: only what is used (smilint flags unused imports).
    let mut smi: BTreeSet<&str> = [
        "MODULE-IDENTITY",
        "OBJECT-TYPE",
        "Unsigned32",
        "enterprises",
    ]
    .into_iter()
    .collect();
    let mut tc: BTreeSet<&str> = ["TEXTUAL-CONVENTION", "DisplayString", "AutonomousType"]
        .into_iter()
        .collect();
    let conf: BTreeSet<&str> = ["MODULE-COMPLIANCE", "OBJECT-GROUP"].into_iter().collect();
    let mut conf = conf;
    if schema.indications().next().is_some() {
        smi.insert("NOTIFICATION-TYPE");
        conf.insert("NOTIFICATION-GROUP");
    }
    if schema.object_classes().any(|c| c.entity.is_some()) {
        smi.insert("OBJECT-IDENTITY");
    }
    let mut scales = BTreeSet::new();
    for c in schema.object_classes().chain(schema.indications()) {
        for a in &c.attributes {
            match (&a.ty, a.measure) {
                (Type::Boolean, _) => {
                    tc.insert("TruthValue");
                }
                (Type::Uint32, Measure::Counter) => {
                    smi.insert("Counter32");
                }
                (Type::Uint32, Measure::Gauge) => {
                    smi.insert("Gauge32");
                }
                (Type::Uint64, _) => {
                    smi.insert("Counter64");
                }
                (Type::Sint32, _) | (Type::Real64 { .. }, _) => {
                    smi.insert("Integer32");
                }
                (Type::DateTime, _) => {
                    tc.insert("DateAndTime");
                }
                _ => {}
            }
            if let Type::Real64 { scale } = a.ty {
                scales.insert(scale);
            }
        }
    }
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    let _ = writeln!(o, "{} DEFINITIONS ::= BEGIN\n", m.mib_module);
    let _ = writeln!(
        o,
        "-- Generated by halyard-schema from cluster-model/schema. Do not edit:\n-- change the schema and run `cargo codegen`.\n"
    );
    let _ = writeln!(o, "IMPORTS\n    {}\n        FROM SNMPv2-SMI", list(&smi));
    let _ = writeln!(o, "    {}\n        FROM SNMPv2-TC", list(&tc));
    let _ = writeln!(o, "    {}\n        FROM SNMPv2-CONF;\n", list(&conf));

    let _ = writeln!(o, "{root} MODULE-IDENTITY");
    let _ = writeln!(o, "    LAST-UPDATED \"{date}\"");
    let _ = writeln!(o, "    ORGANIZATION {}", quoted(&m.organization, "   "));
    let _ = writeln!(o, "    CONTACT-INFO {}", quoted(&m.contact, "   "));
    let _ = writeln!(o, "    DESCRIPTION {}", quoted(&m.description, "   "));
    let _ = writeln!(o, "    REVISION    \"{date}\"");
    let _ = writeln!(
        o,
        "    DESCRIPTION {}",
        quoted(
            "Generated from the Halyard schema revision of this date.",
            "   "
        )
    );
    let _ = writeln!(o, "    ::= {{ enterprises {} {} }}\n", m.enterprise, m.arc);

    let _ = writeln!(o, "{p}Notifications OBJECT IDENTIFIER ::= {{ {root} 0 }}");
    let _ = writeln!(o, "{p}Objects       OBJECT IDENTIFIER ::= {{ {root} 1 }}");
    let _ = writeln!(o, "{p}Conformance   OBJECT IDENTIFIER ::= {{ {root} 2 }}");
    let _ = writeln!(o, "{p}NotifObjects  OBJECT IDENTIFIER ::= {{ {root} 3 }}");
    let _ = writeln!(o, "{p}PhysicalTypes OBJECT IDENTIFIER ::= {{ {root} 4 }}\n");

    // Textual conventions.
    for e in &schema.enums {
        let _ = writeln!(o, "{} ::= TEXTUAL-CONVENTION", tc_name(schema, &e.name));
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(o, "    DESCRIPTION {}", quoted(&e.description, "   "));
        let vals = e
            .values
            .iter()
            .map(|v| format!("{}({})", v.name, v.value))
            .collect::<Vec<_>>();
        let _ = writeln!(
            o,
            "    SYNTAX      INTEGER {{\n        {}\n    }}\n",
            vals.join(",\n        ")
        );
    }
    for s in &scales {
        let _ = writeln!(o, "{} ::= TEXTUAL-CONVENTION", fixed_tc(schema, *s));
        let _ = writeln!(o, "    DISPLAY-HINT \"d-{s}\"");
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(
            o,
            "    DESCRIPTION {}",
            quoted(
                &format!("A fixed-point number with {s} decimal digits: the value times 10^{s}."),
                "   "
            )
        );
        let _ = writeln!(o, "    SYNTAX      Integer32\n");
    }

    object_tables(&mut o, p);
    let mut groups = vec![format!("{p}ObjectGroup")];
    for c in schema.object_classes() {
        class_table(&mut o, schema, c);
        groups.push(format!("{p}{}Group", c.mib_name));
    }

    let mut notif_objects = Vec::new();
    let mut notifs = Vec::new();
    for c in schema.indications() {
        let base = format!("{p}{}", c.mib_name);
        let _ = writeln!(
            o,
            "{base}Objects OBJECT IDENTIFIER ::= {{ {p}NotifObjects {} }}\n",
            c.oid
        );
        for a in &c.attributes {
            let name = format!("{base}{}", a.mib_name);
            let _ = writeln!(o, "{name} OBJECT-TYPE");
            let _ = writeln!(o, "    SYNTAX      {}", syntax(schema, a));
            o.push_str(&units(a));
            let _ = writeln!(o, "    MAX-ACCESS  accessible-for-notify");
            let _ = writeln!(o, "    STATUS      current");
            let _ = writeln!(o, "    DESCRIPTION {}", quoted(&a.description, "   "));
            let _ = writeln!(o, "    ::= {{ {base}Objects {} }}\n", a.oid);
            notif_objects.push(name);
        }
        let objs: Vec<String> = c
            .attributes
            .iter()
            .map(|a| format!("{base}{}", a.mib_name))
            .collect();
        let _ = writeln!(o, "{base} NOTIFICATION-TYPE");
        let _ = writeln!(
            o,
            "    OBJECTS     {{ {} }}",
            objs.join(",\n                  ")
        );
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(o, "    DESCRIPTION {}", quoted(&c.description, "   "));
        let _ = writeln!(o, "    ::= {{ {p}Notifications {} }}\n", c.oid);
        notifs.push(base);
    }

    // The vendor types of the physical entities (entPhysicalVendorType):
    // one registration per concrete class with an Entity qualifier.
    for c in schema.object_classes().filter(|c| c.entity.is_some()) {
        let _ = writeln!(o, "{p}{}Type OBJECT-IDENTITY", c.mib_name);
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(
            o,
            "    DESCRIPTION {}",
            quoted(
                &format!("The vendor type of {}: {}", c.name, c.description),
                "   "
            )
        );
        let _ = writeln!(o, "    ::= {{ {p}PhysicalTypes {} }}\n", c.oid);
    }

    // Conformance.
    let _ = writeln!(
        o,
        "{p}Groups       OBJECT IDENTIFIER ::= {{ {p}Conformance 1 }}"
    );
    let _ = writeln!(
        o,
        "{p}Compliances  OBJECT IDENTIFIER ::= {{ {p}Conformance 2 }}\n"
    );
    let _ = writeln!(o, "{p}ObjectGroup OBJECT-GROUP");
    let _ = writeln!(
        o,
        "    OBJECTS     {{ {p}ObjectClass, {p}ObjectName, {p}ObjectContainedIn, {p}ChildClass }}"
    );
    let _ = writeln!(o, "    STATUS      current");
    let _ = writeln!(
        o,
        "    DESCRIPTION {}",
        quoted("The object and containment tables.", "   ")
    );
    let _ = writeln!(o, "    ::= {{ {p}Groups 1 }}\n");
    for c in schema.object_classes() {
        let objs: Vec<String> = c
            .attributes
            .iter()
            .map(|a| format!("{p}{}{}", c.mib_name, a.mib_name))
            .collect();
        let _ = writeln!(o, "{p}{}Group OBJECT-GROUP", c.mib_name);
        let _ = writeln!(
            o,
            "    OBJECTS     {{ {} }}",
            objs.join(",\n                  ")
        );
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(
            o,
            "    DESCRIPTION {}",
            quoted(&format!("The attributes of class {}.", c.name), "   ")
        );
        let _ = writeln!(o, "    ::= {{ {p}Groups {} }}\n", 100 + c.oid);
    }
    if !notifs.is_empty() {
        let _ = writeln!(o, "{p}NotifObjectGroup OBJECT-GROUP");
        let _ = writeln!(
            o,
            "    OBJECTS     {{ {} }}",
            notif_objects.join(",\n                  ")
        );
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(
            o,
            "    DESCRIPTION {}",
            quoted("Objects carried by the notifications.", "   ")
        );
        let _ = writeln!(o, "    ::= {{ {p}Groups 2 }}\n");
        let _ = writeln!(o, "{p}NotificationGroup NOTIFICATION-GROUP");
        let _ = writeln!(
            o,
            "    NOTIFICATIONS {{ {} }}",
            notifs.join(",\n                    ")
        );
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(o, "    DESCRIPTION {}", quoted("The notifications.", "   "));
        let _ = writeln!(o, "    ::= {{ {p}Groups 3 }}\n");
        groups.push(format!("{p}NotifObjectGroup"));
        groups.push(format!("{p}NotificationGroup"));
    }
    let _ = writeln!(o, "{p}Compliance MODULE-COMPLIANCE");
    let _ = writeln!(o, "    STATUS      current");
    let _ = writeln!(
        o,
        "    DESCRIPTION {}",
        quoted("A Halyard agent implements every group.", "   ")
    );
    let _ = writeln!(o, "    MODULE  -- this module");
    let _ = writeln!(
        o,
        "        MANDATORY-GROUPS {{ {} }}",
        groups.join(",\n                           ")
    );
    let _ = writeln!(o, "    ::= {{ {p}Compliances 1 }}\n");
    o.push_str("END\n");
    o
}

fn object_tables(o: &mut String, p: &str) {
    let t = OBJECT_TABLE_ARC;
    let c = CHILD_TABLE_ARC;
    let text = format!(
        r#"{p}ObjectTable OBJECT-TYPE
    SYNTAX      SEQUENCE OF {P}ObjectEntry
    MAX-ACCESS  not-accessible
    STATUS      current
    DESCRIPTION "Every managed object of the element, whatever its class."
    ::= {{ {p}Objects {t} }}

{p}ObjectEntry OBJECT-TYPE
    SYNTAX      {P}ObjectEntry
    MAX-ACCESS  not-accessible
    STATUS      current
    DESCRIPTION "One managed object. Its index is stable across agent
                 restarts and is shared by the table of its class."
    INDEX       {{ {p}ObjectIndex }}
    ::= {{ {p}ObjectTable 1 }}

{P}ObjectEntry ::= SEQUENCE {{
    {p}ObjectIndex       Unsigned32,
    {p}ObjectClass       AutonomousType,
    {p}ObjectName        DisplayString,
    {p}ObjectContainedIn Unsigned32
}}

{p}ObjectIndex OBJECT-TYPE
    SYNTAX      Unsigned32 (1..4294967295)
    MAX-ACCESS  not-accessible
    STATUS      current
    DESCRIPTION "The stable index of the object."
    ::= {{ {p}ObjectEntry 1 }}

{p}ObjectClass OBJECT-TYPE
    SYNTAX      AutonomousType
    MAX-ACCESS  read-only
    STATUS      current
    DESCRIPTION "The entry OID of the table of the object's class."
    ::= {{ {p}ObjectEntry 2 }}

{p}ObjectName OBJECT-TYPE
    SYNTAX      DisplayString (SIZE (0..255))
    MAX-ACCESS  read-only
    STATUS      current
    DESCRIPTION "The persistent name of the object."
    ::= {{ {p}ObjectEntry 3 }}

{p}ObjectContainedIn OBJECT-TYPE
    SYNTAX      Unsigned32
    MAX-ACCESS  read-only
    STATUS      current
    DESCRIPTION "The index of the containing object; 0 for the root."
    ::= {{ {p}ObjectEntry 4 }}

{p}ChildTable OBJECT-TYPE
    SYNTAX      SEQUENCE OF {P}ChildEntry
    MAX-ACCESS  not-accessible
    STATUS      current
    DESCRIPTION "The containment tree: the children of every object."
    ::= {{ {p}Objects {c} }}

{p}ChildEntry OBJECT-TYPE
    SYNTAX      {P}ChildEntry
    MAX-ACCESS  not-accessible
    STATUS      current
    DESCRIPTION "One child of the object identified by {p}ObjectIndex."
    INDEX       {{ {p}ObjectIndex, {p}ChildIndex }}
    ::= {{ {p}ChildTable 1 }}

{P}ChildEntry ::= SEQUENCE {{
    {p}ChildIndex Unsigned32,
    {p}ChildClass AutonomousType
}}

{p}ChildIndex OBJECT-TYPE
    SYNTAX      Unsigned32 (1..4294967295)
    MAX-ACCESS  not-accessible
    STATUS      current
    DESCRIPTION "The index of the child object."
    ::= {{ {p}ChildEntry 1 }}

{p}ChildClass OBJECT-TYPE
    SYNTAX      AutonomousType
    MAX-ACCESS  read-only
    STATUS      current
    DESCRIPTION "The entry OID of the table of the child's class."
    ::= {{ {p}ChildEntry 2 }}

"#,
        P = names::pascal(p)
    );
    o.push_str(&text);
}

fn class_table(o: &mut String, schema: &Schema, c: &ClassDef) {
    let p = &schema.module.mib_prefix;
    let base = format!("{p}{}", c.mib_name);
    let entry_type = format!("{}{}Entry", names::pascal(p), c.mib_name);
    let _ = writeln!(o, "{base}Table OBJECT-TYPE");
    let _ = writeln!(o, "    SYNTAX      SEQUENCE OF {entry_type}");
    let _ = writeln!(o, "    MAX-ACCESS  not-accessible");
    let _ = writeln!(o, "    STATUS      current");
    let _ = writeln!(o, "    DESCRIPTION {}", quoted(&c.description, "   "));
    let _ = writeln!(o, "    ::= {{ {p}Objects {} }}\n", c.oid);
    let _ = writeln!(o, "{base}Entry OBJECT-TYPE");
    let _ = writeln!(o, "    SYNTAX      {entry_type}");
    let _ = writeln!(o, "    MAX-ACCESS  not-accessible");
    let _ = writeln!(o, "    STATUS      current");
    let _ = writeln!(
        o,
        "    DESCRIPTION {}",
        quoted(
            &format!(
                "One object of class {}, indexed like {p}ObjectTable.",
                c.name
            ),
            "   "
        )
    );
    let _ = writeln!(o, "    INDEX       {{ {p}ObjectIndex }}");
    let _ = writeln!(o, "    ::= {{ {base}Table 1 }}\n");
    let width = c
        .attributes
        .iter()
        .map(|a| base.len() + a.mib_name.len())
        .max()
        .unwrap_or(0);
    let fields: Vec<String> = c
        .attributes
        .iter()
        .map(|a| {
            let name = format!("{base}{}", a.mib_name);
            let ty = syntax(schema, a);
            // The SEQUENCE lists base types without size constraints.
            let ty = ty.split(" (").next().unwrap_or(&ty).to_string();
            format!("    {name:width$} {ty}")
        })
        .collect();
    let _ = writeln!(
        o,
        "{entry_type} ::= SEQUENCE {{\n{}\n}}\n",
        fields.join(",\n")
    );
    for a in &c.attributes {
        let _ = writeln!(o, "{base}{} OBJECT-TYPE", a.mib_name);
        let _ = writeln!(o, "    SYNTAX      {}", syntax(schema, a));
        o.push_str(&units(a));
        let _ = writeln!(
            o,
            "    MAX-ACCESS  {}",
            if a.write { "read-write" } else { "read-only" }
        );
        let _ = writeln!(o, "    STATUS      current");
        let _ = writeln!(o, "    DESCRIPTION {}", quoted(&a.description, "   "));
        let _ = writeln!(o, "    ::= {{ {base}Entry {} }}\n", a.oid);
    }
}
