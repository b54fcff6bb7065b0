//! Qualifiers: which ones each kind of declaration accepts, and reading
//! their values with an error (and its location) for every misuse.

use std::collections::BTreeSet;

use crate::diag::{Diagnostic, Loc};
use crate::parse::{Literal, Qualifier, QualifierValue};

/// Which qualifiers each kind of declaration accepts.
pub(super) const SCHEMA_QUALIFIERS: &[&str] = &[
    "Module",
    "Yang",
    "Namespace",
    "Prefix",
    "MibPrefix",
    "MetricPrefix",
    "Enterprise",
    "Arc",
    "Revision",
    "Organization",
    "Contact",
    "Description",
];
pub(super) const ENUM_QUALIFIERS: &[&str] = &["Description"];
pub(super) const CLASS_QUALIFIERS: &[&str] = &[
    "Abstract",
    "Indication",
    "Description",
    "Oid",
    "Rdn",
    "ContainedIn",
    "MibName",
    "Yang",
    "Entity",
    "Fru",
];
pub(super) const PROPERTY_QUALIFIERS: &[&str] = &[
    "Key",
    "Write",
    "Description",
    "Units",
    "Default",
    "Counter",
    "Gauge",
    "Metric",
    "Oid",
    "MaxLen",
    "Scale",
    "Reference",
    "MibName",
    "Yang",
    "Role",
    "Secret",
];
pub(super) const METHOD_QUALIFIERS: &[&str] = &["Description", "Job", "Yang"];
pub(super) const PARAM_QUALIFIERS: &[&str] = &["In", "Description", "Yang"];

pub(super) struct Quals<'a> {
    list: &'a [Qualifier],
}

impl<'a> Quals<'a> {
    /// Checks names against `allowed` and duplicates.
    pub(super) fn new(
        list: &'a [Qualifier],
        allowed: &[&str],
        what: &str,
        errs: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut seen = BTreeSet::new();
        for q in list {
            if !allowed.contains(&q.name.as_str()) {
                errs.push(Diagnostic::new(
                    q.loc.clone(),
                    format!(
                        "found unknown qualifier '{}' on {what}, expected one of {}",
                        q.name,
                        allowed.join(", ")
                    ),
                ));
            } else if !seen.insert(q.name.as_str()) {
                errs.push(Diagnostic::new(
                    q.loc.clone(),
                    format!(
                        "found qualifier '{}' twice, expected it at most once",
                        q.name
                    ),
                ));
            }
        }
        Quals { list }
    }

    pub(super) fn get(&self, name: &str) -> Option<&'a Qualifier> {
        self.list.iter().find(|q| q.name == name)
    }

    pub(super) fn flag(&self, name: &str, errs: &mut Vec<Diagnostic>) -> bool {
        match self.get(name) {
            None => false,
            Some(q) if q.value == QualifierValue::Flag => true,
            Some(q) => {
                errs.push(Diagnostic::new(
                    q.loc.clone(),
                    format!("found a value on qualifier '{name}', expected a flag without value"),
                ));
                true
            }
        }
    }

    pub(super) fn string(&self, name: &str, errs: &mut Vec<Diagnostic>) -> Option<String> {
        let q = self.get(name)?;
        match &q.value {
            QualifierValue::One(Literal::Str(s)) => Some(s.clone()),
            other => {
                errs.push(Diagnostic::new(
                    q.loc.clone(),
                    format!(
                        "found {} in qualifier '{name}', expected a string: {name}(\"...\")",
                        describe_value(other)
                    ),
                ));
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub(super) fn one_of<'n>(
        &self,
        name: &str,
        allowed: impl IntoIterator<Item = &'n str>,
        errs: &mut Vec<Diagnostic>,
    ) -> Option<String> {
        let v = self.string(name, errs)?;
        let allowed: Vec<&str> = allowed.into_iter().collect();
        if allowed.contains(&v.as_str()) {
            return Some(v);
        }
        let loc = self.get(name).expect("qualifier present").loc.clone();
        errs.push(Diagnostic::new(
            loc,
            format!(
                "found {name}(\"{v}\"), expected one of {}",
                allowed.join(", ")
            ),
        ));
        None
    }

    pub(super) fn uint(&self, name: &str, errs: &mut Vec<Diagnostic>) -> Option<u32> {
        let q = self.get(name)?;
        match &q.value {
            QualifierValue::One(Literal::Int(i)) if (0..=i64::from(u32::MAX)).contains(i) => {
                Some(*i as u32)
            }
            other => {
                errs.push(Diagnostic::new(
                    q.loc.clone(),
                    format!(
                        "found {} in qualifier '{name}', expected an integer from 0 to {}",
                        describe_value(other),
                        u32::MAX
                    ),
                ));
                None
            }
        }
    }

    pub(super) fn strings(&self, name: &str, errs: &mut Vec<Diagnostic>) -> Vec<(String, Loc)> {
        let Some(q) = self.get(name) else {
            return Vec::new();
        };
        let items: Vec<&Literal> = match &q.value {
            QualifierValue::List(l) => l.iter().collect(),
            QualifierValue::One(l) => vec![l],
            QualifierValue::Flag => Vec::new(),
        };
        let mut out = Vec::new();
        for l in items {
            match l {
                Literal::Str(s) => out.push((s.clone(), q.loc.clone())),
                other => errs.push(Diagnostic::new(
                    q.loc.clone(),
                    format!(
                        "found {} in qualifier '{name}', expected a list of strings: {name}{{\"A\", \"B\"}}",
                        other.describe()
                    ),
                )),
            }
        }
        if out.is_empty() {
            errs.push(Diagnostic::new(
                q.loc.clone(),
                format!("found an empty qualifier '{name}', expected at least one string"),
            ));
        }
        out
    }
}

fn describe_value(v: &QualifierValue) -> String {
    match v {
        QualifierValue::Flag => "no value".to_string(),
        QualifierValue::One(l) => l.describe().to_string(),
        QualifierValue::List(_) => "a list".to_string(),
    }
}

pub(super) fn required<T>(
    v: Option<T>,
    q: &Quals<'_>,
    name: &str,
    loc: &Loc,
    what: &str,
    errs: &mut Vec<Diagnostic>,
) -> Option<T> {
    if v.is_none() && q.get(name).is_none() {
        errs.push(Diagnostic::new(
            loc.clone(),
            format!("found {what} without qualifier '{name}', expected one"),
        ));
    }
    v
}
