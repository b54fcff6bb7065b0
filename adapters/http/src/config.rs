//! Configuration of the HTTP face. The agent builds it from its config file;
//! this crate reads no files except the TLS certificate and key it names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a user may do. Roles are ordered: each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads objects, alarms, events, metrics.
    Viewer,
    /// Also invokes operations (lock, switch-over, acknowledge, ...) and
    /// writes attributes.
    Operator,
    /// Everything an operator does; kept for the rights only an
    /// administrator will have (users, rules, upgrades).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The same role in the access model.
    pub fn model_role(self) -> halyard_cluster_model::access::Role {
        use halyard_cluster_model::access::Role as R;
        match self {
            Role::Viewer => R::Viewer,
            Role::Operator => R::Operator,
            Role::Admin => R::Admin,
        }
    }

    /// The access model's role as this face's.
    pub fn from_model(role: halyard_cluster_model::access::Role) -> Role {
        use halyard_cluster_model::access::Role as R;
        match role {
            R::Viewer => Role::Viewer,
            R::Operator => Role::Operator,
            R::Admin => Role::Admin,
        }
    }
}

/// A user: basic-auth password and/or bearer tokens, and a role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserConfig {
    pub name: String,
    /// Password for HTTP basic authentication; `None` disables basic auth for the user.
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer tokens that authenticate as this user.
    #[serde(default)]
    pub tokens: Vec<String>,
    pub role: Role,
}

/// Certificate chain and private key (PEM) for HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// Request limits, applied to every listener. Fields left out of a config
/// file take their defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Sustained requests per second per client address (429 above).
    pub requests_per_second: u32,
    /// Requests a client may send in a burst above the sustained rate.
    pub burst: u32,
    /// Requests served at once, over all clients.
    pub max_concurrent_requests: usize,
    /// Deadline of one API request (503 when the model does not answer in time).
    #[serde(with = "millis")]
    pub request_timeout: Duration,
    /// Objects fetched from the model per step of a scrape or listing: a
    /// step holds the model's lock for a few milliseconds at 4096 (writers
    /// get in between steps), and smaller steps cost more per object.
    pub page_size: usize,
    /// Server-sent event streams open at once (503 above).
    pub max_event_streams: usize,
    /// Connections open at once per listener; more are closed at once.
    pub max_connections: usize,
    /// A connection with no traffic either way for this long is closed
    /// (event streams send a keep-alive every 15 s).
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            requests_per_second: 200,
            burst: 400,
            max_concurrent_requests: 256,
            request_timeout: Duration::from_secs(10),
            page_size: 4096,
            max_event_streams: 64,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Everything the HTTP face needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpConfig {
    /// Addresses to listen on (port 0 picks a free port; see `HttpServer::local_addrs`).
    pub listen: Vec<SocketAddr>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Whether reads (API GETs, events, console data, metrics) need no credentials.
    #[serde(default)]
    pub allow_anonymous_read: bool,
    /// HTTPS when set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// A node's release store (slots `a` and `b`, each with its
    /// `manifest.json`): its releases are served at
    /// `/releases/<version>/<file>` so peers copy them from this node.
    #[serde(default)]
    pub release_dir: Option<std::path::PathBuf>,
    /// Failed logins per source address; the agent shares one with the
    /// NETCONF face, so a guesser switching faces stays refused.
    #[serde(skip)]
    pub auth_guard: std::sync::Arc<halyard_cluster_model::guard::FailureGuard>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            users: Vec::new(),
            allow_anonymous_read: false,
            tls: None,
            limits: Limits::default(),
            release_dir: None,
            auth_guard: Default::default(),
        }
    }
}
