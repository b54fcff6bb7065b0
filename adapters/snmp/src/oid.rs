//! Object identifiers as plain `Vec<u32>`: `Vec`'s ordering is exactly
//! SNMP's lexicographic order (a prefix sorts before its extensions).

use std::borrow::Cow;

use rasn::types::ObjectIdentifier;

pub type Oid = Vec<u32>;

pub fn to_asn(oid: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(Cow::Owned(oid.to_vec()))
}

/// [`to_asn`] without the copy.
pub fn into_asn(oid: Oid) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(Cow::Owned(oid))
}

pub fn join(prefix: &[u32], rest: &[u32]) -> Oid {
    let mut v = Vec::with_capacity(prefix.len() + rest.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(rest);
    v
}

pub fn format(oid: &[u32]) -> String {
    oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// Parses `1.3.6.1` (an optional leading dot is allowed).
pub fn parse(s: &str) -> Option<Oid> {
    s.trim_start_matches('.')
        .split('.')
        .map(|p| p.parse().ok())
        .collect()
}

pub const SYSTEM: &[u32] = &[1, 3, 6, 1, 2, 1, 1];
pub const SYS_UPTIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
pub const SNMP_GROUP: &[u32] = &[1, 3, 6, 1, 2, 1, 11];
/// SNMPv2-MIB snmpSet group (snmpSetSerialNo).
pub const SNMP_SET: &[u32] = &[1, 3, 6, 1, 6, 3, 1, 1, 6];
pub const SNMP_TRAP_OID: &[u32] = &[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
pub const ENT_PHYSICAL_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1];
/// ENTITY-MIB entAliasMappingEntry.
pub const ENT_ALIAS_MAPPING_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 47, 1, 3, 2, 1];
pub const ENT_CONTAINS_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 47, 1, 3, 3, 1];
/// entLastChangeTime (a scalar: the instance is `.0`).
pub const ENT_LAST_CHANGE_TIME: &[u32] = &[1, 3, 6, 1, 2, 1, 47, 1, 4, 1];
/// ENTITY-SENSOR-MIB entPhySensorEntry.
pub const ENT_SENSOR_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 99, 1, 1, 1];
pub const ENT_STATE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 131, 1, 1, 1];
pub const ENGINE_GROUP: &[u32] = &[1, 3, 6, 1, 6, 3, 10, 2, 1];
pub const MPD_STATS: &[u32] = &[1, 3, 6, 1, 6, 3, 11, 2, 1];
/// SNMP-TARGET-MIB snmpTargetObjects (snmpUnknownContexts is `.5`).
pub const TARGET_STATS: &[u32] = &[1, 3, 6, 1, 6, 3, 12, 1];
pub const USM_STATS: &[u32] = &[1, 3, 6, 1, 6, 3, 15, 1, 1];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_lexicographic() {
        let mut v: Vec<Oid> = [
            "1.3.6.1.2",
            "1.3.6.1.10",
            "1.3.6.1",
            "1.3.6.1.2.0",
            "1.3.6.1.2.1",
        ]
        .iter()
        .map(|s| parse(s).unwrap())
        .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(|o| format(o)).collect();
        assert_eq!(
            s,
            [
                "1.3.6.1",
                "1.3.6.1.2",
                "1.3.6.1.2.0",
                "1.3.6.1.2.1",
                "1.3.6.1.10"
            ]
        );
        assert_eq!(parse(".1.3.x"), None);
    }
}
