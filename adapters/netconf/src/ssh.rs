//! SSH transport (RFC 6242) with russh: host key, password and public-key
//! authentication, the `netconf` subsystem, one task per session.
//!
//! The lost-`<hello>` race (CRATES.md §2: with an ssh2/libssh2 client that
//! writes right after `subsystem()`, 4 of 10 server hellos were lost in a
//! trial build). What the server guarantees:
//! - the `Channel` from `channel_open_session` is kept until the subsystem
//!   request, so data the client sends early is buffered in it, not lost
//!   (a `Handler::data` implementation or a dropped channel would lose it);
//! - `subsystem_request` queues `channel_success` *before* it spawns the
//!   session on `channel.into_stream()`. The task's writes travel through
//!   the connection's event loop, which only takes them after this handler
//!   has returned, so CHANNEL_SUCCESS always precedes the hello on the wire;
//! - the server hello is written at once, never after reading the client's
//!   (RFC 6241 §8.1), and nothing runs inside a handler (it would block the
//!   connection's event loop, hello included).
//!
//! With russh 0.65.1 the loss did not reproduce against libssh2 1.11.1
//! (ssh2-python), paramiko 5.1 or OpenSSH 9.2 -- not even with two naive
//! variants tried on purpose (data written before CHANNEL_SUCCESS; the
//! session started at channel open), 130 eager sessions each. The
//! `hello_is_never_lost_...` integration test keeps 65 concurrent eager
//! libssh2 and paramiko sessions per run as the guard.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use halyard_cluster_model::port::InformationModel;
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::datastore::Shared;
use crate::monitoring::{SchemaStore, Stats};
use crate::{NetconfConfig, NetconfError, UserConfig};

/// Loads the host key, or generates an Ed25519 key and saves it (mode 0600).
pub fn load_or_create_host_key(path: &std::path::Path) -> Result<PrivateKey, NetconfError> {
    let err = |reason: String| NetconfError::HostKey {
        path: path.display().to_string(),
        reason,
    };
    if path.exists() {
        return russh::keys::load_secret_key(path, None).map_err(|e| err(e.to_string()));
    }
    let key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| err(e.to_string()))?;
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    info!(path = %path.display(), "generated a new SSH host key");
    Ok(key)
}

#[derive(Debug)]
struct User {
    password: Option<Arc<halyard_cluster_model::secret::Password>>,
    keys: Vec<PublicKey>,
    access: crate::Access,
}

/// What every connection shares.
struct Ctx {
    shared: Arc<Shared>,
    /// The configuration's users; then the model's.
    users: HashMap<String, User>,
    ssh: Arc<russh::server::Config>,
    max_sessions: usize,
    auth_guard: Arc<halyard_cluster_model::guard::FailureGuard>,
    /// Session tasks, stopped at shutdown.
    tasks: std::sync::Mutex<JoinSet<()>>,
    /// The span the server was bound in (the agent's, with the node's
    /// name): the parent of every connection's and session's span.
    span: tracing::Span,
}

/// The russh handler of one connection.
struct Conn {
    ctx: Arc<Ctx>,
    peer: String,
    /// The client's address alone (monitoring's source-host is an ip-address).
    peer_ip: String,
    peer_addr: std::net::IpAddr,
    user: Option<String>,
    /// What the authenticated user may do (its role).
    access: crate::Access,
    /// The user is the model's (not the configuration's): its role is
    /// read again at each RPC.
    of_model: bool,
    channels: HashMap<ChannelId, Channel<Msg>>,
    started: Arc<AtomicBool>,
    /// Failed password attempts on this connection.
    password_failures: u32,
}

/// Password tries per connection, as OpenSSH's MaxAuthTries (6) allows in
/// all: a mistyped password must not end password login (russh's default
/// drops the method after one failure, and OpenSSH's client then gives up).
const PASSWORD_TRIES: u32 = 3;
/// Authentication attempts of any method per connection (OpenSSH's default).
const MAX_AUTH_ATTEMPTS: usize = 6;

impl Conn {
    async fn failed(&mut self, user: &str, method: &str) -> Auth {
        Stats::inc(&self.ctx.shared.stats.auth_failures);
        if method == "password" {
            self.password_failures += 1;
        }
        let left = PASSWORD_TRIES.saturating_sub(self.password_failures);
        let delay_ms = self.ctx.ssh.auth_rejection_time.as_millis() as u64;
        warn!(
            user,
            peer = %self.peer,
            method,
            password_failures = self.password_failures,
            password_tries_left = left,
            delay_ms,
            "NETCONF login failed"
        );
        // The audit trail names who tried from where, how, and the count.
        let event = format!("login from {} ({method})", self.peer_ip);
        let result = format!(
            "refused: password failures {} of {PASSWORD_TRIES} on this connection, {delay_ms} ms delay",
            self.password_failures
        );
        self.ctx
            .shared
            .model
            .audit(
                &halyard_cluster_model::port::Principal::new(
                    user,
                    halyard_cluster_model::model::Protocol::Netconf,
                ),
                &event,
                &result,
            )
            .await;
        let methods: &[MethodKind] = if left > 0 {
            &[MethodKind::Password, MethodKind::PublicKey]
        } else {
            &[MethodKind::PublicKey]
        };
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(methods)),
            partial_success: false,
        }
    }
}

impl Handler for Conn {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let now = std::time::Instant::now();
        // A source refused for failed logins (on any face) is not even
        // checked: its guess is refused as a wrong one would be.
        if let Err(wait) = self.ctx.auth_guard.check(self.peer_addr, now) {
            Stats::inc(&self.ctx.shared.stats.auth_refused);
            warn!(user, peer = %self.peer, retry_after_s = wait.as_secs() + 1, "NETCONF login refused unchecked: too many failed logins from this address");
            return Ok(self.failed(user, "password").await);
        }
        // A user of the configuration, else of the model.
        let of_model = !self.ctx.users.contains_key(user);
        let (stored, access) = match self.ctx.users.get(user) {
            Some(u) => (u.password.clone(), u.access),
            None => match self
                .ctx
                .shared
                .model_users
                .user(&*self.ctx.shared.model, user)
                .await
            {
                Some(u) => (u.password, crate::Access::of_role(u.role)),
                None => (None, crate::Access::ReadOnly),
            },
        };
        let ok = match stored {
            // Argon2 takes tens of milliseconds: not on an async thread.
            Some(p) if p.is_hashed() => {
                let given = password.to_string();
                tokio::task::spawn_blocking(move || p.matches(&given))
                    .await
                    .unwrap_or(false)
            }
            Some(p) => p.matches(password),
            None => false,
        };
        if ok {
            info!(user, peer = %self.peer, method = "password", "NETCONF login");
            self.ctx.auth_guard.succeeded(self.peer_addr);
            self.user = Some(user.to_string());
            self.access = access;
            self.of_model = of_model;
            Ok(Auth::Accept)
        } else {
            if let halyard_cluster_model::guard::Verdict::Refused { failures, for_ } =
                self.ctx.auth_guard.failed(self.peer_addr, now)
            {
                warn!(peer = %self.peer, failures, refused_for_s = for_.as_secs(), "NETCONF logins from this address refused for a while");
            }
            Ok(self.failed(user, "password").await)
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // A key of the configuration's user, else one of the model's
        // user (kept as its SHA-256 fingerprint).
        let access = match self.ctx.users.get(user) {
            Some(u) => u
                .keys
                .iter()
                .any(|k| k.key_data() == key.public_key.key_data())
                .then_some(u.access),
            None => {
                let fingerprint = key
                    .public_key
                    .fingerprint(russh::keys::HashAlg::Sha256)
                    .to_string();
                let model = &*self.ctx.shared.model;
                match self.ctx.shared.model_users.user(model, user).await {
                    Some(u)
                        if self
                            .ctx
                            .shared
                            .model_users
                            .has_key(model, user, &fingerprint)
                            .await =>
                    {
                        Some(crate::Access::of_role(u.role))
                    }
                    _ => None,
                }
            }
        };
        if let Some(access) = access {
            info!(user, peer = %self.peer, method = "publickey", "NETCONF login");
            self.user = Some(user.to_string());
            self.access = access;
            self.of_model = !self.ctx.users.contains_key(user);
            Ok(Auth::Accept)
        } else {
            Ok(self.failed(user, "publickey").await)
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Keep the channel: data the client sends before the subsystem
        // request is buffered in it, not lost.
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(channel) = self.channels.remove(&id) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        if name != "netconf" {
            debug!(subsystem = name, "unknown subsystem refused");
            session.channel_failure(id)?;
            return Ok(());
        }
        if self.ctx.shared.session_count() >= self.ctx.max_sessions {
            warn!(peer = %self.peer, limit = self.ctx.max_sessions, "session limit reached: subsystem refused");
            session.channel_failure(id)?;
            return Ok(());
        }
        let Some(user) = self.user.clone() else {
            session.channel_failure(id)?;
            return Ok(());
        };
        // SUCCESS is queued before the session task exists: its hello can only follow.
        session.channel_success(id)?;
        self.started.store(true, Ordering::Relaxed);
        let shared = self.ctx.shared.clone();
        let access = self.access;
        self.ctx.shared.set_role(&user, access.role());
        let peer = self.peer_ip.clone();
        let stream = channel.into_stream();
        self.ctx
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(
                crate::session::run_session(shared, stream, user, peer, access, self.of_model)
                    .instrument(self.ctx.span.clone()),
            );
        Ok(())
    }

    /// Only the `netconf` subsystem is served: shells and commands are refused.
    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        debug!("shell refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        debug!("exec refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

/// Bound listeners, ready to serve.
pub struct Listener {
    listeners: Vec<TcpListener>,
    ctx: Arc<Ctx>,
    hello_timeout: Duration,
    max_connections: usize,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addrs", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Listener {
    pub async fn bind(
        config: NetconfConfig,
        model: Arc<dyn InformationModel>,
    ) -> Result<Listener, NetconfError> {
        if config.listen.is_empty() {
            return Err(NetconfError::Config("no listen address".into()));
        }
        let key = load_or_create_host_key(&config.host_key_path)?;
        let mut users = HashMap::new();
        for UserConfig {
            name,
            password,
            authorized_keys,
            access,
        } in &config.users
        {
            let keys = authorized_keys
                .iter()
                .map(|k| {
                    PublicKey::from_openssh(k.trim()).map_err(|e| NetconfError::AuthorizedKey {
                        user: name.clone(),
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            users.insert(
                name.clone(),
                User {
                    password: match password {
                        Some(p) => Some(Arc::new(
                            halyard_cluster_model::secret::Password::from_config(p)
                                .map_err(|e| NetconfError::Config(format!("user {name}: {e}")))?,
                        )),
                        None => None,
                    },
                    keys,
                    access: if config.read_only_users.contains(name) {
                        crate::Access::ReadOnly
                    } else {
                        *access
                    },
                },
            );
        }
        let ssh = russh::server::Config {
            keys: vec![key],
            methods: MethodSet::from(&[MethodKind::Password, MethodKind::PublicKey][..]),
            auth_rejection_time: config.auth_rejection_time,
            max_auth_attempts: MAX_AUTH_ATTEMPTS,
            auth_rejection_time_initial: Some(Duration::ZERO),
            // NETCONF idleness is judged by the session (a subscriber may be
            // silent for hours); keepalives find dead peers.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        let mut listeners = Vec::new();
        for addr in &config.listen {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| NetconfError::Bind {
                    addr: *addr,
                    source,
                })?;
            listeners.push(l);
        }
        let stats = Arc::new(Stats::default());
        let shared = Shared::new(
            model,
            stats,
            SchemaStore,
            config.limits.clone(),
            config.idle_timeout,
            config.trace_dir.clone(),
        );
        if let Some(tx) = &config.system {
            let _ = shared.system.set(tx.clone());
        }
        for (name, u) in &users {
            shared.set_role(name, u.access.role());
        }
        Ok(Listener {
            listeners,
            hello_timeout: config.limits.hello_timeout,
            max_connections: config.limits.max_connections,
            ctx: Arc::new(Ctx {
                shared,
                users,
                ssh: Arc::new(ssh),
                max_sessions: config.limits.max_sessions,
                auth_guard: config.auth_guard.clone(),
                tasks: std::sync::Mutex::new(JoinSet::new()),
                span: tracing::Span::current(),
            }),
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.ctx.shared.stats.clone()
    }

    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let addrs = self.local_addrs();
        let mut conns: JoinSet<()> = JoinSet::new();
        let (accept_tx, mut accept_rx) = tokio::sync::mpsc::channel(64);
        let mut acceptors: JoinSet<()> = JoinSet::new();
        for l in self.listeners {
            let tx = accept_tx.clone();
            acceptors.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok(c) => {
                            if tx.send(c).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        drop(accept_tx);
        info!(?addrs, "NETCONF server running");
        tokio::pin!(shutdown);
        let mut reap = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                c = accept_rx.recv() => {
                    let Some((sock, peer)) = c else { break };
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= self.max_connections {
                        warn!(%peer, limit = self.max_connections, "connection limit reached: refused");
                        drop(sock);
                        continue;
                    }
                    self.ctx.clone().spawn_connection(&mut conns, sock, peer, self.hello_timeout);
                }
                _ = reap.tick() => {
                    while conns.try_join_next().is_some() {}
                    let mut t = self.ctx.tasks.lock().unwrap_or_else(|e| e.into_inner());
                    while t.try_join_next().is_some() {}
                }
            }
        }
        info!("NETCONF server stopping");
        acceptors.shutdown().await;
        self.ctx.shared.kill_all();
        self.ctx.shared.shutdown().await;
        let mut tasks =
            std::mem::take(&mut *self.ctx.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        // Sessions end on their kill switch; give them a moment to release locks.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.shutdown().await;
        conns.shutdown().await;
        info!("NETCONF server stopped");
    }
}

impl Ctx {
    fn spawn_connection(
        self: Arc<Self>,
        conns: &mut JoinSet<()>,
        sock: tokio::net::TcpStream,
        peer: SocketAddr,
        hello_timeout: Duration,
    ) {
        let started = Arc::new(AtomicBool::new(false));
        let handler = Conn {
            ctx: self.clone(),
            peer: peer.to_string(),
            peer_ip: peer.ip().to_string(),
            peer_addr: peer.ip(),
            user: None,
            access: crate::Access::ReadOnly,
            of_model: false,
            channels: HashMap::new(),
            started: started.clone(),
            password_failures: 0,
        };
        let span = info_span!(parent: &self.span, "ssh", peer = %peer);
        conns.spawn(
            async move {
                let _ = sock.set_nodelay(true);
                // A peer that never sends its SSH identification is dropped.
                let running = match tokio::time::timeout(
                    hello_timeout,
                    russh::server::run_stream(self.ssh.clone(), sock, handler),
                )
                .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        if malformed(&e) {
                            Stats::inc(&self.shared.stats.ssh_errors);
                        }
                        debug!(error = %e, "SSH handshake failed");
                        return;
                    }
                    Err(_) => {
                        info!("no SSH identification in time: closing");
                        return;
                    }
                };
                let handle = running.handle();
                // A connection that never starts a NETCONF session is closed.
                let guard = async {
                    tokio::time::sleep(hello_timeout).await;
                    if !started.load(Ordering::Relaxed) {
                        info!("no NETCONF session started in time: disconnecting");
                        let _ = handle
                            .disconnect(
                                russh::Disconnect::ByApplication,
                                "no netconf subsystem".into(),
                                String::new(),
                            )
                            .await;
                    }
                    std::future::pending::<()>().await
                };
                tokio::select! {
                    r = running => {
                        if let Err(e) = r {
                            if malformed(&e) {
                                Stats::inc(&self.shared.stats.ssh_errors);
                            }
                            debug!(error = %e, "SSH connection ended");
                        }
                    }
                    () = guard => {}
                }
            }
            .instrument(span),
        );
    }
}

/// Whether an SSH connection ended for its peer's malformed input (counted
/// as refused), not because the peer went away or the server shut down.
fn malformed(e: &russh::Error) -> bool {
    !matches!(
        e,
        russh::Error::IO(_)
            | russh::Error::Disconnect
            | russh::Error::SendError
            | russh::Error::Elapsed(_)
            | russh::Error::InactivityTimeout
            | russh::Error::KeepaliveTimeout
    )
}
