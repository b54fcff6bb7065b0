//! The SNMP face: an SNMPv1/v2c/v3 agent over the information-model port.
//!
//! - [`config`]: what the agent is told (listen addresses, communities,
//!   USM users and views, notification targets, where engine state lives).
//! - [`agent`]: sockets, message processing (RFC 3412), command responder
//!   (RFC 3416) and the per-request task with its deadline.
//! - [`mib`]: the managed objects, served from the schema metadata only:
//!   the generated HALYARD-CLUSTER-MIB tables, SNMPv2-MIB system and snmp
//!   groups, SNMP-FRAMEWORK-MIB engine objects, USM statistics, ENTITY-MIB
//!   and ENTITY-STATE-MIB.
//! - [`usm`]: RFC 3414 / RFC 7860 / RFC 3826 keys, digests and privacy.
//! - [`status`]: the one table mapping model errors to SNMP error-status.
//! - [`notify`]: SNMPv2-Trap and InformRequest senders.
//!
//! Wiring it in (the agent does this with its config file and data dir):
//!
//! ```no_run
//! # async fn wire(model: std::sync::Arc<dyn halyard_cluster_model::port::InformationModel>)
//! # -> Result<(), halyard_snmp::SnmpError> {
//! use halyard_snmp::*;
//! let config = SnmpConfig {
//!     listen: vec!["0.0.0.0:1161".parse().unwrap(), "[::]:1161".parse().unwrap()],
//!     communities: vec![Community::read_only("public")],
//!     users: vec![UsmUser {
//!         name: "nms".into(),
//!         auth: Some((AuthProtocol::Sha256, "auth-secret".into())),
//!         privacy: Some((PrivProtocol::Aes128, "priv-secret".into())),
//!         group: "operators".into(),
//!     }],
//!     groups: vec![Group {
//!         name: "operators".into(),
//!         read_view: Some("all".into()),
//!         write_view: Some("all".into()),
//!         min_level: SecurityLevel::AuthPriv,
//!         write_min_level: SecurityLevel::AuthPriv,
//!     }],
//!     trap_targets: vec![TrapTarget {
//!         address: "192.0.2.10:162".parse().unwrap(),
//!         security: TrapSecurity::Community("public".into()),
//!         kind: NotifyKind::Trap,
//!     }],
//!     engine_state: Some("/var/lib/halyard/snmp-engine".into()),
//!     ..SnmpConfig::default()
//! };
//! let agent = SnmpAgent::bind(config, model).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! // Every task the agent spawned ends when `stop` is sent or dropped.
//! agent.run(async { let _ = stopped.await; }).await
//! # }
//! ```

pub mod agent;
pub mod codec;
pub mod config;
pub mod engine;
pub mod error;
pub mod mib;
pub mod notify;
pub mod oid;
pub mod status;
pub mod usm;

pub use agent::SnmpAgent;
pub use config::{
    AuthProtocol, Community, Group, NotifyKind, PrivProtocol, SecurityLevel, SnmpConfig,
    TrapSecurity, TrapTarget, UsmUser, View,
};
pub use error::SnmpError;
