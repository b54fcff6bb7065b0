//! The proxy's remote shell over SSH: runs commands on non-peer nodes and
//! writes files there, through libssh2 (the `ssh2` crate, client only).
//!
//! - Login with a private key file (no passwords, no agent).
//! - The server's host key is checked against a pinned SHA-256 fingerprint
//!   (`SHA256:...`, as `ssh-keygen -lf` prints it). Without a pinned one
//!   the first key seen is accepted, logged at WARN, and pinned for the
//!   life of the process (trust on first use): a different key later is
//!   refused like a pinned mismatch.
//! - Every call has a deadline: the TCP connect, the handshake and each
//!   blocking libssh2 call are bounded by it, so a dead or stalled server
//!   gives an error, never a hang.
//! - libssh2 is blocking: every call runs in `tokio::task::spawn_blocking`,
//!   never on an async worker thread.
//! - One session per target is kept and reused; any transport error drops
//!   it, and the next call reconnects.
//!
//! The crate knows nothing of Halyard's model or backend; the agent wires
//! it into the HA core's `RemoteShell` port.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

/// Largest stdout (and stderr) kept from one command.
pub const MAX_OUTPUT: usize = 1 << 20;

/// How to reach one non-peer node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file (OpenSSH format); its public half, when present
    /// as `<key>.pub`, is given to libssh2 too.
    pub key: PathBuf,
    /// The server's host-key fingerprint, `SHA256:<base64>`; `None` trusts
    /// the first key seen (and logs it).
    pub host_key: Option<String>,
}

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("no SSH target named {0}")]
    UnknownTarget(String),
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error(
        "host key of {addr} is {found}, expected {expected}: refusing to log in (a different server, or a re-installed one)"
    )]
    HostKey {
        addr: String,
        found: String,
        expected: String,
    },
    #[error("{user}@{addr} refused the key {key}: {detail}")]
    Auth {
        user: String,
        addr: String,
        key: String,
        detail: String,
    },
    #[error("{addr}: no answer within {ms} ms")]
    Timeout { addr: String, ms: u128 },
    #[error("{addr}: {detail}")]
    Session { addr: String, detail: String },
    #[error("the SSH worker stopped: {0}")]
    Worker(String),
}

impl SshError {
    /// Whether the session is unusable after this error.
    fn drops_session(&self) -> bool {
        !matches!(self, SshError::UnknownTarget(_))
    }
}

struct Slot {
    config: TargetConfig,
    /// The live session; the mutex also serializes calls to one target.
    session: Mutex<Option<ssh2::Session>>,
    /// The fingerprint seen first, when none was pinned.
    learned: Mutex<Option<String>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("config", &self.config)
            .field("learned", &self.learned)
            .finish_non_exhaustive()
    }
}

/// SSH sessions to the configured targets, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SshProxy {
    targets: Arc<BTreeMap<String, Arc<Slot>>>,
}

impl SshProxy {
    pub fn new(targets: impl IntoIterator<Item = (String, TargetConfig)>) -> Self {
        let targets = targets
            .into_iter()
            .map(|(name, config)| {
                (
                    name,
                    Arc::new(Slot {
                        config,
                        session: Mutex::new(None),
                        learned: Mutex::new(None),
                    }),
                )
            })
            .collect();
        SshProxy {
            targets: Arc::new(targets),
        }
    }

    /// Runs `command` through the target's login shell; stdout and stderr
    /// are read to the end and the exit status returned.
    pub async fn run(
        &self,
        target: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let command = command.to_string();
        self.call(target, timeout, move |s, addr, deadline| {
            exec(s, addr, deadline, &command, None)
        })
        .await
    }

    /// Writes `contents` to `path` on the target: to a temporary file
    /// beside it, then renamed, so a reader never sees half a file. The
    /// parent directory is created.
    pub async fn put_file(
        &self,
        target: &str,
        path: &str,
        contents: &[u8],
        timeout: Duration,
    ) -> Result<(), SshError> {
        let q = quote(path);
        let tmp = quote(&format!("{path}.halyard-tmp"));
        let command = format!("mkdir -p \"$(dirname {q})\" && cat > {tmp} && mv -f {tmp} {q}");
        let contents = contents.to_vec();
        let out = self
            .call(target, timeout, move |s, addr, deadline| {
                exec(s, addr, deadline, &command, Some(&contents))
            })
            .await?;
        if out.status == 0 {
            Ok(())
        } else {
            let addr = self
                .targets
                .get(target)
                .map(|s| addr_of(&s.config))
                .unwrap_or_default();
            Err(SshError::Session {
                addr,
                detail: format!(
                    "writing {path} failed with status {}: {}",
                    out.status,
                    out.stderr.trim()
                ),
            })
        }
    }

    /// The host-key fingerprint accepted for a target (pinned or learned).
    pub fn fingerprint(&self, target: &str) -> Option<String> {
        let slot = self.targets.get(target)?;
        slot.config.host_key.clone().or_else(|| {
            slot.learned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        target: &str,
        timeout: Duration,
        op: impl FnOnce(&ssh2::Session, &str, Instant) -> Result<T, SshError> + Send + 'static,
    ) -> Result<T, SshError> {
        let slot = self
            .targets
            .get(target)
            .cloned()
            .ok_or_else(|| SshError::UnknownTarget(target.to_string()))?;
        let deadline = Instant::now() + timeout;
        tokio::task::spawn_blocking(move || {
            let addr = addr_of(&slot.config);
            let mut session = slot.session.lock().unwrap_or_else(|e| e.into_inner());
            if Instant::now() >= deadline {
                // Waited for an earlier call to the same target too long.
                return Err(SshError::Timeout {
                    addr,
                    ms: timeout.as_millis(),
                });
            }
            if session.is_none() {
                *session = Some(connect_retrying(&slot, &addr, deadline)?);
            }
            let s = session.as_ref().expect("connected");
            let r = op(s, &addr, deadline);
            if let Err(e) = &r
                && e.drops_session()
            {
                tracing::debug!(%addr, error = %e, "dropping the SSH session");
                *session = None;
            }
            r
        })
        .await
        .map_err(|e| SshError::Worker(e.to_string()))?
    }
}

fn addr_of(c: &TargetConfig) -> String {
    if c.host.contains(':') {
        format!("[{}]:{}", c.host, c.port)
    } else {
        format!("{}:{}", c.host, c.port)
    }
}

fn remaining(deadline: Instant, addr: &str, total: Duration) -> Result<Duration, SshError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(SshError::Timeout {
            addr: addr.to_string(),
            ms: total.as_millis(),
        })
    } else {
        Ok(left)
    }
}

/// libssh2's timeout for the blocking calls still to make (at least 1 ms:
/// 0 would mean none).
fn set_deadline(s: &ssh2::Session, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    s.set_timeout((left.as_millis().clamp(1, u128::from(u32::MAX))) as u32);
}

fn fingerprint_of(s: &ssh2::Session) -> Option<String> {
    let hash = s.host_key_hash(ssh2::HashType::Sha256)?;
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
    ))
}

/// Attempts at a fresh connection whose transport fails before the SSH
/// handshake is done.
const CONNECT_ATTEMPTS: u32 = 3;

/// Connects, retrying within the deadline when the server drops a fresh
/// connection before or during the handshake: sshd does so by design when
/// it has many unauthenticated connections (`MaxStartups` early drop) or
/// cannot fork, and OpenSSH's own client retries the same way
/// (`ConnectionAttempts`). Refusals (nothing listening), host-key
/// mismatches, authentication failures and time-outs are not retried.
fn connect_retrying(slot: &Slot, addr: &str, deadline: Instant) -> Result<ssh2::Session, SshError> {
    let mut attempt = 1;
    loop {
        match connect(slot, addr, deadline) {
            Err(SshError::Session { detail, .. })
                if attempt < CONNECT_ATTEMPTS
                    && deadline.saturating_duration_since(Instant::now())
                        > Duration::from_millis(100) =>
            {
                tracing::debug!(%addr, attempt, %detail, "SSH handshake failed: connecting again");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
            }
            r => return r,
        }
    }
}

fn connect(slot: &Slot, addr: &str, deadline: Instant) -> Result<ssh2::Session, SshError> {
    let c = &slot.config;
    let total = deadline.saturating_duration_since(Instant::now());
    let conn_err = |detail: String| SshError::Connect {
        addr: addr.to_string(),
        detail,
    };
    let sockaddr = (c.host.as_str(), c.port)
        .to_socket_addrs()
        .map_err(|e| conn_err(e.to_string()))?
        .next()
        .ok_or_else(|| conn_err("no address".into()))?;
    let tcp = TcpStream::connect_timeout(&sockaddr, remaining(deadline, addr, total)?)
        .map_err(|e| conn_err(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let mut s = ssh2::Session::new().map_err(|e| conn_err(e.to_string()))?;
    s.set_tcp_stream(tcp);
    s.set_blocking(true);
    set_deadline(&s, deadline);
    s.handshake()
        .map_err(|e| classify(e, addr, deadline, total))?;
    let found = fingerprint_of(&s).ok_or_else(|| conn_err("the server sent no host key".into()))?;
    let expected = match &c.host_key {
        Some(pinned) => Some(pinned.clone()),
        None => {
            let mut learned = slot.learned.lock().unwrap_or_else(|e| e.into_inner());
            match learned.as_ref() {
                Some(l) => Some(l.clone()),
                None => {
                    tracing::warn!(%addr, fingerprint = %found, "no host key pinned: trusting the first one seen (set host_key to pin it)");
                    *learned = Some(found.clone());
                    None
                }
            }
        }
    };
    if let Some(expected) = expected
        && expected.trim_end_matches('=') != found
    {
        return Err(SshError::HostKey {
            addr: addr.to_string(),
            found,
            expected,
        });
    }
    set_deadline(&s, deadline);
    let public = c.key.with_extension("pub");
    let public = public.exists().then_some(public);
    let auth = s.userauth_pubkey_file(&c.user, public.as_deref(), &c.key, None);
    if let Err(e) = auth
        && !s.authenticated()
    {
        if is_timeout(&e) {
            return Err(SshError::Timeout {
                addr: addr.to_string(),
                ms: total.as_millis(),
            });
        }
        return Err(SshError::Auth {
            user: c.user.clone(),
            addr: addr.to_string(),
            key: c.key.display().to_string(),
            detail: e.message().to_string(),
        });
    }
    tracing::debug!(%addr, user = %c.user, "SSH session open");
    Ok(s)
}

fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(-9)) // LIBSSH2_ERROR_TIMEOUT
}

fn classify(e: ssh2::Error, addr: &str, deadline: Instant, total: Duration) -> SshError {
    if is_timeout(&e) || Instant::now() >= deadline {
        SshError::Timeout {
            addr: addr.to_string(),
            ms: total.as_millis(),
        }
    } else {
        SshError::Session {
            addr: addr.to_string(),
            detail: e.message().to_string(),
        }
    }
}

fn io_classify(e: std::io::Error, addr: &str, deadline: Instant, total: Duration) -> SshError {
    if e.kind() == std::io::ErrorKind::TimedOut || Instant::now() >= deadline {
        SshError::Timeout {
            addr: addr.to_string(),
            ms: total.as_millis(),
        }
    } else {
        SshError::Session {
            addr: addr.to_string(),
            detail: e.to_string(),
        }
    }
}

fn read_limited(r: &mut impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.by_ref().take(MAX_OUTPUT as u64).read_to_end(&mut buf)?;
    // Whatever is past the limit is drained, not kept.
    std::io::copy(r, &mut std::io::sink())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn exec(
    s: &ssh2::Session,
    addr: &str,
    deadline: Instant,
    command: &str,
    stdin: Option<&[u8]>,
) -> Result<Output, SshError> {
    let total = deadline.saturating_duration_since(Instant::now());
    set_deadline(s, deadline);
    let classify = |e| classify(e, addr, deadline, total);
    let io = |e| io_classify(e, addr, deadline, total);
    let mut ch = s.channel_session().map_err(classify)?;
    ch.exec(command).map_err(classify)?;
    if let Some(data) = stdin {
        ch.write_all(data).map_err(io)?;
    }
    ch.send_eof().map_err(classify)?;
    // stderr is small in practice: read stdout to the end, then stderr
    // (libssh2 buffers the other stream meanwhile).
    set_deadline(s, deadline);
    let stdout = read_limited(&mut ch).map_err(io)?;
    let stderr = read_limited(&mut ch.stderr()).map_err(io)?;
    set_deadline(s, deadline);
    ch.wait_close().map_err(classify)?;
    let status = ch.exit_status().map_err(classify)?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Quotes one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line for a POSIX shell from a program and its arguments.
pub fn command_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc/d.e"), "abc/d.e");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(
            command_line(&["sh".into(), "-c".into(), "echo $HOME".into()]),
            "sh -c 'echo $HOME'"
        );
    }
}
