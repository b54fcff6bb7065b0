//! ietf-system (RFC 7317), the parts an NE agent has: `/system` contact,
//! hostname and location (the element's attributes with the `contact`,
//! `hostname` and `location` roles, as SNMPv2-MIB's sysContact, sysName
//! and sysLocation), and `/system-state` platform and clock. They are
//! configuration: in running and candidate, and written by edit-config
//! ([`edit`], the same attributes as halyard-cluster's leaves and SNMP);
//! `/system/clock` `timezone-utc-offset` is the element's attribute with
//! that role (the state clock's times are shown at it); the rest of
//! `/system` (time-zone names, NTP, DNS, users) is not configurable here. The RPCs system-restart and system-shutdown (admin
//! role only) are the agent's ordered shutdown, dispatched in
//! `session::dispatch`; set-current-datetime answers
//! operation-not-supported (the host's clock is its operating system's).

use halyard_cluster_model::meta::Role;
use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::{Timestamp, Value};

use crate::xml::Element;

/// RFC 7317's namespace.
pub const SYSTEM_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-system";

fn leaf(name: &str, text: impl Into<String>) -> Element {
    Element::with_text(SYSTEM_NS, name, text)
}

/// The root object's attribute with `role`.
fn root_value(objects: &[ManagedObject], role: Role) -> Option<&Value> {
    objects
        .iter()
        .find(|o| o.parent_index == 0 && o.class.attribute_by_role(role).is_some())
        .and_then(|o| o.by_role(role))
}

/// The root object's attribute with `role`, as text.
fn root_text(objects: &[ManagedObject], role: Role) -> Option<String> {
    root_value(objects, role)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Whether `s` is an inet:domain-name (RFC 6991): dot-separated labels
/// of letters, digits, '-' and '_' (not starting with '-', ending with a
/// letter or digit), at most 63 characters each and 253 in all, or ".".
pub fn is_domain_name(s: &str) -> bool {
    if s == "." {
        return true;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    !body.is_empty()
        && s.len() <= 253
        && body.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
                && b[0] != b'-'
                && b[b.len() - 1].is_ascii_alphanumeric()
        })
}

/// `/system`: hostname, contact and location of the element (a host name
/// set to something that is no domain name, as sysName may be, is not
/// shown here).
pub fn system(objects: &[ManagedObject]) -> Element {
    let mut s = Element::new(SYSTEM_NS, "system");
    // An empty one is not set.
    if let Some(c) = root_text(objects, Role::Contact).filter(|c| !c.is_empty()) {
        s.push(leaf("contact", c));
    }
    if let Some(h) = root_text(objects, Role::Hostname).filter(|h| is_domain_name(h)) {
        s.push(leaf("hostname", h));
    }
    if let Some(l) = root_text(objects, Role::Location).filter(|l| !l.is_empty()) {
        s.push(leaf("location", l));
    }
    if let Some(c) = clock(utc_offset(objects)) {
        s.push(c);
    }
    s
}

/// The element's offset from UTC in minutes (0: UTC, or none set).
pub fn utc_offset(objects: &[ManagedObject]) -> i32 {
    match root_value(objects, Role::TimezoneUtcOffset) {
        Some(Value::I32(m)) => *m,
        _ => 0,
    }
}

/// `clock` of `/system`: the offset, when one is set (0 is UTC, the
/// default, shown as nothing configured).
fn clock(offset: i32) -> Option<Element> {
    (offset != 0).then(|| {
        let mut c = Element::new(SYSTEM_NS, "clock");
        c.push(leaf("timezone-utc-offset", offset.to_string()));
        c
    })
}

/// `t` as a date-and-time at `offset` minutes from UTC (`Z` at 0).
pub fn local_time(t: Timestamp, offset: i32) -> String {
    if offset == 0 {
        return t.to_string();
    }
    let local = Timestamp(t.0 + i64::from(offset) * 60_000);
    let text = local.to_string();
    let sign = if offset < 0 { '-' } else { '+' };
    let m = offset.unsigned_abs();
    format!(
        "{}{sign}{:02}:{:02}",
        text.trim_end_matches('Z'),
        m / 60,
        m % 60
    )
}

/// The element's configuration entry (the root, with the contact and
/// location roles) in a configuration store.
fn root_entry(
    store: &crate::data::ConfigStore,
) -> Option<(
    &halyard_cluster_model::ObjectName,
    &crate::data::ConfigEntry,
)> {
    store
        .entries
        .iter()
        .find(|(n, e)| n.parent().is_none() && e.class.attribute_by_role(Role::Contact).is_some())
}

/// `/system` of a configuration datastore: the element's contact and location.
pub fn system_config(store: &crate::data::ConfigStore) -> Option<Element> {
    let (_, e) = root_entry(store)?;
    let mut s = Element::new(SYSTEM_NS, "system");
    for (role, name) in [
        (Role::Contact, "contact"),
        (Role::Hostname, "hostname"),
        (Role::Location, "location"),
    ] {
        // An empty one is not set.
        if let Some(Value::Str(v)) = e
            .class
            .attribute_by_role(role)
            .and_then(|(i, _)| e.values.get(i))
            && !v.is_empty()
            && (role != Role::Hostname || is_domain_name(v))
        {
            s.push(leaf(name, v.clone()));
        }
    }
    if let Some(Value::I32(m)) = e
        .class
        .attribute_by_role(Role::TimezoneUtcOffset)
        .and_then(|(i, _)| e.values.get(i))
        && let Some(c) = clock(*m)
    {
        s.push(c);
    }
    Some(s)
}

/// Applies an edit-config of `/system` to a configuration store: contact
/// and location set the element's attributes (merge, replace, create);
/// delete and remove give them back their default (empty). Anything else
/// of ietf-system is not configurable here.
pub fn edit(
    store: &mut crate::data::ConfigStore,
    system: &Element,
    op: crate::data::Op,
) -> Result<(), crate::error::RpcError> {
    use crate::error::{RpcError, Tag};
    let Some(root) = root_entry(store).map(|(n, _)| n.clone()) else {
        return Err(RpcError::application(
            Tag::DataMissing,
            "the element has no configuration entry",
        ));
    };
    let entry = store.entries.get_mut(&root).expect("root entry");
    for child in &system.children {
        if child.ns == SYSTEM_NS && child.name == "clock" {
            edit_clock(entry, child, crate::data::op_of(child, op)?)?;
            continue;
        }
        let role = match (child.ns.as_str(), child.name.as_str()) {
            (SYSTEM_NS, "contact") => Role::Contact,
            (SYSTEM_NS, "hostname") => Role::Hostname,
            (SYSTEM_NS, "location") => Role::Location,
            _ => {
                return Err(RpcError::application(
                    Tag::OperationNotSupported,
                    format!(
                        "/system/{} is not configurable on this server (contact, hostname and location are)",
                        child.name
                    ),
                )
                .with_info("bad-element", child.name.clone()));
            }
        };
        let op = crate::data::op_of(child, op)?;
        let Some((i, a)) = entry.class.attribute_by_role(role) else {
            continue;
        };
        let current = match &entry.values[i] {
            Value::Str(s) => s.clone(),
            _ => String::new(),
        };
        let path = format!("/system/{}", child.name);
        let value = match leaf_edit(op, !current.is_empty(), child, &path)? {
            None => continue,
            Some(None) => a.default.unwrap_or("").to_string(),
            Some(Some(text)) => text.to_string(),
        };
        if let halyard_cluster_model::AttrType::String { max_len: m } = a.ty
            && value.chars().count() > m as usize
        {
            return Err(RpcError::application(
                Tag::InvalidValue,
                format!("/system/{} is longer than {m} characters", child.name),
            )
            .with_info("bad-element", child.name.clone()));
        }
        if role == Role::Hostname && !value.is_empty() && !is_domain_name(&value) {
            return Err(RpcError::application(
                Tag::InvalidValue,
                format!("/system/hostname '{value}' is no domain name"),
            )
            .with_info("bad-element", child.name.clone()));
        }
        entry.values[i] = Value::Str(value);
    }
    Ok(())
}

/// What an edit operation makes of a leaf of `/system` at `path`: `None`
/// leaves it, `Some(None)` gives it back its default, `Some(Some(text))`
/// sets it. Deleting an unset leaf or creating a set one is an error.
fn leaf_edit<'a>(
    op: crate::data::Op,
    is_set: bool,
    leaf: &'a Element,
    path: &str,
) -> Result<Option<Option<&'a str>>, crate::error::RpcError> {
    use crate::data::Op;
    use crate::error::{RpcError, Tag};
    let refuse = |tag, why: &str| {
        Err(RpcError::application(tag, format!("{path} is {why}"))
            .with_info("bad-element", leaf.name.clone()))
    };
    match op {
        Op::None => Ok(None),
        Op::Delete if !is_set => refuse(Tag::DataMissing, "not set"),
        Op::Create if is_set => refuse(Tag::DataExists, "already set"),
        Op::Delete | Op::Remove => Ok(Some(None)),
        Op::Merge | Op::Replace | Op::Create => Ok(Some(Some(leaf.trimmed()))),
    }
}

/// Applies `/system/clock` to the element's entry: `timezone-utc-offset`
/// is its attribute with that role (-1500..1500 minutes); delete or
/// remove (of the clock or the leaf) gives back UTC. `timezone-name` is
/// a feature this server does not have (no time-zone database).
fn edit_clock(
    entry: &mut crate::data::ConfigEntry,
    clock: &Element,
    op: crate::data::Op,
) -> Result<(), crate::error::RpcError> {
    use crate::data::Op;
    use crate::error::{RpcError, Tag};
    let Some((i, _)) = entry.class.attribute_by_role(Role::TimezoneUtcOffset) else {
        return Err(RpcError::application(
            Tag::OperationNotSupported,
            "/system/clock is not configurable on this server",
        ));
    };
    let current = match entry.values[i] {
        Value::I32(m) => m,
        _ => 0,
    };
    if matches!(op, Op::Delete | Op::Remove) {
        if op == Op::Delete && current == 0 {
            return Err(
                RpcError::application(Tag::DataMissing, "/system/clock is not set")
                    .with_info("bad-element", "clock"),
            );
        }
        entry.values[i] = Value::I32(0);
        return Ok(());
    }
    for c in &clock.children {
        if c.ns != SYSTEM_NS || c.name != "timezone-utc-offset" {
            return Err(RpcError::application(
                Tag::OperationNotSupported,
                format!(
                    "/system/clock/{} is not configurable on this server (timezone-utc-offset is)",
                    c.name
                ),
            )
            .with_info("bad-element", c.name.clone()));
        }
        let path = "/system/clock/timezone-utc-offset";
        let value = match leaf_edit(crate::data::op_of(c, op)?, current != 0, c, path)? {
            None => continue,
            Some(None) => 0,
            Some(Some(text)) => match text.parse::<i32>() {
                Ok(m) if (-1500..=1500).contains(&m) => m,
                _ => {
                    return Err(RpcError::application(
                        Tag::InvalidValue,
                        format!("timezone-utc-offset '{text}' is not -1500..1500 minutes"),
                    )
                    .with_info("bad-element", c.name.clone()));
                }
            },
        };
        entry.values[i] = Value::I32(value);
    }
    Ok(())
}

/// The kernel's own words (`uname -s`, `-r`, `-v`), from /proc.
fn kernel(file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{file}"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `/system-state`: the platform this node runs on, the time now and
/// when the agent (the system that `system-restart` restarts) started,
/// at the element's offset from UTC.
pub fn system_state(started: Timestamp, offset: i32) -> Element {
    let mut st = Element::new(SYSTEM_NS, "system-state");
    let mut p = Element::new(SYSTEM_NS, "platform");
    if let Some(v) = kernel("ostype") {
        p.push(leaf("os-name", v));
    }
    if let Some(v) = kernel("osrelease") {
        p.push(leaf("os-release", v));
    }
    if let Some(v) = kernel("version") {
        p.push(leaf("os-version", v));
    }
    p.push(leaf("machine", std::env::consts::ARCH));
    st.push(p);
    let mut c = Element::new(SYSTEM_NS, "clock");
    c.push(leaf(
        "current-datetime",
        local_time(Timestamp::now(), offset),
    ));
    c.push(leaf("boot-datetime", local_time(started, offset)));
    st.push(c);
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::port::{InformationModel, Query};

    #[test]
    fn times_at_an_offset() {
        // 2026-12-06T22:00:00Z
        let t = Timestamp(1_796_594_400_000);
        assert_eq!(local_time(t, 0), "2026-12-06T22:00:00.000Z");
        assert_eq!(local_time(t, 90), "2026-12-06T23:30:00.000+01:30");
        assert_eq!(local_time(t, -300), "2026-12-06T17:00:00.000-05:00");
        assert_eq!(local_time(t, 180), "2026-12-07T01:00:00.000+03:00");
    }

    #[test]
    fn host_names_are_domain_names() {
        for ok in [
            "ne1",
            "ne1.example.net",
            "ne1.example.net.",
            ".",
            "a",
            "x_1-b",
        ] {
            assert!(is_domain_name(ok), "{ok}");
        }
        for bad in ["", "core router", "-ne1", "ne1-", "a..b", "ne1/shelf=1"] {
            assert!(!is_domain_name(bad), "{bad}");
        }
        assert!(!is_domain_name(&"a".repeat(64)));
    }

    /// libyang accepts both trees against the published ietf-system.
    #[tokio::test]
    async fn yanglint_accepts_system_and_system_state() {
        let objs = demo_element().query(&Query::default()).await.unwrap();
        let xml = system(&objs).to_xml() + &system_state(Timestamp(0), 90).to_xml();
        assert!(xml.contains("<machine>"), "{xml}");
        crate::conformance::check_get_content(&xml).unwrap();
    }
}
