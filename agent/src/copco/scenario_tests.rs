//! Replayable COpCo decisions: `test_data/copco/*.scenario`, events in,
//! the lock table's and a job's answers out, in the style of CRIM's and
//! the upgrade campaign's scenarios. Unindented lines are inputs; the
//! indented lines under one are what the pure [`super::machine`] answered,
//! as recorded. After an intended change rewrite the recordings with
//!
//! ```text
//! HALYARD_BLESS=1 cargo test -p halyard-agent --bins copco
//! ```
//!
//! and review the diff.
//!
//! ```text
//! # a comment
//! take <subtree> <job>       the lock table: granted, or refused: <holder>
//! check <target>             free, or busy: <holder>
//! release <job>              freed <subtrees>
//! job <what> | <step> | ...  a job that got its subtree
//! queued <reason> | <what> | <step> | ...   one that waits for it
//! admitted | refused <reason> | step | done | failed <error> | finished | panicked <text>
//! show                       the held subtrees
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use halyard_cluster_model::{ObjectName, SchemaEnum, Value};

use super::machine::{JobEvent, LockTable, Progress};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test_data/copco")
}

fn name(s: &str) -> ObjectName {
    ObjectName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn status_line(p: &Progress) -> String {
    let s = p.status();
    // The Job object shows what the handle shows.
    assert_eq!(
        p.patch().values(),
        &[
            ("State", Value::Enum(s.state.value())),
            ("StepsDone", Value::U32(s.steps_done)),
            ("Detail", Value::Str(s.detail.clone())),
        ][..]
    );
    format!(
        "{} {}/{} result={} detail={:?}",
        s.state.label(),
        s.steps_done,
        s.steps_total,
        s.result.map_or("-".into(), |r| r.to_string()),
        s.detail,
    )
}

/// Replays one scenario text; returns it with the answers recorded.
fn replay(text: &str) -> String {
    let mut out = String::new();
    let mut table = LockTable::default();
    let mut job: Option<Progress> = None;
    for line in text.lines() {
        if line.starts_with(' ') {
            continue;
        }
        let _ = writeln!(out, "{line}");
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut answer = Vec::new();
        let mut event = |e: JobEvent, answer: &mut Vec<String>| {
            let p = job.as_mut().expect("a job first");
            p.apply(e);
            answer.push(status_line(p));
        };
        match verb {
            "take" => {
                let (subtree, j) = rest.split_once(' ').expect("take <subtree> <job>");
                answer.push(match table.take(&name(subtree), &name(j)) {
                    Ok(()) => "granted".into(),
                    Err(r) => format!("refused: {r}"),
                });
            }
            "check" => answer.push(
                table
                    .holder(&name(rest))
                    .map_or("free".into(), |r| format!("busy: {r}")),
            ),
            "release" => {
                let freed = table.release(&name(rest));
                answer.push(if freed.is_empty() {
                    "freed nothing".into()
                } else {
                    format!(
                        "freed {}",
                        freed
                            .iter()
                            .map(ObjectName::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                });
            }
            "job" | "queued" => {
                let mut parts = rest.split('|').map(str::trim);
                let queued = (verb == "queued").then(|| parts.next().expect("a reason"));
                let what = parts.next().expect("what the job does");
                let steps: Vec<String> = parts.map(str::to_string).collect();
                let p = Progress::new(what, steps, queued);
                answer.push(status_line(&p));
                job = Some(p);
            }
            "admitted" => event(JobEvent::Admitted, &mut answer),
            "refused" => event(JobEvent::Refused(rest.into()), &mut answer),
            "step" => event(JobEvent::StepStarted, &mut answer),
            "done" => event(JobEvent::StepDone, &mut answer),
            "failed" => event(JobEvent::StepFailed(rest.into()), &mut answer),
            "finished" => event(JobEvent::Finished, &mut answer),
            "panicked" => event(JobEvent::Panicked(rest.into()), &mut answer),
            "show" => {
                if table.held().is_empty() {
                    answer.push("held -".into());
                }
                for (root, j) in table.held() {
                    answer.push(format!("held {root} by {j}"));
                }
            }
            other => panic!("unknown input {other:?} in {line:?}"),
        }
        for a in answer {
            let _ = writeln!(out, "    {a}");
        }
    }
    out
}

fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("test_data/copco")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    v.sort();
    v
}

#[test]
fn copco_scenarios_replay_as_recorded() {
    let bless = std::env::var_os("HALYARD_BLESS").is_some();
    let files = files();
    assert!(files.len() >= 3, "{files:?}");
    let mut differ = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let got = replay(&text);
        if got != text {
            if bless {
                std::fs::write(&f, &got).unwrap();
            } else {
                differ.push(format!(
                    "{} differs from its replay (HALYARD_BLESS=1 rewrites it):\n{got}",
                    f.display()
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn a_changed_recording_is_caught() {
    let f = &files()[0];
    let text = std::fs::read_to_string(f).unwrap();
    let changed = text.replacen("    ", "    changed ", 1);
    assert_ne!(replay(&changed), changed);
}
