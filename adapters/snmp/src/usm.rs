//! USM cryptography: password to key and key localisation (RFC 3414 A.2,
//! RFC 7860), HMAC authentication, and privacy: CBC-DES (RFC 3414 8),
//! AES-CFB with 128-bit keys (RFC 3826) and 192/256-bit keys in both key
//! extensions (Blumenthal, Reeder). Every primitive comes from the
//! RustCrypto crates.

use aes::{Aes128, Aes192, Aes256};
use cfb_mode::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::config::{AuthProtocol, PrivProtocol};

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
    octets_to_key(proto, password.as_bytes())
}

/// The key localised for `engine_id` (Kul).
pub fn localized_key(proto: AuthProtocol, password: &str, engine_id: &[u8]) -> Vec<u8> {
    localize(proto, &password_to_key(proto, password), engine_id)
}

/// Kul of a master key Ku.
fn localize(proto: AuthProtocol, ku: &[u8], engine_id: &[u8]) -> Vec<u8> {
    match proto {
        AuthProtocol::Md5 => localize_with::<Md5>(ku, engine_id),
        AuthProtocol::Sha1 => localize_with::<Sha1>(ku, engine_id),
        AuthProtocol::Sha224 => localize_with::<Sha224>(ku, engine_id),
        AuthProtocol::Sha256 => localize_with::<Sha256>(ku, engine_id),
        AuthProtocol::Sha384 => localize_with::<Sha384>(ku, engine_id),
        AuthProtocol::Sha512 => localize_with::<Sha512>(ku, engine_id),
    }
}

/// Ku of any octets taken as a passphrase (the Reeder extension feeds
/// a key back in).
fn octets_to_key(proto: AuthProtocol, p: &[u8]) -> Vec<u8> {
    match proto {
        AuthProtocol::Md5 => password_to_key_with::<Md5>(p),
        AuthProtocol::Sha1 => password_to_key_with::<Sha1>(p),
        AuthProtocol::Sha224 => password_to_key_with::<Sha224>(p),
        AuthProtocol::Sha256 => password_to_key_with::<Sha256>(p),
        AuthProtocol::Sha384 => password_to_key_with::<Sha384>(p),
        AuthProtocol::Sha512 => password_to_key_with::<Sha512>(p),
    }
}

fn hash(proto: AuthProtocol, data: &[u8]) -> Vec<u8> {
    match proto {
        AuthProtocol::Md5 => Md5::digest(data).to_vec(),
        AuthProtocol::Sha1 => Sha1::digest(data).to_vec(),
        AuthProtocol::Sha224 => Sha224::digest(data).to_vec(),
        AuthProtocol::Sha256 => Sha256::digest(data).to_vec(),
        AuthProtocol::Sha384 => Sha384::digest(data).to_vec(),
        AuthProtocol::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// A user's privacy key: localised with the user's authentication hash
/// and, where that is shorter than the cipher's key, extended the way the
/// protocol's variant says. Only this form is kept, never the passphrase.
#[derive(Clone)]
pub struct PrivKey {
    proto: PrivProtocol,
    key: Vec<u8>,
}

impl std::fmt::Debug for PrivKey {
    // The key is a secret: its protocol only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivKey")
            .field("proto", &self.proto)
            .finish()
    }
}

impl PrivKey {
    /// The key of `password` for `engine_id`.
    pub fn new(auth: AuthProtocol, proto: PrivProtocol, password: &str, engine_id: &[u8]) -> Self {
        Self::from_localized(
            auth,
            proto,
            localized_key(auth, password, engine_id),
            engine_id,
        )
    }

    /// Extends an already localised key (Kul) as `proto` needs.
    pub fn from_localized(
        auth: AuthProtocol,
        proto: PrivProtocol,
        mut key: Vec<u8>,
        engine_id: &[u8],
    ) -> Self {
        while key.len() < proto.key_len() {
            let more = match proto {
                // Reeder: Kul2 = localize(P2K(Kul1)).
                PrivProtocol::Aes192Reeder | PrivProtocol::Aes256Reeder => {
                    localize(auth, &octets_to_key(auth, &key), engine_id)
                }
                // Blumenthal: Kul' = Kul || H(Kul).
                _ => hash(auth, &key),
            };
            key.extend_from_slice(&more);
        }
        key.truncate(proto.key_len());
        PrivKey { proto, key }
    }

    pub fn protocol(&self) -> PrivProtocol {
        self.proto
    }

    /// Encrypts a scoped PDU: the ciphertext and msgPrivacyParameters.
    /// `salt` must differ for every message sent with this key.
    pub fn encrypt(
        &self,
        boots: u32,
        time: u32,
        salt: u64,
        mut data: Vec<u8>,
    ) -> (Vec<u8>, [u8; 8]) {
        match self.proto {
            PrivProtocol::Des => {
                // RFC 3414 8.1.1.1: salt = boots, then a local counter.
                let mut params = [0u8; 8];
                params[..4].copy_from_slice(&boots.to_be_bytes());
                params[4..].copy_from_slice(&(salt as u32).to_be_bytes());
                let iv = self.des_iv(&params);
                data.resize(data.len().div_ceil(8) * 8, 0);
                if let Ok(mut c) = cbc::Encryptor::<des::Des>::new_from_slices(&self.key[..8], &iv)
                {
                    for block in data.chunks_exact_mut(8) {
                        if let Ok(b) = block.try_into() {
                            c.encrypt_block(b);
                        }
                    }
                }
                (data, params)
            }
            _ => {
                let params = salt.to_be_bytes();
                let iv = aes_iv(boots, time, &params);
                self.aes(&iv, &mut data, true);
                (data, params)
            }
        }
    }

    /// Decrypts a scoped PDU; `None` where the parameters or the length
    /// cannot be right (the caller counts a decryption error).
    pub fn decrypt(&self, boots: u32, time: u32, params: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let params: [u8; 8] = params.try_into().ok()?;
        let mut plain = data.to_vec();
        match self.proto {
            PrivProtocol::Des => {
                if plain.is_empty() || !plain.len().is_multiple_of(8) {
                    return None;
                }
                let iv = self.des_iv(&params);
                let mut c =
                    cbc::Decryptor::<des::Des>::new_from_slices(&self.key[..8], &iv).ok()?;
                for block in plain.chunks_exact_mut(8) {
                    c.decrypt_block(block.try_into().ok()?);
                }
            }
            _ => {
                let iv = aes_iv(boots, time, &params);
                self.aes(&iv, &mut plain, false);
            }
        }
        Some(plain)
    }

    /// The pre-IV (the key's second 8 octets) XOR the salt.
    fn des_iv(&self, salt: &[u8; 8]) -> [u8; 8] {
        let mut iv = [0u8; 8];
        for (i, b) in iv.iter_mut().enumerate() {
            *b = self.key[8 + i] ^ salt[i];
        }
        iv
    }

    fn aes(&self, iv: &[u8; 16], data: &mut [u8], encrypt: bool) {
        macro_rules! cfb {
            ($c:ty) => {{
                if encrypt {
                    if let Ok(c) = cfb_mode::Encryptor::<$c>::new_from_slices(&self.key, iv) {
                        c.encrypt(data);
                    }
                } else if let Ok(c) = cfb_mode::Decryptor::<$c>::new_from_slices(&self.key, iv) {
                    c.decrypt(data);
                }
            }};
        }
        match self.proto {
            PrivProtocol::Des => {}
            PrivProtocol::Aes128 => cfb!(Aes128),
            PrivProtocol::Aes192 | PrivProtocol::Aes192Reeder => cfb!(Aes192),
            PrivProtocol::Aes256 | PrivProtocol::Aes256Reeder => cfb!(Aes256),
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
    /// Privacy key; needs `auth`.
    pub privacy: Option<&'a PrivKey>,
    /// Unique per message: the salt (AES) or its local half (DES).
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
    let mut salt = Vec::new();
    let scoped_data = match privacy {
        Some(key) => {
            let plain = rasn::ber::encode(&m.scoped).ok()?;
            let (data, params) = key.encrypt(m.boots, m.time, m.salt, plain);
            salt = params.to_vec();
            v3::ScopedPduData::EncryptedPdu(OctetString::from(data))
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
        privacy_parameters: OctetString::from(salt),
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

    /// "maplesyrup" for engine 000000000000000000000002, extended by each
    /// variant; the expected keys were computed by pysnmp 7.1's
    /// `localize_key` (an independent implementation).
    #[test]
    fn aes_key_extensions_match_pysnmp() {
        let engine = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let key = |a, p| hex(&PrivKey::new(a, p, "maplesyrup", &engine).key);
        use AuthProtocol::{Md5, Sha1};
        use PrivProtocol::*;
        let want = [
            (
                Md5,
                Aes192Reeder,
                "526f5eed9fcce26f8964c2930787d82b79eff44a90650ee0",
            ),
            (
                Sha1,
                Aes192Reeder,
                "6695febc9288e36282235fc7151f128497b38f3f9b8b6d78",
            ),
            (
                Md5,
                Aes256Reeder,
                "526f5eed9fcce26f8964c2930787d82b79eff44a90650ee0a3a40abfac5acc12",
            ),
            (
                Sha1,
                Aes256Reeder,
                "6695febc9288e36282235fc7151f128497b38f3f9b8b6d78936ba6e7d19dfd9c",
            ),
            (
                Md5,
                Aes192,
                "526f5eed9fcce26f8964c2930787d82bfa24a92467426c2f",
            ),
            (
                Sha1,
                Aes192,
                "6695febc9288e36282235fc7151f128497b38f3f505e07eb",
            ),
            (
                Md5,
                Aes256,
                "526f5eed9fcce26f8964c2930787d82bfa24a92467426c2f4b09192be10dfaec",
            ),
            (
                Sha1,
                Aes256,
                "6695febc9288e36282235fc7151f128497b38f3f505e07eb9af25568fa1f5dbe",
            ),
        ];
        for (a, p, k) in want {
            assert_eq!(key(a, p), k, "{a:?} {p:?}");
        }
        // A localised key long enough is not extended: both variants agree.
        assert_eq!(
            key(AuthProtocol::Sha256, Aes256),
            key(AuthProtocol::Sha256, Aes256Reeder)
        );
    }

    #[test]
    fn every_privacy_protocol_round_trips_and_refuses_a_wrong_key() {
        let text = b"a scoped PDU of any length, 47 octets long....".to_vec();
        for p in [
            PrivProtocol::Des,
            PrivProtocol::Aes128,
            PrivProtocol::Aes192,
            PrivProtocol::Aes256,
            PrivProtocol::Aes192Reeder,
            PrivProtocol::Aes256Reeder,
        ] {
            let k = PrivKey::new(AuthProtocol::Sha1, p, "privpass", b"engine1");
            let (data, params) = k.encrypt(3, 77, 0x0102_0304_0506_0708, text.clone());
            assert_ne!(&data[..text.len()], &text[..], "{p:?}");
            let plain = k.decrypt(3, 77, &params, &data).unwrap();
            assert_eq!(&plain[..text.len()], &text[..], "{p:?}");
            let other = PrivKey::new(AuthProtocol::Sha1, p, "otherpass", b"engine1");
            let wrong = other.decrypt(3, 77, &params, &data).unwrap();
            assert_ne!(&wrong[..text.len()], &text[..], "{p:?}");
            assert!(k.decrypt(3, 77, &params[..7], &data).is_none(), "{p:?}");
            if p == PrivProtocol::Des {
                // CBC: padded to whole blocks; the salt is boots, then the
                // counter's low half (RFC 3414 8.1.1.1).
                assert_eq!(data.len(), 48);
                assert_eq!(params, [0, 0, 0, 3, 5, 6, 7, 8]);
                assert!(k.decrypt(3, 77, &params, &data[..47]).is_none());
            } else {
                assert_eq!(data.len(), text.len());
                assert_eq!(params, [1, 2, 3, 4, 5, 6, 7, 8]);
            }
        }
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
