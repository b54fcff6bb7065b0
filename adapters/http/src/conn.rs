//! Connection limits: at most `max_connections` open at once (more are
//! closed at once), and a connection idle for `idle_timeout` in both
//! directions is closed. axum drives hyper without a timer, so hyper's own
//! header-read timeout is not armed; this is the bound instead.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A connection holding one of the listener's permits, closed when idle.
#[derive(Debug)]
pub struct Guarded<S> {
    io: S,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    pub fn new(io: S, permit: OwnedSemaphorePermit, idle: Duration) -> Self {
        Guarded {
            io,
            _permit: permit,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        let at = Instant::now() + self.idle;
        self.deadline.as_mut().reset(at);
    }

    /// Pending I/O: an error once the connection has been idle too long.
    fn expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.touch();
                Poll::Ready(r)
            }
            Poll::Pending => this.expired(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.touch();
                Poll::Ready(r)
            }
            Poll::Pending => this.expired(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.touch();
                Poll::Ready(r)
            }
            Poll::Pending => this.expired(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The permits of one listener and the idle bound of its connections.
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl Gate {
    pub fn new(max_connections: usize, idle: Duration) -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            idle,
        }
    }

    /// Admits a connection, or `None` when the listener is full.
    pub fn admit<S>(&self, io: S) -> Option<Guarded<S>> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(Guarded::new(io, permit, self.idle))
    }
}

/// Plain TCP with the gate.
#[derive(Debug)]
pub struct PlainListener {
    tcp: TcpListener,
    gate: Gate,
}

impl PlainListener {
    pub fn new(tcp: TcpListener, gate: Gate) -> Self {
        PlainListener { tcp, gate }
    }
}

impl Listener for PlainListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.tcp.accept().await {
                Ok((s, peer)) => match self.gate.admit(s) {
                    Some(g) => return (g, peer),
                    // Full: the stream is dropped, which closes it.
                    None => tracing::debug!(%peer, "connection refused: too many open"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, PlainListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

/// The client address of a request, over plain TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*s.remote_addr())
    }
}
