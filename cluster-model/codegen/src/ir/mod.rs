//! The validated intermediate representation, and the checks that build it.
//!
//! Every backend reads only this IR. Validation collects every error it
//! finds (it never stops at the first) with the location of the offender.
//!
//! This file holds the IR's types. `resolve.rs` builds it from the parsed
//! declarations (the schema and the enumerations there), `class.rs` the
//! classes with their properties and methods, `quals.rs` reads and checks
//! qualifiers, and `checks.rs` holds the checks that need every class.

mod checks;
mod class;
mod quals;
mod resolve;

pub use resolve::build;

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
    /// Write-only (`Secret`): never read back on any face (YANG
    /// `nacm:default-deny-all`); its role says how it is kept.
    pub secret: bool,
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
/// (ietf-hardware) leaves it feeds, or the SNMPv2-MIB / ietf-system
/// objects of the element (contact, location, authenticationTraps), and
/// the type it must have.
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
    ("contact", RoleType::String),
    ("location", RoleType::String),
    ("authenticationTraps", RoleType::Boolean),
    ("alarmType", RoleType::Enum),
    ("alarmClearMaximum", RoleType::Integer),
    ("mfgName", RoleType::String),
    ("modelName", RoleType::String),
    ("alarmOverflow", RoleType::Integer),
    ("hostname", RoleType::String),
    ("timezoneUtcOffset", RoleType::Integer),
    ("ifInOctets", RoleType::Counter64),
    ("ifOutOctets", RoleType::Counter64),
    ("ifInUcastPkts", RoleType::Counter64),
    ("ifOutUcastPkts", RoleType::Counter64),
    ("ifInErrors", RoleType::Counter64),
    ("ifOutErrors", RoleType::Counter64),
    ("sshKey", RoleType::String),
    ("password", RoleType::String),
    ("udpAddress", RoleType::String),
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
    Boolean,
    /// uint64 (a 64-bit counter).
    Counter64,
}

impl RoleType {
    fn accepts(self, ty: &Type) -> bool {
        match self {
            RoleType::String => *ty == Type::String,
            RoleType::Integer => matches!(ty, Type::Uint32 | Type::Sint32),
            RoleType::Enum => matches!(ty, Type::Enum(_)),
            RoleType::DateTime => *ty == Type::DateTime,
            RoleType::Boolean => *ty == Type::Boolean,
            RoleType::Counter64 => *ty == Type::Uint64,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RoleType::String => "string",
            RoleType::Integer => "uint32 or sint32",
            RoleType::Enum => "an enumeration",
            RoleType::DateTime => "datetime",
            RoleType::Boolean => "boolean",
            RoleType::Counter64 => "uint64",
        }
    }
}
