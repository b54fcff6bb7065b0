//! ietf-netconf-acm (RFC 8341) `/nacm` over the element's access model
//! (`halyard_cluster_model::access`): `enable-nacm` and the three defaults
//! are the element's `AccessControl`, `ReadDefault`, `WriteDefault` and
//! `ExecDefault`; each `group` an `AccessGroup`; each `rule-list` an
//! `AccessRuleList` and its rules `AccessRule`s, ordered by their `Order`.
//! An edit of `/nacm` is an edit of those objects, so it is committed,
//! replicated, kept and enforced on every face like any configuration.
//!
//! Groups come from the configuration too: a user's role (viewer, operator,
//! admin) is a group the face that authenticated it supplies, as
//! `enable-external-groups` allows; it cannot be turned off here.

use halyard_cluster_model::access;
use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::{ClassMeta, ObjectName, SCHEMA, Value};

use crate::data::{ConfigEntry, ConfigStore, Op, op_of};
use crate::error::{RpcError, Tag};
use crate::xml::Element;

/// RFC 8341's namespace.
pub const NACM_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm";

use access::names::{self as n, GROUP, LIST, RULE};

/// The root's attributes of the top-level leaves, with their YANG names.
const SETTINGS: &[(&str, &str)] = &[
    ("enable-nacm", n::ENABLED),
    ("read-default", n::READ_DEFAULT),
    ("write-default", n::WRITE_DEFAULT),
    ("exec-default", n::EXEC_DEFAULT),
];

fn leaf(name: &str, text: impl Into<String>) -> Element {
    Element::with_text(NACM_NS, name, text)
}

fn text(o: &ManagedObject, attr: &str) -> String {
    o.get(attr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn order(o: &ManagedObject) -> (u32, u32) {
    match o.get(n::ORDER) {
        Some(Value::U32(n)) => (*n, o.index),
        _ => (0, o.index),
    }
}

/// The value of an attribute as its YANG text (booleans, the action
/// enumeration).
fn yang_text(o: &ManagedObject, attr: &str) -> Option<String> {
    let (_, a) = o.class.attribute(attr)?;
    let v = o.get(attr)?;
    if matches!(v, Value::Absent) {
        return None;
    }
    Some(v.render(&a.ty))
}

/// `/nacm` of the objects: the settings, groups and rule lists in their
/// order; with `counters` (denied operations, denied data writes), the
/// operational view.
pub fn render(objects: &[ManagedObject], counters: Option<(u64, u64, u64)>) -> Element {
    let mut top = Element::new(NACM_NS, "nacm");
    if let Some(root) = objects
        .iter()
        .find(|o| o.parent_index == 0 && o.class.name == n::ROOT)
    {
        for (yang, attr) in SETTINGS {
            if let Some(v) = yang_text(root, attr) {
                top.push(leaf(yang, v));
            }
        }
    }
    top.push(leaf("enable-external-groups", "true"));
    if let Some((operations, writes, notifications)) = counters {
        top.push(leaf("denied-operations", (operations as u32).to_string()));
        top.push(leaf("denied-data-writes", (writes as u32).to_string()));
        top.push(leaf(
            "denied-notifications",
            (notifications as u32).to_string(),
        ));
    }
    let mut groups = Element::new(NACM_NS, "groups");
    let mut gs: Vec<&ManagedObject> = objects.iter().filter(|o| o.class.name == GROUP).collect();
    gs.sort_by(|a, b| a.name.cmp(&b.name));
    for g in gs {
        let mut e = Element::new(NACM_NS, "group");
        e.push(leaf("name", g.name.leaf().1));
        for u in text(g, n::USERS).split_whitespace() {
            e.push(leaf("user-name", u));
        }
        groups.push(e);
    }
    top.push(groups);
    let mut lists: Vec<&ManagedObject> = objects.iter().filter(|o| o.class.name == LIST).collect();
    lists.sort_by_key(|o| order(o));
    for l in lists {
        let mut e = Element::new(NACM_NS, "rule-list");
        e.push(leaf("name", l.name.leaf().1));
        for g in text(l, n::GROUPS).split_whitespace() {
            e.push(leaf("group", g));
        }
        let mut rules: Vec<&ManagedObject> = objects
            .iter()
            .filter(|o| o.class.name == RULE && o.name.parent().as_ref() == Some(&l.name))
            .collect();
        rules.sort_by_key(|o| order(o));
        for r in rules {
            let mut re = Element::new(NACM_NS, "rule");
            re.push(leaf("name", r.name.leaf().1));
            let module = text(r, n::MODULE);
            re.push(leaf(
                "module-name",
                if module.is_empty() {
                    "*".into()
                } else {
                    module
                },
            ));
            for (yang, attr) in [
                ("rpc-name", n::RPC),
                ("notification-name", n::NOTIFICATION),
                ("path", n::PATH),
            ] {
                let t = text(r, attr);
                if !t.is_empty() {
                    re.push(leaf(yang, t));
                    break;
                }
            }
            let ops = text(r, n::OPERATIONS);
            re.push(leaf(
                "access-operations",
                if ops.trim().is_empty() {
                    "*".into()
                } else {
                    ops
                },
            ));
            re.push(leaf(
                "action",
                yang_text(r, n::ACTION).unwrap_or_else(|| "deny".into()),
            ));
            let comment = text(r, n::COMMENT);
            if !comment.is_empty() {
                re.push(leaf("comment", comment));
            }
            e.push(re);
        }
        top.push(e);
    }
    top
}

/// `/nacm` of a configuration datastore.
pub fn nacm_config(store: &ConfigStore) -> Element {
    render(&store.objects(), None)
}

fn bad(tag: Tag, what: &str, msg: String) -> RpcError {
    RpcError::application(tag, msg).with_info("bad-element", what)
}

fn class(name: &str) -> Result<&'static ClassMeta, RpcError> {
    SCHEMA
        .class(name)
        .ok_or_else(|| RpcError::operation_failed(format!("the schema has no {name}")))
}

fn set(entry: &mut ConfigEntry, attr: &str, text: &str, what: &str) -> Result<(), RpcError> {
    let (i, a) = entry
        .class
        .attribute(attr)
        .ok_or_else(|| RpcError::operation_failed(format!("{} has no {attr}", entry.class.name)))?;
    entry.values[i] = Value::parse(&a.ty, text)
        .map_err(|e| bad(Tag::InvalidValue, what, format!("{what} '{text}': {e}")))?;
    Ok(())
}

fn get_text(entry: &ConfigEntry, attr: &str) -> String {
    entry
        .class
        .attribute(attr)
        .and_then(|(i, _)| entry.values[i].as_str())
        .unwrap_or("")
        .to_string()
}

/// Entries of `class` directly under `parent`.
fn children(store: &ConfigStore, parent: &ObjectName, class: &ClassMeta) -> Vec<ObjectName> {
    store
        .entries
        .iter()
        .filter(|(n, e)| n.parent().as_ref() == Some(parent) && e.class.name == class.name)
        .map(|(n, _)| n.clone())
        .collect()
}

/// Removes `name` and everything under it.
fn remove_subtree(store: &mut ConfigStore, name: &ObjectName) {
    store.entries.retain(|n, _| !n.is_within(name) && n != name);
}

/// An entry's place among its siblings.
fn order_of(e: &ConfigEntry) -> Option<u32> {
    let (i, _) = e.class.attribute(n::ORDER)?;
    match e.values[i] {
        Value::U32(n) => Some(n),
        _ => None,
    }
}

/// The next place after the siblings' (a new list or rule is appended).
fn next_order(store: &ConfigStore, siblings: &[ObjectName]) -> u32 {
    siblings
        .iter()
        .filter_map(|n| store.entries.get(n))
        .filter_map(order_of)
        .max()
        .map_or(1, |m| m.saturating_add(1))
}

/// What an edit of a keyed list entry finds: its name and whether it
/// exists, after the operation's checks (delete of a missing entry,
/// create of an existing one).
fn keyed(
    store: &ConfigStore,
    parent: &ObjectName,
    class: &ClassMeta,
    e: &Element,
    op: Op,
) -> Result<(ObjectName, bool), RpcError> {
    let key = e
        .find(NACM_NS, "name")
        .map(|n| n.trimmed().to_string())
        .ok_or_else(|| {
            bad(
                Tag::MissingElement,
                "name",
                format!("a {} needs its name", e.name),
            )
        })?;
    let rdn = class.rdn.unwrap_or("x");
    let name = parent.child(rdn, &key).map_err(|_| {
        bad(
            Tag::InvalidValue,
            "name",
            format!(
                "{} name '{key}': use letters, digits, '.', '-' and '_'",
                e.name
            ),
        )
    })?;
    let exists = store.entries.contains_key(&name);
    match op {
        Op::Delete | Op::None if !exists => Err(bad(
            Tag::DataMissing,
            &e.name,
            format!("there is no {} '{key}'", e.name),
        )),
        Op::Create if exists => Err(bad(
            Tag::DataExists,
            &e.name,
            format!("{} '{key}' exists", e.name),
        )),
        _ => Ok((name, exists)),
    }
}

/// A leaf-list's new value (space-separated): the given items merged into
/// `old` (a replace passes an empty `old`); an item with `delete` or
/// `remove` goes.
fn leaf_list(old: &str, items: &[&Element]) -> Result<String, RpcError> {
    let mut v: Vec<String> = old.split_whitespace().map(str::to_string).collect();
    for item in items {
        let t = item.trimmed().to_string();
        match op_of(item, Op::Merge)? {
            Op::Delete if !v.contains(&t) => {
                return Err(bad(
                    Tag::DataMissing,
                    &item.name,
                    format!("there is no {} '{t}'", item.name),
                ));
            }
            Op::Delete | Op::Remove => v.retain(|x| *x != t),
            Op::None => {}
            _ => {
                if t.is_empty() || t.contains(char::is_whitespace) {
                    return Err(bad(
                        Tag::InvalidValue,
                        &item.name,
                        format!("{} '{t}' is empty or has a space", item.name),
                    ));
                }
                if !v.contains(&t) {
                    v.push(t);
                }
            }
        }
    }
    Ok(v.join(" "))
}

/// Applies an edit-config of `/nacm` to a configuration store.
pub fn edit(store: &mut ConfigStore, nacm: &Element, op: Op) -> Result<(), RpcError> {
    let Some(root) = store
        .entries
        .iter()
        .find(|(n, e)| n.parent().is_none() && e.class.attribute(n::ENABLED).is_some())
        .map(|(n, _)| n.clone())
    else {
        return Err(RpcError::application(
            Tag::DataMissing,
            "the element has no configuration entry",
        ));
    };
    let (group_c, list_c, rule_c) = (class(GROUP)?, class(LIST)?, class(RULE)?);
    let op = op_of(nacm, op)?;
    if matches!(op, Op::Delete | Op::Remove | Op::Replace) {
        for n in children(store, &root, group_c)
            .into_iter()
            .chain(children(store, &root, list_c))
        {
            remove_subtree(store, &n);
        }
        let defaults = ConfigEntry::fresh(store.entries[&root].class);
        let entry = store.entries.get_mut(&root).expect("root entry");
        for (_, attr) in SETTINGS {
            if let Some((i, _)) = entry.class.attribute(attr) {
                entry.values[i] = defaults.values[i].clone();
            }
        }
        if op != Op::Replace {
            return Ok(());
        }
    }
    let child_op = if op == Op::Replace { Op::Merge } else { op };
    for child in &nacm.children {
        if child.ns != NACM_NS {
            return Err(bad(
                Tag::UnknownElement,
                &child.name,
                format!("'{}' is no element of nacm", child.name),
            ));
        }
        let cop = op_of(child, child_op)?;
        match child.name.as_str() {
            name @ ("enable-nacm" | "read-default" | "write-default" | "exec-default") => {
                let attr = SETTINGS.iter().find(|(y, _)| *y == name).expect("listed").1;
                let entry = store.entries.get_mut(&root).expect("root entry");
                match cop {
                    Op::None => {}
                    Op::Delete | Op::Remove => {
                        let defaults = ConfigEntry::fresh(entry.class);
                        if let Some((i, _)) = entry.class.attribute(attr) {
                            entry.values[i] = defaults.values[i].clone();
                        }
                    }
                    _ => set(entry, attr, child.trimmed(), name)?,
                }
            }
            "enable-external-groups" => {
                if !matches!(cop, Op::Delete | Op::Remove | Op::None) && child.trimmed() != "true" {
                    return Err(bad(
                        Tag::OperationNotSupported,
                        &child.name,
                        "users' roles are groups their face supplies: external groups stay enabled"
                            .into(),
                    ));
                }
            }
            "denied-operations" | "denied-data-writes" | "denied-notifications" => {
                return Err(bad(
                    Tag::InvalidValue,
                    &child.name,
                    format!("{} is state, not configuration", child.name),
                ));
            }
            "groups" => {
                if matches!(cop, Op::Delete | Op::Remove | Op::Replace) {
                    for n in children(store, &root, group_c) {
                        store.entries.remove(&n);
                    }
                    if cop != Op::Replace {
                        continue;
                    }
                }
                let gop = if cop == Op::Replace { Op::Merge } else { cop };
                for g in &child.children {
                    if g.name != "group" {
                        return Err(bad(
                            Tag::UnknownElement,
                            &g.name,
                            format!("'{}' is no element of groups", g.name),
                        ));
                    }
                    edit_group(store, &root, group_c, g, op_of(g, gop)?)?;
                }
            }
            "rule-list" => edit_list(store, &root, list_c, rule_c, child, cop)?,
            other => {
                return Err(bad(
                    Tag::UnknownElement,
                    other,
                    format!("'{other}' is no element of nacm"),
                ));
            }
        }
    }
    Ok(())
}

/// Delete, remove and none are done with the entry itself: true when
/// nothing is left to edit.
fn settled(store: &mut ConfigStore, name: &ObjectName, op: Op) -> bool {
    match op {
        Op::Delete | Op::Remove => {
            store.entries.remove(name);
            true
        }
        Op::None => true,
        _ => false,
    }
}

fn edit_group(
    store: &mut ConfigStore,
    root: &ObjectName,
    class: &'static ClassMeta,
    g: &Element,
    op: Op,
) -> Result<(), RpcError> {
    let (name, exists) = keyed(store, root, class, g, op)?;
    if settled(store, &name, op) {
        return Ok(());
    }
    if op == Op::Replace || !exists {
        store
            .entries
            .insert(name.clone(), ConfigEntry::fresh(class));
    }
    let entry = store.entries.get_mut(&name).expect("present");
    let users: Vec<&Element> = g
        .children
        .iter()
        .filter(|c| c.name == "user-name")
        .collect();
    let v = leaf_list(&get_text(entry, n::USERS), &users)?;
    set(entry, n::USERS, &v, "user-name")
}

fn edit_list(
    store: &mut ConfigStore,
    root: &ObjectName,
    class: &'static ClassMeta,
    rule_c: &'static ClassMeta,
    l: &Element,
    op: Op,
) -> Result<(), RpcError> {
    let (name, exists) = keyed(store, root, class, l, op)?;
    match op {
        Op::Delete | Op::Remove => {
            remove_subtree(store, &name);
            return Ok(());
        }
        Op::Replace if exists => remove_subtree(store, &name),
        _ => {}
    }
    if !store.entries.contains_key(&name) {
        let siblings = children(store, root, class);
        let place = next_order(store, &siblings);
        let mut e = ConfigEntry::fresh(class);
        set(&mut e, n::ORDER, &place.to_string(), "rule-list")?;
        store.entries.insert(name.clone(), e);
    }
    let rop = if op == Op::Replace { Op::Merge } else { op };
    let entry = store.entries.get_mut(&name).expect("present");
    let groups: Vec<&Element> = l.children.iter().filter(|c| c.name == "group").collect();
    if !groups.is_empty() || op == Op::Replace || !exists {
        let old = if op == Op::Replace || !exists {
            String::new()
        } else {
            get_text(entry, n::GROUPS)
        };
        let v = leaf_list(&old, &groups)?;
        set(entry, n::GROUPS, &v, "group")?;
    }
    for r in l
        .children
        .iter()
        .filter(|c| c.name != "name" && c.name != "group")
    {
        if r.name != "rule" {
            return Err(bad(
                Tag::UnknownElement,
                &r.name,
                format!("'{}' is no element of rule-list", r.name),
            ));
        }
        edit_rule(store, &name, rule_c, r, op_of(r, rop)?)?;
    }
    Ok(())
}

fn edit_rule(
    store: &mut ConfigStore,
    list: &ObjectName,
    class: &'static ClassMeta,
    r: &Element,
    op: Op,
) -> Result<(), RpcError> {
    let (name, exists) = keyed(store, list, class, r, op)?;
    if settled(store, &name, op) {
        return Ok(());
    }
    let place = if exists && op != Op::Replace {
        None
    } else if exists {
        // A replaced rule keeps its place.
        store.entries.get(&name).and_then(order_of)
    } else {
        Some(next_order(store, &children(store, list, class)))
    };
    if op == Op::Replace || !exists {
        let mut e = ConfigEntry::fresh(class);
        if let Some(p) = place {
            set(&mut e, n::ORDER, &p.to_string(), "rule")?;
        }
        store.entries.insert(name.clone(), e);
    }
    let cases = r
        .children
        .iter()
        .filter(|c| matches!(c.name.as_str(), "rpc-name" | "notification-name" | "path"))
        .count();
    if cases > 1 {
        return Err(bad(
            Tag::InvalidValue,
            "rule",
            format!(
                "rule '{}': give one of rpc-name, notification-name and path (one case of rule-type)",
                name.leaf().1
            ),
        ));
    }
    let entry = store.entries.get_mut(&name).expect("present");
    for c in &r.children {
        let removes = matches!(op_of(c, op)?, Op::Delete | Op::Remove);
        let value = if removes { "" } else { c.trimmed() };
        match c.name.as_str() {
            "name" => {}
            "module-name" => set(entry, n::MODULE, if removes { "*" } else { value }, &c.name)?,
            // One case of the rule-type choice: the others go.
            "rpc-name" | "notification-name" | "path" => {
                for (yang, attr) in [
                    ("rpc-name", n::RPC),
                    ("notification-name", n::NOTIFICATION),
                    ("path", n::PATH),
                ] {
                    let v = if yang == c.name { value } else { "" };
                    set(entry, attr, v, &c.name)?;
                }
            }
            "access-operations" => set(
                entry,
                n::OPERATIONS,
                if removes { "*" } else { value },
                &c.name,
            )?,
            "action" => set(entry, n::ACTION, value, &c.name)?,
            "comment" => set(entry, n::COMMENT, value, &c.name)?,
            other => {
                return Err(bad(
                    Tag::UnknownElement,
                    other,
                    format!("'{other}' is no element of rule"),
                ));
            }
        }
    }
    if !exists && !r.children.iter().any(|c| c.name == "action") {
        return Err(bad(
            Tag::MissingElement,
            "action",
            format!("rule '{}' needs its action (permit or deny)", name.leaf().1),
        ));
    }
    // The model checks a rule too; here the error names the element.
    let o = ManagedObject {
        class,
        index: 0,
        name: name.clone(),
        parent_index: 1,
        values: entry.values.clone(),
    };
    access::rule_of(&o).map_err(|e| bad(Tag::InvalidValue, "rule", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::port::{InformationModel, Query};

    fn edit_of(xml: &str) -> Element {
        crate::xml::parse(xml, 64).unwrap()
    }

    /// An edit of /nacm makes groups, ordered rule lists and rules, reads
    /// back as written, appends new rules after the others, and refuses
    /// what the model could not keep, naming the element.
    #[tokio::test]
    async fn nacm_edits_are_the_access_objects() {
        let objs = demo_element().query(&Query::default()).await.unwrap();
        let mut store = ConfigStore::from_objects(&objs);
        let e = edit_of(&format!(
            "<nacm xmlns='{NACM_NS}'><write-default>permit</write-default>\
             <groups><group><name>night</name><user-name>olga</user-name><user-name>otto</user-name></group></groups>\
             <rule-list><name>b-list</name><group>night</group>\
             <rule><name>z-first</name><module-name>halyard-cluster</module-name><path>/hc:element/hc:fan</path>\
             <access-operations>update delete</access-operations><action>deny</action><comment>fans</comment></rule>\
             <rule><name>a-second</name><rpc-name>lock</rpc-name><access-operations>exec</access-operations><action>permit</action></rule>\
             </rule-list><rule-list><name>a-list</name><group>*</group></rule-list></nacm>"
        ));
        edit(&mut store, &e, Op::Merge).unwrap();
        let x = nacm_config(&store).to_xml();
        assert!(x.contains("<write-default>permit</write-default>"), "{x}");
        assert!(
            x.contains("<group><name>night</name><user-name>olga</user-name><user-name>otto</user-name></group>"),
            "{x}"
        );
        // Lists and rules in the order written, not by name.
        let at = |s: &str| x.find(s).unwrap_or_else(|| panic!("{s} not in {x}"));
        assert!(at("<name>b-list</name>") < at("<name>a-list</name>"), "{x}");
        assert!(
            at("<name>z-first</name>") < at("<name>a-second</name>"),
            "{x}"
        );
        assert!(x.contains("<path>/hc:element/hc:fan</path>"), "{x}");
        assert!(
            x.contains("<access-operations>update delete</access-operations>"),
            "{x}"
        );
        // A later rule goes last; a user leaves the group.
        let e = edit_of(&format!(
            "<nacm xmlns='{NACM_NS}' xmlns:nc='urn:ietf:params:xml:ns:netconf:base:1.0'>\
             <groups><group><name>night</name><user-name nc:operation='delete'>otto</user-name></group></groups>\
             <rule-list><name>b-list</name><rule><name>0-third</name><action>deny</action></rule></rule-list></nacm>"
        ));
        edit(&mut store, &e, Op::Merge).unwrap();
        let x = nacm_config(&store).to_xml();
        assert!(!x.contains("otto"), "{x}");
        assert!(
            x.find("<name>a-second</name>").unwrap() < x.find("<name>0-third</name>").unwrap(),
            "{x}"
        );
        // The objects hold the same model the faces enforce.
        let objects = store.objects();
        let p = access::Policy::from_objects(&objects);
        assert!(p.write_default);
        assert_eq!(p.lists[0].name, "b-list");
        let names: Vec<&str> = p.lists[0].rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["z-first", "a-second", "0-third"]);
        // Refused, naming what is wrong.
        for (bad, needle) in [
            (
                "<rule-list><name>b-list</name><rule><name>r</name><rpc-name>x</rpc-name><path>/y</path><action>deny</action></rule></rule-list>",
                "one of rpc",
            ),
            (
                "<rule-list><name>b-list</name><rule><name>r</name><access-operations>write</access-operations><action>deny</action></rule></rule-list>",
                "no access operation",
            ),
            (
                "<rule-list><name>b-list</name><rule><name>r2</name></rule></rule-list>",
                "needs its action",
            ),
            (
                "<enable-external-groups>false</enable-external-groups>",
                "external groups",
            ),
            ("<denied-operations>3</denied-operations>", "state"),
            ("<read-default>maybe</read-default>", "read-default"),
        ] {
            let mut s = store.clone();
            let err = edit(
                &mut s,
                &edit_of(&format!("<nacm xmlns='{NACM_NS}'>{bad}</nacm>")),
                Op::Merge,
            )
            .unwrap_err();
            assert!(format!("{err:?}").contains(needle), "{bad}: {err:?}");
        }
        // Deleting the container empties the model and restores the defaults.
        let e = edit_of(&format!(
            "<nacm xmlns='{NACM_NS}' xmlns:nc='urn:ietf:params:xml:ns:netconf:base:1.0' nc:operation='delete'/>"
        ));
        edit(&mut store, &e, Op::Merge).unwrap();
        let p = access::Policy::from_objects(&store.objects());
        assert!(p.lists.is_empty() && p.groups.is_empty() && !p.write_default);
    }
}
