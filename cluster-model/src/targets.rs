//! The element's notification targets (`NotificationTarget` objects):
//! receivers added and removed at run time, replicated like any
//! configuration. The SNMP face sends to them besides the configuration
//! file's targets; in a cluster only the master does, so a receiver gets
//! each notification once.

use std::net::SocketAddr;
use std::time::Duration;

use crate::port::{InformationModel, ManagedObject, ModelError, Query};
use crate::{SCHEMA, Value};

/// Schema names of the target objects (adapters do not spell them).
pub mod names {
    pub const TARGET: &str = "NotificationTarget";
    pub const ADDRESS: &str = "Address";
    pub const KIND: &str = "Kind";
    pub const USER: &str = "User";
    pub const COMMUNITY: &str = "Community";
    pub const TIMEOUT: &str = "Timeout";
    pub const RETRIES: &str = "Retries";
    pub const NODE: &str = "Node";
    pub const NODE_ROLE: &str = "Role";
    /// The ClusterRole of the node that sends.
    pub const MASTER: &str = "master";
    /// The NotifyKind of acknowledged notifications.
    pub const INFORM: &str = "inform";
}

/// One target as the model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The object's own name (its last RDN's value).
    pub name: String,
    pub address: SocketAddr,
    /// Informs (acknowledged, resent) rather than traps.
    pub inform: bool,
    /// The element's user to send as over SNMPv3; `None`: SNMPv2c.
    pub user: Option<String>,
    /// The SNMPv2c community (a secret).
    pub community: String,
    pub timeout: Duration,
    pub retries: u32,
}

/// Every target the model holds, secrets included (for the sender only).
/// A target whose address does not parse (written before it was checked)
/// is left out, with the reason.
pub async fn load(
    model: &dyn InformationModel,
) -> Result<(Vec<Target>, Vec<(String, String)>), ModelError> {
    let Some(class) = SCHEMA.class(names::TARGET) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for o in model.credentials(class).await? {
        let name = o
            .name
            .rdns()
            .last()
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let text = |a: &str| o.get(a).and_then(Value::as_str).unwrap_or("").to_string();
        let number = |a: &str, default: u64| match o.get(a) {
            Some(Value::U32(n)) => u64::from(*n),
            _ => default,
        };
        let address = match crate::secret::udp_address(&text(names::ADDRESS)) {
            Ok(a) => a,
            Err(e) => {
                bad.push((name, e));
                continue;
            }
        };
        let user = Some(text(names::USER)).filter(|u| !u.is_empty());
        out.push(Target {
            inform: o.text(names::KIND).as_deref() == Some(names::INFORM),
            address,
            user,
            community: text(names::COMMUNITY),
            timeout: Duration::from_millis(number(names::TIMEOUT, 15_000).max(1)),
            retries: number(names::RETRIES, 3).min(255) as u32,
            name,
        });
    }
    Ok((out, bad))
}

/// Whether the node whose SNMP engine ID is `engine_hex` sends to the
/// element's targets: it is the only node, or the master (a node whose
/// engine is not shown yet waits until it is).
pub async fn sends_here(
    model: &dyn InformationModel,
    engine_hex: &str,
) -> Result<bool, ModelError> {
    let nodes = model
        .query(&Query {
            classes: vec![names::NODE.to_string()],
            ..Query::default()
        })
        .await?;
    let engine_of = |o: &ManagedObject| {
        o.get(crate::users::names::SNMP_ENGINE_ID)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if nodes.len() <= 1 {
        return Ok(true);
    }
    Ok(nodes
        .iter()
        .find(|o| engine_of(o).eq_ignore_ascii_case(engine_hex))
        .is_some_and(|me| me.text(names::NODE_ROLE).as_deref() == Some(names::MASTER)))
}
