//! `<filter>` of get, get-config and create-subscription: subtree or
//! XPath, what it can select (to read only those classes) and its
//! application to rendered data.

use crate::BASE_NS;
use crate::data::{self, subtree_filter};
use crate::error::{RpcError, Tag};
use crate::xml::Element;

/// A `<filter>`: subtree or XPath.
#[derive(Debug, Clone)]
pub enum Filter {
    Subtree(Vec<Element>),
    XPath { select: String, ctx: Element },
}

impl Filter {
    pub fn parse(f: &Element) -> Result<Filter, RpcError> {
        let ty = f
            .attr("", "type")
            .or_else(|| f.attr(BASE_NS, "type"))
            .unwrap_or("subtree");
        match ty {
            "subtree" => Ok(Filter::Subtree(f.children.clone())),
            "xpath" => {
                let select = f
                    .attr("", "select")
                    .or_else(|| f.attr(BASE_NS, "select"))
                    .ok_or_else(|| {
                        RpcError::protocol(Tag::MissingAttribute, "xpath filter without select")
                            .with_info("bad-attribute", "select")
                            .with_info("bad-element", "filter")
                    })?;
                let mut ctx = f.clone();
                ctx.children.clear();
                Ok(Filter::XPath {
                    select: select.to_string(),
                    ctx,
                })
            }
            other => Err(RpcError::protocol(
                Tag::BadAttribute,
                format!("filter type '{other}' is not supported"),
            )
            .with_info("bad-attribute", "type")
            .with_info("bad-element", "filter")),
        }
    }

    /// The lists the filter can select (None: all of them).
    pub(super) fn classes(&self) -> Option<Vec<String>> {
        match self {
            Filter::Subtree(f) => data::subtree_classes(f),
            Filter::XPath { select, ctx } => data::xpath_classes(select, ctx),
        }
    }

    pub(super) fn wants(&self, ns: &str, name: &str) -> bool {
        match self {
            Filter::Subtree(f) => data::filter_wants(f, ns, name),
            Filter::XPath { select, ctx } => data::xpath_wants(select, ctx, ns, name),
        }
    }

    pub(super) fn apply(&self, data: &[Element]) -> Result<Vec<Element>, RpcError> {
        match self {
            Filter::Subtree(f) => Ok(subtree_filter(data, f)),
            Filter::XPath { select, ctx } => crate::xpath::select(data, select, ctx),
        }
    }
}

pub(super) fn filter_of(rpc: &Element) -> Result<Option<Filter>, RpcError> {
    rpc.find(BASE_NS, "filter").map(Filter::parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_ns;
    use crate::xml;

    #[test]
    fn xpath_filter_on_a_notification() {
        let f = xml::parse(
            &format!(
                r#"<nc:filter xmlns:nc="{BASE_NS}" xmlns:hc="{}" type="xpath" select="/hc:alarm-raised[hc:severity='critical']"/>"#,
                schema_ns()
            ),
            8,
        )
        .unwrap();
        let f = Filter::parse(&f).unwrap();
        let mut ev = Element::new(schema_ns(), "alarm-raised");
        ev.push(Element::with_text(schema_ns(), "severity", "critical"));
        assert_eq!(f.apply(std::slice::from_ref(&ev)).unwrap().len(), 1);
        ev.children[0].text = "major".into();
        assert!(f.apply(std::slice::from_ref(&ev)).unwrap().is_empty());
    }
}
