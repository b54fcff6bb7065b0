//! One access model for every face, with NETCONF access control's
//! semantics (RFC 8341 §3.4): groups of users, ordered rule lists, rules
//! that match a module and an RPC, a notification or a data node (with
//! everything under it) for some operations, and the defaults when no rule
//! matches.
//!
//! The groups and rules are managed objects ([`Policy::from_objects`]:
//! `AccessGroup`, `AccessRuleList`, `AccessRule` and the element's
//! `AccessControl` / `ReadDefault` / `WriteDefault` / `ExecDefault`), so
//! they are replicated, kept and audited like any configuration, and every
//! face reads and edits them through the model. A user's role (viewer,
//! operator, admin: what the face that authenticated it knows, see
//! [`crate::port::Principal::role`]) is a group with built-in rule lists
//! that come after the stored ones: stored rules refine a role, and
//! turning access control off leaves the roles' rules in force.
//!
//! Requests are named in schema terms ([`Subject::attribute`],
//! [`Subject::operation`]), so one rule answers SNMP, NETCONF, HTTP and the
//! console alike: the path of an attribute is
//! `/halyard-cluster:element/<class>/<attribute>`, of an object's
//! operation `/halyard-cluster:element/<class>/<operation>` (an action).

use std::fmt;

use crate::meta::ClassMeta;
use crate::model::{AccessAction, SCHEMA};
use crate::port::{Change, InformationModel, ManagedObject, ModelError, Principal, Query};
use crate::value::{SchemaEnum, Value};

/// A role: the group a face puts an authenticated user in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads and subscribes.
    Viewer,
    /// Also writes attributes, creates and deletes objects, runs operations.
    Operator,
    /// Also edits the access model and restarts or stops the agent.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// An access operation (ietf-netconf-acm access-operations-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
    Exec,
}

impl Op {
    const ALL: [Op; 5] = [Op::Read, Op::Create, Op::Update, Op::Delete, Op::Exec];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Exec => "exec",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ops(u8);

impl Ops {
    pub const ALL: Ops = Ops(0b1_1111);
    pub const WRITE: Ops = Ops(0b0_1110);

    pub fn of(ops: &[Op]) -> Ops {
        Ops(ops.iter().fold(0, |m, o| m | o.bit()))
    }

    pub fn contains(self, op: Op) -> bool {
        self.0 & op.bit() != 0
    }

    /// `*`, or operation names separated by spaces (ietf-netconf-acm's
    /// bits, or a union with `*`).
    pub fn parse(text: &str) -> Result<Ops, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(Ops::ALL);
        }
        let mut m = 0;
        for word in text.split_whitespace() {
            let op = Op::ALL
                .into_iter()
                .find(|o| o.as_str() == word)
                .ok_or_else(|| {
                    format!(
                        "{word:?} is no access operation (read, create, update, delete, exec or *)"
                    )
                })?;
            m |= op.bit();
        }
        if m == 0 {
            return Err(
                "no access operation given (read, create, update, delete, exec or *)".into(),
            );
        }
        Ok(Ops(m))
    }
}

impl fmt::Display for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Ops::ALL {
            return f.write_str("*");
        }
        let words: Vec<&str> = Op::ALL
            .into_iter()
            .filter(|o| self.contains(*o))
            .map(Op::as_str)
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// What a rule is about (ietf-netconf-acm's `rule-type` choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every request of the rule's module.
    Any,
    /// An RPC by name, or `*`.
    Rpc(String),
    /// A notification by name, or `*`.
    Notification(String),
    /// A data node and everything under it, as segments without prefixes
    /// or keys (empty: every data node).
    Path(Vec<String>),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// A module name, or `*`.
    pub module: String,
    pub target: Target,
    pub ops: Ops,
    pub permit: bool,
}

/// Rules for some groups, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleList {
    pub name: String,
    /// Group names; `*` is every group.
    pub groups: Vec<String>,
    pub rules: Vec<Rule>,
}

/// The whole access model as the element holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Whether the stored rule lists are enforced (the roles' always are).
    pub enabled: bool,
    pub read_default: bool,
    pub write_default: bool,
    pub exec_default: bool,
    /// Group name and its users.
    pub groups: Vec<(String, Vec<String>)>,
    pub lists: Vec<RuleList>,
}

impl Default for Policy {
    /// NACM's defaults: rules enforced, reads and operations permitted
    /// when no rule matches, writes denied.
    fn default() -> Self {
        Policy {
            enabled: true,
            read_default: true,
            write_default: false,
            exec_default: true,
            groups: Vec::new(),
            lists: Vec::new(),
        }
    }
}

/// A request to decide about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A data node: module and schema path segments (no prefixes, no keys).
    Data { module: String, path: Vec<String> },
    /// A protocol operation.
    Rpc { module: String, name: String },
    /// A notification.
    Notification { module: String, name: String },
}

impl Subject {
    /// The data node of an attribute of the schema's module
    /// (`/halyard-cluster:element/<class>/<attribute>`); the class's own
    /// node when `attribute` is None.
    pub fn attribute(class: &ClassMeta, attribute: Option<&str>) -> Subject {
        let mut path = vec!["element".to_string(), class.yang_name.to_string()];
        if let Some(a) = attribute {
            path.push(
                class
                    .attribute(a)
                    .map_or(a.to_string(), |(_, m)| m.yang_name.to_string()),
            );
        }
        Subject::Data {
            module: SCHEMA.module.yang_module.to_string(),
            path,
        }
    }

    /// The action node of an object's operation.
    pub fn operation(class: &ClassMeta, operation: &str) -> Subject {
        let name = class
            .method(operation)
            .map_or(operation.to_string(), |m| m.yang_name.to_string());
        Subject::Data {
            module: SCHEMA.module.yang_module.to_string(),
            path: vec!["element".to_string(), class.yang_name.to_string(), name],
        }
    }

    pub fn rpc(module: &str, name: &str) -> Subject {
        Subject::Rpc {
            module: module.to_string(),
            name: name.to_string(),
        }
    }

    pub fn notification(module: &str, name: &str) -> Subject {
        Subject::Notification {
            module: module.to_string(),
            name: name.to_string(),
        }
    }

    fn module(&self) -> &str {
        match self {
            Subject::Data { module, .. }
            | Subject::Rpc { module, .. }
            | Subject::Notification { module, .. } => module,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Data { module, path } => {
                write!(f, "/{module}:{}", path.join("/"))
            }
            Subject::Rpc { module, name } => write!(f, "rpc {module}:{name}"),
            Subject::Notification { module, name } => {
                write!(f, "notification {module}:{name}")
            }
        }
    }
}

/// The answer, with what gave it (for the audit trail and the refusal's
/// text): `rule-list/rule`, `role <r>/<rule>`, or the default that applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub permit: bool,
    pub by: String,
}

impl Decision {
    fn new(permit: bool, by: impl Into<String>) -> Decision {
        Decision {
            permit,
            by: by.into(),
        }
    }
}

/// RPCs ietf-netconf marks `nacm:default-deny-all`, and ietf-system's
/// restart and shutdown: denied when no rule permits them.
const DENY_ALL_RPCS: &[(&str, &str)] = &[
    ("ietf-netconf", "kill-session"),
    ("ietf-netconf", "delete-config"),
    ("ietf-system", "system-restart"),
    ("ietf-system", "system-shutdown"),
    ("ietf-system", "set-current-datetime"),
];

/// Protocol operations that only read, which a viewer may run.
const READING_RPCS: &[&str] = &[
    "get",
    "get-config",
    "get-data",
    "get-schema",
    "close-session",
    "create-subscription",
    "validate",
];

/// The classes and element attributes of the access model, and where the
/// element's notifications go: only an admin writes them.
const ACCESS_CLASSES: &[&str] = &[
    "access-group",
    "access-rule-list",
    "access-rule",
    "access-token",
    "access-user",
    "access-key",
    "access-snmp-key",
    "notification-target",
];
const ACCESS_ATTRIBUTES: &[&str] = &[
    "access-control",
    "read-default",
    "write-default",
    "exec-default",
];

fn rule(name: &str, module: &str, target: Target, ops: Ops, permit: bool) -> Rule {
    Rule {
        name: name.to_string(),
        module: module.to_string(),
        target,
        ops,
        permit,
    }
}

fn data_path(segments: &[&str]) -> Target {
    Target::Path(segments.iter().map(|s| s.to_string()).collect())
}

/// The built-in rules of a role, tried after the stored lists.
pub fn role_rules(role: Role) -> Vec<Rule> {
    let module = SCHEMA.module.yang_module;
    match role {
        Role::Admin => vec![rule("all", "*", Target::Any, Ops::ALL, true)],
        Role::Operator => {
            let mut rules: Vec<Rule> = ACCESS_CLASSES
                .iter()
                .map(|c| {
                    rule(
                        &format!("no-{c}-writes"),
                        module,
                        data_path(&["element", c]),
                        Ops::WRITE,
                        false,
                    )
                })
                .collect();
            rules.extend(ACCESS_ATTRIBUTES.iter().map(|a| {
                rule(
                    &format!("no-{a}-writes"),
                    module,
                    data_path(&["element", "network-element", a]),
                    Ops::WRITE,
                    false,
                )
            }));
            rules.extend(["system-restart", "system-shutdown"].iter().map(|r| {
                rule(
                    &format!("no-{r}"),
                    "ietf-system",
                    Target::Rpc(r.to_string()),
                    Ops::of(&[Op::Exec]),
                    false,
                )
            }));
            rules.push(rule("all-else", "*", Target::Any, Ops::ALL, true));
            rules
        }
        Role::Viewer => {
            let mut rules = vec![rule("read", "*", Target::Any, Ops::of(&[Op::Read]), true)];
            rules.extend(READING_RPCS.iter().map(|r| {
                rule(
                    r,
                    "*",
                    Target::Rpc(r.to_string()),
                    Ops::of(&[Op::Exec]),
                    true,
                )
            }));
            rules.push(rule("nothing-else", "*", Target::Any, Ops::ALL, false));
            rules
        }
    }
}

/// A schema path's segments: no prefixes, no keys, no empty segments.
pub fn path_segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut seg = String::new();
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => out.push(std::mem::take(&mut seg)),
            _ if depth == 0 => seg.push(c),
            _ => {}
        }
    }
    out.push(seg);
    out.into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once(':') {
            Some((_, local)) => local.trim().to_string(),
            None => s.trim().to_string(),
        })
        .collect()
}

fn name_matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern == name
}

impl Rule {
    fn matches(&self, subject: &Subject, op: Op) -> bool {
        if !self.ops.contains(op) || !name_matches(&self.module, subject.module()) {
            return false;
        }
        match (&self.target, subject) {
            (Target::Any, _) => true,
            (Target::Rpc(r), Subject::Rpc { name, .. }) => name_matches(r, name),
            (Target::Notification(n), Subject::Notification { name, .. }) => name_matches(n, name),
            (Target::Path(p), Subject::Data { path, .. }) => {
                p.len() <= path.len() && p.iter().zip(path).all(|(a, b)| a == b)
            }
            _ => false,
        }
    }
}

impl Policy {
    /// The groups `user` is in by name (not counting its role).
    pub fn groups_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.groups
            .iter()
            .filter(move |(_, users)| users.iter().any(|u| u == user))
            .map(|(g, _)| g.as_str())
    }

    /// RFC 8341 §3.4.4–3.4.6: the first matching rule of the first lists
    /// of the user's groups decides, then the role's rules, then the
    /// defaults.
    pub fn decide(&self, user: &str, role: Option<Role>, subject: &Subject, op: Op) -> Decision {
        // close-session is always allowed (RFC 8341 §3.4.4).
        if matches!(subject, Subject::Rpc { name, .. } if name == "close-session") {
            return Decision::new(true, "close-session");
        }
        let groups: Vec<&str> = self.groups_of(user).chain(role.map(Role::as_str)).collect();
        if self.enabled {
            for list in &self.lists {
                let applies = list
                    .groups
                    .iter()
                    .any(|g| g == "*" || groups.contains(&g.as_str()));
                if !applies {
                    continue;
                }
                if let Some(r) = list.rules.iter().find(|r| r.matches(subject, op)) {
                    return Decision::new(r.permit, format!("{}/{}", list.name, r.name));
                }
            }
        }
        if let Some(role) = role
            && let Some(r) = role_rules(role)
                .into_iter()
                .find(|r| r.matches(subject, op))
        {
            return Decision::new(r.permit, format!("role {}/{}", role.as_str(), r.name));
        }
        match (subject, op) {
            (Subject::Rpc { module, name }, _) => {
                if DENY_ALL_RPCS.contains(&(module.as_str(), name.as_str())) {
                    Decision::new(false, "default-deny-all")
                } else {
                    Decision::new(self.exec_default, "exec-default")
                }
            }
            (Subject::Notification { .. }, _) | (_, Op::Read) => {
                Decision::new(self.read_default, "read-default")
            }
            (_, Op::Exec) => Decision::new(self.exec_default, "exec-default"),
            _ => Decision::new(self.write_default, "write-default"),
        }
    }

    /// The access model held by the element's objects: the root's
    /// settings, its groups, and its rule lists and rules by their
    /// `Order`, then in the order they were created (object index). A rule that does not parse is
    /// left out (its object was checked when written; see [`check_rule`]).
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a ManagedObject>) -> Policy {
        let mut p = Policy::default();
        let mut lists: Vec<((u32, u32), &crate::ObjectName, RuleList)> = Vec::new();
        let mut rules: Vec<(crate::ObjectName, (u32, u32), Rule)> = Vec::new();
        let place = |o: &ManagedObject| match o.get("Order") {
            Some(Value::U32(n)) => (*n, o.index),
            _ => (0, o.index),
        };
        let text =
            |o: &ManagedObject, a: &str| o.get(a).and_then(Value::as_str).unwrap_or("").to_string();
        let action = |o: &ManagedObject, a: &str, default: bool| match o.get(a) {
            Some(Value::Enum(v)) => {
                AccessAction::from_value(*v).map_or(default, |a| a == AccessAction::Permit)
            }
            _ => default,
        };
        for o in objects {
            match o.class.name {
                "NetworkElement" if o.parent_index == 0 => {
                    p.enabled = !matches!(o.get("AccessControl"), Some(Value::Bool(false)));
                    p.read_default = action(o, "ReadDefault", true);
                    p.write_default = action(o, "WriteDefault", false);
                    p.exec_default = action(o, "ExecDefault", true);
                }
                "AccessGroup" => p.groups.push((
                    o.name.leaf().1.to_string(),
                    text(o, "Users")
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                )),
                "AccessRuleList" => lists.push((
                    place(o),
                    &o.name,
                    RuleList {
                        name: o.name.leaf().1.to_string(),
                        groups: text(o, "Groups")
                            .split_whitespace()
                            .map(str::to_string)
                            .collect(),
                        rules: Vec::new(),
                    },
                )),
                "AccessRule" => {
                    if let Ok(r) = rule_of(o)
                        && let Some(list) = o.name.parent()
                    {
                        rules.push((list, place(o), r));
                    }
                }
                _ => {}
            }
        }
        lists.sort_by_key(|(p, _, _)| *p);
        rules.sort_by_key(|(_, p, _)| *p);
        for (parent, _, r) in rules {
            if let Some((_, _, l)) = lists.iter_mut().find(|(_, n, _)| **n == parent) {
                l.rules.push(r);
            }
        }
        p.groups.sort();
        p.lists = lists.into_iter().map(|(_, _, l)| l).collect();
        p
    }
}

/// The rule an `AccessRule` object holds, or why it is none.
pub fn rule_of(o: &ManagedObject) -> Result<Rule, String> {
    let text = |a: &str| {
        o.get(a)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    check_rule(
        o.name.leaf().1,
        &text("Module"),
        &text("Rpc"),
        &text("Notification"),
        &text("Path"),
        &text("Operations"),
        !matches!(o.get("Action"), Some(Value::Enum(v)) if AccessAction::from_value(*v) == Some(AccessAction::Deny)),
    )
}

/// A rule from its fields; an error says what is wrong (at most one of
/// RPC, notification and path; operations that parse; a path that starts
/// with `/`).
pub fn check_rule(
    name: &str,
    module: &str,
    rpc: &str,
    notification: &str,
    path: &str,
    operations: &str,
    permit: bool,
) -> Result<Rule, String> {
    let given = [rpc, notification, path]
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    if given > 1 {
        return Err(format!(
            "rule {name}: give one of rpc, notification and path, not {given}"
        ));
    }
    let target = if !rpc.is_empty() {
        Target::Rpc(rpc.to_string())
    } else if !notification.is_empty() {
        Target::Notification(notification.to_string())
    } else if !path.is_empty() {
        if !path.starts_with('/') {
            return Err(format!("rule {name}: path {path:?} does not start with /"));
        }
        Target::Path(path_segments(path))
    } else {
        Target::Any
    };
    Ok(Rule {
        name: name.to_string(),
        module: if module.is_empty() {
            "*".into()
        } else {
            module.to_string()
        },
        target,
        ops: Ops::parse(if operations.is_empty() {
            "*"
        } else {
            operations
        })
        .map_err(|e| format!("rule {name}: {e}"))?,
        permit,
    })
}

/// The classes whose objects hold the access model, and the element's.
pub const POLICY_CLASSES: &[&str] = &[
    "NetworkElement",
    "AccessGroup",
    "AccessRuleList",
    "AccessRule",
];

/// The access model as `model` holds it now.
pub async fn load(model: &dyn InformationModel) -> Result<Policy, ModelError> {
    let objects = model
        .query(&Query {
            classes: POLICY_CLASSES.iter().map(|c| c.to_string()).collect(),
            ..Query::default()
        })
        .await?;
    Ok(Policy::from_objects(&objects))
}

/// What one change of a transaction asks: the data node and the operation.
pub fn change_subject(change: &Change, class: &ClassMeta) -> (Subject, Op) {
    match change {
        Change::Set { attribute, .. } => (Subject::attribute(class, Some(attribute)), Op::Update),
        Change::Create { .. } => (Subject::attribute(class, None), Op::Create),
        Change::Delete { .. } => (Subject::attribute(class, None), Op::Delete),
    }
}

/// The first change of `changes` the policy refuses `principal`: its
/// position, the decision and the error to report. `class_of` names an
/// existing object's class; a change of an unknown class or object is
/// left to the validation to report.
pub fn first_refusal(
    policy: &Policy,
    principal: &Principal,
    changes: &[Change],
    mut class_of: impl FnMut(&crate::ObjectName) -> Option<&'static ClassMeta>,
) -> Option<(usize, Decision, ModelError)> {
    changes.iter().enumerate().find_map(|(index, c)| {
        let class = match c {
            Change::Create { class, .. } => SCHEMA.class(class),
            Change::Set { object, .. } | Change::Delete { object } => class_of(object),
        }?;
        let (subject, op) = change_subject(c, class);
        let d = policy.decide(&principal.user, principal.role, &subject, op);
        (!d.permit).then(|| {
            let error = refusal(principal, &subject, op, &d);
            (index, d, error)
        })
    })
}

/// The refusal of `subject` for `principal`, as the model reports it:
/// who, what and the rule, never a value.
pub fn refusal(
    principal: &Principal,
    subject: &Subject,
    op: Op,
    decision: &Decision,
) -> ModelError {
    ModelError::AccessDenied {
        reason: format!(
            "{} may not {} {subject} (access rule {})",
            principal.user,
            op.as_str(),
            decision.by
        ),
    }
}

/// The schema's names of the access model (the faces name them through
/// these, not literals).
pub mod names {
    /// The element's class (the settings and the counter are its attributes).
    pub const ROOT: &str = "NetworkElement";
    pub const GROUP: &str = "AccessGroup";
    pub const LIST: &str = "AccessRuleList";
    pub const RULE: &str = "AccessRule";
    pub const TOKEN: &str = "AccessToken";
    pub const ENABLED: &str = "AccessControl";
    pub const READ_DEFAULT: &str = "ReadDefault";
    pub const WRITE_DEFAULT: &str = "WriteDefault";
    pub const EXEC_DEFAULT: &str = "ExecDefault";
    pub const DENIALS: &str = "AccessDenials";
    pub const USERS: &str = "Users";
    pub const GROUPS: &str = "Groups";
    pub const ORDER: &str = "Order";
    pub const MODULE: &str = "Module";
    pub const RPC: &str = "Rpc";
    pub const NOTIFICATION: &str = "Notification";
    pub const PATH: &str = "Path";
    pub const OPERATIONS: &str = "Operations";
    pub const ACTION: &str = "Action";
    pub const COMMENT: &str = "Comment";
    pub const USER: &str = "User";
    pub const DIGEST: &str = "Digest";
    pub const EXPIRES: &str = "Expires";
}

/// Refusals by face, user and rule, for `/metrics` (process-wide, like
/// the task panic count: one agent per process). The rule is what
/// [`Decision::by`] names; users and rules are bounded by the
/// configuration, and past [`Denials::MAX_SERIES`] series the rest count
/// under user and rule `other`.
#[derive(Debug, Default)]
pub struct Denials {
    counts: std::sync::Mutex<std::collections::BTreeMap<(&'static str, String, String), u64>>,
}

impl Denials {
    pub const MAX_SERIES: usize = 1000;

    /// The process's refusals.
    pub fn global() -> &'static Denials {
        static DENIALS: std::sync::OnceLock<Denials> = std::sync::OnceLock::new();
        DENIALS.get_or_init(Denials::default)
    }

    pub fn record(&self, face: &'static str, user: &str, rule: &str) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (face, user.to_string(), rule.to_string());
        if !m.contains_key(&key) && m.len() >= Self::MAX_SERIES {
            key = (face, "other".into(), "other".into());
        }
        *m.entry(key).or_default() += 1;
    }

    /// (face, user, rule, count), in order.
    pub fn snapshot(&self) -> Vec<(&'static str, String, String, u64)> {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|((f, u, r), n)| (*f, u.clone(), r.clone(), *n))
            .collect()
    }
}

/// The face a protocol is, as `/metrics` labels it.
pub fn face_name(p: crate::model::Protocol) -> &'static str {
    use crate::model::Protocol as P;
    match p {
        P::Snmp => "snmp",
        P::Netconf => "netconf",
        P::Http => "http",
        P::Cli => "cli",
        P::Internal => "internal",
    }
}

/// The access model as last read, for the faces' read checks and RPC
/// checks: read again when older than its time to live, so a rule changed
/// anywhere applies on every face within that time. (Writes and
/// operations are decided by the model on its current objects.)
#[derive(Debug)]
pub struct PolicyCache {
    ttl: std::time::Duration,
    slot: std::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Policy>)>>,
}

impl Default for PolicyCache {
    fn default() -> Self {
        PolicyCache::new(std::time::Duration::from_millis(250))
    }
}

impl PolicyCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        PolicyCache {
            ttl,
            slot: std::sync::Mutex::new(None),
        }
    }

    pub async fn get(
        &self,
        model: &dyn InformationModel,
    ) -> Result<std::sync::Arc<Policy>, ModelError> {
        {
            let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, p)) = slot.as_ref()
                && at.elapsed() < self.ttl
            {
                return Ok(p.clone());
            }
        }
        let p = std::sync::Arc::new(load(model).await?);
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), p.clone()));
        Ok(p)
    }
}

/// What one user may read, class by class (RFC 8341 §3.4.5: a denied
/// entry is left out, a denied leaf of a permitted entry too; the key
/// stays with its entry).
#[derive(Debug)]
pub struct ReadFilter {
    policy: std::sync::Arc<Policy>,
    user: String,
    role: Option<Role>,
    /// Class name -> None (hidden) or which attributes are readable.
    classes: std::collections::HashMap<&'static str, Option<Vec<bool>>>,
    /// Whether any read may be denied at all (else nothing is filtered).
    active: bool,
}

impl ReadFilter {
    pub fn new(policy: std::sync::Arc<Policy>, user: &str, role: Option<Role>) -> Self {
        let denies_reads =
            |rules: &[Rule]| rules.iter().any(|r| !r.permit && r.ops.contains(Op::Read));
        let active = match role {
            // The roles' rules permit every read: only stored deny rules
            // of the user's lists can hide something.
            Some(_) => {
                policy.enabled && {
                    let groups: Vec<&str> = policy
                        .groups_of(user)
                        .chain(role.map(Role::as_str))
                        .collect();
                    policy.lists.iter().any(|l| {
                        l.groups
                            .iter()
                            .any(|g| g == "*" || groups.contains(&g.as_str()))
                            && denies_reads(&l.rules)
                    })
                }
            }
            None => true,
        };
        ReadFilter {
            policy,
            user: user.to_string(),
            role,
            classes: std::collections::HashMap::new(),
            active,
        }
    }

    /// Whether nothing is hidden from this user.
    pub fn is_open(&self) -> bool {
        !self.active
    }

    /// None: the class's entries are hidden; else the readable attributes.
    pub fn class(&mut self, class: &'static ClassMeta) -> Option<&[bool]> {
        if !self.active {
            return Some(&[]);
        }
        let (policy, user, role) = (&self.policy, self.user.as_str(), self.role);
        self.classes
            .entry(class.name)
            .or_insert_with(|| {
                let read = |s: &Subject| policy.decide(user, role, s, Op::Read).permit;
                read(&Subject::attribute(class, None)).then(|| {
                    class
                        .attributes
                        .iter()
                        .map(|a| a.key || read(&Subject::attribute(class, Some(a.name))))
                        .collect()
                })
            })
            .as_deref()
    }

    /// Leaves out what the user may not read: hidden entries, and the
    /// values of hidden attributes (`Absent`).
    pub fn objects(&mut self, objects: &mut Vec<ManagedObject>) {
        if !self.active {
            return;
        }
        objects.retain_mut(|o| self.object(o));
    }

    /// Masks one object; false when it is hidden, or anything that
    /// contains it is (what one may not see, one may not see into: its
    /// containers' classes are in its name).
    pub fn object(&mut self, o: &mut ManagedObject) -> bool {
        if !self.active {
            return true;
        }
        let depth = o.name.depth();
        for (i, (rdn, _)) in o.name.rdns().enumerate() {
            if i + 1 < depth
                && let Some(c) = SCHEMA.class_by_rdn(rdn)
                && self.class(c).is_none()
            {
                return false;
            }
        }
        self.values(o.class, &mut o.values)
    }

    /// Masks values of `class`; false when the class is hidden.
    pub fn values(&mut self, class: &'static ClassMeta, values: &mut [Value]) -> bool {
        if !self.active {
            return true;
        }
        match self.class(class) {
            None => false,
            Some(mask) => {
                for (v, ok) in values.iter_mut().zip(mask) {
                    if !ok {
                        *v = Value::Absent;
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str) -> &'static ClassMeta {
        SCHEMA.class(name).unwrap()
    }

    fn policy(lists: Vec<RuleList>, groups: Vec<(&str, &[&str])>) -> Policy {
        Policy {
            groups: groups
                .into_iter()
                .map(|(g, u)| (g.to_string(), u.iter().map(|s| s.to_string()).collect()))
                .collect(),
            lists,
            ..Policy::default()
        }
    }

    #[test]
    fn roles_alone_give_the_documented_table() {
        let p = Policy::default();
        let sg_admin = Subject::attribute(class("ServiceGroup"), Some("AdminState"));
        let switch =
            Subject::operation(class("ServiceGroup"), class("ServiceGroup").methods[0].name);
        let restart = Subject::rpc("ietf-system", "system-restart");
        let rule = Subject::attribute(class("AccessRule"), None);
        let get = Subject::rpc("ietf-netconf", "get");
        let edit = Subject::rpc("ietf-netconf", "edit-config");
        let cases: &[(Role, &Subject, Op, bool)] = &[
            (Role::Viewer, &sg_admin, Op::Read, true),
            (Role::Viewer, &sg_admin, Op::Update, false),
            (Role::Viewer, &switch, Op::Exec, false),
            (Role::Viewer, &get, Op::Exec, true),
            (Role::Viewer, &edit, Op::Exec, false),
            (Role::Viewer, &restart, Op::Exec, false),
            (Role::Operator, &sg_admin, Op::Update, true),
            (Role::Operator, &switch, Op::Exec, true),
            (Role::Operator, &edit, Op::Exec, true),
            (Role::Operator, &restart, Op::Exec, false),
            (Role::Operator, &rule, Op::Create, false),
            (Role::Operator, &rule, Op::Read, true),
            (Role::Admin, &rule, Op::Create, true),
            (Role::Admin, &restart, Op::Exec, true),
        ];
        for (role, subject, op, permit) in cases {
            let d = p.decide("u", Some(*role), subject, *op);
            assert_eq!(d.permit, *permit, "{role:?} {op:?} {subject}: {d:?}");
            assert!(d.by.starts_with("role "), "{d:?}");
        }
        // No role: the defaults (reads and other RPCs permitted, writes
        // denied, the default-deny-all RPCs denied).
        assert!(p.decide("u", None, &sg_admin, Op::Read).permit);
        assert_eq!(
            p.decide("u", None, &sg_admin, Op::Update),
            Decision::new(false, "write-default")
        );
        assert_eq!(
            p.decide("u", None, &restart, Op::Exec),
            Decision::new(false, "default-deny-all")
        );
        assert!(
            p.decide(
                "u",
                None,
                &Subject::rpc("ietf-netconf", "close-session"),
                Op::Exec
            )
            .permit
        );
    }

    #[test]
    fn stored_rules_come_first_in_order_and_only_for_their_groups() {
        let deny_sg = check_rule(
            "no-sg-admin",
            "halyard-cluster",
            "",
            "",
            "/hc:element/hc:service-group[hc:name='x']/admin-state",
            "update",
            false,
        )
        .unwrap();
        let permit_all = check_rule("anything", "*", "", "", "", "*", true).unwrap();
        let p = policy(
            vec![
                RuleList {
                    name: "night-shift".into(),
                    groups: vec!["night".into()],
                    rules: vec![deny_sg, permit_all.clone()],
                },
                RuleList {
                    name: "everyone".into(),
                    groups: vec!["*".into()],
                    rules: vec![
                        check_rule("no-fans", "*", "", "", "/element/fan", "read", false).unwrap(),
                    ],
                },
            ],
            vec![("night", &["ann"])],
        );
        let sg_admin = Subject::attribute(class("ServiceGroup"), Some("AdminState"));
        let sg_label = Subject::attribute(class("ServiceGroup"), Some("Name"));
        let d = p.decide("ann", Some(Role::Operator), &sg_admin, Op::Update);
        assert_eq!(d, Decision::new(false, "night-shift/no-sg-admin"));
        // A later rule of the same list permits what the first did not match.
        assert_eq!(
            p.decide("ann", Some(Role::Viewer), &sg_label, Op::Update),
            Decision::new(true, "night-shift/anything")
        );
        // Bob is not in the group: his role decides.
        assert!(
            p.decide("bob", Some(Role::Operator), &sg_admin, Op::Update)
                .permit
        );
        let fan = Subject::attribute(class("Fan"), Some("Speed"));
        assert_eq!(
            p.decide("bob", Some(Role::Admin), &fan, Op::Read),
            Decision::new(false, "everyone/no-fans")
        );
        // Turned off, the stored rules do not apply; the roles' do.
        let off = Policy {
            enabled: false,
            ..p
        };
        assert!(off.decide("bob", Some(Role::Admin), &fan, Op::Read).permit);
        assert!(
            !off.decide("bob", Some(Role::Viewer), &sg_admin, Op::Update)
                .permit
        );
    }

    #[tokio::test]
    async fn reads_hide_entries_their_contents_and_leaves() {
        use crate::port::{InformationModel, Query};
        let objs = crate::memory::demo_element()
            .query(&Query::default())
            .await
            .unwrap();
        let rules = vec![
            check_rule("no-nodes", "*", "", "", "/element/node", "read", false).unwrap(),
            check_rule(
                "no-fan-labels",
                "*",
                "",
                "",
                "/element/fan/label",
                "read",
                false,
            )
            .unwrap(),
        ];
        let p = std::sync::Arc::new(policy(
            vec![RuleList {
                name: "l".into(),
                groups: vec!["night".into()],
                rules,
            }],
            vec![("night", &["olga"])],
        ));
        let mut open = ReadFilter::new(p.clone(), "otto", Some(Role::Operator));
        assert!(open.is_open());
        let mut all = objs.clone();
        open.objects(&mut all);
        assert_eq!(all, objs);
        let mut f = ReadFilter::new(p, "olga", Some(Role::Operator));
        assert!(!f.is_open());
        let mut seen = objs.clone();
        f.objects(&mut seen);
        let node = objs.iter().find(|o| o.class.name == "Node").unwrap();
        assert!(
            seen.iter()
                .all(|o| o.class.name != "Node" && !o.name.is_within(&node.name))
        );
        assert!(
            objs.iter()
                .any(|o| o.name.is_within(&node.name) && o.name != node.name)
        );
        let fan = seen.iter().find(|o| o.class.name == "Fan").unwrap();
        assert_eq!(fan.get("Label"), Some(&Value::Absent));
        assert!(!matches!(fan.get("Name"), Some(Value::Absent)));
        assert!(seen.len() < objs.len() && seen.iter().any(|o| o.class.name == "Shelf"));
    }

    /// Every name the faces use is the schema's.
    #[test]
    fn the_names_are_the_schemas() {
        use names::*;
        let has = |class: &str, attrs: &[&str]| {
            let c = SCHEMA
                .class(class)
                .unwrap_or_else(|| panic!("no class {class}"));
            for a in attrs {
                assert!(c.attribute(a).is_some(), "{class} has no {a}");
            }
        };
        has(
            ROOT,
            &[ENABLED, READ_DEFAULT, WRITE_DEFAULT, EXEC_DEFAULT, DENIALS],
        );
        has(GROUP, &[USERS]);
        has(LIST, &[GROUPS, ORDER]);
        has(
            RULE,
            &[
                MODULE,
                RPC,
                NOTIFICATION,
                PATH,
                OPERATIONS,
                ACTION,
                COMMENT,
                ORDER,
            ],
        );
        has(TOKEN, &[USER, DIGEST, EXPIRES, COMMENT]);
    }

    #[test]
    fn rules_are_checked_when_written() {
        assert!(check_rule("r", "*", "get", "", "/x", "*", true).is_err());
        assert!(check_rule("r", "*", "", "", "element", "*", true).is_err());
        assert!(check_rule("r", "*", "", "", "", "read write", true).is_err());
        let r = check_rule("r", "", "", "", "", "", false).unwrap();
        assert_eq!(
            (r.module.as_str(), r.ops, &r.target),
            ("*", Ops::ALL, &Target::Any)
        );
        assert_eq!(Ops::parse("read exec").unwrap().to_string(), "read exec");
        assert_eq!(
            path_segments("/a:element/a:service-group[a:name='x/y']/b"),
            vec!["element", "service-group", "b"]
        );
    }
}
