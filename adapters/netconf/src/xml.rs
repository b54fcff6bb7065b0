//! A namespace-aware element tree of our own, read with quick-xml's
//! `NsReader` (its serde mode matches local names only and drops
//! namespaces), written with quick-xml's `Writer` (see [`clean`] for
//! characters XML 1.0 forbids).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use halyard_cluster_model::value::is_xml_char;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::writer::Writer;
use tracing::warn;

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

    /// The start tag: `xmlns` when the namespace differs from `parent_ns`
    /// (the default namespace in scope), then the attributes, a
    /// namespaced one with a prefix `aN` declared beside it.
    pub fn start_tag(&self, parent_ns: &str) -> BytesStart<'_> {
        let mut tag = BytesStart::new(self.name.as_str());
        if self.ns != parent_ns {
            tag.push_attribute(("xmlns", clean(&self.ns, &self.name).as_ref()));
        }
        let mut prefixes = 0;
        for (ns, name, value) in &self.attrs {
            let value = clean(value, name);
            if ns.is_empty() {
                tag.push_attribute((name.as_str(), value.as_ref()));
            } else if ns == XML_NS {
                tag.push_attribute((format!("xml:{name}").as_str(), value.as_ref()));
            } else if ns == XMLNS_DECL {
                // A prefix declaration the writer was asked to carry.
                tag.push_attribute((format!("xmlns:{name}").as_str(), value.as_ref()));
            } else if let Some((_, p, _)) = self
                .attrs
                .iter()
                .find(|(d, _, bound)| d == XMLNS_DECL && bound == ns)
            {
                // A prefix declared here already names the namespace.
                tag.push_attribute((format!("{p}:{name}").as_str(), value.as_ref()));
            } else {
                prefixes += 1;
                tag.push_attribute((
                    format!("xmlns:a{prefixes}").as_str(),
                    clean(ns, name).as_ref(),
                ));
                tag.push_attribute((format!("a{prefixes}:{name}").as_str(), value.as_ref()));
            }
        }
        tag
    }

    /// Writes the element; `parent_ns` is the default namespace in scope.
    pub fn write_to(&self, w: &mut XmlWriter, parent_ns: &str) {
        let tag = self.start_tag(parent_ns);
        if self.children.is_empty() && self.text.is_empty() {
            emit(w, Event::Empty(tag));
            return;
        }
        emit(w, Event::Start(tag));
        text(w, &self.text, &self.name);
        for c in &self.children {
            c.write_to(w, &self.ns);
        }
        emit(w, Event::End(BytesEnd::new(self.name.as_str())));
    }

    pub fn to_xml(&self) -> String {
        let mut w = writer();
        self.write_to(&mut w, "");
        into_string(w)
    }
}

/// The namespace bound to the reserved `xml` prefix.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Pseudo-namespace of attributes that declare a prefix (`xmlns:p`).
pub const XMLNS_DECL: &str = "http://www.w3.org/2000/xmlns/";

/// Every document the NETCONF face sends is written by quick-xml's
/// `Writer` into memory (then framed): escaping is the library's.
pub type XmlWriter = Writer<Vec<u8>>;

pub fn writer() -> XmlWriter {
    Writer::new(Vec::new())
}

/// The document written, as text.
pub fn into_string(w: XmlWriter) -> String {
    // Only `&str` goes in, so the bytes are UTF-8.
    String::from_utf8(w.into_inner())
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes one event.
pub fn emit<'a>(w: &mut XmlWriter, event: impl Into<Event<'a>>) {
    if let Err(e) = w.write_event(event) {
        // A Vec<u8> takes every write (an allocation failure aborts).
        unreachable!("writing XML into memory failed: {e}");
    }
}

/// Writes character content: `<`, `>`, `&` (and CR) escaped by
/// quick-xml (`partial_escape`: quotes stay as they are in text, as they
/// always have in this face's output), after [`clean`].
pub fn text(w: &mut XmlWriter, s: &str, element: &str) {
    if s.is_empty() {
        return;
    }
    let clean = clean(s, element);
    emit(
        w,
        Event::Text(BytesText::from_escaped(partial_escape(clean.as_ref()))),
    );
}

/// Characters XML 1.0 forbids that the writer replaced (U+FFFD).
static REPLACED: AtomicU64 = AtomicU64::new(0);

/// How many characters XML 1.0 forbids the NETCONF face has replaced in
/// what it sent, since the process started.
pub fn replaced_chars() -> u64 {
    REPLACED.load(Ordering::Relaxed)
}

/// What the NETCONF face does with a character XML 1.0 forbids (a control
/// character other than tab, LF and CR; U+FFFE; U+FFFF):
///
/// - in a client's input it is refused before anything is written: a
///   value of edit-config, copy-config, validate or an action input gets
///   an rpc-error `invalid-value` naming the leaf (the value checks of
///   `Value::parse`), an attribute of `<rpc>` (echoed in the reply) gets
///   `bad-attribute` naming it (`session::handle_message`);
/// - in the agent's own data (a value in the model, a notification, the
///   text of an rpc-error that quotes a client's input) it is replaced by
///   U+FFFD here, at the last step, with a WARN log naming the element or
///   attribute and a count ([`replaced_chars`]): a document the face
///   sends is always well-formed, and the stray character is visible.
pub fn clean<'a>(s: &'a str, context: &str) -> Cow<'a, str> {
    if s.chars().all(is_xml_char) {
        return Cow::Borrowed(s);
    }
    let mut n = 0u64;
    let out: String = s
        .chars()
        .map(|c| {
            if is_xml_char(c) {
                c
            } else {
                n += 1;
                '\u{FFFD}'
            }
        })
        .collect();
    REPLACED.fetch_add(n, Ordering::Relaxed);
    warn!(
        element = context,
        replaced = n,
        "characters XML 1.0 forbids replaced by U+FFFD in an outgoing NETCONF document"
    );
    Cow::Owned(out)
}

/// Text as it appears in character content (what [`text`] writes).
pub fn escape(s: &str) -> String {
    let mut w = writer();
    text(&mut w, s, "");
    into_string(w)
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
