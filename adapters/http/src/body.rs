//! Request bodies: a flat map of names to text values, given as JSON
//! (`{"admin-state": "locked"}`), as flat XML
//! (`<fan><admin-state>locked</admin-state></fan>`) or as a form.

use serde_json::Value as Json;

use crate::error::ApiError;
use crate::repr::json_text;

/// Parses a body into (name, text) pairs according to its media type. A
/// name or value with a character XML 1.0 forbids is refused (422
/// `invalid-value` naming the field; `xml::clean` has the face's rule).
pub fn fields(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let fields = parse_fields(content_type, body)?;
    for (name, value) in &fields {
        crate::xml::check_input(name, name)?;
        crate::xml::check_input(name, value)?;
    }
    Ok(fields)
}

fn parse_fields(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("application/json") || (ct.is_empty() && text.trim_start().starts_with('{')) {
        let v: Json = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
        let Json::Object(m) = v else {
            return Err(ApiError::bad_request(
                "expected a JSON object of name: value",
            ));
        };
        return m
            .into_iter()
            .map(|(k, v)| {
                json_text(&v).map(|t| (k.clone(), t)).ok_or_else(|| {
                    ApiError::bad_request(format!("{k}: expected a string, number or boolean"))
                })
            })
            .collect();
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        return Ok(form(text));
    }
    if ct.is_empty() || ct.contains("xml") {
        return flat_xml(text);
    }
    Err(ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!("cannot read a body of type {ct}; send application/xml or application/json"),
    ))
}

fn pct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=two` (percent-decoded).
pub fn form(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct(k), pct(v))
        })
        .collect()
}

fn unescape(s: &str) -> Result<String, ApiError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| ApiError::bad_request("invalid XML: unterminated entity"))?;
        let ent = &after[..end];
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| ApiError::bad_request("invalid XML character reference"))?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| ApiError::bad_request("invalid XML character reference"))?,
            e => {
                return Err(ApiError::bad_request(format!(
                    "invalid XML: unknown entity &{e};"
                )));
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Skips the declaration, comments and whitespace.
fn skip_misc(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if s.starts_with("<?") {
            s = s.find("?>").map_or("", |i| &s[i + 2..]);
        } else if s.starts_with("<!--") {
            s = s.find("-->").map_or("", |i| &s[i + 3..]);
        } else {
            return s;
        }
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// A root element whose children are `<name>text</name>` (or `<name/>`).
pub fn flat_xml(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |m: &str| ApiError::bad_request(format!("invalid XML: {m}"));
    let s = skip_misc(text);
    let s = s
        .strip_prefix('<')
        .ok_or_else(|| bad("expected an element"))?;
    let gt = s.find('>').ok_or_else(|| bad("unterminated start tag"))?;
    let head = &s[..gt];
    let root = head.split_whitespace().next().unwrap_or("").to_string();
    if head.ends_with('/') {
        return Ok(Vec::new());
    }
    let mut rest = &s[gt + 1..];
    let mut out = Vec::new();
    loop {
        rest = skip_misc(rest);
        if let Some(r) = rest.strip_prefix("</") {
            let end = r.find('>').ok_or_else(|| bad("unterminated end tag"))?;
            if r[..end].trim() != root {
                return Err(bad("mismatched end tag"));
            }
            if !skip_misc(&r[end + 1..]).is_empty() {
                return Err(bad("content after the root element"));
            }
            return Ok(out);
        }
        let r = rest
            .strip_prefix('<')
            .ok_or_else(|| bad("text outside a field element"))?;
        let gt = r.find('>').ok_or_else(|| bad("unterminated start tag"))?;
        let head = &r[..gt];
        let name = head
            .trim_end_matches('/')
            .split_whitespace()
            .next()
            .unwrap_or("");
        if name.is_empty() {
            return Err(bad("empty element name"));
        }
        if head.ends_with('/') {
            out.push((local(name).to_string(), String::new()));
            rest = &r[gt + 1..];
            continue;
        }
        let body = &r[gt + 1..];
        let close = format!("</{name}>");
        let end = body.find(&close).ok_or_else(|| bad("missing end tag"))?;
        let content = &body[..end];
        if content.contains('<') {
            return Err(bad("only flat elements (<name>value</name>) are accepted"));
        }
        out.push((local(name).to_string(), unescape(content)?));
        rest = &body[end + close.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_xml_and_forms() {
        let f = flat_xml(
            "<?xml version=\"1.0\"?>\n<fan xmlns=\"urn:x\"><admin-state>locked</admin-state><label>a &amp; b&#33;</label><x/></fan>",
        )
        .unwrap();
        assert_eq!(
            f,
            vec![
                ("admin-state".into(), "locked".into()),
                ("label".into(), "a & b!".into()),
                ("x".into(), String::new())
            ]
        );
        assert!(flat_xml("<a><b><c/></b></a>").is_err());
        assert!(flat_xml("<a><b>1</b>").is_err());
        assert_eq!(
            form("reason=too+hot%21&x="),
            vec![
                ("reason".into(), "too hot!".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(
            fields(Some("application/json"), br#"{"speed": 10, "on": true}"#).unwrap(),
            vec![("on".into(), "true".into()), ("speed".into(), "10".into())]
        );
    }

    #[test]
    fn forbidden_characters_are_refused_naming_the_field() {
        for (ct, body) in [
            (Some("application/json"), r#"{"label": "bad\u0001x"}"#),
            (
                Some("application/xml"),
                "<fan><label>bad&#1;x</label></fan>",
            ),
            (
                Some("application/xml"),
                "<fan><label>bad\u{1}x</label></fan>",
            ),
            (Some("application/x-www-form-urlencoded"), "label=bad%01x"),
            (Some("application/json"), r#"{"label": "bad\uFFFFx"}"#),
        ] {
            let e = fields(ct, body.as_bytes()).unwrap_err();
            assert_eq!(e.status.as_u16(), 422, "{body}");
            assert_eq!(e.code, "invalid-value", "{body}");
            assert!(e.message.starts_with("label:"), "{body}: {}", e.message);
        }
        // A forbidden character in a field's name is refused too.
        let e = fields(Some("application/json"), br#"{"la\u0002bel": "x"}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(
            fields(Some("application/json"), br#"{"label": "tab\tand <&>"}"#).unwrap(),
            vec![("label".to_string(), "tab\tand <&>".to_string())]
        );
    }
}
