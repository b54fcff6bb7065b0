//! Dispatch by SNMP version; v1 and v2c community-based messages (RFC 3584).

use rasn::types::Integer;
use rasn_snmp::{v1, v2, v2c};

use super::process::Request;
use super::response::{fit, take_response};
use super::{Access, ENVELOPE_SLACK, Shared};
use crate::codec;
use crate::config::Community;
use crate::engine::Counter;
use crate::status::{code, to_v1};

impl Shared {
    /// One datagram in, at most one datagram out.
    pub(super) async fn handle(&self, buf: &[u8]) -> Option<Vec<u8>> {
        match codec::peek_version(buf) {
            None => {
                self.engine.count(Counter::InAsnParseErrs);
                None
            }
            Some(0) => self.handle_v1(buf).await,
            Some(1) => self.handle_v2c(buf).await,
            Some(3) => self.handle_v3(buf).await,
            Some(_) => {
                self.engine.count(Counter::InBadVersions);
                None
            }
        }
    }

    /// RFC 3418 authenticationFailure, when enabled (no receiver: none sent).
    pub(super) fn authentication_failure(&self) {
        if self.mib.authentication_traps() {
            let _ = self
                .standard
                .send(crate::notify::Standard::AuthenticationFailure);
        }
    }

    fn community(&self, name: &[u8]) -> Option<&(Community, String)> {
        let c = self
            .communities
            .iter()
            .find(|(c, _)| c.name.as_bytes() == name);
        if c.is_none() {
            self.engine.count(Counter::InBadCommunityNames);
            self.authentication_failure();
        }
        c
    }

    async fn handle_v2c(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let msg = match rasn::ber::decode_with_remainder::<v2c::Message<v2::Pdus>>(buf) {
            Ok((m, [])) => m,
            _ => {
                self.engine.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let (community, principal) = self.community(&msg.community)?;
        let request = match msg.data {
            v2::Pdus::GetRequest(r) => Request::Get(r.0),
            v2::Pdus::GetNextRequest(r) => Request::GetNext(r.0),
            v2::Pdus::GetBulkRequest(r) => Request::GetBulk(r.0),
            v2::Pdus::SetRequest(r) => Request::Set(r.0),
            _ => {
                self.engine.count(Counter::UnknownPduHandlers);
                return None;
            }
        };
        let access = Access {
            user: principal,
            read_view: &community.view,
            write_view: community.write.then_some(&community.view),
            v1: false,
            admin: false,
        };
        if matches!(request, Request::Set(_)) && !community.write {
            self.engine.count(Counter::InBadCommunityUses);
        }
        let bulk = matches!(request, Request::GetBulk(_));
        let envelope = ENVELOPE_SLACK + msg.community.len();
        let max = self.config.max_message_size;
        let pdu = self
            .process(request, &access, max.saturating_sub(envelope))
            .await;
        let encode = |pdu: v2::Pdu| {
            let m = v2c::Message {
                version: msg.version.clone(),
                community: msg.community.clone(),
                data: v2::Pdus::Response(v2::Response(pdu)),
            };
            (rasn::ber::encode(&m).ok(), take_response(m.data))
        };
        fit(pdu, max, bulk, encode)
    }

    async fn handle_v1(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let msg = match rasn::ber::decode_with_remainder::<v1::Message<v1::Pdus>>(buf) {
            Ok((m, [])) => m,
            _ => {
                self.engine.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let (community, principal) = self.community(&msg.community)?;
        let to_v2 = |p: &v1::Pdu| -> Option<v2::Pdu> {
            Some(v2::Pdu {
                request_id: i32::try_from(&p.request_id).ok()?,
                error_status: 0,
                error_index: 0,
                variable_bindings: p
                    .variable_bindings
                    .iter()
                    .map(|b| v2::VarBind {
                        name: b.name.clone(),
                        value: codec::v1_to_v2(&b.value),
                    })
                    .collect(),
            })
        };
        let request = match &msg.data {
            v1::Pdus::GetRequest(r) => to_v2(&r.0).map(Request::Get),
            v1::Pdus::GetNextRequest(r) => to_v2(&r.0).map(Request::GetNext),
            v1::Pdus::SetRequest(r) => to_v2(&r.0).map(Request::Set),
            _ => {
                self.engine.count(Counter::UnknownPduHandlers);
                return None;
            }
        };
        let Some(request) = request else {
            self.engine.count(Counter::InAsnParseErrs);
            return None;
        };
        if matches!(request, Request::Set(_)) && !community.write {
            self.engine.count(Counter::InBadCommunityUses);
        }
        let access = Access {
            user: principal,
            read_view: &community.view,
            write_view: community.write.then_some(&community.view),
            v1: true,
            admin: false,
        };
        let request_vbs: Vec<v1::VarBind> = match &msg.data {
            v1::Pdus::GetRequest(r) => r.0.variable_bindings.clone(),
            v1::Pdus::GetNextRequest(r) => r.0.variable_bindings.clone(),
            v1::Pdus::SetRequest(r) => r.0.variable_bindings.clone(),
            _ => Vec::new(),
        };
        let max = self.config.max_message_size.min(65_507);
        let pdu = self
            .process(
                request,
                &access,
                max.saturating_sub(ENVELOPE_SLACK + msg.community.len()),
            )
            .await;
        // v1: any exception is noSuchName at that position, with the
        // request's bindings echoed (RFC 3584 4.2.2.1).
        let mut status = to_v1(pdu.error_status);
        let mut index = pdu.error_index;
        let mut out = Vec::with_capacity(pdu.variable_bindings.len());
        if status == 0 {
            for (i, b) in pdu.variable_bindings.iter().enumerate() {
                match &b.value {
                    v2::VarBindValue::Value(v) => match codec::v2_to_v1(v) {
                        Some(v) => out.push(v1::VarBind {
                            name: b.name.clone(),
                            value: v,
                        }),
                        None => {
                            status = code::NO_SUCH_NAME;
                            index = i as u32 + 1;
                            break;
                        }
                    },
                    _ => {
                        status = code::NO_SUCH_NAME;
                        index = i as u32 + 1;
                        break;
                    }
                }
            }
        }
        if status != 0 {
            out = request_vbs;
        }
        let encode = |status: u32, index: u32, vbs: Vec<v1::VarBind>| {
            rasn::ber::encode(&v1::Message {
                version: msg.version.clone(),
                community: msg.community.clone(),
                data: v1::Pdus::GetResponse(v1::GetResponse(v1::Pdu {
                    request_id: Integer::from(i64::from(pdu.request_id)),
                    error_status: Integer::from(i64::from(status)),
                    error_index: Integer::from(i64::from(index)),
                    variable_bindings: vbs,
                })),
            })
            .ok()
        };
        let bytes = encode(status, index, out)?;
        if bytes.len() <= max {
            Some(bytes)
        } else {
            encode(code::TOO_BIG, 0, Vec::new()).filter(|b| b.len() <= max)
        }
    }
}
