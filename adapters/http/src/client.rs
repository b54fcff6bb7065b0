//! A small HTTP/1.1 client, for fetching software releases from an HTTP
//! load server (plain `http://`) and for the command line's requests to
//! an agent's API ([`call`]; `https://` with the agent's certificate
//! pinned by its SHA-256 fingerprint). One request per connection; bodies
//! are bounded; every step has a deadline. [`download`] streams a body to
//! a file, so a release file of hundreds of megabytes is never held in
//! memory whole.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio_util::task::AbortOnDropHandle;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: not an http:// URL: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no answer within {0:?}", .timeout)]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: body larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: writing {path}: {reason}")]
    Write {
        url: String,
        path: String,
        reason: String,
    },
}

/// One request of [`call`].
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// The `Authorization` header's value.
    pub authorization: Option<&'a str>,
    /// A JSON body (`Content-Type: application/json`), if any.
    pub json: Option<String>,
    /// For `https://`: the server certificate's SHA-256 fingerprint, as
    /// `openssl x509 -fingerprint -sha256` prints it (the agent logs it);
    /// only that certificate is accepted.
    pub pin: Option<&'a str>,
}

/// Sends one request and returns the status and body (at most `limit`
/// bytes), whatever the status.
pub async fn call(
    c: Call<'_>,
    limit: usize,
    timeout: Duration,
) -> Result<(u16, Bytes), ClientError> {
    let url = c.url.to_string();
    match tokio::time::timeout(timeout, call_inner(c, limit)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout { url, timeout }),
    }
}

async fn call_inner(c: Call<'_>, limit: usize) -> Result<(u16, Bytes), ClientError> {
    let url = c.url;
    let bad = |reason: String| ClientError::Url {
        url: url.to_string(),
        reason,
    };
    let transport = |reason: String| ClientError::Transport {
        url: url.to_string(),
        reason,
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("expected an http:// or https:// URL".into())),
    };
    let host = uri.host().ok_or_else(|| bad("no host".into()))?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.clone());
    let bare = host.trim_matches(['[', ']']).to_string();
    let stream = tokio::net::TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| transport(e.to_string()))?;
    let body = http_body_util::Full::new(Bytes::from(c.json.clone().unwrap_or_default()));
    let mut req = hyper::Request::builder()
        .method(c.method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "halyard")
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(a) = c.authorization {
        req = req.header(hyper::header::AUTHORIZATION, a);
    }
    if c.json.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(body).map_err(|e| bad(e.to_string()))?;
    let (res, _driver) = if tls {
        let pin = c.pin.ok_or_else(|| {
            bad("an https:// URL needs the server certificate's SHA-256 fingerprint to pin".into())
        })?;
        let config = tokio_rustls::rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Pinned::new(pin)))
            .with_no_client_auth();
        let name =
            rustls_pki_types::ServerName::try_from(bare.clone()).map_err(|e| bad(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| transport(e.to_string()))?;
        send(TokioIo::new(stream), req, &transport).await?
    } else {
        send(TokioIo::new(stream), req, &transport).await?
    };
    let status = res.status().as_u16();
    let body = Limited::new(res.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| transport(e.to_string()))?;
    Ok((status, body))
}

/// Sends the request on a new connection; returns the response with the
/// task driving the connection (dropping it stops the connection).
async fn send<T>(
    io: TokioIo<T>,
    req: hyper::Request<http_body_util::Full<Bytes>>,
    transport: &dyn Fn(String) -> ClientError,
) -> Result<
    (
        hyper::Response<hyper::body::Incoming>,
        AbortOnDropHandle<Result<(), hyper::Error>>,
    ),
    ClientError,
>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| transport(e.to_string()))?;
    let driver = AbortOnDropHandle::new(tokio::spawn(conn));
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| transport(e.to_string()))?;
    Ok((res, driver))
}

/// Accepts exactly the certificate of one SHA-256 fingerprint (the
/// agent's self-signed one, which no CA vouches for); the handshake's
/// signatures are still verified.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: std::sync::Arc<tokio_rustls::rustls::crypto::CryptoProvider>,
}

impl Pinned {
    fn new(fingerprint: &str) -> Self {
        Pinned {
            fingerprint: fingerprint.replace(':', "").to_ascii_uppercase(),
            provider: std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()),
        }
    }
}

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        let got = halyard_cluster_model::secret::fingerprint(end_entity).replace(':', "");
        if subtle::ConstantTimeEq::ct_eq(got.as_bytes(), self.fingerprint.as_bytes()).into() {
            Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(tokio_rustls::rustls::Error::General(format!(
                "the server's certificate has SHA-256 fingerprint {}, not the pinned one",
                halyard_cluster_model::secret::fingerprint(end_entity)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// GETs `url` and returns its body (at most `limit` bytes).
pub async fn get(url: &str, limit: usize, timeout: Duration) -> Result<Bytes, ClientError> {
    match tokio::time::timeout(timeout, get_inner(url, limit)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            url: url.to_string(),
            timeout,
        }),
    }
}

/// GETs `url` and streams its body into `to` (created or truncated), at
/// most `limit` bytes; returns the bytes written. On an error the file may
/// hold a part of the body: callers write to a temporary name.
pub async fn download(
    url: &str,
    to: &std::path::Path,
    limit: u64,
    timeout: Duration,
) -> Result<u64, ClientError> {
    match tokio::time::timeout(timeout, download_inner(url, to, limit)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            url: url.to_string(),
            timeout,
        }),
    }
}

async fn download_inner(url: &str, to: &std::path::Path, limit: u64) -> Result<u64, ClientError> {
    use tokio::io::AsyncWriteExt;
    let write = |e: std::io::Error| ClientError::Write {
        url: url.to_string(),
        path: to.display().to_string(),
        reason: e.to_string(),
    };
    let (res, _driver) = response(url).await?;
    let mut file = tokio::fs::File::create(to).await.map_err(write)?;
    let mut body = res.into_body();
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        written += data.len() as u64;
        if written > limit {
            return Err(ClientError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        file.write_all(&data).await.map_err(write)?;
    }
    file.flush().await.map_err(write)?;
    file.sync_all().await.map_err(write)?;
    Ok(written)
}

async fn get_inner(url: &str, limit: usize) -> Result<Bytes, ClientError> {
    let (res, _driver) = response(url).await?;
    Limited::new(res.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| ClientError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// Sends the GET and returns a successful response with the task driving
/// its connection; dropping that handle stops it.
async fn response(
    url: &str,
) -> Result<
    (
        hyper::Response<hyper::body::Incoming>,
        AbortOnDropHandle<Result<(), hyper::Error>>,
    ),
    ClientError,
> {
    let bad = |reason: String| ClientError::Url {
        url: url.to_string(),
        reason,
    };
    let transport = |reason: String| ClientError::Transport {
        url: url.to_string(),
        reason,
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// is supported".into()));
    }
    let host = uri.host().ok_or_else(|| bad("no host".into()))?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.clone());
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| transport(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport(e.to_string()))?;
    // The connection is driven until the response is read: the caller
    // holds the driver, which stops it when dropped.
    let driver = AbortOnDropHandle::new(tokio::spawn(conn));
    let req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "halyard")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| transport(e.to_string()))?;
    if !res.status().is_success() {
        return Err(ClientError::Status {
            url: url.to_string(),
            status: res.status().as_u16(),
        });
    }
    Ok((res, driver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `body` with `status` to every connection.
    async fn server(status: &'static str, body: Vec<u8>) -> (String, AbortOnDropHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/r/1.bin", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            }
        });
        (url, AbortOnDropHandle::new(task))
    }

    #[tokio::test]
    async fn a_download_streams_to_the_file_and_keeps_its_limit() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (url, _server) = server("200 OK", body.clone()).await;
        let dir = std::env::temp_dir().join(format!("halyard-dl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let to = dir.join("1.bin.part");
        let n = download(&url, &to, 1 << 20, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(n, body.len() as u64);
        assert_eq!(std::fs::read(&to).unwrap(), body);

        let err = download(&url, &to, 1000, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::TooLarge { limit: 1000, .. }),
            "{err}"
        );

        let (missing, _s) = server("404 Not Found", b"no".to_vec()).await;
        let err = download(&missing, &to, 1000, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Status { status: 404, .. }),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
