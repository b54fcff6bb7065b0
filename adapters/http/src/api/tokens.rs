//! Bearer tokens issued at run time: `POST /api/v1/tokens` issues one to
//! the caller (shown once), `GET /api/v1/tokens` lists the caller's (an
//! admin's: everyone's), `DELETE /api/v1/tokens/<id>` revokes one (its
//! owner or an admin). A token is an `AccessToken` object holding only the
//! token's digest, so it is replicated to every node, kept across restarts
//! and audited like any configuration, and a revocation reaches every node
//! through the log: the next request with it is refused everywhere.
//!
//! The face issues and revokes with the agent's own principal, after it
//! checked the caller: every role may hold tokens of its own, which the
//! access rules (objects of `AccessToken` are an admin's to write) would
//! not let a viewer create.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use halyard_cluster_model::access::names as n;
use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{Change, ManagedObject, Principal, Query, Transaction};
use halyard_cluster_model::secret;
use halyard_cluster_model::{ObjectName, Timestamp, Value};
use serde_json::json;

use super::{content_type, reply};
use crate::auth::Caller;
use crate::body;
use crate::config::Role;
use crate::error::ApiError;
use crate::repr::{self, Format};
use crate::state::Shared;

/// The class of issued tokens.
pub(crate) const CLASS: &str = n::TOKEN;
/// A token lives at most this long (a year); `expires-in` may shorten it.
const MAX_LIFETIME_S: i64 = 365 * 24 * 3600;

/// Who the issuer acts as in the model.
fn issuer() -> Principal {
    Principal::new("http-token-issuer", Protocol::Internal)
}

async fn root(st: &Shared) -> Result<ObjectName, ApiError> {
    let roots = st
        .call(st.model.query(&Query {
            classes: vec![n::ROOT.into()],
            ..Query::default()
        }))
        .await?;
    roots
        .into_iter()
        .find(|o| o.parent_index == 0)
        .map(|o| o.name)
        .ok_or_else(|| ApiError::not_found("the element has no root object"))
}

async fn tokens_of(st: &Shared, user: Option<&str>) -> Result<Vec<ManagedObject>, ApiError> {
    let mut q = Query {
        classes: vec![CLASS.into()],
        ..Query::default()
    };
    if let Some(u) = user {
        q.filters.push((n::USER.into(), u.to_string()));
    }
    st.call(st.model.query(&q)).await
}

/// `POST /api/v1/tokens` with an optional `comment` and `expires-in`
/// (seconds): a new token for the caller.
pub(crate) async fn issue(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let who = c.principal()?;
    let fields = if bytes.is_empty() {
        Vec::new()
    } else {
        body::fields(content_type(&headers), &bytes)?
    };
    let mut comment = String::new();
    let mut lifetime = MAX_LIFETIME_S;
    for (k, v) in fields {
        match k.as_str() {
            "comment" => comment = v,
            "expires-in" => {
                lifetime = v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|s| (1..=MAX_LIFETIME_S).contains(s))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "expires-in '{v}': seconds, 1 to {MAX_LIFETIME_S}"
                        ))
                    })?
            }
            other => return Err(ApiError::invalid(format!("a token has no field {other}"))),
        }
    }
    let token = secret::new_token().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("no randomness for a token: {e}"),
        )
    })?;
    let digest = secret::token_digest(&token);
    // The id names the token without revealing it (a digest's prefix).
    let id = digest[..16].to_string();
    let name = root(&st)
        .await?
        .child("token", &id)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let expires = Timestamp(Timestamp::now().0 + lifetime * 1000);
    st.call(st.model.transact(Transaction {
        principal: issuer(),
        changes: vec![Change::Create {
            class: CLASS.into(),
            object: name.clone(),
            values: vec![
                (n::USER.into(), Value::Str(who.user.clone())),
                (n::DIGEST.into(), Value::Str(digest)),
                (n::EXPIRES.into(), Value::Time(expires)),
                (n::COMMENT.into(), Value::Str(comment)),
            ],
        }],
    }))
    .await?;
    st.model
        .audit(&who, &format!("issue token {id}"), "ok")
        .await;
    tracing::info!(user = %who.user, token = %id, "bearer token issued");
    let o = st.call(st.model.get(&name)).await?;
    let body = match f {
        Format::Json => {
            json!({ "token": token, "id": id, "object": repr::object_json(&o) }).to_string()
        }
        Format::Xml => {
            let mut d = repr::xml_root("token-issued", &[("token", &token), ("id", &id)]);
            repr::object_xml(&mut d, &o);
            d.end("token-issued");
            d.finish()
        }
    };
    Ok(reply(StatusCode::CREATED, f, body))
}

/// `GET /api/v1/tokens`: the caller's tokens; an admin's: everyone's.
pub(crate) async fn list(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
) -> Result<Response, ApiError> {
    let who = c.principal()?;
    let admin = c.require(Role::Admin).is_ok();
    let objs = tokens_of(&st, (!admin).then_some(who.user.as_str())).await?;
    Ok(reply(StatusCode::OK, f, repr::objects_doc(&objs, f)))
}

/// `DELETE /api/v1/tokens/<id>`: revokes a token of the caller's (an
/// admin: anyone's).
pub(crate) async fn revoke(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = c.principal()?;
    let admin = c.require(Role::Admin).is_ok();
    let name = root(&st)
        .await?
        .child("token", &id)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let o = st.call(st.model.get(&name)).await.ok().filter(|o| {
        o.class.name == CLASS
            && (admin || o.get(n::USER).and_then(Value::as_str) == Some(who.user.as_str()))
    });
    // Someone else's token is as absent as a missing one.
    if o.is_none() {
        return Err(ApiError::not_found(format!("no token {id} of yours")));
    }
    st.call(st.model.transact(Transaction {
        principal: issuer(),
        changes: vec![Change::Delete { object: name }],
    }))
    .await?;
    st.model
        .audit(&who, &format!("revoke token {id}"), "ok")
        .await;
    tracing::info!(user = %who.user, token = %id, "bearer token revoked");
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
