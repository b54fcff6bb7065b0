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
