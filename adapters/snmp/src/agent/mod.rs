//! The agent: UDP sockets, message processing for v1, v2c (RFC 3584) and
//! v3 with USM (RFC 3412, 3414), and the command responder (RFC 3416).
//!
//! Every datagram is handled in its own task under a per-request deadline,
//! so a slow model call never holds up other requests. Bad input is
//! counted in its MIB counter and dropped or answered with a Report.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use halyard_cluster_model::port::{InformationModel, NotificationFilter, Subscription};
use rasn::types::{Integer, OctetString};
use rasn_snmp::{v1, v2, v2c, v3};
use std::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::codec::{self, counter32};
use crate::config::{AuthProtocol, Community, PrivProtocol, SecurityLevel, SnmpConfig, View};
use crate::engine::{Counter, Engine};
use crate::error::SnmpError;
use crate::mib::{Ctx, Mib, SysInfo};
use crate::oid::{self, Oid};
use crate::status::{code, to_v1};
use crate::usm;

/// RFC 3414 3.2.7: the time window, in seconds.
const TIME_WINDOW: i64 = 150;
/// Envelope octets reserved around the variable bindings when trimming.
const ENVELOPE_SLACK: usize = 48;

/// A USM user with keys localised for this engine.
#[derive(Debug)]
struct LocalUser {
    name: Vec<u8>,
    /// The name as the audit trail records it.
    principal: String,
    auth: Option<(AuthProtocol, Vec<u8>)>,
    privacy: Option<(PrivProtocol, Vec<u8>)>,
    read_view: View,
    write_view: Option<View>,
    min_level: SecurityLevel,
}

/// What one request may do.
#[derive(Debug)]
struct Access<'a> {
    /// The principal named in the audit trail.
    user: &'a str,
    read_view: &'a View,
    write_view: Option<&'a View>,
    v1: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) mib: Mib,
    pub(crate) engine: Arc<Engine>,
    /// The engine ID as it goes into every scoped PDU (shared, not copied).
    engine_id: OctetString,
    /// Each community with its principal name, made once.
    communities: Vec<(Community, String)>,
    users: Vec<LocalUser>,
    pub(crate) config: SnmpConfig,
    salt: AtomicU64,
    in_flight: Arc<Semaphore>,
    /// Standard notifications (authenticationFailure, entConfigChange)
    /// for the notification senders.
    pub(crate) standard: tokio::sync::broadcast::Sender<crate::notify::Standard>,
}

/// The SNMP agent: bound sockets, ready to [`run`](SnmpAgent::run).
#[derive(Debug)]
pub struct SnmpAgent {
    sockets: Vec<Arc<UdpSocket>>,
    shared: Arc<Shared>,
    subscriptions: Vec<Subscription>,
}

impl SnmpAgent {
    /// Loads the engine state, localises the users' keys and binds every
    /// listen address.
    pub async fn bind(
        config: SnmpConfig,
        model: Arc<dyn InformationModel>,
    ) -> Result<SnmpAgent, SnmpError> {
        if config.listen.is_empty() {
            return Err(SnmpError::NoListenAddress);
        }
        for u in &config.users {
            if u.privacy.is_some() && u.auth.is_none() {
                return Err(SnmpError::Config(format!(
                    "user {}: privacy needs authentication",
                    u.name
                )));
            }
            let short = |p: &String| p.chars().count() < 8;
            if u.auth.as_ref().is_some_and(|(_, p)| short(p))
                || u.privacy.as_ref().is_some_and(|(_, p)| short(p))
            {
                return Err(SnmpError::Config(format!(
                    "user {}: passwords need at least 8 characters",
                    u.name
                )));
            }
        }
        for t in &config.trap_targets {
            if let crate::config::TrapSecurity::Usm { user } = &t.security
                && !config.users.iter().any(|u| &u.name == user)
            {
                return Err(SnmpError::Config(format!(
                    "notification target {}: no user {user}",
                    t.address
                )));
            }
        }
        let view = |name: &Option<String>| -> Result<Option<View>, SnmpError> {
            match name.as_deref() {
                None => Ok(None),
                Some(n) => match config.views.get(n) {
                    Some(v) => Ok(Some(v.clone())),
                    None if n == "all" => Ok(Some(View::all())),
                    None => Err(SnmpError::Config(format!("no view named {n}"))),
                },
            }
        };
        let mut access = Vec::new();
        for u in &config.users {
            let g = config
                .groups
                .iter()
                .find(|g| g.name == u.group)
                .ok_or_else(|| {
                    SnmpError::Config(format!("user {}: no group {}", u.name, u.group))
                })?;
            // A view that matches nothing: an empty include list would be all.
            let nothing = View {
                included: Vec::new(),
                excluded: vec![Vec::new()],
            };
            access.push((
                view(&g.read_view)?.unwrap_or(nothing),
                view(&g.write_view)?,
                g.min_level,
            ));
        }
        let engine = Arc::new(Engine::load(
            config.engine_state.as_deref(),
            config.engine_id.clone(),
        )?);
        let users = config
            .users
            .iter()
            .zip(access)
            .map(|(u, (read_view, write_view, min_level))| {
                let auth = u
                    .auth
                    .as_ref()
                    .map(|(p, pw)| (*p, usm::localized_key(*p, pw, &engine.id)));
                let privacy = match (&u.privacy, &u.auth) {
                    (Some((pp, pw)), Some((ap, _))) => {
                        Some((*pp, usm::localized_key(*ap, pw, &engine.id)))
                    }
                    _ => None,
                };
                LocalUser {
                    name: u.name.as_bytes().to_vec(),
                    principal: u.name.clone(),
                    auth,
                    privacy,
                    read_view,
                    write_view,
                    min_level,
                }
            })
            .collect();
        let mut sockets = Vec::new();
        for addr in &config.listen {
            let s = bind_udp(*addr).map_err(|source| SnmpError::Bind {
                addr: *addr,
                source,
            })?;
            sockets.push(Arc::new(s));
        }
        let sys = SysInfo {
            descr: config.sys_descr.clone(),
            contact: config.sys_contact.clone(),
            name: config.sys_name.clone(),
            location: config.sys_location.clone(),
            enable_authen_traps: config.authentication_failure_traps,
        };
        let subscriptions = config
            .trap_targets
            .iter()
            .map(|_| model.subscribe(NotificationFilter::default()))
            .collect();
        let mib = Mib::new(model, engine.clone(), sys, config.max_message_size as u32);
        let salt = AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        );
        tracing::debug!(engine_id = %crate::engine::to_hex(&engine.id), boots = engine.boots, "snmp engine ready");
        Ok(SnmpAgent {
            sockets,
            shared: Arc::new(Shared {
                mib,
                engine_id: OctetString::from(engine.id.clone()),
                engine,
                communities: config
                    .communities
                    .iter()
                    .map(|c| (c.clone(), format!("community:{}", c.name)))
                    .collect(),
                users,
                in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                standard: tokio::sync::broadcast::channel(16).0,
                config,
                salt,
            }),
            subscriptions,
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The engine (ID, boots, counters).
    pub fn engine(&self) -> Arc<Engine> {
        self.shared.engine.clone()
    }

    /// Processes one datagram as the socket loop does and returns the
    /// answer, if any (fuzzing and benchmarks drive this directly).
    pub async fn handle_datagram(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        self.shared.engine.count(Counter::InPkts);
        self.shared.handle(datagram).await
    }

    /// Serves requests and sends notifications until `shutdown` resolves;
    /// then stops every task it spawned.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), SnmpError> {
        let mut tasks = JoinSet::new();
        let mut receivers = Vec::new();
        for s in &self.sockets {
            receivers.push(
                Receiver::start(s.clone(), self.shared.clone(), &mut tasks)
                    .map_err(|e| SnmpError::Task(format!("receive thread: {e}")))?,
            );
        }
        for (target, sub) in self
            .shared
            .config
            .trap_targets
            .iter()
            .cloned()
            .zip(self.subscriptions)
        {
            let auth = self.shared.standard.subscribe();
            tasks.spawn(crate::notify::run_target(
                self.shared.clone(),
                target,
                sub,
                auth,
            ));
        }
        tasks.spawn(watch_entities(self.shared.clone()));
        tracing::info!(addrs = ?self.sockets.iter().filter_map(|s| s.local_addr().ok()).collect::<Vec<_>>(), "snmp agent listening");
        let mut shutdown = std::pin::pin!(shutdown);
        let result = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                r = tasks.join_next() => match r {
                    // Every task ended (cannot happen while sockets serve).
                    None => break Ok(()),
                    // A notification sender whose subscription closed.
                    Some(Ok(Ok(()))) => continue,
                    Some(Ok(Err(e))) => {
                        tracing::error!(error = %e, "snmp agent task failed");
                        break Err(e);
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "snmp agent task panicked");
                        break Err(SnmpError::Task(e.to_string()));
                    }
                },
            }
        };
        for r in receivers {
            r.stop().await;
        }
        tasks.shutdown().await;
        tracing::info!("snmp agent stopped");
        result
    }
}

/// Looks at the physical entity table every second, so entLastChangeTime
/// says when a unit came or went even if nobody was reading, and sends
/// ENTITY-MIB's entConfigChange when it changed — at most one every five
/// seconds (RFC 4133); later changes in the interval are announced at its
/// end.
async fn watch_entities(shared: Arc<Shared>) -> Result<(), SnmpError> {
    const THROTTLE: std::time::Duration = std::time::Duration::from_secs(5);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced: Option<u32> = None;
    let mut last_sent: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let changed = match shared.mib.observe_entities().await {
            Ok(at) => at,
            Err(e) => {
                tracing::debug!(error = %e, "entity table not observed");
                continue;
            }
        };
        // The first look is the start: nothing to announce.
        let known = *announced.get_or_insert(changed);
        if changed != known && last_sent.is_none_or(|t| t.elapsed() >= THROTTLE) {
            announced = Some(changed);
            last_sent = Some(tokio::time::Instant::now());
            let _ = shared
                .standard
                .send(crate::notify::Standard::EntConfigChange);
        }
    }
}

/// Binds a UDP socket; an IPv6 one is IPv6-only, so that the IPv4 and
/// IPv6 wildcard addresses can share a port.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    // Blocking, for the receive thread; it looks for a stop this often.
    s.set_read_timeout(Some(RX_STOP_CHECK))?;
    Ok(s.into())
}

/// How often a receive thread with nothing to read checks for a stop.
const RX_STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// One socket's receiver: a dedicated thread blocked in `recv_from`, and
/// the task that owns the requests it could not answer at once.
///
/// Why a thread and not a task: at one request in flight the round trip is
/// mostly wake-ups and system calls, and a thread blocked in `recv_from` is
/// woken by the datagram itself, where a task needs the reactor's
/// `epoll_wait`, a read, and a read that says "would block" before it
/// sleeps again (measured: 25 µs against 33–40 µs per round trip with no
/// agent work, `vs_snmpd -- --floor`). The thread runs inside the
/// runtime's context, so the code it polls is the same async code.
struct Receiver {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Receive threads per socket: a datagram wakes one of them (the kernel
/// wakes a single waiter), so a burst is answered on every core.
fn receive_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Receiver {
    fn start(
        socket: Arc<UdpSocket>,
        shared: Arc<Shared>,
        tasks: &mut JoinSet<Result<(), SnmpError>>,
    ) -> std::io::Result<Receiver> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Requests that wait on the model: at most max_in_flight of them.
        let (slow_tx, slow_rx) = tokio::sync::mpsc::channel(shared.config.max_in_flight.max(1));
        tasks.spawn(own_slow_requests(slow_rx));
        let runtime = tokio::runtime::Handle::current();
        let name = format!(
            "snmp-rx {}",
            socket
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string())
        );
        let mut receiver = Receiver {
            stop,
            threads: Vec::new(),
        };
        for _ in 0..receive_threads() {
            let thread = std::thread::Builder::new().name(name.clone()).spawn({
                let (stop, socket, shared) =
                    (receiver.stop.clone(), socket.clone(), shared.clone());
                let (slow_tx, runtime) = (slow_tx.clone(), runtime.clone());
                move || {
                    let _rt = runtime.enter();
                    receive(&socket, &shared, &slow_tx, &stop);
                }
            })?;
            receiver.threads.push(thread);
        }
        Ok(receiver)
    }

    /// Stops the threads and waits for them (off the async threads).
    async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Receiver {
    /// A receiver dropped without `stop` (the agent failed to start) still
    /// ends its thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type SlowRequest = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the requests the receive thread handed over, each in its own task
/// under its deadline, until the thread is gone and they are done.
async fn own_slow_requests(
    mut rx: tokio::sync::mpsc::Receiver<SlowRequest>,
) -> Result<(), SnmpError> {
    let mut requests = JoinSet::new();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(request) => {
                    requests.spawn(request);
                }
                None => break,
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
        }
    }
    while requests.join_next().await.is_some() {}
    Ok(())
}

/// The receive loop of one socket, on its own thread. Each datagram's
/// answer is computed here when it is ready at once; a request that waits
/// on the model is handed to its own task, so it holds up nothing else.
fn receive(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    slow: &tokio::sync::mpsc::Sender<SlowRequest>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => accept(socket, shared, &buf[..n], from, slow),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // ICMP errors surface here on some systems: not fatal.
                tracing::debug!(error = %e, "udp receive error");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// One datagram: answered inline if its answer is ready on the first
/// poll, else handed to its own task.
fn accept(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    datagram: &[u8],
    from: SocketAddr,
    slow: &tokio::sync::mpsc::Sender<SlowRequest>,
) {
    shared.engine.count(Counter::InPkts);
    let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
        shared.engine.count(Counter::SilentDrops);
        return;
    };
    let span = tracing::debug_span!("snmp_request", peer = %from, len = datagram.len());
    let mut request: SlowRequest = Box::pin(
        respond(
            socket.clone(),
            shared.clone(),
            datagram.to_vec(),
            from,
            permit,
        )
        .instrument(span),
    );
    // A no-op waker: if the request is pending, the task it becomes
    // polls it again at once and registers its own waker.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if request.as_mut().poll(&mut cx).is_pending() && slow.try_send(request).is_err() {
        // Cannot happen while the permits bound the requests in flight.
        shared.engine.count(Counter::SilentDrops);
    }
}

/// Sends without blocking, whatever thread it runs on.
fn send_now(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).send_to_with_flags(bytes, &to.into(), libc::MSG_DONTWAIT)
}

/// Answers one datagram and sends the answer.
async fn respond(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    datagram: Vec<u8>,
    from: SocketAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = std::time::Instant::now();
    let Some(out) = shared.handle(&datagram).await else {
        return;
    };
    if out.len() > shared.config.max_message_size {
        shared.engine.count(Counter::SilentDrops);
        return;
    }
    let mut sent = false;
    // The send buffer full: wait for room a little (this request only).
    for _ in 0..SEND_TRIES {
        match send_now(&socket, &out, from) {
            Ok(_) => {
                sent = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp send error");
                break;
            }
        }
    }
    if sent {
        shared.engine.count(Counter::OutPkts);
        shared.engine.latency.observe(started.elapsed());
    }
}

/// Attempts to send an answer while the send buffer is full (1 ms apart).
const SEND_TRIES: usize = 50;

/// A request PDU in SNMPv2 form.
#[derive(Debug)]
enum Request {
    Get(v2::Pdu),
    GetNext(v2::Pdu),
    GetBulk(v2::BulkPdu),
    Set(v2::Pdu),
}

impl Request {
    fn request_id(&self) -> i32 {
        match self {
            Request::Get(p) | Request::GetNext(p) | Request::Set(p) => p.request_id,
            Request::GetBulk(b) => b.request_id,
        }
    }

    fn varbinds(&self) -> &[v2::VarBind] {
        match self {
            Request::Get(p) | Request::GetNext(p) | Request::Set(p) => &p.variable_bindings,
            Request::GetBulk(b) => &b.variable_bindings,
        }
    }
}

fn response(
    request_id: i32,
    error_status: u32,
    error_index: u32,
    vbs: Vec<v2::VarBind>,
) -> v2::Pdu {
    v2::Pdu {
        request_id,
        error_status,
        error_index,
        variable_bindings: vbs,
    }
}

fn vb(name: &[u32], value: v2::VarBindValue) -> v2::VarBind {
    v2::VarBind {
        name: oid::to_asn(name),
        value,
    }
}

impl Shared {
    /// One datagram in, at most one datagram out.
    async fn handle(&self, buf: &[u8]) -> Option<Vec<u8>> {
        match codec::peek_version(buf) {
            None => {
                self.engine.count(Counter::InAsnParseErrs);
                None
            }
            Some(0) => self.handle_v1(buf).await,
            Some(1) => self.handle_v2c(buf).await,
            Some(3) => self.handle_v3(buf).await,
            Some(_) => {
                self.engine.count(Counter::InBadVersions);
                None
            }
        }
    }

    /// RFC 3418 authenticationFailure, when enabled (no receiver: none sent).
    fn authentication_failure(&self) {
        if self.config.authentication_failure_traps {
            let _ = self
                .standard
                .send(crate::notify::Standard::AuthenticationFailure);
        }
    }

    fn community(&self, name: &[u8]) -> Option<&(Community, String)> {
        let c = self
            .communities
            .iter()
            .find(|(c, _)| c.name.as_bytes() == name);
        if c.is_none() {
            self.engine.count(Counter::InBadCommunityNames);
            self.authentication_failure();
        }
        c
    }

    async fn handle_v2c(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let msg = match rasn::ber::decode_with_remainder::<v2c::Message<v2::Pdus>>(buf) {
            Ok((m, [])) => m,
            _ => {
                self.engine.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let (community, principal) = self.community(&msg.community)?;
        let request = match msg.data {
            v2::Pdus::GetRequest(r) => Request::Get(r.0),
            v2::Pdus::GetNextRequest(r) => Request::GetNext(r.0),
            v2::Pdus::GetBulkRequest(r) => Request::GetBulk(r.0),
            v2::Pdus::SetRequest(r) => Request::Set(r.0),
            _ => {
                self.engine.count(Counter::UnknownPduHandlers);
                return None;
            }
        };
        let access = Access {
            user: principal,
            read_view: &community.view,
            write_view: community.write.then_some(&community.view),
            v1: false,
        };
        if matches!(request, Request::Set(_)) && !community.write {
            self.engine.count(Counter::InBadCommunityUses);
        }
        let bulk = matches!(request, Request::GetBulk(_));
        let envelope = ENVELOPE_SLACK + msg.community.len();
        let max = self.config.max_message_size;
        let pdu = self
            .process(request, &access, max.saturating_sub(envelope))
            .await;
        let encode = |pdu: v2::Pdu| {
            let m = v2c::Message {
                version: msg.version.clone(),
                community: msg.community.clone(),
                data: v2::Pdus::Response(v2::Response(pdu)),
            };
            (rasn::ber::encode(&m).ok(), take_response(m.data))
        };
        fit(pdu, max, bulk, encode)
    }

    async fn handle_v1(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let msg = match rasn::ber::decode_with_remainder::<v1::Message<v1::Pdus>>(buf) {
            Ok((m, [])) => m,
            _ => {
                self.engine.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let (community, principal) = self.community(&msg.community)?;
        let to_v2 = |p: &v1::Pdu| -> Option<v2::Pdu> {
            Some(v2::Pdu {
                request_id: i32::try_from(&p.request_id).ok()?,
                error_status: 0,
                error_index: 0,
                variable_bindings: p
                    .variable_bindings
                    .iter()
                    .map(|b| v2::VarBind {
                        name: b.name.clone(),
                        value: codec::v1_to_v2(&b.value),
                    })
                    .collect(),
            })
        };
        let request = match &msg.data {
            v1::Pdus::GetRequest(r) => to_v2(&r.0).map(Request::Get),
            v1::Pdus::GetNextRequest(r) => to_v2(&r.0).map(Request::GetNext),
            v1::Pdus::SetRequest(r) => to_v2(&r.0).map(Request::Set),
            _ => {
                self.engine.count(Counter::UnknownPduHandlers);
                return None;
            }
        };
        let Some(request) = request else {
            self.engine.count(Counter::InAsnParseErrs);
            return None;
        };
        if matches!(request, Request::Set(_)) && !community.write {
            self.engine.count(Counter::InBadCommunityUses);
        }
        let access = Access {
            user: principal,
            read_view: &community.view,
            write_view: community.write.then_some(&community.view),
            v1: true,
        };
        let request_vbs: Vec<v1::VarBind> = match &msg.data {
            v1::Pdus::GetRequest(r) => r.0.variable_bindings.clone(),
            v1::Pdus::GetNextRequest(r) => r.0.variable_bindings.clone(),
            v1::Pdus::SetRequest(r) => r.0.variable_bindings.clone(),
            _ => Vec::new(),
        };
        let max = self.config.max_message_size.min(65_507);
        let pdu = self
            .process(
                request,
                &access,
                max.saturating_sub(ENVELOPE_SLACK + msg.community.len()),
            )
            .await;
        // v1: any exception is noSuchName at that position, with the
        // request's bindings echoed (RFC 3584 4.2.2.1).
        let mut status = to_v1(pdu.error_status);
        let mut index = pdu.error_index;
        let mut out = Vec::with_capacity(pdu.variable_bindings.len());
        if status == 0 {
            for (i, b) in pdu.variable_bindings.iter().enumerate() {
                match &b.value {
                    v2::VarBindValue::Value(v) => match codec::v2_to_v1(v) {
                        Some(v) => out.push(v1::VarBind {
                            name: b.name.clone(),
                            value: v,
                        }),
                        None => {
                            status = code::NO_SUCH_NAME;
                            index = i as u32 + 1;
                            break;
                        }
                    },
                    _ => {
                        status = code::NO_SUCH_NAME;
                        index = i as u32 + 1;
                        break;
                    }
                }
            }
        }
        if status != 0 {
            out = request_vbs;
        }
        let encode = |status: u32, index: u32, vbs: Vec<v1::VarBind>| {
            rasn::ber::encode(&v1::Message {
                version: msg.version.clone(),
                community: msg.community.clone(),
                data: v1::Pdus::GetResponse(v1::GetResponse(v1::Pdu {
                    request_id: Integer::from(i64::from(pdu.request_id)),
                    error_status: Integer::from(i64::from(status)),
                    error_index: Integer::from(i64::from(index)),
                    variable_bindings: vbs,
                })),
            })
            .ok()
        };
        let bytes = encode(status, index, out)?;
        if bytes.len() <= max {
            Some(bytes)
        } else {
            encode(code::TOO_BIG, 0, Vec::new()).filter(|b| b.len() <= max)
        }
    }

    /// Runs one request under the per-request deadline. An answer ready
    /// on the first poll needs no timer.
    async fn process(&self, request: Request, access: &Access<'_>, budget: usize) -> v2::Pdu {
        let mut inner = std::pin::pin!(self.process_inner(&request, access, budget));
        if let std::task::Poll::Ready(pdu) =
            std::future::poll_fn(|cx| std::task::Poll::Ready(inner.as_mut().poll(cx))).await
        {
            return pdu;
        }
        match tokio::time::timeout(self.config.request_timeout, inner).await {
            Ok(pdu) => pdu,
            Err(_) => {
                let id = request.request_id();
                tracing::warn!(request_id = id, "snmp request exceeded its deadline");
                response(id, code::GEN_ERR, 0, request.varbinds().to_vec())
            }
        }
    }

    async fn process_inner(
        &self,
        request: &Request,
        access: &Access<'_>,
        budget: usize,
    ) -> v2::Pdu {
        let mib = &self.mib;
        let mut ctx = match &request {
            // A GETBULK reads about max-repetitions rows of each table.
            Request::GetBulk(b) => Ctx::for_rows(b.max_repetitions as usize + 1),
            _ => Ctx::default(),
        };
        let id = request.request_id();
        match request {
            Request::Get(p) => {
                let mut out = Vec::with_capacity(p.variable_bindings.len());
                for (i, b) in p.variable_bindings.iter().enumerate() {
                    let name: &[u32] = &b.name;
                    let value = if access.read_view.contains(name) {
                        match mib.get(&mut ctx, name).await {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::debug!(error = %e, "model read failed");
                                return response(
                                    id,
                                    code::GEN_ERR,
                                    i as u32 + 1,
                                    p.variable_bindings.clone(),
                                );
                            }
                        }
                    } else {
                        v2::VarBindValue::NoSuchObject
                    };
                    out.push(v2::VarBind {
                        name: b.name.clone(),
                        value,
                    });
                }
                response(id, 0, 0, out)
            }
            Request::GetNext(p) => {
                let mut out = Vec::with_capacity(p.variable_bindings.len());
                for (i, b) in p.variable_bindings.iter().enumerate() {
                    match self.next_visible(&mut ctx, &b.name, access).await {
                        Ok(Some((o, v))) => out.push(v2::VarBind {
                            name: oid::into_asn(o),
                            value: v2::VarBindValue::Value(v),
                        }),
                        Ok(None) => out.push(v2::VarBind {
                            name: b.name.clone(),
                            value: v2::VarBindValue::EndOfMibView,
                        }),
                        Err(_) => {
                            return response(
                                id,
                                code::GEN_ERR,
                                i as u32 + 1,
                                p.variable_bindings.clone(),
                            );
                        }
                    }
                }
                response(id, 0, 0, out)
            }
            Request::GetBulk(b) => {
                let n = (b.non_repeaters as usize).min(b.variable_bindings.len());
                let mut out = Vec::new();
                let mut used = 0usize;
                let mut push = |out: &mut Vec<v2::VarBind>, v: v2::VarBind| -> bool {
                    let len = codec::varbind_len(&v.name, &v.value);
                    if used + len > budget {
                        return false;
                    }
                    used += len;
                    out.push(v);
                    true
                };
                for (i, x) in b.variable_bindings[..n].iter().enumerate() {
                    let v = match self.next_visible(&mut ctx, &x.name, access).await {
                        Ok(Some((o, v))) => v2::VarBind {
                            name: oid::into_asn(o),
                            value: v2::VarBindValue::Value(v),
                        },
                        Ok(None) => v2::VarBind {
                            name: x.name.clone(),
                            value: v2::VarBindValue::EndOfMibView,
                        },
                        Err(_) => {
                            return response(
                                id,
                                code::GEN_ERR,
                                i as u32 + 1,
                                b.variable_bindings.clone(),
                            );
                        }
                    };
                    if !push(&mut out, v) {
                        return bulk_trimmed(id, out);
                    }
                }
                // Each repeater continues from the name it answered last,
                // read from `out` (None: the request's own name); at the
                // end of the view it repeats that name.
                let mut cursors: Vec<(Option<usize>, bool)> =
                    vec![(None, false); b.variable_bindings.len() - n];
                let reps = b.max_repetitions.min(65_535);
                for _ in 0..reps {
                    if cursors.is_empty() || cursors.iter().all(|(_, end)| *end) {
                        break;
                    }
                    for (k, (cur, end)) in cursors.iter_mut().enumerate() {
                        let name = match cur {
                            Some(i) => &out[*i].name,
                            None => &b.variable_bindings[n + k].name,
                        };
                        let v = if *end {
                            v2::VarBind {
                                name: name.clone(),
                                value: v2::VarBindValue::EndOfMibView,
                            }
                        } else {
                            match self.next_visible(&mut ctx, name, access).await {
                                Ok(Some((o, v))) => v2::VarBind {
                                    name: oid::into_asn(o),
                                    value: v2::VarBindValue::Value(v),
                                },
                                Ok(None) => {
                                    *end = true;
                                    v2::VarBind {
                                        name: name.clone(),
                                        value: v2::VarBindValue::EndOfMibView,
                                    }
                                }
                                Err(_) => {
                                    return response(
                                        id,
                                        code::GEN_ERR,
                                        (n + k) as u32 + 1,
                                        b.variable_bindings.clone(),
                                    );
                                }
                            }
                        };
                        if !push(&mut out, v) {
                            return bulk_trimmed(id, out);
                        }
                        *cur = Some(out.len() - 1);
                    }
                }
                response(id, 0, 0, out)
            }
            Request::Set(p) => {
                let Some(view) = access.write_view else {
                    return response(id, code::NO_ACCESS, 1, p.variable_bindings.clone());
                };
                let vbs: Vec<(Oid, v2::VarBindValue)> = p
                    .variable_bindings
                    .iter()
                    .map(|b| (b.name.to_vec(), b.value.clone()))
                    .collect();
                match mib.set(&vbs, access.user, view).await {
                    Ok(()) => response(id, 0, 0, p.variable_bindings.clone()),
                    Err((status, index)) => {
                        response(id, status, index, p.variable_bindings.clone())
                    }
                }
            }
        }
    }

    /// GETNEXT within the read view (and without Counter64 for v1).
    async fn next_visible(
        &self,
        ctx: &mut Ctx,
        from: &[u32],
        access: &Access<'_>,
    ) -> Result<Option<(Oid, rasn_smi::v2::ObjectSyntax)>, halyard_cluster_model::port::ModelError>
    {
        let mut found = self.mib.next(ctx, from).await?;
        loop {
            match found {
                None => return Ok(None),
                Some((o, v)) => {
                    let v1_hidden = access.v1 && codec::v2_to_v1(&v).is_none();
                    if access.read_view.contains(&o) && !v1_hidden {
                        return Ok(Some((o, v)));
                    }
                    found = self.mib.next(ctx, &o).await?;
                }
            }
        }
    }

    // ---- SNMPv3 ----

    async fn handle_v3(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let e = &self.engine;
        let msg = match rasn::ber::decode_with_remainder::<v3::Message>(buf) {
            Ok((m, [])) => m,
            _ => {
                e.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let h = &msg.global_data;
        let msg_id = i32::try_from(&h.message_id).ok().filter(|x| *x >= 0);
        let max_size = i64::try_from(&h.max_size)
            .ok()
            .filter(|x| (484..=0x7fff_ffff).contains(x));
        let (Some(msg_id), Some(max_size), [flags]) = (msg_id, max_size, &h.flags[..]) else {
            e.count(Counter::InvalidMsgs);
            return None;
        };
        let flags = *flags;
        if i64::try_from(&h.security_model).ok() != Some(3) {
            e.count(Counter::UnknownSecurityModels);
            return None;
        }
        let (auth, privacy, reportable) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
        if privacy && !auth {
            e.count(Counter::InvalidMsgs);
            return None;
        }
        let max = (max_size as usize).min(self.config.max_message_size);
        let usm = match rasn::ber::decode_with_remainder::<v3::USMSecurityParameters>(
            &msg.security_parameters,
        ) {
            Ok((u, [])) => u,
            _ => {
                e.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let cleartext_request_id = match &msg.scoped_data {
            v3::ScopedPduData::CleartextPdu(s) => pdu_request_id(&s.data),
            v3::ScopedPduData::EncryptedPdu(_) => 0,
        };
        let report = |counter: Counter, user: Option<&LocalUser>| {
            e.count(counter);
            tracing::debug!(?counter, reportable, "snmpv3 message refused");
            if !reportable {
                return None;
            }
            self.report(msg_id, max, counter, cleartext_request_id, user)
        };
        if usm.authoritative_engine_id[..] != e.id[..] {
            return report(Counter::UnknownEngineIds, None);
        }
        let Some(user) = self.users.iter().find(|u| u.name[..] == usm.user_name[..]) else {
            return report(Counter::UnknownUserNames, None);
        };
        if (auth && user.auth.is_none()) || (privacy && user.privacy.is_none()) {
            return report(Counter::UnsupportedSecLevels, None);
        }
        if let Some((proto, key)) = user.auth.as_ref().filter(|_| auth) {
            if !usm::verify(*proto, key, &usm.authentication_parameters, buf) {
                self.authentication_failure();
                return report(Counter::WrongDigests, None);
            }
            let boots = i64::try_from(&usm.authoritative_engine_boots).unwrap_or(-1);
            let time = i64::try_from(&usm.authoritative_engine_time).unwrap_or(-1);
            if boots == 0x7fff_ffff
                || boots != i64::from(e.boots)
                || (time - i64::from(e.time())).abs() > TIME_WINDOW
            {
                return report(Counter::NotInTimeWindows, Some(user));
            }
        }
        let scoped = match (&msg.scoped_data, &user.privacy) {
            (v3::ScopedPduData::CleartextPdu(s), _) if !privacy => s.clone(),
            (v3::ScopedPduData::EncryptedPdu(data), Some((_, key))) if privacy => {
                let salt: Option<[u8; 8]> = usm.privacy_parameters[..].try_into().ok();
                let boots = u32::try_from(&usm.authoritative_engine_boots).ok();
                let time = u32::try_from(&usm.authoritative_engine_time).ok();
                let (Some(salt), Some(boots), Some(time)) = (salt, boots, time) else {
                    return report(Counter::DecryptionErrors, None);
                };
                let mut plain = data.to_vec();
                if !usm::aes_decrypt(key, boots, time, &salt, &mut plain) {
                    return report(Counter::DecryptionErrors, None);
                }
                match rasn::ber::decode::<v3::ScopedPdu>(&plain) {
                    Ok(s) => s,
                    Err(_) => return report(Counter::DecryptionErrors, None),
                }
            }
            _ => {
                e.count(Counter::InvalidMsgs);
                return None;
            }
        };
        if !scoped.name.is_empty() {
            return report(Counter::UnknownContexts, auth.then_some(user));
        }
        let request = match scoped.data.clone() {
            v2::Pdus::GetRequest(r) => Request::Get(r.0),
            v2::Pdus::GetNextRequest(r) => Request::GetNext(r.0),
            v2::Pdus::GetBulkRequest(r) => Request::GetBulk(r.0),
            v2::Pdus::SetRequest(r) => Request::Set(r.0),
            _ => {
                e.count(Counter::UnknownPduHandlers);
                return None;
            }
        };
        let level = match (auth, privacy) {
            (false, _) => SecurityLevel::NoAuthNoPriv,
            (true, false) => SecurityLevel::AuthNoPriv,
            (true, true) => SecurityLevel::AuthPriv,
        };
        let request_id = request.request_id();
        let access = Access {
            user: &user.principal,
            read_view: &user.read_view,
            write_view: user.write_view.as_ref(),
            v1: false,
        };
        let bulk = matches!(request, Request::GetBulk(_));
        let envelope = ENVELOPE_SLACK * 2
            + 2 * e.id.len()
            + user.name.len()
            + user.auth.as_ref().map_or(0, |(p, _)| p.mac_len())
            + 16;
        let pdu = if level < user.min_level {
            // VACM: no access entry at this level (RFC 3415 3.2).
            response(
                request_id,
                code::AUTHORIZATION_ERROR,
                0,
                request.varbinds().to_vec(),
            )
        } else {
            self.process(request, &access, max.saturating_sub(envelope))
                .await
        };
        let encode = |pdu: v2::Pdu| {
            let scoped = v3::ScopedPdu {
                engine_id: self.engine_id.clone(),
                name: scoped.name.clone(),
                data: v2::Pdus::Response(v2::Response(pdu)),
            };
            let (bytes, scoped) = self.encode_v3_parts(msg_id, scoped, Some(user), auth, privacy);
            (bytes, take_response(scoped.data))
        };
        fit(pdu, max, bulk, encode)
    }

    fn report(
        &self,
        msg_id: i32,
        max: usize,
        counter: Counter,
        request_id: i32,
        user: Option<&LocalUser>,
    ) -> Option<Vec<u8>> {
        let (prefix, arc) = match counter {
            Counter::UnknownContexts => (&[1, 3, 6, 1, 6, 3, 12, 1][..], 5),
            Counter::UnsupportedSecLevels => (oid::USM_STATS, 1),
            Counter::NotInTimeWindows => (oid::USM_STATS, 2),
            Counter::UnknownUserNames => (oid::USM_STATS, 3),
            Counter::UnknownEngineIds => (oid::USM_STATS, 4),
            Counter::WrongDigests => (oid::USM_STATS, 5),
            _ => (oid::USM_STATS, 6),
        };
        let name = oid::join(prefix, &[arc, 0]);
        let value = counter32(self.engine.get(counter));
        let scoped = v3::ScopedPdu {
            engine_id: self.engine_id.clone(),
            name: OctetString::from_static(b""),
            data: v2::Pdus::Report(v2::Report(response(
                request_id,
                0,
                0,
                vec![vb(&name, v2::VarBindValue::Value(value))],
            ))),
        };
        // notInTimeWindow reports are authenticated (RFC 3414 3.2.7a).
        let out = self.encode_v3(msg_id, scoped, user, user.is_some(), false)?;
        (out.len() <= max).then_some(out)
    }

    /// An SNMPv3 notification message from this (authoritative) engine.
    pub(crate) fn encode_v3_notification(&self, user: &str, pdu: v2::Pdus) -> Option<Vec<u8>> {
        let u = self.users.iter().find(|u| u.name == user.as_bytes())?;
        let scoped = v3::ScopedPdu {
            engine_id: self.engine_id.clone(),
            name: OctetString::from_static(b""),
            data: pdu,
        };
        let msg_id = (self.salt.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i32;
        self.encode_v3(
            msg_id,
            scoped,
            Some(u),
            u.auth.is_some(),
            u.privacy.is_some(),
        )
    }

    /// Builds (and authenticates / encrypts) an outgoing v3 message from
    /// this engine.
    fn encode_v3(
        &self,
        msg_id: i32,
        scoped: v3::ScopedPdu,
        user: Option<&LocalUser>,
        auth: bool,
        privacy: bool,
    ) -> Option<Vec<u8>> {
        self.encode_v3_parts(msg_id, scoped, user, auth, privacy).0
    }

    /// [`encode_v3`](Self::encode_v3), handing the scoped PDU back.
    fn encode_v3_parts(
        &self,
        msg_id: i32,
        scoped: v3::ScopedPdu,
        user: Option<&LocalUser>,
        auth: bool,
        privacy: bool,
    ) -> (Option<Vec<u8>>, v3::ScopedPdu) {
        let e = &self.engine;
        let auth_key = user.and_then(|u| u.auth.as_ref()).filter(|_| auth);
        let priv_key = user
            .and_then(|u| u.privacy.as_ref())
            .filter(|_| privacy && auth);
        let out = usm::Outgoing {
            msg_id,
            max_size: self.config.max_message_size,
            engine_id: &e.id,
            boots: e.boots,
            time: e.time(),
            user: user.map_or(&[][..], |u| &u.name[..]),
            auth: auth_key.map(|(p, k)| (*p, &k[..])),
            privacy: priv_key.map(|(_, k)| &k[..]),
            salt: self.salt.fetch_add(1, Ordering::Relaxed),
            reportable: false,
            scoped,
        };
        (usm::build_message(&out), out.scoped)
    }

    /// Password, protocols and name of a configured user (notification
    /// targets localise keys for a remote engine).
    pub(crate) fn user_config(&self, name: &str) -> Option<&crate::config::UsmUser> {
        self.config.users.iter().find(|u| u.name == name)
    }

    pub(crate) fn next_salt(&self) -> u64 {
        self.salt.fetch_add(1, Ordering::Relaxed)
    }
}

/// A GETBULK answer cut at the size limit: tooBig only if nothing fits.
fn bulk_trimmed(id: i32, out: Vec<v2::VarBind>) -> v2::Pdu {
    if out.is_empty() {
        response(id, code::TOO_BIG, 0, out)
    } else {
        response(id, 0, 0, out)
    }
}

fn pdu_request_id(p: &v2::Pdus) -> i32 {
    match p {
        v2::Pdus::GetRequest(r) => r.0.request_id,
        v2::Pdus::GetNextRequest(r) => r.0.request_id,
        v2::Pdus::GetBulkRequest(r) => r.0.request_id,
        v2::Pdus::SetRequest(r) => r.0.request_id,
        v2::Pdus::InformRequest(r) => r.0.request_id,
        v2::Pdus::Response(r) => r.0.request_id,
        v2::Pdus::Trap(r) => r.0.request_id,
        v2::Pdus::Report(r) => r.0.request_id,
    }
}

/// Encodes a response within `max` octets: drops trailing bindings of an
/// over-long GETBULK answer, else answers tooBig with no bindings (RFC
/// 3416 4.2.1), else nothing. `encode` hands the PDU back, so that the
/// usual single attempt copies nothing.
fn fit(
    mut pdu: v2::Pdu,
    max: usize,
    bulk: bool,
    mut encode: impl FnMut(v2::Pdu) -> (Option<Vec<u8>>, v2::Pdu),
) -> Option<Vec<u8>> {
    loop {
        let (bytes, back) = encode(pdu);
        pdu = back;
        let bytes = bytes?;
        if bytes.len() <= max {
            return Some(bytes);
        }
        if bulk && pdu.error_status == 0 && pdu.variable_bindings.len() > 1 {
            let excess = bytes.len() - max;
            let avg = bytes.len() / pdu.variable_bindings.len().max(1);
            let drop = (excess / avg.max(1) + 1).min(pdu.variable_bindings.len() - 1);
            let keep = pdu.variable_bindings.len() - drop;
            pdu.variable_bindings.truncate(keep);
            continue;
        }
        if pdu.error_status == code::TOO_BIG {
            return None;
        }
        pdu = response(pdu.request_id, code::TOO_BIG, 0, Vec::new());
    }
}

/// The PDU of a Response the agent built (an empty one cannot occur).
fn take_response(pdus: v2::Pdus) -> v2::Pdu {
    match pdus {
        v2::Pdus::Response(r) => r.0,
        _ => response(0, code::GEN_ERR, 0, Vec::new()),
    }
}
