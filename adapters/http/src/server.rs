//! The server: listeners, the router, the layers around it, and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use halyard_cluster_model::port::InformationModel;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::auth::Authenticator;
use crate::config::{HttpConfig, Limits};
use crate::conn::Peer;
use crate::conn::{Gate, PlainListener};
use crate::error::{ApiError, HttpError};
use crate::metrics::{HttpMetrics, RequestLabels, RouteLabels};
use crate::repr::{self, Format};
use crate::state::{AppState, Jobs, Shared};
use crate::tls::TlsListener;

/// How long `run` waits for open connections after shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Negotiates the format, renders error bodies, counts and times requests,
/// and opens a tracing span per request.
async fn front(
    State(st): State<Shared>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let format = Format::negotiate(accept.as_deref(), req.uri().query());
    // The console signs in with its own form (see render_error).
    let scripted = req.headers().contains_key("x-requested-with");
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let span = tracing::info_span!(parent: &st.span, "http", %method, path = %req.uri().path(), %peer, status = tracing::field::Empty);
    let resp = async {
        if !st.admit(peer.ip()) {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "too many requests from this address; slow down",
            )
            .into_response();
        }
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let now = std::time::Instant::now();
        // A source refused for failed logins is answered at once, whatever
        // it sends: its guesses are not even checked.
        if let Err(wait) = st.auth_guard.check(peer.ip(), now) {
            st.metrics.auth_refused.inc();
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "login-refused",
                "too many failed logins from this address; try again later",
            )
            .into_response_after(wait);
        }
        match st
            .auth
            .authenticate(auth, req.uri().query(), Some(st.model.as_ref()))
            .await
        {
            Ok(caller) => {
                if caller.user.is_some() {
                    st.auth_guard.succeeded(peer.ip());
                }
                req.extensions_mut().insert(caller);
                req.extensions_mut().insert(format);
                next.run(req).await
            }
            Err(e) => {
                st.metrics.auth_failures.inc();
                let verdict = st.auth_guard.failed(peer.ip(), now);
                if let halyard_cluster_model::guard::Verdict::Refused { failures, for_ } = verdict {
                    tracing::warn!(%peer, failures, refused_for_s = for_.as_secs(), "HTTP logins from this address refused for a while");
                }
                e.into_response()
            }
        }
    }
    .instrument(span.clone())
    .await;
    let mut resp = render_error(resp, format, scripted).await;
    resp.headers_mut()
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    let status = resp.status().as_u16();
    span.record("status", status);
    let elapsed = start.elapsed();
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    st.metrics
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(elapsed.as_secs_f64());
    tracing::debug!(parent: &span, status, elapsed_ms = elapsed.as_millis() as u64, "answered");
    resp
}

/// Gives every error answer a structured body in the negotiated format,
/// including the framework's own (unknown route, body too large, ...).
/// A 401 offers Basic (the documented scheme: a browser then asks for a
/// user and password) and Bearer; to a script that says so with
/// `X-Requested-With` (the console, which has its own sign-in form) only
/// Bearer, so no browser dialog covers the page.
async fn render_error(resp: Response, format: Format, scripted: bool) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    let err = match resp.extensions().get::<ApiError>() {
        Some(e) => e.clone(),
        None => {
            let (parts, body) = resp.into_parts();
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let code = match parts.status {
                StatusCode::NOT_FOUND => "not-found",
                StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "too-large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                s if s.is_client_error() => "bad-request",
                _ => "internal",
            };
            let msg = if text.is_empty() {
                parts
                    .status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_string()
            } else {
                text
            };
            ApiError::new(parts.status, code, msg)
        }
    };
    let mut r = (err.status, repr::error_doc(&err, format)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Some(v) = retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if err.status == StatusCode::UNAUTHORIZED {
        if !scripted {
            r.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"halyard\", charset=\"UTF-8\""),
            );
        }
        r.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"halyard\""),
        );
    }
    r
}

/// The HTTP face, bound to its addresses and ready to run.
pub struct HttpServer {
    listeners: Vec<std::net::TcpListener>,
    addrs: Vec<SocketAddr>,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stop: watch::Sender<bool>,
    /// Requests hyper refused as malformed (see `serve.rs`).
    malformed: prometheus_client::metrics::counter::Counter,
    state: Arc<AppState>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Binds every configured address. Nothing is served until [`run`](Self::run).
    pub fn bind(config: HttpConfig, model: Arc<dyn InformationModel>) -> Result<Self, HttpError> {
        Self::bind_with_registry(config, model, Registry::default())
    }

    /// As [`bind`](Self::bind), exposing the caller's own metrics (the
    /// agent's, the other faces') on `/metrics` next to the HTTP face's.
    pub fn bind_with_registry(
        config: HttpConfig,
        model: Arc<dyn InformationModel>,
        mut registry: Registry,
    ) -> Result<Self, HttpError> {
        if config.listen.is_empty() {
            return Err(HttpError::NoListenAddress);
        }
        let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let auth = Authenticator::new(&config).map_err(HttpError::Config)?;
        let metrics = HttpMetrics::register(&mut registry);
        let malformed = metrics.malformed.clone();
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for addr in &config.listen {
            let l = std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind {
                addr: *addr,
                source,
            })?;
            l.set_nonblocking(true).map_err(|source| HttpError::Bind {
                addr: *addr,
                source,
            })?;
            addrs.push(l.local_addr().map_err(|source| HttpError::Bind {
                addr: *addr,
                source,
            })?);
            listeners.push(l);
        }
        let (stop, shutdown) = watch::channel(false);
        let state = Arc::new(AppState {
            model,
            auth,
            policy: Default::default(),
            limits: config.limits.clone(),
            metrics,
            registry,
            exposition: Default::default(),
            last_scrape: Default::default(),
            sealed: Default::default(),
            up: std::time::Instant::now(),
            jobs: Mutex::new(Jobs::default()),
            shutdown,
            buckets: Mutex::new(HashMap::new()),
            release_dir: config.release_dir.clone(),
            auth_guard: config.auth_guard.clone(),
            started: halyard_cluster_model::Timestamp::now(),
            span: tracing::Span::current(),
        });
        let router = crate::api::routes()
            .merge(crate::console::routes())
            .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
            .layer(tower::limit::ConcurrencyLimitLayer::new(
                config.limits.max_concurrent_requests.max(1),
            ))
            .layer(middleware::from_fn_with_state(state.clone(), front))
            .with_state(state.clone());
        Ok(HttpServer {
            listeners,
            addrs,
            router,
            tls,
            limits: config.limits.clone(),
            stop,
            malformed,
            state,
        })
    }

    /// The bound addresses (with the ports picked for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Serves until `shutdown` completes, then closes event streams, lets
    /// open requests finish (a few seconds at most) and stops every task it
    /// spawned.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), HttpError> {
        let HttpServer {
            listeners,
            addrs,
            router,
            tls,
            limits,
            stop,
            malformed,
            state,
        } = self;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(keep_exposition(state, stop.subscribe()));
        for (l, addr) in listeners.into_iter().zip(addrs) {
            let l = tokio::net::TcpListener::from_std(l).map_err(HttpError::Serve)?;
            let stopped = stop.subscribe();
            let gate = Gate::new(limits.max_connections, limits.idle_timeout);
            let malformed = malformed.clone();
            let router = router.clone();
            match &tls {
                Some(acceptor) => {
                    let l =
                        TlsListener::new(l, acceptor.clone(), gate).map_err(HttpError::Serve)?;
                    tracing::info!(%addr, "HTTP face listening (HTTPS)");
                    tasks.spawn(crate::serve::serve(l, router, stopped, malformed));
                }
                None => {
                    let l = PlainListener::new(l, gate);
                    tracing::info!(%addr, "HTTP face listening");
                    tasks.spawn(crate::serve::serve(l, router, stopped, malformed));
                }
            }
        }
        let mut failure = None;
        tokio::select! {
            () = shutdown => {}
            Some(r) = tasks.join_next() => {
                failure = Some(match r {
                    Ok(()) => HttpError::Serve(std::io::Error::other("a listener stopped")),
                    Err(e) => HttpError::Serve(std::io::Error::other(e.to_string())),
                });
            }
        }
        let _ = stop.send(true);
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(r) = tasks.join_next().await {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "HTTP listener ended with an error");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("HTTP connections still open after shutdown; closing them");
            tasks.shutdown().await;
        }
        tracing::info!("HTTP face stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// How often the kept exposition is brought up to date while someone
/// scrapes: a scrape then reads only what changed since (the statistics
/// collector changes thousands of objects at once every two seconds at
/// 10,000 components; read by the scrape, that made its slowest tenth).
const EXPOSITION_REFRESH: Duration = Duration::from_millis(500);
/// A scrape serves the exposition as of at most this long ago; an older
/// one (no scrape for a while, or a refresh that lags) it refreshes first,
/// unless a refresh is under way (then see `EXPOSITION_STALE`).
pub(crate) const EXPOSITION_MAX_AGE: Duration = Duration::from_secs(1);
/// While a refresh is under way, a scrape sends the last one if it is not
/// older than this, rather than wait.
pub(crate) const EXPOSITION_STALE: Duration = Duration::from_secs(3);
/// Without a scrape for this long, the exposition is left as it is.
const EXPOSITION_IDLE: Duration = Duration::from_secs(300);

/// Keeps `/metrics`' exposition close to the model between scrapes; ends
/// when the face stops.
async fn keep_exposition(st: Arc<AppState>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EXPOSITION_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let last = st.last_scrape.load(std::sync::atomic::Ordering::Relaxed);
        if last == 0 || st.uptime_ms().saturating_sub(last) > EXPOSITION_IDLE.as_millis() as u64 {
            continue;
        }
        // A scrape refreshing it now does this round's work.
        if let Err(e) = st.refresh_exposition(false).await {
            tracing::debug!(error = %e, "the exposition could not be brought up to date");
        }
    }
}
