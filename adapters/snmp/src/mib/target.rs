//! SNMP-TARGET-MIB's snmpTargetAddrTable and snmpTargetParamsTable and
//! SNMP-NOTIFICATION-MIB's snmpNotifyTable (RFC 3413), read-only: where
//! the agent sends notifications and how. The configuration file's target
//! `n` (from 1, in its order) is the address row and the params row
//! `target-n` (readOnly); the element's NotificationTarget objects, added
//! at run time, are rows of their own names (nonVolatile). Targets are
//! tagged `trap` or `inform`, which the two snmpNotifyTable rows of those
//! names select. A v2c target's community is a secret: its security name
//! is left empty, not shown.

use std::net::SocketAddr;

use rasn_smi::v2::ObjectSyntax;

use crate::codec::{int, object_id, octets};
use crate::config::{NotifyKind, TrapSecurity, TrapTarget, UsmUser};
use crate::oid::Oid;

/// snmpTargetAddrEntry.
pub(super) const ADDR_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 12, 1, 2, 1];
/// snmpTargetParamsEntry.
pub(super) const PARAMS_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 12, 1, 3, 1];
/// snmpNotifyEntry.
pub(super) const NOTIFY_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 13, 1, 1, 1];
/// The modules (sysORTable).
pub(super) const TARGET_MIB: &[u32] = &[1, 3, 6, 1, 6, 3, 12];
pub(super) const NOTIFICATION_MIB: &[u32] = &[1, 3, 6, 1, 6, 3, 13];

/// snmpUDPDomain (SNMPv2-TM) and transportDomainUdpIpv6 (RFC 3419).
const UDP_DOMAIN: &[u32] = &[1, 3, 6, 1, 6, 1, 1];
const UDP_IPV6_DOMAIN: &[u32] = &[1, 3, 6, 1, 2, 1, 100, 1, 2];
/// StorageType readOnly(5), RowStatus active(1).
const READ_ONLY: i64 = 5;
const ACTIVE: i64 = 1;
/// The MIB's defaults: 15 s and 3 retries (used for informs only).
const DEFAULT_TIMEOUT_CS: i64 = 1500;
const DEFAULT_RETRIES: i64 = 3;

/// An IMPLIED SnmpAdminString index: the octets, no length.
fn implied(name: &str) -> Vec<u32> {
    name.bytes().map(u32::from).collect()
}

fn row(col: u32, name: &str, v: ObjectSyntax) -> (Oid, ObjectSyntax) {
    let mut oid = vec![col];
    oid.extend(implied(name));
    (oid, v)
}

/// TDomain and TAddress of a UDP address (address octets, then the port).
fn transport(a: &SocketAddr) -> (&'static [u32], Vec<u8>) {
    let (domain, mut bytes) = match a {
        SocketAddr::V4(v4) => (UDP_DOMAIN, v4.ip().octets().to_vec()),
        SocketAddr::V6(v6) => (UDP_IPV6_DOMAIN, v6.ip().octets().to_vec()),
    };
    bytes.extend(a.port().to_be_bytes());
    (domain, bytes)
}

/// One target as the tables show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    /// The row's name (snmpTargetAddrName, snmpTargetParamsName).
    pub name: String,
    pub target: TrapTarget,
    /// snmpTargetParamsSecurityLevel: noAuthNoPriv(1), authNoPriv(2), authPriv(3).
    pub level: i64,
    /// StorageType: readOnly(5) for the configuration file's,
    /// nonVolatile(3) for the element's (kept, and deleted at run time).
    pub storage: i64,
}

/// StorageType nonVolatile(3).
pub const NON_VOLATILE: i64 = 3;

/// The configuration file's targets: `target-n` from 1, in its order,
/// their level from the configured user's keys.
pub fn config_rows(targets: &[TrapTarget], users: &[UsmUser]) -> Vec<TargetRow> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let level = match &t.security {
                TrapSecurity::Community(_) => 1,
                TrapSecurity::Usm { user } => match users.iter().find(|u| &u.name == user) {
                    Some(u) if u.privacy.is_some() => 3,
                    Some(u) if u.auth.is_some() => 2,
                    _ => 1,
                },
            };
            TargetRow {
                name: format!("target-{}", i + 1),
                target: t.clone(),
                level,
                storage: READ_ONLY,
            }
        })
        .collect()
}

/// The three tables' rows (relative to each entry, in OID order): address,
/// params, notify.
pub(super) fn tables(targets: &[TargetRow]) -> [(Oid, Vec<(Oid, ObjectSyntax)>); 3] {
    let (mut addr, mut params, mut notify) = (Vec::new(), Vec::new(), Vec::new());
    for row_of in targets {
        let (name, t) = (&row_of.name, &row_of.target);
        let (domain, address) = transport(&t.address);
        let (tag, timeout, retries) = match t.kind {
            NotifyKind::Trap => ("trap", DEFAULT_TIMEOUT_CS, DEFAULT_RETRIES),
            NotifyKind::Inform { timeout, retries } => (
                "inform",
                (timeout.as_millis() / 10).min(i32::MAX as u128) as i64,
                i64::from(retries.min(255)),
            ),
        };
        addr.push(row(2, name, object_id(domain)));
        addr.push(row(3, name, octets(address)));
        addr.push(row(4, name, int(timeout)));
        addr.push(row(5, name, int(retries)));
        addr.push(row(6, name, octets(tag.as_bytes())));
        addr.push(row(7, name, octets(name.as_bytes())));
        addr.push(row(8, name, int(row_of.storage)));
        addr.push(row(9, name, int(ACTIVE)));
        // mpModel v2c(1) / SNMPv3(3); securityModel v2c(2) / usm(3).
        let (mp, model, security_name) = match &t.security {
            TrapSecurity::Community(_) => (1, 2, String::new()),
            TrapSecurity::Usm { user } => (3, 3, user.clone()),
        };
        params.push(row(2, name, int(mp)));
        params.push(row(3, name, int(model)));
        params.push(row(4, name, octets(security_name.into_bytes())));
        params.push(row(5, name, int(row_of.level)));
        params.push(row(6, name, int(row_of.storage)));
        params.push(row(7, name, int(ACTIVE)));
    }
    // trap(1), inform(2): a row for each kind some target has.
    for (name, kind) in [("inform", 2), ("trap", 1)] {
        let used = targets
            .iter()
            .any(|t| matches!(t.target.kind, NotifyKind::Inform { .. }) == (kind == 2));
        if used {
            notify.push(row(2, name, octets(name.as_bytes())));
            notify.push(row(3, name, int(kind)));
            notify.push(row(4, name, int(READ_ONLY)));
            notify.push(row(5, name, int(ACTIVE)));
        }
    }
    for rows in [&mut addr, &mut params, &mut notify] {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
    }
    [
        (ADDR_ENTRY.to_vec(), addr),
        (PARAMS_ENTRY.to_vec(), params),
        (NOTIFY_ENTRY.to_vec(), notify),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn targets_are_rows_by_name() {
        let targets = [
            TrapTarget {
                address: "192.0.2.7:162".parse().unwrap(),
                security: TrapSecurity::Community("s3cret".into()),
                kind: NotifyKind::Trap,
            },
            TrapTarget {
                address: "[2001:db8::1]:1162".parse().unwrap(),
                security: TrapSecurity::Usm { user: "nms".into() },
                kind: NotifyKind::Inform {
                    timeout: Duration::from_secs(2),
                    retries: 4,
                },
            },
        ];
        let users = [UsmUser {
            name: "nms".into(),
            auth: Some((crate::config::AuthProtocol::Sha256, "authpass1".into())),
            privacy: None,
            group: "g".into(),
        }];
        let [(_, addr), (_, params), (_, notify)] = tables(&config_rows(&targets, &users));
        let get = |rows: &[(Oid, ObjectSyntax)], col: u32, name: &str| {
            let mut oid = vec![col];
            oid.extend(implied(name));
            rows.iter().find(|(o, _)| *o == oid).map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&addr, 3, "target-1"),
            Some(octets(vec![192, 0, 2, 7, 0, 162]))
        );
        assert_eq!(get(&addr, 2, "target-2"), Some(object_id(UDP_IPV6_DOMAIN)));
        assert_eq!(get(&addr, 4, "target-2"), Some(int(200)));
        assert_eq!(get(&addr, 5, "target-2"), Some(int(4)));
        assert_eq!(get(&addr, 6, "target-2"), Some(octets(b"inform".to_vec())));
        // The community is not shown.
        assert_eq!(get(&params, 4, "target-1"), Some(octets(Vec::new())));
        assert!(!format!("{params:?}{addr:?}").contains("s3cret"));
        assert_eq!(get(&params, 4, "target-2"), Some(octets(b"nms".to_vec())));
        assert_eq!(get(&params, 5, "target-2"), Some(int(2)));
        assert_eq!(get(&notify, 3, "trap"), Some(int(1)));
        assert_eq!(get(&notify, 3, "inform"), Some(int(2)));
        assert!(addr.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
