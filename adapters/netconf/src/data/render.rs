//! Model to XML: managed objects rendered as the data tree, or written straight out.

use std::collections::BTreeMap;

use halyard_cluster_model::port::ManagedObject;
use halyard_cluster_model::{ClassMeta, Value};
use quick_xml::events::{BytesEnd, BytesStart, Event};

use super::{TOP, class_rank, is_config_class};
use crate::schema_ns;
use crate::xml::{self, Element, XmlWriter};

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

pub(super) fn render_entry(class: &ClassMeta, values: &[Value], config_only: bool) -> Element {
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
