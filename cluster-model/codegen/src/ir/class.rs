//! Classes and indications with their properties and methods: inheritance,
//! the ENTITY-MIB and FRU qualifiers, column numbers, roles, types and
//! defaults, and the MIB descriptors they make.

use std::collections::{BTreeMap, BTreeSet};

use super::quals::{
    CLASS_QUALIFIERS, METHOD_QUALIFIERS, PARAM_QUALIFIERS, PROPERTY_QUALIFIERS, Quals, required,
};
use super::{
    ClassDef, MAX_DESCRIPTOR, Measure, Method, Module, PHYSICAL_CLASSES, Param, Property, ROLES,
    Type,
};
use crate::diag::{Diagnostic, Loc};
use crate::names;
use crate::parse::{Decl, DeclKind, Ident, MemberAst};

fn resolve_type(
    ty: &Ident,
    enums: &BTreeSet<&str>,
    scale: Option<u32>,
    errs: &mut Vec<Diagnostic>,
) -> Option<Type> {
    let t = match ty.text.as_str() {
        "boolean" => Type::Boolean,
        "string" => Type::String,
        "uint32" => Type::Uint32,
        "uint64" => Type::Uint64,
        "sint32" => Type::Sint32,
        "datetime" => Type::DateTime,
        "real64" => match scale {
            Some(s) if s <= 9 => Type::Real64 { scale: s },
            _ => {
                errs.push(Diagnostic::new(
                    ty.loc.clone(),
                    "found real64 without Scale(0..9), expected a Scale qualifier giving its decimal digits".to_string(),
                ));
                return None;
            }
        },
        other if enums.contains(other) => Type::Enum(other.to_string()),
        other => {
            errs.push(Diagnostic::new(
                ty.loc.clone(),
                format!(
                    "found unknown type '{other}', expected boolean, string, uint32, uint64, sint32, real64, datetime or an enumeration"
                ),
            ));
            return None;
        }
    };
    Some(t)
}

pub(super) fn build_class(
    d: &Decl,
    class_decls: &BTreeMap<&str, &Decl>,
    enums: &BTreeSet<&str>,
    module: Option<&Module>,
    errs: &mut Vec<Diagnostic>,
) -> Option<ClassDef> {
    let DeclKind::Class { base, members } = &d.kind else {
        return None;
    };
    let q = Quals::new(&d.qualifiers, CLASS_QUALIFIERS, "a class", errs);
    let is_abstract = q.flag("Abstract", errs);
    let is_indication = q.flag("Indication", errs);
    let description = q.string("Description", errs);
    let description =
        required(description, &q, "Description", &d.name.loc, "a class", errs).unwrap_or_default();
    let oid = q.uint("Oid", errs);
    let rdn = q.string("Rdn", errs);
    let contained_in = q.strings("ContainedIn", errs);
    let mib_name = q
        .string("MibName", errs)
        .unwrap_or_else(|| d.name.text.clone());
    let yang_name = q
        .string("Yang", errs)
        .unwrap_or_else(|| names::kebab(&d.name.text));
    let own_entity = q.one_of("Entity", PHYSICAL_CLASSES.iter().copied(), errs);
    let own_fru = q.flag("Fru", errs);
    let name = &d.name.text;

    if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
        errs.push(Diagnostic::new(
            d.name.loc.clone(),
            format!("found class name '{name}', expected a PascalCase name"),
        ));
    }
    if is_abstract && is_indication {
        errs.push(Diagnostic::new(
            d.name.loc.clone(),
            "found both Abstract and Indication, expected at most one".to_string(),
        ));
    }
    if !is_abstract {
        required(oid, &q, "Oid", &d.name.loc, "a concrete class", errs);
    }
    if !is_abstract && !is_indication {
        required(
            rdn.as_ref(),
            &q,
            "Rdn",
            &d.name.loc,
            "a concrete class",
            errs,
        );
        if let Some(r) = &rdn
            && !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            errs.push(Diagnostic::new(
                q.get("Rdn").map_or(&d.name.loc, |x| &x.loc).clone(),
                format!("found RDN type \"{r}\", expected lower-case letters, digits and '-'"),
            ));
        }
    } else if is_indication && (rdn.is_some() || !contained_in.is_empty()) {
        errs.push(Diagnostic::new(
            d.name.loc.clone(),
            "found Rdn or ContainedIn on an indication, expected neither".to_string(),
        ));
    }
    for (c, loc) in &contained_in {
        if !class_decls.contains_key(c.as_str()) {
            errs.push(Diagnostic::new(
                loc.clone(),
                format!("found unknown class '{c}' in ContainedIn, expected a declared class"),
            ));
        }
    }

    // The inheritance chain, root first; a cycle or unknown base is an error.
    let mut chain = vec![d];
    let mut cur = base.as_ref();
    while let Some(b) = cur {
        match class_decls.get(b.text.as_str()) {
            None => {
                errs.push(Diagnostic::new(
                    b.loc.clone(),
                    format!(
                        "found unknown base class '{}', expected a declared class",
                        b.text
                    ),
                ));
                return None;
            }
            Some(bd) if chain.iter().any(|c| std::ptr::eq(*c, *bd)) => {
                errs.push(Diagnostic::new(
                    b.loc.clone(),
                    format!(
                        "found an inheritance cycle through '{}', expected a tree",
                        b.text
                    ),
                ));
                return None;
            }
            Some(bd) => {
                let base_is_indication = bd.qualifiers.iter().any(|x| x.name == "Indication");
                if chain.len() == 1 && base_is_indication != is_indication {
                    errs.push(Diagnostic::new(
                        b.loc.clone(),
                        format!(
                            "found base '{}' of another kind, expected indications to derive from indications and classes from classes",
                            b.text
                        ),
                    ));
                }
                chain.push(bd);
                cur = match &bd.kind {
                    DeclKind::Class { base, .. } => base.as_ref(),
                    _ => None,
                };
            }
        }
    }
    chain.reverse();

    // Entity and Fru are inherited; a class's own Entity overrides its base's.
    let mut entity = None;
    let mut is_fru = false;
    for cd in &chain {
        if std::ptr::eq(*cd, d) {
            entity = own_entity.clone().or(entity);
            is_fru |= own_fru;
        } else {
            // Errors inside a base class are reported once, when that class is built.
            let mut scratch = Vec::new();
            let bq = Quals::new(&cd.qualifiers, CLASS_QUALIFIERS, "a class", &mut scratch);
            entity = bq
                .one_of("Entity", PHYSICAL_CLASSES.iter().copied(), &mut scratch)
                .or(entity);
            is_fru |= bq.flag("Fru", &mut scratch);
        }
    }
    if is_indication && (own_entity.is_some() || own_fru) {
        errs.push(Diagnostic::new(
            d.name.loc.clone(),
            "found Entity or Fru on an indication, expected neither".to_string(),
        ));
    }
    if own_fru && entity.is_none() && q.get("Entity").is_none() {
        errs.push(Diagnostic::new(
            q.get("Fru").map_or(&d.name.loc, |x| &x.loc).clone(),
            format!(
                "found Fru on class {name}, which is no physical entity, expected an Entity qualifier on it or a base"
            ),
        ));
    }

    let mut attributes: Vec<Property> = Vec::new();
    let mut methods: Vec<Method> = Vec::new();
    let mut by_oid: BTreeMap<u32, String> = BTreeMap::new();
    let mut by_name: BTreeSet<String> = BTreeSet::new();
    for cd in &chain {
        let DeclKind::Class { members, .. } = &cd.kind else {
            continue;
        };
        // Errors inside a base class are reported once, when that class is built.
        let mut scratch = Vec::new();
        let sink: &mut Vec<Diagnostic> = if std::ptr::eq(*cd, d) {
            &mut *errs
        } else {
            &mut scratch
        };
        for m in members {
            if !by_name.insert(m.name.text.clone()) && std::ptr::eq(*cd, d) {
                sink.push(Diagnostic::new(
                    m.name.loc.clone(),
                    format!(
                        "found member '{}' twice in class {name} (with its bases), expected unique member names",
                        m.name.text
                    ),
                ));
            }
            match &m.params {
                Some(params) => {
                    if is_indication {
                        sink.push(Diagnostic::new(
                            m.name.loc.clone(),
                            "found a method in an indication, expected properties only".to_string(),
                        ));
                    }
                    if let Some(meth) = build_method(m, params, &cd.name.text, enums, sink) {
                        methods.push(meth);
                    }
                }
                None => {
                    let Some(p) =
                        build_property(m, &cd.name.text, is_indication, enums, class_decls, sink)
                    else {
                        continue;
                    };
                    if let Some(prev) = by_oid.insert(p.oid, p.name.clone())
                        && std::ptr::eq(*cd, d)
                    {
                        sink.push(Diagnostic::new(
                            m.name.loc.clone(),
                            format!(
                                "found Oid({}) on '{}', already used by '{prev}' in class {name} or its bases, expected a unique column number",
                                p.oid, p.name
                            ),
                        ));
                    }
                    attributes.push(p);
                }
            }
        }
    }
    attributes.sort_by_key(|p| p.oid);

    // A role names one attribute of a class (with its bases).
    let mut roles: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &attributes {
        let Some(r) = &p.role else { continue };
        if let Some(prev) = roles.insert(r, &p.name)
            && let Some(m) = members
                .iter()
                .find(|x| x.name.text == p.name || x.name.text == prev)
        {
            errs.push(Diagnostic::new(
                m.name.loc.clone(),
                format!(
                    "found Role(\"{r}\") on '{}' and '{prev}' in class {name} or its bases, expected it on one attribute",
                    p.name
                ),
            ));
        }
    }

    if !is_abstract && !is_indication {
        let keys = attributes.iter().filter(|p| p.key).count();
        if keys != 1 {
            errs.push(Diagnostic::new(
                d.name.loc.clone(),
                format!(
                    "found {keys} Key properties in class {name} (with its bases), expected exactly one"
                ),
            ));
        }
    }

    if let Some(m) = module {
        // SMIv2 descriptors: table, entry and every column must fit.
        let mut check = |desc: String, loc: &Loc| {
            if desc.len() > MAX_DESCRIPTOR {
                errs.push(Diagnostic::new(
                    loc.clone(),
                    format!(
                        "found MIB descriptor '{desc}' of {} characters, expected at most {MAX_DESCRIPTOR}: shorten it with a MibName qualifier",
                        desc.len()
                    ),
                ));
            }
        };
        if !is_abstract {
            let prefix = format!("{}{}", m.mib_prefix, mib_name);
            if is_indication {
                check(prefix.clone(), &d.name.loc);
            } else {
                check(format!("{prefix}Table"), &d.name.loc);
            }
            for p in &attributes {
                let loc = members
                    .iter()
                    .find(|x| x.name.text == p.name)
                    .map_or(&d.name.loc, |x| &x.name.loc);
                check(format!("{prefix}{}", p.mib_name), loc);
            }
        }
    }

    Some(ClassDef {
        name: name.clone(),
        base: base.as_ref().map(|b| b.text.clone()),
        is_abstract,
        is_indication,
        description,
        oid: if is_abstract { 0 } else { oid.unwrap_or(0) },
        rdn,
        contained_in: contained_in.into_iter().map(|(c, _)| c).collect(),
        mib_name,
        yang_name,
        entity,
        is_fru,
        attributes,
        methods,
    })
}

fn build_property(
    m: &MemberAst,
    class: &str,
    in_indication: bool,
    enums: &BTreeSet<&str>,
    class_decls: &BTreeMap<&str, &Decl>,
    errs: &mut Vec<Diagnostic>,
) -> Option<Property> {
    let q = Quals::new(&m.qualifiers, PROPERTY_QUALIFIERS, "a property", errs);
    let name = &m.name.text;
    let key = q.flag("Key", errs);
    let write = q.flag("Write", errs);
    let counter = q.flag("Counter", errs);
    let gauge = q.flag("Gauge", errs);
    let metric = q.flag("Metric", errs);
    let description = q.string("Description", errs);
    let description = required(
        description,
        &q,
        "Description",
        &m.name.loc,
        "a property",
        errs,
    )
    .unwrap_or_default();
    let units = q.string("Units", errs);
    let default = q.string("Default", errs);
    let oid = q.uint("Oid", errs);
    let oid = required(oid, &q, "Oid", &m.name.loc, "a property", errs);
    let max_len = q.uint("MaxLen", errs);
    let scale = q.uint("Scale", errs);
    let reference = q.string("Reference", errs);
    let mib_name = q.string("MibName", errs).unwrap_or_else(|| name.clone());
    let yang_name = q.string("Yang", errs).unwrap_or_else(|| names::kebab(name));
    let role = q.one_of("Role", ROLES.iter().map(|(r, _)| *r), errs);
    let secret = q.flag("Secret", errs);
    let ty = resolve_type(&m.ty, enums, scale, errs);

    if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
        errs.push(Diagnostic::new(
            m.name.loc.clone(),
            format!("found property name '{name}', expected a PascalCase name"),
        ));
    }
    if oid == Some(0) {
        errs.push(Diagnostic::new(
            m.name.loc.clone(),
            "found Oid(0), expected a column number of 1 or more".to_string(),
        ));
    }
    let ty = ty?;
    let here = |msg: String| Diagnostic::new(m.name.loc.clone(), msg);
    if counter && gauge {
        errs.push(here(
            "found both Counter and Gauge, expected at most one".to_string(),
        ));
    }
    if (counter || gauge) && !ty.is_numeric() {
        errs.push(here(format!(
            "found Counter or Gauge on {} property '{name}', expected a numeric type",
            m.ty.text
        )));
    }
    if counter && ty.is_numeric() && !matches!(ty, Type::Uint32 | Type::Uint64) {
        errs.push(here(format!(
            "found Counter on '{name}' of type {}, expected uint32 or uint64",
            m.ty.text
        )));
    }
    if ty == Type::Uint64 && !counter {
        errs.push(here(format!(
            "found uint64 property '{name}' without Counter, expected Counter (SMIv2 has no 64-bit gauge in the base modules)"
        )));
    }
    if metric && !matches!(ty, Type::Enum(_) | Type::Boolean) {
        errs.push(here(format!(
            "found Metric on '{name}' of type {}, expected an enumeration or boolean (numbers use Counter or Gauge)",
            m.ty.text
        )));
    }
    if key && ty != Type::String {
        errs.push(here(format!(
            "found Key on '{name}' of type {}, expected string",
            m.ty.text
        )));
    }
    if max_len.is_some() && ty != Type::String {
        errs.push(here(format!(
            "found MaxLen on '{name}' of type {}, expected string",
            m.ty.text
        )));
    }
    if scale.is_some() && !matches!(ty, Type::Real64 { .. }) {
        errs.push(here(format!(
            "found Scale on '{name}' of type {}, expected real64",
            m.ty.text
        )));
    }
    if write && in_indication {
        errs.push(here(
            "found Write on an indication property, expected read-only".to_string(),
        ));
    }
    if write && key {
        errs.push(here(
            "found Write on the Key, expected a read-only key".to_string(),
        ));
    }
    if secret && (!write || ty != Type::String || key) {
        errs.push(here(format!(
            "found Secret on '{name}', expected it on a Write string property that is not the Key"
        )));
    }
    if let Some(d) = &default {
        if !write {
            errs.push(here(format!(
                "found Default on read-only '{name}', expected it on a Write property only"
            )));
        }
        let ok = match &ty {
            Type::Boolean => matches!(d.as_str(), "true" | "false"),
            Type::String => max_len.is_none_or(|n| d.chars().count() <= n as usize),
            Type::Uint32 => d.parse::<u32>().is_ok(),
            Type::Sint32 => d.parse::<i32>().is_ok(),
            Type::Real64 { .. } => d.parse::<f64>().is_ok(),
            // Checked against the labels once every enumeration is known.
            Type::Enum(_) => true,
            Type::Uint64 | Type::DateTime => false,
        };
        if !ok {
            errs.push(here(format!(
                "found Default(\"{d}\") on '{name}' of type {}, expected a value of that type",
                m.ty.text
            )));
        }
    }
    if let Some(r) = &role
        && let Some((_, want)) = ROLES.iter().find(|(x, _)| x == r)
        && !want.accepts(&ty)
    {
        errs.push(here(format!(
            "found Role(\"{r}\") on '{name}' of type {}, expected {}",
            m.ty.text,
            want.describe()
        )));
    }
    if let Some(r) = &reference {
        if ty != Type::String {
            errs.push(here(format!(
                "found Reference on '{name}' of type {}, expected string",
                m.ty.text
            )));
        }
        if !class_decls.contains_key(r.as_str()) {
            errs.push(here(format!(
                "found Reference(\"{r}\") to an unknown class, expected a declared class"
            )));
        }
    }
    Some(Property {
        name: name.clone(),
        ty,
        key,
        write,
        description,
        units,
        default,
        measure: if counter {
            Measure::Counter
        } else if gauge {
            Measure::Gauge
        } else {
            Measure::None
        },
        metric,
        oid: oid.unwrap_or(0),
        max_len,
        reference,
        mib_name,
        yang_name,
        declared_in: class.to_string(),
        role,
        secret,
    })
}

fn build_method(
    m: &MemberAst,
    params: &[crate::parse::ParamAst],
    class: &str,
    enums: &BTreeSet<&str>,
    errs: &mut Vec<Diagnostic>,
) -> Option<Method> {
    let q = Quals::new(&m.qualifiers, METHOD_QUALIFIERS, "a method", errs);
    let job = q.flag("Job", errs);
    let description = q.string("Description", errs);
    let description = required(
        description,
        &q,
        "Description",
        &m.name.loc,
        "a method",
        errs,
    )
    .unwrap_or_default();
    let yang_name = q
        .string("Yang", errs)
        .unwrap_or_else(|| names::kebab(&m.name.text));
    let returns = resolve_type(&m.ty, enums, None, errs);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for p in params {
        let pq = Quals::new(&p.qualifiers, PARAM_QUALIFIERS, "a parameter", errs);
        let _ = pq.flag("In", errs);
        let pdesc = pq.string("Description", errs);
        let pdesc = required(pdesc, &pq, "Description", &p.name.loc, "a parameter", errs)
            .unwrap_or_default();
        let pyang = pq
            .string("Yang", errs)
            .unwrap_or_else(|| names::kebab(&p.name.text));
        if !seen.insert(p.name.text.clone()) {
            errs.push(Diagnostic::new(
                p.name.loc.clone(),
                format!(
                    "found parameter '{}' twice, expected unique names",
                    p.name.text
                ),
            ));
        }
        if let Some(ty) = resolve_type(&p.ty, enums, None, errs) {
            out.push(Param {
                name: p.name.text.clone(),
                ty,
                description: pdesc,
                yang_name: pyang,
            });
        }
    }
    Some(Method {
        name: m.name.text.clone(),
        description,
        job,
        params: out,
        returns: returns?,
        yang_name,
        declared_in: class.to_string(),
    })
}
