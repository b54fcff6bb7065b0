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
    roles: tokio::sync::watch::Receiver<Option<String>>,
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
        let (role_tx, roles) = tokio::sync::watch::channel(None);
        // Ends when the agent closes the socket or the client is dropped.
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg = serde_json::from_str::<ToComponent>(&line).map_err(|e| e.to_string());
                if let Ok(ToComponent::Assign { state, .. }) = &msg {
                    role_tx.send_replace(Some(state.clone()));
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

    /// The latest role the agent assigned, as soon as it arrives (even
    /// while the component waits for a checkpoint write): a demotion is
    /// known at once.
    pub fn roles(&self) -> tokio::sync::watch::Receiver<Option<String>> {
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
                } => {
                    return Ok(Notice::Assigned {
                        state,
                        active,
                        standby,
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
                ToComponent::Registered { .. } | ToComponent::CheckpointWritten { .. } => {}
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
