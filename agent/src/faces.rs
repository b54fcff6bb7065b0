//! The protocol faces. Each is a [`Face`]: bound at start-up (a port in
//! use fails the start, before the ready line), then run until the agent
//! stops. Each gets the same information model; `main` loops over them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use halyard_cluster_model::layer::{CallStats, Traced};
use halyard_cluster_model::port::InformationModel;
use tokio::sync::watch;

use crate::Cli;
use crate::config::{Config, SnmpAuth, SnmpLevel, SnmpPriv};
use crate::face_metrics::FaceMetrics;

/// One protocol face, bound and ready to serve.
#[async_trait::async_trait]
pub trait Face: Send + 'static {
    /// The face and where it listens, for the ready line
    /// (`snmp udp 0.0.0.0:1161`).
    fn name(&self) -> String;

    /// Adds the face's own counters to what `/metrics` serves.
    fn resources(&self, _metrics: &mut FaceMetrics) {}

    /// Serves until `stop` flips; an error ends the face, not the agent.
    async fn run(self: Box<Self>, stop: watch::Receiver<bool>) -> anyhow::Result<()>;
}

/// Longest a face waits for one read of the model (a get, a page of a
/// walk, a query, a replay) before it answers with a timeout. Each face
/// also bounds whole requests (SNMP 5 s, HTTP 10 s): this guards the rest
/// (NETCONF's, notifications' replays) against a stuck model.
const MODEL_READ_DEADLINE: Duration = Duration::from_secs(10);

/// The model as `face` sees it: traced, timed, reads bounded.
fn layered(
    model: &Arc<dyn InformationModel>,
    face: &'static str,
) -> (Arc<dyn InformationModel>, Arc<CallStats>) {
    let t = Traced::new(model.clone(), face).with_read_deadline(MODEL_READ_DEADLINE);
    let stats = t.stats();
    (Arc::new(t), stats)
}

/// The SNMP face (UDP, v1/v2c/v3).
struct Snmp(halyard_snmp::SnmpAgent, Arc<CallStats>);

#[async_trait::async_trait]
impl Face for Snmp {
    fn name(&self) -> String {
        format!("snmp udp {}", joined(&self.0.local_addrs()))
    }
    fn resources(&self, metrics: &mut FaceMetrics) {
        metrics.snmp = Some(self.0.engine());
        metrics.calls.push(("snmp", self.1.clone()));
    }
    async fn run(self: Box<Self>, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        Ok(self.0.run(until(stop)).await?)
    }
}

/// The NETCONF face (SSH).
struct Netconf(halyard_netconf::NetconfServer, Arc<CallStats>);

#[async_trait::async_trait]
impl Face for Netconf {
    fn name(&self) -> String {
        format!("netconf ssh {}", joined(&self.0.local_addrs()))
    }
    fn resources(&self, metrics: &mut FaceMetrics) {
        metrics.netconf = Some(self.0.stats());
        metrics.calls.push(("netconf", self.1.clone()));
    }
    async fn run(self: Box<Self>, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        self.0.run(until(stop)).await;
        Ok(())
    }
}

/// The HTTP face: the XML API, the console and `/metrics`.
struct Http(halyard_http::HttpServer);

#[async_trait::async_trait]
impl Face for Http {
    fn name(&self) -> String {
        format!("http {}", joined(self.0.local_addrs()))
    }
    async fn run(self: Box<Self>, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        Ok(self.0.run(until(stop)).await?)
    }
}

/// The running faces.
#[derive(Debug, Default)]
pub struct Faces {
    tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
    /// The SNMP engine ID, when the SNMP face runs.
    pub snmp_engine_id: Option<Vec<u8>>,
}

impl Faces {
    pub fn describe(&self) -> String {
        if self.tasks.is_empty() {
            "none".into()
        } else {
            self.tasks
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    pub async fn stop(self) {
        for (name, t) in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_err()
            {
                tracing::warn!(face = %name, "face did not stop in 10 s");
            }
        }
    }
}

fn addrs(flag: Option<SocketAddr>, listen: &[toml::Spanned<String>]) -> Vec<SocketAddr> {
    match flag {
        Some(a) => vec![a],
        // Checked by the config validation already.
        None => listen
            .iter()
            .filter_map(|l| l.get_ref().parse().ok())
            .collect(),
    }
}

/// Listening addresses, for the ready line.
fn joined(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn until(mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

fn snmp_config(
    cfg: &Config,
    listen: Vec<SocketAddr>,
    data_dir: &Path,
    node: &str,
) -> anyhow::Result<halyard_snmp::SnmpConfig> {
    use halyard_snmp::{
        Community, Group, NotifyKind, SecurityLevel, SnmpConfig, TrapSecurity, TrapTarget, UsmUser,
        View,
    };
    let mut c = SnmpConfig {
        listen,
        ..SnmpConfig::default()
    };
    c.communities = cfg
        .snmp
        .communities
        .iter()
        .map(|x| Community {
            name: x.name.get_ref().clone(),
            view: View::all(),
            write: x.write,
        })
        .collect();
    c.views.insert("all".into(), View::all());
    for u in &cfg.snmp.users {
        let auth = auth_protocol(u.auth);
        c.users.push(UsmUser {
            name: u.name.get_ref().clone(),
            auth: Some((auth, u.auth_pass.get_ref().clone())),
            privacy: u
                .privacy
                .zip(u.priv_pass.as_ref())
                .map(|(proto, p)| (priv_protocol(proto), p.get_ref().clone())),
            group: u.name.get_ref().clone(),
        });
        // One VACM group per user: its views and its levels.
        let level = |l| match l {
            SnmpLevel::AuthNoPriv => SecurityLevel::AuthNoPriv,
            SnmpLevel::AuthPriv => SecurityLevel::AuthPriv,
        };
        let (read, write) = u.levels();
        c.groups.push(Group {
            name: u.name.get_ref().clone(),
            read_view: Some("all".into()),
            write_view: u.write.then(|| "all".into()),
            min_level: level(read),
            write_min_level: level(write),
        });
    }
    for t in &cfg.snmp.traps {
        let address = t.target.get_ref().parse().context("trap target")?;
        c.trap_targets.push(TrapTarget {
            address,
            security: match &t.user {
                Some(u) => TrapSecurity::Usm {
                    user: u.get_ref().clone(),
                },
                None => {
                    TrapSecurity::Community(t.community.clone().unwrap_or_else(|| "public".into()))
                }
            },
            kind: if t.inform {
                NotifyKind::Inform {
                    timeout: Duration::from_secs(1),
                    retries: 3,
                }
            } else {
                NotifyKind::Trap
            },
        });
    }
    c.engine_state = Some(data_dir.join("snmp-engine"));
    c.sys_name = format!("halyard node {node}");
    Ok(c)
}

/// The SNMP face, when it listens anywhere.
async fn bind_snmp(
    cli: &Cli,
    cfg: &Config,
    data_dir: &Path,
    node: &str,
    model: &Arc<dyn InformationModel>,
) -> anyhow::Result<Option<Box<dyn Face>>> {
    let listen = addrs(cli.snmp_listen, &cfg.snmp.listen);
    if listen.is_empty() {
        return Ok(None);
    }
    let (model, calls) = layered(model, "snmp");
    let agent = halyard_snmp::SnmpAgent::bind(snmp_config(cfg, listen, data_dir, node)?, model)
        .await
        .context("cannot start the SNMP face")?;
    Ok(Some(Box::new(Snmp(agent, calls))))
}

/// The NETCONF face, when it listens anywhere.
async fn bind_netconf(
    cli: &Cli,
    cfg: &Config,
    data_dir: &Path,
    model: &Arc<dyn InformationModel>,
    guard: &Arc<halyard_cluster_model::guard::FailureGuard>,
    system: tokio::sync::mpsc::Sender<halyard_cluster_model::port::SystemAction>,
) -> anyhow::Result<Option<Box<dyn Face>>> {
    let listen = addrs(cli.netconf_listen, &cfg.netconf.listen);
    let Some(first) = listen.first() else {
        return Ok(None);
    };
    let mut c = halyard_netconf::NetconfConfig::new(*first, data_dir.join("ssh_host_ed25519_key"));
    c.listen = listen.clone();
    c.users = cfg
        .netconf
        .users
        .iter()
        .map(|u| halyard_netconf::UserConfig {
            name: u.name.get_ref().clone(),
            password: u.password.as_ref().map(|p| p.get_ref().clone()),
            authorized_keys: u.authorized_keys.clone(),
            access: match u.role {
                crate::config::Role::Viewer => halyard_netconf::Access::ReadOnly,
                crate::config::Role::Operator => halyard_netconf::Access::Operator,
                crate::config::Role::Admin => halyard_netconf::Access::Admin,
            },
        })
        .collect();
    c.trace_dir = cfg.netconf.trace_dir.clone();
    c.system = Some(system);
    c.auth_guard = guard.clone();
    let (model, calls) = layered(model, "netconf");
    let server = halyard_netconf::NetconfServer::bind(c, model)
        .await
        .context("cannot start the NETCONF face")?;
    Ok(Some(Box::new(Netconf(server, calls))))
}

/// The HTTP face, when it listens anywhere; its `/metrics` also serves
/// the other faces' counters (`metrics`).
fn bind_http(
    cli: &Cli,
    cfg: &Config,
    data_dir: &Path,
    model: &Arc<dyn InformationModel>,
    mut metrics: FaceMetrics,
    guard: &Arc<halyard_cluster_model::guard::FailureGuard>,
) -> anyhow::Result<Option<Box<dyn Face>>> {
    let listen = addrs(cli.http_listen, &cfg.http.listen);
    if listen.is_empty() {
        return Ok(None);
    }
    let users = cfg
        .http
        .users
        .iter()
        .map(|u| halyard_http::UserConfig {
            name: u.name.get_ref().clone(),
            password: u.password.as_ref().map(|p| p.get_ref().clone()),
            tokens: u.tokens.clone(),
            role: match u.role {
                crate::config::Role::Viewer => halyard_http::Role::Viewer,
                crate::config::Role::Operator => halyard_http::Role::Operator,
                crate::config::Role::Admin => halyard_http::Role::Admin,
            },
        })
        .collect();
    let configured = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
        (Some(c), Some(k)) => Some((
            std::path::PathBuf::from(c.get_ref()),
            std::path::PathBuf::from(k.get_ref()),
        )),
        _ => None,
    };
    let tls = crate::tls::http_tls(cfg.http.tls, &listen, configured, data_dir, &[])?;
    let c = halyard_http::HttpConfig {
        tls,
        listen,
        users,
        allow_anonymous_read: cfg.http.anonymous_read,
        // Peers copy releases from this node (propagation).
        release_dir: cfg
            .release
            .as_ref()
            .map(|_| crate::boot::store(data_dir).slot_dir("")),
        auth_guard: guard.clone(),
        ..halyard_http::HttpConfig::default()
    };
    let (model, calls) = layered(model, "http");
    metrics.calls.push(("http", calls));
    let mut registry = halyard_http::Registry::default();
    registry.register_collector(Box::new(metrics));
    let server = halyard_http::HttpServer::bind_with_registry(c, model, registry)
        .context("cannot start the HTTP face")?;
    Ok(Some(Box::new(Http(server))))
}

/// Binds every configured face (all or none: a failure stops the start),
/// then runs each in its own task.
pub async fn start(
    cli: &Cli,
    cfg: &Config,
    data_dir: &Path,
    node: &str,
    model: Arc<dyn InformationModel>,
    stop: watch::Receiver<bool>,
    system: tokio::sync::mpsc::Sender<halyard_cluster_model::port::SystemAction>,
) -> anyhow::Result<Faces> {
    let mut bound: Vec<Box<dyn Face>> = Vec::new();
    // Failed password logins per address, one record for the faces that
    // take passwords over TCP: a guesser switching faces stays refused.
    let guard = Arc::new(halyard_cluster_model::guard::FailureGuard::default());
    bound.extend(bind_snmp(cli, cfg, data_dir, node, &model).await?);
    bound.extend(bind_netconf(cli, cfg, data_dir, &model, &guard, system).await?);
    // HTTP last: its /metrics serves the others' counters.
    let mut metrics = FaceMetrics::default();
    for f in &bound {
        f.resources(&mut metrics);
    }
    let snmp_engine_id = metrics.snmp.as_ref().map(|e| e.id.clone());
    bound.extend(bind_http(cli, cfg, data_dir, &model, metrics, &guard)?);
    let mut faces = Faces {
        snmp_engine_id,
        ..Faces::default()
    };
    for face in bound {
        let name = face.name();
        let stop = stop.clone();
        let task = tokio::spawn({
            let name = name.clone();
            // In the agent's span (the node's name), as every log line is.
            tracing::Instrument::in_current_span(async move {
                if let Err(e) = face.run(stop).await {
                    tracing::error!(face = %name, error = format!("{e:#}"), "face stopped");
                }
            })
        });
        faces.tasks.push((name, task));
    }
    Ok(faces)
}

/// The SNMP face's protocol of a config file's `auth` word.
pub(crate) fn auth_protocol(a: SnmpAuth) -> halyard_snmp::AuthProtocol {
    use halyard_snmp::AuthProtocol;
    match a {
        SnmpAuth::Md5 => AuthProtocol::Md5,
        SnmpAuth::Sha1 => AuthProtocol::Sha1,
        SnmpAuth::Sha224 => AuthProtocol::Sha224,
        SnmpAuth::Sha256 => AuthProtocol::Sha256,
        SnmpAuth::Sha384 => AuthProtocol::Sha384,
        SnmpAuth::Sha512 => AuthProtocol::Sha512,
    }
}

/// The SNMP face's protocol of a config file's `priv` word.
pub(crate) fn priv_protocol(p: SnmpPriv) -> halyard_snmp::PrivProtocol {
    use halyard_snmp::PrivProtocol;
    match p {
        SnmpPriv::Des => PrivProtocol::Des,
        SnmpPriv::Aes => PrivProtocol::Aes128,
        SnmpPriv::Aes192 => PrivProtocol::Aes192,
        SnmpPriv::Aes256 => PrivProtocol::Aes256,
        SnmpPriv::Aes192Reeder => PrivProtocol::Aes192Reeder,
        SnmpPriv::Aes256Reeder => PrivProtocol::Aes256Reeder,
    }
}
