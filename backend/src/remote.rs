//! Proxies for non-peer nodes (FIG. 8): the port through which the HA core
//! runs a proxy component's commands on the node it manages, and the
//! report format of the node's `stats` command.
//!
//! A proxy component runs on a peer node and manages a non-peer node (one
//! that runs no halyard) through a [`RemoteShell`]. The core drives it like
//! a process component, OCF style, but every command runs on the target:
//!
//! - a new incarnation checks that the target answers (`true`);
//! - made primary, it writes the configuration files from the repository
//!   to the target, then runs the `start` command, which must be
//!   idempotent and return once the service runs (OCF `start`): a restart
//!   or a fail-over to another peer node's proxy pushes the configuration
//!   again and starts whatever is not running;
//! - the health audit runs the `health` command on the primary (exit 0 =
//!   healthy) and a reachability probe on the others;
//! - the primary runs the `stats` command periodically; its output is
//!   relayed to the agent as statistics (events on the proxy's node) and
//!   alarm changes (replicated: every node's agent shows them) of the
//!   non-peer node;
//! - stopped by CRIM while primary (disabled after repeated failures), it
//!   runs `stop`. A lock, a demotion or the agent's own shutdown stops
//!   nothing, as for a process component: another proxy (or the next
//!   start) takes the service over as it runs.
//!
//! The implementation of the port lives outside the backend (the SSH one
//! is the `halyard-ssh-proxy` adapter crate): the backend knows no
//! protocol.
//!
//! # The `stats` output
//!
//! One report per line; blank lines and lines starting with `#` are
//! ignored, and a malformed line is logged and skipped:
//!
//! ```text
//! metric <name> <value> [<unit>]
//! alarm raise <probable-cause> <severity> <text...>
//! alarm clear <probable-cause>
//! ```
//!
//! `<name>` is letters, digits, `-`, `_` or `.`; `<value>` a number. A
//! metric becomes the Statistic object `<node>/stat=<name>`. An alarm is
//! identified by the node and its probable cause (X.733), written as the
//! schema's enumeration label or YANG name (`highTemperature` or
//! `high-temperature`); `<severity>` is critical, major, minor, warning or
//! indeterminate. An alarm raised again with the same severity and text
//! is not announced again.

use std::time::Duration;

use async_trait::async_trait;
use halyard_cluster_model::model::{PerceivedSeverity, ProbableCause};

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Why a remote call failed (the implementation's error, as text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("no remote target {0}")]
    UnknownTarget(String),
    /// Not reachable: connection refused or lost, login refused, host key
    /// mismatch.
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Timeout(String),
}

/// Runs commands and writes files on the non-peer node a proxy manages.
/// `target` is the non-peer node's persistent name.
#[async_trait]
pub trait RemoteShell: Send + Sync + std::fmt::Debug {
    /// Runs a shell command line on the target.
    async fn run(
        &self,
        target: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<RemoteOutput, RemoteError>;

    /// Writes a file on the target (atomically: whole or not at all).
    async fn put_file(
        &self,
        target: &str,
        path: &str,
        contents: &[u8],
        timeout: Duration,
    ) -> Result<(), RemoteError>;
}

/// Quotes one word for a POSIX shell.
pub fn sh_quote(word: &str) -> String {
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

/// One line of a `stats` report.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Metric {
        name: String,
        value: f64,
        unit: String,
    },
    Raise {
        cause: ProbableCause,
        severity: PerceivedSeverity,
        text: String,
    },
    Clear {
        cause: ProbableCause,
    },
}

fn valid_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses one line of a `stats` report: `None` for a blank or comment
/// line, an error naming what was expected for a malformed one.
pub fn parse_report(line: &str) -> Option<Result<Report, String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut w = line.split_whitespace();
    let r = match (w.next(), w.next()) {
        (Some("metric"), Some(name)) => (|| {
            if !valid_name(name) {
                return Err(format!(
                    "found metric name \"{name}\", expected letters, digits, '-', '_' or '.'"
                ));
            }
            let value = w
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or("expected metric <name> <number> [<unit>]")?;
            let unit: String = w.next().unwrap_or("").chars().take(32).collect();
            Ok(Report::Metric {
                name: name.to_string(),
                value,
                unit,
            })
        })(),
        (Some("alarm"), Some("raise")) => (|| {
            let cause = w
                .next()
                .ok_or("expected alarm raise <cause> <severity> <text>")?
                .parse::<ProbableCause>()?;
            let severity = w
                .next()
                .ok_or("expected alarm raise <cause> <severity> <text>")?
                .parse::<PerceivedSeverity>()?;
            if severity == PerceivedSeverity::Cleared {
                return Err("expected a severity other than cleared (use alarm clear)".into());
            }
            let text = w.collect::<Vec<_>>().join(" ");
            Ok(Report::Raise {
                cause,
                severity,
                text,
            })
        })(),
        (Some("alarm"), Some("clear")) => w
            .next()
            .ok_or_else(|| "expected alarm clear <cause>".to_string())
            .and_then(|c| c.parse::<ProbableCause>())
            .map(|cause| Report::Clear { cause }),
        _ => Err("expected metric ..., alarm raise ... or alarm clear ...".into()),
    };
    Some(r.map_err(|e| format!("{e} in \"{line}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines() {
        assert_eq!(parse_report("  "), None);
        assert_eq!(parse_report("# comment"), None);
        assert_eq!(
            parse_report("metric load 1.5 percent"),
            Some(Ok(Report::Metric {
                name: "load".into(),
                value: 1.5,
                unit: "percent".into()
            }))
        );
        assert_eq!(
            parse_report("metric sessions 12"),
            Some(Ok(Report::Metric {
                name: "sessions".into(),
                value: 12.0,
                unit: String::new()
            }))
        );
        assert_eq!(
            parse_report("alarm raise highTemperature major inlet at 71 C"),
            Some(Ok(Report::Raise {
                cause: ProbableCause::HighTemperature,
                severity: PerceivedSeverity::Major,
                text: "inlet at 71 C".into()
            }))
        );
        assert_eq!(
            parse_report("alarm clear high-temperature"),
            Some(Ok(Report::Clear {
                cause: ProbableCause::HighTemperature
            }))
        );
        for bad in [
            "metric load",
            "metric lo/ad 1",
            "metric load NaN",
            "alarm raise nonsense major x",
            "alarm raise highTemperature cleared x",
            "alarm clear",
            "hello",
        ] {
            let e = parse_report(bad).unwrap().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
