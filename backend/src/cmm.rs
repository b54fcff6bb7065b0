//! The cluster membership monitor (CMM): heartbeats between the nodes,
//! failure detection by the master, and the lease that keeps a cut-off
//! node from holding primaries.
//!
//! Every node sends a UDP heartbeat to every other node on every cluster
//! link each `heartbeat`. A heartbeat echoes the last sequence number heard
//! from each peer, so a node knows when a peer last heard *it* (a round
//! trip), not just when it heard the peer.
//!
//! - The master declares a node lost (a committed `NodeLost`) when it has
//!   not heard it for `failure`, or when the node's heartbeat says it is
//!   cut off and its components' leases are over (a one-way partition:
//!   heard, but hearing no majority); CRIM then promotes the standbys.
//! - A node whose round trips with a majority (itself included) are all
//!   older than `lease` gives up its primaries at once (fencing). Since
//!   `lease` < `failure`, a node cut off from the majority has demoted its
//!   primaries before the master promotes their standbys: two primaries of
//!   one service instance never coexist. The agent passes the lease's
//!   end on to its HA-aware components as an instant of the host's
//!   monotonic clock, and they quiesce at it by themselves: a stalled
//!   agent (or a paused machine) cannot fence, but its primaries still
//!   stop before the majority promotes their standbys.
//!
//! Consensus (openraft) elects the master; this only watches liveness.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use halyard_consensus::{Consensus, NodeId};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::{ClusterView, Command};
use crate::core::{HaCore, Membership};

#[derive(Debug, Clone)]
pub struct CmmConfig {
    pub me: String,
    /// Every node: name, consensus id, and its cluster addresses (one per
    /// link; heartbeats use the same address and port over UDP).
    pub nodes: Vec<(String, NodeId, Vec<SocketAddr>)>,
    pub heartbeat: Duration,
    pub lease: Duration,
    pub failure: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CmmError {
    #[error("node {0} is not in the cluster configuration")]
    UnknownNode(String),
    #[error("cannot bind heartbeat socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the lease ({lease:?}) must be shorter than failure detection ({failure:?}) by two heartbeats ({heartbeat:?})"
    )]
    Timers {
        heartbeat: Duration,
        lease: Duration,
        failure: Duration,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Beat {
    from: NodeId,
    seq: u64,
    /// The last sequence number this sender heard from each node.
    echo: BTreeMap<NodeId, u64>,
    /// Milliseconds since this sender last heard each node (absent: never).
    #[serde(default)]
    ages: BTreeMap<NodeId, u64>,
    /// The sender is fenced (no round trip with a majority) and every
    /// lease it gave its components has run out: nothing of it acts as
    /// primary, so the master may move its roles at once instead of
    /// waiting to lose it (it may still be heard: a one-way partition).
    #[serde(default)]
    released: bool,
}

/// Largest heartbeat accepted (a handful of nodes fits easily).
const MAX_BEAT: usize = 4096;
/// Heartbeats an injected link delay holds back, at most.
const OUTBOX: usize = 1024;

#[derive(Debug)]
struct Peer {
    name: String,
    addrs: Vec<SocketAddr>,
    heard: Option<Instant>,
    last_seq: u64,
    /// When we sent the heartbeat this peer last echoed: it heard us then.
    round_trip: Option<Instant>,
    /// The peer's latest report of how long ago it heard each node.
    reported: Option<(Instant, BTreeMap<NodeId, u64>)>,
    /// When the peer last said it had released its roles (fenced, its
    /// components' leases over).
    released: Option<Instant>,
}

/// Runs the CMM until `stop`.
pub async fn run(
    cfg: CmmConfig,
    consensus: Consensus,
    core: HaCore,
    view: ClusterView,
    mut stop: watch::Receiver<bool>,
) -> Result<(), CmmError> {
    if cfg.failure < cfg.lease + 2 * cfg.heartbeat {
        return Err(CmmError::Timers {
            heartbeat: cfg.heartbeat,
            lease: cfg.lease,
            failure: cfg.failure,
        });
    }
    let (my_id, my_addrs) = cfg
        .nodes
        .iter()
        .find(|(n, _, _)| *n == cfg.me)
        .map(|(_, id, a)| (*id, a.clone()))
        .ok_or_else(|| CmmError::UnknownNode(cfg.me.clone()))?;
    let mut sockets = Vec::new();
    for a in &my_addrs {
        let s = UdpSocket::bind(a)
            .await
            .map_err(|source| CmmError::Bind { addr: *a, source })?;
        sockets.push(std::sync::Arc::new(s));
    }
    // One receiver per link, feeding one queue (full: the beat is dropped,
    // as the network might have).
    let (beat_tx, mut beats) = tokio::sync::mpsc::channel::<(usize, Vec<u8>)>(256);
    let mut receivers = tokio::task::JoinSet::new();
    for (link, s) in sockets.iter().enumerate() {
        let s = s.clone();
        let tx = beat_tx.clone();
        receivers.spawn(async move {
            let mut buf = vec![0u8; MAX_BEAT];
            loop {
                match s.recv_from(&mut buf).await {
                    Ok((n, _)) => {
                        let _ = tx.try_send((link, buf[..n].to_vec()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
    }
    drop(beat_tx);
    let faults = consensus.faults();
    let mut peers: BTreeMap<NodeId, Peer> = cfg
        .nodes
        .iter()
        .filter(|(n, _, _)| *n != cfg.me)
        .map(|(n, id, a)| {
            (
                *id,
                Peer {
                    name: n.clone(),
                    addrs: a.clone(),
                    heard: None,
                    last_seq: 0,
                    round_trip: None,
                    reported: None,
                    released: None,
                },
            )
        })
        .collect();
    let names: HashMap<NodeId, String> = cfg
        .nodes
        .iter()
        .map(|(n, id, _)| (*id, n.clone()))
        .collect();
    let started = Instant::now();
    // Peers echo the highest sequence number they heard from this node, and
    // remember it across this node's restarts: starting from the wall
    // clock's milliseconds (20 beats a second use fewer), a restarted node
    // numbers above its earlier life, so its first beats make round trips
    // (and leases) at once instead of after as long as it ran before.
    let mut seq = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0);
    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut tick = tokio::time::interval(cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut had_quorum = false;
    let mut cut_off = false;
    let mut leader_since: Option<Instant> = None;
    let mut last_master_tick = started;
    // Declarations in flight, so one silence is declared once.
    let mut declaring: tokio::task::JoinSet<NodeId> = tokio::task::JoinSet::new();
    let mut pending: std::collections::BTreeSet<NodeId> = Default::default();

    // Heartbeats held back by an injected link delay: (due, link, to, bytes).
    let mut outbox: std::collections::VecDeque<(Instant, usize, std::net::SocketAddr, Vec<u8>)> =
        Default::default();
    loop {
        let due = outbox.front().map(|(d, ..)| *d);
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let now = Instant::now();
                while let Some((_, link, to, bytes)) = outbox.front().filter(|(d, ..)| *d <= now) {
                    if let Some(sock) = sockets.get(*link) {
                        let _ = sock.try_send_to(bytes, *to);
                    }
                    outbox.pop_front();
                }
            }
            Some(done) = declaring.join_next(), if !declaring.is_empty() => {
                if let Ok(id) = done { pending.remove(&id); }
            }
            Some((link, bytes)) = beats.recv() => {
                if faults.link_down(link) { continue }
                let Ok(beat) = serde_json::from_slice::<Beat>(&bytes) else {
                    tracing::debug!("malformed heartbeat dropped");
                    continue;
                };
                if faults.drops_from(beat.from) { continue }
                let now = Instant::now();
                if let Some(p) = peers.get_mut(&beat.from) {
                    p.heard = Some(now);
                    p.last_seq = p.last_seq.max(beat.seq);
                    p.reported = Some((now, beat.ages));
                    p.released = if beat.released { Some(now) } else { None };
                    if let Some(s) = beat.echo.get(&my_id)
                        && let Some((_, at)) = sent.iter().find(|(q, _)| q == s)
                    {
                        p.round_trip = Some(p.round_trip.map_or(*at, |t| t.max(*at)));
                    }
                }
                if consensus.leader() == Some(beat.from) {
                    view.heard_master();
                }
            }
            due = tick.tick() => {
                let now = Instant::now();
                // The same instant on the monotonic clock the components
                // share: a lease computed from `now` must not also count
                // whatever delay (a pause, a busy machine) comes later in
                // this tick.
                let mono_now = crate::protocol::mono_ns();
                // Like Corosync's "not scheduled" warning: a monitor that
                // runs late renews leases late, and its components may
                // quiesce (the machine is overloaded or the process stalled).
                let late = now.saturating_duration_since(due);
                if late > 3 * cfg.heartbeat {
                    tracing::warn!(late_ms = late.as_millis() as u64, "the membership monitor was not scheduled in time: leases may lapse");
                }
                seq += 1;
                sent.push_back((seq, now));
                while sent.front().is_some_and(|(_, t)| now.duration_since(*t) > cfg.failure * 4) {
                    sent.pop_front();
                }
                let beat = Beat {
                    from: my_id,
                    seq,
                    echo: peers.iter().map(|(id, p)| (*id, p.last_seq)).collect(),
                    ages: peers
                        .iter()
                        .filter_map(|(id, p)| p.heard.map(|h| (*id, now.duration_since(h).as_millis() as u64)))
                        .collect(),
                    released: cut_off
                        && core.lease.borrow().is_none_or(|u| crate::protocol::mono_ns() > u),
                };
                let bytes = serde_json::to_vec(&beat).unwrap_or_default();
                for (id, p) in &peers {
                    if faults.is_isolated_from(*id) { continue }
                    for (link, (sock, addr)) in sockets.iter().zip(p.addrs.iter()).enumerate() {
                        if faults.link_down(link) { continue }
                        match faults.datagram() {
                            halyard_consensus::Fate::Lost => {}
                            // Loss is what heartbeats measure: errors are not fatal.
                            halyard_consensus::Fate::After(d) if d.is_zero() => {
                                let _ = sock.try_send_to(&bytes, *addr);
                            }
                            // An injected delay: sent from the outbox (bounded:
                            // a delay's worth of heartbeats).
                            halyard_consensus::Fate::After(d) => {
                                if outbox.len() < OUTBOX {
                                    outbox.push_back((now + d, link, *addr, bytes.clone()));
                                }
                            }
                        }
                    }
                }

                // Majorities count the consensus group's voters (a node
                // configured to join later counts once admitted).
                let voters = consensus.status().voters;
                view.set_voters(&voters);
                let majority = voters.len().max(1) / 2 + 1;
                // The lease: round trips with a majority, this node included.
                let mut trips: Vec<Instant> = peers
                    .iter()
                    .filter(|(id, _)| voters.contains(id))
                    .filter_map(|(_, p)| p.round_trip)
                    .collect();
                trips.sort_unstable_by(|a, b| b.cmp(a));
                // A node evicted from the voters holds no lease at all.
                let evicted = !voters.is_empty() && !voters.contains(&my_id);
                let quorum = !evicted
                    && (majority <= 1
                        || trips.get(majority - 2).is_some_and(|t| now.duration_since(*t) <= cfg.lease));
                // The lease as an instant, for the HA-aware components: they
                // quiesce at it by themselves, even with this agent stalled
                // (the fence below needs the agent to run). Its bound is
                // the promotion's, less two heartbeats: the majority that
                // declares this node lost includes a node of the round trip
                // counted here (two majorities meet), which had not heard
                // this node for `failure` since at least the round trip's
                // send instant `t`. So no standby is promoted before
                // t + failure, and the components stop at
                // t + failure - 2 heartbeats (never before the fence's
                // t + lease: the timers' check keeps failure >= lease + 2
                // heartbeats), with room for a busy agent's late renewals.
                let gate = core.lease_gate.load(std::sync::atomic::Ordering::SeqCst);
                // Until the consensus layer knows its membership (a replica
                // still loading, a node not admitted yet), leases count the
                // configured nodes: never a majority of one.
                let all: Vec<Instant>;
                let (lease_majority, lease_trips): (usize, &[Instant]) = if voters.is_empty() {
                    let mut v: Vec<Instant> = peers.values().filter_map(|p| p.round_trip).collect();
                    v.sort_unstable_by(|a, b| b.cmp(a));
                    all = v;
                    (cfg.nodes.len().max(1) / 2 + 1, &all)
                } else {
                    (majority, &trips)
                };
                if lease_majority > 1
                    && !evicted
                    && gate
                    && let Some(t) = lease_trips.get(lease_majority - 2)
                {
                    let bound = cfg.failure.saturating_sub(2 * cfg.heartbeat);
                    let until = (mono_now + bound.as_nanos() as u64)
                        .saturating_sub(now.duration_since(*t).as_nanos() as u64);
                    core.lease.send_if_modified(|l| {
                        let later = l.is_none_or(|v| until > v);
                        if later {
                            *l = Some(until);
                        }
                        later
                    });
                }
                if quorum {
                    if cut_off {
                        cut_off = false;
                        faults.set_muted(false);
                        let _ = core.membership(Membership::Rejoin).await;
                    }
                    had_quorum = true;
                } else if had_quorum && !cut_off {
                    cut_off = true;
                    tracing::warn!(lease_ms = cfg.lease.as_millis() as u64, "no round trip with a majority within the lease");
                    // No renewal from now on until the core has fenced and
                    // restarted its components (it reopens the gate then, or
                    // at once when nothing here was primary): this thread
                    // may hear the majority again before the core has even
                    // read the Fence, and must not re-arm a stale primary.
                    core.lease_gate.store(false, std::sync::atomic::Ordering::SeqCst);
                    let _ = core.membership(Membership::Fence).await;
                    // Heard or not, it asks the group for nothing (no
                    // elections, no appends) until it hears a majority.
                    faults.set_muted(true);
                }

                // What every face shows.
                for p in peers.values() {
                    view.set_heard(&p.name, p.heard.map(|t| now.duration_since(t).as_millis() as u64));
                }
                view.set_heard(&cfg.me, Some(0));
                let leader = consensus.leader();
                view.set_master(leader.and_then(|l| names.get(&l)).map(String::as_str));

                // The master's duties.
                if consensus.is_leader() && !cut_off {
                    let since = *leader_since.get_or_insert(now);
                    for (id, p) in &peers {
                        // Never heard since this node became master: counted from then.
                        let silent = now.duration_since(p.heard.unwrap_or(since));
                        let up = view.node(&p.name).is_some_and(|n| n.up);
                        // A majority of the other nodes must have lost it,
                        // the master included: then the node cannot hold a
                        // lease (it has no round trip with a majority), so
                        // it has given up its primaries. One silent link
                        // (the master's) does not declare a node that
                        // others still hear.
                        let silent_others = peers
                            .iter()
                            .filter(|(y, _)| *y != id && voters.contains(y))
                            .filter(|(_, q)| {
                                q.reported.as_ref().is_some_and(|(at, ages)| {
                                    let fresh = now.duration_since(*at) <= cfg.failure / 2;
                                    let age = ages.get(id).map_or(u64::MAX, |a| {
                                        a.saturating_add(now.duration_since(*at).as_millis() as u64)
                                    });
                                    fresh && age > cfg.failure.as_millis() as u64
                                })
                            })
                            .count();
                        let agreed = 1 + silent_others >= majority;
                        // Or it says it let go of its roles: heard, but
                        // cut off (it hears no majority).
                        let released = p.released.is_some_and(|t| now.duration_since(t) <= cfg.failure / 2);
                        if up && ((silent > cfg.failure && agreed) || released) && !pending.contains(id) {
                            pending.insert(*id);
                            let c = consensus.clone();
                            let node = p.name.clone();
                            let id = *id;
                            let ms = silent.as_millis();
                            let reason = if silent > cfg.failure {
                                tracing::warn!(%node, silent_ms = ms as u64, "no heartbeat: declaring the node lost");
                                format!("no heartbeat for {ms} ms")
                            } else {
                                tracing::warn!(%node, "the node is cut off from the majority and released its roles: declaring the node lost");
                                "cut off from the majority (it hears no majority)".to_string()
                            };
                            declaring.spawn(async move {
                                let cmd = Command::NodeLost { node, restart: true, reason, boot: None };
                                if let Ok(v) = serde_json::to_value(cmd)
                                    && let Err(e) = c.propose(v, Duration::from_secs(2)).await
                                {
                                    tracing::warn!(error = %e, "node loss not committed");
                                }
                                id
                            });
                        }
                    }
                    if now.duration_since(last_master_tick) >= Duration::from_millis(500) {
                        last_master_tick = now;
                        let _ = core.membership(Membership::MasterTick).await;
                    }
                } else {
                    leader_since = None;
                }
            }
        }
    }
    declaring.abort_all();
    receivers.abort_all();
    Ok(())
}
