//! The validated intermediate representation, and the checks that build it.
//!
//! Every backend reads only this IR. Validation collects every error it
//! finds (it never stops at the first) with the location of the offender.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::diag::{Diagnostic, Loc};
use crate::names;
use crate::parse::{Decl, DeclKind, Ident, Literal, MemberAst, Qualifier, QualifierValue};

/// SMIv2 descriptors longer than this draw a warning from smilint.
pub const MAX_DESCRIPTOR: usize = 32;

#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub mib_module: String,
    pub yang_module: String,
    pub namespace: String,
    pub prefix: String,
    pub mib_prefix: String,
    pub metric_prefix: String,
    pub enterprise: u32,
    pub arc: u32,
    pub revision: String,
    pub organization: String,
    pub contact: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct EnumValue {
    pub name: String,
    pub value: u32,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    pub name: String,
    pub description: String,
    pub values: Vec<EnumValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Boolean,
    String,
    Uint32,
    Uint64,
    Sint32,
    /// Fixed point with this many decimal digits.
    Real64 {
        scale: u32,
    },
    DateTime,
    Enum(String),
}

impl Type {
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Type::Uint32 | Type::Uint64 | Type::Sint32 | Type::Real64 { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    None,
    Counter,
    Gauge,
}

#[derive(Debug, Clone)]
pub struct Property {
    pub name: String,
    pub ty: Type,
    pub key: bool,
    pub write: bool,
    pub description: String,
    pub units: Option<String>,
    /// The value a writable attribute takes when configuration omits it
    /// (YANG `default`); a writable attribute without one is mandatory.
    pub default: Option<String>,
    pub measure: Measure,
    /// Exported as a state metric (enums, booleans).
    pub metric: bool,
    pub oid: u32,
    pub max_len: Option<u32>,
    pub reference: Option<String>,
    /// The descriptor suffix after the class's MIB name, e.g. `AdminState`.
    pub mib_name: String,
    pub yang_name: String,
    pub declared_in: String,
    /// The standard meaning of the attribute (`Role` qualifier), one of [`ROLES`].
    pub role: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub yang_name: String,
}

#[derive(Debug, Clone)]
pub struct Method {
    pub name: String,
    pub description: String,
    /// A multi-step operation that runs as a job with progress.
    pub job: bool,
    pub params: Vec<Param>,
    pub returns: Type,
    pub yang_name: String,
    pub declared_in: String,
}

#[derive(Debug, Clone)]
pub struct ClassDef {
    pub name: String,
    pub base: Option<String>,
    pub is_abstract: bool,
    pub is_indication: bool,
    pub description: String,
    /// Table arc (classes) or notification arc (indications); 0 for abstract classes.
    pub oid: u32,
    pub rdn: Option<String>,
    pub contained_in: Vec<String>,
    pub mib_name: String,
    pub yang_name: String,
    /// The ENTITY-MIB physical class (`Entity` qualifier, inherited unless
    /// overridden), one of [`PHYSICAL_CLASSES`]; `None`: not a physical entity.
    pub entity: Option<String>,
    /// A field-replaceable unit (`Fru` qualifier, inherited).
    pub is_fru: bool,
    /// Every attribute, inherited ones included, ordered by column number.
    pub attributes: Vec<Property>,
    /// Every method, inherited ones included.
    pub methods: Vec<Method>,
}

/// A validated schema: the input of every backend.
#[derive(Debug, Clone)]
pub struct Schema {
    pub module: Module,
    pub enums: Vec<EnumDef>,
    /// In declaration order.
    pub classes: Vec<ClassDef>,
}

impl Schema {
    pub fn enum_def(&self, name: &str) -> Option<&EnumDef> {
        self.enums.iter().find(|e| e.name == name)
    }

    pub fn class(&self, name: &str) -> Option<&ClassDef> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// Concrete, non-indication classes: the ones with instances and tables.
    pub fn object_classes(&self) -> impl Iterator<Item = &ClassDef> {
        self.classes
            .iter()
            .filter(|c| !c.is_abstract && !c.is_indication)
    }

    pub fn indications(&self) -> impl Iterator<Item = &ClassDef> {
        self.classes.iter().filter(|c| c.is_indication)
    }

    /// Whether `class` is `ancestor` or derives from it.
    pub fn is_a(&self, class: &str, ancestor: &str) -> bool {
        let mut cur = Some(class);
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.class(c).and_then(|d| d.base.as_deref());
        }
        false
    }
}

/// ENTITY-MIB `PhysicalClass` labels (RFC 6933), in value order from 1: the
/// values of the `Entity` class qualifier.
pub const PHYSICAL_CLASSES: &[&str] = &[
    "other",
    "unknown",
    "chassis",
    "backplane",
    "container",
    "powerSupply",
    "fan",
    "sensor",
    "module",
    "port",
    "stack",
    "cpu",
    "energyObject",
    "battery",
    "storageDrive",
];

/// The values of the `Role` property qualifier: the standard meaning of an
/// attribute, named after the ENTITY-MIB, ENTITY-STATE-MIB and RFC 8348
/// (ietf-hardware) leaves it feeds, and the type it must have.
pub const ROLES: &[(&str, RoleType)] = &[
    ("serialNum", RoleType::String),
    ("hardwareRev", RoleType::String),
    ("alias", RoleType::String),
    ("parentRelPos", RoleType::Integer),
    ("adminState", RoleType::Enum),
    ("operState", RoleType::Enum),
    ("availability", RoleType::Enum),
    ("stateLastChanged", RoleType::DateTime),
    ("alarm", RoleType::String),
];

/// The type an attribute with a given role must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleType {
    String,
    /// uint32 or sint32.
    Integer,
    /// Any enumeration.
    Enum,
    DateTime,
}

impl RoleType {
    fn accepts(self, ty: &Type) -> bool {
        match self {
            RoleType::String => *ty == Type::String,
            RoleType::Integer => matches!(ty, Type::Uint32 | Type::Sint32),
            RoleType::Enum => matches!(ty, Type::Enum(_)),
            RoleType::DateTime => *ty == Type::DateTime,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RoleType::String => "string",
            RoleType::Integer => "uint32 or sint32",
            RoleType::Enum => "an enumeration",
            RoleType::DateTime => "datetime",
        }
    }
}

/// Which qualifiers each kind of declaration accepts.
const SCHEMA_QUALIFIERS: &[&str] = &[
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
const ENUM_QUALIFIERS: &[&str] = &["Description"];
const CLASS_QUALIFIERS: &[&str] = &[
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
const PROPERTY_QUALIFIERS: &[&str] = &[
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
];
const METHOD_QUALIFIERS: &[&str] = &["Description", "Job", "Yang"];
const PARAM_QUALIFIERS: &[&str] = &["In", "Description", "Yang"];

struct Quals<'a> {
    list: &'a [Qualifier],
}

impl<'a> Quals<'a> {
    /// Checks names against `allowed` and duplicates.
    fn new(
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

    fn get(&self, name: &str) -> Option<&'a Qualifier> {
        self.list.iter().find(|q| q.name == name)
    }

    fn flag(&self, name: &str, errs: &mut Vec<Diagnostic>) -> bool {
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

    fn string(&self, name: &str, errs: &mut Vec<Diagnostic>) -> Option<String> {
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
    fn one_of<'n>(
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

    fn uint(&self, name: &str, errs: &mut Vec<Diagnostic>) -> Option<u32> {
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

    fn strings(&self, name: &str, errs: &mut Vec<Diagnostic>) -> Vec<(String, Loc)> {
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

fn required<T>(
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

/// An enumeration's `Default` must name one of its labels.
fn check_enum_defaults(
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

fn build_class(
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

/// Checks that need every class: unique table arcs and RDN types.
fn check_class_set(
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
