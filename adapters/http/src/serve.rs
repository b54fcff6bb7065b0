//! The accept loop: the router over hyper's HTTP/1 connections, as
//! `axum::serve` runs it, plus what that does not give: a count of the
//! requests hyper refuses as malformed HTTP (answered 400 by hyper before
//! any route sees them), so bad input is counted on this face as it is on
//! the SNMP and NETCONF faces.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::conn::Peer;

/// Serves `router` on every connection `listener` accepts until `stop`
/// turns true, then lets open connections finish their requests (the
/// caller bounds how long).
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Router,
    mut stop: watch::Receiver<bool>,
    malformed: Counter,
) where
    L: Listener<Addr = SocketAddr>,
{
    let mut conns = JoinSet::new();
    loop {
        let (io, peer) = tokio::select! {
            a = listener.accept() => a,
            () = stopped(&mut stop) => break,
        };
        while conns.try_join_next().is_some() {}
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(Peer(peer)));
            let router = router.clone();
            async move { router.oneshot(req.map(Body::new)).await }
        });
        let mut stop = stop.clone();
        let malformed = malformed.clone();
        conns.spawn(async move {
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc);
            let mut conn = std::pin::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                if e.is_parse() || e.is_parse_too_large() || e.is_parse_status() {
                    malformed.inc();
                    tracing::debug!(%peer, error = %e, "malformed HTTP request refused");
                } else {
                    tracing::trace!(%peer, error = %e, "HTTP connection ended");
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
