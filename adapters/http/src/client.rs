//! A small HTTP/1.1 client (plain `http://`), for fetching software
//! releases from an HTTP load server. One request per connection; bodies
//! are bounded; every step has a deadline.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

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

async fn get_inner(url: &str, limit: usize) -> Result<Bytes, ClientError> {
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
    // The connection is driven until the response is read; dropped with it.
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "halyard")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    let result = async {
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
        Limited::new(res.into_body(), limit)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| transport(e.to_string()))
    }
    .await;
    driver.abort();
    result
}
