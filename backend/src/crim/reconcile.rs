//! The assignment rules: after every input a service group's service
//! instances get their active and standby components per its redundancy
//! model (2N, N+M, N-way active, no redundancy), and each member moves to
//! the availability state its assignments imply.

use std::collections::{BTreeMap, BTreeSet};

use halyard_cluster_model::model::{
    AdminState, AssignmentRole, AvailabilityState, RedundancyModel,
};

use super::{Crim, Effect, Handover, SiAssign, assignment_event};
use crate::events::EventKind;
use crate::state::{check_transition, path};

impl Crim {
    fn can_serve(&self, name: &str) -> bool {
        self.comps.get(name).is_some_and(|c| {
            c.up && !c.disabled && !c.offline_requested && c.admin == AdminState::Unlocked
        })
    }

    /// Recomputes a group's assignments and moves states accordingly.
    pub(super) fn reconcile(&mut self, sg_name: &str, reason: &str, fx: &mut Vec<Effect>) {
        let Some(sg) = self.sgs.get(sg_name) else {
            return;
        };
        let cfg = sg.cfg.clone();
        let before = sg.sis.clone();
        let mut sis = sg.sis.clone();
        let keeps = |c: &str| self.comps.get(c).is_some_and(|x| x.keep_role);
        let serve = |c: &str| self.can_serve(c) || keeps(c);
        let demoted: BTreeSet<String> = self
            .comps
            .iter()
            .filter(|(_, c)| c.demote)
            .map(|(n, _)| n.clone())
            .collect();

        // 1. Drop assignments that cannot stand.
        for a in sis.values_mut() {
            if a.active.as_deref().is_some_and(|c| !serve(c)) {
                a.active = None;
            }
            a.standby.retain(|c| self.can_serve(c));
        }
        // A hand-over whose old primary cannot serve any more is over; a
        // failed new one leaves the choice to the usual rules.
        // (Restarting in place does not count: it failed to step down.)
        let mut handover = sg.handover.clone().filter(|h| self.can_serve(&h.old));
        // The old primary and the instant of a hand-over completed now.
        let mut handed_over: Option<(String, Option<u64>)> = None;
        // Switch-over: the demoted primary yields to its standby. In 2N it
        // takes two decisions so the pair never has two primaries: the old
        // primary steps down to secondary, and only once it acknowledged
        // (Input::Acked) is the standby promoted.
        for a in sis.values_mut() {
            if let Some(act) = &a.active
                && demoted.contains(act)
                && let Some(pos) = a.standby.iter().position(|s| self.can_serve(s))
            {
                if cfg.model == RedundancyModel::TwoN {
                    let old = a.active.take().expect("active");
                    let new = a.standby[pos].clone();
                    if !a.standby.contains(&old) {
                        a.standby.push(old.clone());
                    }
                    let at = self.comps.get(&old).and_then(|c| c.switch_at);
                    handover = Some(Handover {
                        old,
                        new,
                        acked: false,
                        at,
                    });
                } else {
                    let new = a.standby.remove(pos);
                    let old = a.active.replace(new).expect("active");
                    a.standby.push(old);
                }
            }
        }

        let members: Vec<String> = cfg.members.clone();
        let available: Vec<String> = members
            .iter()
            .filter(|m| self.can_serve(m))
            .cloned()
            .collect();
        let primaries = |sis: &BTreeMap<String, SiAssign>| -> BTreeSet<String> {
            sis.values().filter_map(|a| a.active.clone()).collect()
        };

        match cfg.model {
            RedundancyModel::TwoN if handover.as_ref().is_some_and(|h| !h.acked) => {
                // Stepping down: nobody is primary until the old one says so.
                for a in sis.values_mut() {
                    a.active = None;
                }
            }
            RedundancyModel::TwoN => {
                // The old primary stepped down: its standby takes over.
                if let Some(Handover { old, new, at, .. }) = handover.take()
                    && self.can_serve(&new)
                {
                    handed_over = Some((old.clone(), at));
                    for a in sis.values_mut() {
                        a.active = Some(new.clone());
                        a.standby = if self.can_serve(&old) {
                            vec![old.clone()]
                        } else {
                            Vec::new()
                        };
                    }
                }
                // One primary carries every SI; one secondary backs them all.
                let current = sis.values().find_map(|a| a.active.clone());
                let primary = current.or_else(|| {
                    let standby = sis
                        .values()
                        .flat_map(|a| a.standby.iter())
                        .find(|s| !demoted.contains(*s))
                        .cloned();
                    standby
                        .or_else(|| available.iter().find(|c| !demoted.contains(*c)).cloned())
                        .or_else(|| available.first().cloned())
                });
                let secondary = primary.as_ref().and_then(|p| {
                    sis.values()
                        .flat_map(|a| a.standby.iter())
                        .find(|s| *s != p)
                        .cloned()
                        .or_else(|| available.iter().find(|c| *c != p).cloned())
                });
                for a in sis.values_mut() {
                    a.active = primary.clone();
                    a.standby = secondary.iter().cloned().collect();
                }
            }
            RedundancyModel::NoRedundancy => {
                let mut used: BTreeSet<String> = primaries(&sis);
                for a in sis.values_mut() {
                    a.standby.clear();
                    if a.active.is_none()
                        && let Some(c) = available.iter().find(|c| !used.contains(*c))
                    {
                        a.active = Some(c.clone());
                        used.insert(c.clone());
                    }
                }
            }
            RedundancyModel::NPlusM => {
                // Each SI has its own primary; M secondaries back every SI.
                let mut used = primaries(&sis);
                for a in sis.values_mut() {
                    if a.active.is_none() {
                        let promote = a
                            .standby
                            .iter()
                            .find(|s| !used.contains(*s))
                            .cloned()
                            .or_else(|| available.iter().find(|c| !used.contains(*c)).cloned());
                        if let Some(c) = promote {
                            used.insert(c.clone());
                            a.active = Some(c);
                        }
                    }
                }
                let mut secondaries: Vec<String> = Vec::new();
                for a in sis.values() {
                    for s in &a.standby {
                        if !used.contains(s) && !secondaries.contains(s) {
                            secondaries.push(s.clone());
                        }
                    }
                }
                for c in &available {
                    if secondaries.len() >= cfg.preferred_secondaries as usize {
                        break;
                    }
                    if !used.contains(c) && !secondaries.contains(c) {
                        secondaries.push(c.clone());
                    }
                }
                secondaries.truncate(cfg.preferred_secondaries as usize);
                for a in sis.values_mut() {
                    a.standby = secondaries.clone();
                }
            }
            RedundancyModel::NWayActive => {
                // Everyone serves; SIs spread over the available components.
                let mut load: BTreeMap<String, usize> =
                    available.iter().map(|c| (c.clone(), 0)).collect();
                for a in sis.values() {
                    if let Some(c) = &a.active
                        && let Some(n) = load.get_mut(c)
                    {
                        *n += 1;
                    }
                }
                for a in sis.values_mut() {
                    a.standby.clear();
                    if a.active.is_none()
                        && let Some((c, n)) = load.iter_mut().min_by_key(|(_, n)| **n)
                    {
                        *n += 1;
                        a.active = Some(c.clone());
                    }
                }
                // Rebalance onto idle components (one move each).
                loop {
                    let idle = load.iter().find(|(_, n)| **n == 0).map(|(c, _)| c.clone());
                    let busiest = load
                        .iter()
                        .max_by_key(|(_, n)| **n)
                        .map(|(c, n)| (c.clone(), *n));
                    match (idle, busiest) {
                        (Some(idle), Some((busy, n))) if n >= 2 => {
                            if let Some(a) = sis
                                .values_mut()
                                .rev()
                                .find(|a| a.active.as_deref() == Some(busy.as_str()))
                            {
                                a.active = Some(idle.clone());
                            }
                            *load.get_mut(&busy).expect("busy") -= 1;
                            *load.get_mut(&idle).expect("idle") += 1;
                        }
                        _ => break,
                    }
                }
            }
        }

        // Events for changed service instances.
        for (si, a) in &sis {
            let old = before.get(si).cloned().unwrap_or_default();
            if old.active != a.active {
                // A 2N switch-over ends with no active in between.
                let from = old
                    .active
                    .clone()
                    .or_else(|| handed_over.as_ref().map(|h| h.0.clone()));
                // Only a move away from a member that can no longer serve
                // it, or that was told to yield (switch-over), is a
                // fail-over. Moving work onto a member that just registered
                // (N-way-active rebalancing, at start-up or after a
                // restart) is an assignment change: nothing failed.
                let yielded = from
                    .as_ref()
                    .is_some_and(|f| !serve(f) || demoted.contains(f) || handed_over.is_some());
                if let (true, Some(from), Some(to)) = (yielded, &from, &a.active) {
                    fx.push(Effect::Event(EventKind::FailedOver {
                        si: si.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reason: reason.to_string(),
                    }));
                }
                if let Some(from) = &old.active {
                    fx.push(assignment_event(si, from, AssignmentRole::Active, false));
                }
                if let Some(to) = &a.active {
                    fx.push(assignment_event(si, to, AssignmentRole::Active, true));
                }
            }
            for s in old.standby.iter().filter(|s| !a.standby.contains(s)) {
                fx.push(assignment_event(si, s, AssignmentRole::Standby, false));
            }
            for s in a.standby.iter().filter(|s| !old.standby.contains(s)) {
                fx.push(assignment_event(si, s, AssignmentRole::Standby, true));
            }
        }
        if let Some(g) = self.sgs.get_mut(sg_name) {
            g.sis = sis.clone();
            g.handover = handover.clone();
        }

        // Move each member to the state its assignments imply.
        for m in &members {
            let Some(c) = self.comps.get(m) else { continue };
            if c.keep_role {
                continue;
            }
            let active: Vec<String> = sis
                .iter()
                .filter(|(_, a)| a.active.as_deref() == Some(m.as_str()))
                .map(|(s, _)| s.clone())
                .collect();
            let standby: Vec<String> = sis
                .iter()
                .filter(|(_, a)| a.standby.contains(m))
                .map(|(s, _)| s.clone())
                .collect();
            let target = if !self.can_serve(m) {
                AvailabilityState::OffLine
            } else if !active.is_empty() || cfg.model == RedundancyModel::NWayActive {
                AvailabilityState::Primary
            } else if !standby.is_empty() {
                AvailabilityState::Secondary
            } else {
                AvailabilityState::Spare
            };
            let from = c.avail;
            let changed_sis = before.iter().any(|(si, old)| {
                let now = &sis[si];
                (old.active.as_deref() == Some(m.as_str()))
                    != (now.active.as_deref() == Some(m.as_str()))
                    || old.standby.contains(m) != now.standby.contains(m)
            });
            if from == target && !changed_sis && !c.needs_assign {
                continue;
            }
            let mut cur = from;
            for step in path(from, target) {
                // path() only yields legal steps; checked again, never applied otherwise.
                if check_transition(cur, step).is_err() {
                    break;
                }
                fx.push(Effect::Event(EventKind::state_changed(
                    m, cur, step, reason,
                )));
                cur = step;
            }
            let c = self.comps.get_mut(m).expect("member");
            c.avail = cur;
            c.acked = None;
            if c.up {
                c.needs_assign = false;
                // The two halves of a timed hand-over take effect at its
                // instant: the old primary's step-down, then (once that is
                // promised) its standby's promotion.
                let at = match (&handover, &handed_over) {
                    (Some(h), _) if h.old == *m && cur == AvailabilityState::Secondary => h.at,
                    (_, Some((_, at))) if cur == AvailabilityState::Primary => *at,
                    _ => None,
                };
                c.primary_until = at.filter(|_| cur != AvailabilityState::Primary);
                fx.push(Effect::Assign {
                    component: m.clone(),
                    state: cur,
                    active,
                    standby,
                    at,
                });
            }
        }
    }
}
