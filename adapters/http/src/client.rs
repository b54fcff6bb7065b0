//! A small HTTP/1.1 client (plain `http://`), for fetching software
//! releases from an HTTP load server. One request per connection; bodies
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
