//! `/api/v1`: objects, the containment tree, class listings, alarms,
//! operations and jobs, events, the XML Schema; and `/metrics`.
//!
//! Notifications, live (server-sent events) and stored, are served by
//! `notifications.rs`.

mod notifications;
mod tokens;

use std::convert::Infallible;
use std::time::Duration;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, extract::FromRequestParts, http::request::Parts};
use halyard_cluster_model::alarm;
use halyard_cluster_model::meta::{AttrMeta, ClassMeta};
use halyard_cluster_model::model::PerceivedSeverity;
use halyard_cluster_model::port::{Change, ManagedObject, Principal, Query, Scope, Transaction};
use halyard_cluster_model::{ObjectName, SCHEMA, SchemaEnum, Value};

use crate::auth::Caller;
use crate::body;
use crate::config::Role;
use crate::error::ApiError;
use crate::repr::{self, Format};
use crate::state::{JobEntry, Shared};
use halyard_cluster_model::access::ReadFilter;
use notifications::{alarm_events, events, notifications};

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Format>()
            .copied()
            .unwrap_or(Format::Xml))
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1", get(index))
        .route("/api/v1/", get(index))
        .route("/api/v1/schema.xsd", get(schema_xsd))
        .route("/api/v1/classes", get(classes))
        .route("/api/v1/classes/{class}", get(class_objects))
        .route("/api/v1/tree", get(tree))
        .route("/api/v1/objects", get(objects))
        .route(
            "/api/v1/objects/{*path}",
            get(object)
                .patch(patch_object)
                .post(post_object)
                .put(put_object)
                .delete(delete_object),
        )
        .route("/api/v1/jobs/{*job}", get(job))
        .route("/api/v1/access", get(rights))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::issue))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/v1/hardware", get(hardware))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/alarms/summary", get(alarm_summary))
        .route("/api/v1/alarms/events", get(alarm_events))
        .route("/api/v1/alarms/{*path}", axum::routing::post(acknowledge))
        .route("/api/v1/events", get(events))
        .route("/api/v1/notifications", get(notifications))
        .route("/metrics", get(metrics))
        .route("/releases/{version}/{*file}", get(release_file))
}

/// A file of a release this node holds, for a peer's propagation. Only
/// the manifest and the files it lists are served, with no credentials:
/// release files are no secret, and the receiver verifies every file
/// against the manifest's checksums.
async fn release_file(
    State(s): State<Shared>,
    Path((version, file)): Path<(String, String)>,
) -> Response {
    let Some(dir) = s.release_dir.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    for slot in ["a", "b"] {
        let d = dir.join(slot);
        let Ok(text) = tokio::fs::read(d.join("manifest.json")).await else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        if m["version"].as_str() != Some(version.as_str()) {
            continue;
        }
        if file == "manifest.json" {
            return (StatusCode::OK, text).into_response();
        }
        let listed = m["files"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| f["path"].as_str() == Some(file.as_str())));
        if !listed {
            return StatusCode::NOT_FOUND.into_response();
        }
        return match tokio::fs::read(d.join(&file)).await {
            Ok(bytes) => (StatusCode::OK, bytes).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        };
    }
    StatusCode::NOT_FOUND.into_response()
}

fn reply(status: StatusCode, format: Format, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}

fn parse_name(s: &str) -> Result<ObjectName, ApiError> {
    ObjectName::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn index(Extension(c): Extension<Caller>, f: Format) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let links = [
        ("schema", "/api/v1/schema.xsd"),
        ("classes", "/api/v1/classes"),
        ("tree", "/api/v1/tree"),
        ("objects", "/api/v1/objects"),
        ("hardware", "/api/v1/hardware"),
        ("alarms", "/api/v1/alarms"),
        ("alarm-summary", "/api/v1/alarms/summary"),
        ("events", "/api/v1/events"),
        ("notifications", "/api/v1/notifications"),
        ("metrics", "/metrics"),
    ];
    Ok(match f {
        Format::Json => reply(
            StatusCode::OK,
            f,
            serde_json::json!({ "module": SCHEMA.module.yang_module, "revision": SCHEMA.module.revision,
                "links": links.iter().map(|(r, h)| serde_json::json!({"rel": r, "href": h})).collect::<Vec<_>>() })
            .to_string(),
        ),
        Format::Xml => {
            let mut d = crate::xml::Doc::new();
            d.start("api", &[]);
            for (r, h) in links {
                d.empty("link", &[("rel", r), ("href", h)]);
            }
            d.end("api");
            reply(StatusCode::OK, f, d.finish())
        }
    })
}

/// The XML Schema is public: clients validate before they authenticate.
async fn schema_xsd() -> Response {
    let mut r = repr::xsd().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

async fn classes(Extension(c): Extension<Caller>, f: Format) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    Ok(match f {
        Format::Json => reply(StatusCode::OK, f, repr::classes_json().to_string()),
        Format::Xml => reply(StatusCode::OK, f, repr::classes_xml()),
    })
}

/// `GET /api/v1/access`: what the caller may do, class by class, as the
/// access rules say now (the console shows only these controls): the
/// operations it may run, the attributes it may write, the classes whose
/// objects it may create and delete. JSON only. An anonymous caller may
/// do nothing.
async fn rights(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
) -> Result<Response, ApiError> {
    use halyard_cluster_model::access::{Op, Subject};
    c.require(Role::Viewer)?;
    let mut classes = serde_json::Map::new();
    if let Some((user, role)) = &c.user {
        let policy = st.call(st.policy.get(st.model.as_ref())).await?;
        let may = |s: &Subject, op: Op| policy.decide(user, Some(role.model_role()), s, op).permit;
        for class in SCHEMA.object_classes() {
            let operations: Vec<&str> = class
                .methods
                .iter()
                .filter(|m| may(&Subject::operation(class, m.name), Op::Exec))
                .map(|m| m.name)
                .collect();
            let writable: Vec<&str> = class
                .attributes
                .iter()
                .filter(|a| a.writable && may(&Subject::attribute(class, Some(a.name)), Op::Update))
                .map(|a| a.yang_name)
                .collect();
            let node = Subject::attribute(class, None);
            classes.insert(
                class.name.to_string(),
                serde_json::json!({
                    "operations": operations,
                    "writable": writable,
                    "create": may(&node, Op::Create),
                    "delete": may(&node, Op::Delete),
                }),
            );
        }
    }
    let (user, role) = match &c.user {
        Some((u, r)) => (Some(u.as_str()), Some(r.as_str())),
        None => (None, None),
    };
    let body = serde_json::json!({ "user": user, "role": role, "classes": classes });
    Ok(reply(StatusCode::OK, Format::Json, body.to_string()))
}

/// Query parameters every listing understands; the others are attribute filters.
const RESERVED: &[&str] = &["class", "scope", "base", "format", "access_token"];

/// Builds a query from `?class=..&scope=all|subtree|children&base=<name>&<attr>=<value>`.
fn build_query(
    raw: Option<&str>,
    fixed_class: Option<&'static ClassMeta>,
) -> Result<Query, ApiError> {
    let pairs = body::form(raw.unwrap_or(""));
    let mut q = Query::default();
    let mut scope = "all".to_string();
    let mut base = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "class" => {
                let c = SCHEMA
                    .class(v)
                    .filter(|c| !c.is_indication)
                    .ok_or_else(|| ApiError::not_found(format!("unknown class {v}")))?;
                q.classes.push(c.name.to_string());
            }
            "scope" => scope = v.clone(),
            "base" => base = Some(parse_name(v)?),
            _ => {}
        }
    }
    if let Some(c) = fixed_class {
        q.classes.push(c.name.to_string());
    }
    q.scope = match (scope.as_str(), base) {
        ("all", None) => Scope::All,
        ("all" | "subtree", Some(b)) => Scope::Subtree(b),
        ("children", Some(b)) => Scope::Children(b),
        ("subtree" | "children", None) => {
            return Err(ApiError::bad_request(format!(
                "scope={scope} needs base=<name>"
            )));
        }
        (s, _) => {
            return Err(ApiError::bad_request(format!(
                "unknown scope {s}: use all, subtree or children"
            )));
        }
    };
    let candidates: Vec<&'static ClassMeta> = if q.classes.is_empty() {
        SCHEMA.object_classes().collect()
    } else {
        SCHEMA
            .object_classes()
            .filter(|c| q.classes.iter().any(|n| SCHEMA.is_a(c.name, n)))
            .collect()
    };
    for (k, v) in pairs
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
    {
        // Classes may spell the same attribute name with different types
        // (State of a job, a release, a member): the value must fit one.
        let attrs: Vec<&AttrMeta> = candidates
            .iter()
            .filter_map(|c| c.attribute(k).map(|(_, a)| a))
            .collect();
        let Some(first) = attrs.first() else {
            return Err(ApiError::bad_request(format!(
                "no attribute {k} to filter on in the classes listed"
            )));
        };
        let (a, canonical) = if v.is_empty() {
            (*first, String::new())
        } else {
            attrs
                .iter()
                .find_map(|a| Value::parse(&a.ty, v).ok().map(|x| (*a, x.render(&a.ty))))
                .ok_or_else(|| {
                    let e = Value::parse(&first.ty, v).err().map(|e| e.to_string());
                    ApiError::invalid(format!("filter {k}: {}", e.unwrap_or_default()))
                })?
        };
        q.filters.push((a.name.to_string(), canonical));
    }
    Ok(q)
}

/// The objects a query selects that the caller may read (the access
/// model's read rules: hidden entries left out, hidden values absent).
async fn list(st: &Shared, c: &Caller, q: &Query) -> Result<Vec<ManagedObject>, ApiError> {
    let mut objs = st.call(st.model.query(q)).await?;
    let policy = st.call(st.policy.get(st.model.as_ref())).await?;
    let (user, role) = c.reader();
    ReadFilter::new(policy, user, role).objects(&mut objs);
    Ok(objs)
}

/// One object, if the caller may read it (a hidden one is not found).
async fn readable(st: &Shared, c: &Caller, name: &ObjectName) -> Result<ManagedObject, ApiError> {
    let mut o = st.call(st.model.get(name)).await?;
    let policy = st.call(st.policy.get(st.model.as_ref())).await?;
    let (user, role) = c.reader();
    if !ReadFilter::new(policy, user, role).object(&mut o) {
        return Err(ApiError::from(
            halyard_cluster_model::port::ModelError::NoSuchObject {
                name: name.to_string(),
            },
        ));
    }
    Ok(o)
}

async fn objects(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let q = build_query(raw.as_deref(), None)?;
    let objs = list(&st, &c, &q).await?;
    Ok(reply(StatusCode::OK, f, repr::objects_doc(&objs, f)))
}

async fn class_objects(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(class): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let meta = SCHEMA
        .class(&class)
        .filter(|c| !c.is_indication)
        .ok_or_else(|| ApiError::not_found(format!("unknown class {class}")))?;
    let q = build_query(raw.as_deref(), Some(meta))?;
    let objs = list(&st, &c, &q).await?;
    Ok(reply(StatusCode::OK, f, repr::objects_doc(&objs, f)))
}

async fn tree(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let root = body::form(raw.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "root")
        .map(|(_, v)| parse_name(&v))
        .transpose()?;
    let q = Query {
        scope: root.map_or(Scope::All, Scope::Subtree),
        ..Query::default()
    };
    let objs = list(&st, &c, &q).await?;
    Ok(reply(StatusCode::OK, f, repr::tree_doc(&objs, f)))
}

async fn object(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let name = parse_name(&path)?;
    let o = readable(&st, &c, &name).await?;
    Ok(reply(StatusCode::OK, f, repr::object_doc(&o, f)))
}

fn content_type(h: &HeaderMap) -> Option<&str> {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Sets attributes, all in one transaction. An operator may, as over
/// SNMPv3 (a write user) and NETCONF: one user, one answer on every face.
async fn patch_object(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(path): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let who = c.principal()?;
    let name = parse_name(&path)?;
    let fields = body::fields(content_type(&headers), &bytes)?;
    if fields.is_empty() {
        return Err(ApiError::bad_request("no attribute to set"));
    }
    let current = st.call(st.model.get(&name)).await?;
    let mut changes = Vec::new();
    for (k, text) in fields {
        let (attribute, value) = attribute_value(current.class, &k, &text)?;
        changes.push(Change::Set {
            object: name.clone(),
            attribute,
            value,
        });
    }
    transact(&st, who, changes).await?;
    tracing::info!(object = %name, "attributes set");
    let o = st.call(st.model.get(&name)).await?;
    Ok(reply(StatusCode::OK, f, repr::object_doc(&o, f)))
}

/// The attribute `k` of `class`, and `text` as its value.
fn attribute_value(class: &ClassMeta, k: &str, text: &str) -> Result<(String, Value), ApiError> {
    let (_, a) = class.attribute(k).ok_or_else(|| {
        ApiError::from(halyard_cluster_model::port::ModelError::NoSuchAttribute {
            class: class.name.to_string(),
            attribute: k.to_string(),
        })
    })?;
    let value = Value::parse(&a.ty, text).map_err(|error| {
        ApiError::from(halyard_cluster_model::port::ModelError::InvalidValue {
            attribute: a.name.to_string(),
            error,
        })
    })?;
    Ok((a.name.to_string(), value))
}

/// Applies `changes` as `user`, all or none: the model's one transaction,
/// as NETCONF's commit is.
async fn transact(st: &Shared, principal: Principal, changes: Vec<Change>) -> Result<(), ApiError> {
    let tx = Transaction { principal, changes };
    st.call(st.model.transact(tx)).await?;
    Ok(())
}

/// Creates an object: `PUT /api/v1/objects/<name>` with its `class` and
/// attributes (JSON or a form), in one transaction. What may be created
/// where is the model's to say, as for NETCONF's create (an operator makes
/// an alarm shelf this way).
async fn put_object(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(path): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let who = c.principal()?;
    let name = parse_name(&path)?;
    let fields = body::fields(content_type(&headers), &bytes)?;
    let wanted = fields
        .iter()
        .find(|(k, _)| k == "class")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad_request("the new object's class is required"))?;
    let class = SCHEMA
        .class(wanted)
        .ok_or_else(|| ApiError::invalid(format!("no class {wanted}")))?;
    let mut values = Vec::new();
    for (k, text) in fields.iter().filter(|(k, _)| k != "class") {
        values.push(attribute_value(class, k, text)?);
    }
    transact(
        &st,
        who,
        vec![Change::Create {
            class: class.name.to_string(),
            object: name.clone(),
            values,
        }],
    )
    .await?;
    tracing::info!(object = %name, class = class.name, "object created");
    let o = st.call(st.model.get(&name)).await?;
    Ok(reply(StatusCode::CREATED, f, repr::object_doc(&o, f)))
}

/// Deletes an object (and what it contains), as NETCONF's delete does.
async fn delete_object(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let who = c.principal()?;
    let name = parse_name(&path)?;
    transact(
        &st,
        who,
        vec![Change::Delete {
            object: name.clone(),
        }],
    )
    .await?;
    tracing::info!(object = %name, "object deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/objects/<name>/operations/<operation>`.
async fn post_object(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(path): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (target, op) = path
        .rsplit_once("/operations/")
        .filter(|(_, op)| !op.is_empty() && !op.contains('/'))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "POST to <object>/operations/<operation> to invoke an operation",
            )
        })?;
    let who = c.principal()?;
    let fields = body::fields(content_type(&headers), &bytes)?;
    invoke(&st, f, who, target, op, fields).await
}

async fn invoke(
    st: &Shared,
    f: Format,
    principal: Principal,
    target: &str,
    op: &str,
    fields: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let name = parse_name(target)?;
    let obj = st.call(st.model.get(&name)).await?;
    let m = obj.class.method(op).ok_or_else(|| {
        ApiError::from(halyard_cluster_model::port::ModelError::NoSuchOperation {
            class: obj.class.name.to_string(),
            operation: op.to_string(),
        })
    })?;
    let mut args = Vec::new();
    for (k, text) in fields {
        let p = m
            .params
            .iter()
            .find(|p| p.name == k || p.yang_name == k)
            .ok_or_else(|| ApiError::invalid(format!("{} takes no parameter {k}", m.name)))?;
        let v = Value::parse(&p.ty, &text)
            .map_err(|e| ApiError::invalid(format!("parameter {k}: {e}")))?;
        args.push((p.name.to_string(), v));
    }
    let user = principal.user.clone();
    let handle = st
        .call(st.model.invoke(&name, m.name, args, principal))
        .await?;
    let job = handle.job.to_string();
    tracing::info!(target = %name, operation = m.name, %job, user, "operation invoked");
    let view = repr::JobView {
        job: job.clone(),
        operation: m.name.to_string(),
        target: name.to_string(),
        status: handle.status.borrow().clone(),
    };
    st.lock_jobs().insert(
        job.clone(),
        JobEntry {
            operation: m.name.to_string(),
            target: name.to_string(),
            status: handle.status,
        },
    );
    let mut r = reply(StatusCode::ACCEPTED, f, repr::job_doc(&view, f));
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{job}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Longest wait a `?wait=<ms>` long poll may ask for.
const MAX_WAIT_MS: u64 = 30_000;

/// A job's progress. `?wait=<ms>` holds the answer until the job changes
/// (or finishes) or the time is up, so a client can follow it without
/// busy polling.
async fn job(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(job): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let wait = body::form(raw.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "wait")
        .map(|(_, v)| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("wait={v}: expected milliseconds")))
        })
        .transpose()?;
    let rx = st.lock_jobs().watch(&job);
    if let (Some(ms), Some(mut rx)) = (wait, rx) {
        rx.mark_unchanged();
        if !rx.borrow().finished() {
            let mut stop = st.shutdown.clone();
            // Shorter than the idle bound, or the connection would be cut.
            let limit = Duration::from_millis(ms.min(MAX_WAIT_MS)).min(st.limits.idle_timeout / 2);
            tokio::select! {
                _ = tokio::time::timeout(limit, rx.changed()) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
    }
    let view = st.lock_jobs().view(&job);
    match view {
        Some(v) => Ok(reply(StatusCode::OK, f, repr::job_doc(&v, f))),
        None => {
            // A job started elsewhere (NETCONF, CLI): the model's Job object.
            let o = st.call(st.model.get(&parse_name(&job)?)).await?;
            Ok(reply(StatusCode::OK, f, repr::object_doc(&o, f)))
        }
    }
}

fn alarm_class() -> Result<&'static ClassMeta, ApiError> {
    SCHEMA
        .class(alarm::CLASS)
        .ok_or_else(|| ApiError::not_found("the schema has no Alarm class"))
}

/// The physical view: every entity and sensor with ietf-hardware's
/// fields, states and readings (the same rows as ENTITY-MIB's tables).
async fn hardware(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    // The entities, their ancestors and the element's alarms: everything.
    let objs = list(&st, &c, &Query::default()).await?;
    let components = halyard_cluster_model::physical::components(&objs, st.started);
    Ok(reply(StatusCode::OK, f, repr::hardware_doc(&components, f)))
}

async fn alarms(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let q = build_query(raw.as_deref(), Some(alarm_class()?))?;
    let objs = list(&st, &c, &q).await?;
    Ok(reply(StatusCode::OK, f, repr::objects_doc(&objs, f)))
}

/// Active (uncleared) alarms by severity, most severe first; shelved
/// alarms are not counted.
async fn alarm_summary(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    // `?scope=<persistent name>`: only alarms on resources in that subtree.
    let scope = body::form(raw.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| parse_name(&v))
        .transpose()?;
    let class = alarm_class()?;
    let q = Query {
        classes: vec![class.name.to_string()],
        ..Query::default()
    };
    let objs = list(&st, &c, &q).await?;
    let meta = <PerceivedSeverity as SchemaEnum>::META;
    let mut s = repr::AlarmSummary {
        rows: alarm::ACTIVE_SEVERITIES
            .iter()
            .filter_map(|sev| meta.by_value(sev.value()).map(|v| (v.yang_name, 0, 0)))
            .collect(),
        ..Default::default()
    };
    for o in &objs {
        let in_scope = scope.as_ref().is_none_or(|root| {
            alarm::resource(o)
                .and_then(|r| halyard_cluster_model::ObjectName::parse(r).ok())
                .is_some_and(|r| r.is_within(root))
        });
        // A shelved alarm is out of the alarm list (ietf-alarms shelving).
        if !alarm::is_active(o) || !in_scope || alarm::shelf(o).is_some() {
            continue;
        }
        let acked = alarm::acknowledged(o);
        let label = alarm::severity(o)
            .and_then(|v| meta.by_value(v.value()))
            .map(|x| x.yang_name);
        if let Some(row) = s.rows.iter_mut().find(|r| Some(r.0) == label) {
            row.1 += 1;
            if !acked {
                row.2 += 1;
            }
        }
        s.total += 1;
        if !acked {
            s.unacknowledged += 1;
        }
    }
    Ok(reply(StatusCode::OK, f, repr::summary_doc(&s, f)))
}

/// `POST /api/v1/alarms/<name>/acknowledge`: the Alarm's Acknowledge operation.
async fn acknowledge(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    f: Format,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let target = path.strip_suffix("/acknowledge").ok_or_else(|| {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "POST to /api/v1/alarms/<name>/acknowledge",
        )
    })?;
    let who = c.principal()?;
    let op = alarm_class()?
        .method("Acknowledge")
        .ok_or_else(|| ApiError::not_found("the Alarm class has no Acknowledge operation"))?;
    invoke(&st, f, who, target, op.name, Vec::new()).await
}

async fn metrics(
    State(st): State<Shared>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    c.require(Role::Viewer)?;
    let start = Instant::now();
    // The exposition is kept between scrapes and brought up to date
    // every half second while someone scrapes (`server::keep_exposition`):
    // a scrape sends it as of at most a second ago (three while a refresh
    // is under way), and refreshes it itself only when it is older (the
    // first scrape, or after a pause).
    st.last_scrape
        .store(st.uptime_ms(), std::sync::atomic::Ordering::Relaxed);
    let kept = st.sealed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let younger = |age| kept.clone().filter(|m| m.at.elapsed() <= age);
    let model = if let Some(m) = younger(crate::server::EXPOSITION_MAX_AGE) {
        m
    } else if let Some(m) = st.refresh_exposition(false).await? {
        m
    } else if let Some(m) = younger(crate::server::EXPOSITION_STALE) {
        // A refresh is under way (the collector changed thousands of
        // objects at once): the last one, not much older, rather than a
        // wait for it.
        m
    } else {
        st.refresh_exposition(true)
            .await?
            .ok_or_else(ApiError::timeout)?
    };
    let format = crate::metrics::Exposition::negotiate(
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
    );
    let pieces = crate::metrics::pieces(&st.registry, &model, format).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the exposition could not be written",
        )
    })?;
    st.metrics
        .scrape_duration
        .set(start.elapsed().as_secs_f64());
    tracing::debug!(
        age_ms = model.at.elapsed().as_millis() as u64,
        ms = start.elapsed().as_millis() as u64,
        bytes = pieces.iter().map(|p| p.len()).sum::<usize>(),
        "scrape"
    );
    // The pieces are the cache's own (shared): sent as they are.
    let chunks = futures_util::stream::iter(
        pieces
            .into_iter()
            .map(Ok::<Bytes, std::convert::Infallible>),
    );
    let body = axum::body::Body::from_stream(chunks);
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(r)
}
