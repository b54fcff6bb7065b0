//! A campaign's plan and each node's own part of a step: pure functions.
//!
//! The plan comes from the element's nodes, the master and (split mode)
//! its 2N pairs; the node's part from the campaign as the log shows it.

use std::collections::{BTreeMap, BTreeSet};

use super::campaign::{Campaign, CampaignState, Method, Step, order};

/// The nodes of the split: every 2N pair (`pairs`: the nodes hosting its
/// two members) has one member on each side. The first half holds no
/// primary if it can (`primaries`: nodes hosting one): it is upgraded first.
pub fn halves(
    nodes: &[String],
    pairs: &[(String, String)],
    primaries: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut color: BTreeMap<String, bool> = BTreeMap::new();
    for n in nodes {
        if color.contains_key(n) {
            continue;
        }
        color.insert(n.clone(), false);
        let mut stack = vec![n.clone()];
        while let Some(x) = stack.pop() {
            let cx = color[&x];
            for (a, b) in pairs.iter().filter(|(a, b)| a != b) {
                let other = if *a == x {
                    b
                } else if *b == x {
                    a
                } else {
                    continue;
                };
                if !color.contains_key(other) {
                    color.insert(other.clone(), !cx);
                    stack.push(other.clone());
                }
            }
        }
    }
    let side = |c: bool| -> Vec<String> {
        color
            .iter()
            .filter(|(_, v)| **v == c)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let (a, b) = (side(false), side(true));
    let count = |s: &[String]| s.iter().filter(|n| primaries.contains(*n)).count();
    if count(&a) <= count(&b) {
        (a, b)
    } else {
        (b, a)
    }
}

/// The steps of a campaign to `version`: fetch, stage, then per node
/// (rolling: in [`order`], the master last), per half (split mode: the
/// [`halves`], each rebooted in batches that keep a majority up, the master
/// last) or all at once (reboot) switch away and reboot, then commit.
pub fn plan(
    method: Method,
    version: &str,
    nodes: &[String],
    master: Option<&str>,
    halves: (Vec<String>, Vec<String>),
) -> Vec<Step> {
    let mut steps = vec![
        Step::Fetch {
            version: version.into(),
        },
        Step::Stage {
            version: version.into(),
            from: None,
        },
    ];
    match method {
        Method::Rolling => {
            for n in order(nodes, master) {
                steps.push(Step::SwitchAway {
                    nodes: vec![n.clone()],
                });
                steps.push(Step::Reboot {
                    nodes: vec![n],
                    version: version.into(),
                });
            }
        }
        Method::SplitMode => {
            // A half reboots in batches that leave a majority of the nodes
            // up: two of three nodes rebooting at once would take the
            // consensus with them, and the other half, which carries every
            // primary meanwhile, would have to fence itself.
            let batch = (nodes.len().saturating_sub(1) / 2).max(1);
            let (first, second) = halves;
            for half in [first, second] {
                if half.is_empty() {
                    continue;
                }
                steps.push(Step::SwitchAway {
                    nodes: half.clone(),
                });
                let last = master.filter(|m| half.iter().any(|n| n == m));
                for nodes in order(&half, last).chunks(batch) {
                    steps.push(Step::Reboot {
                        nodes: nodes.to_vec(),
                        version: version.into(),
                    });
                }
            }
        }
        Method::Reboot => steps.push(Step::Reboot {
            nodes: nodes.to_vec(),
            version: version.into(),
        }),
    }
    steps.push(Step::Commit {
        version: version.into(),
    });
    steps
}

/// A new, running campaign over `steps`, started at `now_ms`.
pub fn new_campaign(
    id: u64,
    method: Method,
    target: &str,
    from: &str,
    steps: Vec<Step>,
    principal: &str,
    now_ms: u64,
) -> Campaign {
    Campaign {
        id,
        method,
        target: target.into(),
        from: from.into(),
        state: CampaignState::Running,
        detail: steps.first().map_or_else(String::new, Step::describe),
        steps,
        current: 0,
        epoch: 0,
        step_started_ms: now_ms,
        step_paused_ms: 0,
        paused_since_ms: None,
        started_ms: now_ms,
        ended_ms: None,
        ops_seen: 0,
        reason: None,
        principal: principal.into(),
    }
}

/// A node's own part of a campaign's current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    /// Copy the release into its alternate slot, from that peer (or the
    /// load server).
    Stage {
        version: String,
        from: Option<String>,
    },
    /// Arm the release as a trial and exit to boot onto it.
    ArmAndReboot { version: String },
    /// Commit the release it runs.
    Commit { version: String },
    /// Re-arm the committed release (drop a trial).
    Disarm,
    /// Nothing to do but record that it saw the step.
    Nothing,
}

/// What node `me`, running `running` and having last carried out the step
/// `acted`, does for the campaign's current step, with the step's key;
/// `None` when it has nothing (more) to do.
pub fn duty(c: &Campaign, me: &str, running: &str, acted: Option<&str>) -> Option<(String, Duty)> {
    if !c.state.moving() {
        return None;
    }
    let step = c.steps.get(c.current)?;
    let key = c.step_key();
    if acted == Some(key.as_str()) {
        return None;
    }
    let duty = match step {
        Step::Stage { version, from } => Duty::Stage {
            version: version.clone(),
            from: from.clone(),
        },
        Step::Reboot { nodes, version } if nodes.iter().any(|n| n == me) && running != version => {
            Duty::ArmAndReboot {
                version: version.clone(),
            }
        }
        Step::Commit { version } if running == version => Duty::Commit {
            version: version.clone(),
        },
        Step::Disarm => Duty::Disarm,
        _ => Duty::Nothing,
    };
    Some((key, duty))
}
