//! Syntax: schema text -> declarations (an untyped AST).
//!
//! pest parses one declaration head or one class member at a time; the loop
//! here recovers after an error (skip to the end of the member, or to the
//! next declaration) so that one run reports every syntax error in a file.

use pest::Parser;
use pest::iterators::Pair;

use crate::diag::{Diagnostic, Loc, SourceFile};

#[derive(pest_derive::Parser)]
#[grammar = "mof.pest"]
struct MofParser;

/// A literal value inside a qualifier.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
    Ident(String),
}

impl Literal {
    pub fn describe(&self) -> &'static str {
        match self {
            Literal::Str(_) => "a string",
            Literal::Int(_) => "an integer",
            Literal::Bool(_) => "a boolean",
            Literal::Ident(_) => "an identifier",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum QualifierValue {
    Flag,
    One(Literal),
    List(Vec<Literal>),
}

#[derive(Debug, Clone)]
pub struct Qualifier {
    pub name: String,
    pub value: QualifierValue,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct Ident {
    pub text: String,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct EnumValueAst {
    pub qualifiers: Vec<Qualifier>,
    pub name: Ident,
    pub value: i64,
}

#[derive(Debug, Clone)]
pub struct ParamAst {
    pub qualifiers: Vec<Qualifier>,
    pub ty: Ident,
    pub name: Ident,
}

#[derive(Debug, Clone)]
pub struct MemberAst {
    pub qualifiers: Vec<Qualifier>,
    pub ty: Ident,
    pub name: Ident,
    /// `Some` for a method.
    pub params: Option<Vec<ParamAst>>,
}

#[derive(Debug, Clone)]
pub enum DeclKind {
    Schema,
    Enum {
        base: Ident,
        values: Vec<EnumValueAst>,
    },
    Class {
        base: Option<Ident>,
        members: Vec<MemberAst>,
    },
}

#[derive(Debug, Clone)]
pub struct Decl {
    pub qualifiers: Vec<Qualifier>,
    pub name: Ident,
    pub kind: DeclKind,
}

/// Parses one file; syntax errors are appended to `errors` and parsing goes on.
pub fn parse_file(file: &SourceFile, errors: &mut Vec<Diagnostic>) -> Vec<Decl> {
    let text = file.text.as_str();
    let mut decls = Vec::new();
    let mut pos = skip_blank(text, 0);
    while pos < text.len() {
        match MofParser::parse(Rule::declaration, &text[pos..]) {
            Ok(mut pairs) => {
                let top = pairs.next().expect("declaration pair");
                let end = pos + top.as_span().end();
                let mut decl = build_declaration(file, pos, top);
                pos = skip_blank(text, end);
                if let DeclKind::Class { members, .. } = &mut decl.kind {
                    pos = parse_members(file, pos, members, errors);
                }
                decls.push(decl);
            }
            Err(e) => {
                let at = pos + error_pos(&e);
                errors.push(syntax_error(file, at, &e, "a declaration"));
                let mut next = resync_declaration(text, at);
                // A broken qualifier list: the keyword line that follows is
                // the same declaration, so skip its body too.
                if text[pos..].starts_with('[')
                    && next < text.len()
                    && !text[next..].starts_with('[')
                    && let Some(end) = text[next..].find("};").or_else(|| text[next..].find(';'))
                {
                    let close = if text[next + end..].starts_with("};") {
                        2
                    } else {
                        1
                    };
                    next += end + close;
                }
                pos = skip_blank(text, next);
            }
        }
    }
    decls
}

/// Parses class members up to and including the closing `};`.
fn parse_members(
    file: &SourceFile,
    mut pos: usize,
    members: &mut Vec<MemberAst>,
    errors: &mut Vec<Diagnostic>,
) -> usize {
    let text = file.text.as_str();
    loop {
        if pos >= text.len() {
            errors.push(Diagnostic::new(
                file.loc(pos),
                "found end of file, expected a class member or '};'".to_string(),
            ));
            return pos;
        }
        if let Ok(mut pairs) = MofParser::parse(Rule::class_end, &text[pos..]) {
            let end = pos + pairs.next().expect("class_end").as_span().end();
            return skip_blank(text, end);
        }
        match MofParser::parse(Rule::member, &text[pos..]) {
            Ok(mut pairs) => {
                let top = pairs.next().expect("member pair");
                let end = pos + top.as_span().end();
                members.push(build_member(file, pos, top));
                pos = skip_blank(text, end);
            }
            Err(e) => {
                let at = pos + error_pos(&e);
                errors.push(syntax_error(file, at, &e, "a class member"));
                // A member that lacks only its ';': keep it and go on from
                // the error, so one slip does not hide the next member.
                if expects(&e, Rule::semi)
                    && let Ok(mut pairs) =
                        MofParser::parse(Rule::member, &format!("{};", &text[pos..at]))
                {
                    members.push(build_member(file, pos, pairs.next().expect("member pair")));
                    pos = skip_blank(text, at);
                    continue;
                }
                // A declaration starting at column 1 means the class lost its
                // `};`: stop here and let the caller parse the declaration.
                let next_decl = next_declaration_start(text, at);
                match text[at..].find(';').map(|i| at + i + 1) {
                    Some(semi) if next_decl.is_none_or(|d| semi < d) => {
                        pos = skip_blank(text, semi);
                        // `};` swallowed by the skip: the class is closed.
                        if text[at..semi].trim_end().ends_with("};") {
                            return pos;
                        }
                    }
                    _ => return next_decl.unwrap_or(text.len()),
                }
            }
        }
    }
}

fn expects(e: &pest::error::Error<Rule>, rule: Rule) -> bool {
    matches!(&e.variant, pest::error::ErrorVariant::ParsingError { positives, .. } if positives.contains(&rule))
}

fn error_pos(e: &pest::error::Error<Rule>) -> usize {
    match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
}

fn syntax_error(
    file: &SourceFile,
    at: usize,
    e: &pest::error::Error<Rule>,
    context: &str,
) -> Diagnostic {
    let expected = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } if !positives.is_empty() => {
            let mut names: Vec<&str> = positives.iter().map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            join_alternatives(&names)
        }
        _ => context.to_string(),
    };
    Diagnostic::new(
        file.loc(at),
        format!(
            "found {}, expected {}",
            found_token(&file.text, at),
            expected
        ),
    )
}

fn join_alternatives(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::identifier => "an identifier",
        Rule::kw_class => "'class'",
        Rule::kw_enumeration => "'enumeration'",
        Rule::kw_schema => "'schema'",
        Rule::string_lit => "a string",
        Rule::integer => "an integer",
        Rule::boolean => "a boolean",
        Rule::literal => "a value",
        Rule::qualifier_value => "'(' or '{'",
        Rule::qualifier => "a qualifier",
        Rule::qualifiers => "'['",
        Rule::semi => "';'",
        Rule::colon => "':'",
        Rule::equals => "'='",
        Rule::comma => "','",
        Rule::lbrace => "'{'",
        Rule::rbrace => "'}'",
        Rule::lparen => "'('",
        Rule::rparen => "')'",
        Rule::lbracket => "'['",
        Rule::rbracket => "']'",
        Rule::enum_value => "an enumeration value",
        Rule::param => "a parameter",
        Rule::params => "'('",
        Rule::class_end => "'};'",
        Rule::member => "a class member",
        Rule::schema_decl | Rule::enum_decl | Rule::class_head | Rule::declaration => {
            "a declaration ('schema', 'enumeration' or 'class')"
        }
        _ => "something else",
    }
}

/// Describes the token at `at` for an error message.
fn found_token(text: &str, at: usize) -> String {
    let rest = &text[at..];
    let Some(first) = rest.chars().next() else {
        return "end of file".to_string();
    };
    if first.is_ascii_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        format!("'{word}'")
    } else if first == '"' {
        let s: String = rest
            .chars()
            .skip(1)
            .take_while(|c| *c != '"')
            .take(40)
            .collect();
        format!("string \"{s}\"")
    } else {
        format!("'{first}'")
    }
}

/// Skips whitespace and comments.
fn skip_blank(text: &str, pos: usize) -> usize {
    match MofParser::parse(Rule::blank, &text[pos..]) {
        Ok(mut pairs) => pos + pairs.next().map_or(0, |p| p.as_span().end()),
        Err(_) => pos,
    }
}

/// Where the next declaration starts: a line that begins, at column 1, with
/// a qualifier list or a declaration keyword.
fn next_declaration_start(text: &str, after: usize) -> Option<usize> {
    let mut line_start = text[after..].find('\n').map(|i| after + i + 1)?;
    loop {
        let line = &text[line_start..];
        if ["[", "class ", "enumeration ", "schema "]
            .iter()
            .any(|k| line.starts_with(k))
        {
            return Some(line_start);
        }
        line_start += line.find('\n')? + 1;
    }
}

/// After a broken declaration: resume after its `};` or at the next
/// declaration, whichever comes first.
fn resync_declaration(text: &str, at: usize) -> usize {
    let after_end = text[at..].find("};").map(|i| at + i + 2);
    let next = next_declaration_start(text, at);
    match (after_end, next) {
        (Some(a), Some(n)) => a.min(n),
        (Some(a), None) => a,
        (None, Some(n)) => n,
        (None, None) => text.len(),
    }
}

fn ident(file: &SourceFile, base: usize, pair: Pair<'_, Rule>) -> Ident {
    Ident {
        text: pair.as_str().to_string(),
        loc: file.loc(base + pair.as_span().start()),
    }
}

fn build_declaration(file: &SourceFile, base: usize, pair: Pair<'_, Rule>) -> Decl {
    let mut qualifiers = Vec::new();
    let mut decl = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::qualifiers => qualifiers = build_qualifiers(file, base, p),
            Rule::schema_decl => {
                let name = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::identifier)
                    .expect("schema name");
                decl = Some((ident(file, base, name), DeclKind::Schema));
            }
            Rule::enum_decl => {
                let mut idents = Vec::new();
                let mut values = Vec::new();
                for x in p.into_inner() {
                    match x.as_rule() {
                        Rule::identifier => idents.push(ident(file, base, x)),
                        Rule::enum_value => values.push(build_enum_value(file, base, x)),
                        _ => {}
                    }
                }
                let mut idents = idents.into_iter();
                let name = idents.next().expect("enum name");
                let ty = idents.next().expect("enum base");
                decl = Some((name, DeclKind::Enum { base: ty, values }));
            }
            Rule::class_head => {
                let mut idents = p
                    .into_inner()
                    .filter(|x| x.as_rule() == Rule::identifier)
                    .map(|x| ident(file, base, x));
                let name = idents.next().expect("class name");
                decl = Some((
                    name,
                    DeclKind::Class {
                        base: idents.next(),
                        members: Vec::new(),
                    },
                ));
            }
            _ => {}
        }
    }
    let (name, kind) = decl.expect("declaration body");
    Decl {
        qualifiers,
        name,
        kind,
    }
}

fn build_enum_value(file: &SourceFile, base: usize, pair: Pair<'_, Rule>) -> EnumValueAst {
    let mut qualifiers = Vec::new();
    let mut name = None;
    let mut value = 0;
    for x in pair.into_inner() {
        match x.as_rule() {
            Rule::qualifiers => qualifiers = build_qualifiers(file, base, x),
            Rule::identifier => name = Some(ident(file, base, x)),
            // Out-of-range integers saturate; validation reports the range.
            Rule::integer => value = x.as_str().parse().unwrap_or(i64::MAX),
            _ => {}
        }
    }
    EnumValueAst {
        qualifiers,
        name: name.expect("enum value name"),
        value,
    }
}

fn build_member(file: &SourceFile, base: usize, pair: Pair<'_, Rule>) -> MemberAst {
    let mut qualifiers = Vec::new();
    let mut idents = Vec::new();
    let mut params = None;
    for x in pair.into_inner() {
        match x.as_rule() {
            Rule::qualifiers => qualifiers = build_qualifiers(file, base, x),
            Rule::identifier => idents.push(ident(file, base, x)),
            Rule::params => {
                params = Some(
                    x.into_inner()
                        .filter(|p| p.as_rule() == Rule::param)
                        .map(|p| {
                            let mut qualifiers = Vec::new();
                            let mut ids = Vec::new();
                            for y in p.into_inner() {
                                match y.as_rule() {
                                    Rule::qualifiers => {
                                        qualifiers = build_qualifiers(file, base, y)
                                    }
                                    Rule::identifier => ids.push(ident(file, base, y)),
                                    _ => {}
                                }
                            }
                            let mut ids = ids.into_iter();
                            ParamAst {
                                qualifiers,
                                ty: ids.next().expect("param type"),
                                name: ids.next().expect("param name"),
                            }
                        })
                        .collect(),
                )
            }
            _ => {}
        }
    }
    let mut idents = idents.into_iter();
    MemberAst {
        qualifiers,
        ty: idents.next().expect("member type"),
        name: idents.next().expect("member name"),
        params,
    }
}

fn build_qualifiers(file: &SourceFile, base: usize, pair: Pair<'_, Rule>) -> Vec<Qualifier> {
    pair.into_inner()
        .filter(|q| q.as_rule() == Rule::qualifier)
        .map(|q| {
            let loc = file.loc(base + q.as_span().start());
            let mut inner = q.into_inner();
            let name = inner.next().expect("qualifier name").as_str().to_string();
            let value = match inner.next() {
                None => QualifierValue::Flag,
                Some(v) => {
                    let braces = v.as_str().starts_with('{');
                    let lits: Vec<Literal> = v
                        .into_inner()
                        .filter(|l| l.as_rule() == Rule::literal)
                        .map(build_literal)
                        .collect();
                    // Written with braces it is a list, even of one element.
                    if braces {
                        QualifierValue::List(lits)
                    } else {
                        QualifierValue::One(lits.into_iter().next().expect("literal"))
                    }
                }
            };
            Qualifier { name, value, loc }
        })
        .collect()
}

fn build_literal(pair: Pair<'_, Rule>) -> Literal {
    let inner = pair.into_inner().next().expect("literal body");
    let s = inner.as_str();
    match inner.as_rule() {
        Rule::string_lit => Literal::Str(
            s[1..s.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\\\", "\\"),
        ),
        Rule::integer => Literal::Int(s.parse().unwrap_or(i64::MAX)),
        Rule::boolean => Literal::Bool(s == "true"),
        _ => Literal::Ident(s.to_string()),
    }
}
