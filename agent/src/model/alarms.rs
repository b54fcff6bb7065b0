//! Alarms: raising, folding and clearing them, flap and storm limits, and
//! their persisted form.

use std::sync::atomic::Ordering;

use halyard_cluster_model::alarm;
use halyard_cluster_model::meta::Role;
use halyard_cluster_model::model::{
    AlarmClearedPatch, AlarmCorrelation, AlarmPatch, AlarmRaisedPatch, NetworkElementPatch,
    OperatorState, PerceivedSeverity, ProbableCause,
};
use halyard_cluster_model::port::{InformationModel, ManagedObject, ModelError, Query, Scope};
use halyard_cluster_model::{ObjectName, SCHEMA, SchemaEnum, Timestamp, Value};
use serde_json::json;

use super::{AgentModel, enum_of, err_commit, name};

/// Flapping and storm state, kept under the alarm lock.
#[derive(Debug, Default)]
pub(super) struct AlarmGuards {
    /// (resource, cause) -> recent raise times.
    raises: std::collections::HashMap<(String, u32), std::collections::VecDeque<i64>>,
    /// Secondary alarms dropped because the active set was full.
    dropped: u64,
}

/// More raises than this for one resource and cause within the window is
/// flapping: the alarm is updated, not announced again.
const FLAP_LIMIT: usize = 3;
const FLAP_WINDOW_MS: i64 = 60_000;
/// Active alarms kept; past it only root and independent alarms are added.
pub(crate) const STORM_LIMIT: usize = 2_000;

impl AgentModel {
    /// Raises an alarm, or folds it into the active one for the same
    /// resource and cause. Persisted before it is announced.
    pub(crate) async fn raise_alarm(
        &self,
        resource: &str,
        cause: ProbableCause,
        severity: PerceivedSeverity,
        text: &str,
    ) -> Result<ObjectName, ModelError> {
        let mut guards = self.alarm_lock.lock().await;
        let now = Timestamp::now();
        let key = (resource.to_string(), cause.value());
        let recent = guards.raises.entry(key).or_default();
        recent.retain(|t| now.0 - t <= FLAP_WINDOW_MS);
        recent.push_back(now.0);
        let flapping = recent.len() > FLAP_LIMIT;
        let active = self.active_alarms().await?;
        let same = |a: &&ManagedObject| {
            a.get("Resource").and_then(Value::as_str) == Some(resource)
                && a.get("ProbableCause") == Some(&Value::Enum(cause.value()))
        };
        // A duplicate folds into the active alarm; a flapping one reopens
        // the latest alarm of its resource and cause, without a new
        // announcement.
        let all;
        let existing = if flapping {
            all = self
                .store
                .query(&Query {
                    classes: vec!["Alarm".into()],
                    ..Query::default()
                })
                .await?;
            all.iter().rev().find(same)
        } else {
            active.iter().find(same)
        };
        if let Some(a) = existing {
            let n = match a.get("Occurrences") {
                Some(Value::U32(n)) => n + 1,
                _ => 2,
            };
            let outstanding = active
                .iter()
                .filter(|x| alarm::resource(x) == Some(resource) && x.name != a.name)
                .filter_map(alarm::severity);
            let patch = AlarmPatch::new()
                .occurrences(n)
                .changed_at(now)
                .specific_problem(text)
                .severity(severity)
                .last_severity(severity)
                // Reopened.
                .unset_cleared_at();
            let patch = match alarm::trend_among(severity, outstanding) {
                Some(t) => patch.trend(t),
                None => patch.unset_trend(),
            };
            // A new severity of an active alarm is announced (AlarmRaised
            // says "raised or its severity changed"); a repeat is not.
            let escalated = alarm::is_active(a) && alarm::severity(a) != Some(severity);
            // A status change: reopened, a new severity or a new text.
            let changed = !alarm::is_active(a)
                || alarm::severity(a) != Some(severity)
                || alarm::text(a) != text;
            let shelf = self.shelf_for(resource, cause).await?;
            let shelf_text = shelf.as_ref().map(ToString::to_string);
            let patch = patch.shelf(shelf_text.clone().unwrap_or_default());
            self.store.update(&a.name, patch.values())?;
            if alarm::shelf(a) != shelf_text.as_deref() {
                self.note_shelving(&a.name, shelf_text.as_deref()).await?;
            }
            self.persist_alarm(&a.name).await?;
            if changed {
                self.record_change(&a.name, now, severity, text).await?;
            }
            if let Some(shelf) = &shelf {
                tracing::debug!(alarm = %a.name, %shelf, "shelved alarm changed: not announced");
            } else if flapping {
                tracing::debug!(alarm = %a.name, "flapping alarm damped");
            } else if escalated {
                self.announce_raised(&a.name).await;
                tracing::warn!(alarm = %a.name, %resource, cause = cause.label(), severity = severity.label(), "alarm severity changed");
            }
            return Ok(a.name.clone());
        }
        // Root-cause suppression: under an alarmed container, this alarm is secondary.
        let root_alarm = active.iter().find(|a| {
            a.get("Resource")
                .and_then(Value::as_str)
                .and_then(|r| ObjectName::parse(r).ok())
                .zip(ObjectName::parse(resource).ok())
                .is_some_and(|(r, me)| me.is_within(&r) && me != r)
        });
        let correlation = if root_alarm.is_some() {
            AlarmCorrelation::Secondary
        } else {
            AlarmCorrelation::Independent
        };
        // A storm is bounded: past the limit, secondary alarms are dropped
        // (counted); root and independent alarms are always kept.
        if correlation == AlarmCorrelation::Secondary && active.len() >= STORM_LIMIT {
            guards.dropped += 1;
            let dropped = u32::try_from(guards.dropped).unwrap_or(u32::MAX);
            self.set(
                &self.root,
                NetworkElementPatch::new().alarms_dropped(dropped).values(),
            );
            tracing::warn!(dropped = guards.dropped, %resource, "alarm storm: secondary alarm dropped");
            return Err(ModelError::Unavailable {
                reason: format!("alarm storm: {} active alarms", active.len()),
            });
        }
        let n = self.next_alarm.fetch_add(1, Ordering::Relaxed);
        let object = format!("{}/alarm={n}", self.root);

        let patch = AlarmPatch::new()
            .resource(resource)
            .event_type(alarm::event_type(cause))
            .probable_cause(cause)
            .severity(severity)
            .last_severity(severity)
            .specific_problem(text)
            .additional_text("")
            .raised_at(now)
            .changed_at(now)
            .acknowledged(false)
            .occurrences(1)
            .correlation(correlation)
            .root_alarm(root_alarm.map(|a| a.name.to_string()).unwrap_or_default());
        let shelf = self.shelf_for(resource, cause).await?;
        let patch = patch.shelf(shelf.as_ref().map(ToString::to_string).unwrap_or_default());
        let outstanding = active
            .iter()
            .filter(|x| alarm::resource(x) == Some(resource))
            .filter_map(alarm::severity);
        // Explicitly unset when alone: an absent enumeration would take
        // its first value.
        let patch = match alarm::trend_among(severity, outstanding) {
            Some(t) => patch.trend(t),
            None => patch.unset_trend(),
        };
        let values = patch.values();
        // Persisted before anyone can read it (a walk, a get), not only
        // before it is announced: a kill -9 never loses an alarm a manager saw.
        let alarm = name(&object)?;
        self.persist_alarm_as(&alarm, values).await?;
        if let Some(root) = root_alarm {
            let root_now = AlarmPatch::new().correlation(AlarmCorrelation::Root);
            self.persist_alarm_as(&root.name, root_now.values()).await?;
            self.store.update(&root.name, root_now.values())?;
        }
        self.create_dynamic("Alarm", &object, values).await?;
        self.persist_alarm(&alarm).await?;
        self.record_change(&alarm, now, severity, text).await?;
        if let Some(shelf) = shelf {
            self.note_shelving(&alarm, Some(shelf.as_str())).await?;
            self.persist_alarm(&alarm).await?;
            tracing::info!(alarm = %object, %resource, cause = cause.label(), severity = severity.label(), %shelf, "alarm raised on a shelf: not announced");
            return Ok(alarm);
        }
        self.announce_raised(&alarm).await;
        tracing::warn!(alarm = %object, %resource, cause = cause.label(), severity = severity.label(), "alarm raised");
        Ok(alarm)
    }

    /// Announces an alarm raised, or raised again at a new severity
    /// (AlarmRaised), as the store holds it.
    async fn announce_raised(&self, alarm: &ObjectName) {
        let Ok(a) = self.store.get(alarm).await else {
            return;
        };
        let (Some(cause), Some(severity)) = (alarm::cause(&a), alarm::severity(&a)) else {
            return;
        };
        let resource = alarm::resource(&a).unwrap_or_default();
        self.publish(
            "AlarmRaised",
            &name(resource).unwrap_or_else(|_| self.root.clone()),
            AlarmRaisedPatch::new()
                .alarm(alarm.to_string())
                .resource(resource)
                .event_type(alarm::recorded_event_type(&a).unwrap_or(alarm::event_type(cause)))
                .probable_cause(cause)
                .severity(severity)
                .specific_problem(alarm::text(&a))
                .additional_text("")
                .correlation(
                    a.get("Correlation")
                        .and_then(enum_of)
                        .unwrap_or(AlarmCorrelation::Independent),
                )
                .values()
                .to_vec(),
        );
    }

    /// Clears the active alarms of a resource (and its secondaries).
    pub(crate) async fn clear_alarms(&self, resource: &str) -> Result<usize, ModelError> {
        self.clear_alarms_matching(resource, None).await
    }

    /// Clears the active alarms of a resource's subtree, of one cause if given.
    pub(crate) async fn clear_alarms_matching(
        &self,
        resource: &str,
        only: Option<ProbableCause>,
    ) -> Result<usize, ModelError> {
        let _g = self.alarm_lock.lock().await;
        let now = Timestamp::now();
        let mut n = 0;
        for a in self.active_alarms().await? {
            let res = a
                .get("Resource")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let under = ObjectName::parse(&res)
                .ok()
                .zip(ObjectName::parse(resource).ok())
                .is_some_and(|(r, root)| r.is_within(&root));
            let cause_ok =
                only.is_none_or(|c| a.get("ProbableCause") == Some(&Value::Enum(c.value())));
            if !under || !cause_ok {
                continue;
            }
            self.store.update(
                &a.name,
                AlarmPatch::new()
                    .severity(PerceivedSeverity::Cleared)
                    .cleared_at(now)
                    .changed_at(now)
                    .values(),
            )?;
            self.persist_alarm(&a.name).await?;
            self.record_change(&a.name, now, PerceivedSeverity::Cleared, alarm::text(&a))
                .await?;
            n += 1;
            // A shelved alarm's clear is not announced either.
            if alarm::shelf(&a).is_some() {
                continue;
            }
            let mut cleared = AlarmClearedPatch::new()
                .alarm(a.name.to_string())
                .resource(res.as_str());
            if let Some(cause) = a.get("ProbableCause").and_then(enum_of) {
                cleared = cleared.probable_cause(cause);
            }
            self.publish(
                "AlarmCleared",
                &name(&res).unwrap_or_else(|_| self.root.clone()),
                cleared.values().to_vec(),
            );
        }
        Ok(n)
    }

    /// Removes the alarms an operator names (ietf-alarms purge-alarms,
    /// the element's PurgeAlarms): by clearance (`any`, `cleared`,
    /// `not-cleared`, `none`), last change at least `older_than` ago, and
    /// severity (`is|above|below <severity>`, a cleared alarm by the
    /// severity it had), from the alarm list or, if `shelved`, the shelved
    /// alarms. Returns how many went.
    pub(crate) async fn purge_alarms(&self, f: &alarm::PurgeFilter) -> Result<u32, ModelError> {
        let (severity, shelved) = (f.severity.as_str(), f.shelved);
        let older_than = std::time::Duration::from_secs(u64::from(f.older_than_s));
        let bad = |reason: String| ModelError::Inconsistent { reason };
        let want_state = match f.operator_state.as_str() {
            "" => None,
            s => Some(
                s.parse::<OperatorState>()
                    .map_err(|_| bad(format!("'{s}' is no operator state")))?,
            ),
        };
        // Who set each alarm's operator state last.
        let mut last_operator: std::collections::HashMap<ObjectName, (Timestamp, String)> =
            std::collections::HashMap::new();
        if !f.operator.is_empty() {
            for o in self.objects_of(alarm::OPERATOR_ACTION_CLASS).await? {
                if let (Some((t, who, _, _)), Some(parent)) =
                    (alarm::operator_action(&o), o.name.parent())
                {
                    let e = last_operator.entry(parent).or_insert((t, who.to_string()));
                    if t >= e.0 {
                        *e = (t, who.to_string());
                    }
                }
            }
        }
        let want_active = match f.clearance.as_str() {
            "any" => None,
            "cleared" => Some(false),
            "not-cleared" => Some(true),
            "none" => return Ok(0),
            other => {
                return Err(bad(format!(
                    "'{other}' is not any, cleared, not-cleared or none"
                )));
            }
        };
        // X.733 order, least severe first; cleared is no alarm severity.
        let rank = |s: PerceivedSeverity| (s != PerceivedSeverity::Cleared).then(|| alarm::rank(s));
        let sev_filter = match severity.split_once(' ') {
            None if severity.is_empty() => None,
            Some((rel @ ("is" | "above" | "below"), s)) => {
                let s: PerceivedSeverity = s.parse().map_err(|e: String| bad(e))?;
                Some((
                    rel,
                    rank(s).ok_or_else(|| bad(format!("'{s}' is no alarm severity")))?,
                ))
            }
            _ => {
                return Err(bad(format!(
                    "severity filter '{severity}' is not 'is|above|below <severity>'"
                )));
            }
        };
        let cutoff = Timestamp::now().0 - older_than.as_millis() as i64;
        self.remove_alarms(|a| {
            let state = alarm::operator_state(a).unwrap_or(OperatorState::None);
            if alarm::shelf(a).is_some() != shelved
                || want_active.is_some_and(|w| alarm::is_active(a) != w)
                || alarm::last_changed(a).is_some_and(|t| t.0 > cutoff)
                || want_state.is_some_and(|w| w != state)
                || (!f.operator.is_empty()
                    && last_operator.get(&a.name).map(|(_, who)| who.as_str())
                        != Some(f.operator.as_str()))
            {
                return false;
            }
            let Some((rel, want)) = sev_filter else {
                return true;
            };
            match (rel, alarm::last_severity(a).and_then(rank)) {
                (_, None) => false,
                ("is", Some(r)) => r == want,
                ("above", Some(r)) => r > want,
                (_, Some(r)) => r < want,
            }
        })
        .await
    }

    /// Removes the alarms `doomed` selects from the tree and the
    /// repository, under the alarm lock; returns how many went.
    async fn remove_alarms(
        &self,
        doomed: impl Fn(&ManagedObject) -> bool,
    ) -> Result<u32, ModelError> {
        let _g = self.alarm_lock.lock().await;
        let all = self
            .store
            .query(&Query {
                classes: vec![alarm::CLASS.into()],
                ..Query::default()
            })
            .await?;
        let mut n = 0;
        for a in all.iter().filter(|a| doomed(a)) {
            self.forget(&a.name).await;
            let (_, id) = a.name.leaf();
            self.repo
                .delete(&format!("/alarms/{id}"))
                .await
                .map_err(err_commit)?;
            for h in HISTORIES {
                for (key, _) in self
                    .repo
                    .list(&format!("{}/{id}", h.key))
                    .await
                    .map_err(err_commit)?
                {
                    self.repo.delete(&key).await.map_err(err_commit)?;
                }
            }
            n += 1;
        }
        Ok(n)
    }

    /// The shelf that holds alarms of `resource` and `cause` (the first by
    /// name), if any.
    async fn shelf_for(
        &self,
        resource: &str,
        cause: ProbableCause,
    ) -> Result<Option<ObjectName>, ModelError> {
        Ok(self
            .objects_of(alarm::SHELF_CLASS)
            .await?
            .into_iter()
            .find(|s| alarm::shelf_holds(s, resource, cause))
            .map(|s| s.name))
    }

    /// One kind of history of one alarm.
    pub(super) async fn history_of(
        &self,
        h: History,
        alarm: &ObjectName,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.store
            .query(&Query {
                scope: Scope::Children(alarm.clone()),
                classes: vec![h.class.into()],
                ..Query::default()
            })
            .await
    }

    async fn objects_of(&self, class: &str) -> Result<Vec<ManagedObject>, ModelError> {
        self.store
            .query(&Query {
                classes: vec![class.into()],
                ..Query::default()
            })
            .await
    }

    /// Puts every alarm on the shelf that now holds it, or takes it off:
    /// run when an operator created, changed or deleted a shelf. Returns
    /// how many alarms moved.
    pub(crate) async fn reshelve(&self) -> Result<usize, ModelError> {
        let _g = self.alarm_lock.lock().await;
        let shelves = self.objects_of(alarm::SHELF_CLASS).await?;
        let all = self.objects_of(alarm::CLASS).await?;
        // The newest alarm object of each resource and type is the one
        // ietf-alarms shows: only its history notes the move.
        let mut newest: std::collections::HashMap<
            (&str, u32),
            (Option<Timestamp>, u32, &ObjectName),
        > = std::collections::HashMap::new();
        for a in &all {
            if let (Some(r), Some(c)) = (alarm::resource(a), alarm::cause(a)) {
                let k = (alarm::times(a).0, a.index, &a.name);
                let e = newest.entry((r, c.value())).or_insert(k);
                if (k.0, k.1) > (e.0, e.1) {
                    *e = k;
                }
            }
        }
        let mut moved = 0;
        for a in &all {
            let (Some(resource), Some(cause)) = (alarm::resource(a), alarm::cause(a)) else {
                continue;
            };
            let want = shelves
                .iter()
                .find(|s| alarm::shelf_holds(s, resource, cause))
                .map(|s| s.name.to_string());
            if alarm::shelf(a) == want.as_deref() {
                continue;
            }
            self.store.update(
                &a.name,
                AlarmPatch::new()
                    .shelf(want.clone().unwrap_or_default())
                    .values(),
            )?;
            if newest
                .get(&(resource, cause.value()))
                .is_some_and(|n| n.2 == &a.name)
            {
                self.note_shelving(&a.name, want.as_deref()).await?;
            }
            self.persist_alarm(&a.name).await?;
            tracing::info!(alarm = %a.name, shelf = want.as_deref().unwrap_or(""), "alarm shelving changed");
            moved += 1;
        }
        Ok(moved)
    }

    /// The system's operator action when an alarm goes on or off a shelf
    /// (RFC 8632: for shelved alarms the system sets the operator state
    /// `shelved`); the caller persists the alarm.
    async fn note_shelving(
        &self,
        alarm: &ObjectName,
        shelf: Option<&str>,
    ) -> Result<(), ModelError> {
        let (state, text) = match shelf {
            Some(s) => (
                OperatorState::Shelved,
                format!("shelf {}", s.rsplit_once('=').map_or(s, |(_, n)| n)),
            ),
            None => (OperatorState::UnShelved, "no shelf holds it".to_string()),
        };
        let values = alarm::operator_action_values(Timestamp::now(), SYSTEM, state, &text);
        self.record(ACTIONS, alarm, &values).await?;
        self.store
            .update(alarm, AlarmPatch::new().operator_state(state).values())?;
        Ok(())
    }

    /// Records a status change of an alarm.
    async fn record_change(
        &self,
        alarm: &ObjectName,
        time: Timestamp,
        severity: PerceivedSeverity,
        text: &str,
    ) -> Result<(), ModelError> {
        let values = alarm::status_change_values(time, severity, text);
        self.record(STATUS, alarm, &values).await
    }

    /// Records an entry of an alarm's history (kept in the repository
    /// before it is visible), then drops the oldest entries of its
    /// resource and type past the element's maximum.
    async fn record(
        &self,
        h: History,
        alarm: &ObjectName,
        values: &[(&'static str, Value)],
    ) -> Result<(), ModelError> {
        let k = self
            .history_of(h, alarm)
            .await?
            .iter()
            .filter_map(|c| c.name.leaf().1.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let (_, id) = alarm.leaf();
        self.repo
            .set(&format!("{}/{id}/{k}", h.key), body_of(h.class, values))
            .await
            .map_err(err_commit)?;
        self.create_dynamic(h.class, &format!("{alarm}/{}={k}", h.rdn()), values)
            .await?;
        let limit = InformationModel::get(&self.store, &self.root)
            .await
            .ok()
            .and_then(|r| alarm::max_status_changes(&r));
        if let Some(limit) = limit {
            let a = self.store.get(alarm).await?;
            self.trim(h, &a, limit as usize).await?;
        }
        Ok(())
    }

    /// Keeps the newest `keep` entries of one kind of history of the
    /// alarms of `a`'s resource and type (one ietf-alarms alarm); returns
    /// how many went.
    async fn trim(&self, h: History, a: &ManagedObject, keep: usize) -> Result<usize, ModelError> {
        let (resource, cause) = (alarm::resource(a), alarm::cause(a));
        let siblings = self
            .store
            .query(&Query {
                classes: vec![alarm::CLASS.into()],
                filters: resource
                    .map(|r| ("Resource".to_string(), r.to_string()))
                    .into_iter()
                    .collect(),
                ..Query::default()
            })
            .await?;
        let mut entries = Vec::new();
        for x in siblings
            .iter()
            .filter(|x| alarm::resource(x) == resource && alarm::cause(x) == cause)
        {
            entries.extend(self.history_of(h, &x.name).await?);
        }
        if entries.len() <= keep {
            return Ok(0);
        }
        entries.sort_by_key(|c| (alarm::history_time(c), c.index));
        let gone = entries.len() - keep;
        for c in &entries[..gone] {
            self.forget(&c.name).await;
            if let Some(parent) = c.name.parent() {
                let key = format!("{}/{}/{}", h.key, parent.leaf().1, c.name.leaf().1);
                self.repo.delete(&key).await.map_err(err_commit)?;
            }
        }
        Ok(gone)
    }

    /// ietf-alarms compress-alarms (or compress-shelved-alarms): keeps only
    /// the latest status change of each alarm (resource and type) of the
    /// alarm list (or the shelf) selected by resource and type (empty:
    /// all). Returns how many alarms lost entries.
    pub(crate) async fn compress_alarms(
        &self,
        resource: &str,
        alarm_type: &str,
        shelved: bool,
    ) -> Result<u32, ModelError> {
        let cause = match alarm_type.rsplit(':').next().unwrap_or("") {
            "" => None,
            t => Some(
                t.parse::<ProbableCause>()
                    .map_err(|_| ModelError::Inconsistent {
                        reason: format!("'{alarm_type}' is no alarm type of this element"),
                    })?,
            ),
        };
        let _g = self.alarm_lock.lock().await;
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for a in self.objects_of(alarm::CLASS).await? {
            let (Some(r), Some(c)) = (alarm::resource(&a), alarm::cause(&a)) else {
                continue;
            };
            if alarm::shelf(&a).is_some() != shelved
                || (!resource.is_empty() && r != resource)
                || cause.is_some_and(|x| x != c)
                || !seen.insert((r.to_string(), c.value()))
            {
                continue;
            }
            if self.trim(STATUS, &a, 1).await? > 0 {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The alarms' histories persisted in the repository, back as objects
    /// of the alarms loaded (an entry of an alarm that is gone is dropped).
    pub(super) async fn load_alarm_histories(
        &self,
        fresh: &mut Vec<(String, u32)>,
    ) -> Result<(), ModelError> {
        for h in HISTORIES {
            for (key, v) in self.repo.list(h.key).await.map_err(err_commit)? {
                let Some((id, k)) = key
                    .strip_prefix(h.key)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .and_then(|rest| rest.split_once('/'))
                else {
                    continue;
                };
                let alarm = format!("{}/alarm={id}", self.root);
                if self.store.get(&name(&alarm)?).await.is_err() {
                    self.repo.delete(&key).await.map_err(err_commit)?;
                    continue;
                }
                let values = values_of(h.class, &v);
                self.create(h.class, &format!("{alarm}/{}={k}", h.rdn()), &values, fresh)
                    .await?;
            }
        }
        Ok(())
    }

    /// Forgets cleared alarms older than `retention`, and the oldest
    /// cleared alarms past the element's maximum (its attribute with the
    /// `alarmClearMaximum` role, ALARM-MIB alarmClearMaximum); scheduled
    /// by the statistics cycle. Returns how many went.
    pub(crate) async fn prune_alarms(
        &self,
        retention: std::time::Duration,
    ) -> Result<usize, ModelError> {
        let cutoff = Timestamp::now().0 - retention.as_millis() as i64;
        let maximum = InformationModel::get(&self.store, &self.root)
            .await
            .ok()
            .and_then(|root| {
                let (i, _) = root.class.attribute_by_role(Role::AlarmClearMaximum)?;
                match root.values.get(i) {
                    Some(Value::U32(n)) => Some(*n as usize),
                    _ => None,
                }
            });
        // The clear times of the newest `maximum` cleared alarms: older go.
        let mut cleared: Vec<i64> = self
            .store
            .query(&Query {
                classes: vec![alarm::CLASS.into()],
                ..Query::default()
            })
            .await?
            .iter()
            .filter_map(|a| alarm::times(a).2.map(|t| t.0))
            .collect();
        cleared.sort_unstable_by(|a, b| b.cmp(a));
        let oldest_kept = match maximum {
            Some(m) if cleared.len() > m => m.checked_sub(1).map_or(i64::MAX, |k| cleared[k]),
            _ => i64::MIN,
        };
        let n = self
            .remove_alarms(
                |a| matches!(alarm::times(a).2, Some(t) if t.0 < cutoff || t.0 < oldest_kept),
            )
            .await?;
        Ok(n as usize)
    }

    /// Sets an alarm's operator state (ietf-alarms set-operator-state),
    /// recorded among its operator actions. `ack` is also the alarm's
    /// acknowledgement (the MIBs' and the API's), `none` withdraws it. An
    /// operator state is no status change: the alarm's last change stays.
    pub(crate) async fn set_operator_state(
        &self,
        alarm: &ObjectName,
        state: OperatorState,
        text: &str,
        who: &str,
    ) -> Result<(), ModelError> {
        let _g = self.alarm_lock.lock().await;
        let now = Timestamp::now();
        // The alarm must be there before its history grows.
        self.store.get(alarm).await?;
        self.record(
            ACTIONS,
            alarm,
            &alarm::operator_action_values(now, who, state, text),
        )
        .await?;
        let patch = AlarmPatch::new().operator_state(state);
        let patch = match state {
            OperatorState::Ack => patch
                .acknowledged(true)
                .acknowledged_by(who)
                .acknowledged_at(now),
            OperatorState::None => patch.acknowledged(false),
            _ => patch,
        };
        self.store.update(alarm, patch.values())?;
        self.persist_alarm(alarm).await
    }

    pub(super) async fn active_alarms(&self) -> Result<Vec<ManagedObject>, ModelError> {
        let all = self
            .store
            .query(&Query {
                classes: vec!["Alarm".into()],
                ..Query::default()
            })
            .await?;
        Ok(all.into_iter().filter(alarm::is_active).collect())
    }

    async fn persist_alarm(&self, alarm: &ObjectName) -> Result<(), ModelError> {
        self.persist_alarm_as(alarm, &[]).await
    }

    /// Persists an alarm as it is in the store (if there) with `values`
    /// applied over it: a change is durable before it is visible.
    async fn persist_alarm_as(
        &self,
        alarm: &ObjectName,
        values: &[(&str, Value)],
    ) -> Result<(), ModelError> {
        let meta = SCHEMA
            .class(alarm::CLASS)
            .ok_or_else(|| ModelError::CommitFailed {
                reason: "no Alarm class in the schema".into(),
            })?;
        let current = self.store.get(alarm).await.ok();
        let merged: Vec<(&str, Value)> = meta
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.key && a.name != "Parent")
            .filter_map(|(i, a)| {
                let v = values
                    .iter()
                    .find(|(n, _)| *n == a.name)
                    .map(|(_, v)| v)
                    .or_else(|| current.as_ref().and_then(|o| o.values.get(i)))?;
                Some((a.name, v.clone()))
            })
            .collect();
        let (_, n) = alarm.leaf();
        self.repo
            .set(&format!("/alarms/{n}"), body_of(alarm::CLASS, &merged))
            .await
            .map_err(err_commit)?;
        Ok(())
    }

    pub(super) async fn clear_alarms_if_secondary(
        &self,
        component: &str,
    ) -> Result<(), ModelError> {
        // A component back in service clears the alarms its container caused.
        let secondary: Vec<ManagedObject> = self
            .active_alarms()
            .await?
            .into_iter()
            .filter(|a| {
                a.get("Resource").and_then(Value::as_str) == Some(component)
                    && a.get("Correlation")
                        == Some(&Value::Enum(AlarmCorrelation::Secondary.value()))
            })
            .collect();
        if !secondary.is_empty() {
            self.clear_alarms(component).await?;
        }
        Ok(())
    }
}

/// Whether objects named so include an alarm shelf.
pub(super) fn touch_shelves<'a>(mut objects: impl Iterator<Item = &'a str>) -> bool {
    objects.any(|o| {
        ObjectName::parse(o)
            .ok()
            .and_then(|n| SCHEMA.class_by_rdn(n.leaf().0))
            .is_some_and(|c| c.name == alarm::SHELF_CLASS)
    })
}

/// A kind of an alarm's history: entries of a class contained in the
/// alarm, kept in the repository under `<key>/<alarm>/<n>`.
#[derive(Debug, Clone, Copy)]
pub(super) struct History {
    class: &'static str,
    key: &'static str,
}

impl History {
    /// The relative name of the entries (`change`, `opaction`).
    fn rdn(self) -> &'static str {
        SCHEMA
            .class(self.class)
            .and_then(|c| c.rdn)
            .unwrap_or("entry")
    }
}

/// The operator of the actions the agent itself takes (shelving).
const SYSTEM: &str = "system";

/// Status changes (ietf-alarms status-change).
pub(super) const STATUS: History = History {
    class: alarm::CHANGE_CLASS,
    key: "/alarm-changes",
};

/// Operators' actions (ietf-alarms operator-state-change).
pub(super) const ACTIONS: History = History {
    class: alarm::OPERATOR_ACTION_CLASS,
    key: "/alarm-actions",
};

const HISTORIES: [History; 2] = [STATUS, ACTIONS];

/// Alarm attributes from their persisted JSON form.
pub(super) fn alarm_values(v: &serde_json::Value) -> Vec<(&'static str, Value)> {
    values_of(alarm::CLASS, v)
}

/// The persisted JSON form of some attributes of a class.
fn body_of(class: &str, values: &[(&str, Value)]) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if let Some(meta) = SCHEMA.class(class) {
        for (n, v) in values {
            if let Some((_, a)) = meta.attribute(n)
                && !matches!(v, Value::Absent)
            {
                body.insert(a.name.to_string(), json!(v.render(&a.ty)));
            }
        }
    }
    serde_json::Value::Object(body)
}

/// A class's attributes from their persisted JSON form.
fn values_of(class: &str, v: &serde_json::Value) -> Vec<(&'static str, Value)> {
    let Some(meta) = SCHEMA.class(class) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in meta.attributes {
        if let Some(text) = v.get(a.name).and_then(|x| x.as_str())
            && let Ok(val) = Value::parse(&a.ty, text)
        {
            out.push((a.name, val));
        }
    }
    out
}
