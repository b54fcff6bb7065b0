//! The hot-swap manager (HSM): decides what to do with the units a
//! hot-swap bus reports inserted or removed.
//!
//! For each FRU type (`[[fru_type]]`) it knows the component managers to
//! instantiate and whether a unit is instantiated on insertion (dynamic)
//! or instantiated locked until an operator unlocks it (manual);
//! components configured locked are instantiated but not started.
//! Configured units (`[[shelf]] fru = [...]`, static) exist from the start.
//!
//! An insertion becomes one [`Reconfigure`] of the HA core: CRIM's groups
//! and members, the components to run, and a note for every node's model
//! (the objects to create, the controller's SwapEvents, the FruChanged
//! notification, the missing-unit alarm to clear). A removal takes the
//! unit's subtree away (a configured unit stays, not present, its
//! components lost) and raises a missing-unit alarm when the unit was in
//! service. In a cluster the change goes through the log, so every replica
//! agrees; only the master's manager acts on its bus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use halyard_backend::core::Reconfigure;
use halyard_backend::crim::{GroupMember, Reconfig};
use halyard_backend::hotswap::{SwapBus, SwapEvent};
use halyard_cluster_model::model::{AvailabilityState, HardwareFruPatch};
use halyard_cluster_model::port::{
    InformationModel, JobHandle, ManagedObject, ModelError, Principal, Query, Scope,
};
use halyard_cluster_model::{ObjectName, SCHEMA, Value};
use serde_json::json;
use tokio::sync::{Mutex, watch};

use crate::config::{Config, FruTypeEntry, Instantiate};
use crate::element::{Element, FruCtx, ObjectSpec, Unit, fru_class, fru_parts};
use crate::model::AgentModel;

/// How often a follower looks whether the events it keeps were applied.
const PENDING_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// FRU classes by relative-name type, for the names a slot's unit may have.
const FRU_RDNS: [&str; 5] = ["hsc", "fan", "psu", "board", "linecard"];

#[derive(Debug)]
pub struct HotSwap {
    model: Arc<AgentModel>,
    root: String,
    types: Vec<FruTypeEntry>,
    static_frus: BTreeMap<String, (String, u32)>,
    self_exe: PathBuf,
    run_dir: PathBuf,
    /// Unit name -> its FRU type, for the removal's notification.
    unit_types: Mutex<BTreeMap<String, String>>,
}

/// An object as a note carries it: class, name, attribute texts.
fn object_json(o: &ObjectSpec) -> serde_json::Value {
    json!({"class": o.class, "name": o.name, "values": values_json(o.class, &o.values)})
}

fn values_json(class: &str, values: &[(&str, Value)]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(meta) = SCHEMA.class(class) {
        for (a, v) in values {
            if let Some((_, m)) = meta.attribute(a) {
                out.insert(m.name.to_string(), json!(v.render(&m.ty)));
            }
        }
    }
    serde_json::Value::Object(out)
}

fn present(o: &ManagedObject) -> bool {
    o.get("Present") != Some(&Value::Bool(false))
}

fn unknown_type<'a>(fru_type: &str, known: impl Iterator<Item = &'a String>) -> String {
    let known: Vec<&str> = known.map(String::as_str).collect();
    format!(
        "unknown FRU type {fru_type:?}, expected one of: {}",
        known.join(", ")
    )
}

/// The event's shelf, the unit in its slot (if any) and the shelf's
/// hot-swap controller.
async fn slot_of(
    model: &AgentModel,
    root: &str,
    ev: &SwapEvent,
) -> Result<(ObjectName, Option<ManagedObject>, Option<String>), String> {
    let shelf =
        ObjectName::parse(&format!("{root}/shelf={}", ev.shelf())).map_err(|e| e.to_string())?;
    if model.store.get(&shelf).await.is_err() {
        return Err(format!("no shelf {}", ev.shelf()));
    }
    let units = model
        .store
        .query(&Query {
            scope: Scope::Children(shelf.clone()),
            classes: vec!["HardwareFru".into()],
            ..Query::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let hsc = units
        .iter()
        .find(|o| o.class.name == "HotSwapController")
        .map(|o| o.name.to_string());
    let current = units
        .into_iter()
        .find(|o| o.get("Slot") == Some(&Value::U32(ev.slot())));
    Ok((shelf, current, hsc))
}

/// What the controllers' Insert and Remove need: the simulated bus, and
/// the configured FRU types, to refuse what the manager would ignore.
#[derive(Debug, Clone)]
pub struct SimBusPort {
    pub bus: halyard_backend::hotswap::SimBusHandle,
    pub fru_types: Vec<String>,
}

/// Why an operation's event would change nothing (the manager takes
/// such bus events as no-ops, for idempotence; an operator's request
/// with wrong input is refused instead of "succeeding").
async fn pointless(model: &AgentModel, port: &SimBusPort, ev: &SwapEvent) -> Result<(), String> {
    let (_, current, _) = slot_of(model, model.root.as_str(), ev).await?;
    let shelf = ev.shelf();
    match ev {
        SwapEvent::Inserted { slot, fru_type, .. } => {
            if !port.fru_types.contains(fru_type) {
                return Err(unknown_type(fru_type, port.fru_types.iter()));
            }
            match current {
                Some(o) if present(&o) => Err(format!(
                    "slot {slot} of shelf {shelf} is occupied by {}: remove it first",
                    o.name
                )),
                _ => Ok(()),
            }
        }
        SwapEvent::Removed { slot, .. } => match current {
            None => Err(format!(
                "slot {slot} of shelf {shelf} is empty: nothing to remove"
            )),
            Some(o) if !present(&o) => Err(format!(
                "slot {slot} of shelf {shelf} is empty ({} is already out): nothing to remove",
                o.name
            )),
            Some(_) => Ok(()),
        },
    }
}

impl HotSwap {
    pub fn new(
        model: Arc<AgentModel>,
        cfg: &Config,
        el: &Element,
        self_exe: PathBuf,
        run_dir: PathBuf,
    ) -> Self {
        let unit_types = cfg
            .shelves
            .iter()
            .flat_map(|s| {
                s.frus.iter().filter_map(|f| {
                    let (_, rdn, _) = fru_class(f.kind);
                    let name = format!(
                        "{}/shelf={}/{rdn}={}",
                        el.root,
                        s.name.get_ref(),
                        f.name.get_ref()
                    );
                    Some((name, f.fru_type.as_ref()?.get_ref().clone()))
                })
            })
            .collect();
        HotSwap {
            model,
            root: el.root.clone(),
            types: cfg.fru_types.clone(),
            static_frus: el.static_frus.clone(),
            self_exe,
            run_dir,
            unit_types: Mutex::new(unit_types),
        }
    }

    fn is_master(&self) -> bool {
        self.model
            .cluster
            .get()
            .is_none_or(|h| h.consensus.is_leader())
    }

    /// The manager's main loop: every event the bus reports, until `stop`.
    ///
    /// Every node's bus sees the same events, and only the master acts on
    /// them. A follower keeps the latest event of each slot until the
    /// model shows it applied; if it becomes master first (the master died
    /// before acting), it applies what is left. Applying is idempotent.
    pub async fn run(self, mut bus: impl SwapBus, mut stop: watch::Receiver<bool>) {
        let mut pending: BTreeMap<(String, u32), SwapEvent> = BTreeMap::new();
        let mut check = tokio::time::interval(PENDING_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                e = bus.next() => {
                    let Some(ev) = e else { return };
                    if self.is_master() {
                        self.apply(&ev, "").await;
                    } else {
                        pending.insert((ev.shelf().to_string(), ev.slot()), ev);
                    }
                }
                _ = check.tick(), if !pending.is_empty() => {
                    if self.is_master() {
                        for (_, ev) in std::mem::take(&mut pending) {
                            self.apply(&ev, " (seen before this node became master)").await;
                        }
                    } else {
                        let mut done = Vec::new();
                        for (k, ev) in &pending {
                            if self.applied(ev).await {
                                done.push(k.clone());
                            }
                        }
                        for k in done {
                            pending.remove(&k);
                        }
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    async fn apply(&self, ev: &SwapEvent, note: &str) {
        match self.handle(ev).await {
            Ok(what) => tracing::info!(event = ?ev, "hot swap{note}: {what}"),
            Err(why) => tracing::warn!(event = ?ev, %why, "hot swap{note}: event not applied"),
        }
    }

    /// Whether the model already shows the event (the master applied it).
    async fn applied(&self, ev: &SwapEvent) -> bool {
        let Ok((_, current, _)) = self.slot(ev).await else {
            return false;
        };
        match ev {
            SwapEvent::Inserted { serial, .. } => current.is_some_and(|o| {
                present(&o) && o.get("SerialNumber") == Some(&Value::Str(serial.clone()))
            }),
            SwapEvent::Removed { .. } => current.is_none_or(|o| !present(&o)),
        }
    }

    /// The event's shelf, the unit in its slot (if any) and the shelf's
    /// hot-swap controller.
    async fn slot(
        &self,
        ev: &SwapEvent,
    ) -> Result<(ObjectName, Option<ManagedObject>, Option<String>), String> {
        slot_of(&self.model, &self.root, ev).await
    }

    /// Handles one event; says what it did, or why it did nothing.
    pub async fn handle(&self, ev: &SwapEvent) -> Result<String, String> {
        if let Some(h) = self.model.cluster.get()
            && !h.consensus.is_leader()
        {
            return Err("not the master: the master's hot-swap manager acts on it".into());
        }
        let (_, current, hsc) = self.slot(ev).await?;
        let current = current.as_ref();
        match ev {
            SwapEvent::Inserted {
                shelf: sname,
                slot,
                fru_type,
                serial,
                revision,
            } => match current {
                Some(o) if present(o) => Ok(format!("{} is already in slot {slot}", o.name)),
                Some(o) => self.reinsert(o, ev, hsc).await,
                None => {
                    self.instantiate(sname, *slot, fru_type, serial, revision, hsc)
                        .await
                }
            },
            SwapEvent::Removed { slot, .. } => match current {
                None => Ok(format!("slot {slot} is empty")),
                Some(o) if !present(o) => Ok(format!("{} is already out", o.name)),
                Some(o) => self.remove(o, *slot, hsc).await,
            },
        }
    }

    /// Components of a unit's subtree (the unit first), with CRIM's view.
    async fn subtree(
        &self,
        unit: &ObjectName,
    ) -> Result<Vec<halyard_backend::crim::ComponentView>, String> {
        let names: Vec<String> = self
            .model
            .store
            .query(&Query {
                scope: Scope::Subtree(unit.clone()),
                classes: vec!["Component".into()],
                ..Query::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|o| o.name.to_string())
            .collect();
        let views = self
            .model
            .core
            .components()
            .await
            .map_err(|e| e.to_string())?;
        let mut out: Vec<_> = views
            .into_iter()
            .filter(|v| names.contains(&v.name))
            .collect();
        out.sort_by_key(|v| (v.name != unit.as_str(), v.name.clone()));
        Ok(out)
    }

    async fn instantiate(
        &self,
        shelf: &str,
        slot: u32,
        fru_type: &str,
        serial: &str,
        revision: &str,
        hsc: Option<String>,
    ) -> Result<String, String> {
        let ty = self
            .types
            .iter()
            .find(|t| t.name.get_ref() == fru_type)
            .ok_or_else(|| unknown_type(fru_type, self.types.iter().map(|t| t.name.get_ref())))?;
        let name = format!("slot-{slot}");
        let unit = Unit {
            shelf,
            kind: ty.class,
            name: &name,
            slot,
            serial,
            revision,
            // A hot-swapped unit is known by its FRU type.
            model: "",
        };
        let manual = ty.instantiate == Instantiate::Manual;
        let ctx = FruCtx {
            root: &self.root,
            self_exe: &self.self_exe,
            run_dir: &self.run_dir,
        };
        let parts = fru_parts(&ctx, &unit, Some(ty), true, manual);
        let unit_name = ObjectName::parse(&parts.unit).map_err(|e| e.to_string())?;
        if self.model.store.get(&unit_name).await.is_ok() {
            return Err(format!("{} exists", parts.unit));
        }
        // A unit back in this slot ends whatever went missing from it.
        let shelf_name = format!("{}/shelf={shelf}", self.root);
        let mut clear: Vec<String> = FRU_RDNS
            .iter()
            .map(|r| format!("{shelf_name}/{r}={name}"))
            .collect();
        clear.extend(
            self.static_frus
                .iter()
                .filter(|(_, (s, n))| s == shelf && *n == slot)
                .map(|(u, _)| u.clone()),
        );
        let note = json!({
            "fru": parts.unit, "slot": slot, "present": true, "fru_type": fru_type,
            "create": parts.objects.iter().map(object_json).collect::<Vec<_>>(),
            "hsc": hsc, "clear": clear,
        });
        let n = parts.components.len();
        let locked = parts.locked.len();
        let change = Reconfigure {
            crim: Reconfig {
                add_groups: parts.group.into_iter().collect(),
                join: parts.joins,
                locked: parts.locked,
                ..Reconfig::default()
            },
            components: parts.components,
            note,
            ..Reconfigure::default()
        };
        self.model
            .core
            .reconfigure(change)
            .await
            .map_err(|e| e.to_string())?;
        self.unit_types
            .lock()
            .await
            .insert(parts.unit.clone(), fru_type.to_string());
        Ok(format!(
            "{} ({fru_type}) instantiated: {n} components, {locked} locked",
            parts.unit
        ))
    }

    async fn remove(
        &self,
        o: &ManagedObject,
        slot: u32,
        hsc: Option<String>,
    ) -> Result<String, String> {
        let comps = self.subtree(&o.name).await?;
        let in_service = comps.iter().any(|v| {
            matches!(
                v.avail,
                AvailabilityState::Primary | AvailabilityState::Secondary
            )
        });
        let unit = o.name.to_string();
        let fru_type = self
            .unit_types
            .lock()
            .await
            .get(&unit)
            .cloned()
            .unwrap_or_default();
        let alarm = in_service.then(|| {
            format!(
                "{} {} (serial {}) removed from slot {slot} while in service",
                o.class.name,
                if fru_type.is_empty() {
                    "unit"
                } else {
                    &fru_type
                },
                o.get("SerialNumber")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )
        });
        let mut note = json!({
            "fru": unit, "slot": slot, "present": false, "fru_type": fru_type,
            "hsc": hsc, "alarm": alarm,
        });
        let mut change = Reconfigure::default();
        if self.static_frus.contains_key(&unit) {
            // A configured unit stays, not present; its components are lost.
            // (The unit's class, any FRU class, is known at run time only.)
            let values = values_json(
                o.class.name,
                HardwareFruPatch::new().present(false).values(),
            );
            note["set"] = json!([{"name": unit, "values": values}]);
            change.lost = comps.iter().map(|v| v.name.clone()).collect();
        } else {
            // The unit's own group goes with it; members of configured
            // groups leave them.
            let own = comps
                .first()
                .filter(|v| v.name == unit)
                .map(|v| v.sg.clone())
                .ok_or_else(|| format!("{unit} is not a component CRIM knows"))?;
            change.crim.remove_groups = vec![own.clone()];
            change.crim.leave = comps
                .iter()
                .filter(|v| v.sg != own)
                .map(|v| GroupMember {
                    group: v.sg.clone(),
                    component: v.name.clone(),
                    sis: Vec::new(),
                })
                .collect();
            note["remove"] = json!([unit, own]);
        }
        change.note = note;
        self.model
            .core
            .reconfigure(change)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{unit} removed ({} components{})",
            comps.len(),
            if in_service {
                ", was in service: alarm raised"
            } else {
                ""
            }
        ))
    }

    /// A configured unit back in its slot: present again, its components
    /// restarted, its missing-unit alarm cleared.
    async fn reinsert(
        &self,
        o: &ManagedObject,
        ev: &SwapEvent,
        hsc: Option<String>,
    ) -> Result<String, String> {
        let SwapEvent::Inserted {
            slot,
            fru_type,
            serial,
            revision,
            ..
        } = ev
        else {
            return Err("not an insertion".into());
        };
        let comps = self.subtree(&o.name).await?;
        let unit = o.name.to_string();
        // The unit's class (any FRU class) is known at run time only.
        let values = values_json(
            o.class.name,
            HardwareFruPatch::new()
                .present(true)
                .serial_number(serial.clone())
                .hardware_revision(revision.clone())
                .values(),
        );
        let note = json!({
            "fru": unit, "slot": slot, "present": true, "fru_type": fru_type,
            "set": [{"name": unit, "values": values}], "hsc": hsc, "clear": [unit],
        });
        let change = Reconfigure {
            restart: comps.iter().map(|v| v.name.clone()).collect(),
            note,
            ..Reconfigure::default()
        };
        self.model
            .core
            .reconfigure(change)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{unit} is back ({} components restarted)",
            comps.len()
        ))
    }
}

/// The hot-swap controllers' Insert and Remove operations: the simulated
/// bus reports the unit inserted into (removed from) a slot of the
/// controller's shelf; the manager acts on it as on any bus event.
#[derive(Debug)]
pub struct SimBusOperations {
    pub model: std::sync::Weak<AgentModel>,
    pub port: SimBusPort,
}

#[async_trait::async_trait]
impl crate::operations::Operations for SimBusOperations {
    fn serves(&self, class: &halyard_cluster_model::meta::ClassMeta, operation: &str) -> bool {
        class.name == "HotSwapController" && matches!(operation, "Insert" | "Remove")
    }

    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: &[(String, Value)],
        principal: &Principal,
    ) -> Result<JobHandle, ModelError> {
        let model = self
            .model
            .upgrade()
            .ok_or_else(|| ModelError::Unavailable {
                reason: "the agent is stopping".into(),
            })?;
        sim_bus_operation(&model, &self.port, target, operation, args, principal).await
    }
}

async fn sim_bus_operation(
    model: &AgentModel,
    port: &SimBusPort,
    target: &ObjectName,
    operation: &str,
    args: &[(String, Value)],
    principal: &Principal,
) -> Result<JobHandle, ModelError> {
    let arg = |n: &str| {
        args.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n) || k.replace('-', "").eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    };
    let text = |n: &str| {
        arg(n)
            .map(|v| match v {
                Value::Str(s) => s.clone(),
                Value::U32(u) => u.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default()
    };
    let slot = match arg("Slot") {
        Some(Value::U32(s)) => *s,
        Some(v) => v
            .as_f64()
            .map(|f| f as u32)
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0),
        None => 0,
    };
    let inconsistent = |reason: String| ModelError::Inconsistent { reason };
    if slot == 0 {
        return Err(inconsistent("found no slot, expected Slot >= 1".into()));
    }
    let shelf = target
        .parent()
        .map(|p| p.leaf().1.to_string())
        .ok_or_else(|| inconsistent(format!("{target} is in no shelf")))?;
    let event = if operation == "Insert" {
        let fru_type = text("FruType");
        if fru_type.is_empty() {
            return Err(inconsistent(
                "found no FruType, expected a FRU type name".into(),
            ));
        }
        SwapEvent::Inserted {
            shelf,
            slot,
            fru_type,
            serial: text("SerialNumber"),
            revision: text("HardwareRevision"),
        }
    } else {
        SwapEvent::Removed { shelf, slot }
    };
    if let Some(h) = model.cluster.get()
        && !h.consensus.is_leader()
    {
        return Err(ModelError::Unavailable {
            reason: "the master's hot-swap manager handles the bus: invoke this on the master"
                .into(),
        });
    }
    let what = format!("{operation} {target}");
    if let Err(reason) = pointless(model, port, &event).await {
        model
            .audit(principal, &what, &format!("rejected: {reason}"))
            .await;
        return Err(inconsistent(reason));
    }
    let detail = format!("{event:?} reported on the simulated bus");
    port.bus
        .report(event)
        .await
        .map_err(|e| ModelError::Unavailable {
            reason: e.to_string(),
        })?;
    model.audit(principal, &what, &detail).await;
    Ok(crate::copco::locks::finished_job(target.clone(), detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::SchemaEnum;
    use halyard_cluster_model::model::{AdminState, LineCardPatch};

    #[test]
    fn notes_carry_objects_as_attribute_texts() {
        let o = ObjectSpec {
            class: "LineCard",
            name: "ne=1/shelf=1/linecard=slot-3".into(),
            values: LineCardPatch::new()
                .slot(3)
                .present(true)
                .admin_state(AdminState::Locked)
                .values()
                .to_vec(),
        };
        let j = object_json(&o);
        assert_eq!(j["class"], "LineCard");
        let meta = SCHEMA.class("LineCard").unwrap();
        let (_, a) = meta.attribute("AdminState").unwrap();
        let text = j["values"]["AdminState"].as_str().unwrap();
        assert_eq!(
            Value::parse(&a.ty, text).unwrap(),
            Value::Enum(AdminState::Locked.value())
        );
        let (_, p) = meta.attribute("Present").unwrap();
        assert_eq!(
            Value::parse(&p.ty, j["values"]["Present"].as_str().unwrap()).unwrap(),
            Value::Bool(true)
        );
    }
}
