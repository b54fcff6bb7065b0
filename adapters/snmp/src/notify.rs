//! The notification originator: every notification of the model becomes
//! an SNMPv2-Trap or an InformRequest (acknowledged, retried) to each
//! configured target. Varbinds follow the generated MIB: sysUpTime.0,
//! snmpTrapOID.0 = `<root>.0.<n>`, then `<root>.3.<n>.<k>.0` per attribute.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use halyard_cluster_model::port::{Delivery, Notification, Subscription};
use rasn::types::{Integer, OctetString};
use rasn_snmp::{v2, v2c, v3};
use tokio::net::UdpSocket;

use crate::codec::{encode_value, object_id, ticks};
use crate::config::{AuthProtocol, NotifyKind, TrapSecurity, TrapTarget};
use crate::engine::{Counter, Engine};
use crate::error::SnmpError;
use crate::mib::{notification_object, notification_oid};
use crate::oid;
use crate::usm;

/// What a notification sender needs of the agent: its engine, its USM
/// users and its message size. The agent implements it, so the sender
/// never reaches into the agent's state (and the two modules do not import
/// each other).
pub(crate) trait Originator: Send + Sync + 'static {
    fn engine(&self) -> &Engine;
    fn max_message_size(&self) -> usize;
    /// A v3 notification from this (authoritative) engine to `user`.
    fn encode_v3_notification(&self, user: &str, pdu: v2::Pdus) -> Option<Vec<u8>>;
    /// `user`'s keys localized for a receiver's engine (informs).
    fn keys_for(&self, user: &str, engine_id: &[u8]) -> Option<Keys>;
    fn next_salt(&self) -> u64;
}

/// A user's authentication key and privacy key for one engine.
pub(crate) type Keys = (Option<(AuthProtocol, Vec<u8>)>, Option<usm::PrivKey>);

static REQUEST_ID: AtomicI32 = AtomicI32::new(1);

fn next_request_id() -> i32 {
    REQUEST_ID.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff
}

/// The variable bindings of a notification.
pub fn varbinds(n: &Notification, uptime: u32) -> Vec<v2::VarBind> {
    let vb = |name: &[u32], v| v2::VarBind {
        name: oid::to_asn(name),
        value: v2::VarBindValue::Value(v),
    };
    let mut out = vec![
        vb(oid::SYS_UPTIME, ticks(uptime)),
        vb(oid::SNMP_TRAP_OID, object_id(&notification_oid(n.class))),
    ];
    for (a, v) in n.class.attributes.iter().zip(&n.values) {
        if let Some(s) = encode_value(a, v) {
            out.push(vb(&notification_object(n.class, a.column), s));
        }
    }
    out
}

/// The bindings of SNMPv2-MIB authenticationFailure (snmpTraps.5).
pub fn authentication_failure(uptime: u32) -> Vec<v2::VarBind> {
    let vb = |name: &[u32], v| v2::VarBind {
        name: oid::to_asn(name),
        value: v2::VarBindValue::Value(v),
    };
    vec![
        vb(oid::SYS_UPTIME, ticks(uptime)),
        vb(
            oid::SNMP_TRAP_OID,
            object_id(&[1, 3, 6, 1, 6, 3, 1, 1, 5, 5]),
        ),
    ]
}

/// The bindings of ENTITY-MIB entConfigChange (entityMIBTraps.1): the
/// physical entity table changed; entLastChangeTime says when.
pub fn ent_config_change(uptime: u32) -> Vec<v2::VarBind> {
    let vb = |name: &[u32], v| v2::VarBind {
        name: oid::to_asn(name),
        value: v2::VarBindValue::Value(v),
    };
    vec![
        vb(oid::SYS_UPTIME, ticks(uptime)),
        vb(
            oid::SNMP_TRAP_OID,
            object_id(&[1, 3, 6, 1, 2, 1, 47, 2, 0, 1]),
        ),
    ]
}

/// Notifications of standard MIBs, not of the model.
#[derive(Debug, Clone)]
pub enum Standard {
    /// SNMPv2-MIB authenticationFailure.
    AuthenticationFailure,
    /// ENTITY-MIB entConfigChange.
    EntConfigChange,
    /// A notification its watcher made whole (ALARM-MIB's alarmActiveState
    /// and alarmClearState, ENTITY-STATE-MIB's entStateOperEnabled and
    /// entStateOperDisabled): its bindings.
    Prepared(Arc<Vec<v2::VarBind>>),
}

/// The bindings of ALARM-MIB alarmActiveState (alarmClearState when
/// `cleared`): the alarm row's model pointer and resource.
pub fn alarm_state(
    uptime: u32,
    cleared: bool,
    instance: &[u32],
    model_pointer: &[u32],
    resource: &[u32],
) -> Vec<v2::VarBind> {
    let vb = |name: &[u32], v| v2::VarBind {
        name: oid::to_asn(name),
        value: v2::VarBindValue::Value(v),
    };
    let (model_name, resource_name) = crate::mib::notification_objects(instance);
    let trap = if cleared {
        crate::mib::CLEAR_STATE
    } else {
        crate::mib::ACTIVE_STATE
    };
    vec![
        vb(oid::SYS_UPTIME, ticks(uptime)),
        vb(oid::SNMP_TRAP_OID, object_id(trap)),
        vb(&model_name, object_id(model_pointer)),
        vb(&resource_name, object_id(resource)),
    ]
}

/// The bindings of ENTITY-STATE-MIB entStateOperEnabled (entStateOperDisabled
/// when not `enabled`): the entity's entStateAdmin and entStateAlarm.
pub fn ent_state_oper(
    uptime: u32,
    enabled: bool,
    index: u32,
    admin: i64,
    alarm: u8,
) -> Vec<v2::VarBind> {
    let vb = |name: &[u32], v| v2::VarBind {
        name: oid::to_asn(name),
        value: v2::VarBindValue::Value(v),
    };
    let column = |c: u32| oid::join(oid::ENT_STATE_ENTRY, &[c, index]);
    vec![
        vb(oid::SYS_UPTIME, ticks(uptime)),
        vb(
            oid::SNMP_TRAP_OID,
            object_id(&[1, 3, 6, 1, 2, 1, 131, 0, if enabled { 1 } else { 2 }]),
        ),
        vb(&column(2), crate::codec::int(admin)),
        vb(&column(5), crate::codec::octets(vec![alarm])),
    ]
}

/// Encodes a v2c notification message.
pub fn encode(community: &str, pdu: v2::Pdus) -> Option<Vec<u8>> {
    rasn::ber::encode(&v2c::Message {
        version: Integer::from(1),
        community: OctetString::from(community.as_bytes().to_vec()),
        data: pdu,
    })
    .ok()
}

pub(crate) async fn run_target(
    shared: Arc<impl Originator>,
    target: TrapTarget,
    mut sub: Subscription,
    mut standard: tokio::sync::broadcast::Receiver<Standard>,
) -> Result<(), SnmpError> {
    let local: SocketAddr = if target.address.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).await?;
    // The receiver's engine, for SNMPv3 informs (it is authoritative).
    let mut remote: Option<Remote> = None;
    let mut auth_open = true;
    let mut unsendable = false;
    // The receiver's engine our user has no keys for (said once).
    let mut no_keys: Option<Vec<u8>> = None;
    loop {
        let (vbs, seq) = tokio::select! {
            d = sub.recv() => match d {
                None => break,
                Some(Delivery::Notification(n)) => {
                    (varbinds(&n, shared.engine().uptime_ticks()), Some(n.seq))
                }
                Some(Delivery::Missed(k)) => {
                    shared.engine().add(
                        Counter::NotificationsMissed,
                        u32::try_from(k).unwrap_or(u32::MAX),
                    );
                    tracing::warn!(missed = k, target = %target.address, "snmp notifications dropped: sender too slow");
                    continue;
                }
            },
            r = standard.recv(), if auth_open => match r {
                Ok(Standard::EntConfigChange) => {
                    (ent_config_change(shared.engine().uptime_ticks()), None)
                }
                Ok(Standard::AuthenticationFailure) => {
                    (authentication_failure(shared.engine().uptime_ticks()), None)
                }
                Ok(Standard::Prepared(vbs)) => (vbs.to_vec(), None),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    shared.engine().add(
                        Counter::NotificationsMissed,
                        u32::try_from(k).unwrap_or(u32::MAX),
                    );
                    tracing::warn!(missed = k, target = %target.address, "snmp standard notifications dropped: sender too slow");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    auth_open = false;
                    continue;
                }
            },
        };
        let request_id = next_request_id();
        let pdu = v2::Pdu {
            request_id,
            error_status: 0,
            error_index: 0,
            variable_bindings: vbs,
        };
        match target.kind {
            NotifyKind::Trap => {
                let trap = v2::Pdus::Trap(v2::Trap(pdu));
                let bytes = match &target.security {
                    TrapSecurity::Community(c) => encode(c, trap),
                    TrapSecurity::Usm { user } => shared.encode_v3_notification(user, trap),
                };
                let Some(bytes) = bytes else {
                    // A user without keys for this engine: said once.
                    if !unsendable {
                        unsendable = true;
                        tracing::warn!(target = %target.address, "a trap cannot be sent: its user has no keys for this engine");
                    }
                    continue;
                };
                if socket.send_to(&bytes, target.address).await.is_ok() {
                    shared.engine().count(Counter::TrapsSent);
                    shared.engine().count(Counter::OutPkts);
                }
            }
            NotifyKind::Inform { timeout, retries } => {
                let inform = v2::Pdus::InformRequest(v2::InformRequest(pdu));
                let acked = match &target.security {
                    TrapSecurity::Community(c) => {
                        let Some(bytes) = encode(c, inform) else {
                            continue;
                        };
                        send_v2c_inform(
                            &*shared, &socket, &target, &bytes, request_id, timeout, retries,
                        )
                        .await
                    }
                    TrapSecurity::Usm { user } => {
                        send_v3_inform(
                            &*shared,
                            &socket,
                            &target,
                            user,
                            &mut remote,
                            &mut no_keys,
                            inform,
                            timeout,
                            retries,
                        )
                        .await
                    }
                };
                if acked {
                    shared.engine().count(Counter::InformsAcked);
                } else {
                    shared.engine().count(Counter::InformsTimedOut);
                    // Without keys for the receiver, that was said already.
                    if no_keys.is_none() {
                        tracing::warn!(target = %target.address, ?seq, "snmp inform not acknowledged");
                    }
                }
            }
        }
    }
    Ok(())
}

async fn send_v2c_inform(
    shared: &impl Originator,
    socket: &UdpSocket,
    target: &TrapTarget,
    bytes: &[u8],
    request_id: i32,
    timeout: Duration,
    retries: u32,
) -> bool {
    for _attempt in 0..=retries {
        if socket.send_to(bytes, target.address).await.is_ok() {
            shared.engine().count(Counter::InformsSent);
            shared.engine().count(Counter::OutPkts);
        }
        if tokio::time::timeout(timeout, wait_ack(socket, target.address, request_id))
            .await
            .is_ok()
        {
            return true;
        }
    }
    false
}

/// A remote authoritative engine and our user's keys localised for it.
#[derive(Debug)]
struct Remote {
    engine_id: Vec<u8>,
    boots: u32,
    time: u32,
    at: Instant,
    auth: Option<(AuthProtocol, Vec<u8>)>,
    privacy: Option<usm::PrivKey>,
}

impl Remote {
    fn time_now(&self) -> u32 {
        self.time
            .saturating_add(self.at.elapsed().as_secs().min(u64::from(u32::MAX)) as u32)
    }
}

fn next_msg_id() -> i32 {
    next_request_id()
}

/// Reads v3 datagrams until one carries `msg_id`: its USM parameters and
/// whether it is a (cleartext) Report.
async fn wait_v3(
    socket: &UdpSocket,
    from: SocketAddr,
    msg_id: i32,
) -> (v3::USMSecurityParameters, bool, Vec<u8>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if peer.ip() != from.ip() {
            continue;
        }
        let Ok(m) = rasn::ber::decode::<v3::Message>(&buf[..n]) else {
            continue;
        };
        if i32::try_from(&m.global_data.message_id).ok() != Some(msg_id) {
            continue;
        }
        let Ok(usm) = rasn::ber::decode::<v3::USMSecurityParameters>(&m.security_parameters) else {
            continue;
        };
        let report = matches!(
            &m.scoped_data,
            v3::ScopedPduData::CleartextPdu(s) if matches!(s.data, v2::Pdus::Report(_))
        );
        return (usm, report, buf[..n].to_vec());
    }
}

/// Whether a message from the remote engine carries a valid digest (or
/// none is expected).
fn authentic(r: &Remote, p: &v3::USMSecurityParameters, bytes: &[u8]) -> bool {
    let Some((proto, key)) = &r.auth else {
        return true;
    };
    p.authoritative_engine_id[..] == r.engine_id[..]
        && usm::verify(*proto, key, &p.authentication_parameters, bytes)
}

/// Why a receiver's engine is not usable.
enum Undiscovered {
    /// No answer to the probe.
    Silent,
    /// Our user has no keys for the receiver's engine (its ID).
    NoKeys(Vec<u8>),
}

/// Engine discovery (RFC 3414 4): a reportable, unauthenticated probe.
async fn discover(
    shared: &impl Originator,
    socket: &UdpSocket,
    target: &TrapTarget,
    user: &str,
    timeout: Duration,
) -> Result<Remote, Undiscovered> {
    probe(shared, socket, target, user, timeout)
        .await
        .ok_or(Undiscovered::Silent)?
}

/// Sends the probe and reads the receiver's engine from its Report.
async fn probe(
    shared: &impl Originator,
    socket: &UdpSocket,
    target: &TrapTarget,
    user: &str,
    timeout: Duration,
) -> Option<Result<Remote, Undiscovered>> {
    let msg_id = next_msg_id();
    let probe = usm::build_message(&usm::Outgoing {
        msg_id,
        max_size: shared.max_message_size(),
        engine_id: &[],
        boots: 0,
        time: 0,
        user: &[],
        auth: None,
        privacy: None,
        salt: 0,
        reportable: true,
        scoped: v3::ScopedPdu {
            engine_id: OctetString::from_static(b""),
            name: OctetString::from_static(b""),
            data: v2::Pdus::GetRequest(v2::GetRequest(v2::Pdu {
                request_id: next_request_id(),
                error_status: 0,
                error_index: 0,
                variable_bindings: Vec::new(),
            })),
        },
    })?;
    socket.send_to(&probe, target.address).await.ok()?;
    shared.engine().count(Counter::OutPkts);
    let (p, _, _) = tokio::time::timeout(timeout, wait_v3(socket, target.address, msg_id))
        .await
        .ok()?;
    let engine_id = p.authoritative_engine_id.to_vec();
    if engine_id.is_empty() {
        return None;
    }
    let Some((auth, privacy)) = shared.keys_for(user, &engine_id) else {
        return Some(Err(Undiscovered::NoKeys(engine_id)));
    };
    tracing::debug!(target = %target.address, engine_id = %crate::engine::to_hex(&engine_id), "discovered inform receiver engine");
    Some(Ok(Remote {
        boots: u32::try_from(&p.authoritative_engine_boots).unwrap_or(0),
        time: u32::try_from(&p.authoritative_engine_time).unwrap_or(0),
        at: Instant::now(),
        engine_id,
        auth,
        privacy,
    }))
}

/// An SNMPv3 InformRequest to a receiver that is the authoritative
/// engine: discovered first, re-synchronised on notInTimeWindow reports.
#[allow(clippy::too_many_arguments)]
async fn send_v3_inform(
    shared: &impl Originator,
    socket: &UdpSocket,
    target: &TrapTarget,
    user: &str,
    remote: &mut Option<Remote>,
    no_keys: &mut Option<Vec<u8>>,
    inform: v2::Pdus,
    timeout: Duration,
    retries: u32,
) -> bool {
    let mut attempt = 0;
    while attempt <= retries {
        attempt += 1;
        if remote.is_none() {
            match discover(shared, socket, target, user, timeout).await {
                Ok(r) => {
                    *no_keys = None;
                    *remote = Some(r);
                }
                Err(Undiscovered::Silent) => {}
                // Not sendable until an admin adds the keys: no retries,
                // and said once per engine.
                Err(Undiscovered::NoKeys(engine)) => {
                    if no_keys.as_ref() != Some(&engine) {
                        tracing::warn!(
                            target = %target.address,
                            %user,
                            engine_id = %crate::engine::to_hex(&engine),
                            "no keys of the user for the inform receiver's engine (halyard user snmp NAME --engine ID): informs to it are not sent"
                        );
                        *no_keys = Some(engine);
                    }
                    return false;
                }
            }
        }
        let Some(r) = remote.as_ref() else {
            continue;
        };
        let msg_id = next_msg_id();
        let Some(bytes) = usm::build_message(&usm::Outgoing {
            msg_id,
            max_size: shared.max_message_size(),
            engine_id: &r.engine_id,
            boots: r.boots,
            time: r.time_now(),
            user: user.as_bytes(),
            auth: r.auth.as_ref().map(|(p, k)| (*p, &k[..])),
            privacy: r.privacy.as_ref(),
            salt: shared.next_salt(),
            reportable: true,
            scoped: v3::ScopedPdu {
                engine_id: OctetString::from(r.engine_id.clone()),
                name: OctetString::from_static(b""),
                data: inform.clone(),
            },
        }) else {
            return false;
        };
        if socket.send_to(&bytes, target.address).await.is_ok() {
            shared.engine().count(Counter::InformsSent);
            shared.engine().count(Counter::OutPkts);
        }
        match tokio::time::timeout(timeout, wait_v3(socket, target.address, msg_id)).await {
            Ok((p, false, bytes)) => {
                // The Response must be authenticated with the receiver's key.
                if authentic(r, &p, &bytes) {
                    return true;
                }
                tracing::debug!(target = %target.address, "inform response failed authentication");
            }
            Ok((p, true, _)) => {
                // notInTimeWindow (or another report): take its clock and
                // engine, and try again.
                if p.authoritative_engine_id[..] == r.engine_id[..] {
                    if let Some(r) = remote.as_mut() {
                        r.boots = u32::try_from(&p.authoritative_engine_boots).unwrap_or(r.boots);
                        r.time = u32::try_from(&p.authoritative_engine_time).unwrap_or(r.time);
                        r.at = Instant::now();
                    }
                } else {
                    *remote = None;
                }
            }
            Err(_) => {}
        }
    }
    false
}

/// Waits for the Response to an InformRequest; other datagrams are ignored.
async fn wait_ack(socket: &UdpSocket, from: SocketAddr, request_id: i32) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            // ICMP port unreachable and the like: keep waiting.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        if peer.ip() != from.ip() {
            continue;
        }
        if let Ok(m) = rasn::ber::decode::<v2c::Message<v2::Pdus>>(&buf[..n])
            && let v2::Pdus::Response(r) = m.data
            && r.0.request_id == request_id
        {
            return;
        }
    }
}
