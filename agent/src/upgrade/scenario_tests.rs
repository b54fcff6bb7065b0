//! Replayable upgrade campaigns: `test_data/upgrade/*.scenario`, inputs and time in, effects out.
//!
//! Like CRIM's scenarios (`backend/tests/it/scenario.rs`): unindented lines
//! are directives and inputs to the pure [`Machine`]; the indented lines
//! under one are what it answered, as recorded. The test replays every
//! file and compares; after an intended change of behaviour rewrite the
//! recordings with
//!
//! ```text
//! HALYARD_BLESS=1 cargo test -p halyard-agent --bins upgrade
//! ```
//!
//! and review the diff. The log is perfect here: what the machine
//! publishes is what it reads back, so `Logged` is only fed by `start`.
//!
//! ```text
//! # a comment
//! nodes n1,n2,n3 master=n3 release=1 [http] [watchdog=<ms>]
//!                              the element, every node up and on `release`
//! pair <node>,<node>           the hosting nodes of a 2N pair (split mode)
//! primary <node>,...           nodes that host a primary now (split mode)
//! at <ms>                      the wall clock for the inputs that follow
//! start <id> <method> <release> [by=<user>]   a new campaign (from the log)
//! status <node> key=value...   a node's report; only the keys named change:
//!     running committed trial fallback error acted (text, - for none),
//!     slots (a,b), healthy (true|false), boot (<ms>|now);
//!     {step} in a value is the current step's key
//! up <node> | down <node>      the cluster view
//! op <Pause|Resume|Rollback> [by=<user>]
//! tick
//! fetched <release> [error=<text>]
//! switching <node,...> [pending=<component,...>]
//! takeover <node>              a new master: a fresh machine on <node> reads
//!                              the log (campaign, statuses) and the view
//! show                         the campaign, its steps and each node's duty
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::campaign::{CampaignOp, Effect, Input, Level, Machine, Method, NodeRelease, Setup};
use super::plan::{self, Duty};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test_data/upgrade")
}

/// One line of a scenario, with what it recorded.
struct Line {
    line: String,
    recorded: Vec<String>,
}

fn parse_lines(text: &str) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            if let Some(s) = out.last_mut() {
                s.recorded.push(line.trim().to_string());
            }
        } else {
            out.push(Line {
                line: line.to_string(),
                recorded: Vec::new(),
            });
        }
    }
    out
}

/// Words, with `key="a quoted value"` kept whole (quotes dropped).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .filter(|s| !s.is_empty() && *s != "-")
        .map(str::to_string)
        .collect()
}

fn text(v: &str) -> Option<String> {
    (v != "-").then(|| v.to_string())
}

fn ms(v: &str) -> Result<u64, String> {
    v.parse().map_err(|e| format!("'{v}': expected ms: {e}"))
}

/// Renders an effect as one stable line.
fn render(e: &Effect) -> String {
    match e {
        Effect::Fetch { version } => format!("fetch {version}"),
        Effect::SwitchAway { nodes } => format!("switch-away {}", nodes.join(",")),
        Effect::Publish(c) => format!(
            "publish campaign {} {:?} done={}/{} epoch={}: {}",
            c.id,
            c.state,
            c.current.min(c.steps.len()),
            c.steps.len(),
            c.epoch,
            c.detail
        ),
        Effect::Unlock { holder } => format!("unlock {holder}"),
        Effect::Log { level, message } => {
            let level = match level {
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            format!("log {level}: {message}")
        }
    }
}

fn render_duty(d: &Duty) -> String {
    match d {
        Duty::Stage { version, from } => match from {
            Some(n) => format!("stage {version} from {n}"),
            None => format!("stage {version} from the load server"),
        },
        Duty::ArmAndReboot { version } => format!("arm {version} and reboot"),
        Duty::Commit { version } => format!("commit {version}"),
        Duty::Disarm => "disarm".into(),
        Duty::Nothing => "nothing".into(),
    }
}

#[derive(Default)]
struct Replay {
    machine: Option<Machine>,
    master: Option<String>,
    release: String,
    pairs: Vec<(String, String)>,
    primaries: BTreeSet<String>,
    now: u64,
    op_seq: u64,
    nodes: BTreeMap<String, NodeRelease>,
    up: BTreeSet<String>,
    setup: Option<Setup>,
}

impl Replay {
    fn machine(&mut self) -> Result<&mut Machine, String> {
        self.machine
            .as_mut()
            .ok_or_else(|| "no `nodes` line yet".into())
    }

    fn step_key(&mut self) -> String {
        self.machine
            .as_ref()
            .and_then(|m| m.campaign())
            .map_or_else(String::new, |c| c.step_key())
    }

    /// Runs one line; returns the lines it produces.
    fn line(&mut self, line: &str) -> Result<Vec<String>, String> {
        let w = words(line);
        let Some((verb, args)) = w.split_first() else {
            return Ok(Vec::new());
        };
        if verb.starts_with('#') {
            return Ok(Vec::new());
        }
        let arg = |i: usize| {
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{verb}: argument {} missing", i + 1))
        };
        let opt = |key: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(&format!("{key}=")).map(str::to_string))
        };
        let input = match verb.as_str() {
            "nodes" => return self.setup(&list(&arg(0)?), args),
            "pair" => {
                let n = list(&arg(0)?);
                let [a, b] = n.as_slice() else {
                    return Err("pair: two nodes".into());
                };
                self.pairs.push((a.clone(), b.clone()));
                return Ok(Vec::new());
            }
            "primary" => {
                self.primaries = list(&arg(0)?).into_iter().collect();
                return Ok(Vec::new());
            }
            "at" => {
                self.now = ms(&arg(0)?)?;
                return Ok(Vec::new());
            }
            "show" => return self.show(),
            "takeover" => return self.takeover(&arg(0)?),
            "start" => return self.start(&arg(0)?, &arg(1)?, &arg(2)?, opt("by")),
            "status" => {
                let node = arg(0)?;
                let key = self.step_key();
                let now = self.now;
                let s = self
                    .nodes
                    .get_mut(&node)
                    .ok_or_else(|| format!("unknown node {node}"))?;
                for a in &args[1..] {
                    let (k, v) = a
                        .split_once('=')
                        .ok_or_else(|| format!("'{a}': expected key=value"))?;
                    let v = v.replace("{step}", &key);
                    match k {
                        "running" => s.running = text(&v),
                        "committed" => s.committed = text(&v),
                        "trial" => s.trial = text(&v),
                        "fallback" => s.fallback = text(&v),
                        "error" => s.error = text(&v),
                        "acted" => s.acted = text(&v),
                        "slots" => s.slots = list(&v),
                        "healthy" => s.healthy = v == "true",
                        "boot" if v == "now" => s.boot_ms = now,
                        "boot" => s.boot_ms = ms(&v)?,
                        _ => return Err(format!("unknown status key '{k}'")),
                    }
                }
                Input::Status(s.clone())
            }
            "up" | "down" => {
                let node = arg(0)?;
                if verb == "up" {
                    self.up.insert(node.clone());
                } else {
                    self.up.remove(&node);
                }
                Input::Membership {
                    node,
                    up: verb == "up",
                }
            }
            "op" => {
                self.op_seq += 1;
                let campaign = self.machine()?.campaign().map_or(0, |c| c.id);
                Input::Op(CampaignOp {
                    seq: self.op_seq,
                    campaign,
                    op: arg(0)?,
                    principal: opt("by").unwrap_or_else(|| "operator".into()),
                })
            }
            "tick" => Input::Tick,
            "fetched" => Input::Fetched {
                version: arg(0)?,
                error: opt("error"),
            },
            "switching" => Input::Switching {
                nodes: list(&arg(0)?),
                pending: opt("pending").map(|p| list(&p)).unwrap_or_default(),
            },
            _ => return Err(format!("unknown directive or input '{verb}'")),
        };
        let now = self.now;
        Ok(self
            .machine()?
            .handle(input, now)
            .iter()
            .map(render)
            .collect())
    }

    fn setup(&mut self, nodes: &[String], args: &[String]) -> Result<Vec<String>, String> {
        let mut setup = Setup {
            me: String::new(),
            nodes: nodes.to_vec(),
            serves_http: false,
            watchdog_ms: 20_000,
        };
        for a in &args[1..] {
            match a.split_once('=') {
                Some(("master", m)) => self.master = Some(m.to_string()),
                Some(("release", r)) => self.release = r.to_string(),
                Some(("watchdog", w)) => setup.watchdog_ms = ms(w)?,
                None if a == "http" => setup.serves_http = true,
                _ => return Err(format!("nodes: unknown '{a}'")),
            }
        }
        setup.me = self.master.clone().ok_or("nodes: master=<node> missing")?;
        self.setup = Some(setup.clone());
        let mut m = Machine::new(setup);
        for n in nodes {
            let s = NodeRelease {
                node: n.clone(),
                running: Some(self.release.clone()),
                committed: Some(self.release.clone()),
                slots: vec![self.release.clone()],
                healthy: true,
                ..Default::default()
            };
            m.handle(Input::Status(s.clone()), self.now);
            m.handle(
                Input::Membership {
                    node: n.clone(),
                    up: true,
                },
                self.now,
            );
            self.nodes.insert(n.clone(), s);
            self.up.insert(n.clone());
        }
        self.machine = Some(m);
        Ok(Vec::new())
    }

    /// Another node becomes master: its machine starts from the log.
    fn takeover(&mut self, node: &str) -> Result<Vec<String>, String> {
        let mut setup = self.setup.clone().ok_or("no `nodes` line yet")?;
        setup.me = node.to_string();
        self.master = Some(node.to_string());
        let campaign = self.machine()?.campaign().cloned();
        let mut m = Machine::new(setup);
        let now = self.now;
        for s in self.nodes.values() {
            m.handle(Input::Status(s.clone()), now);
        }
        for n in &self.up {
            m.handle(
                Input::Membership {
                    node: n.clone(),
                    up: true,
                },
                now,
            );
        }
        let mut out = Vec::new();
        if let Some(c) = campaign {
            out.extend(m.handle(Input::Logged(c), now).iter().map(render));
        }
        self.machine = Some(m);
        Ok(out)
    }

    /// A campaign as `Upgrades::start` plans and logs it.
    fn start(
        &mut self,
        id: &str,
        method: &str,
        version: &str,
        by: Option<String>,
    ) -> Result<Vec<String>, String> {
        let id = id.parse().map_err(|e| format!("campaign id: {e}"))?;
        let method = Method::parse(method).ok_or_else(|| format!("unknown method {method}"))?;
        let nodes: Vec<String> = self.nodes.keys().cloned().collect();
        let halves = plan::halves(&nodes, &self.pairs, &self.primaries);
        let steps = plan::plan(method, version, &nodes, self.master.as_deref(), halves);
        let from = self.release.clone();
        let by = by.unwrap_or_else(|| "operator".into());
        let c = plan::new_campaign(id, method, version, &from, steps, &by, self.now);
        let now = self.now;
        Ok(self
            .machine()?
            .handle(Input::Logged(c), now)
            .iter()
            .map(render)
            .collect())
    }

    fn show(&mut self) -> Result<Vec<String>, String> {
        let m = self.machine()?;
        let Some(c) = m.campaign().cloned() else {
            return Ok(vec!["no campaign".into()]);
        };
        let mut out = vec![format!(
            "campaign {} {:?} {} -> {} {:?} epoch={} started={} step-started={} ended={}",
            c.id,
            c.method,
            c.from,
            c.target,
            c.state,
            c.epoch,
            c.started_ms,
            c.step_started_ms,
            c.ended_ms.map_or_else(|| "-".into(), |e| e.to_string())
        )];
        if c.step_paused_ms > 0 || c.paused_since_ms.is_some() {
            out.push(format!(
                "step paused {} ms, paused since {}",
                c.step_paused_ms,
                c.paused_since_ms
                    .map_or_else(|| "-".into(), |p| p.to_string())
            ));
        }
        out.push(format!("detail: {}", c.detail));
        if let Some(r) = &c.reason {
            out.push(format!("reason: {r}"));
        }
        for (i, s) in c.steps.iter().enumerate() {
            let mark = match i.cmp(&c.current) {
                std::cmp::Ordering::Less => "done",
                std::cmp::Ordering::Equal => "now",
                std::cmp::Ordering::Greater => "todo",
            };
            out.push(format!("step {i} {mark}: {}", s.describe()));
        }
        let nodes: Vec<NodeRelease> = self.nodes.values().cloned().collect();
        for s in nodes {
            let running = s.running.clone().unwrap_or_default();
            let mut line = format!("duty {}: ", s.node);
            match plan::duty(&c, &s.node, &running, s.acted.as_deref()) {
                Some((key, d)) => {
                    let _ = write!(line, "{} (step {key})", render_duty(&d));
                }
                None => line.push('-'),
            }
            out.push(line);
        }
        Ok(out)
    }
}

/// Replays one scenario; returns its text as it was and as replayed.
fn replay(path: &Path) -> Result<(String, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut r = Replay::default();
    let mut out = String::new();
    for (i, s) in parse_lines(&text).iter().enumerate() {
        let got = r
            .line(&s.line)
            .map_err(|e| format!("{}: line {}: {}: {e}", path.display(), i + 1, s.line))?;
        out.push_str(&s.line);
        out.push('\n');
        for g in got {
            let _ = writeln!(out, "    {g}");
        }
    }
    Ok((text, out))
}

fn first_difference(was: &str, now: &str) -> String {
    let (a, b): (Vec<_>, Vec<_>) = (was.lines().collect(), now.lines().collect());
    let i = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    format!(
        "  line {}: recorded {:?}\n  line {}: replayed {:?}",
        i + 1,
        a.get(i).copied().unwrap_or("<end>"),
        i + 1,
        b.get(i).copied().unwrap_or("<end>")
    )
}

#[test]
fn upgrade_scenarios_replay_as_recorded() {
    let bless = std::env::var_os("HALYARD_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("test_data/upgrade")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "scenarios: {files:?}");
    let mut differ = Vec::new();
    for f in &files {
        let (was, now) = replay(f).unwrap_or_else(|e| panic!("{e}"));
        if was != now {
            if bless {
                std::fs::write(f, &now).unwrap();
            } else {
                differ.push(format!(
                    "{}:\n{}",
                    f.display(),
                    first_difference(&was, &now)
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "scenarios replay differently from their recording (if intended: \
         HALYARD_BLESS=1 cargo test -p halyard-agent --bins upgrade):\n{}",
        differ.join("\n")
    );
}

#[test]
fn an_upgrade_scenario_with_a_changed_recording_is_caught() {
    let f = scenario_dir().join("rolling.scenario");
    let (was, now) = replay(&f).unwrap();
    assert_eq!(was, now, "the recording itself replays");
    // The same scenario with one recorded effect altered must differ.
    let altered = was.replacen("    switch-away n1", "    switch-away n2", 1);
    assert_ne!(altered, was, "the scenario switches away from n1 somewhere");
    let tmp = std::env::temp_dir().join(format!("halyard-upgrade-scenario-{}", std::process::id()));
    std::fs::write(&tmp, &altered).unwrap();
    let (was2, now2) = replay(&tmp).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    assert_ne!(was2, now2);
    assert!(first_difference(&was2, &now2).contains("switch-away n2"));
}
