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
