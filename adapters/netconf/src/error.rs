//! Errors: the crate's typed errors, and `<rpc-error>` with the one table
//! that maps the model's errors to RFC 6241 Appendix A.

use halyard_cluster_model::port::ModelError;

use crate::xml::{Element, XMLNS_DECL};
use crate::{BASE_NS, schema_ns};
use halyard_cluster_model::SCHEMA;

/// Errors of the server's own lifecycle (binding, keys).
#[derive(Debug, thiserror::Error)]
pub enum NetconfError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("host key {path}: {reason}")]
    HostKey { path: String, reason: String },
    #[error("user {user}: bad authorized key: {reason}")]
    AuthorizedKey { user: String, reason: String },
    #[error("configuration: {0}")]
    Config(String),
}

/// RFC 6241 error-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Transport,
    Rpc,
    Protocol,
    Application,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Transport => "transport",
            ErrorType::Rpc => "rpc",
            ErrorType::Protocol => "protocol",
            ErrorType::Application => "application",
        }
    }
}

/// RFC 6241 Appendix A error-tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    InUse,
    InvalidValue,
    TooBig,
    MissingAttribute,
    BadAttribute,
    UnknownAttribute,
    MissingElement,
    BadElement,
    UnknownElement,
    UnknownNamespace,
    AccessDenied,
    LockDenied,
    ResourceDenied,
    RollbackFailed,
    DataExists,
    DataMissing,
    OperationNotSupported,
    OperationFailed,
    MalformedMessage,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::InUse => "in-use",
            Tag::InvalidValue => "invalid-value",
            Tag::TooBig => "too-big",
            Tag::MissingAttribute => "missing-attribute",
            Tag::BadAttribute => "bad-attribute",
            Tag::UnknownAttribute => "unknown-attribute",
            Tag::MissingElement => "missing-element",
            Tag::BadElement => "bad-element",
            Tag::UnknownElement => "unknown-element",
            Tag::UnknownNamespace => "unknown-namespace",
            Tag::AccessDenied => "access-denied",
            Tag::LockDenied => "lock-denied",
            Tag::ResourceDenied => "resource-denied",
            Tag::RollbackFailed => "rollback-failed",
            Tag::DataExists => "data-exists",
            Tag::DataMissing => "data-missing",
            Tag::OperationNotSupported => "operation-not-supported",
            Tag::OperationFailed => "operation-failed",
            Tag::MalformedMessage => "malformed-message",
        }
    }

    /// The error-types Appendix A allows for the tag.
    pub fn allowed_types(self) -> &'static [ErrorType] {
        use ErrorType::*;
        match self {
            Tag::InUse | Tag::InvalidValue => &[Protocol, Application],
            Tag::TooBig | Tag::ResourceDenied => &[Transport, Rpc, Protocol, Application],
            Tag::MissingAttribute | Tag::BadAttribute | Tag::UnknownAttribute => {
                &[Rpc, Protocol, Application]
            }
            Tag::MissingElement
            | Tag::BadElement
            | Tag::UnknownElement
            | Tag::UnknownNamespace
            | Tag::AccessDenied
            | Tag::RollbackFailed
            | Tag::OperationNotSupported => &[Protocol, Application],
            Tag::LockDenied => &[Protocol],
            Tag::DataExists | Tag::DataMissing => &[Application],
            Tag::OperationFailed => &[Rpc, Protocol, Application],
            Tag::MalformedMessage => &[Rpc],
        }
    }
}

/// One `<rpc-error>`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub error_type: ErrorType,
    pub tag: Tag,
    /// An instance-identifier in the halyard-cluster module (prefix `hc`).
    pub path: Option<String>,
    pub message: String,
    pub app_tag: Option<String>,
    /// error-info children: (name, value), in the base namespace.
    pub info: Vec<(&'static str, String)>,
}

impl RpcError {
    pub fn new(error_type: ErrorType, tag: Tag, message: impl Into<String>) -> Self {
        debug_assert!(
            tag.allowed_types().contains(&error_type),
            "{tag:?} with {error_type:?}"
        );
        RpcError {
            error_type,
            tag,
            path: None,
            message: message.into(),
            app_tag: None,
            info: Vec::new(),
        }
    }

    pub fn protocol(tag: Tag, message: impl Into<String>) -> Self {
        Self::new(ErrorType::Protocol, tag, message)
    }

    pub fn application(tag: Tag, message: impl Into<String>) -> Self {
        Self::new(ErrorType::Application, tag, message)
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_info(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.info.push((name, value.into()));
        self
    }

    pub fn bad_element(tag: Tag, element: &str, message: impl Into<String>) -> Self {
        Self::protocol(tag, message).with_info("bad-element", element)
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Rpc, Tag::MalformedMessage, message)
    }

    pub fn operation_failed(message: impl Into<String>) -> Self {
        Self::application(Tag::OperationFailed, message)
    }

    pub fn to_element(&self) -> Element {
        let mut e = Element::new(BASE_NS, "rpc-error");
        e.push(Element::with_text(
            BASE_NS,
            "error-type",
            self.error_type.as_str(),
        ));
        e.push(Element::with_text(BASE_NS, "error-tag", self.tag.as_str()));
        e.push(Element::with_text(BASE_NS, "error-severity", "error"));
        if let Some(t) = &self.app_tag {
            e.push(Element::with_text(BASE_NS, "error-app-tag", t.clone()));
        }
        if let Some(p) = &self.path {
            let mut pe = Element::with_text(BASE_NS, "error-path", p.clone());
            pe.attrs.push((
                XMLNS_DECL.to_string(),
                SCHEMA.module.prefix.to_string(),
                schema_ns().to_string(),
            ));
            e.push(pe);
        }
        let mut m = Element::with_text(BASE_NS, "error-message", self.message.clone());
        m.attrs
            .push((crate::xml::XML_NS.into(), "lang".into(), "en".into()));
        e.push(m);
        if !self.info.is_empty() {
            let mut info = Element::new(BASE_NS, "error-info");
            for (n, v) in &self.info {
                info.push(Element::with_text(BASE_NS, n, v.clone()));
            }
            e.push(info);
        }
        e
    }
}

/// THE table: how each model error becomes an rpc-error (error-type, tag).
pub fn model_error_tag(e: &ModelError) -> (ErrorType, Tag) {
    use ErrorType::Application as A;
    match e {
        ModelError::NoSuchObject { .. } => (A, Tag::DataMissing),
        ModelError::NoSuchAttribute { .. } | ModelError::NoSuchClass { .. } => {
            (A, Tag::UnknownElement)
        }
        ModelError::NoSuchOperation { .. } => (A, Tag::OperationNotSupported),
        ModelError::NotWritable { .. } | ModelError::InvalidValue { .. } => (A, Tag::InvalidValue),
        ModelError::Inconsistent { .. } | ModelError::NoCreation { .. } => {
            (A, Tag::OperationFailed)
        }
        ModelError::AlreadyExists { .. } => (A, Tag::DataExists),
        ModelError::AccessDenied { .. } => (A, Tag::AccessDenied),
        ModelError::Conflict { .. } => (A, Tag::InUse),
        ModelError::CommitFailed { .. } | ModelError::Timeout => (A, Tag::OperationFailed),
        ModelError::Unavailable { .. } => (A, Tag::ResourceDenied),
    }
}

/// A model error as an rpc-error, with the element it concerns.
pub fn from_model(e: &ModelError, path: Option<String>) -> RpcError {
    let (ty, tag) = model_error_tag(e);
    let mut r = RpcError::new(ty, tag, e.to_string());
    r.path = path;
    match e {
        ModelError::NoSuchAttribute { attribute, .. }
        | ModelError::NotWritable { attribute }
        | ModelError::InvalidValue { attribute, .. } => {
            let yang = crate::data::yang_attr_name(attribute);
            r.info.push(("bad-element", yang));
        }
        ModelError::NoSuchClass { class } => r.info.push(("bad-element", class.clone())),
        ModelError::NoSuchOperation { operation, .. } => {
            r.info.push(("bad-element", operation.clone()))
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::value::ValueError;

    #[test]
    fn model_errors_map_by_the_table() {
        let s = |x: &str| x.to_string();
        let cases: Vec<(ModelError, &str, &str)> = vec![
            (
                ModelError::NoSuchObject {
                    name: s("ne=1/x=1"),
                },
                "application",
                "data-missing",
            ),
            (
                ModelError::NoSuchAttribute {
                    class: s("Fan"),
                    attribute: s("Colour"),
                },
                "application",
                "unknown-element",
            ),
            (
                ModelError::NoSuchClass {
                    class: s("Toaster"),
                },
                "application",
                "unknown-element",
            ),
            (
                ModelError::NoSuchOperation {
                    class: s("Fan"),
                    operation: s("fly"),
                },
                "application",
                "operation-not-supported",
            ),
            (
                ModelError::NotWritable {
                    attribute: s("Speed"),
                },
                "application",
                "invalid-value",
            ),
            (
                ModelError::InvalidValue {
                    attribute: s("AdminState"),
                    error: ValueError::WrongType {
                        expected: s("enum"),
                    },
                },
                "application",
                "invalid-value",
            ),
            (
                ModelError::Inconsistent { reason: s("r") },
                "application",
                "operation-failed",
            ),
            (
                ModelError::NoCreation {
                    name: s("n"),
                    reason: s("r"),
                },
                "application",
                "operation-failed",
            ),
            (
                ModelError::AlreadyExists { name: s("n") },
                "application",
                "data-exists",
            ),
            (
                ModelError::AccessDenied { reason: s("r") },
                "application",
                "access-denied",
            ),
            (
                ModelError::Conflict { reason: s("r") },
                "application",
                "in-use",
            ),
            (
                ModelError::CommitFailed { reason: s("r") },
                "application",
                "operation-failed",
            ),
            (
                ModelError::Unavailable { reason: s("r") },
                "application",
                "resource-denied",
            ),
            (ModelError::Timeout, "application", "operation-failed"),
        ];
        for (e, ty, tag) in cases {
            let r = from_model(&e, Some("/hc:element".into()));
            assert_eq!(
                (r.error_type.as_str(), r.tag.as_str()),
                (ty, tag),
                "for {e:?}"
            );
            assert!(r.tag.allowed_types().contains(&r.error_type));
            let xml = r.to_element().to_xml();
            assert!(
                xml.contains(&format!("<error-tag>{tag}</error-tag>")),
                "{xml}"
            );
            assert!(xml.contains("<error-severity>error</error-severity>"));
            assert!(xml.contains("<error-path xmlns:hc="), "{xml}");
            assert!(xml.contains(&crate::xml::escape(&e.to_string())));
        }
    }

    #[test]
    fn lock_denied_carries_the_session_id() {
        let r = RpcError::protocol(Tag::LockDenied, "locked").with_info("session-id", "7");
        let xml = r.to_element().to_xml();
        assert!(xml.contains("<error-type>protocol</error-type>"));
        assert!(xml.contains("<error-info><session-id>7</session-id></error-info>"));
    }
}
