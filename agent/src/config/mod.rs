//! The config file: TOML describing the agent, its faces and the element.
//! Every error names `file:line:col` and says what was expected. Reading
//! the file stops at the first syntax error or unknown word of a fixed set
//! (`words`); the semantic checks (`check`, one per section) then report
//! every mistake, not only the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

mod check;
#[cfg(test)]
mod tests;
mod words;

pub use words::*;

/// The built-in demo element, also shipped as `examples/demo.toml`.
pub const DEMO: &str = include_str!("../../../examples/demo.toml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub snmp: SnmpSection,
    #[serde(default)]
    pub netconf: NetconfSection,
    #[serde(default)]
    pub http: HttpSection,
    pub element: ElementSection,
    #[serde(default, rename = "shelf")]
    pub shelves: Vec<ShelfSection>,
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeSection>,
    #[serde(default, rename = "service_group")]
    pub groups: Vec<GroupSection>,
    #[serde(default, rename = "component")]
    pub components: Vec<ComponentSection>,
    #[serde(default)]
    pub statistics: StatisticsSection,
    #[serde(default, rename = "aggregate")]
    pub aggregates: Vec<AggregateEntry>,
    #[serde(default, rename = "threshold")]
    pub thresholds: Vec<ThresholdEntry>,
    #[serde(default)]
    pub cluster: ClusterSection,
    /// Software releases (load server, fail-safe commit); see `halyard boot`.
    pub release: Option<ReleaseSection>,
    #[serde(default)]
    pub hotswap: HotswapSection,
    #[serde(default, rename = "fru_type")]
    pub fru_types: Vec<FruTypeEntry>,
}

/// Where releases come from and how long a trial release has to prove
/// itself healthy before the node falls back to the committed one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSection {
    /// The load server: a directory with one release directory per version
    /// (`<load_server>/<version>/manifest.json`), or an `http://` URL of
    /// one with the same layout.
    pub load_server: Spanned<String>,
    /// The release `halyard boot` installs and commits on a fresh node.
    pub initial: Option<Spanned<String>>,
    /// Watchdog deadline of a trial boot.
    #[serde(default = "thirty_s")]
    pub watchdog_ms: Spanned<u32>,
}

fn thirty_s() -> Spanned<u32> {
    Spanned::new(0..0, 30_000)
}

/// The hot-swap manager's buses. The simulated bus (the hot-swap
/// controllers' Insert and Remove operations) is always there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotswapSection {
    /// A directory-watching bus: `<directory>/<shelf>/slot-<n>.toml` with
    /// `type`, `serial` and `revision` is the unit in slot n of that shelf.
    pub directory: Option<PathBuf>,
    /// How often the directory is read.
    #[serde(default = "poll_ms")]
    pub poll_ms: Spanned<u32>,
}

impl Default for HotswapSection {
    fn default() -> Self {
        Self {
            directory: None,
            poll_ms: poll_ms(),
        }
    }
}

fn poll_ms() -> Spanned<u32> {
    Spanned::new(0..0, 500)
}

/// A FRU type: its class and the component managers to instantiate for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FruTypeEntry {
    pub name: Spanned<String>,
    pub class: FruClass,
    #[serde(default)]
    pub instantiate: Instantiate,
    /// linecard: its ports, physical entities created with the card.
    #[serde(default)]
    pub ports: u32,
    /// linecard: the ports' nominal speed.
    #[serde(default = "gigabit")]
    pub port_speed_mbps: u32,
    #[serde(default)]
    pub components: Vec<FruComponentEntry>,
}

fn gigabit() -> u32 {
    1000
}

/// A component manager of a FRU type, one per unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FruComponentEntry {
    pub name: Spanned<String>,
    pub kind: FruComponentKind,
    pub command: Spanned<Vec<String>>,
    pub stop: Option<Vec<String>>,
    pub health: Option<Vec<String>>,
    pub role: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// ha-aware: it takes timed assignments (see `timed_switchover` of
    /// [[component]]).
    pub timed_switchover: Option<bool>,
    #[serde(default = "no_checkpoints")]
    pub checkpoint: Checkpoint,
    pub audit_period_ms: Option<u32>,
    pub audit_deadline_ms: Option<u32>,
    /// A [[service_group]] the component joins; without one, the unit's
    /// own group (no redundancy) takes it.
    pub group: Option<Spanned<String>>,
    /// A locked component is not started.
    #[serde(default)]
    pub admin: Admin,
}

fn no_checkpoints() -> Checkpoint {
    Checkpoint::None
}

/// Cluster timers. A cluster runs when the nodes have `cluster` addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Heartbeat period of the membership monitor.
    #[serde(default = "hb_ms")]
    pub heartbeat_ms: Spanned<u32>,
    /// A node without a round trip to the majority for this long gives up
    /// its primaries.
    #[serde(default = "lease_ms")]
    pub lease_ms: Spanned<u32>,
    /// The master declares a node lost after this long without a heartbeat.
    #[serde(default = "failure_ms")]
    pub failure_ms: Spanned<u32>,
    /// Consensus election timeout range.
    #[serde(default = "election_ms")]
    pub election_ms: Spanned<Vec<u32>>,
    /// A planned 2N switch-over between components that take timed
    /// assignments is scheduled this far ahead (0: at once, in two steps
    /// with a short interval without a primary). Nodes' clocks must agree
    /// far better than this (NTP or PTP).
    #[serde(default = "lead_ms")]
    pub switchover_lead_ms: Spanned<u32>,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            heartbeat_ms: hb_ms(),
            lease_ms: lease_ms(),
            failure_ms: failure_ms(),
            election_ms: election_ms(),
            switchover_lead_ms: lead_ms(),
        }
    }
}

fn lead_ms() -> Spanned<u32> {
    Spanned::new(0..0, 500)
}
fn hb_ms() -> Spanned<u32> {
    Spanned::new(0..0, 50)
}
fn lease_ms() -> Spanned<u32> {
    Spanned::new(0..0, 300)
}
fn failure_ms() -> Spanned<u32> {
    Spanned::new(0..0, 500)
}
fn election_ms() -> Spanned<Vec<u32>> {
    Spanned::new(0..0, vec![150, 300])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticsSection {
    /// Collection period.
    #[serde(default = "two_seconds")]
    pub period_ms: u32,
    /// History kept in the repository.
    #[serde(default = "sixty")]
    pub retention_minutes: u32,
    /// How often a statistic's value also goes to the history (at most
    /// once per collection): the live value follows every collection,
    /// the history is for trends, and at 10,000 components a sample every
    /// period would be thousands of rows a second.
    #[serde(default = "sixty")]
    pub history_period_s: u32,
    /// How long cleared alarms are kept.
    #[serde(default = "one_day")]
    pub alarm_retention_minutes: u32,
}

impl Default for StatisticsSection {
    fn default() -> Self {
        StatisticsSection {
            period_ms: two_seconds(),
            retention_minutes: sixty(),
            history_period_s: sixty(),
            alarm_retention_minutes: one_day(),
        }
    }
}

fn one_day() -> u32 {
    24 * 60
}

fn two_seconds() -> u32 {
    2000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateEntry {
    pub name: Spanned<String>,
    /// Statistic name, e.g. speed, temperature, cpu_load, output_power.
    pub statistic: Spanned<String>,
    pub function: AggregateFunction,
    /// Persistent name of the subtree aggregated.
    pub scope: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdEntry {
    pub name: Spanned<String>,
    pub statistic: Spanned<String>,
    /// Persistent name of the measured component.
    pub resource: Spanned<String>,
    pub rising: f64,
    pub falling: f64,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub severity: Severity,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub node: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Path of a hardware watchdog device, e.g. /dev/watchdog.
    pub watchdog_device: Option<PathBuf>,
    /// COpCo's policy for a command that conflicts with a running job.
    #[serde(default)]
    pub conflict_policy: crate::config::ConflictPolicy,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SnmpSection {
    #[serde(default)]
    pub listen: Vec<Spanned<String>>,
    #[serde(default)]
    pub communities: Vec<CommunityEntry>,
    #[serde(default)]
    pub users: Vec<SnmpUserEntry>,
    #[serde(default)]
    pub traps: Vec<TrapEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityEntry {
    pub name: Spanned<String>,
    #[serde(default)]
    pub write: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpUserEntry {
    pub name: Spanned<String>,
    pub auth: SnmpAuth,
    pub auth_pass: Spanned<String>,
    #[serde(rename = "priv")]
    pub privacy: Option<SnmpPriv>,
    pub priv_pass: Option<Spanned<String>>,
    #[serde(default)]
    pub write: bool,
    /// Weakest level for reads; authPriv when the user has a privacy key.
    pub read_level: Option<Spanned<SnmpLevel>>,
    /// Weakest level for writes; never weaker than reads'.
    pub write_level: Option<Spanned<SnmpLevel>>,
}

impl SnmpUserEntry {
    /// The levels reads and writes need: by default the strongest the
    /// user has keys for (a user with a privacy key is served at authPriv
    /// only: accepted at authNoPriv, its SETs travelled in clear text).
    pub fn levels(&self) -> (SnmpLevel, SnmpLevel) {
        let strongest = if self.priv_pass.is_some() {
            SnmpLevel::AuthPriv
        } else {
            SnmpLevel::AuthNoPriv
        };
        let read = self.read_level.as_ref().map_or(strongest, |l| *l.get_ref());
        let write = self.write_level.as_ref().map_or(read, |l| *l.get_ref());
        (read, write.max(read))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapEntry {
    /// `host:port` of the receiver.
    pub target: Spanned<String>,
    /// SNMPv2c with this community (default `public`)...
    pub community: Option<String>,
    /// ...or SNMPv3 as this `[[snmp.users]]` user, at authPriv when it
    /// has a privacy key.
    pub user: Option<Spanned<String>>,
    /// Informs (acknowledged, retried) instead of traps.
    #[serde(default)]
    pub inform: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NetconfSection {
    #[serde(default)]
    pub listen: Vec<Spanned<String>>,
    /// Writes every rpc, reply and notification to numbered files in this
    /// directory (conformance checks; off by default).
    pub trace_dir: Option<PathBuf>,
    #[serde(default)]
    pub users: Vec<LoginEntry>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default)]
    pub listen: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<LoginEntry>,
    #[serde(default)]
    pub anonymous_read: bool,
    /// When to speak HTTPS: "auto" (off loopback), "on" or "off".
    #[serde(default)]
    pub tls: crate::tls::TlsMode,
    /// Certificate chain and key (PEM); without them a self-signed pair
    /// is made in the data directory.
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginEntry {
    pub name: Spanned<String>,
    pub password: Option<Spanned<String>>,
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// HTTP bearer tokens of this user.
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub role: Role,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElementSection {
    pub name: Spanned<String>,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub software_version: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelfSection {
    pub name: Spanned<String>,
    #[serde(default = "one")]
    pub position: u32,
    #[serde(default, rename = "fru")]
    pub frus: Vec<FruEntry>,
    /// The shelf's model name (entPhysicalModelName).
    #[serde(default)]
    pub model: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FruEntry {
    pub kind: FruClass,
    pub name: Spanned<String>,
    pub slot: Spanned<u32>,
    /// A [[fru_type]]: its components are instantiated with the unit.
    #[serde(rename = "type")]
    pub fru_type: Option<Spanned<String>>,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub revision: String,
    /// Its model name (entPhysicalModelName); default: its type's name.
    #[serde(default)]
    pub model: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: Spanned<String>,
    pub shelf: Option<Spanned<String>>,
    #[serde(default = "localhost")]
    pub address: String,
    #[serde(default)]
    pub non_peer: bool,
    /// Cluster addresses (consensus over TCP, heartbeats over UDP, same
    /// port), one per cluster link; a second link is redundancy.
    #[serde(default)]
    pub cluster: Vec<Spanned<String>>,
    /// Not a founding member: the node starts waiting, and joins when an
    /// operator invokes Admit on its Node object.
    #[serde(default)]
    pub join: bool,
    /// This node's data directory and face addresses, when the nodes of a
    /// cluster share one config file (they override [agent] and the faces).
    pub data_dir: Option<PathBuf>,
    pub snmp: Option<Vec<Spanned<String>>>,
    pub netconf: Option<Vec<Spanned<String>>>,
    pub http: Option<Vec<Spanned<String>>>,
    /// How proxies reach a non-peer node (at `address`).
    pub ssh: Option<Spanned<SshSection>>,
    /// A non-peer node's configuration files: kept in the configuration
    /// repository, written to the node by its primary proxy before every
    /// start.
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
}

/// SSH access to a non-peer node, for the proxies that manage it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSection {
    #[serde(default = "ssh_port")]
    pub port: u16,
    #[serde(default = "root")]
    pub user: String,
    /// Private key file of the proxies (OpenSSH format).
    pub key: Spanned<PathBuf>,
    /// The node's host-key fingerprint as `ssh-keygen -lf` prints it
    /// (SHA256:...). Without it the first key seen is trusted and logged.
    pub host_key: Option<Spanned<String>>,
}

fn ssh_port() -> u16 {
    22
}
fn root() -> String {
    "root".into()
}

impl Config {
    /// Whether the nodes form a cluster (each runs its own halyard).
    pub fn clustered(&self) -> bool {
        self.nodes.iter().any(|n| !n.cluster.is_empty())
    }
}

fn localhost() -> String {
    "127.0.0.1".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: Spanned<String>,
    pub model: RedundancyModel,
    #[serde(default)]
    pub standby: Standby,
    #[serde(default = "one")]
    pub secondaries: u32,
    #[serde(default)]
    pub first_recovery: Recovery,
    #[serde(default = "three")]
    pub max_restarts: u32,
    #[serde(default = "sixty")]
    pub probation_seconds: u32,
    pub service_instances: Vec<Spanned<String>>,
}

fn three() -> u32 {
    3
}
fn sixty() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSection {
    pub name: Spanned<String>,
    pub node: Spanned<String>,
    pub group: Spanned<String>,
    /// Spanned: only a proxy may have stats.
    pub kind: Spanned<ComponentKind>,
    /// The command; `@counterd` runs the built-in example daemon.
    pub command: Spanned<Vec<String>>,
    /// OCF-style stop command (HALYARD_PID set); SIGTERM without one.
    pub stop: Option<Vec<String>>,
    pub health: Option<Vec<String>>,
    pub role: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// ha-aware: it takes timed assignments (`assign` with `at`), so a
    /// planned 2N switch-over is scheduled for one instant. Default: true
    /// for `@counterd`, false otherwise.
    pub timed_switchover: Option<bool>,
    #[serde(default)]
    pub checkpoint: Checkpoint,
    pub audit_period_ms: Option<u32>,
    pub audit_deadline_ms: Option<u32>,
    /// A locked component is not started until an operator unlocks it.
    #[serde(default)]
    pub admin: Admin,
    /// proxy: the non-peer node it manages (its `command`, `stop`,
    /// `health` and `stats` run there).
    pub target: Option<Spanned<String>>,
    /// proxy: prints statistics and alarms (see the README).
    pub stats: Option<Vec<String>>,
    #[serde(default = "two_seconds")]
    pub stats_period_ms: u32,
    /// proxy: deadline of one remote call.
    #[serde(default = "five_seconds")]
    pub timeout_ms: u32,
}

fn five_seconds() -> u32 {
    5000
}

/// A configuration file of a non-peer node: its contents inline, or read
/// from a file on the peer node when the agent starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Absolute path on the non-peer node.
    pub path: Spanned<String>,
    pub contents: Option<String>,
    pub source: Option<Spanned<PathBuf>>,
}

impl FileEntry {
    /// The file's contents (`parse` reads a `source` into `contents`).
    pub fn text(&self) -> String {
        self.contents.clone().unwrap_or_default()
    }
}

/// Turns byte offsets into line and column.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    fn span<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.at(s.span().start, message)
    }
}

/// Parses and checks a config; every semantic error is reported.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigErrors> {
    let loc = Locator { file, text };
    let mut config: Config = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let msg = e.message().trim().replace('\n', " ");
        ConfigErrors(vec![loc.at(offset, msg)])
    })?;
    let mut errs = Vec::new();
    check::check(&config, &loc, &mut errs);
    if errs.is_empty() {
        load_sources(&mut config, &loc, &mut errs);
    }
    if errs.is_empty() {
        Ok(config)
    } else {
        errs.sort_by_key(|e| (e.line, e.col));
        Err(ConfigErrors(errs))
    }
}

/// Reads the non-peer nodes' files given by `source` once, so what is
/// checked is what the repository gets.
fn load_sources(c: &mut Config, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) {
    for f in c.nodes.iter_mut().flat_map(|n| n.files.iter_mut()) {
        if let (None, Some(src)) = (&f.contents, &f.source) {
            match std::fs::read_to_string(src.get_ref()) {
                Ok(t) => f.contents = Some(t),
                Err(e) => errs.push(loc.span(
                    src,
                    format!("cannot read source {}: {e}", src.get_ref().display()),
                )),
            }
        }
    }
}

pub const DEMO_PASSWORD: &str = "halyard-demo";
/// The demo's admin (NETCONF and HTTP).
pub const DEMO_ADMIN_PASSWORD: &str = "halyard-demo-admin";
pub const DEMO_AUTH: &str = "halyard-demo-auth";
