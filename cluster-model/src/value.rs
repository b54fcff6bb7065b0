//! Dynamic attribute values: what adapters read and write through the port.

use std::fmt;

use crate::meta::{AttrType, EnumMeta};

/// A point in time: milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    /// Civil date and time (UTC): (year, month, day, hour, minute, second, milli).
    pub fn civil(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let ms = self.0.rem_euclid(1000) as u32;
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, ms)
    }

    /// Parses RFC 3339 (`2026-11-26T17:30:00Z`, `...T17:30:00.250+01:00`).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut ms = 0;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                return None;
            }
            let first3: String = digits.chars().chain("000".chars()).take(3).collect();
            ms = first3.parse::<i64>().ok()?;
            rest = &frac[digits.len()..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
                let oh = o.get(1..3)?.parse::<i64>().ok()?;
                let om = o.get(4..6)?.parse::<i64>().ok()?;
                let sign = if o.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return None,
        };
        // days_from_civil.
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
        Some(Timestamp(secs * 1000 + ms))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, as YANG's date-and-time allows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, ms) = self.civil();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

/// One attribute value. `Absent` stands for an unset optional attribute
/// (a datetime that has not happened yet).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Absent,
    Bool(bool),
    Str(String),
    U32(u32),
    U64(u64),
    I32(i32),
    Real(f64),
    Time(Timestamp),
    /// The numeric value of an enumeration label.
    Enum(u32),
}

/// Why a value does not fit an attribute.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("wrong type: expected {expected}")]
    WrongType { expected: String },
    #[error("wrong length: at most {max} characters")]
    WrongLength { max: u32 },
    #[error("wrong value: {reason}")]
    WrongValue { reason: String },
}

/// XML 1.0's `Char` production (which YANG strings follow): tab, newline,
/// carriage return and everything from U+0020 but U+FFFE and U+FFFF
/// (Rust's `char` excludes the surrogates already).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

impl Value {
    /// Checks that the value fits the type: kind, length, range, labels.
    pub fn check(&self, ty: &AttrType) -> Result<(), ValueError> {
        let wrong = || ValueError::WrongType {
            expected: type_name(ty),
        };
        match (ty, self) {
            (_, Value::Absent) => Ok(()),
            (AttrType::Boolean, Value::Bool(_))
            | (AttrType::Uint32, Value::U32(_))
            | (AttrType::Uint64, Value::U64(_))
            | (AttrType::Sint32, Value::I32(_))
            | (AttrType::Real64 { .. }, Value::Real(_))
            | (AttrType::DateTime, Value::Time(_)) => Ok(()),
            (AttrType::String { max_len }, Value::Str(s)) => {
                if s.chars().count() > *max_len as usize {
                    Err(ValueError::WrongLength { max: *max_len })
                } else if let Some(c) = s.chars().find(|c| !is_xml_char(*c)) {
                    // YANG's string type is XML 1.0 Char: a stored 0x01 would
                    // make every later XML document of every face ill-formed.
                    Err(ValueError::WrongValue {
                        reason: format!(
                            "character U+{:04X} is not allowed (XML 1.0 Char production)",
                            c as u32
                        ),
                    })
                } else {
                    Ok(())
                }
            }
            (AttrType::Enum(e), Value::Enum(v)) => match e.by_value(*v) {
                Some(_) => Ok(()),
                None => Err(ValueError::WrongValue {
                    reason: format!("{v} is not a value of {}", e.name),
                }),
            },
            _ => Err(wrong()),
        }
    }

    /// Parses the text form used by NETCONF, HTTP and the config file.
    pub fn parse(ty: &AttrType, text: &str) -> Result<Value, ValueError> {
        let t = text.trim();
        let bad = || ValueError::WrongValue {
            reason: format!("'{t}' is not a valid {}", type_name(ty)),
        };
        let v = match ty {
            AttrType::Boolean => match t {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad()),
            },
            AttrType::String { .. } => Value::Str(text.to_string()),
            AttrType::Uint32 => Value::U32(t.parse().map_err(|_| bad())?),
            AttrType::Uint64 => Value::U64(t.parse().map_err(|_| bad())?),
            AttrType::Sint32 => Value::I32(t.parse().map_err(|_| bad())?),
            AttrType::Real64 { scale } => {
                let f: f64 = t.parse().map_err(|_| bad())?;
                if !f.is_finite() || fraction_digits(t) > *scale as usize {
                    return Err(bad());
                }
                Value::Real(f)
            }
            AttrType::DateTime => Value::Time(Timestamp::parse_rfc3339(t).ok_or_else(bad)?),
            AttrType::Enum(e) => Value::Enum(enum_label(e, t).ok_or_else(bad)?),
        };
        v.check(ty)?;
        Ok(v)
    }

    /// The text form: YANG/XML lexical representation for the type.
    pub fn render(&self, ty: &AttrType) -> String {
        match (self, ty) {
            (Value::Absent, _) => String::new(),
            (Value::Bool(b), _) => b.to_string(),
            (Value::Str(s), _) => s.clone(),
            (Value::U32(v), _) => v.to_string(),
            (Value::U64(v), _) => v.to_string(),
            (Value::I32(v), _) => v.to_string(),
            (Value::Real(v), AttrType::Real64 { scale }) => {
                let s = format!("{v:.prec$}", prec = *scale as usize);
                // YANG decimal64 needs at least one fraction digit.
                if *scale == 0 { format!("{s}.0") } else { s }
            }
            (Value::Real(v), _) => v.to_string(),
            (Value::Time(t), _) => t.to_string(),
            (Value::Enum(v), AttrType::Enum(e)) => e
                .by_value(*v)
                .map_or_else(|| v.to_string(), |x| x.yang_name.to_string()),
            (Value::Enum(v), _) => v.to_string(),
        }
    }

    /// A number for metrics and thresholds.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::U32(v) | Value::Enum(v) => Some(f64::from(*v)),
            Value::U64(v) => Some(*v as f64),
            Value::I32(v) => Some(f64::from(*v)),
            Value::Real(v) => Some(*v),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Time(t) => Some(t.0 as f64 / 1000.0),
            Value::Absent | Value::Str(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn fraction_digits(t: &str) -> usize {
    t.split_once('.').map_or(0, |(_, f)| f.len())
}

fn enum_label(e: &EnumMeta, t: &str) -> Option<u32> {
    e.by_name(t)
        .map(|v| v.value)
        .or_else(|| t.parse::<u32>().ok().filter(|v| e.by_value(*v).is_some()))
}

/// A human name of a type, for error messages.
pub fn type_name(ty: &AttrType) -> String {
    match ty {
        AttrType::Boolean => "boolean".into(),
        AttrType::String { max_len } => format!("string of at most {max_len} characters"),
        AttrType::Uint32 => "uint32".into(),
        AttrType::Uint64 => "uint64".into(),
        AttrType::Sint32 => "int32".into(),
        AttrType::Real64 { scale } => format!("decimal with at most {scale} fraction digits"),
        AttrType::DateTime => "date-and-time".into(),
        AttrType::Enum(e) => format!(
            "{} ({})",
            e.name,
            e.values
                .iter()
                .map(|v| v.yang_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A generated enumeration type.
pub trait SchemaEnum: Sized + Copy + 'static {
    const META: &'static EnumMeta;
    fn value(self) -> u32;
    fn from_value(v: u32) -> Option<Self>;
}

/// A generated class type: a typed view of one managed object's attributes.
pub trait ManagedClass: Sized {
    const META: &'static crate::meta::ClassMeta;
    /// Values in the order of `META.attributes`.
    fn to_values(&self) -> Vec<Value>;
    /// Builds the typed view; absent or mistyped values take their defaults.
    fn from_values(values: &[Value]) -> Self;
}

// Conversions used by generated code.
#[doc(hidden)]
pub mod conv {
    use super::{SchemaEnum, Timestamp, Value};

    pub fn bool_of(v: Option<&Value>) -> bool {
        matches!(v, Some(Value::Bool(true)))
    }
    pub fn string_of(v: Option<&Value>) -> String {
        match v {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }
    pub fn u32_of(v: Option<&Value>) -> u32 {
        match v {
            Some(Value::U32(x)) => *x,
            _ => 0,
        }
    }
    pub fn u64_of(v: Option<&Value>) -> u64 {
        match v {
            Some(Value::U64(x)) => *x,
            _ => 0,
        }
    }
    pub fn i32_of(v: Option<&Value>) -> i32 {
        match v {
            Some(Value::I32(x)) => *x,
            _ => 0,
        }
    }
    pub fn f64_of(v: Option<&Value>) -> f64 {
        match v {
            Some(Value::Real(x)) => *x,
            _ => 0.0,
        }
    }
    pub fn time_of(v: Option<&Value>) -> Option<Timestamp> {
        match v {
            Some(Value::Time(t)) => Some(*t),
            _ => None,
        }
    }
    pub fn enum_of<E: SchemaEnum + Default>(v: Option<&Value>) -> E {
        match v {
            Some(Value::Enum(x)) => E::from_value(*x).unwrap_or_default(),
            _ => E::default(),
        }
    }
    pub fn time_value(t: Option<Timestamp>) -> Value {
        t.map_or(Value::Absent, Value::Time)
    }
    /// `s` cut to at most `max` characters (an attribute's `MaxLen`).
    pub fn cut(s: String, max: usize) -> String {
        match s.char_indices().nth(max) {
            Some((at, _)) => s[..at].to_string(),
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp(1_795_714_200_250);
        let s = t.to_string();
        assert_eq!(s, "2026-11-26T17:30:00.250Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-26T18:30:00.250+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn parse_checks_types() {
        assert_eq!(Value::parse(&AttrType::Uint32, "42"), Ok(Value::U32(42)));
        assert!(Value::parse(&AttrType::Uint32, "-1").is_err());
        assert!(Value::parse(&AttrType::String { max_len: 3 }, "abcd").is_err());
        assert_eq!(
            Value::parse(&AttrType::Real64 { scale: 3 }, "1.25"),
            Ok(Value::Real(1.25))
        );
        assert!(Value::parse(&AttrType::Real64 { scale: 1 }, "1.25").is_err());
        assert_eq!(
            Value::Real(0.5).render(&AttrType::Real64 { scale: 6 }),
            "0.500000"
        );
    }
}
