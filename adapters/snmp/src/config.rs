//! Configuration of the SNMP face. The agent fills it from its config file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// USM authentication protocols (RFC 3414, RFC 7860).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// USM privacy protocols: CBC-DES (RFC 3414 8), AES-128-CFB (RFC 3826)
/// and AES-192/256-CFB with either of the two key extensions in use:
/// Blumenthal's (draft-blumenthal-aes-usm-04, net-snmp's `AES-192` and
/// `AES-256`) and Reeder's (draft-reeder-snmpv3-usm-3desede-00, Cisco's
/// and pysnmp's `usmAesCfb192Protocol`). The two differ only in how a
/// localised key shorter than the cipher's is extended, so a manager set
/// for the other variant fails with a decryption error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    Des,
    Aes128,
    Aes192,
    Aes256,
    Aes192Reeder,
    Aes256Reeder,
}

/// The element's labels of the protocols (the schema's `AccessSnmpAuth`
/// and `AccessSnmpPriv`, which hold a user's keys): one table each, for
/// the SNMP face reading the keys and the command line writing them.
const AUTH_LABELS: [(AuthProtocol, &str); 6] = [
    (AuthProtocol::Md5, "md5"),
    (AuthProtocol::Sha1, "sha"),
    (AuthProtocol::Sha224, "sha224"),
    (AuthProtocol::Sha256, "sha256"),
    (AuthProtocol::Sha384, "sha384"),
    (AuthProtocol::Sha512, "sha512"),
];
const PRIV_LABELS: [(PrivProtocol, &str); 6] = [
    (PrivProtocol::Des, "des"),
    (PrivProtocol::Aes128, "aes"),
    (PrivProtocol::Aes192, "aes192"),
    (PrivProtocol::Aes256, "aes256"),
    (PrivProtocol::Aes192Reeder, "aes192c"),
    (PrivProtocol::Aes256Reeder, "aes256c"),
];

impl AuthProtocol {
    /// Its label in the element's model.
    pub fn label(self) -> &'static str {
        AUTH_LABELS
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("", |(_, l)| l)
    }

    pub fn from_label(label: &str) -> Option<Self> {
        AUTH_LABELS
            .iter()
            .find(|(_, l)| *l == label)
            .map(|(p, _)| *p)
    }
}

impl PrivProtocol {
    /// Its label in the element's model.
    pub fn label(self) -> &'static str {
        PRIV_LABELS
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("", |(_, l)| l)
    }

    pub fn from_label(label: &str) -> Option<Self> {
        PRIV_LABELS
            .iter()
            .find(|(_, l)| *l == label)
            .map(|(p, _)| *p)
    }

    /// Octets of localised key the protocol takes: DES uses 8 for the key
    /// and 8 for the pre-IV (RFC 3414 8.1.1.1).
    pub fn key_len(self) -> usize {
        match self {
            PrivProtocol::Des | PrivProtocol::Aes128 => 16,
            PrivProtocol::Aes192 | PrivProtocol::Aes192Reeder => 24,
            PrivProtocol::Aes256 | PrivProtocol::Aes256Reeder => 32,
        }
    }
}

/// A named MIB view (RFC 3415): included subtrees minus excluded ones.
/// A view with no included subtree includes everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    pub included: Vec<Vec<u32>>,
    pub excluded: Vec<Vec<u32>>,
}

impl View {
    /// Everything.
    pub fn all() -> Self {
        View::default()
    }

    pub fn contains(&self, oid: &[u32]) -> bool {
        (self.included.is_empty() || self.included.iter().any(|p| oid.starts_with(p)))
            && !self.excluded.iter().any(|p| oid.starts_with(p))
    }
}

/// A v1/v2c community. Read-only unless `write` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    pub name: String,
    pub view: View,
    pub write: bool,
}

impl Community {
    pub fn read_only(name: &str) -> Self {
        Community {
            name: name.to_string(),
            view: View::all(),
            write: false,
        }
    }
}

/// SNMPv3 security levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecurityLevel {
    NoAuthNoPriv,
    AuthNoPriv,
    AuthPriv,
}

/// A VACM group (RFC 3415): what its members may read and write, and the
/// weakest security level their requests may use, for reads and, never
/// weaker, for writes (a group's access entries per level, in VACM's
/// terms: below `write_min_level` the entry has no write view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// Name of a view in [`SnmpConfig::views`]; `None` reads nothing.
    pub read_view: Option<String>,
    /// Name of a view; `None`: members may not write.
    pub write_view: Option<String>,
    pub min_level: SecurityLevel,
    /// Writes below this level get noAccess; the stronger of this and
    /// `min_level` applies.
    pub write_min_level: SecurityLevel,
}

/// An SNMPv3 USM user, member of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsmUser {
    pub name: String,
    /// Protocol and password (at least 8 characters).
    pub auth: Option<(AuthProtocol, String)>,
    /// Protocol and password; requires `auth`.
    pub privacy: Option<(PrivProtocol, String)>,
    pub group: String,
}

/// Trap (unconfirmed) or inform (acknowledged, retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Trap,
    Inform { timeout: Duration, retries: u32 },
}

/// How notifications to a target are secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapSecurity {
    /// SNMPv2c with this community.
    Community(String),
    /// SNMPv3 USM as this configured user, at the highest level the user
    /// has (authPriv when it has a privacy key). For traps this engine is
    /// authoritative (the receiver knows the user under our engine ID);
    /// for informs the receiver is, and is discovered first (RFC 3414 4).
    Usm { user: String },
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapTarget {
    pub address: SocketAddr,
    pub security: TrapSecurity,
    pub kind: NotifyKind,
}

/// The whole configuration of the SNMP face.
#[derive(Debug, Clone)]
pub struct SnmpConfig {
    /// UDP addresses to listen on (IPv4 and/or IPv6); port 0 picks one.
    pub listen: Vec<SocketAddr>,
    pub communities: Vec<Community>,
    pub users: Vec<UsmUser>,
    pub groups: Vec<Group>,
    /// Named views for groups; the name `all` is predefined as everything.
    pub views: BTreeMap<String, View>,
    pub trap_targets: Vec<TrapTarget>,
    /// File holding the engine ID and boot counter; `None` keeps them in
    /// memory (a fresh engine ID per start: tests only).
    pub engine_state: Option<PathBuf>,
    /// A fixed engine ID (hex in the file otherwise); `None` generates one.
    pub engine_id: Option<Vec<u8>>,
    pub sys_descr: String,
    /// sysContact fixed by configuration (read-only); `None`: the
    /// element's `contact` attribute, writable from every face.
    pub sys_contact: Option<String>,
    pub sys_name: String,
    /// sysLocation fixed by configuration; `None`: the element's `location`.
    pub sys_location: Option<String>,
    /// Deadline of one request, model calls included.
    pub request_timeout: Duration,
    /// Largest message the agent sends or accepts.
    pub max_message_size: usize,
    /// Requests handled at once; more are dropped (snmpSilentDrops).
    pub max_in_flight: usize,
    /// Send authenticationFailure traps (snmpEnableAuthenTraps) on bad
    /// communities and wrong digests, fixed by configuration; `None`: the
    /// element's `authentication-traps` attribute decides.
    pub authentication_failure_traps: Option<bool>,
}

impl Default for SnmpConfig {
    fn default() -> Self {
        SnmpConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 161))],
            communities: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            views: BTreeMap::new(),
            trap_targets: Vec::new(),
            engine_state: None,
            engine_id: None,
            sys_descr: format!(
                "Halyard network-element agent {}",
                env!("CARGO_PKG_VERSION")
            ),
            sys_contact: None,
            sys_name: String::new(),
            sys_location: None,
            request_timeout: Duration::from_secs(5),
            max_message_size: 65_507,
            max_in_flight: 1024,
            authentication_failure_traps: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protocol's label is a value of the schema's enumeration that
    /// holds it, and every value of those enumerations (but `none`) is a
    /// protocol's: the table cannot drift from the schema.
    #[test]
    fn protocol_labels_are_the_schema_enumerations() {
        let labels = |name: &str| -> Vec<&'static str> {
            let e = halyard_cluster_model::SCHEMA
                .enums
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("no enumeration {name}"));
            e.values
                .iter()
                .map(|v| v.name)
                .filter(|n| *n != "none")
                .collect()
        };
        let mut auth: Vec<&str> = AUTH_LABELS.iter().map(|(p, _)| p.label()).collect();
        let mut schema = labels("AccessSnmpAuth");
        auth.sort_unstable();
        schema.sort_unstable();
        assert_eq!(auth, schema);
        let mut privacy: Vec<&str> = PRIV_LABELS.iter().map(|(p, _)| p.label()).collect();
        let mut schema = labels("AccessSnmpPriv");
        privacy.sort_unstable();
        schema.sort_unstable();
        assert_eq!(privacy, schema);
        for (p, l) in AUTH_LABELS {
            assert_eq!(AuthProtocol::from_label(l), Some(p));
        }
        for (p, l) in PRIV_LABELS {
            assert_eq!(PrivProtocol::from_label(l), Some(p));
        }
    }
}
