//! Run-time changes of CRIM's groups and components (hot swap): checked
//! whole against the current configuration, then applied whole, so a
//! refused change leaves nothing behind.

use std::collections::BTreeSet;

use halyard_cluster_model::model::{AdminState, AssignmentRole, AvailabilityState};

use super::{Comp, Crim, CrimError, Effect, Reconfig, Sg, SiAssign, assignment_event};
use crate::events::EventKind;
use crate::state::{check_transition, path};

impl Crim {
    /// Applies a run-time change of groups and components (hot swap), or
    /// refuses it whole. Components that leave are stopped; what they
    /// served moves to the remaining members of their group.
    pub fn reconfigure(&mut self, r: &Reconfig, reason: &str) -> Result<Vec<Effect>, CrimError> {
        self.check_reconfig(r)?;
        let mut fx = Vec::new();
        let mut touched = BTreeSet::new();
        // Leaving first: a slot can be emptied and refilled in one change.
        for l in &r.leave {
            let Some(sg) = self.sgs.get_mut(&l.group) else {
                continue;
            };
            sg.cfg.members.retain(|m| *m != l.component);
            sg.cfg.sis.retain(|s| !l.sis.contains(s));
            let gone: Vec<(String, SiAssign)> = l
                .sis
                .iter()
                .filter_map(|s| sg.sis.remove(s).map(|a| (s.clone(), a)))
                .collect();
            fx.extend(unassigned(&gone));
            self.drop_component(&l.component, reason, &mut fx);
            touched.insert(l.group.clone());
        }
        for g in &r.remove_groups {
            let Some(sg) = self.sgs.remove(g) else {
                continue;
            };
            let gone: Vec<(String, SiAssign)> = sg.sis.into_iter().collect();
            fx.extend(unassigned(&gone));
            for m in &sg.cfg.members {
                self.drop_component(m, reason, &mut fx);
            }
            touched.remove(g);
        }
        let admin = |c: &str| {
            if r.locked.iter().any(|l| l == c) {
                AdminState::Locked
            } else {
                AdminState::Unlocked
            }
        };
        for cfg in &r.add_groups {
            for m in &cfg.members {
                self.comps.insert(m.clone(), Comp::new(&cfg.name, admin(m)));
            }
            let sis = cfg
                .sis
                .iter()
                .map(|s| (s.clone(), SiAssign::default()))
                .collect();
            self.sgs.insert(
                cfg.name.clone(),
                Sg {
                    cfg: cfg.clone(),
                    sis,
                    handover: None,
                },
            );
            touched.insert(cfg.name.clone());
        }
        for j in &r.join {
            self.comps.insert(
                j.component.clone(),
                Comp::new(&j.group, admin(&j.component)),
            );
            if let Some(sg) = self.sgs.get_mut(&j.group) {
                sg.cfg.members.push(j.component.clone());
                for si in &j.sis {
                    sg.cfg.sis.push(si.clone());
                    sg.sis.insert(si.clone(), SiAssign::default());
                }
            }
            touched.insert(j.group.clone());
        }
        for g in touched {
            self.reconcile(&g, reason, &mut fx);
        }
        Ok(fx)
    }

    fn check_reconfig(&self, r: &Reconfig) -> Result<(), CrimError> {
        let refuse = |m: String| Err(CrimError::Reconfig(m));
        let leaving: BTreeSet<&str> = r
            .leave
            .iter()
            .map(|l| l.component.as_str())
            .chain(
                r.remove_groups
                    .iter()
                    .filter_map(|g| self.sgs.get(g))
                    .flat_map(|g| g.cfg.members.iter().map(String::as_str)),
            )
            .collect();
        let si_exists = |si: &str| self.sgs.values().any(|g| g.sis.contains_key(si));
        let mut new = BTreeSet::new();
        for l in &r.leave {
            match self.sgs.get(&l.group) {
                None => return refuse(format!("no service group {}", l.group)),
                Some(g) if !g.cfg.members.contains(&l.component) => {
                    return refuse(format!("{} is not a member of {}", l.component, l.group));
                }
                Some(g) => {
                    if let Some(si) = l.sis.iter().find(|s| !g.sis.contains_key(*s)) {
                        return refuse(format!("{si} is not a service instance of {}", l.group));
                    }
                }
            }
        }
        if let Some(g) = r.remove_groups.iter().find(|g| !self.sgs.contains_key(*g)) {
            return refuse(format!("no service group {g}"));
        }
        for g in &r.add_groups {
            if self.sgs.contains_key(&g.name) && !r.remove_groups.contains(&g.name) {
                return refuse(format!("service group {} exists", g.name));
            }
            if g.sis.is_empty() {
                return refuse(format!("service group {} has no service instance", g.name));
            }
        }
        let joins = r
            .add_groups
            .iter()
            .flat_map(|g| g.members.iter().map(move |m| (m, &g.sis)))
            .chain(r.join.iter().map(|j| (&j.component, &j.sis)));
        for (c, sis) in joins {
            if (self.comps.contains_key(c) && !leaving.contains(c.as_str())) || !new.insert(c) {
                return refuse(format!("component {c} exists"));
            }
            if let Some(si) = sis.iter().find(|s| si_exists(s)) {
                return refuse(format!("service instance {si} exists"));
            }
        }
        for j in &r.join {
            let known = self.sgs.contains_key(&j.group) && !r.remove_groups.contains(&j.group);
            if !known && !r.add_groups.iter().any(|g| g.name == j.group) {
                return refuse(format!("no service group {}", j.group));
            }
        }
        if let Some(l) = r.locked.iter().find(|l| !new.contains(l)) {
            return refuse(format!("{l} is locked but not added"));
        }
        Ok(())
    }

    /// A component leaves CRIM: it goes off-line and is stopped.
    fn drop_component(&mut self, name: &str, reason: &str, fx: &mut Vec<Effect>) {
        let Some(c) = self.comps.remove(name) else {
            return;
        };
        let mut cur = c.avail;
        for step in path(c.avail, AvailabilityState::OffLine) {
            if check_transition(cur, step).is_err() {
                break;
            }
            fx.push(Effect::Event(EventKind::state_changed(
                name, cur, step, reason,
            )));
            cur = step;
        }
        fx.push(Effect::Stop {
            component: name.to_string(),
            reason: reason.to_string(),
        });
    }
}

/// Assignment-removal events for service instances that go away.
fn unassigned(gone: &[(String, SiAssign)]) -> Vec<Effect> {
    let mut fx = Vec::new();
    for (si, a) in gone {
        if let Some(c) = &a.active {
            fx.push(assignment_event(si, c, AssignmentRole::Active, false));
        }
        for c in &a.standby {
            fx.push(assignment_event(si, c, AssignmentRole::Standby, false));
        }
    }
    fx
}
