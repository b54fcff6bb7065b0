//! The projection of the HA core's events and of replicated changes into
//! the object tree.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use halyard_backend::events::{EventFilter, EventKind, Received};
use halyard_backend::replicated::RelayedAlarm;
use halyard_cluster_model::model::{
    AssignmentPatch, AssignmentRole, AvailabilityState, ComponentPatch, FailedOverPatch,
    FruChangedPatch, HotSwapControllerPatch, NodePatch, OperState, PerceivedSeverity, PowerSupply,
    PowerSupplyPatch, ProbableCause, ServiceGroupPatch, ServiceInstancePatch, Shelf, ShelfPatch,
    SoftwareComponent, SoftwareComponentPatch, StateChangedPatch, StatisticPatch,
};

/// Attribute changes, as the store takes them.
type Patch = Vec<(&'static str, Value)>;
use halyard_cluster_model::port::{InformationModel, Query};
use halyard_cluster_model::{
    ClassMeta, ManagedClass, ObjectName, SCHEMA, SchemaEnum, Timestamp, Value,
};
use serde_json::json;

use crate::replication::Replicated;

use super::{AgentModel, enum_of};

impl AgentModel {
    /// The power flag of a power supply or a shelf (whichever `resource`
    /// is; other classes have none).
    fn power_good(&self, resource: &str, good: bool) -> Option<(ObjectName, Patch)> {
        let n = ObjectName::parse(resource).ok()?;
        let class = self.store.class_of(&n)?;
        let patch = if class.name == PowerSupply::META.name {
            PowerSupplyPatch::new().power_good(good).values().to_vec()
        } else if class.name == Shelf::META.name {
            ShelfPatch::new().power_good(good).values().to_vec()
        } else {
            return None;
        };
        Some((n, patch))
    }

    /// Keeps the objects current from the HA core's events, until `stop`.
    /// Events are taken in batches (what is queued, up to [`BATCH`]): the
    /// indices of the assignments a batch creates are saved in one
    /// transaction after it, which keeps the projection ahead of the core
    /// when ten thousand components start at once.
    pub async fn sync(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        /// Events applied before the indices are saved.
        const BATCH: usize = 4096;
        let mut events = self.core.events.subscribe(EventFilter::default());
        // What happened before this subscription is read from CRIM once.
        self.refresh_states(Reread::Full).await;
        self.save_indices().await;
        loop {
            let mut next = tokio::select! {
                e = events.recv() => e,
                _ = stop.changed() => return,
            };
            let mut missed = 0;
            let mut taken = 0;
            loop {
                match next {
                    None => return,
                    Some(Received::Missed(n)) => missed += n,
                    Some(Received::Event(e)) => self.apply(&e.kind).await,
                }
                taken += 1;
                if taken == BATCH {
                    break;
                }
                next = match events.try_recv() {
                    Some(r) => Some(r),
                    None => break,
                };
            }
            if missed > 0 {
                tracing::warn!(
                    missed,
                    "agent fell behind the HA core's events; re-reading states and replicated writes"
                );
                self.refresh_states(Reread::Full).await;
                self.catch_up().await;
            }
            self.save_indices().await;
        }
    }

    /// Re-reads every component's states from CRIM (in a cluster, the
    /// local replica) and applies replicated writes not seen yet: the
    /// cluster's periodic pass, beside the event task (see [`Reread`]).
    pub async fn refresh(&self) {
        self.refresh_states(Reread::Beside).await;
        self.catch_up().await;
    }

    /// Applies the replicated writes not applied yet, in order.
    async fn catch_up(&self) {
        let mut reader = self.replicated.lock().await;
        if let Ok(changes) = reader.next(&self.core).await {
            for change in changes {
                self.apply_replicated(change).await;
            }
        }
    }

    /// Shows a node's SNMP engine ID on its Node object (every node reads
    /// it there to localize users' keys for that node).
    async fn show_snmp_engine(&self, e: &crate::replication::SnmpEngine) {
        use halyard_cluster_model::ManagedClass;
        let q = halyard_cluster_model::port::Query {
            classes: vec![halyard_cluster_model::model::Node::META.name.into()],
            ..Default::default()
        };
        let Ok(nodes) = self.store.query(&q).await else {
            return;
        };
        for n in nodes {
            if n.name.rdns().last().is_some_and(|(_, v)| v == e.node) {
                self.set(
                    &n.name,
                    halyard_cluster_model::model::NodePatch::new()
                        .snmp_engine_id(e.engine_id.clone())
                        .values(),
                );
            }
        }
    }

    /// Applies a replicated change: attribute writes (idempotent), audit
    /// records, hot swaps and relayed alarms (the other kinds have their
    /// own readers).
    async fn apply_replicated(&self, change: Replicated) {
        let ops = match change {
            Replicated::Audit(a) => {
                let n = self.next_audit.fetch_add(1, Ordering::Relaxed);
                self.add_audit_record(
                    n,
                    Timestamp(a.time),
                    &a.principal,
                    a.protocol,
                    &a.operation,
                    &a.result,
                )
                .await;
                return;
            }
            Replicated::Hotswap(note) => {
                self.apply_hotswap(&note).await;
                return;
            }
            Replicated::RelayedAlarm(alarm) => {
                self.relayed_alarm(&alarm).await;
                return;
            }
            Replicated::SnmpEngine(e) => {
                self.show_snmp_engine(&e).await;
                return;
            }
            Replicated::Set(ops) => ops,
            Replicated::Objects(ops) => {
                if let Err(e) = self.apply_objects(&ops).await {
                    tracing::warn!(error = %e, "replicated creations and deletions not kept");
                }
                if super::alarms::touch_shelves(
                    ops.iter().map(crate::replication::ObjectOp::object),
                ) && let Err(e) = self.reshelve().await
                {
                    tracing::warn!(error = %e, "alarms not reshelved");
                }
                return;
            }
            _ => return,
        };
        if let Err(e) = self.keep_writes(&ops).await {
            tracing::warn!(error = %e, "replicated writes not kept in the repository");
        }
        let shelves = super::alarms::touch_shelves(ops.iter().map(|o| o.object.as_str()));
        for op in ops {
            let Ok(name) = ObjectName::parse(&op.object) else {
                tracing::error!(object = %op.object, "replicated write names no object");
                continue;
            };
            let ty = self
                .store
                .get(&name)
                .await
                .ok()
                .and_then(|o| o.class.attribute(&op.attribute).map(|(_, m)| m.ty));
            // An object removed since (hot swap) takes no write.
            let Some(ty) = ty else { continue };
            match Value::parse(&ty, &op.value) {
                Ok(v) => {
                    self.set(&name, &[(op.attribute.as_str(), v)]);
                }
                Err(e) => {
                    tracing::error!(object = %op.object, attribute = %op.attribute, error = %e, "replicated write does not parse")
                }
            }
        }
        if shelves && let Err(e) = self.reshelve().await {
            tracing::warn!(error = %e, "alarms not reshelved");
        }
    }

    /// A unit inserted or removed, as the hot-swap manager described it
    /// ([`crate::hotswap`]); every node of a cluster applies it in log
    /// order. Subtrees go, objects come, presence and the controller's
    /// counter change, FruChanged is announced, the missing-unit alarm is
    /// raised or cleared.
    async fn apply_hotswap(&self, note: &serde_json::Value) {
        for gone in note["remove"].as_array().into_iter().flatten() {
            if let Some(n) = gone.as_str().and_then(|n| ObjectName::parse(n).ok()) {
                self.store.remove(&n);
            }
        }
        let values_of = |class: &'static ClassMeta, v: &serde_json::Value| {
            let mut out: Vec<(&'static str, Value)> = Vec::new();
            for (a, text) in v.as_object().into_iter().flatten() {
                if let (Some((_, m)), Some(text)) = (class.attribute(a), text.as_str())
                    && let Ok(v) = Value::parse(&m.ty, text)
                {
                    out.push((m.name, v));
                }
            }
            out
        };
        for o in note["create"].as_array().into_iter().flatten() {
            let (Some(class), Some(object)) = (
                o["class"].as_str().and_then(|c| SCHEMA.class(c)),
                o["name"].as_str(),
            ) else {
                continue;
            };
            let values = values_of(class, &o["values"]);
            if let Err(e) = self.create_dynamic(class.name, object, &values).await {
                tracing::warn!(%object, error = %e, "hot swap: cannot create the object");
            }
        }
        for o in note["set"].as_array().into_iter().flatten() {
            let Some(n) = o["name"].as_str().and_then(|n| ObjectName::parse(n).ok()) else {
                continue;
            };
            if let Ok(obj) = self.store.get(&n).await {
                self.set(&n, &values_of(obj.class, &o["values"]));
            }
        }
        if let Some(hsc) = note["hsc"].as_str().and_then(|n| ObjectName::parse(n).ok())
            && let Ok(o) = self.store.get(&hsc).await
        {
            let n = match o.get("SwapEvents") {
                Some(Value::U64(n)) => n + 1,
                _ => 1,
            };
            self.set(&hsc, HotSwapControllerPatch::new().swap_events(n).values());
        }
        let fru = note["fru"].as_str().unwrap_or_default();
        let present = note["present"].as_bool().unwrap_or_default();
        let source = ObjectName::parse(fru).unwrap_or_else(|_| self.root.clone());
        self.publish(
            "FruChanged",
            &source,
            FruChangedPatch::new()
                .fru(fru)
                .slot(note["slot"].as_u64().unwrap_or_default() as u32)
                .present(present)
                .fru_type(note["fru_type"].as_str().unwrap_or_default())
                .values()
                .to_vec(),
        );
        for c in note["clear"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_str() {
                let _ = self
                    .clear_alarms_matching(c, Some(ProbableCause::ReplaceableUnitMissing))
                    .await;
            }
        }
        if let Some(text) = note["alarm"].as_str()
            && let Err(e) = self
                .raise_alarm(
                    fru,
                    ProbableCause::ReplaceableUnitMissing,
                    PerceivedSeverity::Major,
                    text,
                )
                .await
        {
            tracing::error!(error = %e, "cannot raise the missing-unit alarm");
        }
        tracing::info!(%fru, present, "hot swap applied");
    }

    /// Re-reads every component's states and assignments from CRIM: the
    /// ones CRIM has and the tree lacks (or holds in another role) are
    /// made; with [`Reread::Full`] also the acknowledgements, and the
    /// assignments CRIM no longer has are removed.
    async fn refresh_states(&self, how: Reread) {
        let Ok(views) = self.core.components().await else {
            return;
        };
        let mut expected = std::collections::HashSet::new();
        for v in &views {
            if let Ok(n) = ObjectName::parse(&v.name) {
                // A component is a node, a unit or a software component:
                // its class is known at run time only (so in `apply`).
                self.set(
                    &n,
                    ComponentPatch::new()
                        .admin_state(v.admin)
                        .availability_state(v.avail)
                        .oper_state(v.oper)
                        .incarnation(v.incarnation)
                        .values(),
                );
                // The process id, which only a missed event would carry.
                if let Some(pid) = v.pid
                    && let Ok(o) = self.store.get(&n).await
                    && o.class.name == SoftwareComponent::META.name
                {
                    self.set(&n, SoftwareComponentPatch::new().pid(pid).values());
                }
            }
            self.proxied_by(&v.name, v.avail).await;
            let roles = v
                .active
                .iter()
                .map(|si| (si, AssignmentRole::Active))
                .chain(v.standby.iter().map(|si| (si, AssignmentRole::Standby)));
            for (si, role) in roles {
                let object = assignment_name(si, &v.name);
                let held = match ObjectName::parse(&object) {
                    Ok(n) => self
                        .store
                        .get(&n)
                        .await
                        .ok()
                        .and_then(|o| match o.get("Role") {
                            Some(Value::Enum(e)) => AssignmentRole::from_value(*e),
                            _ => None,
                        }),
                    Err(_) => None,
                };
                if held != Some(role) {
                    self.assignment(si, &v.name, role.yang_name(), true).await;
                }
                // Acknowledgements before the subscription (or missed) are
                // read from CRIM too: the role the component acknowledged
                // is its current one.
                if how == Reread::Full
                    && let Ok(n) = ObjectName::parse(&object)
                {
                    self.set(
                        &n,
                        AssignmentPatch::new()
                            .acknowledged(v.acked == Some(v.avail))
                            .values(),
                    );
                }
                expected.insert(object);
            }
        }
        if how == Reread::Beside {
            return;
        }
        for a in self
            .store
            .query(&Query {
                classes: vec!["Assignment".into()],
                ..Query::default()
            })
            .await
            .unwrap_or_default()
        {
            if !expected.contains(&a.name.to_string()) {
                self.store.remove(&a.name);
                if let Some(c) = a.get("Component").and_then(Value::as_str) {
                    self.forget_assignment(c, &a.name);
                }
            }
        }
    }

    /// Publishes `StateChanged` with the component's states as stored.
    fn publish_state_changed(
        &self,
        n: &ObjectName,
        o: &halyard_cluster_model::port::ManagedObject,
        reason: &str,
        oper_changed: bool,
    ) {
        let mut patch = StateChangedPatch::new()
            .component(n.as_str())
            .reason(reason)
            .oper_state_changed(oper_changed);
        if let Some(a) = o.get("AdminState").and_then(enum_of) {
            patch = patch.admin_state(a);
        }
        if let Some(s) = o.get("OperState").and_then(enum_of) {
            patch = patch.oper_state(s);
        }
        if let Some(s) = o.get("AvailabilityState").and_then(enum_of) {
            patch = patch.availability_state(s);
        }
        self.publish("StateChanged", n, patch.values().to_vec());
    }

    async fn apply(&self, kind: &EventKind) {
        let now = Timestamp::now();
        match kind {
            EventKind::StateChanged {
                component,
                to,
                reason,
                ..
            } => {
                let Ok(n) = ObjectName::parse(component) else {
                    return;
                };
                let Ok(to) = to.parse::<AvailabilityState>() else {
                    return;
                };
                self.set(
                    &n,
                    ComponentPatch::new()
                        .availability_state(to)
                        .last_change(now)
                        .values(),
                );
                self.proxied_by(component, to).await;
                let Ok(o) = self.store.get(&n).await else {
                    return;
                };
                self.publish_state_changed(&n, &o, reason, false);
            }
            // A component taken down by its container's failure: a
            // secondary alarm (root-cause suppression files it under the
            // container's).
            EventKind::ContainerFailed {
                component,
                container,
            } => {
                let text = format!("container {container} failed");
                if let Err(e) = self
                    .raise_alarm(
                        component,
                        ProbableCause::UnderlyingResourceUnavailable,
                        PerceivedSeverity::Major,
                        &text,
                    )
                    .await
                {
                    tracing::error!(error = %e, %component, "cannot raise the secondary alarm");
                }
            }
            EventKind::OperChanged {
                component,
                enabled,
                reason,
            } => {
                if let Ok(n) = ObjectName::parse(component) {
                    let s = if *enabled {
                        OperState::Enabled
                    } else {
                        OperState::Disabled
                    };
                    let before = self.store.get(&n).await.ok();
                    self.set(&n, ComponentPatch::new().oper_state(s).values());
                    // A change (not a repeat) is announced.
                    if let Some(before) = before
                        && before.get("OperState").and_then(enum_of::<OperState>) != Some(s)
                        && let Ok(o) = self.store.get(&n).await
                    {
                        self.publish_state_changed(&n, &o, reason, true);
                    }
                    if *enabled {
                        let _ = self.clear_alarms_if_secondary(component).await;
                    }
                }
            }
            EventKind::Process {
                component,
                pid,
                incarnation,
            } => {
                if let Ok(n) = ObjectName::parse(component)
                    && let Ok(o) = self.store.get(&n).await
                {
                    let restarts = match o.get("Restarts") {
                        Some(Value::U64(r)) if *incarnation > 1 => r + 1,
                        Some(Value::U64(r)) => *r,
                        _ => 0,
                    };
                    let mut v = ComponentPatch::new()
                        .incarnation(*incarnation)
                        .restarts(restarts)
                        .values()
                        .to_vec();
                    // Only a software component has a process.
                    if o.class.name == SoftwareComponent::META.name {
                        v.extend_from_slice(
                            SoftwareComponentPatch::new().pid(pid.unwrap_or(0)).values(),
                        );
                    }
                    self.set(&n, &v);
                }
            }
            EventKind::FailedOver {
                si,
                from,
                to,
                reason,
            } => {
                if let Ok(n) = ObjectName::parse(from)
                    && let Ok(o) = self.store.get(&n).await
                    && let Some(Value::U64(f)) = o.get("FailOvers")
                {
                    self.set(&n, ComponentPatch::new().fail_overs(f + 1).values());
                }
                if let Some(sg) = ObjectName::parse(si).ok().and_then(|s| s.parent())
                    && let Ok(o) = self.store.get(&sg).await
                    && let Some(Value::U64(f)) = o.get("FailOvers")
                {
                    self.set(&sg, ServiceGroupPatch::new().fail_overs(f + 1).values());
                }
                let src = ObjectName::parse(si).unwrap_or_else(|_| self.root.clone());
                self.publish(
                    "FailedOver",
                    &src,
                    FailedOverPatch::new()
                        .service_instance(si.as_str())
                        .from_component(from.as_str())
                        .to_component(to.as_str())
                        .reason(reason.as_str())
                        .values()
                        .to_vec(),
                );
            }
            EventKind::Assignment {
                si,
                component,
                role,
                assigned,
            } => self.assignment(si, component, role, *assigned).await,
            EventKind::Acked { component, .. } => {
                let held: Vec<ObjectName> = self
                    .assignments_of
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(component.as_str())
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for a in held {
                    self.set(&a, AssignmentPatch::new().acknowledged(true).values());
                }
            }
            EventKind::Alarm {
                resource,
                cause,
                severity,
                text,
                clear,
            } => {
                if *clear {
                    let _ = self.clear_alarms(resource).await;
                } else {
                    let cause = ProbableCause::from_value(*cause).unwrap_or(ProbableCause::Other);
                    let sev = PerceivedSeverity::from_value(*severity)
                        .unwrap_or(PerceivedSeverity::Major);
                    if let Err(e) = self.raise_alarm(resource, cause, sev, text).await {
                        tracing::error!(error = %e, "cannot raise alarm");
                    }
                    // A power supply or a shelf: whichever has the flag.
                    if cause == ProbableCause::PowerProblem
                        && let Some((n, patch)) = self.power_good(resource, false)
                    {
                        self.set(&n, &patch);
                    }
                }
                // Any clear of a power supply's or a shelf's fault (a fan's
                // power fault clears too) sets the flag again.
                if *clear && let Some((n, patch)) = self.power_good(resource, true) {
                    self.set(&n, &patch);
                }
            }
            EventKind::Statistic {
                resource,
                name,
                value,
                unit,
            } => self.relayed_statistic(resource, name, *value, unit).await,
            EventKind::Replicated { .. } => self.catch_up().await,
            EventKind::Recovery { .. } | EventKind::Verdict { .. } => {}
        }
    }

    /// A proxy's role names the peer node managing its non-peer node.
    async fn proxied_by(&self, component: &str, state: AvailabilityState) {
        let Some((target, host)) = self.proxies.get(component) else {
            return;
        };
        let Ok(n) = ObjectName::parse(target) else {
            return;
        };
        let current = self
            .store
            .get(&n)
            .await
            .ok()
            .and_then(|o| {
                o.get("ProxiedBy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let next = if state == AvailabilityState::Primary {
            host.clone()
        } else if current == *host {
            String::new()
        } else {
            return;
        };
        if next != current {
            self.set(&n, NodePatch::new().proxied_by(next).values());
        }
    }

    /// An alarm change replicated to every node (a proxy's relayed from its
    /// non-peer node, or a hardware fault of a cluster node's unit): raised
    /// (folded into the active one) or cleared, by resource and cause.
    async fn relayed_alarm(&self, alarm: &RelayedAlarm) {
        let resource = alarm.resource.as_str();
        let Some(cause) = ProbableCause::from_value(alarm.cause) else {
            tracing::error!(%resource, cause = alarm.cause, "relayed alarm with an unknown cause");
            return;
        };
        let severity = alarm.severity.and_then(PerceivedSeverity::from_value);
        let r = match severity {
            Some(sev) => self
                .raise_alarm(
                    resource,
                    cause,
                    sev,
                    alarm.text.as_deref().unwrap_or_default(),
                )
                .await
                .map(drop),
            None => self
                .clear_alarms_matching(resource, Some(cause))
                .await
                .map(drop),
        };
        if let Err(e) = r {
            tracing::error!(error = %e, %resource, "cannot apply a relayed alarm");
        }
        // A power supply's or a shelf's flag, as for a local alarm.
        let good = match severity {
            Some(_) if cause == ProbableCause::PowerProblem => Some(false),
            Some(_) => None,
            None => Some(true),
        };
        if let Some(good) = good
            && let Some((n, patch)) = self.power_good(resource, good)
        {
            self.set(&n, &patch);
        }
    }

    /// A statistic a proxy relayed from its non-peer node: the node's
    /// Statistic object, with its history like the collector's.
    async fn relayed_statistic(&self, resource: &str, stat: &str, value: f64, unit: &str) {
        let object = format!("{resource}/stat={stat}");
        let Ok(n) = ObjectName::parse(&object) else {
            return;
        };
        let now = Timestamp::now();
        let patch = StatisticPatch::new()
            .resource(resource)
            .value(value)
            .unit(unit)
            .collected_at(now);
        if self.store.update(&n, patch.values()).is_err()
            && let Err(e) = self
                .create_dynamic("Statistic", &object, patch.values())
                .await
        {
            tracing::warn!(error = %e, %object, "cannot create relayed statistic");
            return;
        }
        if let Err(e) = self
            .repo
            .journal(
                "statistic",
                &object,
                &json!({"time": now.0, "value": value}),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot record statistics history");
        }
    }

    async fn assignment(&self, si: &str, component: &str, role: &str, assigned: bool) {
        let object = assignment_name(si, component);
        let Ok(n) = ObjectName::parse(&object) else {
            return;
        };
        if assigned {
            let role = if role == "active" {
                AssignmentRole::Active
            } else {
                AssignmentRole::Standby
            };
            self.assignments_of
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(component.to_string())
                .or_default()
                .insert(n.clone());
            if self.store.get(&n).await.is_ok() {
                self.set(
                    &n,
                    AssignmentPatch::new()
                        .role(role)
                        .acknowledged(false)
                        .assigned_at(Timestamp::now())
                        .values(),
                );
            } else {
                let _ = self
                    .create_deferred(
                        "Assignment",
                        &object,
                        AssignmentPatch::new()
                            .component(component)
                            .role(role)
                            .acknowledged(false)
                            .assigned_at(Timestamp::now())
                            .values(),
                    )
                    .await;
            }
        } else if let Ok(o) = self.store.get(&n).await
            && o.get("Role")
                .and_then(|r| match r {
                    Value::Enum(v) => AssignmentRole::from_value(*v),
                    _ => None,
                })
                .map(|r| r.yang_name())
                == Some(role)
        {
            self.store.remove(&n);
            self.forget_assignment(component, &n);
        }
        // Counters of service instances and groups are refreshed by the
        // statistics cycle, in one pass, not per event.
    }

    fn forget_assignment(&self, component: &str, n: &ObjectName) {
        let mut of = self
            .assignments_of
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(set) = of.get_mut(component) {
            set.remove(n);
            if set.is_empty() {
                of.remove(component);
            }
        }
    }

    /// Recomputes service-instance and service-group counters in one pass.
    pub(crate) async fn refresh_counters(&self) {
        let asg = self
            .store
            .query(&Query {
                classes: vec!["Assignment".into()],
                ..Query::default()
            })
            .await
            .unwrap_or_default();
        let mut per_si: std::collections::HashMap<ObjectName, (u32, u32)> =
            std::collections::HashMap::new();
        for a in &asg {
            if let Some(si) = a.name.parent() {
                let e = per_si.entry(si).or_default();
                match a.get("Role") {
                    Some(Value::Enum(v)) if *v == AssignmentRole::Active.value() => e.0 += 1,
                    Some(Value::Enum(v)) if *v == AssignmentRole::Standby.value() => e.1 += 1,
                    _ => {}
                }
            }
        }
        for si in self
            .store
            .query(&Query {
                classes: vec!["ServiceInstance".into()],
                ..Query::default()
            })
            .await
            .unwrap_or_default()
        {
            let (active, standby) = per_si.get(&si.name).copied().unwrap_or_default();
            self.set(
                &si.name,
                ServiceInstancePatch::new()
                    .active_assignments(active)
                    .standby_assignments(standby)
                    .assigned(active > 0)
                    .values(),
            );
        }
        if let Ok(views) = self.core.components().await {
            let mut per_sg: std::collections::HashMap<&str, (u32, u32)> =
                std::collections::HashMap::new();
            for v in &views {
                let e = per_sg.entry(v.sg.as_str()).or_default();
                match v.avail {
                    AvailabilityState::Primary => e.0 += 1,
                    AvailabilityState::Secondary => e.1 += 1,
                    _ => {}
                }
            }
            for (sg, (p, s)) in per_sg {
                if let Ok(n) = ObjectName::parse(sg) {
                    self.set(
                        &n,
                        ServiceGroupPatch::new()
                            .primaries(p)
                            .secondaries(s)
                            .values(),
                    );
                }
            }
        }
    }
}

/// How much a re-read of CRIM may overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reread {
    /// By the event task itself (at its start, after it missed events):
    /// nothing applies events meanwhile, so what CRIM says replaces the
    /// tree's assignments and acknowledgements.
    Full,
    /// Beside the event task (the cluster's periodic pass): an event
    /// applied between CRIM's answer and the write would be undone, so
    /// only what is missing is made, nothing is removed or reset.
    Beside,
}

/// The name of the Assignment object of `component` in service instance
/// `si`.
fn assignment_name(si: &str, component: &str) -> String {
    let leaf = component.rsplit('=').next().unwrap_or(component);
    format!("{si}/asg={leaf}")
}
