//! Instance data of the halyard-cluster module, translated purely through
//! the schema metadata: rendering managed objects, the configuration
//! (writable attributes) as a store, edit-config on it, the diff that
//! becomes one transaction, and subtree / XPath filtering.

use halyard_cluster_model::{ClassMeta, SCHEMA};

mod edit;
mod filter;
mod render;
mod store;
#[cfg(test)]
mod tests;

pub use edit::{Op, Touched, apply_edit, op_of, touched};
pub(crate) use filter::merge;
pub use filter::{filter_wants, subtree_classes, subtree_filter, xpath_classes, xpath_wants};
pub use render::{render_objects, write_objects};
pub use store::{ConfigEntry, ConfigStore, change_path};

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
