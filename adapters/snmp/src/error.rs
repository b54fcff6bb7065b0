//! Typed errors of the SNMP face.

use std::net::SocketAddr;

/// Why the agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no listen address configured")]
    NoListenAddress,
    #[error("engine state file {path}: {source}")]
    EngineState {
        path: String,
        source: std::io::Error,
    },
    #[error("engine state file {path} is corrupt: {reason}")]
    EngineStateCorrupt { path: String, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("agent task failed: {0}")]
    Task(String),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}
