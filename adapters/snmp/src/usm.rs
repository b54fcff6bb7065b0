//! USM cryptography: password to key and key localisation (RFC 3414 A.2,
//! RFC 7860), HMAC authentication, AES-128-CFB privacy (RFC 3826).
//! Every primitive comes from the RustCrypto crates.

use aes::Aes128;
use cfb_mode::cipher::KeyIvInit;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::config::AuthProtocol;

impl AuthProtocol {
    /// Length of msgAuthenticationParameters.
    pub fn mac_len(self) -> usize {
        match self {
            AuthProtocol::Md5 | AuthProtocol::Sha1 => 12,
            AuthProtocol::Sha224 => 16,
            AuthProtocol::Sha256 => 24,
            AuthProtocol::Sha384 => 32,
            AuthProtocol::Sha512 => 48,
        }
    }
}

fn password_to_key_with<D: Digest>(password: &[u8]) -> Vec<u8> {
    let mut h = D::new();
    if !password.is_empty() {
        // Hash 1 MiB of the repeated password, 64 octets at a time.
        let mut block = [0u8; 64];
        let mut idx = 0usize;
        for _ in 0..(1_048_576 / 64) {
            for b in &mut block {
                *b = password[idx % password.len()];
                idx += 1;
            }
            h.update(block);
        }
    }
    h.finalize().to_vec()
}

fn localize_with<D: Digest>(ku: &[u8], engine_id: &[u8]) -> Vec<u8> {
    let mut h = D::new();
    h.update(ku);
    h.update(engine_id);
    h.update(ku);
    h.finalize().to_vec()
}

/// The master key of a password (Ku, RFC 3414 A.2), before localisation.
pub fn password_to_key(proto: AuthProtocol, password: &str) -> Vec<u8> {
    let p = password.as_bytes();
    match proto {
        AuthProtocol::Md5 => password_to_key_with::<Md5>(p),
        AuthProtocol::Sha1 => password_to_key_with::<Sha1>(p),
        AuthProtocol::Sha224 => password_to_key_with::<Sha224>(p),
        AuthProtocol::Sha256 => password_to_key_with::<Sha256>(p),
        AuthProtocol::Sha384 => password_to_key_with::<Sha384>(p),
        AuthProtocol::Sha512 => password_to_key_with::<Sha512>(p),
    }
}

/// The key localised for `engine_id` (Kul).
pub fn localized_key(proto: AuthProtocol, password: &str, engine_id: &[u8]) -> Vec<u8> {
    let p = password.as_bytes();
    match proto {
        AuthProtocol::Md5 => localize_with::<Md5>(&password_to_key_with::<Md5>(p), engine_id),
        AuthProtocol::Sha1 => localize_with::<Sha1>(&password_to_key_with::<Sha1>(p), engine_id),
        AuthProtocol::Sha224 => {
            localize_with::<Sha224>(&password_to_key_with::<Sha224>(p), engine_id)
        }
        AuthProtocol::Sha256 => {
            localize_with::<Sha256>(&password_to_key_with::<Sha256>(p), engine_id)
        }
        AuthProtocol::Sha384 => {
            localize_with::<Sha384>(&password_to_key_with::<Sha384>(p), engine_id)
        }
        AuthProtocol::Sha512 => {
            localize_with::<Sha512>(&password_to_key_with::<Sha512>(p), engine_id)
        }
    }
}

macro_rules! mac {
    ($d:ty, $key:expr, $parts:expr) => {{
        let mut m = <Hmac<$d> as KeyInit>::new_from_slice($key).expect("HMAC takes any key length");
        for p in $parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }};
}

/// The truncated HMAC of `data` (the whole message with zeroed auth params).
pub fn digest(proto: AuthProtocol, key: &[u8], data: &[u8]) -> Vec<u8> {
    digest_parts(proto, key, &[data])
}

/// [`digest`] of the concatenation of `parts` (no copy of the message).
fn digest_parts(proto: AuthProtocol, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut full = match proto {
        AuthProtocol::Md5 => mac!(Md5, key, parts),
        AuthProtocol::Sha1 => mac!(Sha1, key, parts),
        AuthProtocol::Sha224 => mac!(Sha224, key, parts),
        AuthProtocol::Sha256 => mac!(Sha256, key, parts),
        AuthProtocol::Sha384 => mac!(Sha384, key, parts),
        AuthProtocol::Sha512 => mac!(Sha512, key, parts),
    };
    full.truncate(proto.mac_len());
    full
}

/// One BER TLV at `pos` with a definite length: (tag, content range).
fn tlv(b: &[u8], pos: usize) -> Option<(u8, std::ops::Range<usize>)> {
    let tag = *b.get(pos)?;
    let first = usize::from(*b.get(pos + 1)?);
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | usize::from(*b.get(pos + 2 + i)?);
        }
        (len, pos + 2 + n)
    };
    let end = start.checked_add(len).filter(|e| *e <= b.len())?;
    Some((tag, start..end))
}

/// Where the content of msgAuthenticationParameters lies in an encoded
/// v3 message, found by walking its structure (message, version, header,
/// security parameters; engine ID, boots, time, user name) rather than
/// by searching the octets.
pub fn auth_params_range(msg: &[u8]) -> Option<std::ops::Range<usize>> {
    let (0x30, m) = tlv(msg, 0)? else {
        return None;
    };
    let (_, version) = tlv(msg, m.start)?;
    let (_, header) = tlv(msg, version.end)?;
    let (0x04, params) = tlv(msg, header.end)? else {
        return None;
    };
    let (0x30, usm) = tlv(msg, params.start)? else {
        return None;
    };
    let mut pos = usm.start;
    for _ in 0..4 {
        pos = tlv(msg, pos)?.1.end;
    }
    match tlv(msg, pos)? {
        (0x04, r) if r.end <= usm.end => Some(r),
        _ => None,
    }
}

/// Constant-time comparison of two digests.
pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Finds the zeroed msgAuthenticationParameters (`04 len 00*len`) in an
/// encoded message: the offset of its first content octet.
pub fn find_auth_params(msg: &[u8], len: usize) -> Option<usize> {
    let mut pat = vec![0x04, len as u8];
    pat.resize(len + 2, 0);
    msg.windows(pat.len()).position(|w| w == pat).map(|p| p + 2)
}

/// Verifies the digest `received` of a whole message `bytes` (RFC 3414
/// 6.3.2): the digest is located in the message, zeroed, recomputed.
pub fn verify(proto: AuthProtocol, key: &[u8], received: &[u8], bytes: &[u8]) -> bool {
    if received.len() != proto.mac_len() {
        return false;
    }
    let at = match auth_params_range(bytes) {
        Some(r) if bytes[r.clone()] == *received => r.start,
        // Not where the structure says: search, as RFC 3414 allows any
        // encoding the decoder accepted.
        _ => {
            let mut pat = vec![0x04, received.len() as u8];
            pat.extend_from_slice(received);
            let Some(pos) = bytes.windows(pat.len()).position(|w| w == pat) else {
                return false;
            };
            pos + 2
        }
    };
    let zeros = [0u8; 64];
    let end = at + received.len();
    let d = digest_parts(
        proto,
        key,
        &[&bytes[..at], &zeros[..received.len()], &bytes[end..]],
    );
    digest_eq(&d, received)
}

fn aes_iv(boots: u32, time: u32, salt: &[u8; 8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(salt);
    iv
}

/// AES-128-CFB encryption in place (RFC 3826); the key is the first 16
/// octets of the localised privacy key.
pub fn aes_encrypt(key: &[u8], boots: u32, time: u32, salt: &[u8; 8], data: &mut [u8]) {
    let iv = aes_iv(boots, time, salt);
    if let Ok(c) = cfb_mode::Encryptor::<Aes128>::new_from_slices(&key[..16.min(key.len())], &iv) {
        c.encrypt(data);
    }
}

/// AES-128-CFB decryption in place; `false` if the key is unusable.
pub fn aes_decrypt(key: &[u8], boots: u32, time: u32, salt: &[u8; 8], data: &mut [u8]) -> bool {
    let iv = aes_iv(boots, time, salt);
    match cfb_mode::Decryptor::<Aes128>::new_from_slices(&key[..16.min(key.len())], &iv) {
        Ok(c) => {
            c.decrypt(data);
            true
        }
        Err(_) => false,
    }
}

/// An outgoing SNMPv3 message, before encoding.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub msg_id: i32,
    pub max_size: usize,
    /// The authoritative engine: ours for responses and traps, the
    /// receiver's for informs.
    pub engine_id: &'a [u8],
    pub boots: u32,
    pub time: u32,
    pub user: &'a [u8],
    /// Authentication protocol and localised key.
    pub auth: Option<(AuthProtocol, &'a [u8])>,
    /// Localised privacy key (AES-128); needs `auth`.
    pub privacy: Option<&'a [u8]>,
    /// Unique per message: the AES salt.
    pub salt: u64,
    pub reportable: bool,
    pub scoped: rasn_snmp::v3::ScopedPdu,
}

/// Encodes a v3 message, encrypting the scoped PDU and authenticating the
/// whole message as the security level asks.
pub fn build_message(m: &Outgoing<'_>) -> Option<Vec<u8>> {
    use rasn::types::{Integer, OctetString};
    use rasn_snmp::v3;
    let privacy = m.privacy.filter(|_| m.auth.is_some());
    let salt = m.salt.to_be_bytes();
    let scoped_data = match privacy {
        Some(key) => {
            let mut plain = rasn::ber::encode(&m.scoped).ok()?;
            aes_encrypt(key, m.boots, m.time, &salt, &mut plain);
            v3::ScopedPduData::EncryptedPdu(OctetString::from(plain))
        }
        None => v3::ScopedPduData::CleartextPdu(m.scoped.clone()),
    };
    let mac_len = m.auth.map_or(0, |(p, _)| p.mac_len());
    let params = v3::USMSecurityParameters {
        authoritative_engine_id: OctetString::from(m.engine_id.to_vec()),
        authoritative_engine_boots: Integer::from(i64::from(m.boots)),
        authoritative_engine_time: Integer::from(i64::from(m.time)),
        user_name: OctetString::from(m.user.to_vec()),
        authentication_parameters: OctetString::from(vec![0u8; mac_len]),
        privacy_parameters: OctetString::from(if privacy.is_some() {
            salt.to_vec()
        } else {
            Vec::new()
        }),
    };
    let flags = u8::from(m.auth.is_some())
        | (u8::from(privacy.is_some()) << 1)
        | (u8::from(m.reportable) << 2);
    let msg = v3::Message {
        version: Integer::from(3),
        global_data: v3::HeaderData {
            message_id: Integer::from(i64::from(m.msg_id)),
            max_size: Integer::from(m.max_size as i64),
            flags: OctetString::from(vec![flags]),
            security_model: Integer::from(3),
        },
        security_parameters: OctetString::from(rasn::ber::encode(&params).ok()?),
        scoped_data,
    };
    let mut out = rasn::ber::encode(&msg).ok()?;
    if let Some((proto, key)) = m.auth {
        let pos = auth_params_range(&out)
            .filter(|r| r.len() == mac_len)
            .map(|r| r.start)
            .or_else(|| find_auth_params(&out, mac_len))?;
        let d = digest(proto, key, &out);
        out[pos..pos + mac_len].copy_from_slice(&d);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        crate::engine::to_hex(b)
    }

    /// RFC 3414 A.3.1 and A.3.2: "maplesyrup" localised for engine
    /// 000000000000000000000002.
    #[test]
    fn rfc3414_key_localisation_vectors() {
        let engine = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(
            hex(&localized_key(AuthProtocol::Md5, "maplesyrup", &engine)),
            "526f5eed9fcce26f8964c2930787d82b"
        );
        assert_eq!(
            hex(&localized_key(AuthProtocol::Sha1, "maplesyrup", &engine)),
            "6695febc9288e36282235fc7151f128497b38f3f"
        );
    }

    #[test]
    fn digest_lengths_and_aes_round_trip() {
        for (p, n) in [
            (AuthProtocol::Md5, 12),
            (AuthProtocol::Sha1, 12),
            (AuthProtocol::Sha224, 16),
            (AuthProtocol::Sha256, 24),
            (AuthProtocol::Sha384, 32),
            (AuthProtocol::Sha512, 48),
        ] {
            let k = localized_key(p, "password1", b"engine1");
            let d = digest(p, &k, b"hello");
            assert_eq!(d.len(), n);
            assert!(digest_eq(&d, &digest(p, &k, b"hello")));
            assert!(!digest_eq(&d, &digest(p, &k, b"hellO")));
        }
        let key = localized_key(AuthProtocol::Sha256, "privpass", b"engine1");
        let mut data = b"a scoped PDU of any length".to_vec();
        aes_encrypt(&key, 3, 77, &[1; 8], &mut data);
        assert_ne!(&data[..], b"a scoped PDU of any length");
        assert!(aes_decrypt(&key, 3, 77, &[1; 8], &mut data));
        assert_eq!(&data[..], b"a scoped PDU of any length");
    }

    #[test]
    fn verifies_digests_in_place() {
        let key = localized_key(AuthProtocol::Sha256, "password1", b"engine1");
        let mut msg = vec![0x30, 0x1c, 0x04, 0x18];
        msg.extend_from_slice(&[0u8; 24]);
        let d = digest(AuthProtocol::Sha256, &key, &msg);
        msg[4..].copy_from_slice(&d);
        assert!(verify(AuthProtocol::Sha256, &key, &d, &msg));
        assert!(!verify(AuthProtocol::Sha256, &key, &d[..12], &msg));
        assert!(!verify(AuthProtocol::Sha1, &key, &d, &msg));
        let mut bad = msg.clone();
        bad[1] ^= 1;
        assert!(!verify(AuthProtocol::Sha256, &key, &d, &bad));
    }

    #[test]
    fn finds_zeroed_auth_params() {
        let msg = [
            0x30, 0x10, 0x04, 0x02, 0x00, 0x01, 0x04, 0x03, 0, 0, 0, 0x05,
        ];
        assert_eq!(find_auth_params(&msg, 3), Some(8));
        assert_eq!(find_auth_params(&msg, 4), None);
    }

    #[test]
    fn auth_params_are_found_by_structure() {
        use rasn::types::OctetString;
        use rasn_snmp::{v2, v3};
        let key = localized_key(AuthProtocol::Sha256, "password1", b"engine1");
        let out = build_message(&Outgoing {
            msg_id: 7,
            max_size: 1500,
            engine_id: b"engine1",
            boots: 1,
            time: 2,
            user: b"user",
            auth: Some((AuthProtocol::Sha256, &key)),
            privacy: None,
            salt: 3,
            reportable: false,
            scoped: v3::ScopedPdu {
                engine_id: OctetString::from_static(b"engine1"),
                name: OctetString::from_static(b""),
                data: v2::Pdus::GetRequest(v2::GetRequest(v2::Pdu {
                    request_id: 1,
                    error_status: 0,
                    error_index: 0,
                    variable_bindings: Vec::new(),
                })),
            },
        })
        .unwrap();
        let r = auth_params_range(&out).unwrap();
        assert_eq!(r.len(), 24);
        let mut zeroed = out.clone();
        zeroed[r.clone()].fill(0);
        assert_eq!(find_auth_params(&zeroed, 24), Some(r.start));
        assert!(verify(AuthProtocol::Sha256, &key, &out[r.clone()], &out));
        let mut bad = out.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(!verify(AuthProtocol::Sha256, &key, &out[r], &bad));
    }
}
