//! RPC dispatch: one function per operation (get, get-config,
//! edit-config, copy-config, delete-config, lock, unlock, validate,
//! commit, actions, ...), and the data get and get-config compose.

use std::time::Duration;

use halyard_cluster_model::model::OperatorState;
use halyard_cluster_model::port::{ManagedObject, NotificationFilter, Query};
use halyard_cluster_model::{AttrType, SCHEMA, Timestamp, Value};
use tracing::{info, warn};

use super::Session;
use super::filters::{Filter, filter_of};
use crate::alarms::ALARMS_NS;
use crate::data::{self, ConfigStore, Op, apply_edit, render_objects};
use crate::datastore::{CommitOptions, Datastore};
use crate::error::{RpcError, Tag, from_model};
use crate::hardware::HARDWARE_NS;
use crate::monitoring::{MonitoringView, yang_library};
use crate::system::SYSTEM_NS;
use crate::xml::Element;
use crate::{
    BASE_NS, MONITORING_NS, NOTIF_NS, WITH_DEFAULTS_NS, YANG_LIBRARY_NS, YANG1_NS, schema_ns,
};

pub(super) enum Reply {
    Ok,
    Data(Vec<Element>),
    /// `<get-data>`'s output: `<data>` of ietf-netconf-nmda.
    NmdaData(Vec<Element>),
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

fn ok_or_errors(errors: Vec<RpcError>) -> Reply {
    if errors.is_empty() {
        Reply::Ok
    } else {
        Reply::Errors(errors)
    }
}

pub(super) fn missing(name: &str) -> RpcError {
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

/// The datastores of the server (RFC 8342), as `<get-data>` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NmdaDatastore {
    Running,
    Candidate,
    Operational,
}

/// The `datastore` leaf of get-data / edit-data: an ietf-datastores
/// identity, its prefix resolved where it is written.
fn nmda_datastore(op: &Element) -> Result<NmdaDatastore, RpcError> {
    let leaf = op
        .find(crate::NMDA_NS, "datastore")
        .ok_or_else(|| missing("datastore"))?;
    let text = leaf.trimmed();
    let (ns, name) = match text.split_once(':') {
        Some((p, n)) => (leaf.resolve_prefix(p), n),
        None => (leaf.resolve_prefix(""), text),
    };
    match (ns, name) {
        (Some(crate::DATASTORES_NS), "running") => Ok(NmdaDatastore::Running),
        (Some(crate::DATASTORES_NS), "candidate") => Ok(NmdaDatastore::Candidate),
        (Some(crate::DATASTORES_NS), "operational") => Ok(NmdaDatastore::Operational),
        _ => Err(RpcError::bad_element(
            Tag::InvalidValue,
            "datastore",
            format!(
                "'{text}' is not a datastore of this server (ds:running, ds:candidate, ds:operational)"
            ),
        )),
    }
}

/// `<edit-data>` (RFC 8526) is `<edit-config>` on a configuration
/// datastore with the same content and default operation.
fn edit_data_as_edit_config(op: &Element) -> Result<Element, RpcError> {
    let target = match nmda_datastore(op)? {
        NmdaDatastore::Running => "running",
        NmdaDatastore::Candidate => "candidate",
        NmdaDatastore::Operational => {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "datastore",
                "the operational datastore is not writable",
            ));
        }
    };
    let config = op
        .find(crate::NMDA_NS, "config")
        .ok_or_else(|| missing("config"))?;
    let mut edit = Element::new(BASE_NS, "edit-config");
    edit.bindings = op.bindings.clone();
    let mut t = Element::new(BASE_NS, "target");
    t.push(Element::new(BASE_NS, target));
    edit.push(t);
    if let Some(d) = op.find(crate::NMDA_NS, "default-operation") {
        edit.push(Element::with_text(
            BASE_NS,
            "default-operation",
            d.trimmed().to_string(),
        ));
    }
    let mut c = config.clone();
    c.ns = BASE_NS.to_string();
    edit.push(c);
    Ok(edit)
}

/// Prunes `e`'s descendants deeper than `depth` levels (1: `e` alone).
fn prune(e: &mut Element, depth: u16) {
    if depth <= 1 {
        e.children.clear();
        return;
    }
    for c in &mut e.children {
        prune(c, depth - 1);
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

fn render_result(ty: &AttrType, r: u32) -> String {
    match ty {
        AttrType::Enum(_) => Value::Enum(r).render(ty),
        AttrType::Sint32 => (r as i32).to_string(),
        AttrType::Boolean => (r != 0).to_string(),
        _ => r.to_string(),
    }
}

impl Session {
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
                    let mut objs = objs;
                    self.readable(&mut objs).await?;
                    render_objects(&objs, false)
                }
                Some(Datastore::Running) => self
                    .readable_config(self.shared.running().await?)
                    .await?
                    .render(),
                Some(Datastore::Candidate) => self
                    .readable_config(self.shared.candidate().await?)
                    .await?
                    .render(),
            });
        }
        // ietf-system's configuration: the element's contact and location.
        if let Some(ds) = source
            && wants(SYSTEM_NS, "system")
        {
            let store = self
                .readable_config(match ds {
                    Datastore::Running => self.shared.running().await?,
                    Datastore::Candidate => self.shared.candidate().await?,
                })
                .await?;
            roots.extend(crate::system::system_config(&store));
        }
        // ietf-hardware's configuration: the entities' alias and admin-state.
        if let Some(ds) = source
            && wants(crate::hardware::HARDWARE_NS, "hardware")
        {
            let store = self
                .readable_config(match ds {
                    Datastore::Running => self.shared.running().await?,
                    Datastore::Candidate => self.shared.candidate().await?,
                })
                .await?;
            roots.push(crate::hardware::hardware_config(&store));
        }
        // ietf-alarms' configuration: the control.
        if let Some(ds) = source
            && wants(ALARMS_NS, "alarms")
        {
            let store = self
                .readable_config(match ds {
                    Datastore::Running => self.shared.running().await?,
                    Datastore::Candidate => self.shared.candidate().await?,
                })
                .await?;
            roots.push(crate::alarms::alarms_config(&store));
        }
        // ietf-netconf-acm's configuration: the access model.
        if let Some(ds) = source
            && wants(crate::nacm::NACM_NS, "nacm")
        {
            let store = self
                .readable_config(match ds {
                    Datastore::Running => self.shared.running().await?,
                    Datastore::Candidate => self.shared.candidate().await?,
                })
                .await?;
            roots.push(crate::nacm::nacm_config(&store));
        }
        if source.is_none() {
            if wants(crate::nacm::NACM_NS, "nacm") {
                roots.push(self.nacm().await?);
            }
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
            let hardware = wants(HARDWARE_NS, "hardware");
            let alarms = wants(ALARMS_NS, "alarms");
            let system = wants(SYSTEM_NS, "system");
            let system_state = wants(SYSTEM_NS, "system-state");
            if hardware || alarms || system || system_state {
                let mut objs = self
                    .shared
                    .model
                    .query(&Query::default())
                    .await
                    .map_err(|e| from_model(&e, None))?;
                self.readable(&mut objs).await?;
                if hardware {
                    roots.push(self.hardware_of(&objs));
                }
                if alarms {
                    roots.push(crate::alarms::render(&objs, self.shared.start_time));
                }
                if system_state {
                    let offset = crate::system::utc_offset(&objs);
                    roots.push(crate::system::system_state(self.shared.start_time, offset));
                }
                if system {
                    roots.push(crate::system::system(&objs));
                }
            }
        }
        match filter {
            None => Ok(roots),
            Some(f) => f.apply(&roots),
        }
    }

    /// `<get-data>` (RFC 8526): the operational datastore is what `<get>`
    /// shows, running and candidate what `<get-config>` shows. On
    /// operational, `config-filter` true selects the applied configuration
    /// (running: commits apply synchronously); false is not supported.
    async fn get_data(&self, op: &Element) -> Result<Vec<Element>, RpcError> {
        with_defaults(op)?;
        let ds = nmda_datastore(op)?;
        let with_origin = op.find(crate::NMDA_NS, "with-origin").is_some();
        let origin_filter = crate::origin::OriginFilter::of(op)?;
        if ds != NmdaDatastore::Operational && (with_origin || origin_filter.is_some()) {
            // RFC 8526: only the operational datastore has origins.
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                if with_origin {
                    "with-origin"
                } else {
                    "origin-filter"
                },
                "origins are the operational datastore's",
            ));
        }
        let filter = if let Some(f) = op.find(crate::NMDA_NS, "subtree-filter") {
            Some(Filter::Subtree(f.children.clone()))
        } else if let Some(x) = op.find(crate::NMDA_NS, "xpath-filter") {
            let mut ctx = x.clone();
            ctx.children.clear();
            Some(Filter::XPath {
                select: x.trimmed().to_string(),
                ctx,
            })
        } else {
            None
        };
        let config_filter = match op
            .find(crate::NMDA_NS, "config-filter")
            .map(|e| e.trimmed())
        {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(RpcError::bad_element(
                    Tag::InvalidValue,
                    "config-filter",
                    format!("'{other}' is not a boolean"),
                ));
            }
        };
        let source = match (ds, config_filter) {
            // Every node of a configuration datastore is config.
            (NmdaDatastore::Running | NmdaDatastore::Candidate, Some(false)) => {
                return Ok(Vec::new());
            }
            (NmdaDatastore::Running, _) => Some(Datastore::Running),
            (NmdaDatastore::Candidate, _) => Some(Datastore::Candidate),
            (NmdaDatastore::Operational, None) => None,
            (NmdaDatastore::Operational, Some(true)) => Some(Datastore::Running),
            (NmdaDatastore::Operational, Some(false)) => {
                return Err(RpcError::bad_element(
                    Tag::OperationNotSupported,
                    "config-filter",
                    "selecting the operational datastore's state nodes alone is not supported",
                ));
            }
        };
        let mut roots = self.compose(source, &filter).await?;
        if with_origin || origin_filter.is_some() {
            let running = self.shared.running().await?;
            let intended = crate::origin::Intended::of(&crate::hardware::hardware_config(&running));
            crate::origin::apply(&mut roots, &intended, with_origin, origin_filter.as_ref());
        }
        match op.find(crate::NMDA_NS, "max-depth").map(|e| e.trimmed()) {
            None | Some("unbounded") => {}
            Some(d) => match d.parse::<u16>() {
                Ok(d) if d >= 1 => roots.iter_mut().for_each(|r| prune(r, d)),
                _ => {
                    return Err(RpcError::bad_element(
                        Tag::InvalidValue,
                        "max-depth",
                        format!("'{d}' is not 1..65535 or unbounded"),
                    ));
                }
            },
        }
        Ok(roots)
    }

    /// The whole operational tree, serialized without building a tree.
    async fn compose_all(&self) -> Result<String, RpcError> {
        let mut objs = self
            .shared
            .model
            .query(&Query::default())
            .await
            .map_err(|e| from_model(&e, None))?;
        self.readable(&mut objs).await?;
        let mut w = quick_xml::Writer::new(Vec::with_capacity(objs.len() * 512));
        data::write_objects(&objs, false, &mut w);
        self.hardware_of(&objs).write_to(&mut w, BASE_NS);
        crate::alarms::render(&objs, self.shared.start_time).write_to(&mut w, BASE_NS);
        crate::system::system(&objs).write_to(&mut w, BASE_NS);
        crate::system::system_state(self.shared.start_time, crate::system::utc_offset(&objs))
            .write_to(&mut w, BASE_NS);
        drop(objs);
        self.nacm().await?.write_to(&mut w, BASE_NS);
        for e in self.monitoring_and_library().await {
            e.write_to(&mut w, BASE_NS);
        }
        self.streams().await.write_to(&mut w, BASE_NS);
        Ok(crate::xml::into_string(w))
    }

    /// `/nacm` as the element enforces it, with the refusals counted.
    async fn nacm(&self) -> Result<Element, RpcError> {
        let mut objs = self
            .shared
            .model
            .query(&Query {
                classes: halyard_cluster_model::access::POLICY_CLASSES
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                ..Query::default()
            })
            .await
            .map_err(|e| from_model(&e, None))?;
        self.readable(&mut objs).await?;
        let writes = objs
            .iter()
            .find(|o| o.parent_index == 0)
            .and_then(|o| o.get(halyard_cluster_model::access::names::DENIALS))
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as u64;
        let operations = crate::Stats::get(&self.shared.stats.access_denied);
        let notifications = crate::Stats::get(&self.shared.stats.denied_notifications);
        Ok(crate::nacm::render(
            &objs,
            Some((operations, writes, notifications)),
        ))
    }

    /// `/hardware` (ietf-hardware) of the whole element.
    fn hardware_of(&self, objs: &[ManagedObject]) -> Element {
        crate::hardware::render(objs, self.shared.start_time, &self.shared.hardware_changed)
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

    pub(super) async fn dispatch(&mut self, op: &Element) -> Reply {
        let sh = self.shared.clone();
        let me = self.id;
        if let Err(e) = self.may_run(op).await {
            return Reply::Errors(vec![e]);
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
            (crate::NMDA_NS, "get-data") => self
                .get_data(op)
                .await
                .map_or_else(|e| Reply::Errors(vec![e]), Reply::NmdaData),
            (crate::NMDA_NS, "edit-data") => match edit_data_as_edit_config(op) {
                Ok(edit) => self.edit_config(&edit).await,
                Err(e) => Reply::Errors(vec![e]),
            },
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
                // An action without output answers <ok/>.
                Ok(out) if out.is_empty() => Reply::Ok,
                Ok(out) => Reply::Raw(out),
                Err(e) => Reply::Errors(vec![e]),
            },
            (SYSTEM_NS, "system-restart" | "system-shutdown") => self.system_action(op).into(),
            (SYSTEM_NS, "set-current-datetime") => Reply::Errors(vec![RpcError::bad_element(
                Tag::OperationNotSupported,
                "set-current-datetime",
                "the host's clock belongs to its operating system (NTP); the agent does not set it",
            )]),
            (BASE_NS, name)
            | (MONITORING_NS, name)
            | (NOTIF_NS, name)
            | (YANG1_NS, name)
            | (SYSTEM_NS, name) => Reply::Errors(vec![RpcError::bad_element(
                Tag::OperationNotSupported,
                name,
                format!("operation '{name}' is not supported"),
            )]),
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

    /// The access model as the face last read it.
    async fn policy(
        &self,
    ) -> Result<std::sync::Arc<halyard_cluster_model::access::Policy>, RpcError> {
        self.shared
            .policy
            .get(self.shared.model.as_ref())
            .await
            .map_err(|e| from_model(&e, None))
    }

    /// Leaves out of `objs` what the user may not read (RFC 8341 §3.4.5).
    async fn readable(&self, objs: &mut Vec<ManagedObject>) -> Result<(), RpcError> {
        let policy = self.policy().await?;
        halyard_cluster_model::access::ReadFilter::new(
            policy,
            &self.user,
            Some(self.access.role()),
        )
        .objects(objs);
        Ok(())
    }

    /// A configuration datastore without what the user may not read.
    async fn readable_config(
        &self,
        mut store: data::ConfigStore,
    ) -> Result<data::ConfigStore, RpcError> {
        let policy = self.policy().await?;
        let mut filter = halyard_cluster_model::access::ReadFilter::new(
            policy,
            &self.user,
            Some(self.access.role()),
        );
        if !filter.is_open() {
            store
                .entries
                .retain(|_, e| filter.values(e.class, &mut e.values));
        }
        Ok(store)
    }

    /// Whether the access model lets the user run the RPC `op` (RFC 8341
    /// §3.4.4). An `<action>` is decided by the model on its data node; an
    /// operation of an unknown namespace gets its own error.
    async fn may_run(&self, op: &Element) -> Result<(), RpcError> {
        let module = match op.ns.as_str() {
            BASE_NS => "ietf-netconf",
            MONITORING_NS => "ietf-netconf-monitoring",
            NOTIF_NS => "notifications",
            crate::NMDA_NS => "ietf-netconf-nmda",
            SYSTEM_NS => "ietf-system",
            _ => return Ok(()),
        };
        let policy = self.policy().await?;
        let subject = halyard_cluster_model::access::Subject::rpc(module, &op.name);
        let d = policy.decide(
            &self.user,
            Some(self.access.role()),
            &subject,
            halyard_cluster_model::access::Op::Exec,
        );
        if d.permit {
            return Ok(());
        }
        crate::Stats::inc(&self.shared.stats.access_denied);
        halyard_cluster_model::access::Denials::global().record("netconf", &self.user, &d.by);
        warn!(op = %op.name, user = %self.user, rule = %d.by, "access denied");
        self.shared
            .model
            .audit(
                &self.shared.principal(&self.user),
                &format!("<{}>", op.name),
                &format!("refused: access rule {}", d.by),
            )
            .await;
        Err(RpcError::protocol(
            Tag::AccessDenied,
            format!(
                "user {} may not use <{}> (access rule {})",
                self.user, op.name, d.by
            ),
        ))
    }

    /// ietf-system's system-restart and system-shutdown (admin only): the
    /// agent's ordered shutdown, after which it ends or starts again. The
    /// reply is written first (RFC 7317 asks for it).
    fn system_action(&mut self, op: &Element) -> Result<(), RpcError> {
        use halyard_cluster_model::port::SystemAction;
        if self.shared.system.get().is_none() {
            return Err(RpcError::bad_element(
                Tag::OperationNotSupported,
                &op.name,
                "this server cannot restart or stop its system",
            ));
        }
        let action = if op.name == "system-restart" {
            SystemAction::Restart
        } else {
            SystemAction::Shutdown
        };
        info!(user = %self.user, action = ?action, "ordered by NETCONF {}", op.name);
        self.after_reply = Some(action);
        Ok(())
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

    /// ietf-alarms' actions: on the alarm list, `purge-alarms` (the
    /// element's PurgeAlarms operation, whose result is `purged-alarms`),
    /// `compress-alarms` (its CompressAlarms) and an alarm's
    /// `set-operator-state`; on the shelved alarms, the same purge and
    /// compress of the shelved ones.
    async fn alarms_action(&self, top: &Element) -> Result<Vec<Element>, RpcError> {
        let (list, shelved) = match (
            top.find(ALARMS_NS, "alarm-list"),
            top.find(ALARMS_NS, "shelved-alarms"),
        ) {
            (Some(l), _) => (l, false),
            (None, Some(l)) => (l, true),
            (None, None) => return Err(missing("alarm-list")),
        };
        let act = list.children.first().ok_or_else(|| missing("action"))?;
        if act.ns == ALARMS_NS && act.name == "alarm" && !shelved {
            return self.set_operator_state(act).await;
        }
        let (purge, compress) = if shelved {
            ("purge-shelved-alarms", "compress-shelved-alarms")
        } else {
            ("purge-alarms", "compress-alarms")
        };
        if act.ns == ALARMS_NS && act.name == compress {
            return self.compress_alarms(act, shelved).await;
        }
        if act.ns != ALARMS_NS || act.name != purge {
            return Err(RpcError::bad_element(
                Tag::OperationNotSupported,
                &act.name,
                format!(
                    "ietf-alarms action '{}' is not supported here ({purge} and {compress} are)",
                    act.name
                ),
            ));
        }
        use halyard_cluster_model::alarm;
        let mut filter = alarm::PurgeFilter {
            shelved,
            ..alarm::PurgeFilter::default()
        };
        if let Some(f) = act.find(ALARMS_NS, "operator-state-filter") {
            if let Some(state) = f.find(ALARMS_NS, "state") {
                let state = state.trimmed();
                if state.parse::<OperatorState>().is_err() {
                    return Err(RpcError::bad_element(
                        Tag::InvalidValue,
                        "state",
                        format!("'{state}' is no operator state"),
                    ));
                }
                filter.operator_state = state.to_string();
            }
            if let Some(user) = f.find(ALARMS_NS, "user") {
                filter.operator = user.trimmed().to_string();
            }
        }
        let clearance = act
            .find(ALARMS_NS, "alarm-clearance-status")
            .ok_or_else(|| missing("alarm-clearance-status"))?
            .trimmed()
            .to_string();
        if !matches!(clearance.as_str(), "any" | "cleared" | "not-cleared") {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "alarm-clearance-status",
                format!("'{clearance}' is not any, cleared or not-cleared"),
            ));
        }
        let mut older = 0u32;
        if let Some(age) = act.find(ALARMS_NS, "older-than")
            && let Some(unit) = age.children.first()
        {
            let scale = match unit.name.as_str() {
                "seconds" => 1,
                "minutes" => 60,
                "hours" => 3_600,
                "days" => 86_400,
                "weeks" => 604_800,
                other => {
                    return Err(RpcError::bad_element(
                        Tag::UnknownElement,
                        other,
                        format!("'{other}' is no unit of older-than"),
                    ));
                }
            };
            let n: u32 = unit.trimmed().parse().map_err(|_| {
                RpcError::bad_element(
                    Tag::InvalidValue,
                    &unit.name,
                    format!("'{}' is not a uint16", unit.trimmed()),
                )
            })?;
            older = n.saturating_mul(scale);
        }
        let severity = act
            .find(ALARMS_NS, "severity")
            .and_then(|s| s.children.first())
            .map(|c| format!("{} {}", c.name, c.trimmed()))
            .unwrap_or_default();
        if let Some((rel, level)) = severity.split_once(' ')
            && (!matches!(rel, "below" | "is" | "above")
                || !matches!(
                    level,
                    "indeterminate" | "warning" | "minor" | "major" | "critical"
                ))
        {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "severity",
                format!("'{severity}' is no severity filter"),
            ));
        }
        filter.clearance = clearance;
        filter.older_than_s = older;
        filter.severity = severity;
        let purged = self
            .element_operation(alarm::PURGE, filter.args(), "purge-alarms")
            .await?;
        info!(purged, "ietf-alarms purge-alarms");
        Ok(vec![Element::with_text(
            ALARMS_NS,
            "purged-alarms",
            purged.to_string(),
        )])
    }

    /// ietf-alarms' `compress-alarms` (or `compress-shelved-alarms`): the
    /// element's CompressAlarms operation, whose result is
    /// `compressed-alarms`.
    async fn compress_alarms(
        &self,
        act: &Element,
        shelved: bool,
    ) -> Result<Vec<Element>, RpcError> {
        use halyard_cluster_model::alarm;
        let text = |n: &str| act.find(ALARMS_NS, n).map(|e| e.trimmed().to_string());
        if text("alarm-type-qualifier").is_some_and(|q| !q.is_empty()) {
            return Err(RpcError::bad_element(
                Tag::InvalidValue,
                "alarm-type-qualifier",
                "the element's alarm types have no qualifiers",
            ));
        }
        // The resource as the list names it, or a persistent name.
        let resource = text("resource").unwrap_or_default();
        let resource = crate::alarms::resource_name(&resource).to_string();
        let alarm_type = text("alarm-type-id").unwrap_or_default();
        let n = self
            .element_operation(
                alarm::COMPRESS,
                alarm::compress_args(&resource, &alarm_type, shelved),
                "compress-alarms",
            )
            .await?;
        info!(compressed = n, shelved, "ietf-alarms compress-alarms");
        Ok(vec![Element::with_text(
            ALARMS_NS,
            "compressed-alarms",
            n.to_string(),
        )])
    }

    /// ietf-alarms' `set-operator-state` on one alarm-list entry: the
    /// alarm's SetOperatorState (`ack` is also its acknowledgement).
    async fn set_operator_state(&self, entry: &Element) -> Result<Vec<Element>, RpcError> {
        use halyard_cluster_model::alarm;
        let key = |n: &str| {
            entry
                .find(ALARMS_NS, n)
                .map(|e| e.trimmed().to_string())
                .ok_or_else(|| missing(n))
        };
        let (resource, type_id) = (key("resource")?, key("alarm-type-id")?);
        let act = entry
            .find(ALARMS_NS, "set-operator-state")
            .ok_or_else(|| missing("set-operator-state"))?;
        let name = act
            .find(ALARMS_NS, "state")
            .ok_or_else(|| missing("state"))?
            .trimmed()
            .to_string();
        let state = name.parse::<OperatorState>().map_err(|_| {
            RpcError::bad_element(
                Tag::InvalidValue,
                "state",
                format!("'{name}' is no operator state (none, ack, closed, shelved, un-shelved)"),
            )
        })?;
        let text = act
            .find(ALARMS_NS, "text")
            .map(|t| t.trimmed().to_string())
            .unwrap_or_default();
        let objects = self
            .shared
            .model
            .query(&Query {
                classes: vec![alarm::CLASS.to_string()],
                ..Query::default()
            })
            .await
            .map_err(|e| from_model(&e, None))?;
        let target = crate::alarms::find(&objects, &resource, &type_id)
            .ok_or_else(|| {
                RpcError::application(
                    Tag::DataMissing,
                    format!("no alarm of type {type_id} on {resource}"),
                )
            })?
            .name
            .clone();
        self.invoke_and_wait(
            &target,
            alarm::SET_OPERATOR_STATE,
            alarm::set_operator_state_args(state, &text),
            "set-operator-state",
        )
        .await?;
        info!(alarm = %target, state = name, "ietf-alarms set-operator-state");
        Ok(Vec::new())
    }

    /// Invokes a schema operation as this session's user and waits (up to
    /// 60 s) for its job: its result, or the job's failure as an rpc-error.
    async fn invoke_and_wait(
        &self,
        target: &halyard_cluster_model::ObjectName,
        operation: &str,
        args: Vec<(String, halyard_cluster_model::Value)>,
        what: &str,
    ) -> Result<u32, RpcError> {
        let job = self
            .shared
            .model
            .invoke(target, operation, args, self.shared.principal(&self.user))
            .await
            .map_err(|e| from_model(&e, None))?;
        match tokio::time::timeout(Duration::from_secs(60), job.wait()).await {
            Ok(s) if s.state == halyard_cluster_model::model::JobState::Succeeded => {
                Ok(s.result.unwrap_or(0))
            }
            Ok(s) => Err(RpcError::operation_failed(s.detail)),
            Err(_) => Err(RpcError::operation_failed(format!(
                "{what} did not finish in 60 s"
            ))),
        }
    }

    /// An operation of the element's root object (the class that carries
    /// the alarm operations), invoked and waited for.
    async fn element_operation(
        &self,
        operation: &str,
        args: Vec<(String, halyard_cluster_model::Value)>,
        what: &str,
    ) -> Result<u32, RpcError> {
        use halyard_cluster_model::alarm;
        let class = alarm::purge_class().ok_or_else(|| {
            RpcError::operation_failed("the schema has no element operations for alarms")
        })?;
        let roots = self
            .shared
            .model
            .query(&Query {
                classes: vec![class.name.to_string()],
                ..Query::default()
            })
            .await
            .map_err(|e| from_model(&e, None))?;
        let root = roots
            .into_iter()
            .find(|o| o.parent_index == 0)
            .ok_or_else(|| RpcError::operation_failed("the element has no root object"))?;
        self.invoke_and_wait(&root.name, operation, args, what)
            .await
    }

    async fn action(&self, op: &Element) -> Result<Vec<Element>, RpcError> {
        let ns = schema_ns();
        let top = op.children.first().ok_or_else(|| missing(data::TOP))?;
        if top.ns == ALARMS_NS && top.name == "alarms" {
            return self.alarms_action(top).await;
        }
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
            .invoke(&target, m.name, args, self.shared.principal(&self.user))
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
