//! Resolving the parsed declarations into the IR: the entry point, the
//! schema's module header and the enumerations.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::checks::{check_class_set, check_enum_defaults};
use super::class::build_class;
use super::quals::{ENUM_QUALIFIERS, Quals, SCHEMA_QUALIFIERS, required};
use super::{EnumDef, EnumValue, Module, Schema};
use crate::diag::{Diagnostic, Loc};
use crate::parse::{Decl, DeclKind, Ident};

/// Resolves declarations into the IR; every error is returned, not only the first.
pub fn build(decls: &[Decl], errs: &mut Vec<Diagnostic>) -> Option<Schema> {
    let start_errors = errs.len();
    let mut names: HashMap<&str, &Loc> = HashMap::new();
    for d in decls {
        if matches!(d.kind, DeclKind::Schema) {
            continue;
        }
        if let Some(prev) = names.insert(d.name.text.as_str(), &d.name.loc) {
            errs.push(Diagnostic::new(
                d.name.loc.clone(),
                format!(
                    "found a second declaration of '{}' (first at {prev}), expected unique names",
                    d.name.text
                ),
            ));
        }
    }

    let module = build_module(decls, errs);
    let enums: Vec<EnumDef> = decls
        .iter()
        .filter_map(|d| match &d.kind {
            DeclKind::Enum { base, values } => Some(build_enum(d, base, values, errs)),
            _ => None,
        })
        .collect();
    let enum_names: BTreeSet<&str> = enums.iter().map(|e| e.name.as_str()).collect();
    let class_decls: BTreeMap<&str, &Decl> = decls
        .iter()
        .filter(|d| matches!(d.kind, DeclKind::Class { .. }))
        .map(|d| (d.name.text.as_str(), d))
        .collect();

    let mut classes = Vec::new();
    for d in decls {
        let DeclKind::Class { .. } = &d.kind else {
            continue;
        };
        if let Some(c) = build_class(d, &class_decls, &enum_names, module.as_ref(), errs) {
            classes.push(c);
        }
    }
    check_class_set(&classes, &class_decls, errs);
    check_enum_defaults(&classes, &enums, &class_decls, errs);

    if errs.len() > start_errors {
        return None;
    }
    Some(Schema {
        module: module?,
        enums,
        classes,
    })
}

fn build_module(decls: &[Decl], errs: &mut Vec<Diagnostic>) -> Option<Module> {
    let schemas: Vec<&Decl> = decls
        .iter()
        .filter(|d| matches!(d.kind, DeclKind::Schema))
        .collect();
    let Some(d) = schemas.first() else {
        if let Some(first) = decls.first() {
            errs.push(Diagnostic::new(
                first.name.loc.clone(),
                "found no 'schema' declaration, expected exactly one".to_string(),
            ));
        }
        return None;
    };
    for extra in &schemas[1..] {
        errs.push(Diagnostic::new(
            extra.name.loc.clone(),
            format!(
                "found a second 'schema' declaration (first at {}), expected exactly one",
                d.name.loc
            ),
        ));
    }
    let q = Quals::new(&d.qualifiers, SCHEMA_QUALIFIERS, "a schema", errs);
    let loc = &d.name.loc;
    let mut s = |name: &str| {
        let v = q.string(name, errs);
        required(v, &q, name, loc, "the schema", errs)
    };
    let mib_module = s("Module");
    let yang_module = s("Yang");
    let namespace = s("Namespace");
    let prefix = s("Prefix");
    let mib_prefix = s("MibPrefix");
    let metric_prefix = s("MetricPrefix");
    let revision = s("Revision");
    let organization = s("Organization");
    let contact = s("Contact");
    let description = s("Description");
    let enterprise = q.uint("Enterprise", errs).unwrap_or(32473);
    let arc = q.uint("Arc", errs);
    let arc = required(arc, &q, "Arc", loc, "the schema", errs);
    if let Some(r) = &revision
        && !is_date(r)
    {
        errs.push(Diagnostic::new(
            q.get("Revision").map_or(loc, |x| &x.loc).clone(),
            format!("found revision \"{r}\", expected a date YYYY-MM-DD"),
        ));
    }
    Some(Module {
        name: d.name.text.clone(),
        mib_module: mib_module?,
        yang_module: yang_module?,
        namespace: namespace?,
        prefix: prefix?,
        mib_prefix: mib_prefix?,
        metric_prefix: metric_prefix?,
        enterprise,
        arc: arc?,
        revision: revision?,
        organization: organization?,
        contact: contact?,
        description: description?,
    })
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn build_enum(
    d: &Decl,
    base: &Ident,
    values: &[crate::parse::EnumValueAst],
    errs: &mut Vec<Diagnostic>,
) -> EnumDef {
    let q = Quals::new(&d.qualifiers, ENUM_QUALIFIERS, "an enumeration", errs);
    let description = q.string("Description", errs).unwrap_or_default();
    if base.text != "uint32" {
        errs.push(Diagnostic::new(
            base.loc.clone(),
            format!(
                "found enumeration base type '{}', expected 'uint32'",
                base.text
            ),
        ));
    }
    let mut out = Vec::new();
    let mut seen_names = BTreeSet::new();
    let mut seen_values = BTreeMap::new();
    for v in values {
        let vq = Quals::new(&v.qualifiers, ENUM_QUALIFIERS, "an enumeration value", errs);
        let vdesc = vq.string("Description", errs).unwrap_or_default();
        if !v.name.text.starts_with(|c: char| c.is_ascii_lowercase()) {
            errs.push(Diagnostic::new(
                v.name.loc.clone(),
                format!(
                    "found enumeration label '{}', expected a lowerCamelCase label",
                    v.name.text
                ),
            ));
        }
        if !seen_names.insert(v.name.text.clone()) {
            errs.push(Diagnostic::new(
                v.name.loc.clone(),
                format!(
                    "found label '{}' twice in enumeration {}, expected unique labels",
                    v.name.text, d.name.text
                ),
            ));
        }
        if !(1..=i64::from(i32::MAX)).contains(&v.value) {
            errs.push(Diagnostic::new(
                v.name.loc.clone(),
                format!(
                    "found value {} for '{}', expected a value from 1 to {}",
                    v.value,
                    v.name.text,
                    i32::MAX
                ),
            ));
            continue;
        }
        if let Some(prev) = seen_values.insert(v.value, v.name.text.clone()) {
            errs.push(Diagnostic::new(
                v.name.loc.clone(),
                format!(
                    "found value {} for '{}', already used by '{prev}', expected unique values",
                    v.value, v.name.text
                ),
            ));
        }
        out.push(EnumValue {
            name: v.name.text.clone(),
            value: v.value as u32,
            description: vdesc,
        });
    }
    EnumDef {
        name: d.name.text.clone(),
        description,
        values: out,
    }
}
