//! XPath 1.0 filters (RFC 6241 §8.9, the `:xpath:1.0` capability) over the
//! data trees of a reply or a notification, evaluated by sxd-xpath.
//!
//! Each top-level tree (the element, netconf-state, the yang-library, ...)
//! becomes one document whose root element it is, so `/hc:element/...`
//! addresses it as RFC 6241 wants. The selected nodes are mapped back to the
//! trees: a selected element comes with its whole subtree and with its
//! ancestors, each list entry among them keeping its key, so the result is
//! valid instance data; a selected text node or attribute selects the leaf
//! that holds it.

use sxd_document::Package;
use sxd_document::dom::{ChildOfElement, Document, ParentOfChild};
use sxd_xpath::nodeset::Node;
use sxd_xpath::{Context, Factory, Value};

use crate::data::merge;
use crate::error::{RpcError, Tag};
use crate::xml::Element;

fn error(msg: String) -> RpcError {
    RpcError::protocol(Tag::InvalidValue, msg).with_info("bad-attribute", "select")
}

/// The namespace prefixes an expression uses (`hc:` in `/hc:element`),
/// outside string literals and axis names (`child::`).
fn prefixes(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
            {
                i += 1;
            }
            let is_prefix = chars.get(i) == Some(&':') && chars.get(i + 1) != Some(&':');
            if is_prefix {
                let p: String = chars[start..i].iter().collect();
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            // Skip an axis separator so its name is not read as a prefix.
            if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
                i += 2;
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Copies one of our trees into an sxd document; without namespaces when
/// `local` (an expression that names no prefix matches on local names).
fn build<'d>(doc: &Document<'d>, el: &Element, local: bool) -> sxd_document::dom::Element<'d> {
    let e = if local {
        doc.create_element(el.name.as_str())
    } else {
        doc.create_element((el.ns.as_str(), el.name.as_str()))
    };
    if !el.text.is_empty() {
        e.append_child(doc.create_text(&el.text));
    }
    for c in &el.children {
        e.append_child(build(doc, c, local));
    }
    e
}

/// The element-child positions from the document's root element down to
/// `el` (empty for the root element itself).
fn path_of(mut el: sxd_document::dom::Element<'_>) -> Vec<usize> {
    let mut path = Vec::new();
    while let Some(ParentOfChild::Element(p)) = el.parent() {
        let pos = p
            .children()
            .into_iter()
            .filter_map(|c| match c {
                ChildOfElement::Element(e) => Some(e),
                _ => None,
            })
            .position(|e| e == el)
            .unwrap_or(0);
        path.push(pos);
        el = p;
    }
    path.reverse();
    path
}

/// The tree from `root` down the path: ancestors with their list keys,
/// then the selected node whole.
fn extract(root: &Element, path: &[usize]) -> Option<Element> {
    let Some((first, rest)) = path.split_first() else {
        return Some(root.clone());
    };
    let child = root.children.get(*first)?;
    let below = extract(child, rest)?;
    let mut out = Element {
        children: Vec::new(),
        text: String::new(),
        ..root.clone()
    };
    // Keep list keys so the output is valid instance data.
    if below.name != "name"
        && let Some(k) = root
            .children
            .iter()
            .find(|c| c.name == "name" && c.children.is_empty())
    {
        out.children.push(k.clone());
    }
    out.children.push(below);
    Some(out)
}

/// Evaluates `expr` (prefixes resolved in `ctx`, the filter element) over
/// the trees and returns what it selects, merged.
pub fn select(data: &[Element], expr: &str, ctx: &Element) -> Result<Vec<Element>, RpcError> {
    let xpath = Factory::new()
        .build(expr)
        .map_err(|e| error(format!("select '{expr}': {e}")))?
        .ok_or_else(|| error("empty select".into()))?;
    let mut bindings = Vec::new();
    for p in prefixes(expr) {
        let ns = ctx
            .resolve_prefix(&p)
            .ok_or_else(|| error(format!("unknown prefix '{p}' in select")))?;
        bindings.push((p, ns.to_string()));
    }
    // Strict XPath matches an unprefixed name only in no namespace, so
    // `/element/shelf` (netconf-console2's `-x`) would select nothing: an
    // expression that names no prefix at all is matched on local names.
    let local = bindings.is_empty();
    let mut out: Vec<Element> = Vec::new();
    for root in data {
        let package = Package::new();
        let doc = package.as_document();
        doc.root().append_child(build(&doc, root, local));
        let mut context = Context::new();
        for (p, ns) in &bindings {
            context.set_namespace(p, ns);
        }
        let value = xpath
            .evaluate(&context, doc.root())
            .map_err(|e| error(format!("select '{expr}': {e}")))?;
        let Value::Nodeset(nodes) = value else {
            return Err(error(format!(
                "select '{expr}' gives a {}, not a node-set",
                match value {
                    Value::Boolean(_) => "boolean",
                    Value::Number(_) => "number",
                    _ => "string",
                }
            )));
        };
        for node in nodes.document_order() {
            let el = match node {
                Node::Root(_) => {
                    merge(&mut out, root.clone());
                    continue;
                }
                Node::Element(e) => Some(e),
                Node::Text(t) => t.parent(),
                Node::Attribute(a) => a.parent(),
                _ => None,
            };
            if let Some(x) = el.and_then(|e| extract(root, &path_of(e))) {
                merge(&mut out, x);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Element {
        crate::xml::parse(s, 64).unwrap()
    }

    fn data() -> Element {
        parse(
            r#"<element xmlns="urn:hc"><fan><name>f1</name><speed>1.000000</speed><label>a</label></fan><fan><name>f2</name><speed>2.500000</speed><label>b or c</label></fan><psu><name>p1</name><label>x</label></psu></element>"#,
        )
    }

    fn names(got: &[Element]) -> Vec<String> {
        let mut v = Vec::new();
        fn walk(e: &Element, v: &mut Vec<String>) {
            if e.name == "name" {
                v.push(e.text.clone());
            }
            for c in &e.children {
                walk(c, v);
            }
        }
        for e in got {
            walk(e, &mut v);
        }
        v
    }

    #[test]
    fn xpath_1_0_as_the_capability_promises() {
        let ctx = parse(r#"<filter xmlns:hc="urn:hc"/>"#);
        let d = [data()];
        let sel = |e: &str| names(&select(&d, e, &ctx).unwrap());
        assert_eq!(
            sel("/hc:element/hc:fan[hc:name='f1' or hc:name='f2']"),
            ["f1", "f2"]
        );
        assert_eq!(sel("/hc:element/hc:fan[hc:speed=1]"), ["f1"]);
        assert_eq!(sel("/hc:element/hc:fan[hc:speed>2]"), ["f2"]);
        assert_eq!(sel("/hc:element/hc:fan[hc:name!='f1']"), ["f2"]);
        assert_eq!(sel("//hc:psu"), ["p1"]);
        assert_eq!(sel("//hc:label[contains(., 'or')]/.."), ["f2"]);
        assert_eq!(sel("/hc:element/hc:fan/hc:name[.='f2']"), ["f2"]);
        assert_eq!(sel("/hc:element[count(hc:fan)=2]/hc:psu"), ["p1"]);
        assert_eq!(sel("/hc:element/hc:fan[2]"), ["f2"]);
        // A selected leaf comes with its list entry's key.
        let got = select(&d, "/hc:element/hc:fan/hc:label[.='a']", &ctx).unwrap();
        let x = got[0].to_xml();
        assert!(
            x.contains("<fan><name>f1</name><label>a</label></fan>") && !x.contains("speed"),
            "{x}"
        );
        // A union of two selections is merged into one tree.
        let got = select(&d, "/hc:element/hc:fan[1] | /hc:element/hc:psu", &ctx).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(names(&got), ["f1", "p1"]);
        // Errors: syntax, unknown prefix, a result that is no node-set.
        for bad in ["/hc:element[", "/zz:element", "count(//hc:fan)"] {
            let e = select(&d, bad, &ctx).unwrap_err();
            assert_eq!(e.tag, Tag::InvalidValue, "{bad}");
        }
        assert!(sel("/hc:nothing").is_empty());
        // No prefix at all: local names match (netconf-console2's -x).
        assert_eq!(sel("/element/fan[name='f2']"), ["f2"]);
        // With prefixes, XPath is strict: an unprefixed step is no namespace.
        assert!(sel("/hc:element/fan").is_empty());
    }

    #[test]
    fn prefixes_skip_literals_and_axes() {
        assert_eq!(
            prefixes("/hc:a/child::hc:b[x:c='y:z' and count(d:e)]"),
            ["hc", "x", "d"]
        );
    }
}
