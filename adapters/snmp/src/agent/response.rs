//! Response PDUs, fitted to the message size limit.

use rasn_snmp::v2;

use crate::oid;
use crate::status::code;

pub(super) fn response(
    request_id: i32,
    error_status: u32,
    error_index: u32,
    vbs: Vec<v2::VarBind>,
) -> v2::Pdu {
    v2::Pdu {
        request_id,
        error_status,
        error_index,
        variable_bindings: vbs,
    }
}

pub(super) fn vb(name: &[u32], value: v2::VarBindValue) -> v2::VarBind {
    v2::VarBind {
        name: oid::to_asn(name),
        value,
    }
}

/// A GETBULK answer cut at the size limit: tooBig only if nothing fits.
pub(super) fn bulk_trimmed(id: i32, out: Vec<v2::VarBind>) -> v2::Pdu {
    if out.is_empty() {
        response(id, code::TOO_BIG, 0, out)
    } else {
        response(id, 0, 0, out)
    }
}

pub(super) fn pdu_request_id(p: &v2::Pdus) -> i32 {
    match p {
        v2::Pdus::GetRequest(r) => r.0.request_id,
        v2::Pdus::GetNextRequest(r) => r.0.request_id,
        v2::Pdus::GetBulkRequest(r) => r.0.request_id,
        v2::Pdus::SetRequest(r) => r.0.request_id,
        v2::Pdus::InformRequest(r) => r.0.request_id,
        v2::Pdus::Response(r) => r.0.request_id,
        v2::Pdus::Trap(r) => r.0.request_id,
        v2::Pdus::Report(r) => r.0.request_id,
    }
}

/// Encodes a response within `max` octets: drops trailing bindings of an
/// over-long GETBULK answer, else answers tooBig with no bindings (RFC
/// 3416 4.2.1), else nothing. `encode` hands the PDU back, so that the
/// usual single attempt copies nothing.
pub(super) fn fit(
    mut pdu: v2::Pdu,
    max: usize,
    bulk: bool,
    mut encode: impl FnMut(v2::Pdu) -> (Option<Vec<u8>>, v2::Pdu),
) -> Option<Vec<u8>> {
    loop {
        let (bytes, back) = encode(pdu);
        pdu = back;
        let bytes = bytes?;
        if bytes.len() <= max {
            return Some(bytes);
        }
        if bulk && pdu.error_status == 0 && pdu.variable_bindings.len() > 1 {
            let excess = bytes.len() - max;
            let avg = bytes.len() / pdu.variable_bindings.len().max(1);
            let drop = (excess / avg.max(1) + 1).min(pdu.variable_bindings.len() - 1);
            let keep = pdu.variable_bindings.len() - drop;
            pdu.variable_bindings.truncate(keep);
            continue;
        }
        if pdu.error_status == code::TOO_BIG {
            return None;
        }
        pdu = response(pdu.request_id, code::TOO_BIG, 0, Vec::new());
    }
}

/// The PDU of a Response the agent built (an empty one cannot occur).
pub(super) fn take_response(pdus: v2::Pdus) -> v2::Pdu {
    match pdus {
        v2::Pdus::Response(r) => r.0,
        _ => response(0, code::GEN_ERR, 0, Vec::new()),
    }
}
