//! ietf-hardware (RFC 8348): `/hardware` from the containment tree, by the
//! physical view the SNMP face's ENTITY-MIB uses too
//! ([`halyard_cluster_model::physical`]), so both faces show the same
//! components, parents and states, and the same sensors. Configuration:
//! each entity's alias and admin-state ([`hardware_config`], [`edit`]),
//! the attributes with those roles that halyard-cluster's leaves write.

use std::sync::Mutex;

use halyard_cluster_model::meta::Role;
use halyard_cluster_model::physical;
use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::{Timestamp, Value};

use crate::xml::{Element, XMLNS_DECL};

/// RFC 8348's namespace.
pub const HARDWARE_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-hardware";
/// The iana-hardware identities' namespace.
pub const IANA_HW_NS: &str = "urn:ietf:params:xml:ns:yang:iana-hardware";
/// The features of ietf-hardware the server supports: `physical-index`
/// is the entPhysicalIndex of the same entity, and `state` is filled.
pub const FEATURES: &[&str] = &["entity-mib", "hardware-sensor", "hardware-state"];

/// `last-change`: when this server saw the component list change
/// (components inserted, removed or moved), its start until then.
#[derive(Debug, Default)]
pub struct LastChange(Mutex<Option<(u64, Timestamp)>>);

impl LastChange {
    fn observe(&self, fingerprint: u64, started: Timestamp) -> Timestamp {
        let mut seen = self.0.lock().expect("hardware last-change");
        match *seen {
            Some((old, at)) if old == fingerprint => at,
            Some(_) => {
                let at = Timestamp::now();
                *seen = Some((fingerprint, at));
                at
            }
            None => {
                *seen = Some((fingerprint, started));
                started
            }
        }
    }
}

/// ietf-hardware's `hardware-state-change` for the indication that the
/// physical entity table changed ([`physical::TABLE_CHANGED`]), and
/// `hardware-state-oper-enabled` / `-disabled` for a physical entity's
/// operational state change ([`physical::oper_transition`]; `entity` is
/// the object it names, when that is a physical entity).
pub fn notification(
    n: &halyard_cluster_model::port::Notification,
    entity: Option<&ManagedObject>,
) -> Option<Element> {
    if n.class.name == physical::TABLE_CHANGED {
        return Some(Element::new(HARDWARE_NS, "hardware-state-change"));
    }
    let (name, enabled) = physical::oper_transition(n)?;
    let entity = entity.filter(|e| e.name == *name && physical::class(e).is_some())?;
    let mut e = Element::new(
        HARDWARE_NS,
        if enabled {
            "hardware-state-oper-enabled"
        } else {
            "hardware-state-oper-disabled"
        },
    );
    e.push(leaf("name", name.as_str()));
    e.push(leaf("admin-state", physical::admin(entity).yang()));
    Some(e)
}

/// The physical entity a notification's operational state change is
/// about, read from the model (None for anything else).
pub async fn entity_of(
    model: &dyn halyard_cluster_model::port::InformationModel,
    n: &halyard_cluster_model::port::Notification,
) -> Option<ManagedObject> {
    let (name, _) = physical::oper_transition(n)?;
    model
        .get(name)
        .await
        .ok()
        .filter(|o| physical::class(o).is_some())
}

fn leaf(name: &str, text: impl Into<String>) -> Element {
    Element::with_text(HARDWARE_NS, name, text)
}

/// `/hardware` of every physical entity among `objects` (which must hold
/// their ancestors and the element's alarms), with their sensors: the
/// components of [`physical::components`], as every face shows them.
pub fn render(objects: &[ManagedObject], started: Timestamp, last_change: &LastChange) -> Element {
    let components = physical::components(objects, started);
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in components.iter().filter(|c| c.sensor.is_none()) {
        (c.index, c.class as u32, &c.parent).hash(&mut h);
    }
    let mut hw = Element::new(HARDWARE_NS, "hardware");
    hw.push(leaf(
        "last-change",
        last_change.observe(h.finish(), started).to_string(),
    ));
    let now = Timestamp::now();
    for c in &components {
        hw.push(component(c, now));
    }
    hw
}

/// One `component`; a sensor's with its `sensor-data` (the same reading
/// ENTITY-SENSOR-MIB's entPhySensorTable shows).
fn component(x: &physical::Component, now: Timestamp) -> Element {
    let mut c = Element::new(HARDWARE_NS, "component");
    c.push(leaf("name", x.name.as_str()));
    let mut cl = leaf("class", format!("ianahw:{}", x.class.iana_identity()));
    cl.attrs
        .push((XMLNS_DECL.into(), "ianahw".into(), IANA_HW_NS.into()));
    c.push(cl);
    c.push(leaf("physical-index", x.index.to_string()));
    c.push(leaf("description", x.description.as_str()));
    if let Some(p) = &x.parent {
        c.push(leaf("parent", p.as_str()));
    }
    if let Some(pos) = x.parent_rel_pos {
        // int32 0..2147483647.
        c.push(leaf("parent-rel-pos", pos.min(i32::MAX as u32).to_string()));
    }
    for child in &x.children {
        c.push(leaf("contains-child", child.as_str()));
    }
    for (name, v) in [
        ("hardware-rev", &x.hardware_rev),
        ("serial-num", &x.serial_num),
        ("mfg-name", &x.mfg_name),
        ("model-name", &x.model_name),
        ("alias", &x.alias),
    ] {
        if let Some(v) = v {
            c.push(leaf(name, v.as_str()));
        }
    }
    c.push(leaf("is-fru", x.is_fru.to_string()));
    let mut st = Element::new(HARDWARE_NS, "state");
    st.push(leaf("state-last-changed", x.state_last_changed.to_string()));
    st.push(leaf("admin-state", x.admin.yang()));
    st.push(leaf("oper-state", x.oper.yang()));
    st.push(leaf("usage-state", x.usage.yang()));
    st.push(leaf(
        "alarm-state",
        physical::alarm_bit_names(x.alarm).join(" "),
    ));
    st.push(leaf("standby-state", x.standby.yang()));
    c.push(st);
    if let Some(s) = &x.sensor {
        let mut d = Element::new(HARDWARE_NS, "sensor-data");
        // sensor-value: -1000000000..1000000000.
        d.push(leaf(
            "value",
            s.value.clamp(-1_000_000_000, 1_000_000_000).to_string(),
        ));
        d.push(leaf("value-type", s.ty.yang()));
        d.push(leaf("value-scale", s.scale.yang()));
        d.push(leaf("value-precision", "0"));
        d.push(leaf("oper-status", s.status.yang()));
        d.push(leaf("units-display", s.units));
        // The model's value now: the agent reads it at every request.
        d.push(leaf("value-timestamp", now.to_string()));
        c.push(d);
    }
    c
}

/// The physical entity's attribute with a role, among a configuration
/// entry's (writable) attributes.
fn config_attr(
    e: &crate::data::ConfigEntry,
    role: Role,
) -> Option<(usize, &'static halyard_cluster_model::meta::AttrMeta)> {
    e.class.attribute_by_role(role).filter(|(_, a)| a.writable)
}

/// `/hardware` of a configuration datastore: each physical entity with
/// something to configure — its name and class (mandatory in the module),
/// its alias and its admin-state: the entity's attributes with those
/// roles, the same ones halyard-cluster's leaves and the MIBs write.
pub fn hardware_config(store: &crate::data::ConfigStore) -> Element {
    let mut hw = Element::new(HARDWARE_NS, "hardware");
    for (name, e) in &store.entries {
        let Some(class) = e.class.entity() else {
            continue;
        };
        let alias = config_attr(e, Role::Alias);
        let admin = config_attr(e, Role::AdminState);
        if alias.is_none() && admin.is_none() {
            continue;
        }
        let mut c = Element::new(HARDWARE_NS, "component");
        c.push(leaf("name", name.as_str()));
        let mut cl = leaf("class", format!("ianahw:{}", class.iana_identity()));
        cl.attrs
            .push((XMLNS_DECL.into(), "ianahw".into(), IANA_HW_NS.into()));
        c.push(cl);
        if let Some((i, _)) = alias
            && let Some(Value::Str(v)) = e.values.get(i)
            && !v.is_empty()
        {
            c.push(leaf("alias", v.as_str()));
        }
        if let Some((i, a)) = admin
            && let (halyard_cluster_model::AttrType::Enum(m), Some(Value::Enum(v))) =
                (&a.ty, e.values.get(i))
            && let Some(label) = m.by_value(*v)
        {
            let mut st = Element::new(HARDWARE_NS, "state");
            st.push(leaf("admin-state", label.yang_name));
            c.push(st);
        }
        hw.push(c);
    }
    hw
}

/// Applies an edit-config of `/hardware` to a configuration store. A
/// component is a physical entity of the element (none is configured
/// ahead of its hardware); its `class`, if given, must be the entity's;
/// `alias` and `state/admin-state` set the entity's attributes with those
/// roles (delete and remove give back their defaults). Nothing else of a
/// component is configurable.
pub fn edit(
    store: &mut crate::data::ConfigStore,
    hardware: &Element,
    op: crate::data::Op,
) -> Result<(), crate::error::RpcError> {
    use crate::data::Op;
    use crate::error::{RpcError, Tag};
    let bad = |tag: Tag, what: &str, msg: String| {
        RpcError::application(tag, msg).with_info("bad-element", what)
    };
    let op_of = crate::data::op_of;
    let op = op_of(hardware, op)?;
    for c in &hardware.children {
        if c.ns != HARDWARE_NS || c.name != "component" {
            return Err(bad(
                Tag::UnknownElement,
                &c.name,
                format!("'{}' is no configurable part of /hardware", c.name),
            ));
        }
        let cop = op_of(c, op)?;
        let name = c
            .find(HARDWARE_NS, "name")
            .map(|n| n.trimmed().to_string())
            .ok_or_else(|| {
                bad(
                    Tag::MissingElement,
                    "name",
                    "a component needs its name".into(),
                )
            })?;
        let entry = halyard_cluster_model::ObjectName::parse(&name)
            .ok()
            .and_then(|n| store.entries.get_mut(&n))
            .filter(|e| e.class.entity().is_some())
            .ok_or_else(|| {
                bad(
                    Tag::DataMissing,
                    "name",
                    format!(
                        "no component '{name}': components are the element's hardware, none is configured ahead of it"
                    ),
                )
            })?;
        let class = entry.class.entity().expect("a physical entity");
        for leaf_el in &c.children {
            let lop = op_of(leaf_el, cop)?;
            match (leaf_el.ns.as_str(), leaf_el.name.as_str()) {
                (HARDWARE_NS, "name") => {}
                (HARDWARE_NS, "class") => {
                    let given = leaf_el.trimmed();
                    let ident = given.rsplit(':').next().unwrap_or(given);
                    if ident != class.iana_identity() && !matches!(lop, Op::Delete | Op::Remove) {
                        return Err(bad(
                            Tag::InvalidValue,
                            "class",
                            format!(
                                "component '{name}' is of class ianahw:{}, not {given}",
                                class.iana_identity()
                            ),
                        ));
                    }
                }
                (HARDWARE_NS, "alias") => {
                    let Some((i, a)) = config_attr(entry, Role::Alias) else {
                        return Err(bad(
                            Tag::OperationNotSupported,
                            "alias",
                            format!("component '{name}' has no alias to set"),
                        ));
                    };
                    let v = match lop {
                        Op::None => continue,
                        Op::Delete | Op::Remove => a.default.unwrap_or("").to_string(),
                        _ => leaf_el.trimmed().to_string(),
                    };
                    if let halyard_cluster_model::AttrType::String { max_len } = a.ty
                        && v.chars().count() > max_len as usize
                    {
                        return Err(bad(
                            Tag::InvalidValue,
                            "alias",
                            format!("alias is longer than {max_len} characters"),
                        ));
                    }
                    entry.values[i] = Value::Str(v);
                }
                (HARDWARE_NS, "state") => {
                    for st in &leaf_el.children {
                        if st.ns != HARDWARE_NS || st.name != "admin-state" {
                            return Err(bad(
                                Tag::OperationNotSupported,
                                &st.name,
                                format!("state/{} is not configuration", st.name),
                            ));
                        }
                        let sop = op_of(st, op_of(leaf_el, lop)?)?;
                        let Some((i, a)) = config_attr(entry, Role::AdminState) else {
                            return Err(bad(
                                Tag::OperationNotSupported,
                                "admin-state",
                                format!("component '{name}' has no administrative state"),
                            ));
                        };
                        let halyard_cluster_model::AttrType::Enum(m) = &a.ty else {
                            continue;
                        };
                        let wanted = match sop {
                            Op::None => continue,
                            Op::Delete | Op::Remove => a.default.unwrap_or("unlocked"),
                            _ => st.trimmed(),
                        };
                        let v = m.by_name(wanted).ok_or_else(|| {
                            bad(
                                Tag::InvalidValue,
                                "admin-state",
                                format!(
                                    "'{wanted}' is no admin-state of component '{name}' (locked, unlocked, shutting-down)"
                                ),
                            )
                        })?;
                        entry.values[i] = Value::Enum(v.value);
                    }
                }
                (_, other) => {
                    return Err(bad(
                        Tag::OperationNotSupported,
                        other,
                        format!(
                            "/hardware/component/{other} is not configurable on this server (alias and state/admin-state are)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::port::{InformationModel, Query};

    async fn demo_hardware() -> String {
        let objs = demo_element().query(&Query::default()).await.unwrap();
        render(&objs, Timestamp(0), &LastChange::default()).to_xml()
    }

    #[tokio::test]
    async fn components_have_their_class_parent_children_and_states() {
        let x = demo_hardware().await;
        assert!(
            x.contains(
                "<component><name>ne=1/shelf=1/fan=1</name>\
                 <class xmlns:ianahw=\"urn:ietf:params:xml:ns:yang:iana-hardware\">ianahw:fan</class>"
            ),
            "{x}"
        );
        assert!(x.contains("<parent>ne=1/shelf=1</parent>"), "{x}");
        assert!(
            x.contains("<contains-child>ne=1/shelf=1/fan=1</contains-child>"),
            "{x}"
        );
        assert!(x.contains("<admin-state>unlocked</admin-state>"), "{x}");
        assert!(x.contains("<is-fru>true</is-fru>"), "{x}");
    }

    /// A gauge with a sensor's units is a sensor component in its entity,
    /// with the reading as sensor-data.
    #[tokio::test]
    async fn gauges_with_sensor_units_are_sensor_components() {
        let x = demo_hardware().await;
        assert!(
            x.contains("<contains-child>ne=1/shelf=1/fan=1/sensor=speed</contains-child>"),
            "{x}"
        );
        let at = x
            .find("<component><name>ne=1/shelf=1/fan=1/sensor=speed</name>")
            .unwrap_or_else(|| panic!("{x}"));
        let c = &x[at..at + x[at..].find("</component>").unwrap()];
        assert!(c.contains("ianahw:sensor</class>"), "{c}");
        assert!(c.contains("<parent>ne=1/shelf=1/fan=1</parent>"), "{c}");
        assert!(
            c.contains(
                "<sensor-data><value>4200</value><value-type>rpm</value-type>\
                 <value-scale>units</value-scale><value-precision>0</value-precision>\
                 <oper-status>ok</oper-status><units-display>rpm</units-display>"
            ),
            "{c}"
        );
        assert!(
            x.contains("<value-type>volts-DC</value-type><value-scale>milli</value-scale>"),
            "{x}"
        );
    }

    /// ietf-hardware's configuration is the entities' alias and
    /// admin-state: an edit sets the attributes with those roles; a wrong
    /// class, an unknown component, a bad state or a read-only leaf is
    /// refused with the reason.
    #[tokio::test]
    async fn alias_and_admin_state_are_configuration() {
        use crate::data::{ConfigStore, Op};
        use crate::error::Tag;
        let objs = demo_element().query(&Query::default()).await.unwrap();
        let mut store = ConfigStore::from_objects(&objs);
        let edit_of = |body: &str| {
            crate::xml::parse(
                &format!(
                    "<hardware xmlns='{HARDWARE_NS}' xmlns:ianahw='{IANA_HW_NS}'>{body}</hardware>"
                ),
                64,
            )
            .unwrap()
        };
        let fan = "<name>ne=1/shelf=1/fan=1</name>";
        edit(
            &mut store,
            &edit_of(&format!(
                "<component>{fan}<class>ianahw:fan</class><alias>left fan</alias>\
                 <state><admin-state>locked</admin-state></state></component>"
            )),
            Op::Merge,
        )
        .unwrap();
        let x = hardware_config(&store).to_xml();
        assert!(
            x.contains(
                "<component><name>ne=1/shelf=1/fan=1</name><class xmlns:ianahw=\"urn:ietf:params:xml:ns:yang:iana-hardware\">ianahw:fan</class>\
                 <alias>left fan</alias><state><admin-state>locked</admin-state></state></component>"
            ),
            "{x}"
        );
        crate::conformance::check_get_content(&x).unwrap();
        let refused = |body: &str| {
            let mut s = ConfigStore::from_objects(&objs);
            edit(&mut s, &edit_of(body), Op::Merge).unwrap_err().tag
        };
        assert_eq!(
            refused(&format!(
                "<component>{fan}<class>ianahw:cpu</class></component>"
            )),
            Tag::InvalidValue
        );
        assert_eq!(
            refused("<component><name>ne=1/shelf=1/fan=9</name><alias>x</alias></component>"),
            Tag::DataMissing
        );
        assert_eq!(
            refused(&format!(
                "<component>{fan}<state><admin-state>asleep</admin-state></state></component>"
            )),
            Tag::InvalidValue
        );
        assert_eq!(
            refused(&format!(
                "<component>{fan}<serial-num>X</serial-num></component>"
            )),
            Tag::OperationNotSupported
        );
        // Delete gives the admin-state back its default.
        edit(
            &mut store,
            &edit_of(&format!(
                "<component>{fan}<state><admin-state xmlns:nc='urn:ietf:params:xml:ns:netconf:base:1.0' nc:operation='delete'/></state></component>"
            )),
            Op::Merge,
        )
        .unwrap();
        assert!(
            hardware_config(&store)
                .to_xml()
                .contains("<alias>left fan</alias><state><admin-state>unlocked</admin-state>"),
        );
    }

    /// A unit inserted or removed is hardware-state-change; nothing else is.
    #[test]
    fn the_table_change_indication_is_hardware_state_change() {
        use halyard_cluster_model::port::Notification;
        use halyard_cluster_model::{ObjectName, SCHEMA};
        let note = |class: &str| {
            let class = SCHEMA.class(class).unwrap();
            Notification {
                seq: 1,
                time: Timestamp(1),
                class,
                source: ObjectName::parse("ne=1/shelf=1").unwrap(),
                severity: None,
                values: vec![Value::Absent; class.attributes.len()],
            }
        };
        let e = notification(&note(physical::TABLE_CHANGED), None).unwrap();
        assert_eq!(
            e.to_xml(),
            "<hardware-state-change xmlns=\"urn:ietf:params:xml:ns:yang:ietf-hardware\"/>"
        );
        let other = SCHEMA
            .classes
            .iter()
            .find(|c| c.is_indication && c.name != physical::TABLE_CHANGED)
            .unwrap();
        assert!(notification(&note(other.name), None).is_none());
    }

    /// An entity's operational state change is oper-enabled or -disabled
    /// with its admin-state; a change that is not the operational state's,
    /// or of no physical entity, is neither.
    #[tokio::test]
    async fn an_entitys_oper_change_is_oper_enabled_or_disabled() {
        use halyard_cluster_model::model::{OperState, StateChangedPatch};
        use halyard_cluster_model::port::{InformationModel, Notification};
        use halyard_cluster_model::{ObjectName, SCHEMA};
        let model = demo_element();
        let fan = ObjectName::parse("ne=1/shelf=1/fan=1").unwrap();
        let class = SCHEMA.class(physical::STATE_CHANGED).unwrap();
        let note = |oper: OperState, changed: bool| {
            let patch = StateChangedPatch::new()
                .component(fan.as_str())
                .oper_state(oper)
                .oper_state_changed(changed);
            let mut values = vec![Value::Absent; class.attributes.len()];
            for (a, v) in patch.values() {
                values[class.attribute(a).unwrap().0] = v.clone();
            }
            Notification {
                seq: 1,
                time: Timestamp(1),
                class,
                source: fan.clone(),
                severity: None,
                values,
            }
        };
        let n = note(OperState::Disabled, true);
        let entity = entity_of(&model, &n).await;
        assert!(entity.is_some());
        assert_eq!(
            notification(&n, entity.as_ref()).unwrap().to_xml(),
            "<hardware-state-oper-disabled xmlns=\"urn:ietf:params:xml:ns:yang:ietf-hardware\"><name>ne=1/shelf=1/fan=1</name><admin-state>unlocked</admin-state></hardware-state-oper-disabled>"
        );
        let n = note(OperState::Enabled, true);
        assert!(
            notification(&n, entity.as_ref())
                .unwrap()
                .to_xml()
                .starts_with("<hardware-state-oper-enabled ")
        );
        let n = note(OperState::Enabled, false);
        assert!(entity_of(&model, &n).await.is_none());
        assert!(notification(&n, entity.as_ref()).is_none());
        // Not a physical entity (a software component, say).
        let objs = model
            .query(&halyard_cluster_model::port::Query::default())
            .await
            .unwrap();
        let soft = objs.iter().find(|o| physical::class(o).is_none()).unwrap();
        let mut n = note(OperState::Enabled, true);
        n.source = soft.name.clone();
        assert!(entity_of(&model, &n).await.is_none());
        assert!(notification(&n, Some(soft)).is_none());
    }

    /// libyang accepts the rendering against the published module.
    #[tokio::test]
    async fn yanglint_accepts_the_hardware_tree() {
        crate::conformance::check_get_content(&demo_hardware().await).unwrap();
    }
}
