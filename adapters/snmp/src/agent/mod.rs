//! The agent: UDP sockets, message processing for v1, v2c (RFC 3584) and
//! v3 with USM (RFC 3412, 3414), and the command responder (RFC 3416).
//!
//! Every datagram is handled in its own task under a per-request deadline,
//! so a slow model call never holds up other requests. Bad input is
//! counted in its MIB counter and dropped or answered with a Report.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use halyard_cluster_model::port::{InformationModel, NotificationFilter, Subscription};
use rasn::types::OctetString;
use std::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{AuthProtocol, Community, SecurityLevel, SnmpConfig, View};
use crate::engine::{Counter, Engine};
use crate::error::SnmpError;
use crate::mib::{Mib, SysInfo};
use crate::usm;

mod dispatch;
mod process;
mod receive;
mod response;
mod v3;

use receive::{Receiver, bind_udp};

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
    privacy: Option<usm::PrivKey>,
    read_view: View,
    write_view: Option<View>,
    min_level: SecurityLevel,
    write_min_level: SecurityLevel,
    /// An element's user whose role is admin (the access model's admin
    /// rules apply to it; every other user that writes is an operator).
    admin: bool,
}

/// A user with keys localized for another engine (its ID first).
type EngineUser = (Vec<u8>, LocalUser);

/// What one request may do.
#[derive(Debug)]
struct Access<'a> {
    /// The principal named in the audit trail.
    user: &'a str,
    read_view: &'a View,
    write_view: Option<&'a View>,
    v1: bool,
    /// The user is an admin to the access model.
    admin: bool,
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
    /// The element's users with keys for this engine (`AccessSnmpKey`
    /// objects), after the configured ones; replaced whole by
    /// [`watch_element`].
    model_users: std::sync::RwLock<Arc<Vec<LocalUser>>>,
    /// The element's users' keys for other engines, by engine ID: informs
    /// to a receiver use its engine's (it is authoritative).
    remote_users: std::sync::RwLock<Arc<Vec<EngineUser>>>,
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
    /// The model's notifications, for ALARM-MIB's alarm state ones.
    alarm_subscription: Subscription,
    /// The physical entity table's changes (units inserted or removed).
    entity_subscription: Subscription,
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
                g.write_min_level.max(g.min_level),
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
            .map(|(u, (read_view, write_view, min_level, write_min_level))| {
                let auth = u
                    .auth
                    .as_ref()
                    .map(|(p, pw)| (*p, usm::localized_key(*p, pw, &engine.id)));
                let privacy = match (&u.privacy, &u.auth) {
                    (Some((pp, pw)), Some((ap, _))) => {
                        Some(usm::PrivKey::new(*ap, *pp, pw, &engine.id))
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
                    write_min_level,
                    admin: false,
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
        let alarm_subscription = model.subscribe(NotificationFilter::default());
        let entity_subscription = model.subscribe(NotificationFilter {
            classes: vec![halyard_cluster_model::physical::TABLE_CHANGED.to_string()],
            ..NotificationFilter::default()
        });
        let mib = Mib::new(model, engine.clone(), sys, config.max_message_size as u32)
            .with_targets(&config.trap_targets, &config.users)
            .with_vacm(&config);
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
                // A community is a secret: the audit trail, the access
                // rules and /metrics know it by its place (as
                // SNMP-VIEW-BASED-ACM-MIB shows it).
                communities: config
                    .communities
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), crate::mib::vacm::community_name(i)))
                    .collect(),
                users,
                model_users: Default::default(),
                remote_users: Default::default(),
                in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                standard: tokio::sync::broadcast::channel(256).0,
                config,
                salt,
            }),
            subscriptions,
            alarm_subscription,
            entity_subscription,
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
        tasks.spawn(watch_entities(
            self.shared.clone(),
            self.entity_subscription,
        ));
        tasks.spawn(watch_alarms(self.shared.clone(), self.alarm_subscription));
        tasks.spawn(watch_element(self.shared.clone()));
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

/// Follows the element's SNMPv3 users and notification targets: whenever
/// the model's revision moves (checked every 250 ms), rebuilds the users
/// with keys for this engine (and for others, for informs), shows the
/// targets in SNMP-TARGET-MIB, and starts and stops their senders. Its
/// senders stop with it.
async fn watch_element(shared: Arc<Shared>) -> Result<(), SnmpError> {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seen = None;
    let mut senders = Senders::default();
    loop {
        tick.tick().await;
        if senders.reap() {
            seen = None;
        }
        let model = shared.mib.model().clone();
        let revision = match model.changed(0, 0, 0).await {
            Ok(page) => page.map(|p| p.revision),
            Err(_) => continue,
        };
        if revision.is_some() && revision == seen {
            continue;
        }
        let users = match model_users(&*model).await {
            Ok(all) => {
                let (own, remote): (Vec<_>, Vec<_>) = all
                    .into_iter()
                    .partition(|(engine, _)| *engine == shared.engine.id);
                let own: Vec<LocalUser> = own.into_iter().map(|(_, u)| u).collect();
                // SNMP-VIEW-BASED-ACM-MIB shows them in their roles' groups.
                let shown: Vec<crate::mib::vacm::ElementUser> = own
                    .iter()
                    .map(|u| crate::mib::vacm::ElementUser {
                        name: u.principal.clone(),
                        group: if u.admin {
                            "admin"
                        } else if u.write_view.is_some() {
                            "operator"
                        } else {
                            "viewer"
                        },
                        writes: u.write_view.is_some(),
                        level: u.min_level,
                    })
                    .collect();
                shared.mib.set_element_users(&shown);
                let before = shared
                    .model_users
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .len();
                if before != own.len() {
                    tracing::info!(users = own.len(), "SNMPv3 users of the element");
                }
                *shared
                    .model_users
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Arc::new(own);
                *shared
                    .remote_users
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Arc::new(remote);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "the element's users could not be read");
                false
            }
        };
        let targets = senders.sync(&shared).await;
        if users && targets {
            seen = revision;
        }
    }
}

/// The senders of the element's notification targets, by target name.
#[derive(Default)]
struct Senders {
    running:
        std::collections::HashMap<String, (crate::config::TrapTarget, tokio::task::AbortHandle)>,
    tasks: JoinSet<Result<(), SnmpError>>,
    /// The targets left out last time, and why (warned about once).
    left_out: Vec<(String, String)>,
    /// Whether this node sent last time.
    here: Option<bool>,
}

impl Senders {
    /// Brings the senders and SNMP-TARGET-MIB in line with the model's
    /// targets; false when the model could not be read.
    async fn sync(&mut self, shared: &Arc<Shared>) -> bool {
        use crate::config::{NotifyKind, TrapSecurity, TrapTarget};
        use halyard_cluster_model::targets;
        let model = shared.mib.model().clone();
        let (found, left_out) = match targets::load(&*model).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "the element's notification targets could not be read");
                return false;
            }
        };
        if left_out != self.left_out {
            for (name, why) in &left_out {
                tracing::warn!(target = %name, reason = %why, "notification target left out");
            }
            self.left_out = left_out;
        }
        let here =
            match targets::sends_here(&*model, &crate::engine::to_hex(&shared.engine.id)).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::debug!(error = %e, "the element's nodes could not be read");
                    return false;
                }
            };
        if self.here != Some(here) {
            // Not sending is the start (until this node's engine shows)
            // and every follower's lot: said only when it stops.
            if here || self.here == Some(true) {
                tracing::info!(
                    sends = here,
                    "sender of the element's notification targets (the only node or the master)"
                );
            }
            self.here = Some(here);
        }
        let rows: Vec<crate::mib::target::TargetRow> = found
            .into_iter()
            .map(|t| {
                let security = match &t.user {
                    Some(u) => TrapSecurity::Usm { user: u.clone() },
                    None => TrapSecurity::Community(t.community.clone()),
                };
                let level = match &t.user {
                    None => 1,
                    Some(u) => shared.user_level(u),
                };
                crate::mib::target::TargetRow {
                    name: t.name,
                    target: TrapTarget {
                        address: t.address,
                        security,
                        kind: if t.inform {
                            NotifyKind::Inform {
                                timeout: t.timeout,
                                retries: t.retries,
                            }
                        } else {
                            NotifyKind::Trap
                        },
                    },
                    level,
                    storage: crate::mib::target::NON_VOLATILE,
                }
            })
            .collect();
        shared.mib.set_element_targets(rows.clone());
        let want: std::collections::HashMap<String, TrapTarget> = if here {
            rows.into_iter().map(|r| (r.name, r.target)).collect()
        } else {
            Default::default()
        };
        self.running.retain(|name, (t, handle)| {
            let keep = want.get(name) == Some(t);
            if !keep {
                handle.abort();
                tracing::info!(target = %name, address = %t.address, "notification target stopped");
            }
            keep
        });
        for (name, t) in want {
            if self.running.contains_key(&name) {
                continue;
            }
            let sub = model.subscribe(NotificationFilter::default());
            let standard = shared.standard.subscribe();
            let handle = self.tasks.spawn(crate::notify::run_target(
                shared.clone(),
                t.clone(),
                sub,
                standard,
            ));
            tracing::info!(target = %name, address = %t.address, "sending notifications to the element's target");
            self.running.insert(name, (t, handle));
        }
        true
    }

    /// Collects the senders that ended (a socket error): true when one
    /// did, so they are started again.
    fn reap(&mut self) -> bool {
        let mut ended = false;
        while let Some(r) = self.tasks.try_join_next() {
            ended = true;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "a notification target's sender stopped");
            }
        }
        self.running.retain(|_, (_, h)| !h.is_finished());
        ended
    }
}

/// The element's SNMPv3 users with the engine each key is localized for
/// (see [`watch_element`]).
async fn model_users(
    model: &dyn InformationModel,
) -> Result<Vec<(Vec<u8>, LocalUser)>, halyard_cluster_model::port::ModelError> {
    use halyard_cluster_model::users::names;
    use halyard_cluster_model::{SCHEMA, Value};
    let (Some(user_class), Some(key_class)) =
        (SCHEMA.class(names::USER), SCHEMA.class(names::SNMP_KEY))
    else {
        return Ok(Vec::new());
    };
    let users = model.credentials(user_class).await?;
    let mut out = Vec::new();
    for k in model.credentials(key_class).await? {
        let Some(engine_id) = k
            .name
            .rdns()
            .last()
            .and_then(|(_, v)| crate::engine::from_hex(v))
            .filter(|e| !e.is_empty())
        else {
            continue;
        };
        let engine_id = &engine_id[..];
        let Some(owner) = k.name.parent() else {
            continue;
        };
        let Some(u) = users.iter().find(|u| u.name == owner) else {
            continue;
        };
        let Some((_, name)) = owner.rdns().last() else {
            continue;
        };
        let text = |attr: &str| {
            k.get(attr)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let Some(auth) = k
            .text(names::AUTH_PROTOCOL)
            .as_deref()
            .and_then(AuthProtocol::from_label)
        else {
            continue;
        };
        let privacy = k
            .text(names::PRIV_PROTOCOL)
            .as_deref()
            .and_then(crate::config::PrivProtocol::from_label);
        // A localized key is as long as the protocol's digest.
        let key_len = usm::localized_key(auth, "", engine_id).len();
        let key = |attr: &str| crate::engine::from_hex(&text(attr)).filter(|k| k.len() == key_len);
        let Some(auth_key) = key(names::AUTH_KEY) else {
            tracing::warn!(user = %name, "an SNMP key of the wrong length for its protocol: user left out");
            continue;
        };
        let privacy = match privacy {
            None => None,
            Some(p) => match key(names::PRIV_KEY) {
                Some(kul) => Some(usm::PrivKey::from_localized(auth, p, kul, engine_id)),
                None => {
                    tracing::warn!(user = %name, "an SNMP privacy key of the wrong length: user left out");
                    continue;
                }
            },
        };
        let role = halyard_cluster_model::users::role_of(u);
        let writes = role != halyard_cluster_model::access::Role::Viewer;
        let level = if privacy.is_some() {
            SecurityLevel::AuthPriv
        } else {
            SecurityLevel::AuthNoPriv
        };
        out.push((
            engine_id.to_vec(),
            LocalUser {
                name: name.as_bytes().to_vec(),
                principal: name.to_string(),
                auth: Some((auth, auth_key)),
                privacy,
                read_view: View::all(),
                write_view: writes.then(View::all),
                min_level: level,
                write_min_level: level,
                admin: role == halyard_cluster_model::access::Role::Admin,
            },
        ));
    }
    Ok(out)
}

/// Follows the physical entity table, so entLastChangeTime says when a unit
/// came or went even if nobody was reading, and sends ENTITY-MIB's
/// entConfigChange when it changed — at most one every five seconds (RFC
/// 4133); later changes in the interval are announced at its end. The
/// table is read at start, when a unit is inserted or removed (the
/// model's table-change indication) and once a minute besides: reading it
/// means reading the whole tree, too much to do every second at 10,000
/// components. snmpEnableAuthenTraps is read every second.
async fn watch_entities(shared: Arc<Shared>, mut changes: Subscription) -> Result<(), SnmpError> {
    const THROTTLE: std::time::Duration = std::time::Duration::from_secs(5);
    const SAFETY: u32 = 60;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced: Option<u32> = None;
    let mut last_sent: Option<tokio::time::Instant> = None;
    // A change seen but not announced yet (throttled): look again.
    let mut pending = true;
    let mut ticks: u32 = 0;
    let mut open = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                if let Err(e) = shared.mib.observe_system().await {
                    tracing::debug!(error = %e, "snmpEnableAuthenTraps not read");
                }
                if !pending && !ticks.is_multiple_of(SAFETY) {
                    continue;
                }
            }
            d = changes.recv(), if open => match d {
                Some(_) => {}
                None => {
                    open = false;
                    continue;
                }
            },
        }
        let changed = match shared.mib.observe_entities().await {
            Ok(at) => at,
            Err(e) => {
                tracing::debug!(error = %e, "entity table not observed");
                pending = true;
                continue;
            }
        };
        // The first look is the start: nothing to announce.
        let known = *announced.get_or_insert(changed);
        pending = changed != known;
        if pending && last_sent.is_none_or(|t| t.elapsed() >= THROTTLE) {
            announced = Some(changed);
            last_sent = Some(tokio::time::Instant::now());
            pending = false;
            let _ = shared
                .standard
                .send(crate::notify::Standard::EntConfigChange);
        }
    }
}

/// ENTITY-STATE-MIB's entStateOperEnabled or entStateOperDisabled for a
/// physical entity's operational state change, at most one per entity and
/// direction a second (RFC 4268 asks agents to throttle them).
async fn ent_state_oper(
    shared: &Shared,
    name: &halyard_cluster_model::ObjectName,
    enabled: bool,
    sent: &mut std::collections::HashMap<(u32, bool), tokio::time::Instant>,
) {
    use halyard_cluster_model::physical;
    use halyard_cluster_model::port::Query;
    const THROTTLE: std::time::Duration = std::time::Duration::from_secs(1);
    let model = shared.mib.model();
    let Ok(o) = model.get(name).await else {
        return;
    };
    if physical::class(&o).is_none() {
        return;
    }
    let now = tokio::time::Instant::now();
    sent.retain(|_, t| now.duration_since(*t) < THROTTLE);
    if sent.insert((o.index, enabled), now).is_some() {
        tracing::debug!(entity = %name, "entStateOper notification throttled");
        return;
    }
    let alarms = model
        .query(&Query {
            classes: vec![halyard_cluster_model::alarm::CLASS.to_string()],
            ..Query::default()
        })
        .await
        .unwrap_or_default();
    let bits = physical::alarm_bits(&alarms)
        .get(name.as_str())
        .copied()
        .unwrap_or(0);
    let vbs = crate::notify::ent_state_oper(
        shared.engine.uptime_ticks(),
        enabled,
        o.index,
        physical::admin(&o).smi(),
        bits,
    );
    let _ = shared
        .standard
        .send(crate::notify::Standard::Prepared(Arc::new(vbs)));
}

/// Follows the alarm engine's indications: counts them for ALARM-MIB's and
/// ITU-ALARM-MIB's statistics, and announces each as ALARM-MIB's
/// alarmActiveState or alarmClearState — at most one every two seconds per
/// model row and resource, later ones dropped, as RFC 3877 asks.
async fn watch_alarms(shared: Arc<Shared>, mut sub: Subscription) -> Result<(), SnmpError> {
    use halyard_cluster_model::alarm;
    use halyard_cluster_model::meta::Role;
    use halyard_cluster_model::model::PerceivedSeverity;
    use halyard_cluster_model::port::Delivery;
    const THROTTLE: std::time::Duration = std::time::Duration::from_secs(2);
    let mut sent: std::collections::HashMap<(bool, Vec<u32>, Vec<u32>), tokio::time::Instant> =
        std::collections::HashMap::new();
    let mut oper_sent: std::collections::HashMap<(u32, bool), tokio::time::Instant> =
        std::collections::HashMap::new();
    loop {
        let n = match sub.recv().await {
            None => return Ok(()),
            Some(Delivery::Notification(n)) => n,
            Some(Delivery::Missed(k)) => {
                tracing::warn!(
                    missed = k,
                    "alarm indications missed: ALARM-MIB statistics undercount"
                );
                continue;
            }
        };
        if let Some((name, enabled)) = halyard_cluster_model::physical::oper_transition(&n) {
            ent_state_oper(&shared, name, enabled, &mut oper_sent).await;
            continue;
        }
        let Some((resource, cause, severity, _)) = alarm::indication(n.class, &n.values) else {
            continue;
        };
        let Some(name) = n
            .class
            .attribute_by_role(Role::Alarm)
            .and_then(|(i, _)| n.values.get(i))
            .and_then(|v| v.as_str())
            .and_then(|s| halyard_cluster_model::ObjectName::parse(s).ok())
        else {
            continue;
        };
        let model = shared.mib.model();
        // The alarm as it is now (gone: purged already, nothing to say).
        let Ok(a) = model.get(&name).await else {
            continue;
        };
        let (raised, changed, _) = alarm::times(&a);
        let cleared = severity == PerceivedSeverity::Cleared;
        shared
            .mib
            .note_alarm(severity, !cleared && raised.is_some() && raised == changed);
        let resource_id = match halyard_cluster_model::ObjectName::parse(&resource) {
            Ok(r) => match model.get(&r).await {
                Ok(o) => crate::mib::resource_id(&o),
                Err(_) => vec![0, 0],
            },
            Err(_) => vec![0, 0],
        };
        let pointer = crate::mib::model_pointer(cause, crate::mib::model_state(severity));
        let now = tokio::time::Instant::now();
        sent.retain(|_, t| now.duration_since(*t) < THROTTLE);
        let key = (cleared, pointer.clone(), resource_id.clone());
        if sent.contains_key(&key) {
            tracing::debug!(alarm = %name, "ALARM-MIB alarm state notification throttled");
            continue;
        }
        sent.insert(key, now);
        let instance = crate::mib::alarm_instance(
            raised
                .or(changed)
                .unwrap_or(halyard_cluster_model::Timestamp(0)),
            a.index,
        );
        let vbs = crate::notify::alarm_state(
            shared.engine.uptime_ticks(),
            cleared,
            &instance,
            &pointer,
            &resource_id,
        );
        let _ = shared
            .standard
            .send(crate::notify::Standard::Prepared(Arc::new(vbs)));
    }
}
