//! Monitoring and discovery: ietf-netconf-monitoring (RFC 6022) state,
//! get-schema, ietf-yang-library (RFC 8525, and the RFC 7895
//! `modules-state` it keeps), the capabilities of the hello.

use std::sync::atomic::{AtomicU64, Ordering};

use halyard_cluster_model::{SCHEMA, Timestamp, alarm_types};

use crate::error::{RpcError, Tag};
use crate::xml::{Element, XMLNS_DECL};
use crate::{BASE_NS, MONITORING_NS, SCHEMA_TEXT, YANG_LIBRARY_NS};

/// Server-wide counters (RFC 6022 statistics, plus failed logins).
#[derive(Debug, Default)]
pub struct Stats {
    pub in_bad_hellos: AtomicU64,
    pub in_sessions: AtomicU64,
    pub dropped_sessions: AtomicU64,
    pub in_rpcs: AtomicU64,
    pub in_bad_rpcs: AtomicU64,
    pub out_rpc_errors: AtomicU64,
    pub out_notifications: AtomicU64,
    /// Failed SSH authentication attempts (password or key).
    pub auth_failures: AtomicU64,
    /// Password logins refused unchecked: their address failed too often
    /// (see `halyard_cluster_model::guard`).
    pub auth_refused: AtomicU64,
    /// Sessions closed for a framing error or an oversize message.
    pub framing_errors: AtomicU64,
    /// SSH connections refused for malformed input before or during the
    /// SSH protocol: a bad identification line, a malformed packet.
    pub ssh_errors: AtomicU64,
    /// RPCs the access rules refused (edits and actions the model refused
    /// are counted by the model, in the element's `AccessDenials`).
    pub access_denied: AtomicU64,
    /// Notifications the access rules kept from a subscriber.
    pub denied_notifications: AtomicU64,
    /// Time to handle one RPC, from the whole message to the reply.
    pub rpc_latency: halyard_cluster_model::latency::LatencyHistogram,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the monitoring `sessions` list shows about one session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: u32,
    pub user: String,
    pub source_host: String,
    pub login_time: Timestamp,
    pub in_rpcs: u64,
    pub in_bad_rpcs: u64,
    pub out_rpc_errors: u64,
    pub out_notifications: u64,
}

/// A module the server implements or imports.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    pub name: &'static str,
    pub revision: &'static str,
    pub namespace: &'static str,
    /// Implemented (else import-only).
    pub implement: bool,
    /// The features of the module the server supports (yang-library).
    pub features: &'static [&'static str],
}

impl ModuleInfo {
    /// The module's text, byte-exact as published (`yang/standard/`,
    /// sources and licences in its SOURCES.md) or generated (ours).
    pub fn text(&self) -> Option<&'static str> {
        if self.name == SCHEMA.module.yang_module {
            return Some(SCHEMA_TEXT);
        }
        if self.name == alarm_types::NAME {
            return Some(alarm_types::TEXT);
        }
        STANDARD
            .iter()
            .find(|(n, r, _)| *n == self.name && *r == self.revision)
            .map(|(_, _, t)| *t)
    }

    /// A YANG 1.1 module is listed in the yang-library only, never as a
    /// hello capability (RFC 7950 §5.6.4).
    pub fn is_yang11(&self) -> bool {
        self.text().is_some_and(|t| {
            t.lines()
                .take(8)
                .any(|l| l.trim_start().starts_with("yang-version 1.1"))
        })
    }
}

macro_rules! standard {
    ($($name:literal @ $rev:literal),* $(,)?) => {
        &[$(($name, $rev, include_str!(concat!("../../../yang/standard/", $name, "@", $rev, ".yang")))),*]
    };
}

/// The standard modules served by `<get-schema>`, embedded byte-exact.
const STANDARD: &[(&str, &str, &str)] = standard![
    "ietf-netconf" @ "2011-06-01",
    "ietf-netconf-monitoring" @ "2010-10-04",
    "ietf-netconf-with-defaults" @ "2011-06-01",
    "ietf-yang-library" @ "2019-01-04",
    "notifications" @ "2008-07-14",
    "nc-notifications" @ "2008-07-14",
    "ietf-netconf-notifications" @ "2012-02-06",
    "ietf-yang-types" @ "2013-07-15",
    "ietf-inet-types" @ "2013-07-15",
    "ietf-netconf-acm" @ "2018-02-14",
    "ietf-datastores" @ "2018-02-14",
    "ietf-hardware" @ "2018-03-13",
    "iana-hardware" @ "2018-03-13",
    "ietf-alarms" @ "2019-09-11",
    "ietf-alarms-x733" @ "2019-09-11",
    "ietf-netconf-nmda" @ "2019-01-07",
    "ietf-origin" @ "2018-02-14",
    "ietf-yang-metadata" @ "2016-08-05",
    "ietf-system" @ "2014-08-06",
    "iana-crypt-hash" @ "2014-08-06",
];

/// The features of ietf-netconf the server supports, one per capability
/// of the hello (RFC 6241 §10.4 maps each to its capability).
pub const NETCONF_FEATURES: &[&str] = &[
    "writable-running",
    "candidate",
    "confirmed-commit",
    "rollback-on-error",
    "validate",
    "xpath",
];

/// The RFC 5277 stream-discovery namespace (module nc-notifications).
pub const NC_NOTIFICATIONS_NS: &str = "urn:ietf:params:xml:ns:netmod:notification";

/// Every module of the server's schema.
pub fn modules() -> Vec<ModuleInfo> {
    let m = |name, revision, namespace, implement| ModuleInfo {
        name,
        revision,
        namespace,
        implement,
        features: &[],
    };
    vec![
        m(
            SCHEMA.module.yang_module,
            SCHEMA.module.revision,
            SCHEMA.module.namespace,
            true,
        ),
        ModuleInfo {
            features: NETCONF_FEATURES,
            ..m("ietf-netconf", "2011-06-01", BASE_NS, true)
        },
        m("ietf-netconf-monitoring", "2010-10-04", MONITORING_NS, true),
        m(
            "ietf-netconf-with-defaults",
            "2011-06-01",
            crate::WITH_DEFAULTS_NS,
            true,
        ),
        m("ietf-yang-library", "2019-01-04", YANG_LIBRARY_NS, true),
        m("notifications", "2008-07-14", crate::NOTIF_NS, true),
        m("nc-notifications", "2008-07-14", NC_NOTIFICATIONS_NS, true),
        m(
            "ietf-netconf-notifications",
            "2012-02-06",
            crate::events::NCN_NS,
            true,
        ),
        m(
            "ietf-yang-types",
            "2013-07-15",
            "urn:ietf:params:xml:ns:yang:ietf-yang-types",
            false,
        ),
        m(
            "ietf-inet-types",
            "2013-07-15",
            "urn:ietf:params:xml:ns:yang:ietf-inet-types",
            false,
        ),
        // Implemented: /nacm is the element's access model.
        m("ietf-netconf-acm", "2018-02-14", crate::nacm::NACM_NS, true),
        m(
            "ietf-datastores",
            "2018-02-14",
            "urn:ietf:params:xml:ns:yang:ietf-datastores",
            // Implemented: yang-library names datastores by its identities.
            true,
        ),
        ModuleInfo {
            features: crate::hardware::FEATURES,
            ..m(
                "ietf-hardware",
                "2018-03-13",
                crate::hardware::HARDWARE_NS,
                true,
            )
        },
        // Implemented: components' classes are its identities.
        m(
            "iana-hardware",
            "2018-03-13",
            crate::hardware::IANA_HW_NS,
            true,
        ),
        // NMDA (RFC 8526): <get-data> and <edit-data>, with the origin
        // annotation and filters.
        ModuleInfo {
            features: &["origin"],
            ..m("ietf-netconf-nmda", "2019-01-07", crate::NMDA_NS, true)
        },
        // Implemented: its annotation marks the operational datastore.
        m("ietf-origin", "2018-02-14", crate::origin::ORIGIN_NS, true),
        m(
            "ietf-yang-metadata",
            "2016-08-05",
            "urn:ietf:params:xml:ns:yang:ietf-yang-metadata",
            false,
        ),
        // ietf-system: no feature (no NTP, RADIUS, DNS or local users here).
        m("ietf-system", "2014-08-06", crate::system::SYSTEM_NS, true),
        m(
            "iana-crypt-hash",
            "2014-08-06",
            "urn:ietf:params:xml:ns:yang:iana-crypt-hash",
            false,
        ),
        ModuleInfo {
            features: crate::alarms::FEATURES,
            ..m("ietf-alarms", "2019-09-11", crate::alarms::ALARMS_NS, true)
        },
        // X.733 event type, probable cause and trend of every alarm; no
        // configurable mapping (the engine's causes are X.733's).
        m(
            "ietf-alarms-x733",
            "2019-09-11",
            crate::alarms::X733_NS,
            true,
        ),
        // Implemented: alarms' types are its identities.
        m(
            alarm_types::NAME,
            SCHEMA.module.revision,
            alarm_types::NAMESPACE,
            true,
        ),
    ]
}

/// A stable identifier of the module set (yang-library content-id).
/// The name of the module with namespace `ns`, among the served ones.
pub fn module_of_namespace(ns: &str) -> Option<&'static str> {
    static BY_NS: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static str>> =
        std::sync::OnceLock::new();
    BY_NS
        .get_or_init(|| {
            modules()
                .into_iter()
                .map(|m| (m.namespace, m.name))
                .collect()
        })
        .get(ns)
        .copied()
}

pub fn content_id() -> String {
    // FNV-1a over names and revisions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in modules() {
        for b in m.name.bytes().chain(m.revision.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The capabilities of the server hello.
pub fn capabilities() -> Vec<String> {
    // Each ietf-netconf feature is its :1.0 capability (RFC 6241 §10.4),
    // so the hello and the yang-library cannot disagree.
    let mut caps: Vec<String> = NETCONF_FEATURES
        .iter()
        .map(|f| format!("urn:ietf:params:netconf:capability:{f}:1.0"))
        .collect();
    caps.extend(
        [
        "urn:ietf:params:netconf:base:1.0",
        "urn:ietf:params:netconf:base:1.1",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
        "urn:ietf:params:netconf:capability:validate:1.1",
        "urn:ietf:params:netconf:capability:notification:1.0",
        "urn:ietf:params:netconf:capability:interleave:1.0",
        "urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=report-all&also-supported=trim,explicit,report-all-tagged",
    ]
        .iter()
        .map(|s| s.to_string()),
    );
    caps.push(format!(
        "urn:ietf:params:netconf:capability:yang-library:1.0?revision=2019-01-04&module-set-id={}",
        content_id()
    ));
    // NMDA (RFC 8526 §2): yang-library 1.1 with the content-id; 1.0 stays
    // for clients that predate it.
    caps.push(format!(
        "urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&content-id={}",
        content_id()
    ));
    for m in modules().iter().filter(|m| m.implement && !m.is_yang11()) {
        if m.name == "ietf-netconf" {
            continue;
        }
        caps.push(format!(
            "{}?module={}&revision={}",
            m.namespace, m.name, m.revision
        ));
    }
    caps
}

/// What `<get-schema>` serves: every module listed, from the binary
/// (ours generated, the standard ones byte-exact from `yang/standard/`).
#[derive(Debug)]
pub struct SchemaStore;

impl SchemaStore {
    /// The text of a listed module (every one is embedded, see
    /// [`ModuleInfo::text`]); an empty revision means the one served.
    pub fn text(&self, name: &str, revision: &str) -> Option<&'static str> {
        modules()
            .into_iter()
            .find(|m| m.name == name && (revision.is_empty() || revision == m.revision))?
            .text()
    }

    /// Modules available for retrieval.
    pub fn available(&self) -> Vec<ModuleInfo> {
        modules()
            .into_iter()
            .filter(|m| self.text(m.name, m.revision).is_some())
            .collect()
    }

    /// The `<get-schema>` RPC (RFC 6022 §3.1).
    pub fn get_schema(&self, rpc: &Element) -> Result<Element, RpcError> {
        let id = rpc
            .find(MONITORING_NS, "identifier")
            .map(|e| e.trimmed().to_string())
            .ok_or_else(|| {
                RpcError::bad_element(Tag::MissingElement, "identifier", "identifier is required")
            })?;
        let version = rpc
            .find(MONITORING_NS, "version")
            .map(|e| e.trimmed().to_string())
            .unwrap_or_default();
        if let Some(f) = rpc.find(MONITORING_NS, "format") {
            let f = f.trimmed();
            if f != "yang" && !f.ends_with(":yang") {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    "format",
                    format!("format '{f}' is not available"),
                ));
            }
        }
        let text = self.text(&id, &version).ok_or_else(|| {
            RpcError::application(Tag::InvalidValue, format!("no schema {id} {version}"))
                .with_info("bad-element", "identifier")
        })?;
        Ok(Element::with_text(MONITORING_NS, "data", text))
    }
}

fn leaf(ns: &str, name: &str, v: impl Into<String>) -> Element {
    Element::with_text(ns, name, v)
}

/// State for `<netconf-state>`.
#[derive(Debug)]
pub struct MonitoringView<'a> {
    pub sessions: Vec<SessionInfo>,
    /// (datastore, holder session, locked since).
    pub locks: Vec<(&'static str, u32, Timestamp)>,
    pub schemas: Vec<ModuleInfo>,
    pub stats: &'a Stats,
    pub start_time: Timestamp,
}

impl MonitoringView<'_> {
    pub fn render(&self) -> Element {
        let ns = MONITORING_NS;
        let mut top = Element::new(ns, "netconf-state");
        let mut caps = Element::new(ns, "capabilities");
        for c in capabilities() {
            caps.push(leaf(ns, "capability", c));
        }
        top.push(caps);
        let mut dss = Element::new(ns, "datastores");
        for name in ["running", "candidate"] {
            let mut ds = Element::new(ns, "datastore");
            ds.push(leaf(ns, "name", name));
            if let Some((_, sid, since)) = self.locks.iter().find(|(d, _, _)| *d == name) {
                let mut locks = Element::new(ns, "locks");
                let mut g = Element::new(ns, "global-lock");
                g.push(leaf(ns, "locked-by-session", sid.to_string()));
                g.push(leaf(ns, "locked-time", since.to_string()));
                locks.push(g);
                ds.push(locks);
            }
            dss.push(ds);
        }
        top.push(dss);
        let mut schemas = Element::new(ns, "schemas");
        for m in &self.schemas {
            let mut s = Element::new(ns, "schema");
            s.push(leaf(ns, "identifier", m.name));
            s.push(leaf(ns, "version", m.revision));
            s.push(leaf(ns, "format", "yang"));
            s.push(leaf(ns, "namespace", m.namespace));
            s.push(leaf(ns, "location", "NETCONF"));
            schemas.push(s);
        }
        top.push(schemas);
        let mut sessions = Element::new(ns, "sessions");
        for s in &self.sessions {
            let mut e = Element::new(ns, "session");
            e.push(leaf(ns, "session-id", s.id.to_string()));
            e.push(leaf(ns, "transport", "netconf-ssh"));
            e.push(leaf(ns, "username", s.user.clone()));
            e.push(leaf(ns, "source-host", s.source_host.clone()));
            e.push(leaf(ns, "login-time", s.login_time.to_string()));
            e.push(leaf(ns, "in-rpcs", s.in_rpcs.to_string()));
            e.push(leaf(ns, "in-bad-rpcs", s.in_bad_rpcs.to_string()));
            e.push(leaf(ns, "out-rpc-errors", s.out_rpc_errors.to_string()));
            e.push(leaf(
                ns,
                "out-notifications",
                s.out_notifications.to_string(),
            ));
            sessions.push(e);
        }
        top.push(sessions);
        let st = self.stats;
        let mut stats = Element::new(ns, "statistics");
        let c = |v: &AtomicU64| Stats::get(v).min(u64::from(u32::MAX)).to_string();
        stats.push(leaf(ns, "netconf-start-time", self.start_time.to_string()));
        stats.push(leaf(ns, "in-bad-hellos", c(&st.in_bad_hellos)));
        stats.push(leaf(ns, "in-sessions", c(&st.in_sessions)));
        stats.push(leaf(ns, "dropped-sessions", c(&st.dropped_sessions)));
        stats.push(leaf(ns, "in-rpcs", c(&st.in_rpcs)));
        stats.push(leaf(ns, "in-bad-rpcs", c(&st.in_bad_rpcs)));
        stats.push(leaf(ns, "out-rpc-errors", c(&st.out_rpc_errors)));
        stats.push(leaf(ns, "out-notifications", c(&st.out_notifications)));
        top.push(stats);
        top
    }
}

/// RFC 5277 §3.2.5.1 stream discovery: `/netconf/streams` lists the one
/// stream the server has, with its replay support.
pub fn streams(replay_since: Timestamp) -> Element {
    let ns = NC_NOTIFICATIONS_NS;
    let mut stream = Element::new(ns, "stream");
    stream.push(leaf(ns, "name", "NETCONF"));
    stream.push(leaf(
        ns,
        "description",
        "The element's notifications (alarms, state changes, jobs) and the server's own (RFC 6470)",
    ));
    stream.push(leaf(ns, "replaySupport", "true"));
    stream.push(leaf(ns, "replayLogCreationTime", replay_since.to_string()));
    let mut streams = Element::new(ns, "streams");
    streams.push(stream);
    let mut top = Element::new(ns, "netconf");
    top.push(streams);
    top
}

/// `<yang-library>` (RFC 8525) and the deprecated `<modules-state>`.
pub fn yang_library() -> Vec<Element> {
    let ns = YANG_LIBRARY_NS;
    let mut lib = Element::new(ns, "yang-library");
    let mut set = Element::new(ns, "module-set");
    set.push(leaf(ns, "name", "halyard"));
    for m in modules() {
        let mut e = Element::new(
            ns,
            if m.implement {
                "module"
            } else {
                "import-only-module"
            },
        );
        e.push(leaf(ns, "name", m.name));
        e.push(leaf(ns, "revision", m.revision));
        e.push(leaf(ns, "namespace", m.namespace));
        for f in m.features {
            e.push(leaf(ns, "feature", *f));
        }
        set.push(e);
    }
    lib.push(set);
    let mut schema = Element::new(ns, "schema");
    schema.push(leaf(ns, "name", "halyard"));
    schema.push(leaf(ns, "module-set", "halyard"));
    lib.push(schema);
    for ds in ["running", "candidate", "operational"] {
        let mut d = Element::new(ns, "datastore");
        let mut name = leaf(ns, "name", format!("ds:{ds}"));
        name.attrs.push((
            XMLNS_DECL.into(),
            "ds".into(),
            "urn:ietf:params:xml:ns:yang:ietf-datastores".into(),
        ));
        d.push(name);
        d.push(leaf(ns, "schema", "halyard"));
        lib.push(d);
    }
    lib.push(leaf(ns, "content-id", content_id()));

    let mut state = Element::new(ns, "modules-state");
    state.push(leaf(ns, "module-set-id", content_id()));
    for m in modules() {
        let mut e = Element::new(ns, "module");
        e.push(leaf(ns, "name", m.name));
        e.push(leaf(ns, "revision", m.revision));
        e.push(leaf(ns, "namespace", m.namespace));
        for f in m.features {
            e.push(leaf(ns, "feature", *f));
        }
        e.push(leaf(
            ns,
            "conformance-type",
            if m.implement { "implement" } else { "import" },
        ));
        state.push(e);
    }
    vec![lib, state]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halyard_module_is_always_served() {
        let s = SchemaStore;
        let rpc = crate::xml::parse(
            &format!(r#"<get-schema xmlns="{MONITORING_NS}"><identifier>halyard-cluster</identifier></get-schema>"#),
            8,
        )
        .unwrap();
        let d = s.get_schema(&rpc).unwrap();
        assert!(d.text.starts_with("module halyard-cluster"));
        let rpc = crate::xml::parse(
            &format!(r#"<get-schema xmlns="{MONITORING_NS}"><identifier>ietf-yang-types</identifier></get-schema>"#),
            8,
        )
        .unwrap();
        assert!(
            s.get_schema(&rpc)
                .unwrap()
                .text
                .contains("module ietf-yang-types")
        );
        // Every module listed is served.
        assert_eq!(s.available().len(), modules().len());
        let rpc = crate::xml::parse(
            &format!(r#"<get-schema xmlns="{MONITORING_NS}"><identifier>ietf-netconf</identifier><version>2000-01-01</version></get-schema>"#),
            8,
        )
        .unwrap();
        assert_eq!(s.get_schema(&rpc).unwrap_err().tag, Tag::InvalidValue);
        // YANG 1.1 modules are not hello capabilities; 1.0 modules are.
        let caps = capabilities();
        assert!(!caps.iter().any(|c| c.contains("module=halyard-cluster")));
        assert!(!caps.iter().any(|c| c.contains("module=ietf-yang-library")));
        assert!(
            caps.iter()
                .any(|c| c.contains("module=ietf-netconf-monitoring"))
        );
    }
}
