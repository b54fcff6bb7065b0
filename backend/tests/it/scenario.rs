//! Replayable CRIM scenarios: `test_data/crim/*.scenario`, inputs and time
//! in, effects out.
//!
//! A scenario is a text file. Unindented lines are directives and inputs;
//! the indented lines under an input are the effects CRIM answered with,
//! as recorded. The test replays every file and compares; after an
//! intended change of behaviour, rewrite the recorded effects with
//!
//! ```text
//! HALYARD_BLESS=1 cargo test -p halyard-backend --test it scenario
//! ```
//!
//! and review the diff. Every state change is also checked against FIG. 5
//! and against the component's previous state, whatever the recording says.
//!
//! Directives and inputs (times are offsets from the scenario's start):
//!
//! ```text
//! # a comment
//! group <name> model=<two-n|n-plus-m|n-way-active|no-redundancy> members=a,b sis=x,y
//!       [secondaries=N] [recovery=<hot-restart|fail-over|...>] [max-restarts=N]
//!       [probation=<secs>s] [standby=<hot|warm|cold>]
//! at <secs>s                         the clock for the inputs that follow
//! registered <comp> [<incarnation>]  (default: the next incarnation)
//! acked <comp> <state>
//! failed <comp> [escalated] <reason...>   (the current incarnation)
//! set-admin <comp> <unlocked|locked|shutting-down>
//! switch-over <comp> [at=<unix ns>]
//! restart <comp>
//! request-offline <comp> <reason...>
//! request-online <comp>
//! container-failed <comp> <container>
//! lost <comp> <reason...>
//! show                               every component's state and assignments
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use halyard_backend::crim::{Crim, Effect, Input, SgConfig};
use halyard_backend::events::EventKind;
use halyard_backend::state::check_transition;
use halyard_cluster_model::model::{AvailabilityState, RecoveryAction, StandbyMode};
use tokio::time::Instant;

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test_data/crim")
}

/// One line of a scenario, with what it recorded.
struct Step {
    line: String,
    recorded: Vec<String>,
}

fn parse_steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            if let Some(s) = steps.last_mut() {
                s.recorded.push(line.trim().to_string());
            }
        } else {
            steps.push(Step {
                line: line.to_string(),
                recorded: Vec::new(),
            });
        }
    }
    steps
}

fn group(words: &[&str]) -> Result<SgConfig, String> {
    let name = words.first().ok_or("group needs a name")?;
    let mut cfg = SgConfig {
        name: name.to_string(),
        model: Default::default(),
        standby: StandbyMode::Hot,
        preferred_secondaries: 1,
        first_recovery: RecoveryAction::FailOver,
        max_restarts: 2,
        probation: Duration::from_secs(60),
        members: Vec::new(),
        sis: Vec::new(),
    };
    let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
    for w in &words[1..] {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("'{w}': expected key=value"))?;
        match k {
            "model" => cfg.model = v.parse()?,
            "members" => cfg.members = list(v),
            "sis" => cfg.sis = list(v),
            "secondaries" => cfg.preferred_secondaries = v.parse().map_err(|e| format!("{e}"))?,
            "recovery" => cfg.first_recovery = v.parse()?,
            "max-restarts" => cfg.max_restarts = v.parse().map_err(|e| format!("{e}"))?,
            "probation" => cfg.probation = secs(v)?,
            "standby" => cfg.standby = v.parse()?,
            _ => return Err(format!("unknown group key '{k}'")),
        }
    }
    Ok(cfg)
}

fn secs(v: &str) -> Result<Duration, String> {
    v.strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'{v}': expected seconds such as 1.5s"))
}

fn rest(words: &[&str], from: usize) -> String {
    words.get(from..).unwrap_or_default().join(" ")
}

/// Renders an effect as one stable line.
fn render(e: &Effect) -> String {
    match e {
        Effect::Assign {
            component,
            state,
            active,
            standby,
            at,
        } => {
            let mut s = format!("assign {component} {}", state.yang_name());
            if !active.is_empty() {
                let _ = write!(s, " active={}", active.join(","));
            }
            if !standby.is_empty() {
                let _ = write!(s, " standby={}", standby.join(","));
            }
            if let Some(at) = at {
                let _ = write!(s, " at={at}");
            }
            s
        }
        Effect::Restart { component, reason } => format!("restart {component}: {reason}"),
        Effect::Stop { component, reason } => format!("stop {component}: {reason}"),
        Effect::Event(k) => event(k),
    }
}

/// `event <kind> key=value ...`, from the event's serialized form: a new
/// field shows up here with no change to the runner.
fn event(k: &EventKind) -> String {
    let v = serde_json::to_value(k).expect("events serialize");
    let fields = v.as_object().expect("events are objects");
    let mut s = format!("event {}", fields["kind"].as_str().unwrap_or("?"));
    for (key, value) in fields.iter().filter(|(k, _)| *k != "kind") {
        let text = match value {
            serde_json::Value::String(t) if !t.is_empty() && !t.contains(char::is_whitespace) => {
                t.clone()
            }
            other => other.to_string(),
        };
        let _ = write!(s, " {key}={text}");
    }
    s
}

struct Replay {
    crim: Option<Crim>,
    groups: Vec<SgConfig>,
    start: Instant,
    now: Instant,
    states: HashMap<String, AvailabilityState>,
}

impl Replay {
    fn crim(&mut self) -> &mut Crim {
        let groups = &self.groups;
        self.crim.get_or_insert_with(|| Crim::new(groups.clone()))
    }

    fn incarnation(&mut self, c: &str) -> Result<u32, String> {
        self.crim()
            .component(c)
            .map(|v| v.incarnation)
            .ok_or_else(|| format!("unknown component {c}"))
    }

    /// Runs one line; returns the lines it produces.
    fn step(&mut self, line: &str) -> Result<Vec<String>, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Ok(Vec::new());
        };
        if verb.starts_with('#') {
            return Ok(Vec::new());
        }
        let arg = |i: usize| {
            args.get(i)
                .map(|s| s.to_string())
                .ok_or_else(|| format!("{verb}: argument {} missing", i + 1))
        };
        let input = match verb {
            "group" => {
                if self.crim.is_some() {
                    return Err("groups come before the first input".into());
                }
                self.groups.push(group(args)?);
                return Ok(Vec::new());
            }
            "at" => {
                self.now = self.start + secs(&arg(0)?)?;
                return Ok(Vec::new());
            }
            "show" => return Ok(self.show()),
            "registered" => {
                let component = arg(0)?;
                let incarnation = match args.get(1) {
                    Some(n) => n.parse().map_err(|e| format!("incarnation: {e}"))?,
                    None => self.incarnation(&component)? + 1,
                };
                Input::Registered {
                    component,
                    incarnation,
                }
            }
            "acked" => Input::Acked {
                component: arg(0)?,
                state: arg(1)?.parse()?,
            },
            "failed" => {
                let component = arg(0)?;
                let escalated = args.get(1) == Some(&"escalated");
                Input::Failed {
                    incarnation: self.incarnation(&component)?,
                    component,
                    reason: rest(args, if escalated { 2 } else { 1 }),
                    escalated,
                }
            }
            "set-admin" => Input::SetAdmin {
                component: arg(0)?,
                admin: arg(1)?.parse()?,
            },
            "switch-over" => Input::SwitchOver {
                component: arg(0)?,
                at: match args.get(1).and_then(|a| a.strip_prefix("at=")) {
                    Some(n) => Some(n.parse().map_err(|e| format!("at: {e}"))?),
                    None => None,
                },
            },
            "restart" => Input::Restart { component: arg(0)? },
            "request-offline" => Input::RequestOffline {
                component: arg(0)?,
                reason: rest(args, 1),
            },
            "request-online" => Input::RequestOnline { component: arg(0)? },
            "container-failed" => Input::ContainerFailed {
                component: arg(0)?,
                container: arg(1)?,
            },
            "lost" => Input::Lost {
                component: arg(0)?,
                reason: rest(args, 1),
            },
            _ => return Err(format!("unknown directive or input '{verb}'")),
        };
        let now = self.now;
        match self.crim().handle(input, now) {
            Ok(fx) => {
                self.check(&fx)?;
                Ok(fx.iter().map(render).collect())
            }
            Err(e) => Ok(vec![format!("refused: {e}")]),
        }
    }

    /// Every state change is a FIG. 5 transition from the state the
    /// component was in.
    fn check(&mut self, fx: &[Effect]) -> Result<(), String> {
        for e in fx {
            if let Effect::Event(EventKind::StateChanged {
                component,
                from,
                to,
                ..
            }) = e
            {
                let from: AvailabilityState = from.parse()?;
                let to: AvailabilityState = to.parse()?;
                let prev = self
                    .states
                    .get(component)
                    .copied()
                    .unwrap_or(AvailabilityState::OffLine);
                if prev != from {
                    return Err(format!("{component}: event says from {from}, was {prev}"));
                }
                check_transition(from, to).map_err(|e| e.to_string())?;
                self.states.insert(component.clone(), to);
            }
        }
        Ok(())
    }

    fn show(&mut self) -> Vec<String> {
        let crim = self.crim();
        let mut out: Vec<String> = crim
            .components()
            .into_iter()
            .map(|c| {
                format!(
                    "{} {} {} {} incarnation={}",
                    c.name,
                    c.admin.yang_name(),
                    c.oper.yang_name(),
                    c.avail.yang_name(),
                    c.incarnation
                )
            })
            .collect();
        let sis: Vec<String> = self.groups.iter().flat_map(|g| g.sis.clone()).collect();
        for si in sis {
            if let Some((active, standby)) = self.crim().si(&si) {
                out.push(format!(
                    "si {si} active={} standby={}",
                    active.as_deref().unwrap_or("-"),
                    if standby.is_empty() {
                        "-".to_string()
                    } else {
                        standby.join(",")
                    }
                ));
            }
        }
        out
    }
}

/// Replays one scenario; returns its text with the effects as replayed.
fn replay(path: &Path) -> Result<(String, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut r = Replay {
        crim: None,
        groups: Vec::new(),
        start,
        now: start,
        states: HashMap::new(),
    };
    let mut out = String::new();
    for (i, s) in parse_steps(&text).iter().enumerate() {
        let got = r
            .step(&s.line)
            .map_err(|e| format!("{}: step {}: {}: {e}", path.display(), i + 1, s.line))?;
        out.push_str(&s.line);
        out.push('\n');
        for g in got {
            let _ = writeln!(out, "    {g}");
        }
    }
    Ok((text, out))
}

#[test]
fn crim_scenarios_replay_as_recorded() {
    let bless = std::env::var_os("HALYARD_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("test_data/crim")
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
         HALYARD_BLESS=1 cargo test -p halyard-backend --test it scenario):\n{}",
        differ.join("\n")
    );
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
fn a_changed_recording_is_caught() {
    let dir = scenario_dir();
    let f = dir.join("two-n-fail-over.scenario");
    let (was, now) = replay(&f).unwrap();
    assert_eq!(was, now, "the recording itself replays");
    // The same scenario with one recorded effect altered must differ.
    let altered = was.replacen("assign b primary", "assign a primary", 1);
    assert_ne!(altered, was, "the scenario assigns b primary somewhere");
    let tmp = std::env::temp_dir().join(format!("halyard-scenario-{}", std::process::id()));
    std::fs::write(&tmp, &altered).unwrap();
    let (was2, now2) = replay(&tmp).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    assert_ne!(was2, now2);
}
