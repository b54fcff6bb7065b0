//! Authentication (basic and bearer) and role checks.

use std::collections::HashMap;

use base64::Engine as _;

use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::Principal;
use halyard_cluster_model::secret::Password;

use crate::config::{HttpConfig, Role};
use crate::error::ApiError;

/// Who sent a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None` for an anonymous request.
    pub user: Option<(String, Role)>,
    anonymous_read: bool,
}

impl Caller {
    /// Checks that the caller holds at least `role` (anonymous callers may read
    /// when the configuration allows it).
    pub fn require(&self, role: Role) -> Result<&str, ApiError> {
        match &self.user {
            Some((name, r)) if *r >= role => Ok(name),
            Some((name, r)) => Err(ApiError::forbidden(format!(
                "user {name} has role {}, this needs {}",
                r.as_str(),
                role.as_str()
            ))),
            None if role == Role::Viewer && self.anonymous_read => Ok("anonymous"),
            None => Err(ApiError::unauthorized()),
        }
    }

    /// Who reads, for the access model's read rules: the user and its
    /// role, or an anonymous reader with no role.
    pub fn reader(&self) -> (&str, Option<halyard_cluster_model::access::Role>) {
        match &self.user {
            Some((name, role)) => (name, Some(role.model_role())),
            None => ("anonymous", None),
        }
    }

    /// The caller as the model sees it, with its role, for a request that
    /// writes or runs an operation: the model's access rules decide, and
    /// an anonymous caller is asked to authenticate.
    pub fn principal(&self) -> Result<Principal, ApiError> {
        match &self.user {
            Some((name, role)) => {
                Ok(Principal::new(name.clone(), Protocol::Http).with_role(role.model_role()))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// The user an issued token authenticates as, if it is one, unexpired.
async fn issued_token_user(
    model: &dyn halyard_cluster_model::port::InformationModel,
    token: &str,
) -> Option<String> {
    if !token.starts_with("hly_") {
        return None;
    }
    let q = halyard_cluster_model::port::Query {
        classes: vec![halyard_cluster_model::access::names::TOKEN.into()],
        filters: vec![(
            halyard_cluster_model::access::names::DIGEST.into(),
            halyard_cluster_model::secret::token_digest(token),
        )],
        ..halyard_cluster_model::port::Query::default()
    };
    let o = model.query(&q).await.ok()?.into_iter().next()?;
    if let Some(halyard_cluster_model::Value::Time(t)) =
        o.get(halyard_cluster_model::access::names::EXPIRES)
        && t.0 <= halyard_cluster_model::Timestamp::now().0
    {
        return None;
    }
    o.get(halyard_cluster_model::access::names::USER)
        .and_then(halyard_cluster_model::Value::as_str)
        .map(str::to_string)
}

#[derive(Debug)]
struct Account {
    password: Option<std::sync::Arc<Password>>,
    role: Role,
}

/// The users and tokens of the configuration, looked up per request,
/// then the model's users (`AccessUser` objects, see
/// [`halyard_cluster_model::users`]).
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, Account>,
    tokens: Vec<(String, String)>,
    anonymous_read: bool,
    model_users: halyard_cluster_model::users::UserCache,
}

/// Compares secrets without an early exit on the first differing byte.
/// Secrets are compared in constant time (`subtle`).
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Authenticator {
    pub fn new(config: &HttpConfig) -> Result<Self, String> {
        let mut users = HashMap::new();
        let mut tokens = Vec::new();
        for u in &config.users {
            if u.name.is_empty() || u.name.contains(':') {
                return Err(format!("user name '{}' is empty or contains ':'", u.name));
            }
            let password = match &u.password {
                Some(p) => Some(std::sync::Arc::new(
                    Password::from_config(p).map_err(|e| format!("user {}: {e}", u.name))?,
                )),
                None => None,
            };
            if users
                .insert(
                    u.name.clone(),
                    Account {
                        password,
                        role: u.role,
                    },
                )
                .is_some()
            {
                return Err(format!("user {} is configured twice", u.name));
            }
            for t in &u.tokens {
                if t.len() < 16 {
                    return Err(format!(
                        "a token of user {} is shorter than 16 characters",
                        u.name
                    ));
                }
                tokens.push((t.clone(), u.name.clone()));
            }
        }
        Ok(Authenticator {
            users,
            tokens,
            anonymous_read: config.allow_anonymous_read,
            model_users: Default::default(),
        })
    }

    fn caller(&self, user: &str, role: Role) -> Caller {
        Caller {
            user: Some((user.to_string(), role)),
            anonymous_read: self.anonymous_read,
        }
    }

    /// The role of a user of the configuration, else of the model.
    async fn role_of(
        &self,
        user: &str,
        model: Option<&dyn halyard_cluster_model::port::InformationModel>,
    ) -> Option<Role> {
        if let Some(a) = self.users.get(user) {
            return Some(a.role);
        }
        let m = model?;
        self.model_users
            .user(m, user)
            .await
            .map(|u| Role::from_model(u.role))
    }

    async fn token(
        &self,
        token: &str,
        model: Option<&dyn halyard_cluster_model::port::InformationModel>,
    ) -> Result<Caller, ApiError> {
        // Every token is compared, so timing does not tell which one matched.
        let mut found = None;
        for (t, u) in &self.tokens {
            if same(t, token) {
                found = Some(u.clone());
            }
        }
        // Else an issued one (its digest is looked up), of a user that
        // still exists.
        if found.is_none()
            && let Some(m) = model
        {
            found = issued_token_user(m, token).await;
        }
        let Some(user) = found else {
            return Err(ApiError::bad_credentials());
        };
        match self.role_of(&user, model).await {
            Some(role) => Ok(self.caller(&user, role)),
            None => Err(ApiError::bad_credentials()),
        }
    }

    /// Authenticates from the `Authorization` header, or an `access_token`
    /// query parameter (for `EventSource`, which cannot send headers).
    /// Wrong credentials are refused even for reads. A hashed password is
    /// checked on the blocking pool (Argon2 takes tens of milliseconds).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
        model: Option<&dyn halyard_cluster_model::port::InformationModel>,
    ) -> Result<Caller, ApiError> {
        if let Some(h) = authorization {
            let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h, ""));
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("bearer") {
                return self.token(rest, model).await;
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(ApiError::bad_credentials)?;
                let (user, pass) = decoded
                    .split_once(':')
                    .ok_or_else(ApiError::bad_credentials)?;
                // A user of the configuration, else of the model.
                let (p, role) = match self.users.get(user) {
                    Some(Account {
                        password: Some(p),
                        role,
                    }) => (p.clone(), *role),
                    Some(_) => return Err(ApiError::bad_credentials()),
                    None => match model {
                        Some(m) => match self.model_users.user(m, user).await {
                            Some(halyard_cluster_model::users::User {
                                password: Some(p),
                                role,
                            }) => (p, Role::from_model(role)),
                            _ => return Err(ApiError::bad_credentials()),
                        },
                        None => return Err(ApiError::bad_credentials()),
                    },
                };
                let ok = if p.is_hashed() {
                    let (p, pass) = (p.clone(), pass.to_string());
                    tokio::task::spawn_blocking(move || p.matches(&pass))
                        .await
                        .unwrap_or(false)
                } else {
                    p.matches(pass)
                };
                return if ok {
                    Ok(self.caller(user, role))
                } else {
                    Err(ApiError::bad_credentials())
                };
            }
            return Err(ApiError::bad_credentials());
        }
        if let Some(t) = query.and_then(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("access_token="))
                .map(str::to_string)
        }) {
            return self.token(&t, model).await;
        }
        Ok(Caller {
            user: None,
            anonymous_read: self.anonymous_read,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;

    fn auth(anonymous: bool) -> Authenticator {
        Authenticator::new(&HttpConfig {
            users: vec![
                UserConfig {
                    name: "ann".into(),
                    password: Some("pw".into()),
                    tokens: vec!["0123456789abcdef-ann".into()],
                    role: Role::Operator,
                },
                UserConfig {
                    name: "tok".into(),
                    password: None,
                    tokens: vec![],
                    role: Role::Admin,
                },
            ],
            allow_anonymous_read: anonymous,
            ..HttpConfig::default()
        })
        .unwrap()
    }

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[tokio::test]
    async fn credentials_and_roles() {
        let a = auth(false);
        let ann = a
            .authenticate(Some(&basic("ann", "pw")), None, None)
            .await
            .unwrap();
        assert_eq!(ann.require(Role::Operator).unwrap(), "ann");
        assert_eq!(ann.require(Role::Admin).unwrap_err().status.as_u16(), 403);
        let t = a
            .authenticate(Some("Bearer 0123456789abcdef-ann"), None, None)
            .await
            .unwrap();
        assert_eq!(t.require(Role::Viewer).unwrap(), "ann");
        let q = a
            .authenticate(None, Some("x=1&access_token=0123456789abcdef-ann"), None)
            .await
            .unwrap();
        assert_eq!(q.require(Role::Viewer).unwrap(), "ann");
        for bad in [
            basic("ann", "PW"),
            basic("tok", ""),
            basic("nobody", "pw"),
            "Bearer nope".into(),
            "Basic !!!".into(),
            "Digest x".into(),
        ] {
            let e = a.authenticate(Some(&bad), None, None).await.unwrap_err();
            assert_eq!(e.status.as_u16(), 401, "{bad}");
        }
        let anon = a.authenticate(None, None, None).await.unwrap();
        assert_eq!(anon.require(Role::Viewer).unwrap_err().status.as_u16(), 401);
        let anon = auth(true).authenticate(None, None, None).await.unwrap();
        assert_eq!(anon.require(Role::Viewer).unwrap(), "anonymous");
        assert_eq!(
            anon.require(Role::Operator).unwrap_err().status.as_u16(),
            401
        );
    }

    #[tokio::test]
    async fn a_hashed_password() {
        let phc = halyard_cluster_model::secret::hash_password("pw2").unwrap();
        let a = Authenticator::new(&HttpConfig {
            users: vec![UserConfig {
                name: "h".into(),
                password: Some(phc),
                tokens: vec![],
                role: Role::Viewer,
            }],
            ..HttpConfig::default()
        })
        .unwrap();
        let ok = a
            .authenticate(Some(&basic("h", "pw2")), None, None)
            .await
            .unwrap();
        assert_eq!(ok.require(Role::Viewer).unwrap(), "h");
        let e = a
            .authenticate(Some(&basic("h", "pw")), None, None)
            .await
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 401);
        // The hash itself is no password.
        let phc = match &a.users["h"].password {
            Some(_) => halyard_cluster_model::secret::hash_password("pw2").unwrap(),
            None => unreachable!(),
        };
        assert!(
            a.authenticate(Some(&basic("h", &phc)), None, None)
                .await
                .is_err()
        );
    }

    #[test]
    fn configuration_mistakes() {
        let mut c = HttpConfig::default();
        c.users.push(UserConfig {
            name: "a:b".into(),
            password: None,
            tokens: vec![],
            role: Role::Viewer,
        });
        assert!(Authenticator::new(&c).unwrap_err().contains("':'"));
        c.users[0].name = "a".into();
        c.users[0].tokens = vec!["short".into()];
        assert!(Authenticator::new(&c).unwrap_err().contains("shorter"));
        c.users[0].tokens.clear();
        c.users[0].password = Some("$argon2id$v=19$broken".into());
        assert!(
            Authenticator::new(&c)
                .unwrap_err()
                .contains("hash-password")
        );
        c.users[0].password = None;
        c.users.push(c.users[0].clone());
        assert!(Authenticator::new(&c).unwrap_err().contains("twice"));
    }
}
