//! One NETCONF session over any byte stream (an SSH channel in
//! production): the hello exchange, framing choice, RPC dispatch, and
//! RFC 5277 notification delivery interleaved with RPCs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{
    Delivery, Notification, NotificationFilter, Principal, Query, Subscription,
};
use halyard_cluster_model::{AttrType, SCHEMA, Timestamp, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::data::{self, ConfigStore, Op, apply_edit, render_objects, subtree_filter};
use crate::datastore::{CommitOptions, Datastore, Shared};
use crate::error::{ErrorType, RpcError, Tag, from_model};
use crate::events::{self, End, ServerEvent};
use crate::framing::{FrameError, FrameReader, Framing, encode};
use crate::monitoring::{MonitoringView, Stats, capabilities, yang_library};
use crate::xml::{self, Element};
use crate::{
    BASE_NS, MONITORING_NS, NC_NOTIF_NS, NOTIF_NS, WITH_DEFAULTS_NS, YANG_LIBRARY_NS, YANG1_NS,
    schema_ns,
};

const BASE_1_0: &str = "urn:ietf:params:netconf:base:1.0";
const BASE_1_1: &str = "urn:ietf:params:netconf:base:1.1";

/// A `<filter>`: subtree or XPath.
#[derive(Debug, Clone)]
pub enum Filter {
    Subtree(Vec<Element>),
    XPath { select: String, ctx: Element },
}

impl Filter {
    pub fn parse(f: &Element) -> Result<Filter, RpcError> {
        let ty = f
            .attr("", "type")
            .or_else(|| f.attr(BASE_NS, "type"))
            .unwrap_or("subtree");
        match ty {
            "subtree" => Ok(Filter::Subtree(f.children.clone())),
            "xpath" => {
                let select = f
                    .attr("", "select")
                    .or_else(|| f.attr(BASE_NS, "select"))
                    .ok_or_else(|| {
                        RpcError::protocol(Tag::MissingAttribute, "xpath filter without select")
                            .with_info("bad-attribute", "select")
                            .with_info("bad-element", "filter")
                    })?;
                let mut ctx = f.clone();
                ctx.children.clear();
                Ok(Filter::XPath {
                    select: select.to_string(),
                    ctx,
                })
            }
            other => Err(RpcError::protocol(
                Tag::BadAttribute,
                format!("filter type '{other}' is not supported"),
            )
            .with_info("bad-attribute", "type")
            .with_info("bad-element", "filter")),
        }
    }

    /// The lists the filter can select (None: all of them).
    fn classes(&self) -> Option<Vec<String>> {
        match self {
            Filter::Subtree(f) => data::subtree_classes(f),
            Filter::XPath { select, ctx } => data::xpath_classes(select, ctx),
        }
    }

    fn wants(&self, ns: &str, name: &str) -> bool {
        match self {
            Filter::Subtree(f) => data::filter_wants(f, ns, name),
            Filter::XPath { select, ctx } => data::xpath_wants(select, ctx, ns, name),
        }
    }

    fn apply(&self, data: &[Element]) -> Result<Vec<Element>, RpcError> {
        match self {
            Filter::Subtree(f) => Ok(subtree_filter(data, f)),
            Filter::XPath { select, ctx } => crate::xpath::select(data, select, ctx),
        }
    }
}

enum Reply {
    Ok,
    Data(Vec<Element>),
    /// `<data>` content already serialized (the unfiltered `<get>`).
    DataText(String),
    /// Elements straight under rpc-reply (action output).
    Raw(Vec<Element>),
    Errors(Vec<RpcError>),
}

impl From<Result<(), RpcError>> for Reply {
    fn from(r: Result<(), RpcError>) -> Reply {
        match r {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::Errors(vec![e]),
        }
    }
}

struct ActiveSub {
    live: Subscription,
    /// The server's own events (RFC 6470).
    server: tokio::sync::broadcast::Receiver<Arc<ServerEvent>>,
    filter: Option<Filter>,
    stop: Option<Timestamp>,
    /// Notifications already sent by the replay.
    replayed_up_to: Option<u64>,
    server_replayed_up_to: Option<u64>,
}

/// A session in progress.
struct Session {
    shared: Arc<Shared>,
    id: u32,
    user: String,
    /// May read and subscribe only.
    read_only: bool,
    framing: Framing,
    subscribed: bool,
    sub: Option<ActiveSub>,
    /// Notifications (rendered) waiting to go out after the current reply.
    outbox: VecDeque<String>,
    close: bool,
}

fn ok_or_errors(errors: Vec<RpcError>) -> Reply {
    if errors.is_empty() {
        Reply::Ok
    } else {
        Reply::Errors(errors)
    }
}

fn missing(name: &str) -> RpcError {
    RpcError::bad_element(Tag::MissingElement, name, format!("<{name}> is required"))
}

fn datastore_of(parent: &Element, which: &str) -> Result<Datastore, RpcError> {
    let t = parent.find(BASE_NS, which).ok_or_else(|| missing(which))?;
    let ds = t.children.first().ok_or_else(|| missing(which))?;
    match (ds.ns.as_str(), ds.name.as_str()) {
        (BASE_NS, "running") => Ok(Datastore::Running),
        (BASE_NS, "candidate") => Ok(Datastore::Candidate),
        (_, name) => Err(RpcError::bad_element(
            Tag::InvalidValue,
            name,
            format!("datastore '{name}' is not supported"),
        )),
    }
}

/// A source that may be a datastore or an inline `<config>`.
enum Source {
    Ds(Datastore),
    Inline(ConfigStore),
}

fn source_of(rpc: &Element) -> Result<Source, RpcError> {
    let s = rpc
        .find(BASE_NS, "source")
        .ok_or_else(|| missing("source"))?;
    if let Some(cfg) = s.find(BASE_NS, "config") {
        let mut store = ConfigStore::default();
        let errors = apply_edit(&mut store, cfg, Op::Merge, false);
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        return Ok(Source::Inline(store));
    }
    datastore_of(rpc, "source").map(Source::Ds)
}

fn with_defaults(rpc: &Element) -> Result<(), RpcError> {
    match rpc.find(WITH_DEFAULTS_NS, "with-defaults") {
        None => Ok(()),
        // The module declares no defaults: every mode gives the same data.
        Some(w)
            if matches!(
                w.trimmed(),
                "report-all" | "trim" | "explicit" | "report-all-tagged"
            ) =>
        {
            Ok(())
        }
        Some(w) => Err(RpcError::bad_element(
            Tag::InvalidValue,
            "with-defaults",
            format!("'{}' is not a with-defaults mode", w.trimmed()),
        )),
    }
}

fn filter_of(rpc: &Element) -> Result<Option<Filter>, RpcError> {
    rpc.find(BASE_NS, "filter").map(Filter::parse).transpose()
}

/// Renders a notification's event element.
pub fn event_element(n: &Notification) -> Element {
    let ns = schema_ns();
    let mut e = Element::new(ns, n.class.yang_name);
    for (a, v) in n.class.attributes.iter().zip(&n.values) {
        if !matches!(v, Value::Absent) {
            e.push(Element::with_text(ns, a.yang_name, v.render(&a.ty)));
        }
    }
    e
}

fn notification_xml(time: Timestamp, event: Element) -> String {
    let mut n = Element::new(NOTIF_NS, "notification");
    n.push(Element::with_text(NOTIF_NS, "eventTime", time.to_string()));
    n.push(event);
    n.to_xml()
}

fn render_result(ty: &AttrType, r: u32) -> String {
    match ty {
        AttrType::Enum(_) => Value::Enum(r).render(ty),
        AttrType::Sint32 => (r as i32).to_string(),
        AttrType::Boolean => (r != 0).to_string(),
        _ => r.to_string(),
    }
}

impl Session {
    async fn write(&self, w: &mut (impl AsyncWrite + Unpin), msg: &str) -> std::io::Result<()> {
        w.write_all(&encode(msg, self.framing)).await?;
        w.flush().await
    }

    async fn compose(
        &self,
        source: Option<Datastore>,
        filter: &Option<Filter>,
    ) -> Result<Vec<Element>, RpcError> {
        let wants = |ns: &str, name: &str| filter.as_ref().is_none_or(|f| f.wants(ns, name));
        let mut roots = Vec::new();
        if wants(schema_ns(), data::TOP) {
            roots.push(match source {
                None => {
                    // Read only the classes the filter can select.
                    let classes = filter.as_ref().and_then(Filter::classes);
                    let objs = match classes {
                        Some(c) if c.is_empty() => Vec::new(),
                        classes => self
                            .shared
                            .model
                            .query(&Query {
                                classes: classes.unwrap_or_default(),
                                ..Query::default()
                            })
                            .await
                            .map_err(|e| from_model(&e, None))?,
                    };
                    render_objects(&objs, false)
                }
                Some(Datastore::Running) => self.shared.running().await?.render(),
                Some(Datastore::Candidate) => self.shared.candidate().await?.render(),
            });
        }
        if source.is_none() {
            let lib =
                wants(YANG_LIBRARY_NS, "yang-library") || wants(YANG_LIBRARY_NS, "modules-state");
            if wants(MONITORING_NS, "netconf-state") || lib {
                for e in self.monitoring_and_library().await {
                    if wants(&e.ns, &e.name) {
                        roots.push(e);
                    }
                }
            }
            if wants(crate::monitoring::NC_NOTIFICATIONS_NS, "netconf") {
                roots.push(self.streams().await);
            }
        }
        match filter {
            None => Ok(roots),
            Some(f) => f.apply(&roots),
        }
    }

    /// The whole operational tree, serialized without building a tree.
    async fn compose_all(&self) -> Result<String, RpcError> {
        let objs = self
            .shared
            .model
            .query(&Query::default())
            .await
            .map_err(|e| from_model(&e, None))?;
        let mut out = String::with_capacity(objs.len() * 512);
        data::write_objects(&objs, false, &mut out);
        drop(objs);
        for e in self.monitoring_and_library().await {
            e.write(&mut out, BASE_NS);
        }
        self.streams().await.write(&mut out, BASE_NS);
        Ok(out)
    }

    /// `/netconf/streams`: replay reaches back to the oldest notification
    /// kept (the model's or the server's own), or the server's start.
    async fn streams(&self) -> Element {
        let model_oldest = self
            .shared
            .model
            .history(&NotificationFilter::default(), Timestamp(0), None)
            .await
            .ok()
            .and_then(|h| h.first().map(|n| n.time));
        let server_oldest = self
            .shared
            .events
            .history(Timestamp(0), None)
            .first()
            .map(|e| e.time);
        let since = [Some(self.shared.start_time), model_oldest, server_oldest]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.shared.start_time);
        crate::monitoring::streams(since)
    }

    async fn monitoring_and_library(&self) -> Vec<Element> {
        let view = MonitoringView {
            sessions: self.shared.session_infos(),
            locks: self.shared.locks().await,
            schemas: self.shared.schemas.available(),
            stats: &self.shared.stats,
            start_time: self.shared.start_time,
        };
        let mut v = vec![view.render()];
        v.extend(yang_library());
        v
    }

    async fn dispatch(&mut self, op: &Element) -> Reply {
        let sh = self.shared.clone();
        let me = self.id;
        let writes = matches!(
            (op.ns.as_str(), op.name.as_str()),
            (
                BASE_NS,
                "edit-config"
                    | "copy-config"
                    | "delete-config"
                    | "lock"
                    | "unlock"
                    | "commit"
                    | "cancel-commit"
                    | "discard-changes"
                    | "kill-session"
            ) | (YANG1_NS, "action")
        );
        if writes && self.read_only {
            warn!(op = %op.name, user = %self.user, "access denied: read-only user");
            return Reply::Errors(vec![RpcError::protocol(
                Tag::AccessDenied,
                format!("user {} may not use <{}>", self.user, op.name),
            )]);
        }
        match (op.ns.as_str(), op.name.as_str()) {
            (BASE_NS, "get") => {
                let r = async {
                    with_defaults(op)?;
                    match filter_of(op)? {
                        None => self.compose_all().await.map(Reply::DataText),
                        f => self.compose(None, &f).await.map(Reply::Data),
                    }
                }
                .await;
                r.unwrap_or_else(|e| Reply::Errors(vec![e]))
            }
            (BASE_NS, "get-config") => {
                let r = async {
                    with_defaults(op)?;
                    let ds = datastore_of(op, "source")?;
                    let f = filter_of(op)?;
                    self.compose(Some(ds), &f).await
                }
                .await;
                match r {
                    Ok(d) => Reply::Data(d),
                    Err(e) => Reply::Errors(vec![e]),
                }
            }
            (BASE_NS, "edit-config") => self.edit_config(op).await,
            (BASE_NS, "copy-config") => self.copy_config(op).await,
            (BASE_NS, "delete-config") => match datastore_of(op, "target") {
                Ok(Datastore::Candidate) => {
                    sh.set_candidate(me, ConfigStore::default()).await.into()
                }
                Ok(Datastore::Running) => Reply::Errors(vec![RpcError::bad_element(
                    Tag::InvalidValue,
                    "running",
                    "the running datastore cannot be deleted",
                )]),
                Err(e) => Reply::Errors(vec![e]),
            },
            (BASE_NS, "lock") => match datastore_of(op, "target") {
                Ok(ds) => sh.lock(me, ds).await.into(),
                Err(e) => Reply::Errors(vec![e]),
            },
            (BASE_NS, "unlock") => match datastore_of(op, "target") {
                Ok(ds) => sh.unlock(me, ds).await.into(),
                Err(e) => Reply::Errors(vec![e]),
            },
            (BASE_NS, "close-session") => {
                self.close = true;
                Reply::Ok
            }
            (BASE_NS, "kill-session") => {
                let target = op
                    .find(BASE_NS, "session-id")
                    .ok_or_else(|| missing("session-id"))
                    .and_then(|e| {
                        e.trimmed().parse::<u32>().map_err(|_| {
                            RpcError::bad_element(
                                Tag::InvalidValue,
                                "session-id",
                                "not a session-id",
                            )
                        })
                    });
                match target {
                    Ok(t) => sh.kill_session(me, t).await.into(),
                    Err(e) => Reply::Errors(vec![e]),
                }
            }
            (BASE_NS, "validate") => self.validate(op).await.into(),
            (BASE_NS, "commit") => match commit_options(op) {
                Ok(o) => sh.commit(me, &self.user, o).await.into(),
                Err(e) => Reply::Errors(vec![e]),
            },
            (BASE_NS, "cancel-commit") => {
                let pid = op
                    .find(BASE_NS, "persist-id")
                    .map(|e| e.trimmed().to_string());
                sh.cancel_commit(me, pid).await.into()
            }
            (BASE_NS, "discard-changes") => sh.discard_changes(me).await.into(),
            (MONITORING_NS, "get-schema") => match sh.schemas.get_schema(op) {
                Ok(d) => Reply::Raw(vec![d]),
                Err(e) => Reply::Errors(vec![e]),
            },
            (NOTIF_NS, "create-subscription") => self.create_subscription(op).await.into(),
            (YANG1_NS, "action") => match self.action(op).await {
                Ok(out) => Reply::Raw(out),
                Err(e) => Reply::Errors(vec![e]),
            },
            (BASE_NS, name) | (MONITORING_NS, name) | (NOTIF_NS, name) | (YANG1_NS, name) => {
                Reply::Errors(vec![RpcError::bad_element(
                    Tag::OperationNotSupported,
                    name,
                    format!("operation '{name}' is not supported"),
                )])
            }
            (ns, name) => Reply::Errors(vec![
                RpcError::protocol(
                    Tag::UnknownNamespace,
                    format!("namespace '{ns}' of <{name}> is not supported"),
                )
                .with_info("bad-element", name)
                .with_info("bad-namespace", ns),
            ]),
        }
    }

    async fn edit_config(&mut self, op: &Element) -> Reply {
        let target = match datastore_of(op, "target") {
            Ok(t) => t,
            Err(e) => return Reply::Errors(vec![e]),
        };
        let text = |n: &str| op.find(BASE_NS, n).map(|e| e.trimmed().to_string());
        let default_op = match text("default-operation").as_deref() {
            None | Some("merge") => Op::Merge,
            Some("replace") => Op::Replace,
            Some("none") => Op::None,
            Some(o) => {
                return Reply::Errors(vec![RpcError::bad_element(
                    Tag::InvalidValue,
                    "default-operation",
                    format!("'{o}' is not a default-operation"),
                )]);
            }
        };
        let test_only = match text("test-option").as_deref() {
            None | Some("test-then-set") | Some("set") => false,
            Some("test-only") => true,
            Some(o) => {
                return Reply::Errors(vec![RpcError::bad_element(
                    Tag::InvalidValue,
                    "test-option",
                    format!("'{o}' is not a test-option"),
                )]);
            }
        };
        let keep_partial = match text("error-option").as_deref() {
            // Stop-on-error applies nothing after an error; we apply nothing
            // at all (every edit is one transaction), which RFC 6241 allows.
            None | Some("stop-on-error") | Some("rollback-on-error") => false,
            Some("continue-on-error") => true,
            Some(o) => {
                return Reply::Errors(vec![RpcError::bad_element(
                    Tag::InvalidValue,
                    "error-option",
                    format!("'{o}' is not an error-option"),
                )]);
            }
        };
        let Some(config) = op.find(BASE_NS, "config") else {
            if op.find(BASE_NS, "url").is_some() {
                return Reply::Errors(vec![RpcError::bad_element(
                    Tag::OperationNotSupported,
                    "url",
                    ":url is not supported",
                )]);
            }
            return Reply::Errors(vec![missing("config")]);
        };
        let config = config.clone();
        let touched = data::touched(&config, default_op);
        let errors = self
            .shared
            .edit(
                self.id,
                &self.user,
                target,
                test_only,
                keep_partial,
                &touched,
                |store| apply_edit(store, &config, default_op, keep_partial),
            )
            .await;
        ok_or_errors(errors)
    }

    async fn copy_config(&mut self, op: &Element) -> Reply {
        let (source, target) = match (source_of(op), datastore_of(op, "target")) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => return Reply::Errors(vec![e]),
        };
        let store = match source {
            Source::Ds(s) if s == target => {
                return Reply::Errors(vec![RpcError::bad_element(
                    Tag::InvalidValue,
                    "source",
                    "source and target are the same datastore",
                )]);
            }
            Source::Ds(Datastore::Running) => self.shared.running().await,
            Source::Ds(Datastore::Candidate) => self.shared.candidate().await,
            Source::Inline(s) => Ok(s),
        };
        let store = match store {
            Ok(s) => s,
            Err(e) => return Reply::Errors(vec![e]),
        };
        match target {
            Datastore::Candidate => self.shared.set_candidate(self.id, store).await.into(),
            Datastore::Running => ok_or_errors(
                self.shared
                    .edit(
                        self.id,
                        &self.user,
                        target,
                        false,
                        false,
                        &data::Touched {
                            full: true,
                            ..data::Touched::default()
                        },
                        |s| {
                            *s = store;
                            Vec::new()
                        },
                    )
                    .await,
            ),
        }
    }

    /// `<validate>`: the datastore (or inline config) as a whole, as the
    /// commit that would make it running: the model checks the one
    /// transaction that commit would be, applying nothing.
    async fn validate(&self, op: &Element) -> Result<(), RpcError> {
        let store = match source_of(op)? {
            Source::Ds(Datastore::Running) => self.shared.running().await?,
            Source::Ds(Datastore::Candidate) => self.shared.candidate().await?,
            Source::Inline(s) => s,
        };
        self.shared.validate_config(&self.user, &store).await
    }

    async fn action(&self, op: &Element) -> Result<Vec<Element>, RpcError> {
        let ns = schema_ns();
        let top = op.children.first().ok_or_else(|| missing(data::TOP))?;
        if top.ns != ns {
            return Err(RpcError::protocol(
                Tag::UnknownNamespace,
                format!("namespace '{}' has no actions", top.ns),
            )
            .with_info("bad-element", top.name.clone())
            .with_info("bad-namespace", top.ns.clone()));
        }
        let entry = top.children.first().ok_or_else(|| missing("list entry"))?;
        let class = SCHEMA
            .object_classes()
            .find(|c| c.yang_name == entry.name)
            .ok_or_else(|| {
                RpcError::bad_element(
                    Tag::UnknownElement,
                    &entry.name,
                    format!("unknown element '{}'", entry.name),
                )
            })?;
        let key = class
            .key_index()
            .map_or("name", |i| class.attributes[i].yang_name);
        let name_el = entry.find(ns, key).ok_or_else(|| missing(key))?;
        let target = halyard_cluster_model::ObjectName::parse(name_el.trimmed())
            .map_err(|e| RpcError::bad_element(Tag::InvalidValue, key, e.to_string()))?;
        let act = entry
            .children
            .iter()
            .find(|c| c.name != key)
            .ok_or_else(|| missing("action"))?;
        let m = class
            .methods
            .iter()
            .find(|m| m.yang_name == act.name)
            .ok_or_else(|| {
                RpcError::bad_element(
                    Tag::UnknownElement,
                    &act.name,
                    format!("{} has no action '{}'", class.yang_name, act.name),
                )
            })?;
        let path = data::entry_path(class, target.as_str(), Some(m.yang_name));
        // The entry must exist in the list the request names: a shelf's
        // name under <fan> is no fan (as edit-config answers).
        let obj = self.shared.model.get(&target).await.ok();
        if obj.as_ref().is_none_or(|o| o.class.name != class.name) {
            return Err(RpcError::application(
                Tag::DataMissing,
                format!("{} has no entry {target}", class.yang_name),
            )
            .with_info("bad-element", class.yang_name)
            .with_path(data::entry_path(class, target.as_str(), None)));
        }
        let mut args = Vec::new();
        for p in &act.children {
            let pm = m
                .params
                .iter()
                .find(|x| x.yang_name == p.name && p.ns == ns)
                .ok_or_else(|| {
                    RpcError::bad_element(
                        Tag::UnknownElement,
                        &p.name,
                        format!("action {} has no input '{}'", m.yang_name, p.name),
                    )
                    .with_path(path.clone())
                })?;
            let v = Value::parse(&pm.ty, &p.text).map_err(|e| {
                RpcError::bad_element(
                    Tag::InvalidValue,
                    pm.yang_name,
                    format!("{}: {e}", pm.yang_name),
                )
                .with_path(path.clone())
            })?;
            args.push((pm.name.to_string(), v));
        }
        let job = self
            .shared
            .model
            .invoke(
                &target,
                m.name,
                args,
                Principal::new(self.user.clone(), Protocol::Netconf),
            )
            .await
            .map_err(|e| from_model(&e, Some(path.clone())))?;
        info!(target = %target, action = m.yang_name, job = %job.job, "action invoked");
        let job_name = job.job.to_string();
        let result = if m.job {
            job.status.borrow().result.unwrap_or(0)
        } else {
            match tokio::time::timeout(Duration::from_secs(60), job.wait()).await {
                Ok(s) => s.result.unwrap_or(0),
                Err(_) => {
                    return Err(RpcError::operation_failed(format!(
                        "{} did not finish in 60 s",
                        m.yang_name
                    ))
                    .with_path(path));
                }
            }
        };
        let mut out = vec![Element::with_text(
            ns,
            "result",
            render_result(&m.returns, result),
        )];
        if m.job {
            out.push(Element::with_text(ns, "job", job_name));
        }
        Ok(out)
    }

    async fn create_subscription(&mut self, op: &Element) -> Result<(), RpcError> {
        if self.subscribed {
            return Err(RpcError::protocol(
                Tag::OperationFailed,
                "this session already has a subscription",
            ));
        }
        let text = |n: &str| op.find(NOTIF_NS, n).map(|e| e.trimmed().to_string());
        if let Some(s) = text("stream")
            && s != "NETCONF"
        {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "stream",
                format!("no stream '{s}'; the server has NETCONF"),
            ));
        }
        // RFC 5277 puts <filter> in its own namespace; ncclient sends the base one.
        let filter = op
            .find(NOTIF_NS, "filter")
            .or_else(|| op.find(BASE_NS, "filter"))
            .map(Filter::parse)
            .transpose()?;
        let time = |n: &str| -> Result<Option<Timestamp>, RpcError> {
            text(n)
                .map(|t| {
                    Timestamp::parse_rfc3339(&t).ok_or_else(|| {
                        RpcError::bad_element(
                            Tag::InvalidValue,
                            n,
                            format!("'{t}' is not a date-and-time"),
                        )
                    })
                })
                .transpose()
        };
        let start = time("startTime")?;
        let stop = time("stopTime")?;
        let now = Timestamp::now();
        match (start, stop) {
            (None, Some(_)) => {
                return Err(RpcError::bad_element(
                    Tag::MissingElement,
                    "startTime",
                    "stopTime needs a startTime",
                ));
            }
            (Some(s), _) if s > now => {
                return Err(RpcError::bad_element(
                    Tag::BadElement,
                    "startTime",
                    "startTime is in the future",
                ));
            }
            (Some(s), Some(e)) if e < s => {
                return Err(RpcError::bad_element(
                    Tag::BadElement,
                    "stopTime",
                    "stopTime is before startTime",
                ));
            }
            _ => {}
        }
        // Subscribe first so nothing falls between the replay and live delivery.
        let live = self.shared.model.subscribe(NotificationFilter::default());
        let server = self.shared.events.subscribe();
        let mut sub = ActiveSub {
            live,
            server,
            filter,
            stop,
            replayed_up_to: None,
            server_replayed_up_to: None,
        };
        if let Some(s) = start {
            let past = self
                .shared
                .model
                .history(&NotificationFilter::default(), s, stop)
                .await
                .map_err(|e| from_model(&e, None))?;
            let past_server = self.shared.events.history(s, stop);
            // The model's and the server's own events, merged in time order.
            let mut replay: Vec<(Timestamp, Option<String>)> = Vec::new();
            for n in &past {
                sub.replayed_up_to = Some(n.seq);
                replay.push((n.time, render_for(&sub, n)));
            }
            for e in &past_server {
                sub.server_replayed_up_to = Some(e.seq);
                replay.push((e.time, render_element(&sub, e.time, e.event.clone())));
            }
            replay.sort_by_key(|(t, _)| *t);
            self.outbox
                .extend(replay.into_iter().filter_map(|(_, x)| x));
            self.outbox.push_back(notification_xml(
                Timestamp::now(),
                Element::new(NC_NOTIF_NS, "replayComplete"),
            ));
            if stop.is_some_and(|e| e <= Timestamp::now()) {
                self.outbox.push_back(notification_xml(
                    Timestamp::now(),
                    Element::new(NC_NOTIF_NS, "notificationComplete"),
                ));
                self.subscribed = true;
                return Ok(());
            }
        }
        self.subscribed = true;
        self.sub = Some(sub);
        info!(replay = start.is_some(), "subscribed to NETCONF stream");
        Ok(())
    }
}

fn render_for(sub: &ActiveSub, n: &Notification) -> Option<String> {
    render_element(sub, n.time, event_element(n))
}

/// An event element through the subscription's filter, as a notification.
fn render_element(sub: &ActiveSub, time: Timestamp, ev: Element) -> Option<String> {
    let ev = match &sub.filter {
        None => ev,
        Some(f) => f
            .apply(std::slice::from_ref(&ev))
            .ok()?
            .into_iter()
            .next()?,
    };
    Some(notification_xml(time, ev))
}

fn commit_options(op: &Element) -> Result<CommitOptions, RpcError> {
    let text = |n: &str| op.find(BASE_NS, n).map(|e| e.trimmed().to_string());
    let timeout = match text("confirm-timeout") {
        None => None,
        Some(t) => match t.parse::<u32>() {
            Ok(s) if s > 0 => Some(Duration::from_secs(u64::from(s))),
            _ => {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    "confirm-timeout",
                    format!("'{t}' is not a timeout in seconds (1..4294967295)"),
                ));
            }
        },
    };
    Ok(CommitOptions {
        confirmed: op.find(BASE_NS, "confirmed").is_some(),
        timeout,
        persist: text("persist"),
        persist_id: text("persist-id"),
    })
}

enum SubEvent {
    Send(String),
    Missed(u64),
    Complete,
    Nothing,
}

async fn next_sub_event(sub: &mut ActiveSub) -> SubEvent {
    let until_stop = sub.stop.map(|s| {
        let ms = (s.0 - Timestamp::now().0).max(0) as u64;
        Instant::now() + Duration::from_millis(ms)
    });
    let stop_timer = async {
        match until_stop {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        d = sub.live.recv() => match d {
            Some(Delivery::Notification(n)) => {
                if sub.replayed_up_to.is_some_and(|s| n.seq <= s) {
                    return SubEvent::Nothing;
                }
                if sub.stop.is_some_and(|s| n.time > s) {
                    return SubEvent::Complete;
                }
                match render_for(sub, &n) {
                    Some(x) => SubEvent::Send(x),
                    None => SubEvent::Nothing,
                }
            }
            Some(Delivery::Missed(k)) => SubEvent::Missed(k),
            None => SubEvent::Complete,
        },
        r = sub.server.recv() => match r {
            Ok(e) => {
                if sub.server_replayed_up_to.is_some_and(|s| e.seq <= s) {
                    return SubEvent::Nothing;
                }
                if sub.stop.is_some_and(|s| e.time > s) {
                    return SubEvent::Complete;
                }
                match render_element(sub, e.time, e.event.clone()) {
                    Some(x) => SubEvent::Send(x),
                    None => SubEvent::Nothing,
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => SubEvent::Missed(k),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => SubEvent::Complete,
        },
        () = stop_timer => SubEvent::Complete,
    }
}

fn hello_xml(id: u32) -> String {
    let mut h = Element::new(BASE_NS, "hello");
    let mut caps = Element::new(BASE_NS, "capabilities");
    for c in capabilities() {
        caps.push(Element::with_text(BASE_NS, "capability", c));
    }
    h.push(caps);
    h.push(Element::with_text(BASE_NS, "session-id", id.to_string()));
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}", h.to_xml())
}

/// Checks the client's hello; returns whether base:1.1 was offered.
fn client_hello(msg: &[u8], max_depth: usize) -> Result<bool, String> {
    let text = std::str::from_utf8(msg).map_err(|_| "hello is not UTF-8".to_string())?;
    let h = xml::parse(text, max_depth).map_err(|e| e.to_string())?;
    if !h.is(BASE_NS, "hello") {
        return Err(format!("expected <hello>, got <{}> in '{}'", h.name, h.ns));
    }
    if h.find(BASE_NS, "session-id").is_some() {
        return Err("a client hello must not carry a session-id".into());
    }
    let caps: Vec<&str> = h
        .find(BASE_NS, "capabilities")
        .map(|c| {
            c.children
                .iter()
                .filter(|x| x.is(BASE_NS, "capability"))
                .map(Element::trimmed)
                .collect()
        })
        .unwrap_or_default();
    let v11 = caps.contains(&BASE_1_1);
    if !v11 && !caps.contains(&BASE_1_0) {
        return Err("no common base capability".into());
    }
    Ok(v11)
}

/// Builds `<rpc-reply>` carrying every attribute of the `<rpc>`.
fn reply_xml(attrs: &[(String, String, String)], reply: Reply) -> String {
    let mut r = Element::new(BASE_NS, "rpc-reply");
    r.attrs = attrs.to_vec();
    match reply {
        Reply::Ok => {
            r.push(Element::new(BASE_NS, "ok"));
        }
        Reply::Data(d) => {
            let mut data = Element::new(BASE_NS, "data");
            data.children = d;
            r.push(data);
        }
        Reply::DataText(text) => {
            // Splice the serialized content into <data>: the marker is the
            // last text of the reply, after any attribute the client sent.
            const MARK: char = '\u{E000}';
            let mut head = String::new();
            r.push(Element::with_text(BASE_NS, "data", MARK.to_string()));
            r.write(&mut head, "");
            if let Some(at) = head.rfind(MARK) {
                head.replace_range(at..at + MARK.len_utf8(), &text);
            }
            return head;
        }
        Reply::Raw(items) => r.children = items,
        Reply::Errors(es) => {
            for e in es {
                r.push(e.to_element());
            }
        }
    }
    r.to_xml()
}

/// Runs one session to its end over `stream`. The session runs in its own
/// task so that even a panic in it releases its locks and registration.
pub async fn run_session<S>(
    shared: Arc<Shared>,
    stream: S,
    user: String,
    peer: String,
    read_only: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, kill) = shared.register(&user, &peer);
    let span = info_span!("netconf", session = id, user = %user, peer = %peer);
    let who = shared.who(id);
    // Aborted when dropped: shutdown aborts the outer task.
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
        serve(shared.clone(), stream, id, user, read_only, kill).instrument(span.clone()),
    ));
    let end = match task.await {
        Ok(end) => end,
        Err(e) => {
            if e.is_panic() {
                error!(parent: &span, "session task panicked: its locks are released");
            }
            End::Dropped
        }
    };
    // RFC 6022: dropped-sessions counts sessions "abnormally terminated,
    // e.g., due to idle timeout or transport close"; a close-session or a
    // kill-session is an orderly end.
    if !matches!(end, End::Closed | End::Killed(_)) {
        Stats::inc(&shared.stats.dropped_sessions);
    }
    shared.events.emit(events::session_end(&who, end));
    shared.unregister(id).instrument(span).await;
}

fn killed(kill: &tokio::sync::watch::Receiver<Option<u32>>) -> End {
    End::Killed(kill.borrow().unwrap_or(0))
}

/// The session loop; returns why the session ended.
async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    id: u32,
    user: String,
    read_only: bool,
    mut kill: tokio::sync::watch::Receiver<Option<u32>>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let limits = shared.limits.clone();
    let mut reader = FrameReader::new(rd, limits.max_message_size);
    let mut s = Session {
        shared: shared.clone(),
        id,
        user,
        read_only,
        framing: Framing::EndOfMessage,
        subscribed: false,
        sub: None,
        outbox: VecDeque::new(),
        close: false,
    };
    // Our hello goes out at once, without waiting for the client's (RFC 6241 §8.1).
    if let Err(e) = s.write(&mut wr, &hello_xml(id)).await {
        debug!(error = %e, "client gone before the hello");
        return End::Dropped;
    }
    let hello = tokio::select! {
        r = tokio::time::timeout(limits.hello_timeout, reader.read_message()) => r,
        _ = kill.changed() => return killed(&kill),
    };
    let v11 = match hello {
        Ok(Ok(Some(m))) => match client_hello(&m, limits.max_depth) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "bad hello: closing the session");
                Stats::inc(&shared.stats.in_bad_hellos);
                return End::BadHello;
            }
        },
        Ok(Ok(None)) => return End::Dropped,
        Ok(Err(e)) => {
            warn!(error = %e, "framing error in the hello: closing the session");
            Stats::inc(&shared.stats.in_bad_hellos);
            return End::BadHello;
        }
        Err(_) => {
            warn!("no hello in time: closing the session");
            Stats::inc(&shared.stats.in_bad_hellos);
            return End::Timeout;
        }
    };
    if v11 {
        s.framing = Framing::Chunked;
        reader.framing = Framing::Chunked;
    }
    info!(framing = ?s.framing, "session started");
    shared.events.emit(events::session_start(&shared.who(id)));
    let idle = shared.idle_timeout;
    let mut deadline = Instant::now() + idle;
    loop {
        // Notifications queued by a reply (replay) go out first.
        while let Some(n) = s.outbox.pop_front() {
            if s.write(&mut wr, &n).await.is_err() {
                return End::Dropped;
            }
            Stats::inc(&shared.stats.out_notifications);
            shared.count(id, |i| i.out_notifications += 1);
            if let Some(t) = &shared.trace {
                t.record(id, None, &n).await;
            }
        }
        if s.close {
            info!("session closed by the client");
            let _ = wr.shutdown().await;
            return End::Closed;
        }
        let has_sub = s.sub.is_some();
        let sub_event = async {
            match s.sub.as_mut() {
                Some(sub) => next_sub_event(sub).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = kill.changed() => {
                info!("session killed");
                let _ = wr.shutdown().await;
                return killed(&kill);
            }
            msg = reader.read_message() => {
                match msg {
                    Ok(Some(m)) => {
                        deadline = Instant::now() + idle;
                        let started = std::time::Instant::now();
                        let out = s.handle_message(&m).await;
                        if let Some(t) = &shared.trace {
                            t.record(id, Some(&m), &out).await;
                        }
                        s.shared.stats.rpc_latency.observe(started.elapsed());
                        if s.write(&mut wr, &out).await.is_err() {
                            return End::Dropped;
                        }
                    }
                    Ok(None) => {
                        info!("client closed the connection");
                        return End::Dropped;
                    }
                    Err(e) => {
                        Stats::inc(&shared.stats.framing_errors);
                        match e {
                            FrameError::Io(e) => info!(error = %e, "connection lost"),
                            FrameError::Truncated => info!("client vanished in the middle of a message"),
                            e => {
                                warn!(error = %e, "framing error: closing the session");
                                let err = RpcError::malformed(e.to_string());
                                let _ = s.write(&mut wr, &reply_xml(&[], Reply::Errors(vec![err]))).await;
                            }
                        }
                        let _ = wr.shutdown().await;
                        return End::Dropped;
                    }
                }
            }
            ev = sub_event => {
                match ev {
                    SubEvent::Send(x) => s.outbox.push_back(x),
                    SubEvent::Missed(k) => warn!(missed = k, "subscriber too slow: notifications dropped"),
                    SubEvent::Complete => {
                        s.outbox.push_back(notification_xml(Timestamp::now(), Element::new(NC_NOTIF_NS, "notificationComplete")));
                        s.sub = None;
                    }
                    SubEvent::Nothing => {}
                }
            }
            () = tokio::time::sleep_until(deadline), if !has_sub => {
                info!(idle_s = idle.as_secs(), "idle timeout: closing the session");
                let _ = wr.shutdown().await;
                return End::Timeout;
            }
        }
    }
}

impl Session {
    /// One message in, one reply out.
    async fn handle_message(&mut self, m: &[u8]) -> String {
        let sh = self.shared.clone();
        let id = self.id;
        Stats::inc(&sh.stats.in_rpcs);
        sh.count(id, |i| i.in_rpcs += 1);
        let bad = |sh: &Shared, e: RpcError, attrs: &[(String, String, String)]| {
            Stats::inc(&sh.stats.in_bad_rpcs);
            Stats::inc(&sh.stats.out_rpc_errors);
            sh.count(id, |i| {
                i.in_bad_rpcs += 1;
                i.out_rpc_errors += 1;
            });
            reply_xml(attrs, Reply::Errors(vec![e]))
        };
        let text = match std::str::from_utf8(m) {
            Ok(t) => t,
            Err(_) => return bad(&sh, RpcError::malformed("message is not UTF-8"), &[]),
        };
        let rpc = match xml::parse(text, sh.limits.max_depth) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "malformed message");
                return bad(&sh, RpcError::malformed(e.to_string()), &[]);
            }
        };
        let attrs = rpc.attrs.clone();
        if rpc.name != "rpc" || rpc.ns != BASE_NS {
            let e = if rpc.name == "rpc" {
                RpcError::protocol(
                    Tag::UnknownNamespace,
                    format!("<rpc> must be in {BASE_NS}, not '{}'", rpc.ns),
                )
                .with_info("bad-element", "rpc")
                .with_info("bad-namespace", rpc.ns.clone())
            } else {
                RpcError::new(
                    ErrorType::Rpc,
                    Tag::MalformedMessage,
                    format!("expected <rpc>, got <{}>", rpc.name),
                )
            };
            return bad(&sh, e, &attrs);
        }
        if rpc.attr("", "message-id").is_none() {
            let e = RpcError::new(
                ErrorType::Rpc,
                Tag::MissingAttribute,
                "<rpc> without message-id",
            )
            .with_info("bad-attribute", "message-id")
            .with_info("bad-element", "rpc");
            return bad(&sh, e, &attrs);
        }
        let Some(op) = rpc.children.first() else {
            return bad(&sh, missing("operation"), &attrs);
        };
        debug!(op = %op.name, "rpc");
        let reply = self.dispatch(op).await;
        if let Reply::Errors(es) = &reply {
            let n = es.len() as u64;
            for e in es {
                debug!(op = %op.name, tag = e.tag.as_str(), message = %e.message, "rpc-error");
            }
            sh.stats
                .out_rpc_errors
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            sh.count(id, |i| i.out_rpc_errors += n);
        }
        reply_xml(&attrs, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hellos() {
        let hello = |caps: &str, extra: &str| {
            format!(
                r#"<hello xmlns="{BASE_NS}"><capabilities>{caps}</capabilities>{extra}</hello>"#
            )
        };
        let cap = |c: &str| format!("<capability>{c}</capability>");
        let both = format!("{}{}", cap(BASE_1_0), cap(BASE_1_1));
        assert_eq!(client_hello(hello(&both, "").as_bytes(), 8), Ok(true));
        assert_eq!(
            client_hello(hello(&cap(BASE_1_0), "").as_bytes(), 8),
            Ok(false)
        );
        assert!(client_hello(hello(&cap("urn:x"), "").as_bytes(), 8).is_err());
        assert!(client_hello(hello(&both, "<session-id>4</session-id>").as_bytes(), 8).is_err());
        assert!(client_hello(b"<hello xmlns='urn:wrong'/>", 8).is_err());
        assert!(client_hello(b"<hello", 8).is_err());
        // The server's own hello advertises both bases and a session-id.
        let h = hello_xml(9);
        assert!(
            h.contains(BASE_1_0)
                && h.contains(BASE_1_1)
                && h.contains("<session-id>9</session-id>")
        );
    }

    #[test]
    fn replies_carry_the_rpc_attributes() {
        let attrs = vec![
            (String::new(), "message-id".to_string(), "m-1".to_string()),
            ("urn:ex".to_string(), "user".to_string(), "x".to_string()),
        ];
        let r = reply_xml(&attrs, Reply::Ok);
        assert!(r.starts_with(r#"<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="m-1" xmlns:a1="urn:ex" a1:user="x"><ok/>"#), "{r}");
        let r = reply_xml(&attrs[..1], Reply::DataText("<x/>".into()));
        assert!(
            r.ends_with(r#"message-id="m-1"><data><x/></data></rpc-reply>"#),
            "{r}"
        );
    }

    #[test]
    fn xpath_filter_on_a_notification() {
        let f = xml::parse(
            &format!(
                r#"<nc:filter xmlns:nc="{BASE_NS}" xmlns:hc="{}" type="xpath" select="/hc:alarm-raised[hc:severity='critical']"/>"#,
                schema_ns()
            ),
            8,
        )
        .unwrap();
        let f = Filter::parse(&f).unwrap();
        let mut ev = Element::new(schema_ns(), "alarm-raised");
        ev.push(Element::with_text(schema_ns(), "severity", "critical"));
        assert_eq!(f.apply(std::slice::from_ref(&ev)).unwrap().len(), 1);
        ev.children[0].text = "major".into();
        assert!(f.apply(std::slice::from_ref(&ev)).unwrap().is_empty());
    }
}
