//! HA-aware components' sessions on the core's Unix socket: registration,
//! assignments, checkpoints, and their roles.

use super::*;

use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::{AvailabilityState, CheckpointMode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cec::{ErrorKind, ErrorReport};
use crate::checkpoint::{CheckpointError, CheckpointPush, CheckpointService};
use crate::crim::Input;
use crate::lane::{Lane, Supersedes};
use crate::protocol::{ErrorCode, MAX_LINE, OLDEST_VERSION, ToAgent, ToComponent, VERSION, encode};

use crate::protocol::unix_ns;

/// The role a session's component holds, for its checkpoint requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub(in crate::core) struct Role {
    pub(in crate::core) state: Option<AvailabilityState>,
    pub(in crate::core) active: Vec<String>,
    pub(in crate::core) standby: Vec<String>,
    /// A timed assignment not yet due: until this instant (unix ns) the
    /// component keeps the state and active SIs it had.
    pub(in crate::core) until: Option<(u64, Option<AvailabilityState>, Vec<String>)>,
}

impl Role {
    /// The state and active SIs in force at `now` (unix ns).
    pub(in crate::core) fn at_time(&self, now: u64) -> (Option<AvailabilityState>, &[String]) {
        match &self.until {
            Some((at, state, active)) if now < *at => (*state, active),
            _ => (self.state, &self.active),
        }
    }
}

#[derive(Debug, Clone)]
pub(in crate::core) struct SessionHandle {
    pub(in crate::core) id: u64,
    /// The incarnation the session registered as (set by the core).
    pub(in crate::core) incarnation: u32,
    /// What the core tells the component (registration, assignments,
    /// errors): never dropped, never waited on.
    pub(in crate::core) control: Arc<Lane<ToComponent>>,
    pub(in crate::core) push: mpsc::Sender<CheckpointPush>,
    pub(in crate::core) role: Arc<watch::Sender<Role>>,
}

/// The core's messages to an HA-aware component (registration,
/// assignments, errors) ride a [`Lane`]: a new assignment makes a pending
/// one moot (the component needs the latest role and acknowledges what it
/// gets). The session's writer serves the lane before checkpoint traffic,
/// and a write that cannot complete within the session's deadline ends the
/// session, so the component is handled as failed rather than left in an
/// old role.
impl Supersedes for ToComponent {
    fn supersedes(&self, earlier: &Self) -> bool {
        matches!(
            (self, earlier),
            (ToComponent::Assign { .. }, ToComponent::Assign { .. })
        )
    }
}

impl CoreState {
    pub(in crate::core) fn session_open(
        &mut self,
        component: &str,
        _pid: u32,
        session: SessionHandle,
    ) -> Result<u32, (ErrorCode, String)> {
        match self.specs.get(component).map(|s| &s.kind) {
            Some(Kind::HaAware { .. }) => {}
            Some(_) => {
                return Err((
                    ErrorCode::UnknownComponent,
                    format!("{component} is not an HA-aware component"),
                ));
            }
            None => {
                return Err((
                    ErrorCode::UnknownComponent,
                    format!("no component named {component}"),
                ));
            }
        }
        let incarnation = self.incarnations[component];
        // On the control lane, so it precedes every assignment.
        session
            .control
            .push(ToComponent::Registered { incarnation });
        let mut session = session;
        session.incarnation = incarnation;
        self.sessions.insert(component.to_string(), session);
        Ok(incarnation)
    }

    pub(in crate::core) async fn session_msg(&mut self, component: &str, id: u64, msg: ToAgent) {
        if self.sessions.get(component).is_none_or(|s| s.id != id) {
            return;
        }
        let r = match msg {
            ToAgent::Ack { state } => match state.parse::<AvailabilityState>() {
                Ok(state) => {
                    self.input(Input::Acked {
                        component: component.to_string(),
                        state,
                    })
                    .await
                }
                Err(e) => {
                    self.session_error(component, ErrorCode::Malformed, e);
                    return;
                }
            },
            ToAgent::Health { ok: false, detail } => {
                let inc = self.incarnations[component];
                let d = self.cec.report(
                    ErrorReport {
                        component: component.to_string(),
                        incarnation: inc,
                        kind: ErrorKind::HealthReport,
                        detail,
                    },
                    Instant::now(),
                );
                self.verdict(d).await;
                return;
            }
            // A healthy report is no news; the watchdog follows the health
            // monitor's own heartbeat (health::run_monitor).
            ToAgent::Health { ok: true, .. } => return,
            ToAgent::Offline { reason } => {
                self.input(Input::RequestOffline {
                    component: component.to_string(),
                    reason,
                })
                .await
            }
            ToAgent::Online => {
                self.input(Input::RequestOnline {
                    component: component.to_string(),
                })
                .await
            }
            other => {
                self.session_error(
                    component,
                    ErrorCode::OutOfOrder,
                    format!("unexpected {other:?}"),
                );
                return;
            }
        };
        if let Err(e) = r {
            self.session_error(component, ErrorCode::Refused, e.to_string());
        }
    }

    pub(in crate::core) fn session_error(&self, component: &str, code: ErrorCode, message: String) {
        if let Some(s) = self.sessions.get(component) {
            s.control.push(ToComponent::Error { code, message });
        }
    }
}

/// Accepts HA-aware sessions on the Unix socket.
pub(in crate::core) async fn accept_sessions(
    listener: UnixListener,
    core: mpsc::Sender<Msg>,
    checkpoints: CheckpointService,
    deadline: Duration,
    modes: Modes,
    lease: watch::Receiver<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let id = next_id;
                next_id += 1;
                sessions.spawn(session(stream, id, core.clone(), checkpoints.clone(), deadline, modes.clone(), lease.clone()));
            }
            Some(r) = sessions.join_next(), if !sessions.is_empty() => {
                crate::tasks::note_panic(r, "an HA-aware component's session");
            }
            _ = stop.changed() => break,
        }
    }
    sessions.abort_all();
}

/// One HA-aware component's connection.
pub(in crate::core) async fn session(
    stream: UnixStream,
    id: u64,
    core: mpsc::Sender<Msg>,
    checkpoints: CheckpointService,
    deadline: Duration,
    modes: Modes,
    mut lease: watch::Receiver<Option<u64>>,
) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let (out_tx, mut out_rx) = mpsc::channel::<ToComponent>(256);
    let (push_tx, mut push_rx) = mpsc::channel::<CheckpointPush>(1024);
    let role = Arc::new(watch::channel(Role::default()).0);
    let control = Arc::new(Lane::<ToComponent>::default());
    // The writer: the core's control lane first, then the data queue
    // (checkpoints, replies). A component that stops reading for longer
    // than the deadline loses its session.
    let lane = control.clone();
    let mut writer = tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                biased;
                Some(m) = lane.next() => m,
                m = out_rx.recv() => match m {
                    Some(m) => m,
                    // The session is over: what the core said last still goes.
                    None => match lane.pop() { Some(m) => m, None => break },
                },
            };
            match tokio::time::timeout(deadline, w.write_all(encode(&m).as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis() as u64,
                        "HA-aware component has not read its socket within the deadline: its session ends"
                    );
                    break;
                }
            }
        }
    });
    let mut writer_done = false;
    // Registered at version 2 or later: the node's lease is passed on.
    let mut leased = false;
    let mut component: Option<String> = None;
    let mut line = Vec::new();
    loop {
        // A push may interrupt a partly read line: what was read stays in
        // `line` (read_line_limited only appends), so nothing is lost.
        let read = tokio::select! {
            r = read_line_limited(&mut reader, &mut line) => r,
            // The writer gave up (a dead or stalled reader): so does the session.
            _ = &mut writer, if !writer_done => { writer_done = true; break }
            // The newest lease only: one lost to a full queue is replaced
            // by the next heartbeat's.
            Ok(()) = lease.changed(), if leased => {
                if let Some(until) = *lease.borrow_and_update() {
                    let _ = out_tx.try_send(ToComponent::Lease { until });
                }
                continue;
            }
            Some(push) = push_rx.recv() => {
                let m = match push {
                    CheckpointPush::Full { seq, entries } => ToComponent::CheckpointState { seq, entries },
                    CheckpointPush::Increment { seq, key, value } => ToComponent::Checkpoint { seq, key, value },
                };
                let _ = out_tx.send(m).await;
                continue;
            }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(LineError::TooLong) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::Fatal,
                        message: format!("line longer than {MAX_LINE} bytes"),
                    })
                    .await;
                break;
            }
            Err(LineError::Io) => break,
        }
        let parsed = serde_json::from_slice::<ToAgent>(&line);
        line.clear();
        let msg: ToAgent = match parsed {
            Ok(m) => m,
            Err(e) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::Malformed,
                        message: e.to_string(),
                    })
                    .await;
                continue;
            }
        };
        match (&component, msg) {
            (
                None,
                ToAgent::Register {
                    version,
                    component: name,
                    pid,
                },
            ) => {
                if !(OLDEST_VERSION..=VERSION).contains(&version) {
                    let _ = out_tx.send(ToComponent::Error { code: ErrorCode::Version, message: format!("protocol version {version} unsupported; this agent speaks {OLDEST_VERSION} to {VERSION}") }).await;
                    continue;
                }
                let (reply_tx, reply_rx) = oneshot::channel();
                let handle = SessionHandle {
                    id,
                    incarnation: 0,
                    control: control.clone(),
                    push: push_tx.clone(),
                    role: role.clone(),
                };
                if core
                    .send(Msg::SessionOpen {
                        component: name.clone(),
                        pid,
                        session: handle,
                        reply: reply_tx,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                match reply_rx.await {
                    Ok(Ok(_incarnation)) => {
                        component = Some(name);
                        leased = version >= 2;
                        // The lease in force now, right after the registration.
                        if let Some(until) = leased.then(|| *lease.borrow_and_update()).flatten() {
                            let _ = out_tx.try_send(ToComponent::Lease { until });
                        }
                    }
                    Ok(Err((code, message))) => {
                        let _ = out_tx.send(ToComponent::Error { code, message }).await;
                    }
                    Err(_) => break,
                }
            }
            (None, other) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::OutOfOrder,
                        message: format!("register first (got {})", op_name(&other)),
                    })
                    .await;
            }
            (Some(_), ToAgent::Register { .. }) => {
                let _ = out_tx
                    .send(ToComponent::Error {
                        code: ErrorCode::OutOfOrder,
                        message: "already registered".into(),
                    })
                    .await;
            }
            (Some(name), ToAgent::CheckpointWrite { key, value }) => {
                let r = role.borrow().clone();
                // A timed step-down: primary until its instant.
                let (state, active) = r.at_time(unix_ns());
                let Some(si) = active
                    .first()
                    .cloned()
                    .filter(|_| state == Some(AvailabilityState::Primary))
                else {
                    let _ = out_tx
                        .send(ToComponent::Error {
                            code: ErrorCode::Refused,
                            message: "only a primary writes checkpoints".into(),
                        })
                        .await;
                    continue;
                };
                let sync =
                    modes.read().expect("modes").get(name) == Some(&CheckpointMode::Synchronous);
                let seq = match checkpoints
                    .write(name, &si, &key, &value, sync, deadline)
                    .await
                {
                    Ok(seq) => seq,
                    Err(CheckpointError::SyncTimeout(e)) => {
                        tracing::warn!(component = %name, error = %e, "synchronous checkpoint incomplete");
                        e.seq
                    }
                    // Not held by the cluster, or another primary took the
                    // instance over: the component must not count it.
                    Err(
                        e @ (CheckpointError::NotCommitted(_) | CheckpointError::Superseded(_)),
                    ) => {
                        let _ = out_tx
                            .send(ToComponent::Error {
                                code: ErrorCode::Refused,
                                message: e.to_string(),
                            })
                            .await;
                        continue;
                    }
                };
                let _ = out_tx.send(ToComponent::CheckpointWritten { seq }).await;
            }
            (Some(name), ToAgent::CheckpointRead) => {
                let r = role.borrow().clone();
                let (state, active) = r.at_time(unix_ns());
                // A primary reads to take the instance over: the read fences
                // it (only this component writes from here) and holds every
                // write accepted before, cluster-wide.
                let taking = active
                    .first()
                    .cloned()
                    .filter(|_| state == Some(AvailabilityState::Primary));
                let read = match taking {
                    Some(si) => checkpoints.take_over(name, &si, deadline).await,
                    None => {
                        let si = r
                            .active
                            .first()
                            .or(r.standby.first())
                            .cloned()
                            .unwrap_or_default();
                        Ok(checkpoints.read(&si))
                    }
                };
                let reply = match read {
                    Ok((seq, entries)) => ToComponent::CheckpointState { seq, entries },
                    Err(e) => ToComponent::Error {
                        code: ErrorCode::Refused,
                        message: e.to_string(),
                    },
                };
                let _ = out_tx.send(reply).await;
            }
            (Some(name), ToAgent::CheckpointAck { seq }) => {
                for si in role.borrow().standby.iter() {
                    checkpoints.acknowledge(si, name, seq);
                }
            }
            (Some(name), msg) => {
                if core
                    .send(Msg::FromSession {
                        component: name.clone(),
                        id,
                        msg,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    if let Some(name) = component {
        let _ = core
            .send(Msg::SessionClosed {
                component: name,
                id,
            })
            .await;
    }
    drop(out_tx);
    if !writer_done {
        let _ = writer.await;
    }
}

pub(in crate::core) fn op_name(m: &ToAgent) -> &'static str {
    match m {
        ToAgent::Register { .. } => "register",
        ToAgent::Ack { .. } => "ack",
        ToAgent::CheckpointWrite { .. } => "checkpoint-write",
        ToAgent::CheckpointRead => "checkpoint-read",
        ToAgent::CheckpointAck { .. } => "checkpoint-ack",
        ToAgent::Health { .. } => "health",
        ToAgent::Offline { .. } => "offline",
        ToAgent::Online => "online",
    }
}

pub(in crate::core) enum LineError {
    TooLong,
    Io,
}

/// Reads one line of at most MAX_LINE bytes (without the newline).
pub(in crate::core) async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> Result<usize, LineError> {
    loop {
        let buf = r.fill_buf().await.map_err(|_| LineError::Io)?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            if out.len() + i > MAX_LINE {
                return Err(LineError::TooLong);
            }
            out.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            return Ok(out.len() + 1);
        }
        let n = buf.len();
        out.extend_from_slice(buf);
        r.consume(n);
        if out.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
    }
}
