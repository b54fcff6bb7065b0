//! The proxies' remote shell: the HA core's [`RemoteShell`] port over the
//! SSH adapter (`halyard-ssh-proxy`), one target per non-peer node.

use std::time::Duration;

use async_trait::async_trait;
use halyard_backend::remote::{RemoteError, RemoteOutput, RemoteShell};
use halyard_ssh_proxy::{SshError, SshProxy, TargetConfig};

#[derive(Debug, Clone)]
pub struct SshRemote(SshProxy);

impl SshRemote {
    /// Targets by the non-peer node's object name.
    pub fn new(targets: Vec<(String, TargetConfig)>) -> Self {
        SshRemote(SshProxy::new(targets))
    }
}

fn error(e: SshError) -> RemoteError {
    match e {
        SshError::UnknownTarget(t) => RemoteError::UnknownTarget(t),
        e @ SshError::Timeout { .. } => RemoteError::Timeout(e.to_string()),
        e => RemoteError::Unreachable(e.to_string()),
    }
}

#[async_trait]
impl RemoteShell for SshRemote {
    async fn run(
        &self,
        target: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<RemoteOutput, RemoteError> {
        let o = self.0.run(target, command, timeout).await.map_err(error)?;
        Ok(RemoteOutput {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }

    async fn put_file(
        &self,
        target: &str,
        path: &str,
        contents: &[u8],
        timeout: Duration,
    ) -> Result<(), RemoteError> {
        self.0
            .put_file(target, path, contents, timeout)
            .await
            .map_err(error)
    }
}
