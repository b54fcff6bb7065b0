//! BER helpers and value conversions between the model and SNMP syntax.

use halyard_cluster_model::meta::{AttrMeta, AttrType, Measure};
use halyard_cluster_model::value::{Timestamp, Value};
use rasn::types::{Integer, OctetString};
use rasn_smi::v1;
use rasn_smi::v2::{ApplicationSyntax, Counter64, ObjectSyntax, SimpleSyntax};
use rasn_snmp::v2::VarBindValue;

use crate::status::code;

pub fn int(v: i64) -> ObjectSyntax {
    ObjectSyntax::Simple(SimpleSyntax::Integer(Integer::from(v)))
}

pub fn octets(b: impl Into<Vec<u8>>) -> ObjectSyntax {
    ObjectSyntax::Simple(SimpleSyntax::String(OctetString::from(b.into())))
}

pub fn object_id(oid: &[u32]) -> ObjectSyntax {
    ObjectSyntax::Simple(SimpleSyntax::ObjectId(crate::oid::to_asn(oid)))
}

pub fn counter32(v: u32) -> ObjectSyntax {
    ObjectSyntax::ApplicationWide(ApplicationSyntax::Counter(v1::Counter(v)))
}

pub fn gauge32(v: u32) -> ObjectSyntax {
    ObjectSyntax::ApplicationWide(ApplicationSyntax::Unsigned(v1::Gauge(v)))
}

pub fn counter64(v: u64) -> ObjectSyntax {
    ObjectSyntax::ApplicationWide(ApplicationSyntax::BigCounter(Counter64(v)))
}

pub fn ticks(v: u32) -> ObjectSyntax {
    ObjectSyntax::ApplicationWide(ApplicationSyntax::Ticks(v1::TimeTicks(v)))
}

/// DateAndTime (SNMPv2-TC), 11 octets, UTC.
pub fn date_and_time(t: Timestamp) -> Vec<u8> {
    let (y, mo, d, h, mi, s, ms) = t.civil();
    let y = y.clamp(0, 65_535) as u16;
    let mut b = y.to_be_bytes().to_vec();
    b.extend_from_slice(&[
        mo as u8,
        d as u8,
        h as u8,
        mi as u8,
        s as u8,
        (ms / 100) as u8,
        b'+',
        0,
        0,
    ]);
    b
}

/// Parses a DateAndTime of 8 (local time taken as UTC) or 11 octets.
pub fn parse_date_and_time(b: &[u8]) -> Option<Timestamp> {
    if b.len() != 8 && b.len() != 11 {
        return None;
    }
    let y = u16::from_be_bytes([b[0], b[1]]);
    let (mo, d, h, mi, s, ds) = (b[2], b[3], b[4], b[5], b[6], b[7]);
    if ds > 9 {
        return None;
    }
    let offset = if b.len() == 11 {
        if !matches!(b[8], b'+' | b'-') || b[9] > 13 || b[10] > 59 {
            return None;
        }
        format!("{}{:02}:{:02}", b[8] as char, b[9], b[10])
    } else {
        "Z".to_string()
    };
    let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ds}00{offset}");
    Timestamp::parse_rfc3339(&text)
}

/// The SNMP syntax of a model value, as the generated MIB declares it.
/// `None` for an absent value (the instance does not exist).
pub fn encode_value(a: &AttrMeta, v: &Value) -> Option<ObjectSyntax> {
    Some(match (a.ty, v) {
        (_, Value::Absent) => return None,
        (_, Value::Bool(b)) => int(if *b { 1 } else { 2 }),
        (_, Value::Str(s)) => octets(s.as_bytes()),
        (_, Value::U32(x)) => match a.measure {
            Measure::Counter => counter32(*x),
            Measure::Gauge | Measure::None => gauge32(*x),
        },
        (_, Value::U64(x)) => counter64(*x),
        (_, Value::I32(x)) => int(i64::from(*x)),
        (AttrType::Real64 { scale }, Value::Real(f)) => int(fixed(*f, scale)),
        (_, Value::Real(f)) => int(fixed(*f, 0)),
        (_, Value::Time(t)) => octets(date_and_time(*t)),
        (_, Value::Enum(x)) => int(i64::from(*x)),
    })
}

fn fixed(f: f64, scale: u32) -> i64 {
    let v = (f * 10f64.powi(scale as i32)).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i64
    }
}

fn as_i64(i: &Integer) -> Option<i64> {
    i64::try_from(i).ok()
}

/// The model value a SET carries for an attribute; `Err` is the
/// error-status (wrongType, wrongLength, wrongValue).
pub fn decode_value(a: &AttrMeta, v: &VarBindValue) -> Result<Value, u32> {
    let VarBindValue::Value(syntax) = v else {
        return Err(code::WRONG_TYPE);
    };
    let wrong_value = code::WRONG_VALUE;
    let value = match (a.ty, syntax) {
        (AttrType::Boolean, ObjectSyntax::Simple(SimpleSyntax::Integer(i))) => match as_i64(i) {
            Some(1) => Value::Bool(true),
            Some(2) => Value::Bool(false),
            _ => return Err(wrong_value),
        },
        (AttrType::String { max_len }, ObjectSyntax::Simple(SimpleSyntax::String(s))) => {
            let text = std::str::from_utf8(s).map_err(|_| wrong_value)?;
            if s.len() > max_len as usize {
                return Err(code::WRONG_LENGTH);
            }
            Value::Str(text.to_string())
        }
        (AttrType::Uint32, ObjectSyntax::ApplicationWide(ApplicationSyntax::Unsigned(g)))
            if a.measure != Measure::Counter =>
        {
            Value::U32(g.0)
        }
        (AttrType::Sint32, ObjectSyntax::Simple(SimpleSyntax::Integer(i))) => Value::I32(
            as_i64(i)
                .and_then(|x| i32::try_from(x).ok())
                .ok_or(wrong_value)?,
        ),
        (AttrType::Real64 { scale }, ObjectSyntax::Simple(SimpleSyntax::Integer(i))) => {
            let x = as_i64(i)
                .and_then(|x| i32::try_from(x).ok())
                .ok_or(wrong_value)?;
            Value::Real(f64::from(x) / 10f64.powi(scale as i32))
        }
        (AttrType::DateTime, ObjectSyntax::Simple(SimpleSyntax::String(s))) => {
            if s.len() != 8 && s.len() != 11 {
                return Err(code::WRONG_LENGTH);
            }
            Value::Time(parse_date_and_time(s).ok_or(wrong_value)?)
        }
        (AttrType::Enum(e), ObjectSyntax::Simple(SimpleSyntax::Integer(i))) => {
            let x = as_i64(i)
                .and_then(|x| u32::try_from(x).ok())
                .ok_or(wrong_value)?;
            if e.by_value(x).is_none() {
                return Err(wrong_value);
            }
            Value::Enum(x)
        }
        _ => return Err(code::WRONG_TYPE),
    };
    Ok(value)
}

/// The `version` of an SNMP message: the first INTEGER inside the outer
/// SEQUENCE, read without decoding the rest.
pub fn peek_version(buf: &[u8]) -> Option<i64> {
    let (tag, rest) = buf.split_first()?;
    if *tag != 0x30 {
        return None;
    }
    let (_, rest) = read_len(rest)?;
    let (tag, rest) = rest.split_first()?;
    if *tag != 0x02 {
        return None;
    }
    let (len, rest) = read_len(rest)?;
    if len == 0 || len > 8 || rest.len() < len {
        return None;
    }
    let mut v: i64 = if rest[0] & 0x80 != 0 { -1 } else { 0 };
    for b in &rest[..len] {
        v = (v << 8) | i64::from(*b);
    }
    Some(v)
}

fn read_len(buf: &[u8]) -> Option<(usize, &[u8])> {
    let (first, rest) = buf.split_first()?;
    if *first < 0x80 {
        return Some((usize::from(*first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 || rest.len() < n {
        return None;
    }
    let len = rest[..n]
        .iter()
        .fold(0usize, |a, b| (a << 8) | usize::from(*b));
    Some((len, &rest[n..]))
}

/// An SNMPv1 value as its SNMPv2 equivalent.
pub fn v1_to_v2(v: &v1::ObjectSyntax) -> VarBindValue {
    use v1::{ApplicationSyntax as A1, NetworkAddress, ObjectSyntax as O1, SimpleSyntax as S1};
    match v {
        O1::Simple(S1::Empty) => VarBindValue::Unspecified,
        O1::Simple(S1::Number(i)) => {
            VarBindValue::Value(ObjectSyntax::Simple(SimpleSyntax::Integer(i.clone())))
        }
        O1::Simple(S1::String(s)) => {
            VarBindValue::Value(ObjectSyntax::Simple(SimpleSyntax::String(s.clone())))
        }
        O1::Simple(S1::Object(o)) => {
            VarBindValue::Value(ObjectSyntax::Simple(SimpleSyntax::ObjectId(o.clone())))
        }
        O1::ApplicationWide(A1::Address(NetworkAddress::Internet(a))) => VarBindValue::Value(
            ObjectSyntax::ApplicationWide(ApplicationSyntax::Address(a.clone())),
        ),
        O1::ApplicationWide(A1::Counter(c)) => VarBindValue::Value(counter32(c.0)),
        O1::ApplicationWide(A1::Gauge(g)) => VarBindValue::Value(gauge32(g.0)),
        O1::ApplicationWide(A1::Ticks(t)) => VarBindValue::Value(ticks(t.0)),
        O1::ApplicationWide(A1::Arbitrary(o)) => VarBindValue::Value(
            ObjectSyntax::ApplicationWide(ApplicationSyntax::Arbitrary(o.clone())),
        ),
    }
}

/// An SNMPv2 value in SNMPv1; `None` for Counter64 (RFC 3584 4.2.2.1).
pub fn v2_to_v1(v: &ObjectSyntax) -> Option<v1::ObjectSyntax> {
    use v1::{ApplicationSyntax as A1, NetworkAddress, ObjectSyntax as O1, SimpleSyntax as S1};
    Some(match v {
        ObjectSyntax::Simple(SimpleSyntax::Integer(i)) => O1::Simple(S1::Number(i.clone())),
        ObjectSyntax::Simple(SimpleSyntax::String(s)) => O1::Simple(S1::String(s.clone())),
        ObjectSyntax::Simple(SimpleSyntax::ObjectId(o)) => O1::Simple(S1::Object(o.clone())),
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Address(a)) => {
            O1::ApplicationWide(A1::Address(NetworkAddress::Internet(a.clone())))
        }
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Counter(c)) => {
            O1::ApplicationWide(A1::Counter(*c))
        }
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Unsigned(g)) => {
            O1::ApplicationWide(A1::Gauge(*g))
        }
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Ticks(t)) => {
            O1::ApplicationWide(A1::Ticks(*t))
        }
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Arbitrary(o)) => {
            O1::ApplicationWide(A1::Arbitrary(o.clone()))
        }
        ObjectSyntax::ApplicationWide(ApplicationSyntax::BigCounter(_)) => return None,
    })
}

/// The BER length of a variable binding, computed rather than encoded
/// (GETBULK sizes each binding it adds); forms not covered here are
/// measured by rasn, whose encoding the tests compare against.
pub fn varbind_len(name: &[u32], value: &VarBindValue) -> usize {
    let value_len = match value {
        VarBindValue::Value(v) => syntax_len(v),
        // NULL, or an exception: a context tag with no content.
        _ => Some(2),
    };
    match (value_len, oid_content_len(name)) {
        (Some(v), Some(n)) => tlv(tlv(n) + v),
        _ => rasn::ber::encode(&rasn_snmp::v2::VarBind {
            name: crate::oid::to_asn(name),
            value: value.clone(),
        })
        .map_or(usize::MAX / 4, |b| b.len()),
    }
}

fn tlv(content: usize) -> usize {
    let len_octets = match content {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 5,
    };
    1 + len_octets + content
}

/// Two's-complement content octets of an INTEGER (minimal form).
fn int_content_len(v: i128) -> usize {
    let mut n = 1;
    while n < 16 && !(-(1i128 << (8 * n - 1))..(1i128 << (8 * n - 1))).contains(&v) {
        n += 1;
    }
    n
}

fn oid_content_len(oid: &[u32]) -> Option<usize> {
    let base128 = |x: u64| (64 - x.leading_zeros() as usize).div_ceil(7).max(1);
    match oid {
        [a @ 0..=2, b, rest @ ..] => Some(
            base128(u64::from(*a) * 40 + u64::from(*b))
                + rest.iter().map(|x| base128(u64::from(*x))).sum::<usize>(),
        ),
        _ => None,
    }
}

fn syntax_len(v: &ObjectSyntax) -> Option<usize> {
    let int = |x: i128| Some(tlv(int_content_len(x)));
    match v {
        ObjectSyntax::Simple(SimpleSyntax::Integer(i)) => int(i64::try_from(i).ok()?.into()),
        ObjectSyntax::Simple(SimpleSyntax::String(s)) => Some(tlv(s.len())),
        ObjectSyntax::Simple(SimpleSyntax::ObjectId(o)) => Some(tlv(oid_content_len(o)?)),
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Counter(c)) => int(c.0.into()),
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Unsigned(g)) => int(g.0.into()),
        ObjectSyntax::ApplicationWide(ApplicationSyntax::Ticks(t)) => int(t.0.into()),
        ObjectSyntax::ApplicationWide(ApplicationSyntax::BigCounter(c)) => int(c.0.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_peek() {
        // v2c get: 30 26 02 01 01 ...
        assert_eq!(peek_version(&[0x30, 0x26, 0x02, 0x01, 0x01, 0x04]), Some(1));
        assert_eq!(peek_version(&[0x30, 0x81, 0x80, 0x02, 0x01, 0x03]), Some(3));
        assert_eq!(peek_version(&[0x30, 0x05, 0x02, 0x01, 0xff]), Some(-1));
        assert_eq!(peek_version(&[0x31, 0x05, 0x02, 0x01, 0x01]), None);
        assert_eq!(peek_version(&[0x30, 0x85, 0, 0, 0, 0, 1]), None);
        assert_eq!(peek_version(&[0x30, 0x05, 0x02, 0x09, 1]), None);
        assert_eq!(peek_version(&[0x30]), None);
        assert_eq!(peek_version(&[]), None);
    }

    #[test]
    fn date_and_time_round_trip() {
        let t = Timestamp(1_795_714_200_200);
        let b = date_and_time(t);
        assert_eq!(b, vec![0x07, 0xea, 11, 26, 17, 30, 0, 2, b'+', 0, 0]);
        assert_eq!(parse_date_and_time(&b), Some(t));
        assert_eq!(parse_date_and_time(&b[..8]), Some(t));
        let mut plus_one = b.clone();
        plus_one[4] = 18;
        plus_one[9] = 1;
        assert_eq!(parse_date_and_time(&plus_one), Some(t));
        assert_eq!(parse_date_and_time(&b[..7]), None);
        let mut bad = b.clone();
        bad[2] = 13;
        assert_eq!(parse_date_and_time(&bad), None);
    }

    #[test]
    fn values_follow_the_generated_mib() {
        use halyard_cluster_model::SCHEMA;
        let fan = SCHEMA.class("Fan").unwrap();
        let (_, admin) = fan.attribute("AdminState").unwrap();
        let (_, present) = fan.attribute("Present").unwrap();
        let (_, serial) = fan.attribute("SerialNumber").unwrap();
        assert_eq!(encode_value(present, &Value::Bool(false)), Some(int(2)));
        assert_eq!(encode_value(admin, &Value::Enum(1)), Some(int(1)));
        assert_eq!(encode_value(admin, &Value::Absent), None);
        let set = |a, s: ObjectSyntax| decode_value(a, &VarBindValue::Value(s));
        assert_eq!(set(admin, int(1)), Ok(Value::Enum(1)));
        assert_eq!(set(admin, int(99)), Err(code::WRONG_VALUE));
        assert_eq!(set(admin, int(-1)), Err(code::WRONG_VALUE));
        assert_eq!(set(admin, octets("x")), Err(code::WRONG_TYPE));
        assert_eq!(set(present, int(1)), Ok(Value::Bool(true)));
        assert_eq!(set(present, int(3)), Err(code::WRONG_VALUE));
        assert_eq!(set(serial, octets("AB12")), Ok(Value::Str("AB12".into())));
        assert_eq!(
            set(serial, octets(vec![0xff, 0xfe])),
            Err(code::WRONG_VALUE)
        );
        assert_eq!(
            set(serial, octets(vec![b'a'; 4000])),
            Err(code::WRONG_LENGTH)
        );
        assert_eq!(set(serial, gauge32(1)), Err(code::WRONG_TYPE));
        assert_eq!(
            decode_value(admin, &VarBindValue::Unspecified),
            Err(code::WRONG_TYPE)
        );
    }

    #[test]
    fn computed_varbind_lengths_match_rasn() {
        let names: Vec<Vec<u32>> = vec![
            vec![1, 3],
            vec![1, 3, 6, 1, 2, 1, 1, 5, 0],
            vec![2, 999, 127, 128, 16_383, 16_384, u32::MAX],
            vec![1, 3, 6, 1, 4, 1, 32473, 77, 1, 100, 1, 3, 4_000_000],
        ];
        let mut values = vec![
            VarBindValue::Unspecified,
            VarBindValue::NoSuchObject,
            VarBindValue::NoSuchInstance,
            VarBindValue::EndOfMibView,
        ];
        for x in [0i64, 1, 127, 128, 255, 256, -1, -128, -129, 32_767, -32_769] {
            values.push(VarBindValue::Value(int(x)));
        }
        values.push(VarBindValue::Value(int(i64::from(i32::MIN))));
        values.push(VarBindValue::Value(int(i64::MAX)));
        for x in [0u32, 127, 128, 255, 65_535, 1 << 23, 1 << 31, u32::MAX] {
            values.push(VarBindValue::Value(counter32(x)));
            values.push(VarBindValue::Value(gauge32(x)));
            values.push(VarBindValue::Value(ticks(x)));
        }
        for x in [0u64, 1 << 31, 1 << 63, u64::MAX] {
            values.push(VarBindValue::Value(counter64(x)));
        }
        for n in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 70_000] {
            values.push(VarBindValue::Value(octets(vec![b'x'; n])));
        }
        for o in &names {
            values.push(VarBindValue::Value(object_id(o)));
        }
        for name in &names {
            for value in &values {
                let encoded = rasn::ber::encode(&rasn_snmp::v2::VarBind {
                    name: crate::oid::to_asn(name),
                    value: value.clone(),
                })
                .unwrap();
                assert_eq!(
                    varbind_len(name, value),
                    encoded.len(),
                    "{name:?} {value:?}"
                );
            }
        }
    }
}
