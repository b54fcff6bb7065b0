//! Persistent names: `ne=1/shelf=1/fan=2`. One syntax, used by every face.

use std::fmt;

/// A persistent object name: `type=value` relative names joined by `/`,
/// root first. Types are the schema's `Rdn` qualifiers; values are
/// letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object name '{name}': {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

fn valid_part(s: &str, allow_dot: bool) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (allow_dot && c == '.'))
}

impl ObjectName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |reason| NameError {
            name: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        for rdn in s.split('/') {
            let (t, v) = rdn
                .split_once('=')
                .ok_or_else(|| err("expected type=value"))?;
            if !valid_part(t, false) {
                return Err(err("bad type: use letters, digits, '-' and '_'"));
            }
            if !valid_part(v, true) {
                return Err(err("bad value: use letters, digits, '.', '-' and '_'"));
            }
        }
        Ok(ObjectName(s.to_string()))
    }

    /// A root name with one relative name.
    pub fn root(rdn_type: &str, value: &str) -> Result<Self, NameError> {
        Self::parse(&format!("{rdn_type}={value}"))
    }

    pub fn child(&self, rdn_type: &str, value: &str) -> Result<Self, NameError> {
        Self::parse(&format!("{}/{rdn_type}={value}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The relative names, root first.
    pub fn rdns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.split('/').filter_map(|r| r.split_once('='))
    }

    /// The last relative name: (type, value).
    pub fn leaf(&self) -> (&str, &str) {
        let last = self.0.rsplit('/').next().unwrap_or(&self.0);
        last.split_once('=').unwrap_or((last, ""))
    }

    pub fn parent(&self) -> Option<ObjectName> {
        self.0
            .rsplit_once('/')
            .map(|(p, _)| ObjectName(p.to_string()))
    }

    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// Whether `self` is `ancestor` or lies beneath it.
    pub fn is_within(&self, ancestor: &ObjectName) -> bool {
        self.0 == ancestor.0
            || (self.0.len() > ancestor.0.len()
                && self.0.starts_with(&ancestor.0)
                && self.0.as_bytes()[ancestor.0.len()] == b'/')
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ObjectName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = ObjectName::parse("ne=1/shelf=1/fan=2").unwrap();
        assert_eq!(n.leaf(), ("fan", "2"));
        assert_eq!(n.parent().unwrap().as_str(), "ne=1/shelf=1");
        assert_eq!(n.depth(), 3);
        assert!(n.is_within(&ObjectName::parse("ne=1/shelf=1").unwrap()));
        assert!(!n.is_within(&ObjectName::parse("ne=1/shelf=11").unwrap()));
        assert!(
            !ObjectName::parse("ne=1/shelf=11")
                .unwrap()
                .is_within(&ObjectName::parse("ne=1/shelf=1").unwrap())
        );
        assert!(ObjectName::parse("ne=1//x=2").is_err());
        assert!(ObjectName::parse("ne").is_err());
        assert!(ObjectName::parse("ne=a b").is_err());
        assert_eq!(
            ObjectName::root("ne", "1")
                .unwrap()
                .child("comp", "counterd-a")
                .unwrap()
                .as_str(),
            "ne=1/comp=counterd-a"
        );
    }
}
