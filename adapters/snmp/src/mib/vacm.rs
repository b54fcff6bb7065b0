//! SNMP-VIEW-BASED-ACM-MIB (RFC 3415), read-only: the SNMP face's own
//! access control as configured. One context (""); each v3 user in its
//! group under the USM model, each community under v1 and v2c as the
//! group `community-<n>` (its place in the configuration: a community is a
//! secret, so neither its security name nor its group shows it); each
//! group's access rows per security level (a row with the write view from
//! the level writes need); and the views, `all` as the subtree iso(1).
//! The element's SNMPv3 users (added at run time) are shown too, each in
//! the group of its role ([`ElementUser`]); the tables are rebuilt when
//! they change.
//! The element's access rules (`halyard_cluster_model::access`) apply on
//! top of these views, for every face alike.

use rasn_smi::v2::ObjectSyntax;

use crate::codec::{int, octets};
use crate::config::{SecurityLevel, SnmpConfig, View};
use crate::oid::Oid;

/// vacmContextEntry, vacmSecurityToGroupEntry, vacmAccessEntry,
/// vacmViewTreeFamilyEntry, vacmViewSpinLock.
pub(super) const CONTEXT_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 16, 1, 1, 1];
pub(super) const GROUP_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 16, 1, 2, 1];
pub(super) const ACCESS_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 16, 1, 4, 1];
pub(super) const VIEW_ENTRY: &[u32] = &[1, 3, 6, 1, 6, 3, 16, 1, 5, 2, 1];
pub(super) const SPIN_LOCK: &[u32] = &[1, 3, 6, 1, 6, 3, 16, 1, 5, 1];
/// The module (sysORTable).
pub(super) const VACM_MIB: &[u32] = &[1, 3, 6, 1, 6, 3, 16];

/// StorageType readOnly(5), RowStatus active(1), exact(1), included(1),
/// excluded(2).
const READ_ONLY: i64 = 5;
const ACTIVE: i64 = 1;
const EXACT: i64 = 1;
const INCLUDED: i64 = 1;
const EXCLUDED: i64 = 2;
/// SnmpSecurityModel: SNMPv1(1), SNMPv2c(2), USM(3).
const V1: u32 = 1;
const V2C: u32 = 2;
const USM: u32 = 3;

/// The security name (and group) of the configuration's `i`-th community.
pub fn community_name(i: usize) -> String {
    format!("community-{}", i + 1)
}

/// A length-prefixed string index (not IMPLIED).
fn string_index(s: &str) -> Vec<u32> {
    let mut v = vec![s.len() as u32];
    v.extend(s.bytes().map(u32::from));
    v
}

/// A length-prefixed OID index.
fn oid_index(o: &[u32]) -> Vec<u32> {
    let mut v = vec![o.len() as u32];
    v.extend_from_slice(o);
    v
}

fn level(l: SecurityLevel) -> u32 {
    match l {
        SecurityLevel::NoAuthNoPriv => 1,
        SecurityLevel::AuthNoPriv => 2,
        SecurityLevel::AuthPriv => 3,
    }
}

/// A view's family rows: its subtrees included, then excluded; `all` (no
/// include list) as iso(1).
fn families(name: &str, v: &View, out: &mut Vec<(Oid, ObjectSyntax)>) {
    let mut push = |subtree: &[u32], kind: i64| {
        let mut idx = string_index(name);
        idx.extend(oid_index(subtree));
        for (col, val) in [
            (3, octets(Vec::new())),
            (4, int(kind)),
            (5, int(READ_ONLY)),
            (6, int(ACTIVE)),
        ] {
            let mut oid = vec![col];
            oid.extend(&idx);
            out.push((oid, val));
        }
    };
    if v.included.is_empty() {
        push(&[1], INCLUDED);
    }
    for s in &v.included {
        push(s, INCLUDED);
    }
    for s in &v.excluded {
        push(s, EXCLUDED);
    }
}

/// An SNMPv3 user of the element (an `AccessUser` with keys for this
/// engine), as VACM shows it: in the group of its role (`viewer`,
/// `operator`, `admin`), which reads the view `all` and, but for viewers,
/// writes it, at the level its keys allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementUser {
    pub name: String,
    /// Its role's name, the group.
    pub group: &'static str,
    pub writes: bool,
    pub level: SecurityLevel,
}

/// The four tables' rows (relative to each entry, in OID order): the
/// configuration's, then the element's users (a name the configuration
/// has is left out: the configured user is the one served).
pub(super) fn tables(
    config: &SnmpConfig,
    element: &[ElementUser],
) -> [(Oid, Vec<(Oid, ObjectSyntax)>); 4] {
    let (mut groups, mut access, mut views) = (Vec::new(), Vec::new(), Vec::new());
    let context = vec![(vec![1, 0], octets(Vec::new()))];
    let mut member = |model: u32, name: &str, group: &str| {
        let mut idx = vec![model];
        idx.extend(string_index(name));
        for (col, val) in [
            (3, octets(group.as_bytes())),
            (4, int(READ_ONLY)),
            (5, int(ACTIVE)),
        ] {
            let mut oid = vec![col];
            oid.extend(&idx);
            groups.push((oid, val));
        }
    };
    for u in &config.users {
        member(USM, &u.name, &u.group);
    }
    let element: Vec<&ElementUser> = element
        .iter()
        .filter(|e| !config.users.iter().any(|u| u.name == e.name))
        .collect();
    for e in &element {
        member(USM, &e.name, e.group);
    }
    for i in 0..config.communities.len() {
        let name = community_name(i);
        member(V1, &name, &name);
        member(V2C, &name, &name);
    }
    let mut row = |group: &str, model: u32, lvl: u32, read: &str, write: &str| {
        let mut idx = string_index(group);
        idx.extend(string_index(""));
        idx.extend([model, lvl]);
        for (col, val) in [
            (4, int(EXACT)),
            (5, octets(read.as_bytes())),
            (6, octets(write.as_bytes())),
            (7, octets(read.as_bytes())),
            (8, int(READ_ONLY)),
            (9, int(ACTIVE)),
        ] {
            let mut oid = vec![col];
            oid.extend(&idx);
            access.push((oid, val));
        }
    };
    for g in &config.groups {
        let read = g.read_view.as_deref().unwrap_or("");
        let write = g.write_view.as_deref().unwrap_or("");
        let write_level = g.write_min_level.max(g.min_level);
        if write.is_empty() || write_level == g.min_level {
            row(&g.name, USM, level(g.min_level), read, write);
        } else {
            row(&g.name, USM, level(g.min_level), read, "");
            row(&g.name, USM, level(write_level), read, write);
        }
    }
    // A role group's row per level its users log in at.
    let mut role_rows: Vec<(&str, u32, bool)> = element
        .iter()
        .map(|e| (e.group, level(e.level), e.writes))
        .collect();
    role_rows.sort_unstable();
    role_rows.dedup();
    for (group, lvl, writes) in role_rows {
        if !config.groups.iter().any(|g| g.name == group) {
            row(group, USM, lvl, "all", if writes { "all" } else { "" });
        }
    }
    for (i, c) in config.communities.iter().enumerate() {
        let name = community_name(i);
        let write = if c.write { name.as_str() } else { "" };
        for model in [V1, V2C] {
            row(&name, model, 1, &name, write);
        }
        families(&name, &c.view, &mut views);
    }
    let mut named: Vec<(&str, View)> = config
        .views
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let used = |n: &str| {
        config
            .groups
            .iter()
            .any(|g| g.read_view.as_deref() == Some(n) || g.write_view.as_deref() == Some(n))
    };
    if !config.views.contains_key("all") && (used("all") || !element.is_empty()) {
        named.push(("all", View::all()));
    }
    for (n, v) in named {
        families(n, &v, &mut views);
    }
    for rows in [&mut groups, &mut access, &mut views] {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
    }
    [
        (CONTEXT_ENTRY.to_vec(), context),
        (GROUP_ENTRY.to_vec(), groups),
        (ACCESS_ENTRY.to_vec(), access),
        (VIEW_ENTRY.to_vec(), views),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthProtocol, Community, Group, UsmUser};

    #[test]
    fn users_communities_groups_and_views_are_rows() {
        let mut config = SnmpConfig::default();
        config.communities.push(Community {
            name: "s3cret".into(),
            view: View::all(),
            write: false,
        });
        config.users.push(UsmUser {
            name: "ops".into(),
            auth: Some((AuthProtocol::Sha256, "authpass1".into())),
            privacy: None,
            group: "operators".into(),
        });
        config.groups.push(Group {
            name: "operators".into(),
            read_view: Some("all".into()),
            write_view: Some("all".into()),
            min_level: SecurityLevel::AuthNoPriv,
            write_min_level: SecurityLevel::AuthPriv,
        });
        let [(_, ctx), (_, groups), (_, access), (_, views)] = tables(&config, &[]);
        assert_eq!(ctx.len(), 1);
        let has = |rows: &[(Oid, ObjectSyntax)], oid: Vec<u32>, v: ObjectSyntax| {
            assert!(
                rows.iter().any(|(o, x)| *o == oid && *x == v),
                "{oid:?} = {v:?} not in {rows:?}"
            );
        };
        let mut ops = vec![3, USM];
        ops.extend(string_index("ops"));
        has(&groups, ops, octets(b"operators".to_vec()));
        let mut c1 = vec![3, V2C];
        c1.extend(string_index("community-1"));
        has(&groups, c1, octets(b"community-1".to_vec()));
        // Reads from authNoPriv; writes only from authPriv.
        let access_row = |col: u32, lvl: u32| {
            let mut o = vec![col];
            o.extend(string_index("operators"));
            o.extend(string_index(""));
            o.extend([USM, lvl]);
            o
        };
        has(&access, access_row(6, 2), octets(Vec::new()));
        has(&access, access_row(6, 3), octets(b"all".to_vec()));
        has(&access, access_row(5, 2), octets(b"all".to_vec()));
        let mut all = vec![4];
        all.extend(string_index("all"));
        all.extend(oid_index(&[1]));
        has(&views, all, int(INCLUDED));
        assert!(!format!("{groups:?}{access:?}{views:?}").contains(&format!(
            "{:?}",
            b"s3cret".iter().map(|b| *b as u32).collect::<Vec<_>>()
        )));
        for rows in [&groups, &access, &views] {
            assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn element_users_are_in_their_roles_groups() {
        let mut config = SnmpConfig::default();
        config.users.push(UsmUser {
            name: "ops".into(),
            auth: Some((AuthProtocol::Sha256, "authpass1".into())),
            privacy: None,
            group: "operators".into(),
        });
        let element = [
            ElementUser {
                name: "nina".into(),
                group: "operator",
                writes: true,
                level: SecurityLevel::AuthPriv,
            },
            ElementUser {
                name: "vic".into(),
                group: "viewer",
                writes: false,
                level: SecurityLevel::AuthNoPriv,
            },
            // The configured user of that name is the one served.
            ElementUser {
                name: "ops".into(),
                group: "admin",
                writes: true,
                level: SecurityLevel::AuthPriv,
            },
        ];
        let [_, (_, groups), (_, access), (_, views)] = tables(&config, &element);
        let group_of = |name: &str| {
            let mut o = vec![3, USM];
            o.extend(string_index(name));
            groups.iter().find(|(x, _)| *x == o).map(|(_, v)| v.clone())
        };
        assert_eq!(group_of("nina"), Some(octets(b"operator".to_vec())));
        assert_eq!(group_of("vic"), Some(octets(b"viewer".to_vec())));
        assert_eq!(group_of("ops"), Some(octets(b"operators".to_vec())));
        let access_of = |group: &str, col: u32, lvl: u32| {
            let mut o = vec![col];
            o.extend(string_index(group));
            o.extend(string_index(""));
            o.extend([USM, lvl]);
            access.iter().find(|(x, _)| *x == o).map(|(_, v)| v.clone())
        };
        assert_eq!(access_of("operator", 6, 3), Some(octets(b"all".to_vec())));
        assert_eq!(access_of("viewer", 5, 2), Some(octets(b"all".to_vec())));
        assert_eq!(access_of("viewer", 6, 2), Some(octets(Vec::new())));
        assert_eq!(
            access_of("admin", 5, 3),
            None,
            "no admin of the element here"
        );
        let mut all = vec![4];
        all.extend(string_index("all"));
        all.extend(oid_index(&[1]));
        assert!(views.iter().any(|(o, v)| *o == all && *v == int(INCLUDED)));
        for rows in [&groups, &access, &views] {
            assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
