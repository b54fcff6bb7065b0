//! Run-time reconfiguration (hot swap): groups, members and components
//! added and removed.

use super::*;

use halyard_cluster_model::model::AdminState;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::crim::Input;
use crate::health::BlackBox;
use crate::replicated::{Change, Retention};

impl CoreState {
    /// Applies a run-time change (hot swap): CRIM first (checked whole),
    /// then the note for the agent, then the components' tasks; this node
    /// starts and stops what it hosts.
    /// `index`: the log index it was committed at (None on one node).
    pub(super) async fn reconfigure(
        &mut self,
        ch: Reconfigure,
        index: Option<u64>,
    ) -> Result<(), CoreError> {
        let added = ch.crim.added();
        if added.len() != ch.components.len()
            || ch.components.iter().any(|c| !added.contains(&c.name))
        {
            return Err(CoreError::Config(
                "the components to run are not the components added".into(),
            ));
        }
        if let Some(c) = ch
            .lost
            .iter()
            .chain(&ch.restart)
            .find(|c| !self.specs.contains_key(*c))
        {
            return Err(CoreError::UnknownComponent(c.clone()));
        }
        let removed: Vec<String> = ch
            .crim
            .leave
            .iter()
            .map(|l| l.component.clone())
            .chain(
                ch.crim
                    .remove_groups
                    .iter()
                    .filter_map(|g| self.crim.group(g))
                    .flat_map(|g| g.members.clone()),
            )
            .collect();
        let effects = self.crim.reconfigure(&ch.crim, "hot swap")?;
        // The agent's objects exist before their components' states change;
        // kept like every replicated change, so a model catches up with it.
        let index = index.unwrap_or_else(|| self.replicated.next_local());
        self.keep_replicated(
            index,
            Change {
                topic: HOTSWAP_TOPIC.to_string(),
                retention: Retention::Keep,
                body: ch.note.clone(),
                expect: None,
            },
        );
        for e in effects {
            self.effect(e).await;
        }
        for name in &removed {
            // The supervisor stops the process, then ends with its lane.
            if let Some(lane) = self.supervisors.remove(name) {
                lane.close();
            }
            if let Some(stop) = self.runner.stops.remove(name) {
                let _ = stop.send(true);
            }
            if let Some(spec) = self.specs.remove(name) {
                tracing::info!(component = %name, kind = ?spec.kind, "component removed");
            }
            self.sessions.remove(name);
            self.faults.remove(name);
            self.blackboxes.remove(name);
            self.audit_incarnations.remove(name);
            self.cec.set_parent(name, None);
            self.core.checkpoints.remove_component(name);
            self.runner.modes.write().expect("modes").remove(name);
            if let Some(rt) = &mut self.cluster {
                rt.starting.remove(name);
            }
        }
        let tx = self.self_tx.clone();
        for spec in ch.components {
            let name = spec.name.clone();
            self.blackboxes.insert(name.clone(), BlackBox::new(64));
            let inc = *self.incarnations.entry(name.clone()).or_insert(0);
            let (inc_tx, inc_rx) = watch::channel(inc);
            self.audit_incarnations.insert(name.clone(), inc_tx);
            if let Some(p) = &spec.parent {
                self.cec.set_parent(&name, Some(p));
            }
            self.runner
                .modes
                .write()
                .expect("modes")
                .insert(name.clone(), spec.checkpoint);
            let (stop_tx, stop_rx) = watch::channel(false);
            let sup = self.runner.spawn_tasks(&spec, inc_rx, &tx, stop_rx);
            if let Some(old) = self.runner.stops.insert(name.clone(), stop_tx) {
                let _ = old.send(true);
            }
            match sup {
                Some(s) => {
                    self.supervisors.insert(name.clone(), s);
                }
                None => {
                    if let Some(lane) = self.supervisors.remove(&name) {
                        lane.close();
                    }
                }
            }
            self.specs.insert(name, spec);
        }
        // A configured unit gone: CRIM loses its components, they stop here.
        for c in &ch.lost {
            let input = Input::Lost {
                component: c.clone(),
                reason: "unit removed from its slot".into(),
            };
            if let Err(e) = self.decide(input, Instant::now()).await {
                tracing::debug!(error = %e, "loss not applied");
            }
            self.faults.insert(c.clone(), "removed".into());
            if !self.replaying() && self.is_local(c) {
                self.core.checkpoints.remove_component(c);
                if let Some(s) = self.supervisors.get(c) {
                    s.push(SupCmd::Stop);
                }
            }
        }
        let locked = |s: &Self, c: &str| {
            s.crim
                .component(c)
                .is_some_and(|v| v.admin == AdminState::Locked)
        };
        for c in ch.restart.iter().chain(&added) {
            self.faults.remove(c);
            if !self.replaying() && self.is_local(c) && !locked(self, c) {
                if let Some(rt) = &mut self.cluster {
                    rt.starting.insert(c.clone(), Instant::now());
                }
                self.start_component(c).await;
            }
        }
        Ok(())
    }
}
