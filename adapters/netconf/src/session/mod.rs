//! One NETCONF session over any byte stream (an SSH channel in
//! production): the hello exchange, framing choice, RPC dispatch, and
//! RFC 5277 notification delivery interleaved with RPCs.
//!
//! - this file: the session loop (hello, framing, one reply per RPC,
//!   notifications between replies);
//! - `dispatch.rs`: one function per operation;
//! - `filters.rs`: subtree and XPath `<filter>`;
//! - `subscriptions.rs`: create-subscription, replay and live delivery.

mod dispatch;
mod filters;
mod subscriptions;

use std::collections::VecDeque;
use std::sync::Arc;

use halyard_cluster_model::Timestamp;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::datastore::Shared;
use crate::error::{ErrorType, RpcError, Tag};
use crate::events::{self, End};
use crate::framing::{FrameError, FrameReader, Framing, encode};
use crate::monitoring::{Stats, capabilities};
use crate::xml::{self, Element};
use crate::{BASE_NS, NC_NOTIF_NS};

use dispatch::{Reply, missing};
pub use filters::Filter;
pub use subscriptions::event_element;
use subscriptions::{ActiveSub, SubEvent, next_sub_event, notification_xml};

const BASE_1_0: &str = "urn:ietf:params:netconf:base:1.0";
const BASE_1_1: &str = "urn:ietf:params:netconf:base:1.1";

/// A session in progress.
struct Session {
    shared: Arc<Shared>,
    id: u32,
    user: String,
    access: crate::Access,
    framing: Framing,
    subscribed: bool,
    sub: Option<ActiveSub>,
    /// Notifications (rendered) waiting to go out after the current reply.
    outbox: VecDeque<String>,
    close: bool,
    /// Asked of the agent once the reply is written (system-restart).
    after_reply: Option<halyard_cluster_model::port::SystemAction>,
}

impl Session {
    /// Reads a model user's role again; false when the user is gone.
    async fn refresh_access(&mut self) -> bool {
        let shared = self.shared.clone();
        let Some(u) = shared.model_users.user(&*shared.model, &self.user).await else {
            info!("the user was removed: session closed");
            return false;
        };
        let access = crate::Access::of_role(u.role);
        if access != self.access {
            info!(from = ?self.access, to = ?access, "the user's role changed");
            self.access = access;
            shared.set_role(&self.user, access.role());
        }
        true
    }

    async fn write(&self, w: &mut (impl AsyncWrite + Unpin), msg: &str) -> std::io::Result<()> {
        w.write_all(&encode(msg, self.framing)).await?;
        w.flush().await
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
    let mut w = xml::writer();
    xml::emit(
        &mut w,
        Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
    );
    h.write_to(&mut w, "");
    xml::into_string(w)
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
        Reply::NmdaData(d) => {
            let mut data = Element::new(crate::NMDA_NS, "data");
            data.children = d;
            r.push(data);
        }
        Reply::DataText(text) => {
            // `<data>` around content an XmlWriter has written already.
            let mut w = xml::writer();
            xml::emit(&mut w, Event::Start(r.start_tag("")));
            xml::emit(&mut w, Event::Start(BytesStart::new("data")));
            w.get_mut().extend_from_slice(text.as_bytes());
            xml::emit(&mut w, Event::End(BytesEnd::new("data")));
            xml::emit(&mut w, Event::End(BytesEnd::new("rpc-reply")));
            return xml::into_string(w);
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
    access: crate::Access,
    of_model: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, kill) = shared.register(&user, &peer);
    let span = info_span!("netconf", session = id, user = %user, peer = %peer);
    let who = shared.who(id);
    // Aborted when dropped: shutdown aborts the outer task.
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
        serve(shared.clone(), stream, id, user, access, of_model, kill).instrument(span.clone()),
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
    access: crate::Access,
    of_model: bool,
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
        access,
        framing: Framing::EndOfMessage,
        subscribed: false,
        sub: None,
        outbox: VecDeque::new(),
        close: false,
        after_reply: None,
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
                        // A model user's role holds as it is now: a change
                        // or a removal takes effect at the next RPC.
                        if of_model && !s.refresh_access().await {
                            let _ = wr.shutdown().await;
                            return End::Killed(0);
                        }
                        let started = std::time::Instant::now();
                        let out = s.handle_message(&m).await;
                        if let Some(t) = &shared.trace {
                            t.record(id, Some(&m), &out).await;
                        }
                        s.shared.stats.rpc_latency.observe(started.elapsed());
                        if s.write(&mut wr, &out).await.is_err() {
                            return End::Dropped;
                        }
                        // RFC 7317: the reply goes out before the system restarts.
                        if let Some(a) = s.after_reply.take()
                            && let Some(tx) = shared.system.get()
                            && tx.try_send(a).is_err()
                        {
                            warn!(action = ?a, "the agent is already stopping");
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
                    SubEvent::Send(xs) => s.outbox.extend(xs),
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
        // The reply echoes every attribute of the <rpc>: one with a
        // character XML 1.0 forbids (&#1; decodes to one) is the client's
        // input, refused with bad-attribute and left out of the echo
        // (xml::clean has the face's rule).
        let forbidden = |(ns, name, value): &(String, String, String)| {
            [ns, name, value]
                .iter()
                .any(|s| !s.chars().all(halyard_cluster_model::value::is_xml_char))
        };
        if let Some((_, name, _)) = rpc.attrs.iter().find(|a| forbidden(a)) {
            let kept: Vec<_> = rpc
                .attrs
                .iter()
                .filter(|a| !forbidden(a))
                .cloned()
                .collect();
            let e = RpcError::new(
                ErrorType::Rpc,
                Tag::BadAttribute,
                format!("attribute {name} of <rpc> has a character XML 1.0 forbids"),
            )
            .with_info("bad-attribute", name.clone())
            .with_info("bad-element", rpc.name.clone());
            return bad(&sh, e, &kept);
        }
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
    use crate::schema_ns;

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

    fn session() -> Session {
        let shared = Shared::new(
            Arc::new(halyard_cluster_model::memory::demo_element()),
            Arc::new(Stats::default()),
            crate::monitoring::SchemaStore,
            crate::Limits::default(),
            std::time::Duration::from_secs(60),
            None,
        );
        shared.set_role("admin", halyard_cluster_model::access::Role::Admin);
        let (id, _kill) = shared.register("admin", "test");
        Session {
            shared,
            id,
            user: "admin".into(),
            access: crate::Access::Admin,
            framing: Framing::EndOfMessage,
            subscribed: false,
            sub: None,
            outbox: VecDeque::new(),
            close: false,
            after_reply: None,
        }
    }

    /// Parses a document the face wrote (quick-xml's NsReader, through
    /// xml::parse) after checking that no character XML 1.0 forbids is in
    /// it (the reader does not check the Char production itself).
    fn read_back(doc: &str) -> Element {
        assert!(
            doc.chars().all(halyard_cluster_model::value::is_xml_char),
            "{doc:?}"
        );
        xml::parse(doc, 64).unwrap_or_else(|e| panic!("{e}: {doc:?}"))
    }

    fn rpc(id: &str, body: &str) -> String {
        format!(r#"<rpc message-id="{id}" xmlns="{BASE_NS}">{body}</rpc>"#)
    }

    const FAN: &str = "ne=1/shelf=1/fan=1";

    fn edit_label(label: &str) -> String {
        format!(
            r#"<edit-config><target><running/></target><config><element xmlns="{}"><fan><name>{FAN}</name><label>{label}</label></fan></element></config></edit-config>"#,
            schema_ns()
        )
    }

    #[tokio::test]
    async fn a_forbidden_character_in_edit_config_is_refused_naming_the_leaf() {
        let mut s = session();
        for (id, label) in [
            ("m-1", "bad\u{1}x"),
            ("m-2", "bad&#1;x"),
            ("m-3", "bad&#xFFFE;x"),
        ] {
            let out = s
                .handle_message(rpc(id, &edit_label(label)).as_bytes())
                .await;
            let r = read_back(&out);
            assert_eq!(r.attr("", "message-id"), Some(id), "{out}");
            let e = r
                .find(BASE_NS, "rpc-error")
                .unwrap_or_else(|| panic!("{out}"));
            assert_eq!(e.find(BASE_NS, "error-tag").unwrap().text, "invalid-value");
            let info = e.find(BASE_NS, "error-info").unwrap();
            assert_eq!(
                info.find(BASE_NS, "bad-element").unwrap().text,
                "label",
                "{out}"
            );
        }
        // Nothing of it reached the running datastore; a clean value does.
        let get = format!(
            r#"<get-config><source><running/></source><filter><element xmlns="{}"><fan><name>{FAN}</name></fan></element></filter></get-config>"#,
            schema_ns()
        );
        let out = s.handle_message(rpc("m-4", &get).as_bytes()).await;
        assert!(!read_back(&out).to_xml().contains("bad"), "{out}");
        let out = s
            .handle_message(rpc("m-5", &edit_label("fine &lt;&amp;&gt;")).as_bytes())
            .await;
        assert!(read_back(&out).find(BASE_NS, "ok").is_some(), "{out}");
        let out = s.handle_message(rpc("m-6", &get).as_bytes()).await;
        assert!(out.contains("<label>fine &lt;&amp;&gt;</label>"), "{out}");
    }

    #[tokio::test]
    async fn a_forbidden_character_in_an_rpc_attribute_is_refused() {
        let mut s = session();
        let msg = format!(r#"<rpc message-id="m-7" user="a&#1;b" xmlns="{BASE_NS}"><get/></rpc>"#);
        let out = s.handle_message(msg.as_bytes()).await;
        let r = read_back(&out);
        // The clean attributes are echoed, the offending one is named.
        assert_eq!(r.attr("", "message-id"), Some("m-7"), "{out}");
        assert_eq!(r.attr("", "user"), None, "{out}");
        let e = r
            .find(BASE_NS, "rpc-error")
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(e.find(BASE_NS, "error-tag").unwrap().text, "bad-attribute");
        let info = e.find(BASE_NS, "error-info").unwrap();
        assert_eq!(info.find(BASE_NS, "bad-attribute").unwrap().text, "user");
    }

    #[tokio::test]
    async fn the_agents_own_strings_render_well_formed() {
        const NASTY: &str = "a\u{1}b<&>\"'\u{FFFF}";
        const READ: &str = "a\u{FFFD}b<&>\"'\u{FFFD}";
        let s = session();
        let mut fan = s
            .shared
            .model
            .get(&halyard_cluster_model::ObjectName::parse(FAN).unwrap())
            .await
            .unwrap();
        let (i, leaf) = fan
            .class
            .attributes
            .iter()
            .enumerate()
            .find(|(_, a)| !a.key && matches!(a.ty, halyard_cluster_model::AttrType::String { .. }))
            .unwrap();
        // Past the model's checks, as a bug would put it there.
        fan.values[i] = halyard_cluster_model::Value::Str(NASTY.into());
        let leaf_of = |top: &Element| {
            top.find(schema_ns(), fan.class.yang_name)
                .and_then(|e| e.find(schema_ns(), leaf.yang_name))
                .map(|e| e.text.clone())
        };
        let before = xml::replaced_chars();
        // The unfiltered <get> (written straight), a filtered one (a tree).
        let mut w = xml::writer();
        crate::data::write_objects([&fan], false, &mut w);
        let reply = reply_xml(
            &[(String::new(), "message-id".into(), "1".into())],
            Reply::DataText(xml::into_string(w)),
        );
        let data = read_back(&reply).children.remove(0);
        assert_eq!(leaf_of(&data.children[0]).as_deref(), Some(READ), "{reply}");
        let tree = crate::data::render_objects([&fan], false);
        let reply = reply_xml(&[], Reply::Data(vec![tree]));
        let data = read_back(&reply).children.remove(0);
        assert_eq!(leaf_of(&data.children[0]).as_deref(), Some(READ), "{reply}");
        // An rpc-error quoting it, and an attribute carrying it.
        let mut e = Element::with_text(schema_ns(), "x", NASTY);
        e.attrs.push((String::new(), "v".into(), NASTY.into()));
        let reply = reply_xml(&[], Reply::Errors(vec![RpcError::operation_failed(NASTY)]));
        let r = read_back(&reply);
        let msg = &r.children[0].find(BASE_NS, "error-message").unwrap().text;
        assert_eq!(msg, READ, "{reply}");
        let back = read_back(&e.to_xml());
        assert_eq!((back.text.as_str(), back.attr("", "v")), (READ, Some(READ)));
        // A notification of the model.
        let n = halyard_cluster_model::port::Notification {
            seq: 1,
            time: Timestamp(0),
            class: fan.class,
            source: fan.name.clone(),
            severity: None,
            values: fan.values.clone(),
        };
        let doc = notification_xml(Timestamp(0), event_element(&n));
        let back = read_back(&doc);
        let ev = back.find(schema_ns(), fan.class.yang_name).unwrap();
        assert_eq!(
            ev.find(schema_ns(), leaf.yang_name).unwrap().text,
            READ,
            "{doc}"
        );
        // Each document replaced two characters of each copy, and counted them.
        assert!(
            xml::replaced_chars() >= before + 12,
            "{}",
            xml::replaced_chars()
        );
        // Markup characters alone are escaped, never replaced.
        let plain = Element::with_text(schema_ns(), "x", "<&>\"'");
        assert_eq!(read_back(&plain.to_xml()).text, "<&>\"'");
    }
}
