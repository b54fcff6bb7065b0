//! edit-config on a configuration store (RFC 6241 §7.2), and what an edit reads.

use halyard_cluster_model::memory::default_value;
use halyard_cluster_model::{ObjectName, SCHEMA, Value};

use super::{ConfigEntry, ConfigStore, TOP, entry_path, is_config_class, key_yang, object_class};
use crate::error::{ErrorType, RpcError, Tag};
use crate::xml::Element;
use crate::{BASE_NS, schema_ns};

/// The `operation` attribute of RFC 6241 §7.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Merge,
    Replace,
    Create,
    Delete,
    Remove,
    None,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "merge" => Op::Merge,
            "replace" => Op::Replace,
            "create" => Op::Create,
            "delete" => Op::Delete,
            "remove" => Op::Remove,
            "none" => Op::None,
            _ => return None,
        })
    }
}

/// The edit operation of `e`: its `operation` attribute, else the one it
/// inherits.
pub fn op_of(e: &Element, inherited: Op) -> Result<Op, RpcError> {
    match e.attr(BASE_NS, "operation") {
        None => Ok(inherited),
        Some(v) => Op::parse(v).ok_or_else(|| {
            RpcError::new(
                ErrorType::Application,
                Tag::BadAttribute,
                format!("'{v}' is not an edit operation"),
            )
            .with_info("bad-attribute", "operation")
            .with_info("bad-element", e.name.clone())
        }),
    }
}

fn app_error(tag: Tag, element: &str, message: String) -> RpcError {
    RpcError::application(tag, message).with_info("bad-element", element)
}

/// Applies the content of `<config>` to `store`. Stops at the first error
/// unless `continue_on_error`; returns every error met.
pub fn apply_edit(
    store: &mut ConfigStore,
    config: &Element,
    default_op: Op,
    continue_on_error: bool,
) -> Vec<RpcError> {
    let mut errors = Vec::new();
    let ns = schema_ns();
    for top in &config.children {
        // The standard modules' configuration, each over the element's
        // attributes and objects: ietf-system's contact, hostname and
        // location; ietf-hardware's aliases and admin-states; ietf-alarms'
        // control (the status changes kept, the alarm shelves).
        type StandardEdit = fn(&mut ConfigStore, &Element, Op) -> Result<(), RpcError>;
        let standard: Option<StandardEdit> = match (top.ns.as_str(), top.name.as_str()) {
            (crate::system::SYSTEM_NS, "system") => Some(crate::system::edit),
            (crate::hardware::HARDWARE_NS, "hardware") => Some(crate::hardware::edit),
            (crate::alarms::ALARMS_NS, "alarms") => Some(crate::alarms::edit),
            (crate::nacm::NACM_NS, "nacm") => Some(crate::nacm::edit),
            _ => None,
        };
        if let Some(edit) = standard {
            if let Err(e) = op_of(top, default_op).and_then(|op| edit(store, top, op)) {
                errors.push(e);
                if !continue_on_error {
                    return errors;
                }
            }
            continue;
        }
        if top.ns != ns {
            errors.push(
                RpcError::application(
                    Tag::UnknownNamespace,
                    format!("namespace '{}' is not supported", top.ns),
                )
                .with_info("bad-element", top.name.clone())
                .with_info("bad-namespace", top.ns.clone()),
            );
            if !continue_on_error {
                return errors;
            }
            continue;
        }
        if top.name != TOP {
            errors.push(app_error(
                Tag::UnknownElement,
                &top.name,
                format!("unknown element '{}'", top.name),
            ));
            if !continue_on_error {
                return errors;
            }
            continue;
        }
        let top_op = match op_of(top, default_op) {
            Ok(o) => o,
            Err(e) => {
                errors.push(e);
                return errors;
            }
        };
        match top_op {
            Op::Delete if store.entries.is_empty() => {
                errors.push(
                    app_error(
                        Tag::DataMissing,
                        TOP,
                        "the configuration is already empty".into(),
                    )
                    .with_path(format!("/{}:{TOP}", SCHEMA.module.prefix)),
                );
                return errors;
            }
            Op::Delete | Op::Remove => {
                store.entries.clear();
                continue;
            }
            Op::Replace => store.entries.clear(),
            _ => {}
        }
        let child_op = if top_op == Op::Replace {
            Op::Merge
        } else {
            top_op
        };
        for entry in &top.children {
            if let Err(e) = edit_entry(store, entry, child_op) {
                errors.push(e);
                if !continue_on_error {
                    return errors;
                }
            }
        }
    }
    errors
}

/// What an edit reads: the list entries it names, the subtrees it deletes,
/// or everything (container-level replace/delete/remove).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touched {
    pub names: Vec<ObjectName>,
    pub subtrees: Vec<ObjectName>,
    pub full: bool,
}

/// Finds what [`apply_edit`] will look at, so the edit can run on a
/// partial store: its cost then depends on the edit, not on the datastore.
pub fn touched(config: &Element, default_op: Op) -> Touched {
    let mut t = Touched {
        full: default_op == Op::Replace,
        ..Touched::default()
    };
    let ns = schema_ns();
    for top in &config.children {
        // An edit of /system reads the element's entry: read everything.
        if top.ns == crate::system::SYSTEM_NS
            || top.ns == crate::alarms::ALARMS_NS
            || top.ns == crate::hardware::HARDWARE_NS
            || top.ns == crate::nacm::NACM_NS
        {
            t.full = true;
            continue;
        }
        let top_op = op_of(top, default_op).unwrap_or(default_op);
        if matches!(top_op, Op::Replace | Op::Delete | Op::Remove) {
            t.full = true;
        }
        for entry in &top.children {
            let Some(class) = object_class(&entry.name) else {
                continue;
            };
            let Some(name) = entry
                .find(ns, key_yang(class))
                .and_then(|k| ObjectName::parse(k.trimmed()).ok())
            else {
                continue;
            };
            match op_of(entry, top_op).unwrap_or(top_op) {
                Op::Delete | Op::Remove => t.subtrees.push(name),
                _ => t.names.push(name),
            }
        }
    }
    t
}

fn edit_entry(store: &mut ConfigStore, entry: &Element, inherited: Op) -> Result<(), RpcError> {
    let ns = schema_ns();
    if entry.ns != ns {
        return Err(RpcError::application(
            Tag::UnknownNamespace,
            format!("namespace '{}' is not supported", entry.ns),
        )
        .with_info("bad-element", entry.name.clone())
        .with_info("bad-namespace", entry.ns.clone()));
    }
    let class = object_class(&entry.name).ok_or_else(|| {
        app_error(
            Tag::UnknownElement,
            &entry.name,
            format!("unknown element '{}'", entry.name),
        )
        .with_path(format!("/{}:{TOP}", SCHEMA.module.prefix))
    })?;
    let key = key_yang(class);
    let key_el = entry.find(ns, key).ok_or_else(|| {
        app_error(
            Tag::MissingElement,
            key,
            format!("list entry {} without its key '{key}'", class.yang_name),
        )
        .with_path(format!(
            "/{}:{TOP}/{}:{}",
            SCHEMA.module.prefix, SCHEMA.module.prefix, class.yang_name
        ))
    })?;
    let name_text = key_el.trimmed();
    let name = ObjectName::parse(name_text).map_err(|e| {
        app_error(Tag::InvalidValue, key, e.to_string()).with_path(entry_path(
            class,
            name_text,
            Some(key),
        ))
    })?;
    let path = |leaf: Option<&str>| entry_path(class, name.as_str(), leaf);
    if class.rdn != Some(name.leaf().0) {
        return Err(app_error(
            Tag::InvalidValue,
            key,
            format!(
                "a {} is named {}=..., not {}",
                class.yang_name,
                class.rdn.unwrap_or("?"),
                name
            ),
        )
        .with_path(path(Some(key))));
    }
    if !is_config_class(class) {
        return Err(app_error(
            Tag::InvalidValue,
            &entry.name,
            format!("{} is state data (config false)", class.yang_name),
        )
        .with_path(path(None)));
    }
    let op = op_of(entry, inherited)?;
    // The leaves with their operations and parsed values.
    let mut leaves = Vec::new();
    for leaf in &entry.children {
        if leaf.ns == ns && leaf.name == key {
            continue;
        }
        if leaf.ns != ns {
            return Err(RpcError::application(
                Tag::UnknownNamespace,
                format!("namespace '{}' is not supported", leaf.ns),
            )
            .with_info("bad-element", leaf.name.clone())
            .with_info("bad-namespace", leaf.ns.clone()));
        }
        let (i, a) = class
            .attributes
            .iter()
            .enumerate()
            .find(|(_, a)| a.yang_name == leaf.name)
            .ok_or_else(|| {
                app_error(
                    Tag::UnknownElement,
                    &leaf.name,
                    format!("{} has no leaf '{}'", class.yang_name, leaf.name),
                )
                .with_path(path(None))
            })?;
        if !a.writable {
            return Err(app_error(
                Tag::InvalidValue,
                a.yang_name,
                format!("{} is state data (config false)", a.yang_name),
            )
            .with_path(path(Some(a.yang_name))));
        }
        let lop = op_of(leaf, op)?;
        let value = if matches!(lop, Op::Delete | Op::Remove) {
            None
        } else {
            Some(Value::parse(&a.ty, &leaf.text).map_err(|e| {
                app_error(
                    Tag::InvalidValue,
                    a.yang_name,
                    format!("{}: {e}", a.yang_name),
                )
                .with_path(path(Some(a.yang_name)))
            })?)
        };
        leaves.push((i, lop, value));
    }
    let exists = store.entries.contains_key(&name);
    // A new or replaced entry starts from the module's defaults; a leaf
    // without one is mandatory and must be given (never an invented value).
    let defaults = || ConfigEntry {
        class,
        values: class
            .attributes
            .iter()
            .map(|a| {
                if a.writable && a.default.is_some() {
                    default_value(a)
                } else {
                    Value::Absent
                }
            })
            .collect(),
    };
    match op {
        Op::Delete | Op::Remove => {
            if !exists {
                if op == Op::Delete {
                    return Err(app_error(
                        Tag::DataMissing,
                        &entry.name,
                        format!("{name} does not exist"),
                    )
                    .with_path(path(None)));
                }
                return Ok(());
            }
            store.entries.retain(|n, _| !n.is_within(&name));
            return Ok(());
        }
        Op::Create if exists => {
            return Err(app_error(
                Tag::DataExists,
                &entry.name,
                format!("{name} already exists"),
            )
            .with_path(path(None)));
        }
        Op::Create => {
            store.entries.insert(name.clone(), defaults());
        }
        Op::Replace => {
            store.entries.insert(name.clone(), defaults());
        }
        Op::Merge => {
            if !exists {
                store.entries.insert(name.clone(), defaults());
            }
        }
        Op::None => {
            if !exists {
                if leaves
                    .iter()
                    .any(|(_, o, _)| matches!(o, Op::Merge | Op::Replace | Op::Create))
                {
                    store.entries.insert(name.clone(), defaults());
                } else {
                    return Err(app_error(
                        Tag::DataMissing,
                        &entry.name,
                        format!("{name} does not exist"),
                    )
                    .with_path(path(None)));
                }
            }
        }
    }
    let e = store.entries.get_mut(&name).expect("entry present");
    for (i, lop, value) in leaves {
        let a = &class.attributes[i];
        match (lop, value) {
            // "none": the leaf only identifies; nothing changes (RFC 6241 §7.2).
            (Op::None, _) => {}
            (Op::Create, Some(_)) if exists && op != Op::Replace => {
                return Err(app_error(
                    Tag::DataExists,
                    a.yang_name,
                    format!("{} of {name} already exists", a.yang_name),
                )
                .with_path(path(Some(a.yang_name))));
            }
            (_, Some(v)) => e.values[i] = v,
            // A deleted leaf falls back to its YANG default.
            (_, None) if a.default.is_some() => e.values[i] = default_value(a),
            (_, None) => {
                return Err(app_error(
                    Tag::DataMissing,
                    a.yang_name,
                    format!(
                        "{} of {name} is mandatory (it has no default): give a value instead",
                        a.yang_name
                    ),
                )
                .with_path(path(Some(a.yang_name))));
            }
        }
    }
    if let Some(a) = class
        .attributes
        .iter()
        .zip(&e.values)
        .find(|(a, v)| a.writable && matches!(v, Value::Absent))
        .map(|(a, _)| a)
    {
        return Err(app_error(
            Tag::DataMissing,
            a.yang_name,
            format!("{} of {name} is mandatory (it has no default)", a.yang_name),
        )
        .with_path(path(Some(a.yang_name))));
    }
    Ok(())
}
