//! The node-to-node transport: length-prefixed JSON frames over TCP, persistent multiplexed
//! connections, and the fault-injection layer.
//!
//! A frame is a 4-byte big-endian length and a JSON [`Frame`]. Each frame names its sender and
//! its addressee and carries a request id, so one connection carries concurrent requests. Every
//! peer gets two connections ("lanes"): control (votes, heartbeats, forwarded proposals) and
//! bulk (appends with entries, snapshots), so a big append never delays a heartbeat.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::store::Command;
use crate::{Local, NodeId, TypeConfig};

/// Frames above this are refused (the connection is dropped): no legitimate message comes near
/// it (snapshot chunks are a few MiB), and it bounds what a garbage length prefix can allocate.
pub(crate) const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Per address: a dead link must cost little before the next address is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Outgoing frames queued per connection before senders wait.
const QUEUE: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Frame {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) id: u64,
    pub(crate) msg: Msg,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Msg {
    Request(Request),
    Response(Response),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A proposal forwarded to the leader; it gives up after `timeout_ms`.
    Write {
        command: Command,
        timeout_ms: u64,
    },
    AddNode {
        id: NodeId,
        addrs: Vec<SocketAddr>,
        timeout_ms: u64,
    },
    RemoveNode {
        id: NodeId,
        timeout_ms: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The answer to Write (the leader's apply result), AddNode and RemoveNode (null).
    Routed(Result<serde_json::Value, Refusal>),
}

/// Why a node did not carry out a routed request (write or membership change).
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("node is not the leader (leader: {0:?})")]
    NotLeader(Option<NodeId>),
    /// Worth retrying: timed out, stopped, unreachable.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying (e.g. a membership change raft rejects).
    #[error("{0}")]
    Rejected(String),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

pub(crate) fn encode(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, frame)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let prefix = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
    buf[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(buf)
}

pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FrameError> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(serde_json::from_slice(&buf)?)
}

fn log_read_end(err: &FrameError, peer: &str) {
    match err {
        FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(peer, "connection closed")
        }
        FrameError::Io(e) => tracing::debug!(peer, error = %e, "connection lost"),
        _ => tracing::warn!(peer, error = %err, "dropping connection"),
    }
}

/// Fault injection for partition tests: drops traffic both ways. Cheap to clone.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<FaultState>,
}

#[derive(Default)]
struct FaultState {
    isolated: RwLock<BTreeSet<NodeId>>,
    /// One way only: what these nodes send is dropped on arrival, what
    /// is sent to them still goes.
    deaf_to: RwLock<BTreeSet<NodeId>>,
    links_down: RwLock<BTreeSet<usize>>,
    /// Not fault injection: the node holds no lease (its membership
    /// monitor hears no majority), so it asks nothing of the others: a
    /// cut-off leader stops holding the group, a cut-off follower stops
    /// calling elections the majority would have to sit out.
    muted: std::sync::atomic::AtomicBool,
    /// What this node sends on its cluster links is delayed and lost, as
    /// `tc netem` would do on its interfaces' egress (where the machine
    /// has no netem, as CI's have not).
    impairment: Mutex<Impairment>,
}

/// A link impairment: a constant delay, and a chance of losing each
/// datagram (a TCP segment is sent again instead, [`RETRANSMIT`] later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impairment {
    pub delay: Duration,
    /// Chance of loss, in thousandths.
    pub loss_permille: u32,
    /// The loss draw's generator state (xorshift64).
    draw: u64,
}

/// Linux's minimum TCP retransmission timeout: what a lost segment costs a
/// stream, and everything queued behind it.
pub const RETRANSMIT: Duration = Duration::from_millis(200);

/// What an impaired link does to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Lost,
    /// Leaves after this delay (zero: at once).
    After(Duration),
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("isolated", &*read(&self.inner.isolated))
            .field("deaf_to", &*read(&self.inner.deaf_to))
            .field("links_down", &*read(&self.inner.links_down))
            .finish()
    }
}

// A poisoned lock only means a panic elsewhere while holding it; the sets are still valid.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    /// Drop all traffic to and from these nodes (empty = heal).
    pub fn isolate_from(&self, nodes: BTreeSet<NodeId>) {
        tracing::info!(?nodes, "fault injection: isolated from");
        *write(&self.inner.isolated) = nodes;
    }

    pub fn is_isolated_from(&self, node: NodeId) -> bool {
        read(&self.inner.isolated).contains(&node)
    }

    /// A one-way partition: drop what these nodes send (requests,
    /// responses, heartbeats) on arrival, keep sending to them (empty =
    /// heal).
    pub fn deafen_to(&self, nodes: BTreeSet<NodeId>) {
        tracing::info!(?nodes, "fault injection: deaf to");
        *write(&self.inner.deaf_to) = nodes;
    }

    /// Whether what `node` sends is dropped here: isolated both ways, or
    /// deaf to it.
    pub fn drops_from(&self, node: NodeId) -> bool {
        self.is_isolated_from(node) || read(&self.inner.deaf_to).contains(&node)
    }

    pub fn is_deaf_to(&self, node: NodeId) -> bool {
        read(&self.inner.deaf_to).contains(&node)
    }

    /// Stops (or resumes) this node's requests to the others; it still
    /// answers theirs.
    pub fn set_muted(&self, muted: bool) {
        let was = self
            .inner
            .muted
            .swap(muted, std::sync::atomic::Ordering::SeqCst);
        if was != muted {
            tracing::info!(muted, "consensus requests to the other nodes");
        }
    }

    pub fn is_muted(&self) -> bool {
        self.inner.muted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Take one of this node's links (index into its address list) down or up: sends on that
    /// link fail, and frames arriving on that link's listener are dropped. Link `i` of every node
    /// is assumed to be the same network, so a send to a peer's address `i` uses link `i`.
    pub fn set_link_down(&self, link: usize, down: bool) {
        tracing::info!(link, down, "fault injection: link");
        let mut links = write(&self.inner.links_down);
        if down {
            links.insert(link);
        } else {
            links.remove(&link);
        }
    }

    pub fn link_down(&self, link: usize) -> bool {
        read(&self.inner.links_down).contains(&link)
    }

    /// Delays what this node sends by `delay` and loses `loss_permille`
    /// thousandths of it (zero and zero: healed).
    pub fn impair(&self, delay: Duration, loss_permille: u32) {
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            loss_permille,
            "fault injection: link impairment"
        );
        let mut i = lock(&self.inner.impairment);
        i.delay = delay;
        i.loss_permille = loss_permille.min(1000);
        if i.draw == 0 {
            // Any non-zero seed; the draws need not be reproducible.
            i.draw = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
                | 1;
        }
    }

    pub fn impairment(&self) -> (Duration, u32) {
        let i = lock(&self.inner.impairment);
        (i.delay, i.loss_permille)
    }

    /// The fate of one datagram sent now (a heartbeat).
    pub fn datagram(&self) -> Fate {
        let mut i = lock(&self.inner.impairment);
        if i.loss_permille > 0 && i.lost() {
            return Fate::Lost;
        }
        Fate::After(i.delay)
    }

    /// How long a frame written now to a stream waits: the delay, and a
    /// retransmission when its segment is lost (the caller keeps the frames
    /// behind it waiting too, in order, as TCP does).
    pub fn stream_delay(&self) -> Duration {
        let mut i = lock(&self.inner.impairment);
        if i.loss_permille > 0 && i.lost() {
            return i.delay + RETRANSMIT;
        }
        i.delay
    }
}

impl Impairment {
    fn lost(&mut self) -> bool {
        let mut x = self.draw.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.draw = x;
        (x % 1000) < u64::from(self.loss_permille)
    }
}

/// Writes the frames `rx` yields to `wr` in order. Under an injected
/// impairment each leaves its delay after it was queued (never before the
/// one ahead of it), without holding up the queue while it waits.
async fn write_frames<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    faults: &Faults,
) {
    let mut held: std::collections::VecDeque<(tokio::time::Instant, Vec<u8>)> =
        std::collections::VecDeque::new();
    loop {
        let due = held.front().map(|(d, _)| *d);
        tokio::select! {
            biased;
            () = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {
                if let Some((_, bytes)) = held.pop_front()
                    && wr.write_all(&bytes).await.is_err()
                {
                    return;
                }
            }
            m = rx.recv(), if held.len() < QUEUE => {
                let Some(bytes) = m else { return };
                let delay = faults.stream_delay();
                if delay.is_zero() && held.is_empty() {
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                    continue;
                }
                let at = tokio::time::Instant::now() + delay;
                let at = held.back().map_or(at, |(prev, _)| at.max(*prev));
                held.push_back((at, bytes));
            }
        }
    }
}

/// Parses the comma-separated address list kept in a `BasicNode`.
pub(crate) fn parse_addrs(s: &str) -> Vec<SocketAddr> {
    s.split(',').filter_map(|a| a.trim().parse().ok()).collect()
}

pub(crate) fn format_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Lane {
    Control = 0,
    Bulk = 1,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("node {0} unreachable: {1}")]
    Unreachable(NodeId, String),
    #[error("request to node {0} timed out after {1:?}")]
    Timeout(NodeId, Duration),
    #[error("connection to node {0} failed: {1}")]
    Network(NodeId, String),
    #[error("request to node {0} is too large: {1}")]
    TooLarge(NodeId, String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

struct Conn {
    link: usize,
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
}

struct Peer {
    addrs: Mutex<Vec<SocketAddr>>,
    /// The address (= link) that last worked, tried first.
    preferred: AtomicUsize,
    lanes: [tokio::sync::Mutex<Option<Arc<Conn>>>; 2],
}

/// Removes a request's pending slot however the call ends (including cancellation).
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.id);
    }
}

/// The client side: connections to peers, owned connection tasks.
pub(crate) struct Transport {
    id: NodeId,
    faults: Faults,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    tasks: Mutex<JoinSet<()>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    span: tracing::Span,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(id: NodeId, faults: Faults, span: tracing::Span) -> Self {
        Self {
            id,
            faults,
            peers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            span,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stops every connection task without waiting; later calls fail as unreachable.
    pub(crate) fn abort(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.tasks).abort_all();
    }

    /// Stops every connection task; later calls fail as unreachable.
    pub(crate) async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        tasks.shutdown().await;
        lock(&self.peers).clear();
    }

    fn peer(&self, target: NodeId, addrs: &[SocketAddr]) -> Arc<Peer> {
        let mut peers = lock(&self.peers);
        let peer = peers.entry(target).or_insert_with(|| {
            Arc::new(Peer {
                addrs: Mutex::new(addrs.to_vec()),
                preferred: AtomicUsize::new(0),
                lanes: [tokio::sync::Mutex::new(None), tokio::sync::Mutex::new(None)],
            })
        });
        let mut known = lock(&peer.addrs);
        if !addrs.is_empty() && *known != addrs {
            *known = addrs.to_vec();
        }
        drop(known);
        peer.clone()
    }

    pub(crate) async fn call(
        &self,
        target: NodeId,
        addrs: &[SocketAddr],
        lane: Lane,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        if self.is_closed() {
            return Err(CallError::Unreachable(target, "transport stopped".into()));
        }
        if self.faults.is_isolated_from(target) {
            return Err(CallError::Unreachable(
                target,
                "isolated by fault injection".into(),
            ));
        }
        if self.faults.is_muted() {
            return Err(CallError::Unreachable(
                target,
                "cut off from the majority: this node asks nothing".into(),
            ));
        }
        let peer = self.peer(target, addrs);
        let conn = self.connection(target, &peer, lane).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = Frame {
            from: self.id,
            to: target,
            id,
            msg: Msg::Request(request),
        };
        let bytes = encode(&frame).map_err(|e| match e {
            FrameError::TooLarge(_) => CallError::TooLarge(target, e.to_string()),
            _ => CallError::Network(target, e.to_string()),
        })?;
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        let _guard = PendingGuard {
            pending: &conn.pending,
            id,
        };
        let exchange = async {
            conn.tx
                .send(bytes)
                .await
                .map_err(|_| CallError::Network(target, "connection closed".into()))?;
            rx.await.map_err(|_| {
                CallError::Network(target, "connection closed before the answer".into())
            })
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout(target, timeout)),
        };
        if let Err(CallError::Network(..)) = &result {
            // The link accepted a connection but carried nothing back (e.g. the peer's side of
            // it is down): prefer the next address for the next attempt.
            let n = lock(&peer.addrs).len().max(1);
            peer.preferred.store((conn.link + 1) % n, Ordering::Relaxed);
        }
        result
    }

    async fn connection(
        &self,
        target: NodeId,
        peer: &Peer,
        lane: Lane,
    ) -> Result<Arc<Conn>, CallError> {
        let mut slot = peer.lanes[lane as usize].lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.tx.is_closed()
            && !self.faults.link_down(conn.link)
        {
            return Ok(conn.clone());
        }
        // Dropping the sender ends the old connection's task.
        *slot = None;
        let addrs = lock(&peer.addrs).clone();
        let preferred = peer.preferred.load(Ordering::Relaxed);
        let mut order: Vec<usize> = Vec::with_capacity(addrs.len());
        if preferred < addrs.len() {
            order.push(preferred);
        }
        order.extend((0..addrs.len()).filter(|&i| i != preferred));
        let mut last_error = String::from("no address known");
        for link in order {
            let addr = addrs[link];
            if self.faults.link_down(link) {
                last_error = format!("link {link} is down");
                continue;
            }
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Small frames (heartbeats) must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    peer.preferred.store(link, Ordering::Relaxed);
                    tracing::debug!(target, %addr, link, ?lane, "connected");
                    let conn = self.spawn_conn(target, link, stream);
                    *slot = Some(conn.clone());
                    return Ok(conn);
                }
                Ok(Err(e)) => last_error = format!("{addr}: {e}"),
                Err(_) => last_error = format!("{addr}: connect timed out"),
            }
        }
        Err(CallError::Unreachable(target, last_error))
    }

    fn spawn_conn(&self, target: NodeId, link: usize, stream: TcpStream) -> Arc<Conn> {
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let pending: Pending = Arc::default();
        let conn = Arc::new(Conn {
            link,
            tx,
            pending: pending.clone(),
        });
        let faults = self.faults.clone();
        let me = self.id;
        let task = async move {
            let writer = write_frames(&mut wr, &mut rx, &faults);
            let reader = async {
                let peer = target.to_string();
                loop {
                    let frame = match read_frame(&mut rd).await {
                        Ok(f) => f,
                        Err(e) => {
                            log_read_end(&e, &peer);
                            break;
                        }
                    };
                    if frame.from != target || frame.to != me {
                        tracing::warn!(
                            target,
                            from = frame.from,
                            to = frame.to,
                            "misaddressed frame, dropping connection"
                        );
                        break;
                    }
                    if faults.is_isolated_from(target) || faults.link_down(link) {
                        tracing::debug!(target, link, "fault injection: dropping connection");
                        break;
                    }
                    // Deaf to it: its answers never arrive (the call times out).
                    if faults.is_deaf_to(target) {
                        continue;
                    }
                    match frame.msg {
                        Msg::Response(r) => {
                            if let Some(tx) = lock(&pending).remove(&frame.id) {
                                let _ = tx.send(r);
                            }
                        }
                        Msg::Request(_) => {
                            tracing::warn!(
                                target,
                                "request on a client connection, dropping connection"
                            );
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                _ = writer => {}
                _ = reader => {}
            }
            // Fail the callers still waiting on this connection.
            lock(&pending).clear();
        };
        let mut tasks = lock(&self.tasks);
        // Reap finished connection tasks so the set does not grow with reconnects.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task.instrument(self.span.clone()));
        conn
    }
}

/// Accepts peers on one of this node's addresses (link `link`) until aborted.
pub(crate) async fn serve(listener: TcpListener, link: usize, local: Arc<Local>, faults: Faults) {
    let mut conns = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                while conns.try_join_next().is_some() {}
                conns.spawn(
                    serve_conn(stream, addr, link, local.clone(), faults.clone())
                        .instrument(tracing::Span::current()),
                );
            }
            Err(e) => {
                // E.g. out of file descriptors: back off rather than spin.
                tracing::warn!(link, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_conn(
    stream: TcpStream,
    addr: SocketAddr,
    link: usize,
    local: Arc<Local>,
    faults: Faults,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let egress = faults.clone();
    let writer = write_frames(&mut wr, &mut rx, &egress);
    let reader = async move {
        let peer = addr.to_string();
        // Requests run concurrently; they die with the connection.
        let mut handlers = JoinSet::new();
        loop {
            let frame = match read_frame(&mut rd).await {
                Ok(f) => f,
                Err(e) => {
                    log_read_end(&e, &peer);
                    break;
                }
            };
            while handlers.try_join_next().is_some() {}
            if frame.to != local.id {
                tracing::warn!(
                    peer,
                    from = frame.from,
                    to = frame.to,
                    "frame for another node, dropping connection"
                );
                break;
            }
            if faults.link_down(link) || faults.is_isolated_from(frame.from) {
                tracing::debug!(
                    peer,
                    from = frame.from,
                    link,
                    "fault injection: dropping connection"
                );
                break;
            }
            // Deaf to it: its requests never arrive (and get no answer).
            if faults.is_deaf_to(frame.from) {
                continue;
            }
            let request = match frame.msg {
                Msg::Request(r) => r,
                Msg::Response(_) => {
                    tracing::warn!(peer, "response on a server connection, dropping connection");
                    break;
                }
            };
            let local = local.clone();
            let tx = tx.clone();
            let (from, id) = (frame.from, frame.id);
            handlers.spawn(
                async move {
                    let response = local.handle(request).await;
                    let frame = Frame {
                        from: local.id,
                        to: from,
                        id,
                        msg: Msg::Response(response),
                    };
                    match encode(&frame) {
                        Ok(bytes) => {
                            let _ = tx.send(bytes).await;
                        }
                        Err(e) => tracing::warn!(to = from, error = %e, "cannot encode a response"),
                    }
                }
                .instrument(tracing::Span::current()),
            );
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}

/// openraft's view of the transport.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) transport: Arc<Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            transport: self.transport.clone(),
            target,
            addrs: parse_addrs(&node.addr),
        }
    }
}

#[derive(Debug)]
pub(crate) struct PeerClient {
    transport: Arc<Transport>,
    target: NodeId,
    addrs: Vec<SocketAddr>,
}

impl PeerClient {
    fn rpc_error<E: std::error::Error>(
        &self,
        err: CallError,
        action: RPCTypes,
    ) -> RPCError<NodeId, BasicNode, E> {
        match err {
            CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&err)),
            CallError::Timeout(target, timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.transport.id,
                target,
                timeout,
            }),
            CallError::Network(..) | CallError::TooLarge(..) => {
                RPCError::Network(NetworkError::new(&err))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self, got: &Response) -> RPCError<NodeId, BasicNode, E> {
        let e = std::io::Error::other(format!(
            "unexpected response from node {}: {got:?}",
            self.target
        ));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let lane = if entries == 0 {
            Lane::Control
        } else {
            Lane::Bulk
        };
        let call = self.transport.call(
            self.target,
            &self.addrs,
            lane,
            Request::Append(rpc),
            option.hard_ttl(),
        );
        match call.await {
            Ok(Response::Append(Ok(r))) => Ok(r),
            Ok(Response::Append(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(&other)),
            // Over the frame limit: openraft retries with fewer entries.
            Err(CallError::TooLarge(..)) => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2).max(1)),
            )),
            Err(e) => Err(self.rpc_error(e, RPCTypes::AppendEntries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let call = self.transport.call(
            self.target,
            &self.addrs,
            Lane::Bulk,
            Request::Snapshot(rpc),
            option.hard_ttl(),
        );
        match call.await {
            Ok(Response::Snapshot(Ok(r))) => Ok(r),
            Ok(Response::Snapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(self.rpc_error(e, RPCTypes::InstallSnapshot)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let call = self.transport.call(
            self.target,
            &self.addrs,
            Lane::Control,
            Request::Vote(rpc),
            option.hard_ttl(),
        );
        match call.await {
            Ok(Response::Vote(Ok(r))) => Ok(r),
            Ok(Response::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(self.rpc_error(e, RPCTypes::Vote)),
        }
    }

    /// Shorter than openraft's 500 ms default so a healed partition or restarted peer is
    /// caught up quickly; an unreachable peer costs at most a failed connect per try.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod impairment_tests {
    use super::*;

    #[test]
    fn the_loss_rate_is_the_one_set_and_zero_heals() {
        let f = Faults::default();
        f.impair(Duration::from_millis(30), 100);
        let lost = (0..20_000).filter(|_| f.datagram() == Fate::Lost).count();
        assert!(
            (1_600..2_400).contains(&lost),
            "{lost} of 20000 lost at 10 %"
        );
        assert_eq!(f.impairment(), (Duration::from_millis(30), 100));
        f.impair(Duration::ZERO, 0);
        assert!((0..1000).all(|_| f.datagram() == Fate::After(Duration::ZERO)));
        assert_eq!(f.stream_delay(), Duration::ZERO);
    }

    /// Frames leave their delay after they were queued, in order, and a
    /// lost segment holds the ones behind it (paused time).
    #[tokio::test(start_paused = true)]
    async fn delayed_frames_leave_in_order_without_holding_the_queue() {
        use tokio::io::AsyncReadExt;
        let f = Faults::default();
        f.impair(Duration::from_millis(50), 0);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let egress = f.clone();
        let writer = tokio::spawn(async move { write_frames(&mut client, &mut rx, &egress).await });
        let start = tokio::time::Instant::now();
        for i in 0..5u8 {
            tx.send(vec![i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut got = Vec::new();
        for _ in 0..5 {
            let b = server.read_u8().await.unwrap();
            got.push((b, start.elapsed().as_millis()));
        }
        // Queued at 0, 10, ... 40 ms: each leaves 50 ms later, not 50 ms
        // after the one before it.
        assert_eq!(got, vec![(0, 50), (1, 60), (2, 70), (3, 80), (4, 90)],);
        drop(tx);
        writer.await.unwrap();
    }
}
