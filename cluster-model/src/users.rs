//! The users the model holds (`AccessUser` objects, with their SSH keys as
//! `AccessKey` objects), as the faces authenticate them. The configuration
//! file's users come first on each face; these are added, changed and
//! removed at run time, replicated like any configuration.
//!
//! A face asks on every login. The table is read again whenever the model
//! changed since the last read (its revision), so a removed user, a
//! changed password or a deleted key is refused at once on every node
//! that has applied the change. Models without revisions are read again
//! after a short time to live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::access::Role;
use crate::port::{InformationModel, ManagedObject, ModelError, Query};
use crate::secret::Password;
use crate::{SCHEMA, Value};

/// Schema names of the user objects (adapters do not spell them).
pub mod names {
    pub const USER: &str = "AccessUser";
    pub const KEY: &str = "AccessKey";
    pub const ROLE: &str = "Role";
    pub const PASSWORD: &str = "Password";
    pub const KEY_ATTR: &str = "Key";
    pub const COMMENT: &str = "Comment";
    pub const SNMP_KEY: &str = "AccessSnmpKey";
    pub const AUTH_PROTOCOL: &str = "AuthProtocol";
    pub const AUTH_KEY: &str = "AuthKey";
    pub const PRIV_PROTOCOL: &str = "PrivProtocol";
    pub const PRIV_KEY: &str = "PrivKey";
    /// Of a Node: its SNMP engine ID in hex.
    pub const SNMP_ENGINE_ID: &str = "SnmpEngineId";
}

/// One user of the model, as a face authenticates it.
#[derive(Debug, Clone)]
pub struct User {
    pub role: Role,
    /// None: no password login.
    pub password: Option<Arc<Password>>,
}

#[derive(Debug, Default)]
struct Table {
    users: HashMap<String, User>,
    /// (user, SHA-256 key fingerprint) of every key.
    keys: Vec<(String, String)>,
}

#[derive(Debug)]
struct Slot {
    at: Instant,
    revision: Option<u64>,
    table: Arc<Table>,
}

/// The model's users, read again when the model changed (see the module).
#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    slot: Mutex<Option<Slot>>,
}

impl Default for UserCache {
    fn default() -> Self {
        UserCache {
            ttl: Duration::from_millis(250),
            slot: Mutex::new(None),
        }
    }
}

/// The role an `AccessUser`'s `Role` value names.
pub fn role_of(o: &ManagedObject) -> Role {
    match o.text(names::ROLE).as_deref() {
        Some("admin") => Role::Admin,
        Some("operator") => Role::Operator,
        _ => Role::Viewer,
    }
}

/// The object's own name (its last relative name's value).
fn own_name(o: &ManagedObject) -> Option<String> {
    o.name.rdns().last().map(|(_, v)| v.to_string())
}

impl UserCache {
    async fn table(&self, model: &dyn InformationModel) -> Result<Arc<Table>, ModelError> {
        // A page of nothing: only the model's current revision.
        let revision = model.changed(0, 0, 0).await?.map(|p| p.revision);
        let old = {
            let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = slot.as_ref() {
                let fresh = match (revision, s.revision) {
                    (Some(now), Some(then)) => now == then,
                    _ => s.at.elapsed() < self.ttl,
                };
                if fresh {
                    return Ok(s.table.clone());
                }
            }
            slot.as_ref().map(|s| s.table.clone())
        };
        let (Some(user_class), Some(key_class)) =
            (SCHEMA.class(names::USER), SCHEMA.class(names::KEY))
        else {
            return Ok(Arc::default());
        };
        let mut table = Table::default();
        for o in model.credentials(user_class).await? {
            let Some(name) = own_name(&o) else { continue };
            let phc = o
                .get(names::PASSWORD)
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty());
            // The same hash keeps its Password (and the digests of
            // passwords it matched), so a reload costs no Argon2 run.
            let password = phc.and_then(|phc| {
                old.as_ref()
                    .and_then(|t| t.users.get(&name))
                    .and_then(|u| u.password.clone())
                    .filter(|p| p.is(phc))
                    .or_else(|| Password::from_config(phc).ok().map(Arc::new))
            });
            table.users.insert(
                name,
                User {
                    role: role_of(&o),
                    password,
                },
            );
        }
        let keys = model
            .query(&Query {
                classes: vec![key_class.name.to_string()],
                ..Query::default()
            })
            .await?;
        for k in keys {
            let user = k
                .name
                .parent()
                .as_ref()
                .and_then(|p| p.rdns().last().map(|(_, v)| v.to_string()));
            if let (Some(user), Some(fp)) = (user, k.get(names::KEY_ATTR).and_then(Value::as_str)) {
                table.keys.push((user, fp.to_string()));
            }
        }
        let table = Arc::new(table);
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Slot {
            at: Instant::now(),
            revision,
            table: table.clone(),
        });
        Ok(table)
    }

    /// The model's user of that name, if there is one.
    pub async fn user(&self, model: &dyn InformationModel, name: &str) -> Option<User> {
        match self.table(model).await {
            Ok(t) => t.users.get(name).cloned(),
            Err(e) => {
                tracing::warn!(error = %e, "the model's users could not be read");
                None
            }
        }
    }

    /// Whether the model's user `name` may log in with the key of this
    /// SHA-256 fingerprint (`SHA256:...`).
    pub async fn has_key(
        &self,
        model: &dyn InformationModel,
        name: &str,
        fingerprint: &str,
    ) -> bool {
        match self.table(model).await {
            Ok(t) => {
                t.users.contains_key(name)
                    && t.keys.iter().any(|(u, f)| u == name && f == fingerprint)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the model's users could not be read");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectName;
    use crate::model::Protocol;
    use crate::port::{Change, Principal, Transaction};

    fn tx(changes: Vec<Change>) -> Transaction {
        Transaction {
            principal: Principal::new("test", Protocol::Internal),
            changes,
        }
    }

    #[tokio::test]
    async fn users_and_keys_are_read_as_the_model_changes() {
        let m = crate::memory::demo_element();
        let ne = ObjectName::root("ne", "1").unwrap();
        let olga = ne.child("user", "olga").unwrap();
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZ2nIRwOK4vT7QX8h8FpIFAKWRKw+uodzoFcevW16p5 test";
        m.transact(tx(vec![
            Change::Create {
                class: names::USER.into(),
                object: olga.clone(),
                values: vec![
                    (names::ROLE.into(), Value::Enum(2)),
                    (names::PASSWORD.into(), Value::Str("olga's password".into())),
                ],
            },
            Change::Create {
                class: names::KEY.into(),
                object: olga.child("sshkey", "laptop").unwrap(),
                values: vec![(names::KEY_ATTR.into(), Value::Str(line.into()))],
            },
        ]))
        .await
        .unwrap();
        // Reads never give the password, not even its hash.
        let o = m.get(&olga).await.unwrap();
        assert_eq!(o.get(names::PASSWORD), Some(&Value::Absent));
        let cache = UserCache::default();
        let u = cache.user(&m, "olga").await.unwrap();
        assert_eq!(u.role, Role::Operator);
        let p = u.password.unwrap();
        assert!(p.is_hashed());
        assert!(p.matches("olga's password") && !p.matches("olga"));
        let fp = crate::secret::ssh_key_fingerprint(line).unwrap();
        // ssh-keygen -lf of that key prints this fingerprint.
        assert_eq!(fp, "SHA256:fvtvJzYQtMSrYGTFtSsDVXY7PeaWk3lbCYH0f7x9mAk");
        assert!(cache.has_key(&m, "olga", &fp).await);
        assert!(!cache.has_key(&m, "ann", &fp).await);
        // The key is kept as its fingerprint.
        let k = m
            .get(&olga.child("sshkey", "laptop").unwrap())
            .await
            .unwrap();
        assert_eq!(
            k.get(names::KEY_ATTR).and_then(Value::as_str),
            Some(fp.as_str())
        );
        // Deleting the key revokes it at once.
        m.transact(tx(vec![Change::Delete {
            object: olga.child("sshkey", "laptop").unwrap(),
        }]))
        .await
        .unwrap();
        assert!(!cache.has_key(&m, "olga", &fp).await);
        // A new password replaces the old one.
        m.transact(tx(vec![Change::Set {
            object: olga.clone(),
            attribute: names::PASSWORD.into(),
            value: Value::Str("a new password".into()),
        }]))
        .await
        .unwrap();
        let p = cache.user(&m, "olga").await.unwrap().password.unwrap();
        assert!(p.matches("a new password") && !p.matches("olga's password"));
        // A key line that is not a key is refused, naming the attribute.
        let e = m
            .transact(tx(vec![Change::Create {
                class: names::KEY.into(),
                object: olga.child("sshkey", "bad").unwrap(),
                values: vec![(
                    names::KEY_ATTR.into(),
                    Value::Str("ssh-ed25519 AAAAB3Nza".into()),
                )],
            }]))
            .await
            .unwrap_err();
        assert!(e.error.to_string().contains("Key"), "{e:?}");
        m.transact(tx(vec![Change::Delete { object: olga }]))
            .await
            .unwrap();
        assert!(cache.user(&m, "olga").await.is_none());
    }
}
