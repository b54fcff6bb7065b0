//! Tests of the data trees: rendering, filters, edits and the diff.

use super::*;
use crate::xml::{self, Element};
use crate::{BASE_NS, schema_ns};
use halyard_cluster_model::ObjectName;
use halyard_cluster_model::memory::demo_element;
use halyard_cluster_model::port::{Change, ManagedObject};
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
