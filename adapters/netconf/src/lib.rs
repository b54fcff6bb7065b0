//! The NETCONF face: an RFC 6241/6242 server over SSH on the information-model port.
//!
//! - [`ssh`]: russh server, authentication, the `netconf` subsystem.
//! - [`framing`]: RFC 6242 end-of-message and chunked framing.
//! - [`xml`]: a namespace-aware element tree read with quick-xml's `NsReader`.
//! - [`data`]: instance data of `halyard-cluster` from the schema metadata,
//!   edit-config, diff into one transaction, subtree and XPath filters.
//! - [`datastore`]: running / candidate, locks, commit, confirmed commit.
//! - [`session`]: one NETCONF session: hello, RPC dispatch, notifications.
//! - [`monitoring`]: ietf-netconf-monitoring, ietf-yang-library, get-schema.
//! - [`alarms`]: ietf-alarms from the alarm engine's objects.
//! - [`hardware`]: ietf-hardware from the containment tree (the physical view).
//! - [`system`]: ietf-system's contact, location, platform and clock.
//! - [`nacm`]: ietf-netconf-acm over the element's access model.
//! - [`events`]: RFC 6470 notifications the server generates itself.
//! - [`error`]: typed errors and the one ModelError -> rpc-error table.
//!
//! The agent wires it in with [`NetconfServer::bind`] and [`NetconfServer::run`].

pub mod alarms;
pub mod conformance;
pub mod data;
pub mod datastore;
pub mod error;
pub mod events;
pub mod framing;
pub mod hardware;
pub mod monitoring;
pub mod nacm;
pub mod origin;
pub mod session;
pub mod ssh;
pub mod system;
pub mod xml;
pub mod xpath;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::port::InformationModel;

pub use error::{NetconfError, RpcError};
pub use monitoring::Stats;

/// The NETCONF base namespace.
pub const BASE_NS: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";
/// RFC 5277 notifications.
pub const NOTIF_NS: &str = "urn:ietf:params:xml:ns:netconf:notification:1.0";
/// RFC 5277 nc-notifications (replayComplete, notificationComplete).
pub const NC_NOTIF_NS: &str = "urn:ietf:params:xml:ns:netmod:notification";
/// RFC 6022.
pub const MONITORING_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring";
/// RFC 8525.
pub const YANG_LIBRARY_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-yang-library";
/// RFC 6243.
pub const WITH_DEFAULTS_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults";
/// RFC 8526 (NMDA operations).
pub const NMDA_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda";
/// RFC 8342 datastore identities.
pub const DATASTORES_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-datastores";
/// YANG 1.1 `<action>`.
pub const YANG1_NS: &str = "urn:ietf:params:xml:ns:yang:1";

/// The namespace of the halyard-cluster module.
pub fn schema_ns() -> &'static str {
    SCHEMA.module.namespace
}

/// The text of the schema's module, as the schema generates it (served by
/// get-schema; no file name or revision written here).
pub const SCHEMA_TEXT: &str = halyard_cluster_model::YANG_MODULE_TEXT;

/// A user allowed to log in.
#[derive(Debug, Clone, Default)]
pub struct UserConfig {
    pub name: String,
    /// Password authentication when set.
    pub password: Option<String>,
    /// Public keys in OpenSSH `authorized_keys` form (`ssh-ed25519 AAAA... comment`).
    pub authorized_keys: Vec<String>,
    pub access: Access,
}

/// What a user may do over NETCONF.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Read and subscribe; edits, locks, commits, actions and kill-session
    /// get `access-denied`.
    ReadOnly,
    /// Everything but restarting or stopping the system.
    #[default]
    Operator,
    /// Also ietf-system's system-restart and system-shutdown.
    Admin,
}

impl Access {
    /// The role the access model gives the user (its built-in rules).
    pub fn role(self) -> halyard_cluster_model::access::Role {
        use halyard_cluster_model::access::Role;
        match self {
            Access::ReadOnly => Role::Viewer,
            Access::Operator => Role::Operator,
            Access::Admin => Role::Admin,
        }
    }

    /// What a user of the access model's role may do.
    pub fn of_role(role: halyard_cluster_model::access::Role) -> Access {
        use halyard_cluster_model::access::Role;
        match role {
            Role::Viewer => Access::ReadOnly,
            Role::Operator => Access::Operator,
            Role::Admin => Access::Admin,
        }
    }
}

/// Limits that protect the server from one client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted message (bytes, after de-framing).
    pub max_message_size: usize,
    /// Deepest accepted XML nesting.
    pub max_depth: usize,
    /// Concurrent NETCONF sessions.
    pub max_sessions: usize,
    /// Concurrent TCP connections (authenticated or not).
    pub max_connections: usize,
    /// Time allowed from TCP accept to the client's `<hello>`.
    pub hello_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 16 * 1024 * 1024,
            max_depth: 64,
            max_sessions: 64,
            max_connections: 128,
            hello_timeout: Duration::from_secs(60),
        }
    }
}

/// Configuration of the NETCONF face (the agent reads it from its config file).
#[derive(Debug, Clone)]
pub struct NetconfConfig {
    pub listen: Vec<SocketAddr>,
    /// The SSH host key (OpenSSH format); generated (Ed25519) on first start.
    pub host_key_path: PathBuf,
    pub users: Vec<UserConfig>,
    /// A session with no RPC and no subscription for this long is closed.
    pub idle_timeout: Duration,
    /// Time a failed authentication attempt takes (constant, against probing).
    pub auth_rejection_time: Duration,
    pub limits: Limits,
    /// Users (by name) who may read and subscribe but not change anything:
    /// edits, locks, commits, actions and kill-session get `access-denied`.
    pub read_only_users: Vec<String>,
    /// Where system-restart and system-shutdown go (the agent's ordered
    /// shutdown); without one they answer operation-not-supported.
    pub system: Option<tokio::sync::mpsc::Sender<halyard_cluster_model::port::SystemAction>>,
    /// When set, every rpc with its reply and every notification sent is
    /// also written to a numbered file here ([`datastore::Trace`]): the
    /// conformance tests validate each with yanglint.
    pub trace_dir: Option<PathBuf>,
    /// Failed password logins per source address, across connections (the
    /// agent shares one with the HTTP face).
    pub auth_guard: std::sync::Arc<halyard_cluster_model::guard::FailureGuard>,
}

impl NetconfConfig {
    pub fn new(listen: SocketAddr, host_key_path: impl Into<PathBuf>) -> Self {
        NetconfConfig {
            listen: vec![listen],
            host_key_path: host_key_path.into(),
            users: Vec::new(),
            idle_timeout: Duration::from_secs(3600),
            auth_rejection_time: Duration::from_secs(1),
            limits: Limits::default(),
            read_only_users: Vec::new(),
            system: None,
            trace_dir: None,
            auth_guard: Default::default(),
        }
    }
}

/// The NETCONF server: bound, not yet serving.
pub struct NetconfServer {
    inner: ssh::Listener,
}

impl std::fmt::Debug for NetconfServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetconfServer")
            .field("local_addrs", &self.local_addrs())
            .finish()
    }
}

impl NetconfServer {
    /// Loads or creates the host key and binds every listen address.
    pub async fn bind(
        config: NetconfConfig,
        model: Arc<dyn InformationModel>,
    ) -> Result<NetconfServer, NetconfError> {
        Ok(NetconfServer {
            inner: ssh::Listener::bind(config, model).await?,
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.local_addrs()
    }

    /// Counters (sessions, RPCs, failed logins), live.
    pub fn stats(&self) -> Arc<Stats> {
        self.inner.stats()
    }

    /// Serves until `shutdown` completes, then stops every task it spawned.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        self.inner.run(shutdown).await
    }
}
