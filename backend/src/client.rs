//! The client library for HA-aware components (see [`crate::protocol`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), halyard_backend::client::ClientError> {
//! use halyard_backend::client::{HaClient, Notice};
//! let mut ha = HaClient::connect_from_env().await?;
//! loop {
//!     match ha.next().await? {
//!         Notice::Assigned { state, .. } => ha.ack(&state).await?,
//!         Notice::Checkpoint { key, value, .. } => println!("{key}={value}"),
//!         _ => {}
//!     }
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::protocol::{ErrorCode, ToAgent, ToComponent, VERSION, encode};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HALYARD_SOCKET and HALYARD_COMPONENT must be set by the agent")]
    NoEnvironment,
    #[error("agent connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the agent closed the connection")]
    Closed,
    #[error("bad message from the agent: {0}")]
    Protocol(String),
    #[error("the agent refused: {code:?}: {message}")]
    Refused { code: ErrorCode, message: String },
}

/// What the agent tells the component.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Assigned {
        state: String,
        active: Vec<String>,
        standby: Vec<String>,
        /// A timed assignment: the state holds from this instant (unix ns).
        /// Acknowledge at once; [`HaClient::roles`] tells which state is in
        /// force at any instant.
        at: Option<u64>,
    },
    /// Full checkpoint state (sent to a new standby).
    State {
        seq: u64,
        entries: BTreeMap<String, String>,
    },
    /// One checkpoint increment (to a standby).
    Checkpoint {
        seq: u64,
        key: String,
        value: String,
    },
}

/// A connection to the agent. Reading runs in its own task, so
/// [`HaClient::next`] is cancel-safe and can sit in a `select!`.
#[derive(Debug)]
pub struct HaClient {
    incoming: mpsc::Receiver<Result<ToComponent, String>>,
    writer: OwnedWriteHalf,
    pub component: String,
    pub incarnation: u32,
    /// Replies that arrived while waiting for something else.
    pending: std::collections::VecDeque<ToComponent>,
    roles: tokio::sync::watch::Receiver<Timeline>,
}

/// The roles a component was assigned over time, including one scheduled
/// for a later instant (a timed assignment). Instants are unix ns.
///
/// With a lease (protocol version 2), a primary assignment is in force only
/// while the node's lease holds: past the lease's end, and until a renewal
/// arrives, the state is `quiesced` (the component keeps its state but must
/// not act as primary). [`Timeline::at`] and [`Timeline::render`] give the
/// state in force, lapses included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// (from, state) as assigned, oldest first.
    changes: Vec<(u64, String)>,
    /// The lease's end (unix ns), once one was received.
    lease: Option<u64>,
    /// Past lapses: [from, to) with no lease in force.
    lapses: Vec<(u64, u64)>,
}

/// What a primary is while its node's lease has lapsed.
pub const QUIESCED: &str = "quiesced";

impl Timeline {
    /// Longest history kept: enough for an observer a moment behind.
    const KEPT: usize = 8;

    /// Records an assignment received at `now`: it holds from `at` (if that
    /// is later) and replaces anything scheduled after its start.
    pub fn assign(&mut self, state: &str, at: Option<u64>, now: u64) {
        let from = at.map_or(now, |at| at.max(now));
        self.changes.retain(|(t, _)| *t < from);
        self.changes.push((from, state.to_string()));
        let extra = self.changes.len().saturating_sub(Self::KEPT);
        self.changes.drain(..extra);
        if let Some((oldest, _)) = self.changes.first() {
            self.lapses.retain(|(_, to)| to > oldest);
        }
    }

    /// Records a lease renewal received at `now`: the node holds its lease
    /// until `until` (unix ns). Leases only grow; a lease that had run out
    /// before `now` leaves a lapse in the history.
    pub fn renew(&mut self, until: u64, now: u64) {
        if until <= self.lease.unwrap_or(0) {
            return;
        }
        if let Some(end) = self.lease.filter(|e| *e < now.min(until)) {
            self.lapses.push((end, now.min(until)));
        }
        self.lease = Some(until);
    }

    /// The state in force at instant `t`.
    pub fn at(&self, t: u64) -> Option<&str> {
        let assigned = self
            .changes
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map(|(_, s)| s.as_str())?;
        let lapsed = self.lease.is_some_and(|e| t >= e)
            || self
                .lapses
                .iter()
                .any(|(from, to)| (*from..*to).contains(&t));
        Some(if assigned == "primary" && lapsed {
            QUIESCED
        } else {
            assigned
        })
    }

    /// The state in force now.
    pub fn now(&self) -> Option<&str> {
        self.at(crate::protocol::unix_ns())
    }

    /// The next scheduled change after `t`, if any.
    pub fn next_after(&self, t: u64) -> Option<u64> {
        self.changes.iter().map(|(f, _)| *f).find(|f| *f > t)
    }

    /// The changes, oldest first: (from, state).
    pub fn changes(&self) -> &[(u64, String)] {
        &self.changes
    }

    /// The latest change: (from, state).
    pub fn last(&self) -> Option<(u64, &str)> {
        self.changes.last().map(|(f, s)| (*f, s.as_str()))
    }

    /// Reads what [`Timeline::render`] wrote (pairs it cannot read are
    /// skipped): the states in force, lapses included.
    pub fn parse(text: &str) -> Timeline {
        Timeline {
            changes: text
                .split_whitespace()
                .filter_map(|c| c.split_once(':'))
                .filter_map(|(f, s)| Some((f.parse().ok()?, s.to_string())))
                .collect(),
            ..Timeline::default()
        }
    }

    /// The timeline of a counterd query answer (its `roles …` line).
    pub fn from_query_answer(answer: &str) -> Option<Timeline> {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("roles"))
            .map(Timeline::parse)
    }

    /// `from:state` pairs of the states in force (a lapsed lease shows as
    /// `quiesced` from its end), oldest first, space-separated (for
    /// observers).
    pub fn render(&self) -> String {
        let mut edges: Vec<u64> = self.changes.iter().map(|(f, _)| *f).collect();
        edges.extend(self.lapses.iter().flat_map(|(f, t)| [*f, *t]));
        edges.extend(self.lease);
        edges.sort_unstable();
        edges.dedup();
        let mut out: Vec<String> = Vec::new();
        let mut last: Option<&str> = None;
        for t in edges {
            let Some(s) = self.at(t) else { continue };
            if last != Some(s) {
                out.push(format!("{t}:{s}"));
                last = Some(s);
            }
        }
        out.join(" ")
    }
}

impl HaClient {
    /// Connects with the socket and name the agent put in the environment.
    pub async fn connect_from_env() -> Result<Self, ClientError> {
        let socket = std::env::var("HALYARD_SOCKET").map_err(|_| ClientError::NoEnvironment)?;
        let name = std::env::var("HALYARD_COMPONENT").map_err(|_| ClientError::NoEnvironment)?;
        Self::connect(Path::new(&socket), &name).await
    }

    pub async fn connect(socket: &Path, component: &str) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(socket).await?;
        let (r, w) = stream.into_split();
        let (tx, incoming) = mpsc::channel(256);
        let (role_tx, roles) = tokio::sync::watch::channel(Timeline::default());
        // Ends when the agent closes the socket or the client is dropped.
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg = serde_json::from_str::<ToComponent>(&line).map_err(|e| e.to_string());
                if let Ok(ToComponent::Assign { state, at, .. }) = &msg {
                    let now = crate::protocol::unix_ns();
                    role_tx.send_modify(|t| t.assign(state, *at, now));
                }
                // Leases are the library's: the lapse is in the timeline.
                if let Ok(ToComponent::Lease { until }) = &msg {
                    let (mono, now) = (crate::protocol::mono_ns(), crate::protocol::unix_ns());
                    let until = (now + until).saturating_sub(mono);
                    role_tx.send_modify(|t| t.renew(until, now));
                    continue;
                }
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let mut c = HaClient {
            incoming,
            writer: w,
            component: component.to_string(),
            incarnation: 0,
            pending: Default::default(),
            roles,
        };
        c.send(&ToAgent::Register {
            version: VERSION,
            component: component.to_string(),
            pid: std::process::id(),
        })
        .await?;
        match c.read().await? {
            ToComponent::Registered { incarnation } => c.incarnation = incarnation,
            ToComponent::Error { code, message } => {
                return Err(ClientError::Refused { code, message });
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected registered, got {other:?}"
                )));
            }
        }
        Ok(c)
    }

    async fn send(&mut self, msg: &ToAgent) -> Result<(), ClientError> {
        self.writer.write_all(encode(msg).as_bytes()).await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<ToComponent, ClientError> {
        match self.incoming.recv().await {
            None => Err(ClientError::Closed),
            Some(m) => m.map_err(ClientError::Protocol),
        }
    }

    /// The roles the agent assigned, as soon as they arrive (even while the
    /// component waits for a checkpoint write): a demotion is known at
    /// once, and a timed one takes effect at its instant.
    pub fn roles(&self) -> tokio::sync::watch::Receiver<Timeline> {
        self.roles.clone()
    }

    /// The next notice from the agent.
    pub async fn next(&mut self) -> Result<Notice, ClientError> {
        loop {
            let msg = match self.pending.pop_front() {
                Some(m) => m,
                None => self.read().await?,
            };
            match msg {
                ToComponent::Assign {
                    state,
                    active,
                    standby,
                    at,
                } => {
                    return Ok(Notice::Assigned {
                        state,
                        active,
                        standby,
                        at,
                    });
                }
                ToComponent::CheckpointState { seq, entries } => {
                    return Ok(Notice::State { seq, entries });
                }
                ToComponent::Checkpoint { seq, key, value } => {
                    return Ok(Notice::Checkpoint { seq, key, value });
                }
                ToComponent::Error { code, message } => {
                    return Err(ClientError::Refused { code, message });
                }
                ToComponent::Registered { .. }
                | ToComponent::CheckpointWritten { .. }
                | ToComponent::Lease { .. } => {}
            }
        }
    }

    pub async fn ack(&mut self, state: &str) -> Result<(), ClientError> {
        self.send(&ToAgent::Ack {
            state: state.to_string(),
        })
        .await
    }

    pub async fn ack_checkpoint(&mut self, seq: u64) -> Result<(), ClientError> {
        self.send(&ToAgent::CheckpointAck { seq }).await
    }

    /// Writes one checkpoint entry; returns once the agent stored it (and,
    /// for synchronous components, every standby holds it).
    pub async fn checkpoint(&mut self, key: &str, value: &str) -> Result<u64, ClientError> {
        self.send(&ToAgent::CheckpointWrite {
            key: key.to_string(),
            value: value.to_string(),
        })
        .await?;
        loop {
            match self.read().await? {
                ToComponent::CheckpointWritten { seq } => return Ok(seq),
                ToComponent::Error { code, message } => {
                    return Err(ClientError::Refused { code, message });
                }
                other => self.pending.push_back(other),
            }
        }
    }

    /// Reads the whole checkpoint state of the component's service instance.
    pub async fn read_checkpoint(
        &mut self,
    ) -> Result<(u64, BTreeMap<String, String>), ClientError> {
        self.send(&ToAgent::CheckpointRead).await?;
        loop {
            match self.read().await? {
                ToComponent::CheckpointState { seq, entries } => return Ok((seq, entries)),
                ToComponent::Error { code, message } => {
                    return Err(ClientError::Refused { code, message });
                }
                other => self.pending.push_back(other),
            }
        }
    }

    pub async fn health(&mut self, ok: bool, detail: &str) -> Result<(), ClientError> {
        self.send(&ToAgent::Health {
            ok,
            detail: detail.to_string(),
        })
        .await
    }

    pub async fn go_offline(&mut self, reason: &str) -> Result<(), ClientError> {
        self.send(&ToAgent::Offline {
            reason: reason.to_string(),
        })
        .await
    }

    pub async fn go_online(&mut self) -> Result<(), ClientError> {
        self.send(&ToAgent::Online).await
    }
}

#[cfg(test)]
mod tests {
    use super::Timeline;

    #[test]
    fn a_timed_assignment_takes_effect_at_its_instant() {
        let mut t = Timeline::default();
        t.assign("secondary", None, 100);
        t.assign("primary", Some(500), 200);
        assert_eq!(t.at(99), None);
        assert_eq!(t.at(100), Some("secondary"));
        assert_eq!(t.at(499), Some("secondary"));
        assert_eq!(t.at(500), Some("primary"));
        assert_eq!(t.next_after(200), Some(500));
        // A late one holds from when it arrived, not before.
        t.assign("secondary", Some(550), 700);
        assert_eq!(t.at(650), Some("primary"));
        assert_eq!(t.at(700), Some("secondary"));
        // An immediate assignment cancels what was scheduled after it.
        t.assign("primary", Some(2000), 800);
        t.assign("off-line", None, 900);
        assert_eq!(t.at(3000), Some("off-line"));
        assert_eq!(t.next_after(900), None);
        assert_eq!(
            t.render(),
            "100:secondary 500:primary 700:secondary 900:off-line"
        );
        assert_eq!(Timeline::parse(&t.render()), t);
        let answer = format!("41 off-line\nroles {}\n", t.render());
        assert_eq!(Timeline::from_query_answer(&answer), Some(t.clone()));
        assert_eq!(t.last(), Some((900, "off-line")));
    }

    #[test]
    fn a_primary_past_its_lease_is_quiesced_until_a_renewal() {
        let mut t = Timeline::default();
        t.assign("primary", None, 100);
        // No lease yet (a single node): primary for good.
        assert_eq!(t.at(10_000), Some("primary"));
        t.renew(300, 150);
        assert_eq!(t.at(299), Some("primary"));
        assert_eq!(t.at(300), Some(super::QUIESCED));
        // What an observer reads at 400: quiesced from the lease's end.
        let seen = Timeline::parse(&t.render());
        assert_eq!(seen.at(299), Some("primary"));
        assert_eq!(seen.at(350), Some(super::QUIESCED));
        // A stale renewal (the agent was stalled) changes nothing.
        t.renew(250, 400);
        assert_eq!(t.at(400), Some(super::QUIESCED));
        // A fresh one at 500: quiesced from 300 to 500, then primary.
        t.renew(900, 500);
        assert_eq!(t.at(450), Some(super::QUIESCED));
        assert_eq!(t.at(500), Some("primary"));
        assert_eq!(
            t.render(),
            format!(
                "100:primary 300:{q} 500:primary 900:{q}",
                q = super::QUIESCED
            )
        );
        // Other states are not the lease's business.
        t.assign("secondary", None, 600);
        assert_eq!(t.at(5_000), Some("secondary"));
    }
}
