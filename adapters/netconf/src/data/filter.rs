//! Subtree filtering (RFC 6241 §6) and the classes a subtree or XPath filter can select.

use super::{TOP, object_class};
use crate::schema_ns;
use crate::xml::Element;

fn ns_matches(filter_ns: &str, data_ns: &str) -> bool {
    filter_ns.is_empty() || filter_ns == data_ns
}

fn is_content_match(f: &Element) -> bool {
    f.children.is_empty() && !f.trimmed().is_empty()
}

/// RFC 6241 §6 subtree filtering of one data node against one filter node
/// with the same name.
fn subtree_node(data: &Element, filter: &Element) -> Option<Element> {
    if filter.children.is_empty() {
        if is_content_match(filter) {
            return (data.trimmed() == filter.trimmed()).then(|| data.clone());
        }
        return Some(data.clone());
    }
    let mut out = Element {
        children: Vec::new(),
        ..data.clone()
    };
    // Content-match nodes must all match.
    let mut only_content = true;
    for f in &filter.children {
        if is_content_match(f) {
            let m = data.children.iter().find(|d| {
                ns_matches(&f.ns, &d.ns) && d.name == f.name && d.trimmed() == f.trimmed()
            });
            match m {
                Some(_) => {}
                None => return None,
            }
        } else {
            only_content = false;
        }
    }
    if only_content {
        return Some(data.clone());
    }
    for d in &data.children {
        let mut selected = None;
        for f in filter
            .children
            .iter()
            .filter(|f| ns_matches(&f.ns, &d.ns) && f.name == d.name)
        {
            if is_content_match(f) {
                if d.trimmed() == f.trimmed() {
                    selected = Some(d.clone());
                }
            } else if let Some(x) = subtree_node(d, f) {
                selected = Some(x);
            }
            if selected.is_some() {
                break;
            }
        }
        if let Some(x) = selected {
            out.children.push(x);
        }
    }
    if out.children.is_empty() {
        return None;
    }
    Some(out)
}

/// Applies a subtree filter (the children of `<filter>`) to top-level data nodes.
pub fn subtree_filter(data: &[Element], filter: &[Element]) -> Vec<Element> {
    let mut out = Vec::new();
    for d in data {
        for f in filter
            .iter()
            .filter(|f| ns_matches(&f.ns, &d.ns) && f.name == d.name)
        {
            if let Some(x) = subtree_node(d, f) {
                out.push(x);
                break;
            }
        }
    }
    out
}

/// Whether a subtree filter can select anything under a top-level node.
pub fn filter_wants(filter: &[Element], ns: &str, name: &str) -> bool {
    filter
        .iter()
        .any(|f| ns_matches(&f.ns, ns) && f.name == name)
}

/// One child step of a simple location path: a name test (None: any
/// namespace, or `*`). Predicates are skipped: they never change which top
/// node or which list a step names.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    ns: Option<String>,
    name: Option<String>,
}

/// Why an expression is not a simple path (then every class is read).
#[derive(Debug)]
struct NotSimple;

fn qname(text: &str, ctx: &Element) -> Result<(Option<String>, Option<String>), NotSimple> {
    let text = text.trim();
    let (prefix, local) = match text.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, text),
    };
    let ns = match prefix {
        None => None,
        Some(p) => Some(ctx.resolve_prefix(p).ok_or(NotSimple)?.to_string()),
    };
    let name = if local == "*" {
        None
    } else if !local.is_empty()
        && !local.starts_with('.')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some(local.to_string())
    } else {
        return Err(NotSimple);
    };
    Ok((ns, name))
}

/// Splits on `sep` outside quotes and brackets.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().expect("one part").push(c);
    }
    out
}

/// The steps of an absolute path of child steps (`/a/b[...]/c`); anything
/// else (`//`, `..`, functions, a top-level `or`) is not simple.
fn parse_path(expr: &str, ctx: &Element) -> Result<Vec<Step>, NotSimple> {
    let rest = expr.trim().strip_prefix('/').ok_or(NotSimple)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    for raw in split_top(rest, '/') {
        let (name_part, mut preds) = match raw.find('[') {
            Some(i) => (&raw[..i], &raw[i..]),
            None => (raw.as_str(), ""),
        };
        let (ns, name) = qname(name_part, ctx)?;
        while !preds.is_empty() {
            let end = find_close(preds).ok_or(NotSimple)?;
            preds = preds[end + 1..].trim_start();
            if !preds.is_empty() && !preds.starts_with('[') {
                return Err(NotSimple);
            }
        }
        steps.push(Step { ns, name });
    }
    Ok(steps)
}

/// The end of the predicate that starts `s` (nested brackets, quotes).
fn find_close(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Merges a selected tree into the output, joining identical nodes.
pub(crate) fn merge(out: &mut Vec<Element>, x: Element) {
    if let Some(same) = out.iter_mut().find(|o| {
        o.ns == x.ns
            && o.name == x.name
            && o.text == x.text
            && o.children.iter().find(|c| c.name == "name")
                == x.children.iter().find(|c| c.name == "name")
    }) {
        if same.children.is_empty() || x.children.is_empty() {
            return;
        }
        for c in x.children {
            if c.children.is_empty() && same.children.contains(&c) {
                continue;
            }
            merge(&mut same.children, c);
        }
    } else {
        out.push(x);
    }
}

/// The classes (YANG list names) a subtree filter can select under the
/// `element` container; None when it may select every list.
pub fn subtree_classes(filter: &[Element]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for f in filter
        .iter()
        .filter(|f| ns_matches(&f.ns, schema_ns()) && f.name == TOP)
    {
        if f.children.is_empty() {
            return None;
        }
        for c in &f.children {
            if object_class(&c.name).is_some() && !out.contains(&c.name) {
                out.push(c.name.clone());
            }
        }
    }
    Some(out)
}

/// The classes an XPath filter can select; None when it may select all.
pub fn xpath_classes(expr: &str, ctx: &Element) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for p in split_top(expr, '|') {
        let steps = parse_path(&p, ctx).ok()?;
        let first = steps.first()?;
        if first.ns.as_ref().is_some_and(|n| n != schema_ns())
            || first.name.as_ref().is_some_and(|n| n != TOP)
        {
            continue;
        }
        let name = steps.get(1)?.name.clone()?;
        if object_class(&name).is_some() && !out.contains(&name) {
            out.push(name);
        }
    }
    Some(out)
}

/// Whether an XPath can select anything under a top-level node.
pub fn xpath_wants(expr: &str, ctx: &Element, ns: &str, name: &str) -> bool {
    split_top(expr, '|')
        .iter()
        .any(|p| match parse_path(p, ctx) {
            Ok(steps) => steps.first().is_none_or(|s| {
                s.ns.as_ref().is_none_or(|n| n == ns) && s.name.as_ref().is_none_or(|n| n == name)
            }),
            Err(_) => true,
        })
}
