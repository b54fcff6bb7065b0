//! From the config to the element: the managed objects with their
//! persistent names, and the HA core's components and service groups.
//!
//! Backend component and service-instance names are the persistent names
//! of their managed objects, so events map back with no table.
//!
//! The units in the shelves' slots, configured or hot-swapped in, are
//! built in `fru.rs`.

mod fru;

use std::path::Path;
use std::time::Duration;

use halyard_backend::cec::CecRules;
use halyard_backend::core::{ComponentSpec, CoreConfig, Kind};
use halyard_backend::crim::{GroupMember, SgConfig};
use halyard_cluster_model::Value;
use halyard_cluster_model::model::{
    AdminState, AvailabilityState, CheckpointMode, ClusterRole, ComponentKind, ComponentPatch,
    MembershipState, NetworkElementPatch, NodeKind, NodePatch, OperState, RecoveryAction,
    RedundancyModel, ServiceGroupPatch, ServiceInstancePatch, ShelfPatch, SoftwareComponentPatch,
    StandbyMode,
};

pub use fru::{Unit, fru_class, fru_parts};

use crate::config::{self, Config, FruClass};

/// A FRU of a shelf: kind, name, slot, serial number, revision, FRU type,
/// model name.
type Fru = (
    FruClass,
    String,
    u32,
    String,
    String,
    Option<String>,
    String,
);

/// One managed object to create: class, persistent name, attributes.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub class: &'static str,
    pub name: String,
    pub values: Vec<(&'static str, Value)>,
}

#[derive(Debug, Clone)]
pub struct Element {
    pub root: String,
    /// What COpCo does with conflicting commands.
    pub conflict_policy: crate::config::ConflictPolicy,
    pub objects: Vec<ObjectSpec>,
    pub groups: Vec<SgConfig>,
    pub components: Vec<ComponentSpec>,
    /// In a cluster: component -> the node that runs it (a node's own
    /// hardware component included). Shared hardware is not listed: the
    /// master hosts it.
    pub hosts: std::collections::BTreeMap<String, String>,
    /// Node name -> its managed object's name.
    pub node_objects: std::collections::BTreeMap<String, String>,
    /// Components configured administratively locked (not started).
    pub locked: Vec<String>,
    /// The configured units: persistent name -> (shelf, slot).
    pub static_frus: std::collections::BTreeMap<String, (String, u32)>,
    /// Non-peer nodes' configuration files: repository key -> contents
    /// (written to the repository at start, read by the proxies).
    pub proxy_files: Vec<(String, String)>,
    /// How proxies reach each non-peer node (by its object's name).
    pub ssh_targets: Vec<(String, halyard_ssh_proxy::TargetConfig)>,
    /// Proxy component -> (its target node's object, the node hosting it).
    pub proxies: std::collections::BTreeMap<String, (String, String)>,
    /// How far ahead a planned 2N switch-over is scheduled.
    pub switchover_lead: Duration,
}

/// The states every component class starts with (for objects of several
/// classes).
fn component_states(admin: AdminState) -> Vec<(&'static str, Value)> {
    ComponentPatch::new()
        .admin_state(admin)
        .oper_state(OperState::Disabled)
        .availability_state(AvailabilityState::OffLine)
        .availability(1.0)
        .values()
        .to_vec()
}

/// A group of hardware components: one service instance per member, so
/// every healthy unit carries one (load sharing, or one each).
fn hw_group(name: String, model: RedundancyModel, members: Vec<String>) -> SgConfig {
    let sis = (1..=members.len())
        .map(|i| format!("{name}/si={i}"))
        .collect();
    SgConfig {
        name,
        model,
        standby: StandbyMode::Warm,
        preferred_secondaries: 0,
        first_recovery: RecoveryAction::SoftReset,
        max_restarts: 3,
        probation: Duration::from_secs(60),
        members,
        sis,
    }
}

/// Builds the element. `self_exe` runs `@counterd`; `run_dir` holds sockets.
pub fn build(c: &Config, self_exe: &Path, run_dir: &Path, demo_scale: usize) -> Element {
    let root = format!("ne={}", c.element.name.get_ref());
    let mut objects = vec![ObjectSpec {
        class: "NetworkElement",
        name: root.clone(),
        values: NetworkElementPatch::new()
            .vendor(c.element.vendor.as_str())
            .model(c.element.model.as_str())
            .software_version(c.element.software_version.as_str())
            .member_nodes(c.nodes.len() as u32)
            .watchdog_expirations(0)
            .model_update_errors(0)
            .task_panics(0)
            .access_denials(0)
            .values()
            .to_vec(),
    }];
    let mut groups = Vec::new();
    let mut components = Vec::new();
    let mut locked = Vec::new();
    let mut static_frus = std::collections::BTreeMap::new();
    // Components of typed units joining configured groups (made below).
    let mut pending_joins: Vec<GroupMember> = Vec::new();
    let ctx = FruCtx {
        root: &root,
        self_exe,
        run_dir,
    };
    let hw = |name: &str, parent: Option<&str>| ComponentSpec {
        name: name.to_string(),
        parent: parent.map(str::to_string),
        kind: Kind::Hardware,
        checkpoint: CheckpointMode::NoCheckpoints,
        audit: None,
    };

    let mut shelves: Vec<(String, u32, Vec<Fru>)> = c
        .shelves
        .iter()
        .map(|sh| {
            (
                sh.name.get_ref().clone(),
                sh.position,
                sh.frus
                    .iter()
                    .map(|f| {
                        (
                            f.kind,
                            f.name.get_ref().clone(),
                            *f.slot.get_ref(),
                            f.serial.clone(),
                            f.revision.clone(),
                            f.fru_type.as_ref().map(|t| t.get_ref().clone()),
                            f.model.clone(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    // --demo-scale: extra shelves of simulated fans, 50 per shelf.
    for k in 0..demo_scale {
        let shelf = format!("scale-{}", k / 50);
        if shelves.last().is_none_or(|s| s.0 != shelf) {
            shelves.push((shelf.clone(), 100 + (k / 50) as u32, Vec::new()));
        }
        let last = shelves.last_mut().expect("shelf");
        last.2.push((
            FruClass::Fan,
            format!("{k}"),
            (k % 50) as u32 + 1,
            format!("SC{k:06}"),
            "A".into(),
            None,
            String::new(),
        ));
    }

    for (sname, position, frus) in &shelves {
        let shelf = format!("{root}/shelf={sname}");
        let mut v = component_states(AdminState::Unlocked);
        let model = c
            .shelves
            .iter()
            .find(|s| s.name.get_ref() == sname)
            .map_or("", |s| s.model.as_str());
        v.extend_from_slice(
            ShelfPatch::new()
                .position(*position)
                .power_good(true)
                .model_name(model)
                .values(),
        );
        objects.push(ObjectSpec {
            class: "Shelf",
            name: shelf.clone(),
            values: v,
        });
        components.push(hw(&shelf, None));
        let mut by_role: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        by_role.entry("chassis").or_default().push(shelf.clone());
        for (kind, name, slot, serial, rev, ty, model) in frus {
            let ty = ty
                .as_ref()
                .and_then(|t| c.fru_types.iter().find(|x| x.name.get_ref() == t));
            let unit = Unit {
                shelf: sname,
                kind: *kind,
                name,
                slot: *slot,
                serial,
                revision: rev,
                model,
            };
            let parts = fru_parts(&ctx, &unit, ty, false, false);
            let (_, _, role) = fru_class(*kind);
            static_frus.insert(parts.unit.clone(), (sname.clone(), *slot));
            by_role.entry(role).or_default().push(parts.unit.clone());
            objects.extend(parts.objects);
            components.extend(parts.components);
            pending_joins.extend(parts.joins);
            locked.extend(parts.locked);
            groups.extend(parts.group);
        }
        for (role, members) in by_role {
            let model = if role == "chassis" {
                RedundancyModel::NoRedundancy
            } else {
                RedundancyModel::NWayActive
            };
            groups.push(hw_group(
                format!("{root}/sg=hw-{sname}-{role}"),
                model,
                members,
            ));
        }
    }

    let own_node = c.agent.node.clone().unwrap_or_else(|| {
        c.nodes
            .first()
            .map(|n| n.name.get_ref().clone())
            .unwrap_or_default()
    });
    let mut node_names = std::collections::BTreeMap::new();
    let mut hosts = std::collections::BTreeMap::new();
    let mut ssh_targets = Vec::new();
    let mut proxy_files = Vec::new();
    let mut proxies = std::collections::BTreeMap::new();
    for n in &c.nodes {
        let parent = n
            .shelf
            .as_ref()
            .map_or(root.clone(), |sh| format!("{root}/shelf={}", sh.get_ref()));
        let name = format!("{parent}/node={}", n.name.get_ref());
        let mut v = component_states(AdminState::Unlocked);
        v.extend_from_slice(
            NodePatch::new()
                .kind(if n.non_peer {
                    NodeKind::NonPeer
                } else {
                    NodeKind::Peer
                })
                .address(n.address.as_str())
                .membership(MembershipState::Member)
                .role(if *n.name.get_ref() == own_node {
                    ClusterRole::Master
                } else {
                    ClusterRole::Follower
                })
                .software_version(c.element.software_version.as_str())
                .values(),
        );
        objects.push(ObjectSpec {
            class: "Node",
            name: name.clone(),
            values: v,
        });
        let parent_comp = n
            .shelf
            .as_ref()
            .map(|sh| format!("{root}/shelf={}", sh.get_ref()));
        components.push(hw(&name, parent_comp.as_deref()));
        // A non-peer node runs no halyard: the master hosts its object.
        if !n.non_peer {
            hosts.insert(name.clone(), n.name.get_ref().clone());
        }
        if let Some(ssh) = &n.ssh {
            let ssh = ssh.get_ref();
            ssh_targets.push((
                name.clone(),
                halyard_ssh_proxy::TargetConfig {
                    host: n.address.clone(),
                    port: ssh.port,
                    user: ssh.user.clone(),
                    key: ssh.key.get_ref().clone(),
                    host_key: ssh.host_key.as_ref().map(|h| h.get_ref().clone()),
                },
            ));
        }
        for f in &n.files {
            proxy_files.push((file_key(n.name.get_ref(), f.path.get_ref()), f.text()));
        }
        node_names.insert(n.name.get_ref().clone(), name);
    }
    if !node_names.is_empty() {
        let members: Vec<String> = node_names.values().cloned().collect();
        groups.push(hw_group(
            format!("{root}/sg=hw-nodes"),
            RedundancyModel::NWayActive,
            members,
        ));
    }

    for g in &c.groups {
        let name = format!("{root}/sg={}", g.name.get_ref());
        let model = match g.model {
            config::RedundancyModel::TwoN => RedundancyModel::TwoN,
            config::RedundancyModel::NPlusM => RedundancyModel::NPlusM,
            config::RedundancyModel::NWayActive => RedundancyModel::NWayActive,
            config::RedundancyModel::NoRedundancy => RedundancyModel::NoRedundancy,
        };
        let standby = match g.standby {
            config::Standby::Hot => StandbyMode::Hot,
            config::Standby::Warm => StandbyMode::Warm,
        };
        let first = match g.first_recovery {
            config::Recovery::SoftReset => RecoveryAction::SoftReset,
            config::Recovery::HotRestart => RecoveryAction::HotRestart,
            config::Recovery::FailOver => RecoveryAction::FailOver,
        };
        let secondaries = if model == RedundancyModel::TwoN {
            1
        } else {
            g.secondaries
        };
        let members: Vec<String> = c
            .components
            .iter()
            .filter(|x| x.group.get_ref() == g.name.get_ref())
            .map(|x| format!("{}/comp={}", node_names[x.node.get_ref()], x.name.get_ref()))
            .chain(
                pending_joins
                    .iter()
                    .filter(|j| j.group == name)
                    .map(|j| j.component.clone()),
            )
            .collect();
        let sis: Vec<String> = g
            .service_instances
            .iter()
            .map(|si| format!("{name}/si={}", si.get_ref()))
            .collect();
        groups.push(SgConfig {
            name: name.clone(),
            model,
            standby,
            preferred_secondaries: secondaries,
            first_recovery: first,
            max_restarts: g.max_restarts,
            probation: Duration::from_secs(u64::from(g.probation_seconds)),
            members,
            sis,
        });
    }
    // Every group (hardware ones too) and its service instances are objects.
    for g in &groups {
        objects.extend(group_objects(g));
    }

    for x in &c.components {
        let node = &node_names[x.node.get_ref()];
        let name = format!("{node}/comp={}", x.name.get_ref());
        let mode = checkpoint_mode(x.checkpoint);
        let admin = admin_state(x.admin);
        if admin == AdminState::Locked {
            locked.push(name.clone());
        }
        objects.push(sw_object(
            &name,
            *x.kind.get_ref(),
            &format!("{root}/sg={}", x.group.get_ref()),
            mode,
            x.audit_period_ms,
            admin,
        ));
        let proxy = *x.kind.get_ref() == config::ComponentKind::Proxy;
        let kind = if proxy {
            let target = x
                .target
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default();
            let target_object = node_names.get(&target).cloned().unwrap_or_default();
            proxies.insert(
                name.clone(),
                (target_object.clone(), x.node.get_ref().clone()),
            );
            let line = |v: &Vec<String>| halyard_ssh_proxy::command_line(v);
            Kind::Proxy {
                target: target_object,
                start: line(x.command.get_ref()),
                stop: x.stop.as_ref().map(line),
                health: x.health.as_ref().map(line),
                stats: x.stats.as_ref().map(line),
                config: c
                    .nodes
                    .iter()
                    .filter(|n| *n.name.get_ref() == target)
                    .flat_map(|n| &n.files)
                    .map(|f| {
                        (
                            f.path.get_ref().clone(),
                            file_key(&target, f.path.get_ref()),
                        )
                    })
                    .collect(),
                stats_period: Duration::from_millis(u64::from(x.stats_period_ms)),
                timeout: Duration::from_millis(u64::from(x.timeout_ms)),
            }
        } else {
            component_kind(
                &ctx,
                ComponentRun {
                    ha_aware: *x.kind.get_ref() == config::ComponentKind::HaAware,
                    command: x.command.get_ref(),
                    stop: &x.stop,
                    health: &x.health,
                    role: &x.role,
                    env: &x.env,
                    timed: x.timed_switchover,
                },
                x.name.get_ref(),
            )
        };
        // A proxy's audit is a remote call: by default it may take as long
        // as one (timeout_ms), not only one period.
        let audit = if proxy {
            audit_of(
                x.audit_period_ms,
                x.audit_deadline_ms
                    .or(x.audit_period_ms.map(|p| p.max(x.timeout_ms))),
            )
        } else {
            audit_of(x.audit_period_ms, x.audit_deadline_ms)
        };
        hosts.insert(name.clone(), x.node.get_ref().clone());
        components.push(ComponentSpec {
            name,
            parent: Some(node.clone()),
            kind,
            checkpoint: mode,
            audit,
        });
    }
    Element {
        root,
        conflict_policy: c.agent.conflict_policy,
        objects,
        groups,
        components,
        hosts,
        node_objects: node_names,
        locked,
        static_frus,
        proxy_files,
        ssh_targets,
        proxies,
        switchover_lead: Duration::from_millis(u64::from(*c.cluster.switchover_lead_ms.get_ref())),
    }
}

fn admin_state(admin: config::Admin) -> AdminState {
    match admin {
        config::Admin::Locked => AdminState::Locked,
        config::Admin::Unlocked => AdminState::Unlocked,
    }
}

fn checkpoint_mode(mode: config::Checkpoint) -> CheckpointMode {
    match mode {
        config::Checkpoint::None => CheckpointMode::NoCheckpoints,
        config::Checkpoint::Synchronous => CheckpointMode::Synchronous,
        config::Checkpoint::Asynchronous => CheckpointMode::Asynchronous,
    }
}

fn audit_of(period: Option<u32>, deadline: Option<u32>) -> Option<(Duration, Duration)> {
    period.map(|p| {
        (
            Duration::from_millis(u64::from(p)),
            Duration::from_millis(u64::from(deadline.unwrap_or(p))),
        )
    })
}

/// A software component's managed object.
fn sw_object(
    name: &str,
    kind: config::ComponentKind,
    group: &str,
    mode: CheckpointMode,
    audit_ms: Option<u32>,
    admin: AdminState,
) -> ObjectSpec {
    let mut v = component_states(admin);
    v.extend_from_slice(
        SoftwareComponentPatch::new()
            .kind(match kind {
                config::ComponentKind::HaAware => ComponentKind::HaAware,
                config::ComponentKind::Process => ComponentKind::Process,
                config::ComponentKind::Proxy => ComponentKind::Proxy,
            })
            .service_group(group)
            .checkpoint_mode(mode)
            .audit_period(audit_ms.unwrap_or(0))
            .values(),
    );
    ObjectSpec {
        class: "SoftwareComponent",
        name: name.to_string(),
        values: v,
    }
}

/// A service group's object and its service instances'.
pub fn group_objects(g: &SgConfig) -> Vec<ObjectSpec> {
    let mut out = vec![ObjectSpec {
        class: "ServiceGroup",
        name: g.name.clone(),
        values: ServiceGroupPatch::new()
            .admin_state(AdminState::Unlocked)
            .redundancy_model(g.model)
            .standby_mode(g.standby)
            .preferred_primaries(match g.model {
                RedundancyModel::TwoN | RedundancyModel::NoRedundancy => 1,
                RedundancyModel::NPlusM => g.sis.len() as u32,
                RedundancyModel::NWayActive => g.members.len() as u32,
            })
            .preferred_secondaries(g.preferred_secondaries)
            .preferred_spares(0)
            .max_restarts(g.max_restarts)
            .probation_period(g.probation.as_secs() as u32)
            .first_recovery(g.first_recovery)
            .values()
            .to_vec(),
    }];
    for si in &g.sis {
        out.push(ObjectSpec {
            class: "ServiceInstance",
            name: si.clone(),
            values: ServiceInstancePatch::new()
                .admin_state(AdminState::Unlocked)
                .availability(1.0)
                .values()
                .to_vec(),
        });
    }
    out
}

/// Where components are built: the element's root, the binary that runs
/// `@counterd`, the directory of sockets and query files.
pub struct FruCtx<'a> {
    pub root: &'a str,
    pub self_exe: &'a Path,
    pub run_dir: &'a Path,
}

/// How a configured component runs.
struct ComponentRun<'a> {
    /// An HA-aware component; a process otherwise.
    ha_aware: bool,
    command: &'a [String],
    stop: &'a Option<Vec<String>>,
    health: &'a Option<Vec<String>>,
    role: &'a Option<Vec<String>>,
    env: &'a std::collections::BTreeMap<String, String>,
    timed: Option<bool>,
}

/// The factory's view of a component; `query` names its counterd query file.
fn component_kind(ctx: &FruCtx<'_>, r: ComponentRun<'_>, query: &str) -> Kind {
    let mut command = r.command.to_vec();
    let counterd = command.first().map(String::as_str) == Some("@counterd");
    if counterd {
        command = vec![ctx.self_exe.display().to_string(), "counterd".into()];
    }
    let mut env: Vec<(String, String)> =
        r.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.push((
        "COUNTERD_QUERY".into(),
        ctx.run_dir.join(format!("{query}.q")).display().to_string(),
    ));
    if r.ha_aware {
        Kind::HaAware {
            command,
            env,
            timed: r.timed.unwrap_or(counterd),
        }
    } else {
        Kind::Process {
            start: command,
            stop: r.stop.clone(),
            health: r.health.clone(),
            role: r.role.clone(),
            env,
        }
    }
}

/// The repository key of a non-peer node's configuration file.
fn file_key(node: &str, path: &str) -> String {
    format!("/nonpeer/{node}/file{path}")
}

/// Writes the non-peer nodes' configuration files into the repository,
/// where the proxies read them at every take-over.
pub async fn seed_repository(
    el: &Element,
    repo: &halyard_backend::repo::Repository,
) -> Result<(), halyard_backend::repo::RepoError> {
    if el.proxy_files.is_empty() {
        return Ok(());
    }
    repo.apply(
        el.proxy_files
            .iter()
            .map(|(k, v)| (k.clone(), Some(serde_json::Value::String(v.clone()))))
            .collect(),
    )
    .await?;
    Ok(())
}

/// The HA core configuration for an element.
pub fn core_config(
    el: &Element,
    node: &str,
    run_dir: &Path,
    watchdog: Option<std::path::PathBuf>,
) -> CoreConfig {
    CoreConfig {
        node: node.to_string(),
        socket: run_dir.join("ha.sock"),
        groups: el.groups.clone(),
        components: el.components.clone(),
        locked: el.locked.clone(),
        cec: CecRules::default(),
        checkpoint_deadline: Duration::from_secs(1),
        watchdog_timeout: Duration::from_secs(10),
        watchdog_device: watchdog,
        stop_grace: Duration::from_secs(3),
        switchover_lead: el.switchover_lead,
        remote: (!el.ssh_targets.is_empty()).then(|| {
            std::sync::Arc::new(crate::proxy::SshRemote::new(el.ssh_targets.clone()))
                as std::sync::Arc<dyn halyard_backend::remote::RemoteShell>
        }),
    }
}
