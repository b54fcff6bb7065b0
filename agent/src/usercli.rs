//! `halyard user`: manages the users the element keeps (`AccessUser` and
//! `AccessKey` objects) through a running agent's HTTP API, as an
//! administrator. The change is the element's configuration: replicated
//! to every node and audited like any other. A password is hashed here
//! (Argon2id) and only the hash is sent; an SSH key is sent as its public
//! key line and kept as its fingerprint.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use halyard_cluster_model::secret::hash_password;
use halyard_http::client::{Call, call};

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// The agent's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The administrator to act as, its password in the environment
    /// variable HALYARD_PASSWORD; without it, the bearer token in
    /// HALYARD_TOKEN.
    #[arg(long = "as", value_name = "ADMIN")]
    admin: Option<String>,
    /// For https://: the SHA-256 fingerprint of the agent's certificate
    /// (the agent logs it at start); without it, that of
    /// <data-dir>/http-tls/cert.pem.
    #[arg(long)]
    fingerprint: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Lists the element's users and their keys.
    List,
    /// Adds a user.
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Who the user is.
        #[arg(long, default_value = "")]
        comment: String,
        /// Reads the user's password on standard input (its first line);
        /// without it the user has no password (keys only).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sets a user's password, read on standard input (its first line).
    Passwd { name: String },
    /// Sets a user's role (viewer, operator or admin).
    Role { name: String, role: String },
    /// Removes a user, with its keys.
    Del { name: String },
    /// Adds an SSH public key (a .pub file, or - for standard input) under
    /// a name of its own, or replaces the key of that name (rotation).
    Key {
        name: String,
        key_name: String,
        file: PathBuf,
    },
    /// Removes (revokes) one of a user's SSH keys.
    DelKey { name: String, key_name: String },
    /// Sets a user's SNMPv3 keys: reads the authentication passphrase (and,
    /// with --priv, the privacy passphrase) on standard input, one per
    /// line, localizes them for every node's SNMP engine and stores only
    /// the localized keys (replacing the user's previous ones).
    Snmp {
        name: String,
        /// MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512.
        #[arg(long, default_value = "SHA-256")]
        auth: String,
        /// DES, AES, AES-192, AES-256, AES-192-C or AES-256-C; without it,
        /// authNoPriv.
        #[arg(long = "priv")]
        privacy: Option<String>,
        /// Also localizes for this engine ID (hex), e.g. an inform
        /// receiver's (snmptrapd's `oldEngineID`); repeatable. Keys for
        /// engines neither a node's nor named here are removed.
        #[arg(long = "engine")]
        engines: Vec<String>,
    },
}

/// The API's path of a user, or of one of its keys.
fn user_path(name: &str) -> String {
    format!("/api/v1/objects/ne=1/user={name}")
}

fn read_line_stdin(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what}"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(line)
}

struct Client {
    base: String,
    authorization: String,
    pin: Option<String>,
}

impl Client {
    fn new(args: &UserArgs, data_dir: &Path) -> anyhow::Result<Client> {
        use base64::Engine as _;
        let authorization = match (&args.admin, std::env::var("HALYARD_TOKEN")) {
            (Some(user), _) => {
                let password = std::env::var("HALYARD_PASSWORD")
                    .context("--as needs the administrator's password in HALYARD_PASSWORD")?;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            }
            (None, Ok(token)) => format!("Bearer {token}"),
            (None, Err(_)) => {
                bail!(
                    "say who acts: --as ADMIN (password in HALYARD_PASSWORD) or a token in HALYARD_TOKEN"
                )
            }
        };
        let pin = match (&args.fingerprint, args.url.starts_with("https://")) {
            (Some(f), _) => Some(f.clone()),
            (None, true) => {
                let cert = data_dir.join("http-tls").join("cert.pem");
                Some(halyard_http::tls::fingerprint(&cert).with_context(|| {
                    format!(
                        "https:// needs --fingerprint, or the agent's certificate at {}",
                        cert.display()
                    )
                })?)
            }
            (None, false) => None,
        };
        Ok(Client {
            base: args.url.trim_end_matches('/').to_string(),
            authorization,
            pin,
        })
    }

    /// Sends a request; the JSON answer of a success, else an error with
    /// the agent's message.
    async fn send(
        &self,
        method: &str,
        path: &str,
        json: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let (status, body) = call(
            Call {
                method,
                url: &url,
                authorization: Some(&self.authorization),
                json: json.map(|j| j.to_string()),
                pin: self.pin.as_deref(),
            },
            16 << 20,
            Duration::from_secs(30),
        )
        .await?;
        let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: &str,
        path: &str,
        json: Option<serde_json::Value>,
        ok: &[u16],
    ) -> anyhow::Result<serde_json::Value> {
        let (status, value) = self.send(method, path, json).await?;
        if ok.contains(&status) {
            return Ok(value);
        }
        Err(refused(method, path, status, &value))
    }

    /// Creates the object, or sets the same attributes of the one of that
    /// name (a key replaced: rotation). The object as kept.
    async fn put_or_patch(
        &self,
        path: &str,
        mut body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, answer) = self.send("PUT", path, Some(body.clone())).await?;
        match status {
            201 => Ok(answer),
            409 => {
                if let Some(o) = body.as_object_mut() {
                    o.remove("class");
                }
                self.expect("PATCH", path, Some(body), &[200]).await
            }
            _ => Err(refused("PUT", path, status, &answer)),
        }
    }
}

/// The agent's refusal, with its message.
fn refused(method: &str, path: &str, status: u16, value: &serde_json::Value) -> anyhow::Error {
    let message = value
        .get("message")
        .or_else(|| value.get("error"))
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
        .unwrap_or_else(|| value.to_string());
    anyhow::anyhow!("{method} {path}: HTTP {status}: {message}")
}

/// Runs `halyard user ...`.
pub fn run(args: &UserArgs, data_dir: &Path) -> anyhow::Result<()> {
    let client = Client::new(args, data_dir)?;
    // Hashing and reading happen before the runtime: Argon2 blocks.
    let action = &args.action;
    let password = match action {
        Action::Add {
            password_stdin: true,
            ..
        }
        | Action::Passwd { .. } => Some(hash_password(&read_line_stdin("password")?)?),
        _ => None,
    };
    let snmp = match action {
        Action::Snmp { auth, privacy, .. } => Some(SnmpSecrets::read(auth, privacy.as_deref())?),
        _ => None,
    };
    let key = match action {
        Action::Key { file, .. } => {
            let mut text = String::new();
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
            }
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .context("no public key in the file")?
                .to_string();
            // Checked here too, so a wrong file is named before anything is sent.
            halyard_cluster_model::secret::ssh_key_fingerprint(&line)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Some(line)
        }
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match action {
            Action::List => {
                let users = client
                    .expect("GET", "/api/v1/classes/AccessUser", None, &[200])
                    .await?;
                let keys = client
                    .expect("GET", "/api/v1/classes/AccessKey", None, &[200])
                    .await?;
                let list = |v: &serde_json::Value| -> Vec<serde_json::Value> {
                    v.get("objects")
                        .and_then(|o| o.as_array())
                        .or_else(|| v.as_array())
                        .cloned()
                        .unwrap_or_default()
                };
                for u in list(&users) {
                    let u = &u["attributes"];
                    let name = u["name"].as_str().unwrap_or("");
                    let short = name.rsplit_once("user=").map_or(name, |(_, n)| n);
                    println!(
                        "{short}\trole={}\t{}",
                        u["role"].as_str().unwrap_or("?"),
                        u["comment"].as_str().unwrap_or("")
                    );
                    for k in list(&keys) {
                        let k = &k["attributes"];
                        let kn = k["name"].as_str().unwrap_or("");
                        if let Some((owner, key_name)) = kn.rsplit_once("/sshkey=")
                            && owner == name
                        {
                            println!("  key {key_name}\t{}", k["key"].as_str().unwrap_or(""));
                        }
                    }
                }
            }
            Action::Add {
                name,
                role,
                comment,
                ..
            } => {
                let mut body = serde_json::json!({
                    "class": halyard_cluster_model::users::names::USER,
                    "role": role,
                    "comment": comment,
                });
                if let Some(p) = &password {
                    body["password"] = serde_json::Value::String(p.clone());
                }
                client
                    .expect("PUT", &user_path(name), Some(body), &[201])
                    .await?;
                println!("user {name} added ({role})");
            }
            Action::Passwd { name } => {
                let body = serde_json::json!({ "password": password });
                client
                    .expect("PATCH", &user_path(name), Some(body), &[200])
                    .await?;
                println!("password of {name} changed");
            }
            Action::Role { name, role } => {
                let body = serde_json::json!({ "role": role });
                client
                    .expect("PATCH", &user_path(name), Some(body), &[200])
                    .await?;
                println!("{name} is now {role}");
            }
            Action::Del { name } => {
                client
                    .expect("DELETE", &user_path(name), None, &[204])
                    .await?;
                println!("user {name} removed");
            }
            Action::Key { name, key_name, .. } => {
                let path = format!("{}/sshkey={key_name}", user_path(name));
                let line = key.clone().unwrap_or_default();
                let body = serde_json::json!({
                    "class": halyard_cluster_model::users::names::KEY,
                    "key": line,
                    "comment": line.split_whitespace().nth(2).unwrap_or(""),
                });
                // A new key is created; one of that name is replaced.
                let v = client.put_or_patch(&path, body).await?;
                println!(
                    "key {key_name} of {name}: {}",
                    v["attributes"]["key"].as_str().unwrap_or("?")
                );
            }
            Action::Snmp {
                name,
                engines: extra,
                ..
            } => {
                let secrets = snmp.as_ref().expect("read above");
                let nodes = client
                    .expect("GET", "/api/v1/classes/Node", None, &[200])
                    .await?;
                let mut engines: Vec<(String, String)> = nodes["objects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| {
                        let a = &n["attributes"];
                        let id = a["snmp-engine-id"].as_str().filter(|s| !s.is_empty())?;
                        Some((a["name"].as_str()?.to_string(), id.to_string()))
                    })
                    .collect();
                for e in extra {
                    let id = e.trim_start_matches("0x").to_ascii_lowercase();
                    match halyard_snmp::engine::from_hex(&id) {
                        Some(b) if (5..=32).contains(&b.len()) => {
                            engines.push(("the engine named with --engine".to_string(), id));
                        }
                        _ => bail!("--engine {e}: not an SNMP engine ID (5 to 32 octets in hex)"),
                    }
                }
                if engines.is_empty() {
                    bail!("no node shows an SNMP engine ID yet (is an SNMP face running?)");
                }
                // The user's keys for engines no node has any more go.
                let old = client
                    .expect("GET", "/api/v1/classes/AccessSnmpKey", None, &[200])
                    .await?;
                let prefix = format!("ne=1/user={name}/snmpkey=");
                for k in old["objects"].as_array().into_iter().flatten() {
                    let Some(kn) = k["attributes"]["name"].as_str() else {
                        continue;
                    };
                    if let Some(id) = kn.strip_prefix(&prefix)
                        && !engines.iter().any(|(_, e)| e.eq_ignore_ascii_case(id))
                    {
                        client
                            .expect("DELETE", &format!("/api/v1/objects/{kn}"), None, &[204])
                            .await?;
                    }
                }
                for (node, id) in &engines {
                    let body = secrets.object(id)?;
                    let path = format!("{}/snmpkey={id}", user_path(name));
                    client.put_or_patch(&path, body).await?;
                    println!("SNMPv3 keys of {name} localized for {node} (engine {id})");
                }
            }
            Action::DelKey { name, key_name } => {
                let path = format!("{}/sshkey={key_name}", user_path(name));
                client.expect("DELETE", &path, None, &[204]).await?;
                println!("key {key_name} of {name} revoked");
            }
        }
        Ok(())
    })
}

/// A user's SNMPv3 protocols and passphrases, read once; only keys
/// localized from them leave this process.
struct SnmpSecrets {
    auth: halyard_snmp::AuthProtocol,
    auth_pass: String,
    privacy: Option<(&'static str, String)>,
}

impl SnmpSecrets {
    fn read(auth: &str, privacy: Option<&str>) -> anyhow::Result<SnmpSecrets> {
        use crate::config::{SnmpAuth, SnmpPriv};
        let word = |w: &str| serde_json::Value::String(w.to_string());
        let a: SnmpAuth = serde_json::from_value(word(auth)).map_err(|_| {
            anyhow::anyhow!(
                "--auth {auth}: expected MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512"
            )
        })?;
        let p = match privacy {
            None => None,
            Some(w) => Some(serde_json::from_value::<SnmpPriv>(word(w)).map_err(|_| {
                anyhow::anyhow!(
                    "--priv {w}: expected DES, AES, AES-192, AES-256, AES-192-C or AES-256-C"
                )
            })?),
        };
        let auth_pass = read_line_stdin("authentication passphrase")?;
        let privacy = match p {
            None => None,
            Some(p) => {
                let label = crate::faces::priv_protocol(p).label();
                Some((label, read_line_stdin("privacy passphrase")?))
            }
        };
        for pass in std::iter::once(&auth_pass).chain(privacy.as_ref().map(|(_, p)| p)) {
            if pass.chars().count() < 8 {
                bail!("a passphrase needs at least 8 characters (RFC 3414)");
            }
        }
        Ok(SnmpSecrets {
            auth: crate::faces::auth_protocol(a),
            auth_pass,
            privacy,
        })
    }

    /// The `AccessSnmpKey` object for one engine (its ID in hex).
    fn object(&self, engine_hex: &str) -> anyhow::Result<serde_json::Value> {
        use halyard_snmp::engine::{from_hex, to_hex};
        use halyard_snmp::usm::localized_key;
        let id =
            from_hex(engine_hex).with_context(|| format!("engine ID {engine_hex} is not hex"))?;
        let mut body = serde_json::json!({
            "class": halyard_cluster_model::users::names::SNMP_KEY,
            "auth-protocol": self.auth.label(),
            "auth-key": to_hex(&localized_key(self.auth, &self.auth_pass, &id)),
            "priv-protocol": "none",
            "priv-key": "",
        });
        if let Some((label, pass)) = &self.privacy {
            // The privacy key is localized with the authentication hash
            // (RFC 3414 2.6); its protocol extends it as it needs.
            body["priv-protocol"] = serde_json::Value::String(label.to_string());
            body["priv-key"] =
                serde_json::Value::String(to_hex(&localized_key(self.auth, pass, &id)));
        }
        Ok(body)
    }
}
