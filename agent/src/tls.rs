//! HTTPS for the HTTP face: on by default when it listens on an address
//! other than loopback (`[http] tls = "auto"`), with the configured
//! certificate and key, or else a self-signed one the agent makes on its
//! first start and keeps in `<data-dir>/http-tls/` (the key readable by the
//! agent's user only). The certificate's SHA-256 fingerprint is logged at
//! every start, so an operator can pin it in a client
//! (`curl --cacert`, a browser's exception) and check it out of band.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// `[http] tls`: when the face speaks HTTPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// HTTPS when any listen address is not loopback.
    #[default]
    Auto,
    /// Always HTTPS.
    On,
    /// Never (plain HTTP even on a network address: warned at start).
    Off,
}

/// The certificate and key the face serves, if it speaks HTTPS.
pub fn http_tls(
    mode: TlsMode,
    listen: &[SocketAddr],
    configured: Option<(PathBuf, PathBuf)>,
    data_dir: &Path,
    names: &[String],
) -> anyhow::Result<Option<halyard_http::TlsConfig>> {
    let exposed = listen.iter().any(|a| !a.ip().is_loopback());
    let on = match mode {
        TlsMode::On => true,
        TlsMode::Off => {
            if exposed {
                tracing::warn!(
                    "HTTP listens on a network address in plain text (tls = \"off\"): passwords and tokens cross the network readable"
                );
            }
            false
        }
        TlsMode::Auto => exposed || configured.is_some(),
    };
    if !on {
        return Ok(None);
    }
    let (cert_path, key_path, made) = match configured {
        Some((c, k)) => (c, k, false),
        None => {
            let dir = data_dir.join("http-tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let made = !(c.exists() && k.exists());
            if made {
                generate(&dir, &c, &k, names, listen)?;
            }
            (c, k, made)
        }
    };
    let fp = halyard_http::tls::fingerprint(&cert_path)?;
    tracing::info!(
        certificate = %cert_path.display(),
        sha256_fingerprint = %fp,
        self_signed_now = made,
        "HTTP face speaks HTTPS"
    );
    Ok(Some(halyard_http::TlsConfig {
        cert_path,
        key_path,
    }))
}

/// A self-signed certificate for the node's names and listen addresses.
fn generate(
    dir: &Path,
    cert: &Path,
    key: &Path,
    names: &[String],
    listen: &[SocketAddr],
) -> anyhow::Result<()> {
    let mut sans: Vec<String> = names.to_vec();
    sans.push("localhost".into());
    for a in listen {
        if !a.ip().is_unspecified() {
            sans.push(a.ip().to_string());
        }
    }
    sans.push("127.0.0.1".into());
    sans.sort();
    sans.dedup();
    let certified = rcgen::generate_simple_self_signed(sans)
        .context("cannot make a self-signed certificate")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, certified.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(())
}

/// Writes a file only its owner may read (created so: never readable by
/// others, not even for a moment).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_https_off_loopback_with_a_kept_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        assert!(
            http_tls(TlsMode::Auto, &[lo], None, dir.path(), &[])
                .unwrap()
                .is_none()
        );
        assert!(
            http_tls(TlsMode::Off, &[any], None, dir.path(), &[])
                .unwrap()
                .is_none()
        );
        let t = http_tls(TlsMode::Auto, &[lo, any], None, dir.path(), &["n1".into()])
            .unwrap()
            .unwrap();
        let fp = halyard_http::tls::fingerprint(&t.cert_path).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&t.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        // Kept: the next start serves the same certificate.
        let again = http_tls(TlsMode::On, &[lo], None, dir.path(), &[])
            .unwrap()
            .unwrap();
        assert_eq!(
            halyard_http::tls::fingerprint(&again.cert_path).unwrap(),
            fp
        );
    }
}
