//! Instance data of the halyard-cluster module, translated purely through
//! the schema metadata: rendering managed objects, the configuration
//! (writable attributes) as a store, edit-config on it, the diff that
//! becomes one transaction, and subtree / XPath filtering.

use std::collections::BTreeMap;

use halyard_cluster_model::memory::default_value;
use halyard_cluster_model::port::{Change, ManagedObject};
use halyard_cluster_model::{ClassMeta, ObjectName, SCHEMA, Value};
use quick_xml::events::{BytesEnd, BytesStart, Event};

use crate::error::{ErrorType, RpcError, Tag};
use crate::xml::{self, Element, XmlWriter};
use crate::{BASE_NS, schema_ns};

/// The top-level container of the module.
pub const TOP: &str = "element";

/// A class is configuration when it has a writable attribute.
pub fn is_config_class(c: &ClassMeta) -> bool {
    c.attributes.iter().any(|a| a.writable)
}

/// The YANG name of an attribute given its schema name (for error-info).
pub fn yang_attr_name(attr: &str) -> String {
    SCHEMA
        .classes
        .iter()
        .find_map(|c| c.attribute(attr).map(|(_, a)| a.yang_name.to_string()))
        .unwrap_or_else(|| attr.to_string())
}

fn key_yang(c: &ClassMeta) -> &'static str {
    c.key_index().map_or("name", |i| c.attributes[i].yang_name)
}

/// The instance-identifier of a list entry (prefix `hc`), optionally a leaf of it.
pub fn entry_path(c: &ClassMeta, name: &str, leaf: Option<&str>) -> String {
    let p = SCHEMA.module.prefix;
    let quoted = if name.contains('\'') {
        format!("\"{name}\"")
    } else {
        format!("'{name}'")
    };
    let mut s = format!(
        "/{p}:{TOP}/{p}:{}[{p}:{}={quoted}]",
        c.yang_name,
        key_yang(c)
    );
    if let Some(l) = leaf {
        s.push_str(&format!("/{p}:{l}"));
    }
    s
}

fn object_class(name: &str) -> Option<&'static ClassMeta> {
    SCHEMA.object_classes().find(|c| c.yang_name == name)
}

fn class_rank(c: &ClassMeta) -> usize {
    SCHEMA
        .object_classes()
        .position(|x| x.name == c.name)
        .unwrap_or(usize::MAX)
}

/// Renders objects into the `element` container: one list per class in
/// schema order, entries in name order. `config_only` keeps the key and
/// writable leaves of configuration classes.
pub fn render_objects<'a>(
    objects: impl IntoIterator<Item = &'a ManagedObject>,
    config_only: bool,
) -> Element {
    let mut by_class: BTreeMap<(usize, &str), &ManagedObject> = BTreeMap::new();
    for o in objects {
        if config_only && !is_config_class(o.class) {
            continue;
        }
        by_class.insert((class_rank(o.class), o.name.as_str()), o);
    }
    let ns = schema_ns();
    let mut top = Element::new(ns, TOP);
    for o in by_class.values() {
        top.push(render_entry(o.class, &o.values, config_only));
    }
    top
}

fn render_entry(class: &ClassMeta, values: &[Value], config_only: bool) -> Element {
    let ns = schema_ns();
    let mut e = Element::new(ns, class.yang_name);
    // The key first, as YANG requires.
    if let Some(k) = class.key_index() {
        e.push(Element::with_text(
            ns,
            class.attributes[k].yang_name,
            values[k].render(&class.attributes[k].ty),
        ));
    }
    for (i, a) in class.attributes.iter().enumerate() {
        if a.key || (config_only && !a.writable) {
            continue;
        }
        match values.get(i) {
            None | Some(Value::Absent) => {}
            Some(v) => e.push(Element::with_text(ns, a.yang_name, v.render(&a.ty))),
        }
    }
    e
}

/// The same XML as `render_objects(..).to_xml()`, written straight into
/// `w`: the unfiltered `<get>` of a large element skips the tree.
pub fn write_objects<'a>(
    objects: impl IntoIterator<Item = &'a ManagedObject>,
    config_only: bool,
    w: &mut XmlWriter,
) {
    let mut by_class: BTreeMap<(usize, &str), &ManagedObject> = BTreeMap::new();
    for o in objects {
        if config_only && !is_config_class(o.class) {
            continue;
        }
        by_class.insert((class_rank(o.class), o.name.as_str()), o);
    }
    let mut top = BytesStart::new(TOP);
    top.push_attribute(("xmlns", schema_ns()));
    if by_class.is_empty() {
        xml::emit(w, Event::Empty(top));
        return;
    }
    xml::emit(w, Event::Start(top));
    for o in by_class.values() {
        write_entry(o.class, &o.values, config_only, w);
    }
    xml::emit(w, Event::End(BytesEnd::new(TOP)));
}

fn write_leaf(name: &str, text: &str, w: &mut XmlWriter) {
    if text.is_empty() {
        xml::emit(w, Event::Empty(BytesStart::new(name)));
        return;
    }
    xml::emit(w, Event::Start(BytesStart::new(name)));
    xml::text(w, text, name);
    xml::emit(w, Event::End(BytesEnd::new(name)));
}

fn write_entry(class: &ClassMeta, values: &[Value], config_only: bool, w: &mut XmlWriter) {
    xml::emit(w, Event::Start(BytesStart::new(class.yang_name)));
    if let Some(k) = class.key_index() {
        let a = &class.attributes[k];
        write_leaf(a.yang_name, &values[k].render(&a.ty), w);
    }
    for (i, a) in class.attributes.iter().enumerate() {
        if a.key || (config_only && !a.writable) {
            continue;
        }
        match values.get(i) {
            None | Some(Value::Absent) => {}
            Some(v) => write_leaf(a.yang_name, &v.render(&a.ty), w),
        }
    }
    xml::emit(w, Event::End(BytesEnd::new(class.yang_name)));
}

/// One configuration entry: the writable values of an object (other
/// attributes are `Absent`), aligned with `class.attributes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub class: &'static ClassMeta,
    pub values: Vec<Value>,
}

/// A configuration datastore's content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigStore {
    pub entries: BTreeMap<ObjectName, ConfigEntry>,
}

impl ConfigStore {
    pub fn from_objects(objects: &[ManagedObject]) -> Self {
        let entries = objects
            .iter()
            .filter(|o| is_config_class(o.class))
            .map(|o| {
                let values = o
                    .class
                    .attributes
                    .iter()
                    .zip(&o.values)
                    .map(|(a, v)| if a.writable { v.clone() } else { Value::Absent })
                    .collect();
                (
                    o.name.clone(),
                    ConfigEntry {
                        class: o.class,
                        values,
                    },
                )
            })
            .collect();
        ConfigStore { entries }
    }

    pub fn render(&self) -> Element {
        let mut sorted: Vec<(&ObjectName, &ConfigEntry)> = self.entries.iter().collect();
        sorted.sort_by_key(|(n, e)| (class_rank(e.class), n.as_str()));
        let mut top = Element::new(schema_ns(), TOP);
        for (name, e) in sorted {
            let mut values = e.values.clone();
            if let Some(k) = e.class.key_index() {
                values[k] = Value::Str(name.to_string());
            }
            top.push(render_entry(e.class, &values, true));
        }
        top
    }

    /// The changes that turn `self` into `target`: deletes (outermost
    /// only), then creates (parents first), then sets.
    pub fn diff(&self, target: &ConfigStore) -> Vec<Change> {
        let mut deletes: Vec<&ObjectName> = self
            .entries
            .keys()
            .filter(|n| !target.entries.contains_key(*n))
            .collect();
        let all_deleted = deletes.clone();
        deletes.retain(|n| !all_deleted.iter().any(|d| *d != *n && n.is_within(d)));
        let mut creates: Vec<(&ObjectName, &ConfigEntry)> = target
            .entries
            .iter()
            .filter(|(n, _)| !self.entries.contains_key(*n))
            .collect();
        creates.sort_by_key(|(n, _)| (n.depth(), n.as_str()));
        let mut changes: Vec<Change> = deletes
            .into_iter()
            .map(|n| Change::Delete { object: n.clone() })
            .collect();
        for (n, e) in creates {
            changes.push(Change::Create {
                class: e.class.name.to_string(),
                object: n.clone(),
                values: e
                    .class
                    .attributes
                    .iter()
                    .zip(&e.values)
                    .filter(|(a, v)| a.writable && !matches!(v, Value::Absent))
                    .map(|(a, v)| (a.name.to_string(), v.clone()))
                    .collect(),
            });
        }
        for (n, new) in &target.entries {
            let Some(old) = self.entries.get(n) else {
                continue;
            };
            for (i, a) in new.class.attributes.iter().enumerate() {
                if a.writable && new.values[i] != old.values[i] {
                    changes.push(Change::Set {
                        object: n.clone(),
                        attribute: a.name.to_string(),
                        value: new.values[i].clone(),
                    });
                }
            }
        }
        changes
    }
}

/// The path of the object a change concerns (for error-path).
pub fn change_path(change: &Change, store: &ConfigStore) -> Option<String> {
    let name = change.object();
    let class = match change {
        Change::Create { class, .. } => SCHEMA.class(class),
        _ => store.entries.get(name).map(|e| e.class),
    }?;
    let leaf = match change {
        Change::Set { attribute, .. } => class.attribute(attribute).map(|(_, a)| a.yang_name),
        _ => None,
    };
    Some(entry_path(class, name.as_str(), leaf))
}

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

fn op_of(e: &Element, inherited: Op) -> Result<Op, RpcError> {
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

// ---------------------------------------------------------------- filters

fn ns_matches(filter_ns: &str, data_ns: &str) -> bool {
    filter_ns.is_empty() || filter_ns == data_ns
}

fn is_content_match(f: &Element) -> bool {
    f.children.is_empty() && !f.trimmed().is_empty()
}

/// RFC 6241 §6 subtree filtering of one data node against one filter node
/// with the same name.
fn subtree_node(data: &Element, filter: &Element) -> Option<Element> {
    if filter.children.is_empty() {
        if is_content_match(filter) {
            return (data.trimmed() == filter.trimmed()).then(|| data.clone());
        }
        return Some(data.clone());
    }
    let mut out = Element {
        children: Vec::new(),
        ..data.clone()
    };
    // Content-match nodes must all match.
    let mut only_content = true;
    for f in &filter.children {
        if is_content_match(f) {
            let m = data.children.iter().find(|d| {
                ns_matches(&f.ns, &d.ns) && d.name == f.name && d.trimmed() == f.trimmed()
            });
            match m {
                Some(_) => {}
                None => return None,
            }
        } else {
            only_content = false;
        }
    }
    if only_content {
        return Some(data.clone());
    }
    for d in &data.children {
        let mut selected = None;
        for f in filter
            .children
            .iter()
            .filter(|f| ns_matches(&f.ns, &d.ns) && f.name == d.name)
        {
            if is_content_match(f) {
                if d.trimmed() == f.trimmed() {
                    selected = Some(d.clone());
                }
            } else if let Some(x) = subtree_node(d, f) {
                selected = Some(x);
            }
            if selected.is_some() {
                break;
            }
        }
        if let Some(x) = selected {
            out.children.push(x);
        }
    }
    if out.children.is_empty() {
        return None;
    }
    Some(out)
}

/// Applies a subtree filter (the children of `<filter>`) to top-level data nodes.
pub fn subtree_filter(data: &[Element], filter: &[Element]) -> Vec<Element> {
    let mut out = Vec::new();
    for d in data {
        for f in filter
            .iter()
            .filter(|f| ns_matches(&f.ns, &d.ns) && f.name == d.name)
        {
            if let Some(x) = subtree_node(d, f) {
                out.push(x);
                break;
            }
        }
    }
    out
}

/// Whether a subtree filter can select anything under a top-level node.
pub fn filter_wants(filter: &[Element], ns: &str, name: &str) -> bool {
    filter
        .iter()
        .any(|f| ns_matches(&f.ns, ns) && f.name == name)
}

/// One child step of a simple location path: a name test (None: any
/// namespace, or `*`). Predicates are skipped: they never change which top
/// node or which list a step names.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    ns: Option<String>,
    name: Option<String>,
}

/// Why an expression is not a simple path (then every class is read).
#[derive(Debug)]
struct NotSimple;

fn qname(text: &str, ctx: &Element) -> Result<(Option<String>, Option<String>), NotSimple> {
    let text = text.trim();
    let (prefix, local) = match text.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, text),
    };
    let ns = match prefix {
        None => None,
        Some(p) => Some(ctx.resolve_prefix(p).ok_or(NotSimple)?.to_string()),
    };
    let name = if local == "*" {
        None
    } else if !local.is_empty()
        && !local.starts_with('.')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some(local.to_string())
    } else {
        return Err(NotSimple);
    };
    Ok((ns, name))
}

/// Splits on `sep` outside quotes and brackets.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().expect("one part").push(c);
    }
    out
}

/// The steps of an absolute path of child steps (`/a/b[...]/c`); anything
/// else (`//`, `..`, functions, a top-level `or`) is not simple.
fn parse_path(expr: &str, ctx: &Element) -> Result<Vec<Step>, NotSimple> {
    let rest = expr.trim().strip_prefix('/').ok_or(NotSimple)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    for raw in split_top(rest, '/') {
        let (name_part, mut preds) = match raw.find('[') {
            Some(i) => (&raw[..i], &raw[i..]),
            None => (raw.as_str(), ""),
        };
        let (ns, name) = qname(name_part, ctx)?;
        while !preds.is_empty() {
            let end = find_close(preds).ok_or(NotSimple)?;
            preds = preds[end + 1..].trim_start();
            if !preds.is_empty() && !preds.starts_with('[') {
                return Err(NotSimple);
            }
        }
        steps.push(Step { ns, name });
    }
    Ok(steps)
}

/// The end of the predicate that starts `s` (nested brackets, quotes).
fn find_close(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Merges a selected tree into the output, joining identical nodes.
pub(crate) fn merge(out: &mut Vec<Element>, x: Element) {
    if let Some(same) = out.iter_mut().find(|o| {
        o.ns == x.ns
            && o.name == x.name
            && o.text == x.text
            && o.children.iter().find(|c| c.name == "name")
                == x.children.iter().find(|c| c.name == "name")
    }) {
        if same.children.is_empty() || x.children.is_empty() {
            return;
        }
        for c in x.children {
            if c.children.is_empty() && same.children.contains(&c) {
                continue;
            }
            merge(&mut same.children, c);
        }
    } else {
        out.push(x);
    }
}

/// The classes (YANG list names) a subtree filter can select under the
/// `element` container; None when it may select every list.
pub fn subtree_classes(filter: &[Element]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for f in filter
        .iter()
        .filter(|f| ns_matches(&f.ns, schema_ns()) && f.name == TOP)
    {
        if f.children.is_empty() {
            return None;
        }
        for c in &f.children {
            if object_class(&c.name).is_some() && !out.contains(&c.name) {
                out.push(c.name.clone());
            }
        }
    }
    Some(out)
}

/// The classes an XPath filter can select; None when it may select all.
pub fn xpath_classes(expr: &str, ctx: &Element) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for p in split_top(expr, '|') {
        let steps = parse_path(&p, ctx).ok()?;
        let first = steps.first()?;
        if first.ns.as_ref().is_some_and(|n| n != schema_ns())
            || first.name.as_ref().is_some_and(|n| n != TOP)
        {
            continue;
        }
        let name = steps.get(1)?.name.clone()?;
        if object_class(&name).is_some() && !out.contains(&name) {
            out.push(name);
        }
    }
    Some(out)
}

/// Whether an XPath can select anything under a top-level node.
pub fn xpath_wants(expr: &str, ctx: &Element, ns: &str, name: &str) -> bool {
    split_top(expr, '|')
        .iter()
        .any(|p| match parse_path(p, ctx) {
            Ok(steps) => steps.first().is_none_or(|s| {
                s.ns.as_ref().is_none_or(|n| n == ns) && s.name.as_ref().is_none_or(|n| n == name)
            }),
            Err(_) => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::port::{InformationModel, Query};

    async fn demo() -> (Vec<ManagedObject>, ConfigStore) {
        let m = demo_element();
        let objs = m.query(&Query::default()).await.unwrap();
        let cs = ConfigStore::from_objects(&objs);
        (objs, cs)
    }

    fn parse(s: &str) -> Element {
        crate::xml::parse(s, 64).unwrap()
    }

    #[tokio::test]
    async fn render_and_subtree_filter() {
        let (objs, _) = demo().await;
        let top = render_objects(&objs, false);
        let xml = top.to_xml();
        assert!(
            xml.contains("<fan><name>ne=1/shelf=1/fan=1</name>"),
            "{xml}"
        );
        assert!(xml.contains("<speed>4200</speed>"));
        let f = parse(&format!(
            r#"<filter><element xmlns="{}"><fan><name>ne=1/shelf=1/fan=2</name><speed/></fan></element></filter>"#,
            schema_ns()
        ));
        let got = subtree_filter(std::slice::from_ref(&top), &f.children);
        assert_eq!(got.len(), 1);
        let x = got[0].to_xml();
        assert!(
            x.contains("<fan><name>ne=1/shelf=1/fan=2</name><speed>4150</speed></fan>"),
            "{x}"
        );
        assert!(!x.contains("fan=1"), "{x}");
        // No match: nothing.
        let f = parse(&format!(
            r#"<filter><element xmlns="{}"><fan><name>nope</name></fan></element></filter>"#,
            schema_ns()
        ));
        assert!(subtree_filter(&[top], &f.children).is_empty());
    }

    #[tokio::test]
    async fn direct_writer_matches_the_tree() {
        let (objs, _) = demo().await;
        let written = |objs: &[ManagedObject], config_only| {
            let mut w = xml::writer();
            write_objects(objs, config_only, &mut w);
            xml::into_string(w)
        };
        for config_only in [false, true] {
            assert_eq!(
                written(&objs, config_only),
                render_objects(&objs, config_only).to_xml()
            );
        }
        assert_eq!(written(&[], false), render_objects(&[], false).to_xml());
    }

    #[test]
    fn filters_name_the_classes_they_need() {
        let ns = schema_ns();
        let f = parse(&format!(
            r#"<filter><element xmlns="{ns}"><fan><name>x</name></fan><node/><toaster/></element></filter>"#
        ));
        assert_eq!(
            subtree_classes(&f.children),
            Some(vec!["fan".to_string(), "node".to_string()])
        );
        let f = parse(&format!(r#"<filter><element xmlns="{ns}"/></filter>"#));
        assert_eq!(subtree_classes(&f.children), None);
        let ctx = parse(&format!(r#"<filter xmlns:hc="{ns}"/>"#));
        assert_eq!(
            xpath_classes(
                "/hc:element/hc:fan[hc:name='a'] | /hc:element/hc:shelf",
                &ctx
            ),
            Some(vec!["fan".to_string(), "shelf".to_string()])
        );
        assert_eq!(xpath_classes("/hc:element", &ctx), None);
        assert_eq!(xpath_classes("/hc:element/*", &ctx), None);
    }

    #[tokio::test]
    async fn xpath_selects_by_key() {
        let (objs, _) = demo().await;
        let top = render_objects(&objs, false);
        let ctx = parse(&format!(r#"<filter xmlns:hc="{}"/>"#, schema_ns()));
        let got = crate::xpath::select(
            std::slice::from_ref(&top),
            "/hc:element/hc:fan[hc:name='ne=1/shelf=1/fan=1']/hc:speed",
            &ctx,
        )
        .unwrap();
        let x = got[0].to_xml();
        assert!(
            x.contains("<fan><name>ne=1/shelf=1/fan=1</name><speed>4200</speed></fan>"),
            "{x}"
        );
        assert!(!x.contains("fan=2"));
        let got = crate::xpath::select(
            std::slice::from_ref(&top),
            "/hc:element/hc:power-supply",
            &ctx,
        )
        .unwrap();
        assert_eq!(got[0].children.len(), 2);
        assert!(crate::xpath::select(std::slice::from_ref(&top), "/zz:element", &ctx).is_err());
        // Full XPath 1.0 (the crate's own tests cover the operators).
        let got = crate::xpath::select(
            std::slice::from_ref(&top),
            "/hc:element/hc:fan[hc:name='ne=1/shelf=1/fan=1' or contains(hc:name, 'fan=2')]/hc:name",
            &ctx,
        )
        .unwrap();
        let x = got[0].to_xml();
        assert!(x.contains("fan=1") && x.contains("fan=2"), "{x}");
        // Only simple paths narrow the classes read; the rest read all.
        assert_eq!(
            xpath_classes("/hc:element/hc:fan[hc:name='a or b']/hc:speed", &ctx),
            Some(vec!["fan".to_string()])
        );
        assert_eq!(xpath_classes("//hc:fan", &ctx), None);
        assert_eq!(xpath_classes("/hc:element/hc:fan/..", &ctx), None);
        assert!(xpath_wants("//hc:fan", &ctx, "urn:x", "other"));
        // The context node is the root: a relative path works as well.
        assert_eq!(
            crate::xpath::select(&[top], "hc:element", &ctx)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn touched_names_what_an_edit_reads() {
        let ns = schema_ns();
        let cfg = parse(&format!(
            r#"<config xmlns:nc="{BASE_NS}"><element xmlns="{ns}">
              <fan><name>ne=1/shelf=1/fan=1</name><admin-state>locked</admin-state></fan>
              <node nc:operation="delete"><name>ne=1/shelf=1/node=b</name></node>
            </element></config>"#
        ));
        let t = touched(&cfg, Op::Merge);
        assert_eq!(
            t.names,
            vec![ObjectName::parse("ne=1/shelf=1/fan=1").unwrap()]
        );
        assert_eq!(
            t.subtrees,
            vec![ObjectName::parse("ne=1/shelf=1/node=b").unwrap()]
        );
        assert!(!t.full);
        assert!(touched(&cfg, Op::Replace).full);
        let cfg = parse(&format!(
            r#"<config xmlns:nc="{BASE_NS}"><element xmlns="{ns}" nc:operation="replace"/></config>"#
        ));
        assert!(touched(&cfg, Op::Merge).full);
    }

    #[tokio::test]
    async fn edit_and_diff() {
        let (_, running) = demo().await;
        let mut cand = running.clone();
        let ns = schema_ns();
        let cfg = parse(&format!(
            r#"<config xmlns:nc="{BASE_NS}"><element xmlns="{ns}">
              <fan><name>ne=1/shelf=1/fan=1</name><admin-state>locked</admin-state></fan>
              <fan nc:operation="delete"><name>ne=1/shelf=1/fan=2</name></fan>
            </element></config>"#
        ));
        assert!(apply_edit(&mut cand, &cfg, Op::Merge, false).is_empty());
        let changes = running.diff(&cand);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            matches!(&changes[0], Change::Delete { object } if object.as_str() == "ne=1/shelf=1/fan=2")
        );
        assert!(matches!(&changes[1], Change::Set { attribute, .. } if attribute == "AdminState"));
        // create of an existing entry, delete of a missing one, state data, bad values.
        for (body, tag) in [
            (
                r#"<fan nc:operation="create"><name>ne=1/shelf=1/fan=1</name></fan>"#,
                "data-exists",
            ),
            (
                r#"<fan nc:operation="delete"><name>ne=1/shelf=1/fan=9</name></fan>"#,
                "data-missing",
            ),
            (
                r#"<fan><name>ne=1/shelf=1/fan=1</name><speed>1</speed></fan>"#,
                "invalid-value",
            ),
            (
                r#"<fan><name>ne=1/shelf=1/fan=1</name><admin-state>sideways</admin-state></fan>"#,
                "invalid-value",
            ),
            (
                r#"<fan><name>ne=1/shelf=1/fan=1</name><colour>red</colour></fan>"#,
                "unknown-element",
            ),
            (
                r#"<fan><admin-state>locked</admin-state></fan>"#,
                "missing-element",
            ),
            (r#"<toaster><name>x=1</name></toaster>"#, "unknown-element"),
            (
                r#"<fan nc:operation="frobnicate"><name>ne=1/shelf=1/fan=1</name></fan>"#,
                "bad-attribute",
            ),
        ] {
            let cfg = parse(&format!(
                r#"<config xmlns:nc="{BASE_NS}"><element xmlns="{ns}">{body}</element></config>"#
            ));
            let mut c = running.clone();
            let errs = apply_edit(&mut c, &cfg, Op::Merge, false);
            assert_eq!(errs.len(), 1, "{body}");
            assert_eq!(errs[0].tag.as_str(), tag, "{body}: {errs:?}");
        }
        // Replace of the whole container, then a create of a new node.
        let cfg = parse(&format!(
            r#"<config xmlns:nc="{BASE_NS}"><element xmlns="{ns}">
              <node nc:operation="create"><name>ne=1/shelf=1/node=c</name><admin-state>locked</admin-state></node>
            </element></config>"#
        ));
        let mut c = running.clone();
        assert!(apply_edit(&mut c, &cfg, Op::Merge, false).is_empty());
        let changes = running.diff(&c);
        assert!(
            matches!(&changes[..], [Change::Create { class, values, .. }] if class == "Node" && values.iter().any(|(a, _)| a == "AdminState"))
        );
    }
}
