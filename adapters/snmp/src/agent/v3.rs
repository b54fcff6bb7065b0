//! SNMPv3 message processing with USM (RFC 3412, 3414): checks, Reports, v3 encoding.

use std::sync::atomic::Ordering;

use rasn::types::OctetString;
use rasn_snmp::{v2, v3};

use super::process::Request;
use super::response::{fit, pdu_request_id, response, take_response, vb};
use super::{Access, ENVELOPE_SLACK, LocalUser, Shared, TIME_WINDOW};
use crate::codec::counter32;
use crate::config::SecurityLevel;
use crate::engine::Counter;
use crate::oid;
use crate::status::code;
use crate::usm;

impl Shared {
    pub(super) async fn handle_v3(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let e = &self.engine;
        let msg = match rasn::ber::decode_with_remainder::<v3::Message>(buf) {
            Ok((m, [])) => m,
            _ => {
                e.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let h = &msg.global_data;
        let msg_id = i32::try_from(&h.message_id).ok().filter(|x| *x >= 0);
        let max_size = i64::try_from(&h.max_size)
            .ok()
            .filter(|x| (484..=0x7fff_ffff).contains(x));
        let (Some(msg_id), Some(max_size), [flags]) = (msg_id, max_size, &h.flags[..]) else {
            e.count(Counter::InvalidMsgs);
            return None;
        };
        let flags = *flags;
        if i64::try_from(&h.security_model).ok() != Some(3) {
            e.count(Counter::UnknownSecurityModels);
            return None;
        }
        let (auth, privacy, reportable) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
        if privacy && !auth {
            e.count(Counter::InvalidMsgs);
            return None;
        }
        let max = (max_size as usize).min(self.config.max_message_size);
        let usm = match rasn::ber::decode_with_remainder::<v3::USMSecurityParameters>(
            &msg.security_parameters,
        ) {
            Ok((u, [])) => u,
            _ => {
                e.count(Counter::InAsnParseErrs);
                return None;
            }
        };
        let cleartext_request_id = match &msg.scoped_data {
            v3::ScopedPduData::CleartextPdu(s) => pdu_request_id(&s.data),
            v3::ScopedPduData::EncryptedPdu(_) => 0,
        };
        let report = |counter: Counter, user: Option<&LocalUser>| {
            e.count(counter);
            tracing::debug!(?counter, reportable, "snmpv3 message refused");
            if !reportable {
                return None;
            }
            self.report(msg_id, max, counter, cleartext_request_id, user)
        };
        if usm.authoritative_engine_id[..] != e.id[..] {
            return report(Counter::UnknownEngineIds, None);
        }
        // The configured users first, then the element's.
        let element_users = self
            .model_users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(user) = self
            .users
            .iter()
            .chain(element_users.iter())
            .find(|u| u.name[..] == usm.user_name[..])
        else {
            return report(Counter::UnknownUserNames, None);
        };
        if (auth && user.auth.is_none()) || (privacy && user.privacy.is_none()) {
            return report(Counter::UnsupportedSecLevels, None);
        }
        if let Some((proto, key)) = user.auth.as_ref().filter(|_| auth) {
            if !usm::verify(*proto, key, &usm.authentication_parameters, buf) {
                self.authentication_failure();
                return report(Counter::WrongDigests, None);
            }
            let boots = i64::try_from(&usm.authoritative_engine_boots).unwrap_or(-1);
            let time = i64::try_from(&usm.authoritative_engine_time).unwrap_or(-1);
            if boots == 0x7fff_ffff
                || boots != i64::from(e.boots)
                || (time - i64::from(e.time())).abs() > TIME_WINDOW
            {
                return report(Counter::NotInTimeWindows, Some(user));
            }
        }
        let scoped = match (&msg.scoped_data, &user.privacy) {
            (v3::ScopedPduData::CleartextPdu(s), _) if !privacy => s.clone(),
            (v3::ScopedPduData::EncryptedPdu(data), Some(key)) if privacy => {
                let boots = u32::try_from(&usm.authoritative_engine_boots).ok();
                let time = u32::try_from(&usm.authoritative_engine_time).ok();
                let plain = boots.zip(time).and_then(|(boots, time)| {
                    key.decrypt(boots, time, &usm.privacy_parameters, data)
                });
                let Some(plain) = plain else {
                    return report(Counter::DecryptionErrors, None);
                };
                match rasn::ber::decode::<v3::ScopedPdu>(&plain) {
                    Ok(s) => s,
                    Err(_) => return report(Counter::DecryptionErrors, None),
                }
            }
            _ => {
                e.count(Counter::InvalidMsgs);
                return None;
            }
        };
        if !scoped.name.is_empty() {
            return report(Counter::UnknownContexts, auth.then_some(user));
        }
        let request = match scoped.data.clone() {
            v2::Pdus::GetRequest(r) => Request::Get(r.0),
            v2::Pdus::GetNextRequest(r) => Request::GetNext(r.0),
            v2::Pdus::GetBulkRequest(r) => Request::GetBulk(r.0),
            v2::Pdus::SetRequest(r) => Request::Set(r.0),
            _ => {
                e.count(Counter::UnknownPduHandlers);
                return None;
            }
        };
        let level = match (auth, privacy) {
            (false, _) => SecurityLevel::NoAuthNoPriv,
            (true, false) => SecurityLevel::AuthNoPriv,
            (true, true) => SecurityLevel::AuthPriv,
        };
        let request_id = request.request_id();
        let access = Access {
            user: &user.principal,
            read_view: &user.read_view,
            // No write view below the user's write level: noAccess.
            write_view: user
                .write_view
                .as_ref()
                .filter(|_| level >= user.write_min_level),
            v1: false,
            admin: user.admin,
        };
        let bulk = matches!(request, Request::GetBulk(_));
        let envelope = ENVELOPE_SLACK * 2
            + 2 * e.id.len()
            + user.name.len()
            + user.auth.as_ref().map_or(0, |(p, _)| p.mac_len())
            + 16;
        let pdu = if level < user.min_level {
            // VACM: no access entry at this level (RFC 3415 3.2).
            response(
                request_id,
                code::AUTHORIZATION_ERROR,
                0,
                request.varbinds().to_vec(),
            )
        } else {
            self.process(request, &access, max.saturating_sub(envelope))
                .await
        };
        let encode = |pdu: v2::Pdu| {
            let scoped = v3::ScopedPdu {
                engine_id: self.engine_id.clone(),
                name: scoped.name.clone(),
                data: v2::Pdus::Response(v2::Response(pdu)),
            };
            let (bytes, scoped) = self.encode_v3_parts(msg_id, scoped, Some(user), auth, privacy);
            (bytes, take_response(scoped.data))
        };
        fit(pdu, max, bulk, encode)
    }

    fn report(
        &self,
        msg_id: i32,
        max: usize,
        counter: Counter,
        request_id: i32,
        user: Option<&LocalUser>,
    ) -> Option<Vec<u8>> {
        let (prefix, arc) = match counter {
            Counter::UnknownContexts => (&[1, 3, 6, 1, 6, 3, 12, 1][..], 5),
            Counter::UnsupportedSecLevels => (oid::USM_STATS, 1),
            Counter::NotInTimeWindows => (oid::USM_STATS, 2),
            Counter::UnknownUserNames => (oid::USM_STATS, 3),
            Counter::UnknownEngineIds => (oid::USM_STATS, 4),
            Counter::WrongDigests => (oid::USM_STATS, 5),
            _ => (oid::USM_STATS, 6),
        };
        let name = oid::join(prefix, &[arc, 0]);
        let value = counter32(self.engine.get(counter));
        let scoped = v3::ScopedPdu {
            engine_id: self.engine_id.clone(),
            name: OctetString::from_static(b""),
            data: v2::Pdus::Report(v2::Report(response(
                request_id,
                0,
                0,
                vec![vb(&name, v2::VarBindValue::Value(value))],
            ))),
        };
        // notInTimeWindow reports are authenticated (RFC 3414 3.2.7a).
        let out = self.encode_v3(msg_id, scoped, user, user.is_some(), false)?;
        (out.len() <= max).then_some(out)
    }

    /// An SNMPv3 notification message from this (authoritative) engine.
    pub(crate) fn encode_v3_notification(&self, user: &str, pdu: v2::Pdus) -> Option<Vec<u8>> {
        self.with_user(user.as_bytes(), |u| {
            let scoped = v3::ScopedPdu {
                engine_id: self.engine_id.clone(),
                name: OctetString::from_static(b""),
                data: pdu,
            };
            let msg_id = (self.salt.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i32;
            self.encode_v3(
                msg_id,
                scoped,
                Some(u),
                u.auth.is_some(),
                u.privacy.is_some(),
            )
        })?
    }

    /// `f` of the user of that name with keys for this engine: the
    /// configured one, else the element's.
    fn with_user<R>(&self, name: &[u8], f: impl FnOnce(&LocalUser) -> R) -> Option<R> {
        if let Some(u) = self.users.iter().find(|u| u.name == name) {
            return Some(f(u));
        }
        let element = self
            .model_users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        element.iter().find(|u| u.name == name).map(f)
    }

    /// Builds (and authenticates / encrypts) an outgoing v3 message from
    /// this engine.
    fn encode_v3(
        &self,
        msg_id: i32,
        scoped: v3::ScopedPdu,
        user: Option<&LocalUser>,
        auth: bool,
        privacy: bool,
    ) -> Option<Vec<u8>> {
        self.encode_v3_parts(msg_id, scoped, user, auth, privacy).0
    }

    /// [`encode_v3`](Self::encode_v3), handing the scoped PDU back.
    fn encode_v3_parts(
        &self,
        msg_id: i32,
        scoped: v3::ScopedPdu,
        user: Option<&LocalUser>,
        auth: bool,
        privacy: bool,
    ) -> (Option<Vec<u8>>, v3::ScopedPdu) {
        let e = &self.engine;
        let auth_key = user.and_then(|u| u.auth.as_ref()).filter(|_| auth);
        let priv_key = user
            .and_then(|u| u.privacy.as_ref())
            .filter(|_| privacy && auth);
        let out = usm::Outgoing {
            msg_id,
            max_size: self.config.max_message_size,
            engine_id: &e.id,
            boots: e.boots,
            time: e.time(),
            user: user.map_or(&[][..], |u| &u.name[..]),
            auth: auth_key.map(|(p, k)| (*p, &k[..])),
            privacy: priv_key,
            salt: self.salt.fetch_add(1, Ordering::Relaxed),
            reportable: false,
            scoped,
        };
        (usm::build_message(&out), out.scoped)
    }

    /// Password, protocols and name of a configured user (notification
    /// targets localise keys for a remote engine).
    /// A user's keys localized for another engine (an inform's receiver):
    /// a configured user's from its passphrases, an element user's from
    /// its stored keys for that engine.
    pub(crate) fn keys_for(&self, name: &str, engine_id: &[u8]) -> Option<crate::notify::Keys> {
        if let Some(u) = self.config.users.iter().find(|u| u.name == name) {
            let auth = u
                .auth
                .as_ref()
                .map(|(proto, pw)| (*proto, usm::localized_key(*proto, pw, engine_id)));
            let privacy = match (&u.privacy, &u.auth) {
                (Some((pp, pw)), Some((ap, _))) => Some(usm::PrivKey::new(*ap, *pp, pw, engine_id)),
                _ => None,
            };
            return Some((auth, privacy));
        }
        let remote = self
            .remote_users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        remote
            .iter()
            .find(|(e, u)| e[..] == *engine_id && u.name == name.as_bytes())
            .map(|(_, u)| (u.auth.clone(), u.privacy.clone()))
    }

    /// snmpTargetParamsSecurityLevel of notifications sent as `name`:
    /// authPriv(3) with a privacy key, authNoPriv(2), else noAuthNoPriv(1).
    pub(crate) fn user_level(&self, name: &str) -> i64 {
        self.with_user(name.as_bytes(), |u| match u {
            u if u.privacy.is_some() => 3,
            u if u.auth.is_some() => 2,
            _ => 1,
        })
        .unwrap_or(1)
    }

    pub(crate) fn next_salt(&self) -> u64 {
        self.salt.fetch_add(1, Ordering::Relaxed)
    }
}

impl crate::notify::Originator for Shared {
    fn engine(&self) -> &crate::engine::Engine {
        &self.engine
    }

    fn max_message_size(&self) -> usize {
        self.config.max_message_size
    }

    fn encode_v3_notification(&self, user: &str, pdu: v2::Pdus) -> Option<Vec<u8>> {
        Shared::encode_v3_notification(self, user, pdu)
    }

    fn keys_for(&self, name: &str, engine_id: &[u8]) -> Option<crate::notify::Keys> {
        Shared::keys_for(self, name, engine_id)
    }

    fn next_salt(&self) -> u64 {
        Shared::next_salt(self)
    }
}
