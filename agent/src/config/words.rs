//! The words of a fixed set that config fields take. An unknown word is
//! refused while the file is read: serde's "unknown variant `x`, expected
//! one of `a`, `b`" at the word's file:line:col (see `parse`).

use std::fmt;

use serde::Deserialize;

/// `[[service_group]] model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RedundancyModel {
    #[serde(rename = "2n")]
    TwoN,
    #[serde(rename = "n+m")]
    NPlusM,
    #[serde(rename = "n-way-active")]
    NWayActive,
    #[serde(rename = "no-redundancy")]
    NoRedundancy,
}

/// `[[service_group]] standby`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standby {
    #[default]
    Hot,
    Warm,
}

/// `[[service_group]] first_recovery`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recovery {
    SoftReset,
    HotRestart,
    #[default]
    FailOver,
}

/// `[[component]] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    HaAware,
    Process,
    /// Manages a non-peer node over SSH.
    Proxy,
}

/// `kind` of a `[[fru_type]]`'s component: no proxies there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FruComponentKind {
    HaAware,
    Process,
}

impl From<FruComponentKind> for ComponentKind {
    fn from(k: FruComponentKind) -> Self {
        match k {
            FruComponentKind::HaAware => ComponentKind::HaAware,
            FruComponentKind::Process => ComponentKind::Process,
        }
    }
}

/// `checkpoint` of a component: synchronous by default, none for a FRU
/// type's components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checkpoint {
    None,
    #[default]
    Synchronous,
    Asynchronous,
}

/// `admin` of a component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Admin {
    Locked,
    #[default]
    Unlocked,
}

/// A FRU's `kind` and a `[[fru_type]]`'s `class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FruClass {
    Hsc,
    Fan,
    Psu,
    Board,
    Linecard,
}

impl FruClass {
    /// The word in the file, also the unit's relative-name type.
    pub fn as_str(self) -> &'static str {
        match self {
            FruClass::Hsc => "hsc",
            FruClass::Fan => "fan",
            FruClass::Psu => "psu",
            FruClass::Board => "board",
            FruClass::Linecard => "linecard",
        }
    }
}

impl fmt::Display for FruClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[fru_type]] instantiate`: dynamic units are instantiated when
/// inserted; manual ones instantiated locked, started when an operator
/// unlocks them (static units are the `[[shelf]]` fru entries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Instantiate {
    #[default]
    Dynamic,
    Manual,
}

/// `[[aggregate]] function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AggregateFunction {
    Sum,
    Average,
    Minimum,
    Maximum,
}

/// `[[threshold]] direction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Rising,
    Falling,
}

/// `[[threshold]] severity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Critical,
    #[default]
    Major,
    Minor,
    Warning,
}

/// `role` of an HTTP or NETCONF user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    #[default]
    Operator,
    Admin,
}

/// `read_level` / `write_level` of an SNMPv3 user: the weakest security
/// level its reads or writes are served at (net-snmp's `-l` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum SnmpLevel {
    #[serde(rename = "authNoPriv")]
    AuthNoPriv,
    #[serde(rename = "authPriv")]
    AuthPriv,
}

/// `auth` of an SNMPv3 user (USM authentication protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SnmpAuth {
    #[serde(rename = "SHA", alias = "SHA-1")]
    Sha1,
    #[serde(rename = "SHA-224")]
    Sha224,
    #[serde(rename = "SHA-256")]
    Sha256,
    #[serde(rename = "SHA-384")]
    Sha384,
    #[serde(rename = "SHA-512")]
    Sha512,
    #[serde(rename = "MD5")]
    Md5,
}

/// `priv` of an SNMPv3 user (USM privacy protocol), by net-snmp's names.
/// AES-192 and AES-256 extend a short localised key as net-snmp does
/// (Blumenthal); the `-C` forms as Cisco and pysnmp's
/// `usmAesCfb192Protocol` do (Reeder). A name not listed is refused where
/// it is written, never replaced by another protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SnmpPriv {
    #[serde(rename = "DES")]
    Des,
    #[serde(rename = "AES", alias = "AES-128")]
    Aes,
    #[serde(rename = "AES-192")]
    Aes192,
    #[serde(rename = "AES-256")]
    Aes256,
    #[serde(rename = "AES-192-C")]
    Aes192Reeder,
    #[serde(rename = "AES-256-C")]
    Aes256Reeder,
}

/// What COpCo does with a command that conflicts with a running job
/// (`[agent] conflict_policy` in the config file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Refuse it at once, naming the job that holds the subtree.
    #[default]
    Reject,
    /// Queue it (job state `queued`) until the subtree is free, at most
    /// COpCo's `QUEUE_LIMIT`; then reject it.
    Queue,
}
