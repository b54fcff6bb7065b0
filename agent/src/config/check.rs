//! The semantic checks, one checker per section of the file, each
//! reporting every mistake it finds at its file:line:col. The words of a
//! fixed set (see `words`) were refused while the file was read.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use toml::Spanned;

use super::{
    ComponentKind, ComponentSection, Config, ConfigError, DEMO_ADMIN_PASSWORD, DEMO_AUTH,
    DEMO_PASSWORD, Locator, NodeSection, SnmpLevel,
};

/// Where the checkers put what they find.
pub(super) struct Report<'a> {
    loc: &'a Locator<'a>,
    errs: &'a mut Vec<ConfigError>,
}

impl Report<'_> {
    /// A mistake at what `s` spans.
    fn at<T>(&mut self, s: &Spanned<T>, message: impl Into<String>) {
        self.errs.push(self.loc.span(s, message));
    }
}

/// Every section's checks; sections whose names others refer to come
/// before those.
pub(super) fn check(c: &Config, loc: &Locator<'_>, errs: &mut Vec<ConfigError>) {
    let r = &mut Report { loc, errs };
    check_release(c, r);
    check_element(c, r);
    check_faces(c, r);
    check_http_tls(c, r);
    check_roles(c, r);
    check_snmp_users(c, r);
    check_snmp_traps(c, r);
    let groups = check_groups(c, r);
    let fru_types = check_fru_types(c, &groups, r);
    let shelves = check_shelves(c, &fru_types, r);
    let nodes = check_nodes(c, &shelves, r);
    check_cluster(c, r);
    check_components(c, &nodes, &groups, r);
    check_hotswap(c, r);
    check_aggregates(c, r);
    check_thresholds(c, r);
}

/// Checks the names of one kind of item (valid relative names, each once)
/// and returns them.
fn names<'a>(
    what: &str,
    items: impl IntoIterator<Item = &'a Spanned<String>>,
    r: &mut Report<'_>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for n in items {
        if !valid_rdn(n.get_ref()) {
            r.at(
                n,
                format!(
                    "found {what} name \"{}\", expected letters, digits, '-', '_' or '.'",
                    n.get_ref()
                ),
            );
        } else if !seen.insert(n.get_ref().clone()) {
            r.at(
                n,
                format!(
                    "found a second {what} named \"{}\", expected unique names",
                    n.get_ref()
                ),
            );
        }
    }
    seen
}

fn valid_rdn(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn list(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "(none declared)".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// `[release]`: where releases come from, the trial's watchdog.
fn check_release(c: &Config, r: &mut Report<'_>) {
    let Some(rel) = &c.release else { return };
    let ls = rel.load_server.get_ref();
    if ls.is_empty() || (ls.contains("://") && !ls.starts_with("http://")) {
        r.at(
            &rel.load_server,
            format!("found load_server \"{ls}\", expected a directory or an http:// URL"),
        );
    }
    if *rel.watchdog_ms.get_ref() < 1000 {
        r.at(
            &rel.watchdog_ms,
            format!(
                "found watchdog_ms = {}, expected at least 1000 (a node needs time to start)",
                rel.watchdog_ms.get_ref()
            ),
        );
    }
}

/// `[element]`: its name.
fn check_element(c: &Config, r: &mut Report<'_>) {
    names("element", [&c.element.name], r);
}

/// `[snmp]`, `[netconf]` and `[http]` listen addresses: they parse, and
/// the demo credentials (of any face's users) stay on loopback.
fn check_faces(c: &Config, r: &mut Report<'_>) {
    let demo_creds = c.http.users.iter().chain(&c.netconf.users).any(|u| {
        u.password
            .as_ref()
            .is_some_and(|p| [DEMO_PASSWORD, DEMO_ADMIN_PASSWORD].contains(&p.get_ref().as_str()))
    }) || c
        .snmp
        .users
        .iter()
        .any(|u| u.auth_pass.get_ref() == DEMO_AUTH);
    for p in c
        .http
        .users
        .iter()
        .chain(&c.netconf.users)
        .filter_map(|u| u.password.as_ref())
    {
        if let Err(e) = halyard_cluster_model::secret::Password::from_config(p.get_ref()) {
            r.at(
                p,
                format!("found a password starting with $argon2 that is {e}"),
            );
        }
    }
    for l in c
        .snmp
        .listen
        .iter()
        .chain(&c.netconf.listen)
        .chain(&c.http.listen)
    {
        match l.get_ref().parse::<SocketAddr>() {
            Err(_) => r.at(l, format!("found listen address \"{}\", expected IP:PORT such as 127.0.0.1:8080 or [::1]:8080", l.get_ref())),
            Ok(a) if demo_creds && !a.ip().is_loopback() => r.at(
                l,
                format!("found the demo credentials with non-loopback address {a}, expected a loopback address or credentials of your own"),
            ),
            Ok(_) => {}
        }
    }
}

/// One person, one role: a user named on several faces has the same role
/// on each (the access rules give a user's role its built-in rules, so a
/// viewer on one face and an operator on another would get two answers);
/// an SNMP user writes exactly when its role is operator or admin.
fn check_roles(c: &Config, r: &mut Report<'_>) {
    use crate::config::Role;
    let word = |role: Role| match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    };
    for n in &c.netconf.users {
        if let Some(h) = c
            .http
            .users
            .iter()
            .find(|h| h.name.get_ref() == n.name.get_ref())
            && h.role != n.role
        {
            r.at(
                &n.name,
                format!(
                    "found user {} with role {} here and {} in [http], expected one role for one user on every face",
                    n.name.get_ref(),
                    word(n.role),
                    word(h.role)
                ),
            );
        }
    }
    for s in &c.snmp.users {
        let role = c
            .http
            .users
            .iter()
            .chain(&c.netconf.users)
            .find(|u| u.name.get_ref() == s.name.get_ref())
            .map(|u| u.role);
        if let Some(role) = role
            && s.write != (role != Role::Viewer)
        {
            r.at(
                &s.name,
                format!(
                    "found SNMP user {} with write = {} and role {} on another face, expected write = {}",
                    s.name.get_ref(),
                    s.write,
                    word(role),
                    role != Role::Viewer
                ),
            );
        }
    }
}

/// `[http]` HTTPS: a certificate and its key together, both readable.
fn check_http_tls(c: &Config, r: &mut Report<'_>) {
    match (&c.http.tls_cert, &c.http.tls_key) {
        (Some(_), None) | (None, Some(_)) => {
            let s = c
                .http
                .tls_cert
                .as_ref()
                .or(c.http.tls_key.as_ref())
                .expect("one");
            r.at(
                s,
                "found only one of tls_cert and tls_key, expected both or neither",
            );
        }
        (Some(cert), Some(key)) => {
            for p in [cert, key] {
                if !std::path::Path::new(p.get_ref()).is_file() {
                    r.at(
                        p,
                        format!("found \"{}\", expected a readable PEM file", p.get_ref()),
                    );
                }
            }
        }
        (None, None) => {}
    }
}

/// `[snmp] users`: passphrases (the protocols are words).
fn check_snmp_users(c: &Config, r: &mut Report<'_>) {
    for u in &c.snmp.users {
        if u.auth_pass.get_ref().len() < 8 {
            r.at(
                &u.auth_pass,
                "found a passphrase of fewer than 8 characters, expected at least 8 (RFC 3414)",
            );
        }
        if u.privacy.is_some() != u.priv_pass.is_some() {
            r.at(
                &u.name,
                "found only one of priv and priv_pass, expected both or neither",
            );
        }
        for level in [&u.read_level, &u.write_level].into_iter().flatten() {
            if *level.get_ref() == SnmpLevel::AuthPriv && u.priv_pass.is_none() {
                r.at(
                    level,
                    "found authPriv for a user without priv_pass, expected authNoPriv or a privacy key",
                );
            }
        }
        if let (Some(read), Some(write)) = (&u.read_level, &u.write_level)
            && write.get_ref() < read.get_ref()
        {
            r.at(
                write,
                "found a write level weaker than the read level, expected at least the read level",
            );
        }
    }
}

/// `[snmp] traps`: a receiver's address, and a v3 user that exists.
fn check_snmp_traps(c: &Config, r: &mut Report<'_>) {
    for t in &c.snmp.traps {
        if t.target.get_ref().parse::<std::net::SocketAddr>().is_err() {
            r.at(
                &t.target,
                format!(
                    "found trap target {:?}, expected an address and port such as 192.0.2.1:162",
                    t.target.get_ref()
                ),
            );
        }
        let Some(user) = &t.user else { continue };
        if t.community.is_some() {
            r.at(user, "found both community and user, expected one of them");
        }
        if !c
            .snmp
            .users
            .iter()
            .any(|u| u.name.get_ref() == user.get_ref())
        {
            r.at(
                user,
                format!(
                    "found user {:?}, expected one of [[snmp.users]]",
                    user.get_ref()
                ),
            );
        }
    }
}

/// `[[service_group]]`: names and service instances; returns the names.
fn check_groups(c: &Config, r: &mut Report<'_>) -> BTreeSet<String> {
    let groups = names("service group", c.groups.iter().map(|g| &g.name), r);
    for g in &c.groups {
        if g.service_instances.is_empty() {
            r.at(
                &g.name,
                "found a service group without service instances, expected at least one",
            );
        }
        for si in &g.service_instances {
            if !valid_rdn(si.get_ref()) {
                r.at(
                    si,
                    format!(
                        "found service instance \"{}\", expected letters, digits, '-', '_' or '.'",
                        si.get_ref()
                    ),
                );
            }
        }
    }
    groups
}

/// `[[fru_type]]`: names, and their components' names, commands and
/// groups; returns the names.
fn check_fru_types(c: &Config, groups: &BTreeSet<String>, r: &mut Report<'_>) -> BTreeSet<String> {
    let fru_types = names("FRU type", c.fru_types.iter().map(|t| &t.name), r);
    for t in &c.fru_types {
        names(
            "component of the FRU type",
            t.components.iter().map(|x| &x.name),
            r,
        );
        for x in &t.components {
            if x.command.get_ref().is_empty() {
                r.at(
                    &x.command,
                    "found an empty command, expected a program and its arguments",
                );
            }
            if let Some(g) = &x.group
                && !groups.contains(g.get_ref())
            {
                r.at(
                    g,
                    format!(
                        "found unknown service group \"{}\", expected one of: {}",
                        g.get_ref(),
                        list(groups)
                    ),
                );
            }
        }
    }
    fru_types
}

/// `[[shelf]]`: names, and its units' slots, types and names; returns the
/// shelves' names.
fn check_shelves(c: &Config, fru_types: &BTreeSet<String>, r: &mut Report<'_>) -> BTreeSet<String> {
    let shelves = names("shelf", c.shelves.iter().map(|s| &s.name), r);
    for s in &c.shelves {
        let mut frus = BTreeSet::new();
        let mut slots = BTreeSet::new();
        for f in &s.frus {
            if !slots.insert(*f.slot.get_ref()) {
                r.at(
                    &f.slot,
                    format!(
                        "found a second unit in slot {} of shelf \"{}\", expected one unit per slot",
                        f.slot.get_ref(),
                        s.name.get_ref()
                    ),
                );
            }
            if let Some(t) = &f.fru_type {
                match c.fru_types.iter().find(|x| x.name.get_ref() == t.get_ref()) {
                    None => r.at(
                        t,
                        format!(
                            "found unknown FRU type \"{}\", expected one of: {}",
                            t.get_ref(),
                            list(fru_types)
                        ),
                    ),
                    Some(x) if x.class != f.kind => r.at(
                        t,
                        format!(
                            "found FRU type \"{}\" of class {} on a unit of kind {}, expected a type of class {}",
                            t.get_ref(),
                            x.class,
                            f.kind,
                            f.kind
                        ),
                    ),
                    Some(_) => {}
                }
            }
            if !valid_rdn(f.name.get_ref()) || !frus.insert((f.kind, f.name.get_ref().clone())) {
                r.at(
                    &f.name,
                    format!(
                        "found FRU name \"{}\", expected a unique name per kind in the shelf",
                        f.name.get_ref()
                    ),
                );
            }
        }
    }
    shelves
}

/// `[[node]]`: names, cluster and face addresses, shelf, SSH access and
/// files; returns the names.
fn check_nodes(c: &Config, shelves: &BTreeSet<String>, r: &mut Report<'_>) -> BTreeSet<String> {
    let nodes = names("node", c.nodes.iter().map(|n| &n.name), r);
    let clustered = c.clustered();
    for n in &c.nodes {
        if clustered && !n.non_peer && n.cluster.is_empty() {
            r.at(
                &n.name,
                "found a peer node without cluster addresses, expected cluster = [\"ip:port\", ...] on every peer node",
            );
        }
        check_ssh(n, r);
        if n.cluster.len() > 2 {
            r.at(
                &n.cluster[2],
                "found a third cluster address, expected one or two (one per cluster link)",
            );
        }
        for a in n
            .cluster
            .iter()
            .chain(n.snmp.iter().flatten())
            .chain(n.netconf.iter().flatten())
            .chain(n.http.iter().flatten())
        {
            if a.get_ref().parse::<SocketAddr>().is_err() {
                r.at(
                    a,
                    format!("found address \"{}\", expected ip:port", a.get_ref()),
                );
            }
        }
        if let Some(s) = &n.shelf
            && !shelves.contains(s.get_ref())
        {
            r.at(
                s,
                format!(
                    "found unknown shelf \"{}\", expected one of: {}",
                    s.get_ref(),
                    list(shelves)
                ),
            );
        }
    }
    nodes
}

/// `[cluster]` timers, when the nodes form a cluster.
fn check_cluster(c: &Config, r: &mut Report<'_>) {
    if !c.clustered() {
        return;
    }
    let k = &c.cluster;
    let (hb, lease, failure) = (
        *k.heartbeat_ms.get_ref(),
        *k.lease_ms.get_ref(),
        *k.failure_ms.get_ref(),
    );
    if hb == 0 {
        r.at(
            &k.heartbeat_ms,
            "found 0, expected a heartbeat period in ms",
        );
    }
    if lease <= hb {
        r.at(
            &k.lease_ms,
            format!("found lease {lease} ms, expected more than the heartbeat ({hb} ms)"),
        );
    }
    if failure < lease + 2 * hb {
        // Point at what the file set (a default has no place in it).
        let at = [&k.failure_ms, &k.lease_ms, &k.heartbeat_ms]
            .into_iter()
            .find(|s| !s.span().is_empty())
            .unwrap_or(&k.failure_ms);
        r.at(
            at,
            format!(
                "found failure detection {failure} ms, expected at least the lease plus two heartbeats ({} ms), so a cut-off node gives up its primaries before they are promoted elsewhere",
                lease + 2 * hb
            ),
        );
    }
    let e = k.election_ms.get_ref();
    if e.len() != 2 || e[0] >= e[1] || e[0] <= hb {
        r.at(
            &k.election_ms,
            format!("found {e:?}, expected [min, max] in ms with heartbeat < min < max"),
        );
    }
}

/// `[[component]]`: names, node, group, command and what only proxies
/// have.
fn check_components(
    c: &Config,
    nodes: &BTreeSet<String>,
    groups: &BTreeSet<String>,
    r: &mut Report<'_>,
) {
    names("component", c.components.iter().map(|x| &x.name), r);
    for x in &c.components {
        if !nodes.contains(x.node.get_ref()) {
            r.at(
                &x.node,
                format!(
                    "found unknown node \"{}\", expected one of: {}",
                    x.node.get_ref(),
                    list(nodes)
                ),
            );
        }
        if !groups.contains(x.group.get_ref()) {
            r.at(
                &x.group,
                format!(
                    "found unknown service group \"{}\", expected one of: {}",
                    x.group.get_ref(),
                    list(groups)
                ),
            );
        }
        check_proxy(c, x, r);
        if x.command.get_ref().is_empty() {
            r.at(
                &x.command,
                "found an empty command, expected a program and its arguments",
            );
        }
    }
}

/// `[hotswap]`: the polling period.
fn check_hotswap(c: &Config, r: &mut Report<'_>) {
    if *c.hotswap.poll_ms.get_ref() == 0 {
        r.at(
            &c.hotswap.poll_ms,
            "found 0, expected a polling period in ms",
        );
    }
}

/// `[[aggregate]]`: scope, name and statistic.
fn check_aggregates(c: &Config, r: &mut Report<'_>) {
    for a in &c.aggregates {
        if halyard_cluster_model::ObjectName::parse(a.scope.get_ref()).is_err() {
            r.at(
                &a.scope,
                format!(
                    "found scope \"{}\", expected a persistent name such as ne=1/shelf=1",
                    a.scope.get_ref()
                ),
            );
        }
        if !valid_rdn(a.name.get_ref()) || !valid_rdn(a.statistic.get_ref()) {
            r.at(&a.name, "found an aggregate name or statistic with other characters than letters, digits, '-', '_' or '.'");
        }
    }
}

/// `[[threshold]]`: resource, name, statistic and hysteresis.
fn check_thresholds(c: &Config, r: &mut Report<'_>) {
    for t in &c.thresholds {
        if halyard_cluster_model::ObjectName::parse(t.resource.get_ref()).is_err() {
            r.at(&t.resource, format!("found resource \"{}\", expected a persistent name such as ne=1/shelf=1/board=1", t.resource.get_ref()));
        }
        if !valid_rdn(t.name.get_ref()) || !valid_rdn(t.statistic.get_ref()) {
            r.at(&t.name, "found a threshold name or statistic with other characters than letters, digits, '-', '_' or '.'");
        }
        if t.falling > t.rising {
            r.at(&t.name, format!("found falling {} above rising {}, expected falling <= rising (the hysteresis band)", t.falling, t.rising));
        }
    }
}

/// A proxy names a non-peer node with SSH access and runs on a peer node;
/// only proxies have targets, stats and files.
fn check_proxy(c: &Config, x: &ComponentSection, r: &mut Report<'_>) {
    let node = |n: &str| c.nodes.iter().find(|m| m.name.get_ref() == n);
    if *x.kind.get_ref() != ComponentKind::Proxy {
        if let Some(t) = &x.target {
            r.at(
                t,
                "found target on a component that is not a proxy, expected kind = \"proxy\"",
            );
        }
        if x.stats.is_some() {
            r.at(
                &x.kind,
                "found stats on a component that is not a proxy, expected kind = \"proxy\"",
            );
        }
        return;
    }
    if node(x.node.get_ref()).is_some_and(|n| n.non_peer) {
        r.at(
            &x.node,
            format!(
                "found non-peer node \"{}\" as a proxy's host, expected a peer node (one that runs halyard)",
                x.node.get_ref()
            ),
        );
    }
    match &x.target {
        None => r.at(
            &x.name,
            "found a proxy without a target, expected target = \"<non-peer node>\"",
        ),
        Some(t) => match node(t.get_ref()) {
            None => r.at(
                t,
                format!("found unknown target node \"{}\", expected a non-peer node", t.get_ref()),
            ),
            Some(n) if !n.non_peer => r.at(
                t,
                format!(
                    "found peer node \"{}\" as a proxy's target, expected a node with non_peer = true",
                    t.get_ref()
                ),
            ),
            Some(n) if n.ssh.is_none() => r.at(
                t,
                format!(
                    "found target node \"{}\" without ssh access, expected ssh = {{ key = \"...\" }} on that node",
                    t.get_ref()
                ),
            ),
            Some(_) => {}
        },
    }
    if x.stats.as_ref().is_some_and(Vec::is_empty) {
        r.at(
            &x.name,
            "found an empty stats command, expected a program and its arguments",
        );
    }
    if x.stats_period_ms == 0 || x.timeout_ms == 0 {
        r.at(
            &x.name,
            "found stats_period_ms or timeout_ms = 0, expected milliseconds > 0",
        );
    }
}

/// Checks a non-peer node's SSH access and files.
fn check_ssh(n: &NodeSection, r: &mut Report<'_>) {
    if let Some(f) = n.files.first()
        && !n.non_peer
    {
        r.at(
            &f.path,
            "found a file on a peer node, expected files on nodes with non_peer = true",
        );
    }
    let mut paths = BTreeSet::new();
    for f in &n.files {
        let p = f.path.get_ref();
        if !p.starts_with('/') || p[1..].split('/').any(str::is_empty) || p.contains('\0') {
            r.at(
                &f.path,
                format!("found file path \"{p}\", expected an absolute path of a file on the non-peer node"),
            );
        } else if !paths.insert(p.clone()) {
            r.at(
                &f.path,
                format!("found a second file \"{p}\", expected each path once"),
            );
        }
        match (&f.contents, &f.source) {
            (Some(_), Some(src)) => r.at(
                src,
                "found both contents and source, expected one of them",
            ),
            (None, Some(src)) => {
                if let Err(e) = std::fs::read_to_string(src.get_ref()) {
                    r.at(
                        src,
                        format!("cannot read source {}: {e}", src.get_ref().display()),
                    );
                }
            }
            (None, None) => r.at(
                &f.path,
                "found a file without contents, expected contents = \"...\" or source = \"<local file>\"",
            ),
            (Some(_), None) => {}
        }
    }
    let Some(ssh) = &n.ssh else { return };
    if !n.non_peer {
        r.at(
            ssh,
            "found ssh on a peer node, expected it on a node with non_peer = true",
        );
    }
    let s = ssh.get_ref();
    if s.port == 0 {
        r.at(ssh, "found port 0, expected the node's SSH port");
    }
    if let Err(e) = std::fs::metadata(s.key.get_ref()) {
        r.at(
            &s.key,
            format!("cannot read key {}: {e}", s.key.get_ref().display()),
        );
    }
    if let Some(h) = &s.host_key
        && !h.get_ref().starts_with("SHA256:")
    {
        r.at(
            h,
            format!("found host key \"{}\", expected a fingerprint SHA256:... as ssh-keygen -lf prints it", h.get_ref()),
        );
    }
}
