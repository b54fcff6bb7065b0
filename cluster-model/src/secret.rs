//! Configured passwords, as the faces check them: an Argon2 PHC string
//! (`$argon2id$v=19$...`, what `halyard hash-password` prints) or, for
//! demos and tests, the plain text. One type for HTTP and NETCONF, so a
//! user's password means the same on both.
//!
//! Checking an Argon2 hash costs tens of milliseconds on purpose, and HTTP
//! Basic sends the password with every request: a password once checked is
//! remembered as a keyed BLAKE2b digest (the key is random per process), so
//! later requests cost a hash, not an Argon2 run. A wrong password always
//! runs Argon2 (the failure guard limits how often a source may try).

use std::sync::Mutex;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use blake2::Digest;

/// Why a configured password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid Argon2 password hash ({reason}); make one with `halyard hash-password`")]
pub struct BadHash {
    pub reason: String,
}

/// Digests of passwords that matched, at most this many per user.
const REMEMBERED: usize = 4;

/// A configured password (see the module).
#[derive(Debug)]
pub struct Password {
    stored: Stored,
    /// Keyed digests of given passwords that matched the hash.
    matched: Mutex<Vec<[u8; 32]>>,
    key: [u8; 32],
}

#[derive(Debug)]
enum Stored {
    Plain(String),
    Argon2(String),
}

impl Password {
    /// A password as configured: a string starting with `$argon2` is a PHC
    /// hash (checked here), anything else plain text.
    pub fn from_config(text: &str) -> Result<Password, BadHash> {
        let stored = if text.starts_with("$argon2") {
            PasswordHash::new(text).map_err(|e| BadHash {
                reason: e.to_string(),
            })?;
            Stored::Argon2(text.to_string())
        } else {
            Stored::Plain(text.to_string())
        };
        let mut key = [0u8; 32];
        // Without the OS generator the cache would be keyed by zeros: still
        // correct, only its digests are unkeyed.
        let _ = getrandom::fill(&mut key);
        Ok(Password {
            stored,
            matched: Mutex::new(Vec::new()),
            key,
        })
    }

    /// Whether this is the password configured as `text`.
    pub fn is(&self, text: &str) -> bool {
        match &self.stored {
            Stored::Plain(p) | Stored::Argon2(p) => p == text,
        }
    }

    /// Whether the configured form is a hash.
    pub fn is_hashed(&self) -> bool {
        matches!(self.stored, Stored::Argon2(_))
    }

    /// Whether `given` is the password. May run Argon2 (tens of
    /// milliseconds): call it off the async threads
    /// (`tokio::task::spawn_blocking`) unless [`Password::is_hashed`] is
    /// false.
    pub fn matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        match &self.stored {
            Stored::Plain(p) => p.as_bytes().ct_eq(given.as_bytes()).into(),
            Stored::Argon2(phc) => {
                let digest = self.digest(given);
                let mut matched = self.matched.lock().unwrap_or_else(|e| e.into_inner());
                let known = matched
                    .iter()
                    .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&digest));
                if bool::from(known) {
                    return true;
                }
                drop(matched);
                let ok = PasswordHash::new(phc).is_ok_and(|h| {
                    argon2::Argon2::default()
                        .verify_password(given.as_bytes(), &h)
                        .is_ok()
                });
                if ok {
                    matched = self.matched.lock().unwrap_or_else(|e| e.into_inner());
                    if matched.len() == REMEMBERED {
                        matched.remove(0);
                    }
                    matched.push(digest);
                }
                ok
            }
        }
    }

    fn digest(&self, given: &str) -> [u8; 32] {
        let mut h = blake2::Blake2s256::new();
        h.update(self.key);
        h.update(given.as_bytes());
        h.finalize().into()
    }
}

/// An Argon2id PHC string of `password` with a random salt and the
/// crate's default (OWASP-recommended) cost.
pub fn hash_password(password: &str) -> Result<String, BadHash> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| BadHash {
            reason: e.to_string(),
        })
}

/// A new bearer token: 32 random bytes in hex, with a `hly_` prefix so a
/// leaked one is recognisable (secret scanners) and never mistaken for a
/// password.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(format!("hly_{}", hex(&b)))
}

/// What the element keeps of a token: its SHA-256 digest in hex. A token
/// is random and long, so a fast digest is enough (no password hash).
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint
/// -sha256` prints it (upper-case hex, colon-separated), from its DER.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether a class has secret attributes (`Secret` in the schema).
pub fn has_secrets(class: &crate::meta::ClassMeta) -> bool {
    class.attributes.iter().any(|a| a.secret)
}

/// Reads a secret attribute as `Absent`: what every read of the model
/// gives (only [`crate::port::InformationModel::credentials`] sees them).
pub fn mask(o: &mut crate::port::ManagedObject) {
    if has_secrets(o.class) {
        for (v, a) in o.values.iter_mut().zip(o.class.attributes) {
            if a.secret {
                *v = crate::Value::Absent;
            }
        }
    }
}

/// The text an attribute's written value is kept as, if it is one the
/// model transforms: a password as its Argon2id hash, an SSH key as its
/// SHA-256 fingerprint, a UDP address with its port. `Ok(None)`: kept as written (other secrets, such
/// as localized SNMP keys, too).
/// Hashing takes tens of milliseconds: call it off the async threads.
pub fn sealed(
    attribute: &crate::meta::AttrMeta,
    value: &crate::Value,
) -> Result<Option<String>, crate::value::ValueError> {
    let crate::Value::Str(text) = value else {
        return Ok(None);
    };
    let wrong = |reason: String| crate::value::ValueError::WrongValue { reason };
    if attribute.role == Some(crate::meta::Role::Password) {
        if text.is_empty() {
            return Ok(None);
        }
        if text.starts_with("$argon2") {
            Password::from_config(text).map_err(|e| wrong(e.to_string()))?;
            return Ok(None);
        }
        return hash_password(text)
            .map(Some)
            .map_err(|e| wrong(e.to_string()));
    }
    if attribute.role == Some(crate::meta::Role::SshKey) {
        if let Some(b64) = text.strip_prefix("SHA256:") {
            use base64::Engine as _;
            return match base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64) {
                Ok(d) if d.len() == 32 => Ok(None),
                _ => Err(wrong(format!(
                    "'{text}' is not a SHA-256 key fingerprint (SHA256: and 43 base64 characters, as ssh-keygen -l prints)"
                ))),
            };
        }
        return ssh_key_fingerprint(text).map(Some).map_err(wrong);
    }
    if attribute.role == Some(crate::meta::Role::UdpAddress) {
        let a = udp_address(text).map_err(wrong)?;
        let kept = a.to_string();
        return Ok((kept != *text).then_some(kept));
    }
    Ok(None)
}

/// The SHA-256 fingerprint of an OpenSSH public key line (`type base64
/// [comment]`), as `ssh-keygen -l` prints it: `SHA256:` and the unpadded
/// base64 of the digest of the key blob.
pub fn ssh_key_fingerprint(line: &str) -> Result<String, String> {
    use base64::Engine as _;
    use sha2::Digest;
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(b64)) = (fields.next(), fields.next()) else {
        return Err(format!(
            "'{line}' is not an OpenSSH public key line (type, base64 key, comment) nor a SHA256: fingerprint"
        ));
    };
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the key of '{kind}' is not base64: {e}"))?;
    // The blob starts with its own type name (RFC 4253 §6.6): a line whose
    // type and blob disagree is a broken paste, not a key.
    let named = blob
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return Err(format!(
            "the key data does not start with its type {kind}: not an OpenSSH public key"
        ));
    }
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&blob))
    ))
}

/// Seals a transaction's written values as [`sealed`] says (hashes
/// passwords, turns SSH keys into fingerprints) before the model checks
/// and keeps them. Runs Argon2 for each password: off the async threads.
pub fn seal(tx: &mut crate::port::Transaction) -> Result<(), crate::port::TxError> {
    use crate::port::{Change, ModelError, TxError};
    let class_of = |name: &crate::ObjectName, class: Option<&str>| {
        class.and_then(|c| crate::SCHEMA.class(c)).or_else(|| {
            name.rdns()
                .last()
                .and_then(|(r, _)| crate::SCHEMA.class_by_rdn(r))
        })
    };
    for (index, change) in tx.changes.iter_mut().enumerate() {
        let (class, values): (_, Vec<(&String, &mut crate::Value)>) = match change {
            Change::Set {
                object,
                attribute,
                value,
            } => (class_of(object, None), vec![(&*attribute, value)]),
            Change::Create {
                class,
                object,
                values,
            } => (
                class_of(object, Some(class)),
                values.iter_mut().map(|(a, v)| (&*a, v)).collect(),
            ),
            Change::Delete { .. } => continue,
        };
        let Some(class) = class else { continue };
        if !seals(class) {
            continue;
        }
        for (attribute, value) in values {
            let Some((_, meta)) = class.attribute(attribute) else {
                continue;
            };
            match sealed(meta, value) {
                Ok(Some(kept)) => *value = crate::Value::Str(kept),
                Ok(None) => {}
                Err(error) => {
                    return Err(TxError {
                        index,
                        error: ModelError::InvalidValue {
                            attribute: attribute.clone(),
                            error,
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether a transaction writes anything [`seal`] transforms (so callers
/// may skip the blocking pool when nothing is).
pub fn needs_seal(tx: &crate::port::Transaction) -> bool {
    use crate::port::Change;
    tx.changes.iter().any(|c| {
        let class = match c {
            Change::Create { class, .. } => crate::SCHEMA.class(class),
            Change::Set { object, .. } => object
                .rdns()
                .last()
                .and_then(|(r, _)| crate::SCHEMA.class_by_rdn(r)),
            Change::Delete { .. } => None,
        };
        class.is_some_and(seals)
    })
}

/// Whether a class has an attribute whose written value [`sealed`] checks
/// or transforms.
fn seals(class: &crate::meta::ClassMeta) -> bool {
    use crate::meta::Role;
    [Role::Password, Role::SshKey, Role::UdpAddress]
        .into_iter()
        .any(|r| class.attribute_by_role(r).is_some())
}

/// A UDP address as written (`192.0.2.7`, `192.0.2.7:1162`,
/// `2001:db8::7`, `[2001:db8::7]:162`), with the SNMP notification port
/// when none is given.
pub fn udp_address(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    let ip = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    ip.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 162))
        .map_err(|_| {
            format!(
                "'{text}' is not a UDP address: expected an IPv4 or IPv6 address and an optional port, e.g. 192.0.2.7:162 or [2001:db8::7]:162"
            )
        })
}

/// How a written value appears in the audit trail and the log: a
/// secret's never does.
pub fn audit_value(
    class: Option<&crate::meta::ClassMeta>,
    attribute: &str,
    value: &crate::Value,
) -> String {
    match class.and_then(|c| c.attribute(attribute)) {
        Some((_, a)) if a.secret => "(secret)".to_string(),
        _ => format!("{value:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_udp_address_is_kept_with_its_port() {
        let kept = |t: &str| udp_address(t).map(|a| a.to_string());
        assert_eq!(kept("192.0.2.7").as_deref(), Ok("192.0.2.7:162"));
        assert_eq!(kept(" 192.0.2.7:1162 ").as_deref(), Ok("192.0.2.7:1162"));
        assert_eq!(kept("2001:db8::7").as_deref(), Ok("[2001:db8::7]:162"));
        assert_eq!(kept("[2001:db8::7]").as_deref(), Ok("[2001:db8::7]:162"));
        assert_eq!(
            kept("[2001:db8::7]:10162").as_deref(),
            Ok("[2001:db8::7]:10162")
        );
        for bad in ["nms.example:162", "192.0.2.7:70000", "", "192.0.2.7:"] {
            let e = udp_address(bad).unwrap_err();
            assert!(
                e.contains("not a UDP address") && e.contains("192.0.2.7:162"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_hash_matches_its_password_only_and_remembers_a_match() {
        let phc = hash_password("s3cret pass").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        let p = Password::from_config(&phc).unwrap();
        assert!(p.is_hashed());
        assert!(!p.matches("s3cret pas"));
        assert!(p.matches("s3cret pass"));
        // The second check is the remembered digest: far faster.
        let t = std::time::Instant::now();
        assert!(p.matches("s3cret pass"));
        assert!(t.elapsed() < std::time::Duration::from_millis(5));
        assert!(!p.matches("s3cret pass "));
        // Each hash has its own salt.
        assert_ne!(phc, hash_password("s3cret pass").unwrap());
    }

    #[test]
    fn plain_text_and_broken_hashes() {
        let p = Password::from_config("plain").unwrap();
        assert!(!p.is_hashed());
        assert!(p.matches("plain") && !p.matches("plai") && !p.matches("plainx"));
        let e = Password::from_config("$argon2id$v=19$m=19456$broken").unwrap_err();
        assert!(e.to_string().contains("halyard hash-password"), "{e}");
    }
}
