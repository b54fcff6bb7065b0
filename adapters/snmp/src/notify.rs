//! The notification originator: every notification of the model becomes
//! an SNMPv2-Trap or an InformRequest (acknowledged, retried) to each
//! configured target. Varbinds follow the generated MIB: sysUpTime.0,
//! snmpTrapOID.0 = `<root>.0.<n>`, then `<root>.3.<n>.<k>.0` per attribute.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use halyard_cluster_model::port::{Delivery, Notification, Subscription};
use rasn::types::{Integer, OctetString};
use rasn_snmp::{v2, v2c};
use tokio::net::UdpSocket;

use crate::agent::Shared;
use crate::codec::{encode_value, object_id, ticks};
use crate::config::{NotifyKind, TrapSecurity, TrapTarget};
use crate::engine::Counter;
use crate::error::SnmpError;
use crate::mib::{notification_object, notification_oid};
use crate::oid;

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
    shared: Arc<Shared>,
    target: TrapTarget,
    mut sub: Subscription,
) -> Result<(), SnmpError> {
    let local: SocketAddr = if target.address.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).await?;
    while let Some(d) = sub.recv().await {
        let n = match d {
            Delivery::Notification(n) => n,
            Delivery::Missed(k) => {
                shared.engine.add(
                    Counter::NotificationsMissed,
                    u32::try_from(k).unwrap_or(u32::MAX),
                );
                tracing::warn!(missed = k, target = %target.address, "snmp notifications dropped: sender too slow");
                continue;
            }
        };
        let vbs = varbinds(&n, shared.engine.uptime_ticks());
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
                    continue;
                };
                if socket.send_to(&bytes, target.address).await.is_ok() {
                    shared.engine.count(Counter::TrapsSent);
                    shared.engine.count(Counter::OutPkts);
                }
            }
            NotifyKind::Inform { timeout, retries } => {
                // SNMPv3 informs are refused at bind time.
                let TrapSecurity::Community(community) = &target.security else {
                    continue;
                };
                let inform = v2::Pdus::InformRequest(v2::InformRequest(pdu));
                let Some(bytes) = encode(community, inform) else {
                    continue;
                };
                let mut acked = false;
                for _attempt in 0..=retries {
                    if socket.send_to(&bytes, target.address).await.is_ok() {
                        shared.engine.count(Counter::InformsSent);
                        shared.engine.count(Counter::OutPkts);
                    }
                    if tokio::time::timeout(timeout, wait_ack(&socket, target.address, request_id))
                        .await
                        .is_ok()
                    {
                        acked = true;
                        break;
                    }
                }
                if acked {
                    shared.engine.count(Counter::InformsAcked);
                } else {
                    shared.engine.count(Counter::InformsTimedOut);
                    tracing::warn!(target = %target.address, seq = n.seq, "snmp inform not acknowledged");
                }
            }
        }
    }
    Ok(())
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
