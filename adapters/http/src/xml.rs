//! XML writing for the HTTP face: every XML document the API serves is
//! written by quick-xml's `Writer`, which escapes text and attribute
//! values; [`clean`] decides about characters XML 1.0 forbids.

use std::borrow::Cow;
use std::sync::LazyLock;

use halyard_cluster_model::value::is_xml_char;
use prometheus_client::metrics::counter::Counter;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::writer::Writer;
use tracing::warn;

use crate::error::ApiError;

/// Characters XML 1.0 forbids that [`clean`] replaced, on `/metrics` as
/// `halyard_http_xml_replaced_characters_total`.
pub static REPLACED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// What the HTTP face does with a character XML 1.0 forbids (a control
/// character other than tab, LF and CR; U+FFFE; U+FFFF):
///
/// - in a client's input it is refused before anything is written: a
///   request body whose field name or value has one is answered 422
///   `invalid-value` naming the field ([`check_input`], from
///   `body::fields`), and the model refuses such a value from any face;
/// - in the agent's own data (a value in the model, a notification's
///   source, the message of an error that quotes a client's path or
///   query) it is replaced by U+FFFD here, at the last step, with a WARN
///   log naming the element or attribute and a count ([`REPLACED`]): a
///   document the face serves is always well-formed, and the stray
///   character is visible.
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
    REPLACED.inc_by(n);
    warn!(
        element = context,
        replaced = n,
        "characters XML 1.0 forbids replaced by U+FFFD in an HTTP response"
    );
    Cow::Owned(out)
}

/// Refuses a client's text with a character XML 1.0 forbids: 422
/// `invalid-value` naming `field` (see [`clean`]).
pub fn check_input(field: &str, text: &str) -> Result<(), ApiError> {
    match text.chars().find(|c| !is_xml_char(*c)) {
        None => Ok(()),
        Some(c) => Err(ApiError::invalid(format!(
            "{}: character U+{:04X} is not allowed (XML 1.0 Char production)",
            clean(field, "field"),
            c as u32
        ))),
    }
}

/// One XML document being written.
pub struct Doc {
    w: Writer<Vec<u8>>,
}

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doc")
            .field("written", &self.w.get_ref().len())
            .finish()
    }
}

impl Default for Doc {
    fn default() -> Self {
        Doc::new()
    }
}

impl Doc {
    /// A document starting with the XML declaration and a newline.
    pub fn new() -> Doc {
        let mut d = Doc::fragment();
        d.emit(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        d.raw("\n");
        d
    }

    /// Elements with no declaration.
    pub fn fragment() -> Doc {
        Doc {
            w: Writer::new(Vec::new()),
        }
    }

    fn emit<'a>(&mut self, event: impl Into<Event<'a>>) {
        if let Err(e) = self.w.write_event(event) {
            // A Vec<u8> takes every write (an allocation failure aborts).
            unreachable!("writing XML into memory failed: {e}");
        }
    }

    fn tag<'a>(name: &'a str, attrs: &[(&str, &str)]) -> BytesStart<'a> {
        let mut t = BytesStart::new(name);
        for (k, v) in attrs {
            t.push_attribute((*k, clean(v, k).as_ref()));
        }
        t
    }

    /// `<name a="v" ...>`.
    pub fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.emit(Event::Start(Self::tag(name, attrs)));
    }

    /// `<name a="v" .../>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.emit(Event::Empty(Self::tag(name, attrs)));
    }

    /// `</name>`.
    pub fn end(&mut self, name: &str) {
        self.emit(Event::End(BytesEnd::new(name)));
    }

    /// Character content (quick-xml escapes `<`, `>`, `&`, quotes and CR).
    pub fn text(&mut self, text: &str, element: &str) {
        if !text.is_empty() {
            self.emit(Event::Text(BytesText::new(&clean(text, element))));
        }
    }

    /// `<name>text</name>` (both tags, also when the text is empty).
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.start(name, &[]);
        self.text(text, name);
        self.end(name);
    }

    /// Markup written as it is: only literal constants of this crate.
    pub fn raw(&mut self, markup: &'static str) {
        self.w.get_mut().extend_from_slice(markup.as_bytes());
    }

    pub fn finish(self) -> String {
        // Only `&str` goes in, so the bytes are UTF-8.
        String::from_utf8(self.w.into_inner())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}
