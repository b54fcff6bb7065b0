//! The config file: TOML describing the agent, its faces and the element.
//! Every error names `file:line:col` and says what was expected; semantic
//! checks report every mistake, not only the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

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
    /// hsc, fan, psu, board, linecard
    pub class: Spanned<String>,
    /// dynamic (default): instantiated when inserted; manual: instantiated
    /// locked, started when an operator unlocks it.
    #[serde(default = "dynamic")]
    pub instantiate: Spanned<String>,
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

fn dynamic() -> Spanned<String> {
    Spanned::new(0..0, "dynamic".into())
}

/// A component manager of a FRU type, one per unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FruComponentEntry {
    pub name: Spanned<String>,
    /// ha-aware or process
    pub kind: Spanned<String>,
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
    pub checkpoint: Spanned<String>,
    pub audit_period_ms: Option<u32>,
    pub audit_deadline_ms: Option<u32>,
    /// A [[service_group]] the component joins; without one, the unit's
    /// own group (no redundancy) takes it.
    pub group: Option<Spanned<String>>,
    /// unlocked (default) or locked: a locked component is not started.
    pub admin: Option<Spanned<String>>,
}

fn no_checkpoints() -> Spanned<String> {
    Spanned::new(0..0, "none".into())
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
    /// How long cleared alarms are kept.
    #[serde(default = "one_day")]
    pub alarm_retention_minutes: u32,
}

impl Default for StatisticsSection {
    fn default() -> Self {
        StatisticsSection {
            period_ms: two_seconds(),
            retention_minutes: sixty(),
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
    /// sum, average, minimum, maximum
    pub function: Spanned<String>,
    /// Persistent name of the subtree aggregated.
    pub scope: Spanned<String>,
}

impl AggregateEntry {
    pub fn function(&self) -> halyard_cluster_model::model::AggregateFunction {
        self.function
            .get_ref()
            .parse()
            .unwrap_or(halyard_cluster_model::model::AggregateFunction::Average)
    }
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
    /// rising (default) or falling
    pub direction: Option<String>,
    /// critical, major, minor, warning
    pub severity: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub node: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Path of a hardware watchdog device, e.g. /dev/watchdog.
    pub watchdog_device: Option<PathBuf>,
    /// COpCo's policy for a command that conflicts with a running job:
    /// reject (default) or queue.
    pub conflict_policy: Option<Spanned<String>>,
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
    pub auth: Spanned<String>,
    pub auth_pass: Spanned<String>,
    #[serde(rename = "priv")]
    pub privacy: Option<Spanned<String>>,
    pub priv_pass: Option<Spanned<String>>,
    #[serde(default)]
    pub write: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapEntry {
    pub target: Spanned<String>,
    pub community: Option<String>,
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
    #[serde(default = "default_role")]
    pub role: Spanned<String>,
}

fn default_role() -> Spanned<String> {
    Spanned::new(0..0, "operator".into())
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
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FruEntry {
    /// hsc, fan, psu, board, linecard
    pub kind: Spanned<String>,
    pub name: Spanned<String>,
    pub slot: Spanned<u32>,
    /// A [[fru_type]]: its components are instantiated with the unit.
    #[serde(rename = "type")]
    pub fru_type: Option<Spanned<String>>,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub revision: String,
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
    /// 2n, n+m, n-way-active, no-redundancy
    pub model: Spanned<String>,
    /// hot or warm
    #[serde(default = "hot")]
    pub standby: Spanned<String>,
    #[serde(default = "one")]
    pub secondaries: u32,
    /// soft-reset, hot-restart, fail-over
    #[serde(default = "failover")]
    pub first_recovery: Spanned<String>,
    #[serde(default = "three")]
    pub max_restarts: u32,
    #[serde(default = "sixty")]
    pub probation_seconds: u32,
    pub service_instances: Vec<Spanned<String>>,
}

fn hot() -> Spanned<String> {
    Spanned::new(0..0, "hot".into())
}
fn failover() -> Spanned<String> {
    Spanned::new(0..0, "fail-over".into())
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
    /// ha-aware, process or proxy
    pub kind: Spanned<String>,
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
    /// none, synchronous, asynchronous
    #[serde(default = "sync_mode")]
    pub checkpoint: Spanned<String>,
    pub audit_period_ms: Option<u32>,
    pub audit_deadline_ms: Option<u32>,
    /// unlocked (default) or locked: a locked component is not started
    /// until an operator unlocks it.
    pub admin: Option<Spanned<String>>,
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

fn sync_mode() -> Spanned<String> {
    Spanned::new(0..0, "synchronous".into())
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

fn valid_rdn(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
    check(&config, &loc, &mut errs);
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

fn check(c: &Config, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) {
    if let Some(r) = &c.release {
        let ls = r.load_server.get_ref();
        if ls.is_empty() || (ls.contains("://") && !ls.starts_with("http://")) {
            errs.push(loc.span(
                &r.load_server,
                format!("found load_server \"{ls}\", expected a directory or an http:// URL"),
            ));
        }
        if *r.watchdog_ms.get_ref() < 1000 {
            errs.push(loc.span(
                &r.watchdog_ms,
                format!(
                    "found watchdog_ms = {}, expected at least 1000 (a node needs time to start)",
                    r.watchdog_ms.get_ref()
                ),
            ));
        }
    }
    let names = |what: &str,
                 items: Vec<&Spanned<String>>,
                 errs: &mut Vec<ConfigError>|
     -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for n in items {
            if !valid_rdn(n.get_ref()) {
                errs.push(loc.span(
                    n,
                    format!(
                        "found {what} name \"{}\", expected letters, digits, '-', '_' or '.'",
                        n.get_ref()
                    ),
                ));
            } else if !seen.insert(n.get_ref().clone()) {
                errs.push(loc.span(
                    n,
                    format!(
                        "found a second {what} named \"{}\", expected unique names",
                        n.get_ref()
                    ),
                ));
            }
        }
        seen
    };
    names("element", vec![&c.element.name], errs);
    if let Some(p) = &c.agent.conflict_policy
        && !["reject", "queue"].contains(&p.get_ref().as_str())
    {
        errs.push(loc.span(
            p,
            format!(
                "found conflict policy \"{}\", expected reject or queue",
                p.get_ref()
            ),
        ));
    }
    let shelves = names("shelf", c.shelves.iter().map(|s| &s.name).collect(), errs);
    let nodes = names("node", c.nodes.iter().map(|n| &n.name).collect(), errs);
    let groups = names(
        "service group",
        c.groups.iter().map(|g| &g.name).collect(),
        errs,
    );
    names(
        "component",
        c.components.iter().map(|x| &x.name).collect(),
        errs,
    );
    let fru_types = names(
        "FRU type",
        c.fru_types.iter().map(|t| &t.name).collect(),
        errs,
    );
    for s in &c.shelves {
        let mut frus = BTreeSet::new();
        let mut slots = BTreeSet::new();
        for f in &s.frus {
            if !slots.insert(*f.slot.get_ref()) {
                errs.push(loc.span(
                    &f.slot,
                    format!(
                        "found a second unit in slot {} of shelf \"{}\", expected one unit per slot",
                        f.slot.get_ref(),
                        s.name.get_ref()
                    ),
                ));
            }
            if let Some(t) = &f.fru_type {
                match c.fru_types.iter().find(|x| x.name.get_ref() == t.get_ref()) {
                    None => errs.push(loc.span(
                        t,
                        format!(
                            "found unknown FRU type \"{}\", expected one of: {}",
                            t.get_ref(),
                            list(&fru_types)
                        ),
                    )),
                    Some(x) if x.class.get_ref() != f.kind.get_ref() => errs.push(loc.span(
                        t,
                        format!(
                            "found FRU type \"{}\" of class {} on a unit of kind {}, expected a type of class {}",
                            t.get_ref(),
                            x.class.get_ref(),
                            f.kind.get_ref(),
                            f.kind.get_ref()
                        ),
                    )),
                    Some(_) => {}
                }
            }
            if !["hsc", "fan", "psu", "board", "linecard"].contains(&f.kind.get_ref().as_str()) {
                errs.push(loc.span(
                    &f.kind,
                    format!(
                        "found FRU kind \"{}\", expected hsc, fan, psu, board or linecard",
                        f.kind.get_ref()
                    ),
                ));
            }
            if !valid_rdn(f.name.get_ref())
                || !frus.insert((f.kind.get_ref().clone(), f.name.get_ref().clone()))
            {
                errs.push(loc.span(
                    &f.name,
                    format!(
                        "found FRU name \"{}\", expected a unique name per kind in the shelf",
                        f.name.get_ref()
                    ),
                ));
            }
        }
    }
    let clustered = c.clustered();
    for n in &c.nodes {
        if clustered && !n.non_peer && n.cluster.is_empty() {
            errs.push(loc.span(
                &n.name,
                "found a peer node without cluster addresses, expected cluster = [\"ip:port\", ...] on every peer node",
            ));
        }
        check_ssh(n, loc, errs);
        if n.cluster.len() > 2 {
            errs.push(loc.span(
                &n.cluster[2],
                "found a third cluster address, expected one or two (one per cluster link)",
            ));
        }
        for a in n
            .cluster
            .iter()
            .chain(n.snmp.iter().flatten())
            .chain(n.netconf.iter().flatten())
            .chain(n.http.iter().flatten())
        {
            if a.get_ref().parse::<std::net::SocketAddr>().is_err() {
                errs.push(loc.span(
                    a,
                    format!("found address \"{}\", expected ip:port", a.get_ref()),
                ));
            }
        }
        if let Some(s) = &n.shelf
            && !shelves.contains(s.get_ref())
        {
            errs.push(loc.span(
                s,
                format!(
                    "found unknown shelf \"{}\", expected one of: {}",
                    s.get_ref(),
                    list(&shelves)
                ),
            ));
        }
    }
    if clustered {
        let k = &c.cluster;
        let (hb, lease, failure) = (
            *k.heartbeat_ms.get_ref(),
            *k.lease_ms.get_ref(),
            *k.failure_ms.get_ref(),
        );
        if hb == 0 {
            errs.push(loc.span(
                &k.heartbeat_ms,
                "found 0, expected a heartbeat period in ms",
            ));
        }
        if lease <= hb {
            errs.push(loc.span(
                &k.lease_ms,
                format!("found lease {lease} ms, expected more than the heartbeat ({hb} ms)"),
            ));
        }
        if failure < lease + 2 * hb {
            // Point at what the file set (a default has no place in it).
            let at = [&k.failure_ms, &k.lease_ms, &k.heartbeat_ms]
                .into_iter()
                .find(|s| !s.span().is_empty())
                .unwrap_or(&k.failure_ms);
            errs.push(loc.span(
                at,
                format!(
                    "found failure detection {failure} ms, expected at least the lease plus two heartbeats ({} ms), so a cut-off node gives up its primaries before they are promoted elsewhere",
                    lease + 2 * hb
                ),
            ));
        }
        let e = k.election_ms.get_ref();
        if e.len() != 2 || e[0] >= e[1] || e[0] <= hb {
            errs.push(loc.span(
                &k.election_ms,
                format!("found {e:?}, expected [min, max] in ms with heartbeat < min < max"),
            ));
        }
    }
    for g in &c.groups {
        if !["2n", "n+m", "n-way-active", "no-redundancy"].contains(&g.model.get_ref().as_str()) {
            errs.push(loc.span(&g.model, format!("found redundancy model \"{}\", expected 2n, n+m, n-way-active or no-redundancy", g.model.get_ref())));
        }
        if !["hot", "warm"].contains(&g.standby.get_ref().as_str()) {
            errs.push(loc.span(
                &g.standby,
                format!(
                    "found standby \"{}\", expected hot or warm",
                    g.standby.get_ref()
                ),
            ));
        }
        if !["soft-reset", "hot-restart", "fail-over"]
            .contains(&g.first_recovery.get_ref().as_str())
        {
            errs.push(loc.span(
                &g.first_recovery,
                format!(
                    "found recovery \"{}\", expected soft-reset, hot-restart or fail-over",
                    g.first_recovery.get_ref()
                ),
            ));
        }
        if g.service_instances.is_empty() {
            errs.push(loc.span(
                &g.name,
                "found a service group without service instances, expected at least one",
            ));
        }
        for si in &g.service_instances {
            if !valid_rdn(si.get_ref()) {
                errs.push(loc.span(
                    si,
                    format!(
                        "found service instance \"{}\", expected letters, digits, '-', '_' or '.'",
                        si.get_ref()
                    ),
                ));
            }
        }
    }
    for x in &c.components {
        if !nodes.contains(x.node.get_ref()) {
            errs.push(loc.span(
                &x.node,
                format!(
                    "found unknown node \"{}\", expected one of: {}",
                    x.node.get_ref(),
                    list(&nodes)
                ),
            ));
        }
        if !groups.contains(x.group.get_ref()) {
            errs.push(loc.span(
                &x.group,
                format!(
                    "found unknown service group \"{}\", expected one of: {}",
                    x.group.get_ref(),
                    list(&groups)
                ),
            ));
        }
        if !["ha-aware", "process", "proxy"].contains(&x.kind.get_ref().as_str()) {
            errs.push(loc.span(
                &x.kind,
                format!(
                    "found component kind \"{}\", expected ha-aware, process or proxy",
                    x.kind.get_ref()
                ),
            ));
        }
        check_proxy(c, x, loc, errs);
        if x.command.get_ref().is_empty() {
            errs.push(loc.span(
                &x.command,
                "found an empty command, expected a program and its arguments",
            ));
        }
        if !["none", "synchronous", "asynchronous"].contains(&x.checkpoint.get_ref().as_str()) {
            errs.push(loc.span(
                &x.checkpoint,
                format!(
                    "found checkpoint mode \"{}\", expected none, synchronous or asynchronous",
                    x.checkpoint.get_ref()
                ),
            ));
        }
    }
    for x in &c.components {
        check_admin(x.admin.as_ref(), loc, errs);
    }
    if *c.hotswap.poll_ms.get_ref() == 0 {
        errs.push(loc.span(
            &c.hotswap.poll_ms,
            "found 0, expected a polling period in ms",
        ));
    }
    for t in &c.fru_types {
        if !["hsc", "fan", "psu", "board", "linecard"].contains(&t.class.get_ref().as_str()) {
            errs.push(loc.span(
                &t.class,
                format!(
                    "found FRU class \"{}\", expected hsc, fan, psu, board or linecard",
                    t.class.get_ref()
                ),
            ));
        }
        if !["dynamic", "manual"].contains(&t.instantiate.get_ref().as_str()) {
            errs.push(loc.span(
                &t.instantiate,
                format!(
                    "found instantiate = \"{}\", expected dynamic or manual (static units are the [[shelf]] fru entries)",
                    t.instantiate.get_ref()
                ),
            ));
        }
        names(
            "component of the FRU type",
            t.components.iter().map(|x| &x.name).collect(),
            errs,
        );
        for x in &t.components {
            if !["ha-aware", "process"].contains(&x.kind.get_ref().as_str()) {
                errs.push(loc.span(
                    &x.kind,
                    format!(
                        "found component kind \"{}\", expected ha-aware or process",
                        x.kind.get_ref()
                    ),
                ));
            }
            if x.command.get_ref().is_empty() {
                errs.push(loc.span(
                    &x.command,
                    "found an empty command, expected a program and its arguments",
                ));
            }
            if !["none", "synchronous", "asynchronous"].contains(&x.checkpoint.get_ref().as_str()) {
                errs.push(loc.span(
                    &x.checkpoint,
                    format!(
                        "found checkpoint mode \"{}\", expected none, synchronous or asynchronous",
                        x.checkpoint.get_ref()
                    ),
                ));
            }
            if let Some(g) = &x.group
                && !groups.contains(g.get_ref())
            {
                errs.push(loc.span(
                    g,
                    format!(
                        "found unknown service group \"{}\", expected one of: {}",
                        g.get_ref(),
                        list(&groups)
                    ),
                ));
            }
            check_admin(x.admin.as_ref(), loc, errs);
        }
    }
    for a in &c.aggregates {
        if a.function
            .get_ref()
            .parse::<halyard_cluster_model::model::AggregateFunction>()
            .is_err()
        {
            errs.push(loc.span(
                &a.function,
                format!(
                    "found aggregate function \"{}\", expected sum, average, minimum or maximum",
                    a.function.get_ref()
                ),
            ));
        }
        if halyard_cluster_model::ObjectName::parse(a.scope.get_ref()).is_err() {
            errs.push(loc.span(
                &a.scope,
                format!(
                    "found scope \"{}\", expected a persistent name such as ne=1/shelf=1",
                    a.scope.get_ref()
                ),
            ));
        }
        if !valid_rdn(a.name.get_ref()) || !valid_rdn(a.statistic.get_ref()) {
            errs.push(loc.span(&a.name, "found an aggregate name or statistic with other characters than letters, digits, '-', '_' or '.'"));
        }
    }
    for t in &c.thresholds {
        if halyard_cluster_model::ObjectName::parse(t.resource.get_ref()).is_err() {
            errs.push(loc.span(&t.resource, format!("found resource \"{}\", expected a persistent name such as ne=1/shelf=1/board=1", t.resource.get_ref())));
        }
        if !valid_rdn(t.name.get_ref()) || !valid_rdn(t.statistic.get_ref()) {
            errs.push(loc.span(&t.name, "found a threshold name or statistic with other characters than letters, digits, '-', '_' or '.'"));
        }
        if t.falling > t.rising {
            errs.push(loc.span(&t.name, format!("found falling {} above rising {}, expected falling <= rising (the hysteresis band)", t.falling, t.rising)));
        }
        if let Some(s) = &t.severity
            && !["critical", "major", "minor", "warning"].contains(&s.as_str())
        {
            errs.push(loc.span(
                &t.name,
                format!("found severity \"{s}\", expected critical, major, minor or warning"),
            ));
        }
    }
    for u in c.http.users.iter().chain(&c.netconf.users) {
        if !["viewer", "operator", "admin"].contains(&u.role.get_ref().as_str()) {
            errs.push(loc.span(
                &u.role,
                format!(
                    "found role \"{}\", expected viewer, operator or admin",
                    u.role.get_ref()
                ),
            ));
        }
    }
    // Listen addresses parse, and demo credentials stay on loopback.
    let demo_creds = c.http.users.iter().chain(c.netconf.users.iter()).any(|u| {
        u.password
            .as_ref()
            .is_some_and(|p| p.get_ref() == DEMO_PASSWORD)
    }) || c
        .snmp
        .users
        .iter()
        .any(|u| u.auth_pass.get_ref() == DEMO_AUTH);
    for l in c
        .snmp
        .listen
        .iter()
        .chain(&c.netconf.listen)
        .chain(&c.http.listen)
    {
        match l.get_ref().parse::<SocketAddr>() {
            Err(_) => errs.push(loc.span(l, format!("found listen address \"{}\", expected IP:PORT such as 127.0.0.1:8080 or [::1]:8080", l.get_ref()))),
            Ok(a) if demo_creds && !a.ip().is_loopback() => errs.push(loc.span(
                l,
                format!("found the demo credentials with non-loopback address {a}, expected a loopback address or credentials of your own"),
            )),
            Ok(_) => {}
        }
    }
    for u in &c.snmp.users {
        if ![
            "SHA", "SHA-1", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "MD5",
        ]
        .contains(&u.auth.get_ref().as_str())
        {
            errs.push(loc.span(&u.auth, format!("found auth protocol \"{}\", expected SHA, SHA-224, SHA-256, SHA-384, SHA-512 or MD5", u.auth.get_ref())));
        }
        if u.auth_pass.get_ref().len() < 8 {
            errs.push(loc.span(
                &u.auth_pass,
                "found a passphrase of fewer than 8 characters, expected at least 8 (RFC 3414)",
            ));
        }
        if u.privacy.is_some() != u.priv_pass.is_some() {
            errs.push(loc.span(
                &u.name,
                "found only one of priv and priv_pass, expected both or neither",
            ));
        }
        if let Some(p) = &u.privacy
            && !["AES", "AES-128", "DES"].contains(&p.get_ref().as_str())
        {
            errs.push(loc.span(
                p,
                format!(
                    "found privacy protocol \"{}\", expected AES or DES",
                    p.get_ref()
                ),
            ));
        }
    }
}

fn check_admin(admin: Option<&Spanned<String>>, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) {
    if let Some(a) = admin
        && !["locked", "unlocked"].contains(&a.get_ref().as_str())
    {
        errs.push(loc.span(
            a,
            format!(
                "found admin state \"{}\", expected locked or unlocked",
                a.get_ref()
            ),
        ));
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

/// A proxy names a non-peer node with SSH access and runs on a peer node;
/// only proxies have targets, stats and files.
fn check_proxy(c: &Config, x: &ComponentSection, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) {
    let node = |n: &str| c.nodes.iter().find(|m| m.name.get_ref() == n);
    if x.kind.get_ref() != "proxy" {
        if let Some(t) = &x.target {
            errs.push(loc.span(
                t,
                "found target on a component that is not a proxy, expected kind = \"proxy\"",
            ));
        }
        if x.stats.is_some() {
            errs.push(loc.span(
                &x.kind,
                "found stats on a component that is not a proxy, expected kind = \"proxy\"",
            ));
        }
        return;
    }
    if node(x.node.get_ref()).is_some_and(|n| n.non_peer) {
        errs.push(loc.span(
            &x.node,
            format!(
                "found non-peer node \"{}\" as a proxy's host, expected a peer node (one that runs halyard)",
                x.node.get_ref()
            ),
        ));
    }
    match &x.target {
        None => errs.push(loc.span(
            &x.name,
            "found a proxy without a target, expected target = \"<non-peer node>\"",
        )),
        Some(t) => match node(t.get_ref()) {
            None => errs.push(loc.span(
                t,
                format!("found unknown target node \"{}\", expected a non-peer node", t.get_ref()),
            )),
            Some(n) if !n.non_peer => errs.push(loc.span(
                t,
                format!(
                    "found peer node \"{}\" as a proxy's target, expected a node with non_peer = true",
                    t.get_ref()
                ),
            )),
            Some(n) if n.ssh.is_none() => errs.push(loc.span(
                t,
                format!(
                    "found target node \"{}\" without ssh access, expected ssh = {{ key = \"...\" }} on that node",
                    t.get_ref()
                ),
            )),
            Some(_) => {}
        },
    }
    if x.stats.as_ref().is_some_and(Vec::is_empty) {
        errs.push(loc.span(
            &x.name,
            "found an empty stats command, expected a program and its arguments",
        ));
    }
    if x.stats_period_ms == 0 || x.timeout_ms == 0 {
        errs.push(loc.span(
            &x.name,
            "found stats_period_ms or timeout_ms = 0, expected milliseconds > 0",
        ));
    }
}

/// Checks a non-peer node's SSH access and files.
fn check_ssh(n: &NodeSection, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) {
    if let Some(f) = n.files.first()
        && !n.non_peer
    {
        errs.push(loc.span(
            &f.path,
            "found a file on a peer node, expected files on nodes with non_peer = true",
        ));
    }
    let mut paths = BTreeSet::new();
    for f in &n.files {
        let p = f.path.get_ref();
        if !p.starts_with('/') || p[1..].split('/').any(str::is_empty) || p.contains('\0') {
            errs.push(loc.span(
                &f.path,
                format!("found file path \"{p}\", expected an absolute path of a file on the non-peer node"),
            ));
        } else if !paths.insert(p.clone()) {
            errs.push(loc.span(
                &f.path,
                format!("found a second file \"{p}\", expected each path once"),
            ));
        }
        match (&f.contents, &f.source) {
            (Some(_), Some(src)) => errs.push(loc.span(
                src,
                "found both contents and source, expected one of them",
            )),
            (None, Some(src)) => {
                if let Err(e) = std::fs::read_to_string(src.get_ref()) {
                    errs.push(loc.span(
                        src,
                        format!("cannot read source {}: {e}", src.get_ref().display()),
                    ));
                }
            }
            (None, None) => errs.push(loc.span(
                &f.path,
                "found a file without contents, expected contents = \"...\" or source = \"<local file>\"",
            )),
            (Some(_), None) => {}
        }
    }
    let Some(ssh) = &n.ssh else { return };
    if !n.non_peer {
        errs.push(loc.span(
            ssh,
            "found ssh on a peer node, expected it on a node with non_peer = true",
        ));
    }
    let s = ssh.get_ref();
    if s.port == 0 {
        errs.push(loc.span(ssh, "found port 0, expected the node's SSH port"));
    }
    if let Err(e) = std::fs::metadata(s.key.get_ref()) {
        errs.push(loc.span(
            &s.key,
            format!("cannot read key {}: {e}", s.key.get_ref().display()),
        ));
    }
    if let Some(h) = &s.host_key
        && !h.get_ref().starts_with("SHA256:")
    {
        errs.push(loc.span(
            h,
            format!("found host key \"{}\", expected a fingerprint SHA256:... as ssh-keygen -lf prints it", h.get_ref()),
        ));
    }
}

pub const DEMO_PASSWORD: &str = "halyard-demo";
pub const DEMO_AUTH: &str = "halyard-demo-auth";

fn list(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "(none declared)".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_parses_with_its_fru_types() {
        let c = parse("demo.toml", DEMO).unwrap();
        assert!(
            c.fru_types
                .iter()
                .any(|t| t.instantiate.get_ref() == "manual")
        );
        assert_eq!(*c.hotswap.poll_ms.get_ref(), 500);
    }

    #[test]
    fn hot_swap_mistakes_are_reported_with_file_line_col() {
        let text = r#"
[element]
name = "1"

[hotswap]
poll_ms = 0

[[service_group]]
name = "g"
model = "2n"
service_instances = ["1"]

[[shelf]]
name = "1"
fru = [
  { kind = "fan", name = "1", slot = 2 },
  { kind = "fan", name = "2", slot = 2, type = "lc" },
  { kind = "psu", name = "1", slot = 3, type = "nope" },
]

[[fru_type]]
name = "lc"
class = "linecard"
instantiate = "sometimes"
components = [
  { name = "a", kind = "daemon", command = [] },
  { name = "a", kind = "process", command = ["x"], group = "h", admin = "off", checkpoint = "maybe" },
]
"#;
        let errs = parse("hs.toml", text).unwrap_err().0;
        let at = |line: usize, needle: &str| {
            assert!(
                errs.iter()
                    .any(|e| e.line == line && e.message.contains(needle)),
                "no error at line {line} containing {needle:?}: {errs:#?}"
            );
        };
        at(6, "expected a polling period");
        at(17, "second unit in slot 2");
        at(17, "of class linecard on a unit of kind fan");
        at(18, "unknown FRU type \"nope\"");
        at(24, "expected dynamic or manual");
        at(26, "expected ha-aware or process");
        at(26, "found an empty command");
        at(27, "second component of the FRU type named \"a\"");
        at(27, "unknown service group \"h\"");
        at(27, "expected locked or unlocked");
        at(27, "expected none, synchronous or asynchronous");
        assert!(errs.iter().all(|e| e.file == "hs.toml" && e.col > 0));
    }
}
