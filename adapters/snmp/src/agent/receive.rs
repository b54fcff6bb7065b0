//! Receiving: UDP sockets, receive threads, request tasks, and sending the answers.

use std::future::Future;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;
use tracing::Instrument;

use super::Shared;
use crate::engine::Counter;
use crate::error::SnmpError;

/// Binds a UDP socket; an IPv6 one is IPv6-only, so that the IPv4 and
/// IPv6 wildcard addresses can share a port.
pub(super) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    // Blocking, for the receive thread; it looks for a stop this often.
    s.set_read_timeout(Some(RX_STOP_CHECK))?;
    Ok(s.into())
}

/// How often a receive thread with nothing to read checks for a stop.
const RX_STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// One socket's receiver: a dedicated thread blocked in `recv_from`, and
/// the task that owns the requests it could not answer at once.
///
/// Why a thread and not a task: at one request in flight the round trip is
/// mostly wake-ups and system calls, and a thread blocked in `recv_from` is
/// woken by the datagram itself, where a task needs the reactor's
/// `epoll_wait`, a read, and a read that says "would block" before it
/// sleeps again (measured: 25 µs against 33–40 µs per round trip with no
/// agent work, `vs_snmpd -- --floor`). The thread runs inside the
/// runtime's context, so the code it polls is the same async code.
pub(super) struct Receiver {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Receive threads per socket: a datagram wakes one of them (the kernel
/// wakes a single waiter), so a burst is answered on every core.
fn receive_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Receiver {
    pub(super) fn start(
        socket: Arc<UdpSocket>,
        shared: Arc<Shared>,
        tasks: &mut JoinSet<Result<(), SnmpError>>,
    ) -> std::io::Result<Receiver> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Requests that wait on the model: at most max_in_flight of them.
        let (slow_tx, slow_rx) = tokio::sync::mpsc::channel(shared.config.max_in_flight.max(1));
        tasks.spawn(own_slow_requests(slow_rx));
        let runtime = tokio::runtime::Handle::current();
        let name = format!(
            "snmp-rx {}",
            socket
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string())
        );
        let mut receiver = Receiver {
            stop,
            threads: Vec::new(),
        };
        for _ in 0..receive_threads() {
            let thread = std::thread::Builder::new().name(name.clone()).spawn({
                let (stop, socket, shared) =
                    (receiver.stop.clone(), socket.clone(), shared.clone());
                let (slow_tx, runtime) = (slow_tx.clone(), runtime.clone());
                move || {
                    let _rt = runtime.enter();
                    receive(&socket, &shared, &slow_tx, &stop);
                }
            })?;
            receiver.threads.push(thread);
        }
        Ok(receiver)
    }

    /// Stops the threads and waits for them (off the async threads).
    pub(super) async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Receiver {
    /// A receiver dropped without `stop` (the agent failed to start) still
    /// ends its thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type SlowRequest = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the requests the receive thread handed over, each in its own task
/// under its deadline, until the thread is gone and they are done.
async fn own_slow_requests(
    mut rx: tokio::sync::mpsc::Receiver<SlowRequest>,
) -> Result<(), SnmpError> {
    let mut requests = JoinSet::new();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(request) => {
                    requests.spawn(request);
                }
                None => break,
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
        }
    }
    while requests.join_next().await.is_some() {}
    Ok(())
}

/// The receive loop of one socket, on its own thread. Each datagram's
/// answer is computed here when it is ready at once; a request that waits
/// on the model is handed to its own task, so it holds up nothing else.
fn receive(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    slow: &tokio::sync::mpsc::Sender<SlowRequest>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => accept(socket, shared, &buf[..n], from, slow),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // ICMP errors surface here on some systems: not fatal.
                tracing::debug!(error = %e, "udp receive error");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// One datagram: answered inline if its answer is ready on the first
/// poll, else handed to its own task.
fn accept(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    datagram: &[u8],
    from: SocketAddr,
    slow: &tokio::sync::mpsc::Sender<SlowRequest>,
) {
    shared.engine.count(Counter::InPkts);
    let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
        shared.engine.count(Counter::SilentDrops);
        return;
    };
    let span = tracing::debug_span!("snmp_request", peer = %from, len = datagram.len());
    let mut request: SlowRequest = Box::pin(
        respond(
            socket.clone(),
            shared.clone(),
            datagram.to_vec(),
            from,
            permit,
        )
        .instrument(span),
    );
    // A no-op waker: if the request is pending, the task it becomes
    // polls it again at once and registers its own waker.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if request.as_mut().poll(&mut cx).is_pending() && slow.try_send(request).is_err() {
        // Cannot happen while the permits bound the requests in flight.
        shared.engine.count(Counter::SilentDrops);
    }
}

/// Sends without blocking, whatever thread it runs on.
fn send_now(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).send_to_with_flags(bytes, &to.into(), libc::MSG_DONTWAIT)
}

/// Answers one datagram and sends the answer.
async fn respond(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    datagram: Vec<u8>,
    from: SocketAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = std::time::Instant::now();
    let Some(out) = shared.handle(&datagram).await else {
        return;
    };
    if out.len() > shared.config.max_message_size {
        shared.engine.count(Counter::SilentDrops);
        return;
    }
    let mut sent = false;
    // The send buffer full: wait for room a little (this request only).
    for _ in 0..SEND_TRIES {
        match send_now(&socket, &out, from) {
            Ok(_) => {
                sent = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp send error");
                break;
            }
        }
    }
    if sent {
        shared.engine.count(Counter::OutPkts);
        shared.engine.latency.observe(started.elapsed());
    }
}

/// Attempts to send an answer while the send buffer is full (1 ms apart).
const SEND_TRIES: usize = 50;
