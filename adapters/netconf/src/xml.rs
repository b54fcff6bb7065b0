//! A namespace-aware element tree of our own, read with quick-xml's
//! `NsReader` (its serde mode matches local names only and drops
//! namespaces), and a small writer for replies.

use std::sync::Arc;

use halyard_cluster_model::value::is_xml_char;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// In-scope prefix bindings: (prefix, namespace); "" is the default.
pub type Bindings = Arc<Vec<(String, String)>>;

/// An XML element with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    /// Namespace URI; empty when unqualified.
    pub ns: String,
    pub name: String,
    /// Attributes other than namespace declarations: (namespace, local name, value).
    pub attrs: Vec<(String, String, String)>,
    pub children: Vec<Element>,
    /// Character content (concatenated, not trimmed).
    pub text: String,
    /// Prefix bindings in scope at this element (for XPath and instance-identifiers).
    pub bindings: Bindings,
}

/// Why a message is not well-formed XML.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

impl Element {
    pub fn new(ns: &str, name: &str) -> Self {
        Element {
            ns: ns.to_string(),
            name: name.to_string(),
            ..Element::default()
        }
    }

    pub fn with_text(ns: &str, name: &str, text: impl Into<String>) -> Self {
        Element {
            text: text.into(),
            ..Element::new(ns, name)
        }
    }

    pub fn push(&mut self, child: Element) {
        self.children.push(child);
    }

    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child with this namespace and name.
    pub fn find(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// An attribute by namespace ("" for unqualified) and local name.
    pub fn attr(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, l, _)| n == ns && l == name)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn trimmed(&self) -> &str {
        self.text.trim()
    }

    /// Resolves a `prefix` in this element's scope.
    pub fn resolve_prefix(&self, prefix: &str) -> Option<&str> {
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, n)| n.as_str())
    }

    /// Serializes the element; `parent_ns` is the default namespace in scope.
    pub fn write(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns=\"");
            escape_into(out, &self.ns, true);
            out.push('"');
        }
        let mut prefixes = 0;
        for (ns, name, value) in &self.attrs {
            if ns.is_empty() {
                out.push_str(&format!(" {name}=\""));
            } else if ns == XML_NS {
                out.push_str(&format!(" xml:{name}=\""));
            } else if ns == XMLNS_DECL {
                // A prefix declaration the writer was asked to carry.
                out.push_str(&format!(" xmlns:{name}=\""));
            } else {
                prefixes += 1;
                out.push_str(&format!(" xmlns:a{prefixes}=\""));
                escape_into(out, ns, true);
                out.push_str(&format!("\" a{prefixes}:{name}=\""));
            }
            escape_into(out, value, true);
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        escape_into(out, &self.text, false);
        for c in &self.children {
            c.write(out, &self.ns);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, "");
        s
    }
}

/// The namespace bound to the reserved `xml` prefix.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Pseudo-namespace of attributes that declare a prefix (`xmlns:p`).
pub const XMLNS_DECL: &str = "http://www.w3.org/2000/xmlns/";

pub fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&apos;"),
            // Never emit what XML 1.0 forbids (the model refuses such
            // values; this keeps any that slipped in from breaking clients).
            c if !is_xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, false);
    out
}

fn owned_ns(r: &ResolveResult<'_>) -> Result<String, XmlError> {
    match r {
        ResolveResult::Bound(ns) => Ok(ns.0.to_string()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(XmlError(format!("unknown prefix '{p}'"))),
    }
}

fn resolve_ref(name: &str) -> Result<char, XmlError> {
    let bad = || XmlError(format!("unknown entity '&{name};'"));
    Ok(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        // A reference to a character XML 1.0 forbids (&#1;) is decoded, not
        // a parse error: the value checks refuse it with an rpc-error that
        // names the leaf and carries the message-id, which a client waits on.
        n if n.starts_with("#x") => {
            char::from_u32(u32::from_str_radix(&n[2..], 16).map_err(|_| bad())?).ok_or_else(bad)?
        }
        n if n.starts_with('#') => {
            char::from_u32(n[1..].parse::<u32>().map_err(|_| bad())?).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    })
}

/// Parses one XML document into its root element; at most `max_depth` levels.
pub fn parse(text: &str, max_depth: usize) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut scopes: Vec<Bindings> = vec![Arc::new(Vec::new())];
    let mut root: Option<Element> = None;
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| XmlError(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let ns = owned_ns(&resolved)?;
                if root.is_some() {
                    return Err(XmlError("content after the root element".into()));
                }
                if stack.len() >= max_depth {
                    return Err(XmlError(format!("nested deeper than {max_depth}")));
                }
                let name = e.local_name().as_ref().to_string();
                let mut attrs = Vec::new();
                let parent_scope = scopes.last().cloned().unwrap_or_default();
                let mut decls: Vec<(String, String)> = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| XmlError(e.to_string()))?;
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| XmlError(e.to_string()))?
                        .into_owned();
                    if let Some(decl) = a.key.as_namespace_binding() {
                        match decl {
                            quick_xml::name::PrefixDeclaration::Default => {
                                decls.push((String::new(), value))
                            }
                            quick_xml::name::PrefixDeclaration::Named(p) => {
                                decls.push((p.to_string(), value))
                            }
                        }
                        continue;
                    }
                    let (r, local) = reader.resolver().resolve_attribute(a.key);
                    let ans = owned_ns(&r)?;
                    attrs.push((ans, local.as_ref().to_string(), value));
                }
                let bindings = if decls.is_empty() {
                    parent_scope
                } else {
                    let mut v = (*parent_scope).clone();
                    v.extend(decls);
                    Arc::new(v)
                };
                let el = Element {
                    ns,
                    name,
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                    bindings: bindings.clone(),
                };
                if is_empty {
                    match stack.last_mut() {
                        Some(p) => p.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    scopes.push(bindings);
                    stack.push(el);
                }
            }
            Event::End(_) => {
                scopes.pop();
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unexpected end tag".into()))?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(p) => p.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(XmlError("text outside the root element".into())),
                }
            }
            Event::CData(t) => match stack.last_mut() {
                Some(p) => p.text.push_str(&t.into_inner()),
                None => return Err(XmlError("CDATA outside the root element".into())),
            },
            Event::GeneralRef(r) => {
                let c = resolve_ref(&r)?;
                match stack.last_mut() {
                    Some(p) => p.text.push(c),
                    None => return Err(XmlError("reference outside the root element".into())),
                }
            }
            Event::DocType(_) => return Err(XmlError("DOCTYPE is not allowed".into())),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("unexpected end of document".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_resolved() {
        let doc = r#"<?xml version="1.0"?>
<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="urn:uuid:1">
  <nc:get-config><nc:source><nc:running/></nc:source>
    <nc:filter type="subtree"><element xmlns="urn:x"><fan>a&amp;b&#65;</fan></element></nc:filter>
  </nc:get-config></nc:rpc>"#;
        let r = parse(doc, 64).unwrap();
        assert!(r.is("urn:ietf:params:xml:ns:netconf:base:1.0", "rpc"));
        assert_eq!(r.attr("", "message-id"), Some("urn:uuid:1"));
        let gc = &r.children[0];
        let f = gc
            .find("urn:ietf:params:xml:ns:netconf:base:1.0", "filter")
            .unwrap();
        let e = &f.children[0];
        assert_eq!(e.ns, "urn:x");
        assert_eq!(e.children[0].text, "a&bA");
        assert_eq!(f.resolve_prefix("nc"), Some(gc.ns.as_str()));
    }

    #[test]
    fn malformed_is_rejected() {
        assert!(parse("<a><b></a>", 64).is_err());
        assert!(parse("<a>", 64).is_err());
        assert!(parse("<p:a/>", 64).is_err());
        assert!(parse("<a/><b/>", 64).is_err());
        assert!(parse("<a>&foo;</a>", 64).is_err());
        assert!(parse("<a><a><a></a></a></a>", 2).is_err());
        assert!(parse("", 64).is_err());
    }

    #[test]
    fn writer_escapes_and_declares() {
        let mut e = Element::new("urn:a", "x");
        e.push(Element::with_text("urn:a", "y", "1<2"));
        e.push(Element::with_text("urn:b", "z", "&"));
        assert_eq!(
            e.to_xml(),
            r#"<x xmlns="urn:a"><y>1&lt;2</y><z xmlns="urn:b">&amp;</z></x>"#
        );
        // What XML 1.0 forbids is never written.
        let e = Element::with_text("urn:a", "y", "a\u{1}b\u{0}c");
        assert_eq!(e.to_xml(), "<y xmlns=\"urn:a\">a\u{FFFD}b\u{FFFD}c</y>");
    }
}
