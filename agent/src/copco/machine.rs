//! COpCo's decisions without I/O: the lock table (which running job holds
//! which subtree) and a job's progress (what its Job object and handle
//! show after each event). `locks.rs` and `mod.rs` apply them;
//! `test_data/copco/*.scenario` replays them (`scenario_tests.rs`).

use halyard_cluster_model::ObjectName;
use halyard_cluster_model::model::{JobPatch, JobState};
use halyard_cluster_model::port::JobStatus;

/// Subtrees held by running jobs: (root, job).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LockTable {
    held: Vec<(ObjectName, ObjectName)>,
}

impl LockTable {
    /// Why `target` cannot be acted on: a running job holds a subtree that
    /// contains it or lies within it.
    pub fn holder(&self, target: &ObjectName) -> Option<String> {
        self.held
            .iter()
            .find(|(root, _)| target.is_within(root) || root.is_within(target))
            .map(|(root, job)| format!("{root} is locked by {job}, which is still running"))
    }

    /// Takes `target` for `job`, or says who holds it.
    pub fn take(&mut self, target: &ObjectName, job: &ObjectName) -> Result<(), String> {
        if let Some(reason) = self.holder(target) {
            return Err(reason);
        }
        self.held.push((target.clone(), job.clone()));
        Ok(())
    }

    /// Frees what `job` held; returns those subtrees.
    pub fn release(&mut self, job: &ObjectName) -> Vec<ObjectName> {
        let (freed, kept): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(_, j)| j == job);
        self.held = kept;
        freed.into_iter().map(|(root, _)| root).collect()
    }

    #[cfg(test)]
    pub fn held(&self) -> &[(ObjectName, ObjectName)] {
        &self.held
    }
}

/// What happens to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A queued job got its subtree.
    Admitted,
    /// A queued job waited too long: the holder's reason.
    Refused(String),
    /// The next step begins.
    StepStarted,
    /// The running step succeeded.
    StepDone,
    /// The running step failed.
    StepFailed(String),
    /// Every step succeeded.
    Finished,
    /// The job's task panicked.
    Panicked(String),
}

/// A job's progress: the state, the step, the detail, the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    what: String,
    steps: Vec<String>,
    done: u32,
    /// The step under way (index), once one started.
    current: Option<usize>,
    state: JobState,
    detail: String,
    result: Option<u32>,
}

impl Progress {
    /// A job of `steps` (descriptions) doing `what`; `queued`: the reason
    /// it waits for its subtree.
    pub fn new(what: impl Into<String>, steps: Vec<String>, queued: Option<&str>) -> Self {
        let (state, detail) = match queued {
            Some(r) => (JobState::Queued, format!("queued: {r}")),
            None => (
                JobState::Running,
                steps.first().cloned().unwrap_or_default(),
            ),
        };
        Self {
            what: what.into(),
            steps,
            done: 0,
            current: None,
            state,
            detail,
            result: None,
        }
    }

    pub fn finished(&self) -> bool {
        self.result.is_some()
    }

    /// Applies an event; one that does not fit the state (a step after the
    /// end, a second admission) changes nothing.
    pub fn apply(&mut self, e: JobEvent) {
        if self.finished() {
            return;
        }
        match e {
            JobEvent::Admitted if self.state == JobState::Queued => {
                self.state = JobState::Running;
                self.detail = self.steps.first().cloned().unwrap_or_default();
            }
            JobEvent::Refused(reason) if self.state == JobState::Queued => {
                self.end(JobState::Rejected, format!("rejected: {reason}"), 1);
            }
            JobEvent::StepStarted if self.state == JobState::Running => {
                let next = self.current.map_or(0, |i| i + 1);
                if let Some(d) = self.steps.get(next) {
                    self.current = Some(next);
                    self.detail = d.clone();
                }
            }
            JobEvent::StepDone if self.current.is_some_and(|i| i as u32 == self.done) => {
                self.done += 1;
            }
            JobEvent::StepFailed(e) if self.current.is_some() => {
                self.end(JobState::Failed, format!("{}: {e}", self.detail), 1);
            }
            JobEvent::Finished if self.state == JobState::Running => {
                self.end(JobState::Succeeded, format!("{}: done", self.what), 0);
            }
            JobEvent::Panicked(p) => self.end(
                JobState::Failed,
                format!("failed: internal error (the job's task panicked: {p})"),
                1,
            ),
            _ => {}
        }
    }

    fn end(&mut self, state: JobState, detail: String, result: u32) {
        self.state = state;
        self.detail = detail;
        self.result = Some(result);
    }

    /// What the job's handle shows.
    pub fn status(&self) -> JobStatus {
        JobStatus {
            state: self.state,
            steps_done: self.done,
            steps_total: self.steps.len() as u32,
            detail: self.detail.clone(),
            result: self.result,
        }
    }

    /// What the Job object shows.
    pub fn patch(&self) -> JobPatch {
        JobPatch::new()
            .state(self.state)
            .steps_done(self.done)
            .detail(self.detail.as_str())
    }
}
