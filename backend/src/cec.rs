//! The component error correlator. Every error report passes through it
//! on its way to CRIM. Verdicts: forward; re-target to the true source
//! (several children of one parent failing together: the parent is the
//! suspect); escalate after repeated reports; hold for a correlation
//! window; discard stale reports (about an incarnation whose recovery is
//! already under way) and duplicates. Rules are data; every verdict is
//! returned with its reason for the caller to log and publish.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// What went wrong, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A process component exited.
    ProcessExit,
    /// A health audit failed.
    AuditFailed,
    /// A health audit did not finish within its deadline.
    AuditOverrun,
    /// The component reported itself unhealthy.
    HealthReport,
    /// A hardware fault (simulated FRUs, hot-swap).
    Hardware,
    /// A task of the agent serving the component (its supervisor or its
    /// audit) panicked: the component is no longer watched as it should be.
    TaskPanicked,
}

impl ErrorKind {
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::ProcessExit => "process-exit",
            ErrorKind::AuditFailed => "audit-failed",
            ErrorKind::AuditOverrun => "audit-overrun",
            ErrorKind::HealthReport => "health-report",
            ErrorKind::Hardware => "hardware",
            ErrorKind::TaskPanicked => "task-panicked",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReport {
    pub component: String,
    /// The incarnation the reporter observed.
    pub incarnation: u32,
    pub kind: ErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Pass to CRIM as is.
    Forward(ErrorReport),
    /// Pass to CRIM about another component (the probable source).
    Retarget {
        to: String,
        report: ErrorReport,
    },
    /// Pass to CRIM, marked for a stronger recovery.
    Escalate(ErrorReport),
    /// Kept for the correlation window; `tick` decides later.
    Hold,
    DiscardStale,
    DiscardDuplicate,
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Forward(_) => "forward",
            Verdict::Retarget { .. } => "retarget",
            Verdict::Escalate(_) => "escalate",
            Verdict::Hold => "hold",
            Verdict::DiscardStale => "discard-stale",
            Verdict::DiscardDuplicate => "discard-duplicate",
        }
    }
}

/// The correlation rules (data, from the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct CecRules {
    /// Report kinds held for correlation instead of forwarded at once.
    pub hold_kinds: Vec<ErrorKind>,
    pub correlation_window: Duration,
    /// Children of one parent failing within the window that make the
    /// parent the suspect.
    pub sibling_threshold: usize,
    /// Reports about one component within `escalation_window` after
    /// which the next is escalated.
    pub escalate_after: usize,
    pub escalation_window: Duration,
}

impl Default for CecRules {
    fn default() -> Self {
        CecRules {
            hold_kinds: vec![ErrorKind::Hardware],
            correlation_window: Duration::from_millis(500),
            sibling_threshold: 2,
            escalate_after: 3,
            escalation_window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
pub struct Cec {
    rules: CecRules,
    /// Component -> its container (for re-targeting).
    parents: HashMap<String, String>,
    /// Component -> current incarnation (as CRIM knows it).
    incarnations: HashMap<String, u32>,
    /// Component -> incarnation whose recovery is under way.
    recovering: HashMap<String, u32>,
    /// Forwarded (component, incarnation, kind): duplicates of these are dropped.
    seen: HashMap<(String, u32, ErrorKind), Instant>,
    /// Recent forwarded reports per component, for escalation.
    recent: HashMap<String, Vec<Instant>>,
    held: Vec<(ErrorReport, Instant)>,
}

/// A verdict with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub component: String,
    pub verdict: Verdict,
    pub reason: String,
}

impl Cec {
    pub fn new(rules: CecRules, parents: HashMap<String, String>) -> Self {
        Cec {
            rules,
            parents,
            incarnations: HashMap::new(),
            recovering: HashMap::new(),
            seen: HashMap::new(),
            recent: HashMap::new(),
            held: Vec::new(),
        }
    }

    /// A component added (with its container, if any) or removed at run
    /// time (hot swap).
    pub fn set_parent(&mut self, component: &str, parent: Option<&str>) {
        match parent {
            Some(p) => {
                self.parents.insert(component.to_string(), p.to_string());
            }
            None => {
                self.parents.remove(component);
                self.incarnations.remove(component);
                self.recovering.remove(component);
            }
        }
    }

    /// CRIM started a new incarnation of a component.
    pub fn incarnation(&mut self, component: &str, incarnation: u32) {
        self.incarnations.insert(component.to_string(), incarnation);
        self.recovering.remove(component);
    }

    /// CRIM chose a recovery for this incarnation.
    pub fn recovery_started(&mut self, component: &str, incarnation: u32) {
        self.recovering.insert(component.to_string(), incarnation);
    }

    /// Judges one report.
    pub fn report(&mut self, r: ErrorReport, now: Instant) -> Decision {
        let component = r.component.clone();
        let current = self.incarnations.get(&component).copied().unwrap_or(0);
        if r.incarnation < current {
            return decision(
                &component,
                Verdict::DiscardStale,
                format!("about incarnation {} but {current} runs", r.incarnation),
            );
        }
        if self.recovering.get(&component) == Some(&r.incarnation) {
            return decision(
                &component,
                Verdict::DiscardStale,
                format!(
                    "recovery of incarnation {} already under way",
                    r.incarnation
                ),
            );
        }
        let key = (component.clone(), r.incarnation, r.kind.clone());
        if self.seen.contains_key(&key)
            || self
                .held
                .iter()
                .any(|(h, _)| (h.component.clone(), h.incarnation, h.kind.clone()) == key)
        {
            return decision(
                &component,
                Verdict::DiscardDuplicate,
                format!(
                    "{} for incarnation {} already reported",
                    r.kind.name(),
                    r.incarnation
                ),
            );
        }
        if self.rules.hold_kinds.contains(&r.kind) && self.parents.contains_key(&component) {
            self.held.push((r, now));
            return decision(
                &component,
                Verdict::Hold,
                format!(
                    "held {} ms for correlation with siblings",
                    self.rules.correlation_window.as_millis()
                ),
            );
        }
        self.forward(r, now)
    }

    fn forward(&mut self, r: ErrorReport, now: Instant) -> Decision {
        let component = r.component.clone();
        self.seen
            .insert((component.clone(), r.incarnation, r.kind.clone()), now);
        let window = self.rules.escalation_window;
        let recent = self.recent.entry(component.clone()).or_default();
        recent.retain(|t| now.saturating_duration_since(*t) <= window);
        recent.push(now);
        if recent.len() > self.rules.escalate_after {
            let n = recent.len();
            return decision(
                &component,
                Verdict::Escalate(r),
                format!("{n} reports within {}s", window.as_secs()),
            );
        }
        let kind = r.kind.name();
        decision(&component, Verdict::Forward(r), format!("{kind} forwarded"))
    }

    /// Releases held reports whose window has passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Decision> {
        let window = self.rules.correlation_window;
        let (due, keep): (Vec<_>, Vec<_>) = self
            .held
            .drain(..)
            .partition(|(_, t)| now.saturating_duration_since(*t) >= window);
        self.held = keep;
        let mut by_parent: BTreeMap<String, Vec<ErrorReport>> = BTreeMap::new();
        let mut out = Vec::new();
        for (r, _) in due {
            let parent = self.parents.get(&r.component).cloned().unwrap_or_default();
            by_parent.entry(parent).or_default().push(r);
        }
        for (parent, reports) in by_parent {
            if reports.len() >= self.rules.sibling_threshold && !parent.is_empty() {
                let names: Vec<&str> = reports.iter().map(|r| r.component.as_str()).collect();
                let reason = format!(
                    "{} children failed together ({}): the parent is the suspect",
                    names.len(),
                    names.join(", ")
                );
                let first = reports[0].clone();
                for r in &reports {
                    self.seen
                        .insert((r.component.clone(), r.incarnation, r.kind.clone()), now);
                }
                out.push(decision(
                    &first.component,
                    Verdict::Retarget {
                        to: parent.clone(),
                        report: ErrorReport {
                            component: parent,
                            incarnation: 0,
                            kind: first.kind.clone(),
                            detail: reason.clone(),
                        },
                    },
                    reason,
                ));
            } else {
                for r in reports {
                    out.push(self.forward(r, now));
                }
            }
        }
        // Forget old duplicates.
        let keep_for = self.rules.escalation_window;
        self.seen
            .retain(|_, t| now.saturating_duration_since(*t) <= keep_for);
        out
    }

    /// When the next held report is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held
            .iter()
            .map(|(_, t)| *t + self.rules.correlation_window)
            .min()
    }
}

fn decision(component: &str, verdict: Verdict, reason: String) -> Decision {
    Decision {
        component: component.to_string(),
        verdict,
        reason,
    }
}
