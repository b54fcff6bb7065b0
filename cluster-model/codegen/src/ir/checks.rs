//! Checks across classes, once every class is built: unique table and
//! notification arcs, MIB names and RDN types, and enumeration defaults.

use std::collections::BTreeMap;

use super::{ClassDef, EnumDef, Type};
use crate::diag::Diagnostic;
use crate::parse::Decl;

/// An enumeration's `Default` must name one of its labels.
pub(super) fn check_enum_defaults(
    classes: &[ClassDef],
    enums: &[EnumDef],
    class_decls: &BTreeMap<&str, &Decl>,
    errs: &mut Vec<Diagnostic>,
) {
    for c in classes {
        for p in &c.attributes {
            let (Type::Enum(e), Some(d)) = (&p.ty, &p.default) else {
                continue;
            };
            let Some(def) = enums.iter().find(|x| &x.name == e) else {
                continue;
            };
            if !def.values.iter().any(|v| &v.name == d)
                && let Some(decl) = class_decls.get(c.name.as_str())
            {
                errs.push(Diagnostic::new(
                    decl.name.loc.clone(),
                    format!(
                        "found Default(\"{d}\") on {}.{}, expected a label of {e}",
                        c.name, p.name
                    ),
                ));
            }
        }
    }
}

/// Checks that need every class: unique table arcs and RDN types.
pub(super) fn check_class_set(
    classes: &[ClassDef],
    decls: &BTreeMap<&str, &Decl>,
    errs: &mut Vec<Diagnostic>,
) {
    let mut tables: BTreeMap<u32, &str> = BTreeMap::new();
    let mut notifs: BTreeMap<u32, &str> = BTreeMap::new();
    let mut rdns: BTreeMap<&str, &str> = BTreeMap::new();
    let mut mib_names: BTreeMap<&str, &str> = BTreeMap::new();
    for c in classes.iter().filter(|c| !c.is_abstract) {
        let loc = &decls[c.name.as_str()].name.loc;
        let map = if c.is_indication {
            &mut notifs
        } else {
            &mut tables
        };
        if let Some(prev) = map.insert(c.oid, &c.name) {
            errs.push(Diagnostic::new(
                loc.clone(),
                format!(
                    "found Oid({}) on class {}, already used by {prev}, expected a unique arc",
                    c.oid, c.name
                ),
            ));
        }
        if let Some(prev) = mib_names.insert(&c.mib_name, &c.name) {
            errs.push(Diagnostic::new(
                loc.clone(),
                format!(
                    "found MIB name '{}' on class {}, already used by {prev}, expected a unique MibName",
                    c.mib_name, c.name
                ),
            ));
        }
        if let Some(r) = &c.rdn
            && let Some(prev) = rdns.insert(r, &c.name)
        {
            errs.push(Diagnostic::new(
                loc.clone(),
                format!(
                    "found Rdn(\"{r}\") on class {}, already used by {prev}, expected a unique RDN type",
                    c.name
                ),
            ));
        }
    }
}
