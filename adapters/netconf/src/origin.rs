//! NMDA's origin (RFC 8342 §5.3.4, ietf-origin): where each configuration
//! node of the operational datastore comes from, for `<get-data>`'s
//! `with-origin` and its origin filters (RFC 8526).
//!
//! Running is what the agent applies (a commit applies synchronously), so
//! every configuration node it holds is `or:intended`. What the system
//! made without being configured is `or:system`: ietf-hardware components
//! the running datastore has no entry for, and every component's `parent`,
//! `parent-rel-pos`, `asset-id` and `uri` (they follow the hardware, no
//! configuration sets them). State nodes carry no origin and are never
//! filtered by one.

use std::collections::HashSet;

use halyard_cluster_model::SCHEMA;

use crate::alarms::ALARMS_NS;
use crate::data::is_config_class;
use crate::error::{RpcError, Tag};
use crate::hardware::HARDWARE_NS;
use crate::system::SYSTEM_NS;
use crate::xml::{Element, XMLNS_DECL};

pub const ORIGIN_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-origin";

/// The origins this server gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Intended,
    System,
}

/// ietf-origin's identities (a filter may name any of them).
const IDENTITIES: [&str; 8] = [
    "origin", "static", "dynamic", "intended", "system", "learned", "default", "unknown",
];

impl Origin {
    fn identity(self) -> &'static str {
        match self {
            Origin::Intended => "intended",
            Origin::System => "system",
        }
    }

    /// `derived-from-or-self(origin, base)` over ietf-origin's identities
    /// (`intended` derives from `static`, every one from `origin`).
    fn derived_from_or_self(self, base: &str) -> bool {
        match base {
            "origin" => true,
            "static" => self == Origin::Intended,
            b => b == self.identity(),
        }
    }
}

/// `origin-filter` (or, negated, `negated-origin-filter`): identities of
/// ietf-origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginFilter {
    pub bases: Vec<&'static str>,
    pub negated: bool,
}

impl OriginFilter {
    /// The filter of a `<get-data>`, if it has one: each value is an
    /// ietf-origin identity, its prefix resolved where it is written.
    pub fn of(op: &Element) -> Result<Option<OriginFilter>, RpcError> {
        let mut out: Option<OriginFilter> = None;
        for c in &op.children {
            let negated = match (c.ns.as_str(), c.name.as_str()) {
                (crate::NMDA_NS, "origin-filter") => false,
                (crate::NMDA_NS, "negated-origin-filter") => true,
                _ => continue,
            };
            let text = c.trimmed();
            let (ns, name) = match text.split_once(':') {
                Some((p, n)) => (c.resolve_prefix(p), n),
                None => (c.resolve_prefix(""), text),
            };
            let Some(base) = IDENTITIES
                .iter()
                .find(|i| ns == Some(ORIGIN_NS) && **i == name)
            else {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    &c.name,
                    format!("'{text}' is not an ietf-origin identity"),
                ));
            };
            let f = out.get_or_insert(OriginFilter {
                bases: Vec::new(),
                negated,
            });
            if f.negated != negated {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    &c.name,
                    "origin-filter and negated-origin-filter are two cases of one choice",
                ));
            }
            f.bases.push(base);
        }
        Ok(out)
    }

    fn matches(&self, o: Origin) -> bool {
        self.bases.iter().any(|b| o.derived_from_or_self(b)) != self.negated
    }
}

/// What running holds that decides an origin: the ietf-hardware
/// components it has an entry for.
#[derive(Debug, Default)]
pub struct Intended {
    pub components: HashSet<String>,
}

impl Intended {
    /// From running's `/hardware` (as `hardware_config` renders it).
    pub fn of(hardware: &Element) -> Intended {
        Intended {
            components: hardware
                .children
                .iter()
                .filter_map(|c| c.find(HARDWARE_NS, "name"))
                .map(|n| n.trimmed().to_string())
                .collect(),
        }
    }
}

/// What a node is, for origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    State,
    /// A configuration node: its own origin, or its parent's.
    Config {
        origin: Option<Origin>,
        key: bool,
    },
}

const fn config(origin: Option<Origin>) -> Kind {
    Kind::Config { origin, key: false }
}

/// Classifies `e`, reached by `path` (the names of its ancestors from the
/// top-level node, not including `e`).
fn kind(path: &[&str], e: &Element, intended: &Intended) -> Kind {
    let ns = e.ns.as_str();
    let name = e.name.as_str();
    match (ns, path) {
        (_, []) if ns == crate::schema_ns() && name == crate::data::TOP => {
            config(Some(Origin::Intended))
        }
        (_, [_]) if ns == crate::schema_ns() => match SCHEMA.class(name) {
            Some(c) if is_config_class(c) => config(None),
            _ => Kind::State,
        },
        (_, [_, class]) if ns == crate::schema_ns() => {
            let attr = SCHEMA
                .class(class)
                .filter(|c| is_config_class(c))
                .and_then(|c| c.attribute(name).map(|(_, a)| a));
            match attr {
                Some(a) if a.key => Kind::Config {
                    origin: None,
                    key: true,
                },
                Some(a) if a.writable => config(None),
                _ => Kind::State,
            }
        }
        (HARDWARE_NS, []) => config(Some(Origin::Intended)),
        (HARDWARE_NS, ["hardware"]) if name == "component" => {
            let configured = e
                .find(HARDWARE_NS, "name")
                .is_some_and(|n| intended.components.contains(n.trimmed()));
            config(Some(if configured {
                Origin::Intended
            } else {
                Origin::System
            }))
        }
        (HARDWARE_NS, ["hardware", "component"]) => match name {
            "name" => Kind::Config {
                origin: None,
                key: true,
            },
            "class" | "alias" | "state" => config(None),
            "parent" | "parent-rel-pos" | "asset-id" | "uri" => config(Some(Origin::System)),
            _ => Kind::State,
        },
        (HARDWARE_NS, ["hardware", "component", "state"]) if name == "admin-state" => config(None),
        (ALARMS_NS, []) => config(Some(Origin::Intended)),
        (ALARMS_NS, ["alarms"]) if name == "control" => config(None),
        (ALARMS_NS, ["alarms", "control", ..]) => config(None),
        (SYSTEM_NS, []) if name == "system" => config(Some(Origin::Intended)),
        (SYSTEM_NS, ["system", ..]) => config(None),
        _ => Kind::State,
    }
}

/// Annotates (`with`) and filters the operational datastore's top-level
/// nodes: a configuration node whose origin the filter does not select is
/// left out, unless it holds state or selected nodes (then its keys stay).
pub fn apply(
    roots: &mut Vec<Element>,
    intended: &Intended,
    with: bool,
    filter: Option<&OriginFilter>,
) {
    let mut path = Vec::new();
    roots.retain_mut(|r| walk(r, &mut path, None, intended, with, filter).0);
}

/// Returns whether to keep `e` and whether it is a key.
fn walk(
    e: &mut Element,
    path: &mut Vec<String>,
    parent: Option<Origin>,
    intended: &Intended,
    with: bool,
    filter: Option<&OriginFilter>,
) -> (bool, bool) {
    let k = {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        kind(&p, e, intended)
    };
    let Kind::Config { origin, key } = k else {
        return (true, false);
    };
    let Some(mine) = origin.or(parent) else {
        // A configuration node with no origin of its own under none: not
        // one this server makes; left as it is.
        return (true, key);
    };
    if with && origin.is_some() && Some(mine) != parent {
        e.attrs
            .push((XMLNS_DECL.into(), "or".into(), ORIGIN_NS.into()));
        e.attrs.push((
            ORIGIN_NS.into(),
            "origin".into(),
            format!("or:{}", mine.identity()),
        ));
    }
    let selected = filter.is_none_or(|f| f.matches(mine));
    if e.children.is_empty() {
        return (key || selected, key);
    }
    path.push(e.name.clone());
    let mut holds = false;
    e.children.retain_mut(|c| {
        let (keep, is_key) = walk(c, path, Some(mine), intended, with, filter);
        holds |= keep && !is_key;
        keep
    });
    path.pop();
    (selected || holds, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(ns: &str, n: &str, t: &str) -> Element {
        Element::with_text(ns, n, t)
    }

    fn hardware() -> Element {
        let mut hw = Element::new(HARDWARE_NS, "hardware");
        hw.push(leaf(HARDWARE_NS, "last-change", "2026-12-06T00:00:00Z"));
        for (name, alias) in [("ne=1/shelf=1", "main"), ("ne=1/shelf=1/fan=1", "")] {
            let mut c = Element::new(HARDWARE_NS, "component");
            c.push(leaf(HARDWARE_NS, "name", name));
            c.push(leaf(HARDWARE_NS, "class", "ianahw:chassis"));
            c.push(leaf(HARDWARE_NS, "parent-rel-pos", "1"));
            if !alias.is_empty() {
                c.push(leaf(HARDWARE_NS, "alias", alias));
            }
            c.push(leaf(HARDWARE_NS, "serial-num", "X1"));
            hw.push(c);
        }
        hw
    }

    fn intended() -> Intended {
        Intended {
            components: ["ne=1/shelf=1".to_string()].into_iter().collect(),
        }
    }

    fn origin_of(e: &Element) -> Option<&str> {
        e.attr(ORIGIN_NS, "origin")
    }

    #[test]
    fn annotations_mark_where_the_origin_changes() {
        let mut roots = vec![hardware()];
        apply(&mut roots, &intended(), true, None);
        let hw = &roots[0];
        assert_eq!(origin_of(hw), Some("or:intended"));
        let comps: Vec<&Element> = hw
            .children
            .iter()
            .filter(|c| c.name == "component")
            .collect();
        // Configured: inherits intended; its parent-rel-pos is the system's.
        assert_eq!(origin_of(comps[0]), None);
        assert_eq!(
            origin_of(comps[0].find(HARDWARE_NS, "parent-rel-pos").unwrap()),
            Some("or:system")
        );
        // Not configured: the system's, and so are its leaves.
        assert_eq!(origin_of(comps[1]), Some("or:system"));
        assert_eq!(
            origin_of(comps[1].find(HARDWARE_NS, "parent-rel-pos").unwrap()),
            None
        );
        // State carries none.
        assert_eq!(
            origin_of(hw.find(HARDWARE_NS, "last-change").unwrap()),
            None
        );
        assert_eq!(
            origin_of(comps[0].find(HARDWARE_NS, "serial-num").unwrap()),
            None
        );
    }

    #[test]
    fn filters_keep_state_and_keys() {
        let f = |bases: &[&'static str], negated| OriginFilter {
            bases: bases.to_vec(),
            negated,
        };
        let names = |roots: &[Element]| -> Vec<String> {
            roots[0]
                .children
                .iter()
                .map(|c| {
                    let mut s = c.name.clone();
                    for l in &c.children {
                        s.push(' ');
                        s.push_str(&l.name);
                    }
                    s
                })
                .collect()
        };
        // or:intended (and its base or:static): the system's config leaves go.
        for bases in [&["intended"][..], &["static"][..]] {
            let mut roots = vec![hardware()];
            apply(&mut roots, &intended(), false, Some(&f(bases, false)));
            assert_eq!(
                names(&roots),
                [
                    "last-change",
                    "component name class alias serial-num",
                    "component name serial-num"
                ]
            );
        }
        // Everything but or:system: the same.
        let mut roots = vec![hardware()];
        apply(&mut roots, &intended(), false, Some(&f(&["system"], true)));
        assert_eq!(names(&roots)[2], "component name serial-num");
        // or:system: the configured component keeps its system leaf.
        let mut roots = vec![hardware()];
        apply(&mut roots, &intended(), false, Some(&f(&["system"], false)));
        assert_eq!(
            names(&roots),
            [
                "last-change",
                "component name parent-rel-pos serial-num",
                "component name class parent-rel-pos serial-num"
            ]
        );
        // A top-level configuration node with nothing selected goes.
        let mut sys = Element::new(SYSTEM_NS, "system");
        sys.push(leaf(SYSTEM_NS, "contact", "noc"));
        let mut roots = vec![sys, Element::new(SYSTEM_NS, "system-state")];
        apply(
            &mut roots,
            &intended(),
            false,
            Some(&f(&["learned"], false)),
        );
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].name, "system-state");
    }

    /// halyard-cluster's tree: running holds it, so it is intended; a
    /// filter for the system's origin keeps each entry's key and state
    /// leaves and drops its writable ones.
    #[tokio::test]
    async fn the_schema_tree_is_intended() {
        use halyard_cluster_model::port::{InformationModel, Query};
        let objs = halyard_cluster_model::memory::demo_element()
            .query(&Query::default())
            .await
            .unwrap();
        let fan = |roots: &[Element]| -> Element {
            roots[0]
                .children
                .iter()
                .find(|e| {
                    e.children
                        .first()
                        .is_some_and(|k| k.trimmed() == "ne=1/shelf=1/fan=1")
                })
                .cloned()
                .unwrap()
        };
        let mut roots = vec![crate::data::render_objects(&objs, false)];
        let before = fan(&roots);
        apply(&mut roots, &Intended::default(), true, None);
        assert_eq!(origin_of(&roots[0]), Some("or:intended"));
        assert_eq!(origin_of(&fan(&roots)), None);
        let mut roots = vec![crate::data::render_objects(&objs, false)];
        let f = OriginFilter {
            bases: vec!["system"],
            negated: false,
        };
        apply(&mut roots, &Intended::default(), false, Some(&f));
        let after = fan(&roots);
        let class = SCHEMA.class(&before.name).unwrap();
        for leaf in &before.children {
            let (_, a) = class.attribute(&leaf.name).unwrap();
            let kept = after.children.iter().any(|c| c.name == leaf.name);
            assert_eq!(kept, a.key || !a.writable, "{}", leaf.name);
        }
    }

    #[test]
    fn filter_values_are_ietf_origin_identities() {
        let op = crate::xml::parse(
            &format!(
                r#"<get-data xmlns="{}" xmlns:or="{ORIGIN_NS}" xmlns:x="urn:x"><origin-filter>or:intended</origin-filter><origin-filter>or:learned</origin-filter></get-data>"#,
                crate::NMDA_NS
            ),
            8,
        )
        .unwrap();
        assert_eq!(
            OriginFilter::of(&op).unwrap(),
            Some(OriginFilter {
                bases: vec!["intended", "learned"],
                negated: false
            })
        );
        for bad in ["x:intended", "or:nothing", "intended"] {
            let op = crate::xml::parse(
                &format!(
                    r#"<get-data xmlns="{}" xmlns:or="{ORIGIN_NS}" xmlns:x="urn:x"><negated-origin-filter>{bad}</negated-origin-filter></get-data>"#,
                    crate::NMDA_NS
                ),
                8,
            )
            .unwrap();
            assert!(OriginFilter::of(&op).is_err(), "{bad}");
        }
    }
}
