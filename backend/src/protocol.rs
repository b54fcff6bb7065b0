//! The HA-aware component protocol, version 2 (version 1 is still served:
//! it has no `lease`).
//!
//! A component connects to the agent's Unix socket (path in the
//! `HALYARD_SOCKET` environment variable) and exchanges JSON objects, one
//! per line (at most [`MAX_LINE`] bytes). Every message has an `op`.
//!
//! Component -> agent:
//! - `{"op":"register","version":2,"component":"counterd-a","pid":123}` —
//!   first message; the agent answers `registered` with the incarnation.
//! - `{"op":"ack","state":"primary"}` — acknowledges an `assign`.
//! - `{"op":"checkpoint-write","key":"count","value":"41"}` — primary only;
//!   answered by `checkpoint-written` once stored (and, for a synchronous
//!   component, once every standby acknowledged it).
//! - `{"op":"checkpoint-read"}` — answered by `checkpoint-state`.
//! - `{"op":"checkpoint-ack","seq":7}` — a standby holds records up to 7.
//! - `{"op":"health","ok":false,"detail":"queue stuck"}` — a health report.
//! - `{"op":"offline","reason":"diagnostics"}` / `{"op":"online"}`.
//!
//! Agent -> component:
//! - `{"op":"registered","incarnation":3}`
//! - `{"op":"assign","state":"secondary","active":[],"standby":["si=1"]}`
//! - `{"op":"assign","state":"primary","active":["si=1"],"standby":[],"at":1764201600000000000}`
//!   — a timed assignment (planned 2N switch-over): the state holds from
//!   that instant (unix ns) on; acknowledge at once (a promise). Sent only
//!   to components configured to take them.
//! - `{"op":"checkpoint-state","seq":7,"entries":{"count":"41"}}` — full state.
//! - `{"op":"checkpoint","seq":8,"key":"count","value":"42"}` — an increment
//!   pushed to a standby.
//! - `{"op":"checkpoint-written","seq":8}`
//! - `{"op":"error","code":"out-of-order","message":"..."}` — a typed error;
//!   the session goes on unless the code is `fatal`.
//! - `{"op":"lease","until":81234567890123}` — (version 2) the node holds
//!   its majority lease until this instant of the host's CLOCK_MONOTONIC
//!   (ns), renewed every heartbeat. A primary must not act as primary past
//!   it: the agent may be stalled, and the majority promotes the standby
//!   once the node's failure is detected, which is always later. The
//!   client library quiesces its component's primary role at that instant
//!   by itself ([`crate::client::Timeline`]). Not sent on a single node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 2;
/// The oldest version still served.
pub const OLDEST_VERSION: u32 = 1;
/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ToAgent {
    Register {
        version: u32,
        component: String,
        #[serde(default)]
        pid: u32,
    },
    Ack {
        state: String,
    },
    CheckpointWrite {
        key: String,
        value: String,
    },
    CheckpointRead,
    CheckpointAck {
        seq: u64,
    },
    Health {
        ok: bool,
        #[serde(default)]
        detail: String,
    },
    Offline {
        #[serde(default)]
        reason: String,
    },
    Online,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ToComponent {
    Registered {
        incarnation: u32,
    },
    Assign {
        state: String,
        active: Vec<String>,
        standby: Vec<String>,
        /// Take the state at this instant (unix time, ns), not at once; the
        /// `ack` is then a promise to. Sent only to components configured
        /// for timed assignments (a planned 2N switch-over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    CheckpointState {
        seq: u64,
        entries: BTreeMap<String, String>,
    },
    Checkpoint {
        seq: u64,
        key: String,
        value: String,
    },
    CheckpointWritten {
        seq: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// The node's majority lease runs until this CLOCK_MONOTONIC instant (ns).
    Lease {
        until: u64,
    },
}

/// Typed protocol errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown op, or missing fields.
    Malformed,
    /// Too long a line.
    TooLong,
    /// A message the session's state does not allow (e.g. before register).
    OutOfOrder,
    /// Unknown component, or one that is not HA-aware.
    UnknownComponent,
    /// Unsupported protocol version.
    Version,
    /// Refused by CRIM (e.g. checkpoint write from a non-primary).
    Refused,
    /// The session is closed after this.
    Fatal,
}

/// Now, in unix nanoseconds: the clock of timed assignments. A timed 2N
/// switch-over is exact across nodes only as far as their clocks agree.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The host's CLOCK_MONOTONIC in ns: the one clock every process of a host
/// shares that never jumps (lease instants between the agent and its
/// components).
pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// Encodes a message as one line.
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let m: ToAgent =
            serde_json::from_str(r#"{"op":"register","version":1,"component":"c"}"#).unwrap();
        assert_eq!(
            m,
            ToAgent::Register {
                version: 1,
                component: "c".into(),
                pid: 0
            }
        );
        assert_eq!(
            encode(&ToComponent::Assign {
                state: "primary".into(),
                active: vec!["si=1".into()],
                standby: vec![],
                at: None,
            }),
            "{\"op\":\"assign\",\"state\":\"primary\",\"active\":[\"si=1\"],\"standby\":[]}\n"
        );
        assert!(serde_json::from_str::<ToAgent>(r#"{"op":"fly"}"#).is_err());
    }
}
