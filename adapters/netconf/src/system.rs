//! ietf-system (RFC 7317), the parts an NE agent has: `/system` contact
//! and location (the element's attributes with the `contact` and
//! `location` roles, as SNMPv2-MIB's sysContact and sysLocation), and
//! `/system-state` platform and clock. Read-only here: contact and
//! location are written through halyard-cluster's leaves (or SNMP); the
//! RPCs (set-current-datetime, system-restart, system-shutdown) answer
//! operation-not-supported.

use halyard_cluster_model::meta::Role;
use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::{Timestamp, Value};

use crate::xml::Element;

/// RFC 7317's namespace.
pub const SYSTEM_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-system";

fn leaf(name: &str, text: impl Into<String>) -> Element {
    Element::with_text(SYSTEM_NS, name, text)
}

/// The root object's attribute with `role`, as text.
fn root_text(objects: &[ManagedObject], role: Role) -> Option<String> {
    objects
        .iter()
        .find(|o| o.parent_index == 0 && o.class.attribute_by_role(role).is_some())
        .and_then(|o| o.by_role(role))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `/system`: contact and location of the element.
pub fn system(objects: &[ManagedObject]) -> Element {
    let mut s = Element::new(SYSTEM_NS, "system");
    if let Some(c) = root_text(objects, Role::Contact) {
        s.push(leaf("contact", c));
    }
    if let Some(l) = root_text(objects, Role::Location) {
        s.push(leaf("location", l));
    }
    s
}

/// The kernel's own words (`uname -s`, `-r`, `-v`), from /proc.
fn kernel(file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{file}"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `/system-state`: the platform this node runs on, the time now and
/// when the agent (the system that `system-restart` would restart) started.
pub fn system_state(started: Timestamp) -> Element {
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
    c.push(leaf("current-datetime", Timestamp::now().to_string()));
    c.push(leaf("boot-datetime", started.to_string()));
    st.push(c);
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::demo_element;
    use halyard_cluster_model::port::{InformationModel, Query};

    /// libyang accepts both trees against the published ietf-system.
    #[tokio::test]
    async fn yanglint_accepts_system_and_system_state() {
        let objs = demo_element().query(&Query::default()).await.unwrap();
        let xml = system(&objs).to_xml() + &system_state(Timestamp(0)).to_xml();
        assert!(xml.contains("<machine>"), "{xml}");
        crate::conformance::check_get_content(&xml).unwrap();
    }
}
