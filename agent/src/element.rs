//! From the config to the element: the managed objects with their
//! persistent names, and the HA core's components and service groups.
//!
//! Backend component and service-instance names are the persistent names
//! of their managed objects, so events map back with no table.

use std::path::Path;
use std::time::Duration;

use halyard_backend::cec::CecRules;
use halyard_backend::core::{ComponentSpec, CoreConfig, Kind};
use halyard_backend::crim::SgConfig;
use halyard_cluster_model::model::{
    AdminState, AvailabilityState, CheckpointMode, ClusterRole, ComponentKind, MembershipState,
    NodeKind, OperState, RecoveryAction, RedundancyModel, StandbyMode,
};
use halyard_cluster_model::{SchemaEnum, Value};

use crate::config::Config;

/// A FRU of a shelf: kind, name, slot, serial number, revision.
type Fru = (String, String, u32, String, String);

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
    pub conflict_policy: crate::copco::ConflictPolicy,
    pub objects: Vec<ObjectSpec>,
    pub groups: Vec<SgConfig>,
    pub components: Vec<ComponentSpec>,
    /// In a cluster: component -> the node that runs it (a node's own
    /// hardware component included). Shared hardware is not listed: the
    /// master hosts it.
    pub hosts: std::collections::BTreeMap<String, String>,
    /// Node name -> its managed object's name.
    pub node_objects: std::collections::BTreeMap<String, String>,
    /// Non-peer nodes' configuration files: repository key -> contents
    /// (written to the repository at start, read by the proxies).
    pub proxy_files: Vec<(String, String)>,
    /// How proxies reach each non-peer node (by its object's name).
    pub ssh_targets: Vec<(String, halyard_ssh_proxy::TargetConfig)>,
    /// Proxy component -> (its target node's object, the node hosting it).
    pub proxies: std::collections::BTreeMap<String, (String, String)>,
}

fn e<E: SchemaEnum>(v: E) -> Value {
    Value::Enum(v.value())
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn component_states() -> Vec<(&'static str, Value)> {
    vec![
        ("AdminState", e(AdminState::Unlocked)),
        ("OperState", e(OperState::Disabled)),
        ("AvailabilityState", e(AvailabilityState::OffLine)),
        ("Availability", Value::Real(1.0)),
    ]
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
        values: vec![
            ("Vendor", s(&c.element.vendor)),
            ("Model", s(&c.element.model)),
            ("SoftwareVersion", s(&c.element.software_version)),
            ("MemberNodes", Value::U32(c.nodes.len() as u32)),
        ],
    }];
    let mut groups = Vec::new();
    let mut components = Vec::new();
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
                            f.kind.get_ref().clone(),
                            f.name.get_ref().clone(),
                            f.slot,
                            f.serial.clone(),
                            f.revision.clone(),
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
            "fan".into(),
            format!("{k}"),
            (k % 50) as u32 + 1,
            format!("SC{k:06}"),
            "A".into(),
        ));
    }

    for (sname, position, frus) in &shelves {
        let shelf = format!("{root}/shelf={sname}");
        let mut v = component_states();
        v.extend([
            ("Position", Value::U32(*position)),
            ("PowerGood", Value::Bool(true)),
        ]);
        objects.push(ObjectSpec {
            class: "Shelf",
            name: shelf.clone(),
            values: v,
        });
        components.push(hw(&shelf, None));
        let mut by_role: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        by_role.entry("chassis").or_default().push(shelf.clone());
        for (kind, name, slot, serial, rev) in frus {
            let (class, rdn, role) = match kind.as_str() {
                "hsc" => ("HotSwapController", "hsc", "chassis"),
                "fan" => ("Fan", "fan", "cooling"),
                "psu" => ("PowerSupply", "psu", "power"),
                "board" => ("HostBoard", "board", "hosts"),
                _ => ("LineCard", "linecard", "chassis"),
            };
            let n = format!("{shelf}/{rdn}={name}");
            let mut v = component_states();
            v.extend([
                ("Slot", Value::U32(*slot)),
                ("SerialNumber", s(serial)),
                ("HardwareRevision", s(rev)),
                ("Present", Value::Bool(true)),
            ]);
            match class {
                "Fan" => v.push(("Speed", Value::U32(4200))),
                "PowerSupply" => v.extend([
                    ("OutputPower", Value::U32(300)),
                    ("InputVoltage", Value::U32(48_000)),
                ]),
                "HostBoard" => {
                    v.extend([("CpuLoad", Value::U32(10)), ("Temperature", Value::U32(41))])
                }
                _ => {}
            }
            objects.push(ObjectSpec {
                class,
                name: n.clone(),
                values: v,
            });
            components.push(hw(&n, Some(&shelf)));
            by_role.entry(role).or_default().push(n);
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
        let mut v = component_states();
        v.extend([
            (
                "Kind",
                e(if n.non_peer {
                    NodeKind::NonPeer
                } else {
                    NodeKind::Peer
                }),
            ),
            ("Address", s(&n.address)),
            ("Membership", e(MembershipState::Member)),
            (
                "Role",
                e(if *n.name.get_ref() == own_node {
                    ClusterRole::Master
                } else {
                    ClusterRole::Follower
                }),
            ),
            ("SoftwareVersion", s(&c.element.software_version)),
        ]);
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
        let model = match g.model.get_ref().as_str() {
            "2n" => RedundancyModel::TwoN,
            "n+m" => RedundancyModel::NPlusM,
            "n-way-active" => RedundancyModel::NWayActive,
            _ => RedundancyModel::NoRedundancy,
        };
        let standby = if g.standby.get_ref() == "warm" {
            StandbyMode::Warm
        } else {
            StandbyMode::Hot
        };
        let first = match g.first_recovery.get_ref().as_str() {
            "soft-reset" => RecoveryAction::SoftReset,
            "hot-restart" => RecoveryAction::HotRestart,
            _ => RecoveryAction::FailOver,
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
        objects.push(ObjectSpec {
            class: "ServiceGroup",
            name: g.name.clone(),
            values: vec![
                ("AdminState", e(AdminState::Unlocked)),
                ("RedundancyModel", e(g.model)),
                ("StandbyMode", e(g.standby)),
                (
                    "PreferredPrimaries",
                    Value::U32(match g.model {
                        RedundancyModel::TwoN | RedundancyModel::NoRedundancy => 1,
                        RedundancyModel::NPlusM => g.sis.len() as u32,
                        RedundancyModel::NWayActive => g.members.len() as u32,
                    }),
                ),
                ("PreferredSecondaries", Value::U32(g.preferred_secondaries)),
                ("PreferredSpares", Value::U32(0)),
                ("MaxRestarts", Value::U32(g.max_restarts)),
                ("ProbationPeriod", Value::U32(g.probation.as_secs() as u32)),
                ("FirstRecovery", e(g.first_recovery)),
            ],
        });
        for si in &g.sis {
            objects.push(ObjectSpec {
                class: "ServiceInstance",
                name: si.clone(),
                values: vec![
                    ("AdminState", e(AdminState::Unlocked)),
                    ("Availability", Value::Real(1.0)),
                ],
            });
        }
    }

    for x in &c.components {
        let node = &node_names[x.node.get_ref()];
        let name = format!("{node}/comp={}", x.name.get_ref());
        let mode = match x.checkpoint.get_ref().as_str() {
            "none" => CheckpointMode::NoCheckpoints,
            "asynchronous" => CheckpointMode::Asynchronous,
            _ => CheckpointMode::Synchronous,
        };
        let ha = x.kind.get_ref() == "ha-aware";
        let proxy = x.kind.get_ref() == "proxy";
        let mut v = component_states();
        v.extend([
            (
                "Kind",
                e(if ha {
                    ComponentKind::HaAware
                } else if proxy {
                    ComponentKind::Proxy
                } else {
                    ComponentKind::Process
                }),
            ),
            (
                "ServiceGroup",
                s(&format!("{root}/sg={}", x.group.get_ref())),
            ),
            ("CheckpointMode", e(mode)),
            ("AuditPeriod", Value::U32(x.audit_period_ms.unwrap_or(0))),
        ]);
        objects.push(ObjectSpec {
            class: "SoftwareComponent",
            name: name.clone(),
            values: v,
        });
        let mut command = x.command.get_ref().clone();
        if command.first().map(String::as_str) == Some("@counterd") {
            command = vec![self_exe.display().to_string(), "counterd".into()];
        }
        let mut env: Vec<(String, String)> =
            x.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push((
            "COUNTERD_QUERY".into(),
            run_dir
                .join(format!("{}.q", x.name.get_ref()))
                .display()
                .to_string(),
        ));
        let kind = if ha {
            Kind::HaAware { command, env }
        } else if proxy {
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
            Kind::Process {
                start: command,
                stop: x.stop.clone(),
                health: x.health.clone(),
                role: x.role.clone(),
                env,
            }
        };
        // A proxy's audit is a remote call: by default it may take as long
        // as one (timeout_ms), not only one period.
        let default_deadline = |p: u32| if proxy { p.max(x.timeout_ms) } else { p };
        let audit = x.audit_period_ms.map(|p| {
            (
                Duration::from_millis(u64::from(p)),
                Duration::from_millis(u64::from(
                    x.audit_deadline_ms.unwrap_or(default_deadline(p)),
                )),
            )
        });
        hosts.insert(name.clone(), x.node.get_ref().clone());
        components.push(ComponentSpec {
            name,
            parent: Some(node.clone()),
            kind,
            checkpoint: mode,
            audit,
        });
    }
    let conflict_policy = match c
        .agent
        .conflict_policy
        .as_ref()
        .map(|p| p.get_ref().as_str())
    {
        Some("queue") => crate::copco::ConflictPolicy::Queue,
        _ => crate::copco::ConflictPolicy::Reject,
    };
    Element {
        root,
        conflict_policy,
        objects,
        groups,
        components,
        hosts,
        node_objects: node_names,
        proxy_files,
        ssh_targets,
        proxies,
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
        cec: CecRules::default(),
        checkpoint_deadline: Duration::from_secs(1),
        watchdog_timeout: Duration::from_secs(10),
        watchdog_device: watchdog,
        stop_grace: Duration::from_secs(3),
        remote: (!el.ssh_targets.is_empty()).then(|| {
            std::sync::Arc::new(crate::proxy::SshRemote::new(el.ssh_targets.clone()))
                as std::sync::Arc<dyn halyard_backend::remote::RemoteShell>
        }),
    }
}
