//! `halyard`: the high-availability network-element management agent.
//!
//! Without `--config` it runs the built-in demo element
//! (`examples/demo.toml`). `halyard check --config FILE` validates a
//! config file; `halyard counterd` is the example HA-aware daemon the demo
//! supervises.

mod boot;
mod cluster;
mod clusterlog;
mod config;
mod copco;
mod element;
mod face_metrics;
mod faces;
mod hotswap;
mod inventory;
mod loadserver;
mod model;
mod operations;
mod proxy;
mod replication;
mod stats;
mod tls;
mod upgrade;
mod usercli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use halyard_backend::core::HaCore;
use halyard_backend::repo::Repository;

#[derive(Debug, Parser)]
#[command(
    name = "halyard",
    version,
    about = "High-availability network-element management agent"
)]
struct Cli {
    /// Config file (TOML); without it, the built-in demo element runs.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where state is kept (SQLite repository, host keys, sockets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This node's name.
    #[arg(long)]
    node: Option<String>,
    /// SNMP listen address (overrides the config).
    #[arg(long)]
    snmp_listen: Option<SocketAddr>,
    /// NETCONF (SSH) listen address (overrides the config).
    #[arg(long)]
    netconf_listen: Option<SocketAddr>,
    /// HTTP listen address (overrides the config).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Adds N simulated components to the element (for benchmarks).
    #[arg(long, default_value_t = 0)]
    demo_scale: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates a config file and reports every error with file:line:col.
    Check,
    /// Runs the example HA-aware daemon (the demo's components).
    Counterd,
    /// Reads a password on standard input (its first line) and prints its
    /// Argon2id hash, which a config file's `password` takes in place of
    /// the plain text (HTTP and NETCONF users).
    HashPassword,
    /// Boot supervisor: runs this node from its release store (the config's
    /// `[release]` section), with the fail-safe watchdog and fall-back.
    Boot,
    /// Writes DIR/manifest.json for a release (its version, and every file
    /// with its SHA-256 and size): what a load server holds per version.
    /// Manages the users the element keeps (added at run time, replicated
    /// to every node) through a running agent's HTTP API, as an
    /// administrator: list, add, passwd, role, del, key, del-key.
    User(usercli::UserArgs),
    Pack {
        /// Release version.
        #[arg(long)]
        release: String,
        /// The release directory.
        dir: PathBuf,
    },
}

/// Replicates this node's SNMP engine ID, retrying until the cluster
/// takes it (a node may start before there is a quorum) or the agent stops.
async fn publish_snmp_engine(
    model: Arc<model::AgentModel>,
    node: String,
    id: Vec<u8>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let change = replication::Replicated::SnmpEngine(replication::SnmpEngine {
        node,
        engine_id: halyard_snmp::engine::to_hex(&id),
    });
    loop {
        match change.replicate(&model.core).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "SNMP engine ID not published yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

fn load(cli: &Cli) -> Result<(String, config::Config), config::ConfigErrors> {
    match &cli.config {
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                config::ConfigErrors(vec![config::ConfigError {
                    file: file.clone(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read: {e}"),
                }])
            })?;
            config::parse(&file, &text).map(|c| (file, c))
        }
        None => config::parse("examples/demo.toml (built in)", config::DEMO)
            .map(|c| ("built-in demo".into(), c)),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Counterd) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            return rt.block_on(async {
                halyard_backend::counterd::run()
                    .await
                    .map_err(|e| anyhow::anyhow!("counterd: {e}"))
            });
        }
        Some(Command::HashPassword) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password")?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on standard input");
            }
            println!(
                "{}",
                halyard_cluster_model::secret::hash_password(password)?
            );
            return Ok(());
        }
        Some(Command::Check) => {
            if cli.config.is_none() {
                bail!("check needs --config FILE");
            }
            return match load(&cli) {
                Ok((file, _)) => {
                    println!("{file}: ok");
                    Ok(())
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    std::process::exit(2);
                }
            };
        }
        Some(Command::Pack { release, dir }) => {
            let m = halyard_backend::release::manifest_of(dir, release)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            let path = dir.join(halyard_backend::release::MANIFEST);
            std::fs::write(&path, serde_json::to_vec_pretty(&m)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "{}: release {release}, {} files",
                path.display(),
                m.files.len()
            );
            return Ok(());
        }
        Some(Command::User(args)) => {
            let data_dir = cli
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./halyard-data"));
            return usercli::run(args, &data_dir);
        }
        Some(Command::Boot) | None => {}
    }
    tune_allocator();
    // A config error is reported before anything starts.
    let (source, cfg) = match load(&cli) {
        Ok(x) => x,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            std::process::exit(2);
        }
    };
    // The node's own log (stderr), and its warnings to the cluster log.
    let (capture, log_rx) = clusterlog::capture();
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .with(capture)
            .init();
    }
    if matches!(cli.command, Some(Command::Boot)) {
        let Some(release) = cfg.release.clone() else {
            bail!("{source}: `halyard boot` needs a [release] section");
        };
        let (node, data_dir) = node_dirs(&cli, &cfg)?;
        // The node runs with the same arguments, minus `boot`.
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "boot").collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let span = tracing::info_span!("boot", node = %node);
        return rt.block_on(tracing::Instrument::instrument(
            boot::run(&release, &data_dir, args),
            span,
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(run(cli, source, cfg, log_rx));
    // Tasks that outlive the ordered shutdown (openraft's core, blocking
    // SQLite work) must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match r {
        // Stopped to boot onto another release: the supervisor restarts it.
        Ok(Exit::Reboot) => std::process::exit(boot::REBOOT),
        // Under `halyard boot` the supervisor starts the node again; alone,
        // the process replaces itself (same pid, so a service manager sees
        // no exit), its sockets closed on exec.
        Ok(Exit::Restart) if std::env::var_os("HALYARD_RELEASE").is_some() => {
            std::process::exit(boot::REBOOT)
        }
        Ok(Exit::Restart) => {
            use std::os::unix::process::CommandExt;
            let exe = std::env::current_exe().context("cannot find the agent's executable")?;
            let e = std::process::Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .exec();
            Err(anyhow::Error::new(e).context(format!("cannot restart {}", exe.display())))
        }
        Ok(Exit::Stopped) => Ok(()),
        Err(e) => Err(e),
    }
}

/// glibc's allocator settings for the agent, read once at process start
/// (so the agent starts itself again with them, same pid, unless the
/// environment already has some): two arenas instead of eight per core,
/// and blocks of 1 MiB and more always mapped, so the few large, short
/// buffers (a scrape's exposition, a full `<get>`) go back to the system
/// instead of staying in an arena. At 10,000 components this keeps the
/// resident set about 50 MB lower (BENCHMARKS.md). The element's software
/// does not inherit them (`halyard_backend::spawn`).
fn tune_allocator() {
    const TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576";
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let e = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", TUNABLES)
        // The components' processes get the environment without them.
        .env(halyard_backend::spawn::ALLOCATOR_MARK, "1")
        .exec();
    // Not replaced: go on with the defaults.
    eprintln!("halyard: cannot restart with the allocator settings ({e}); going on without them");
}

/// Why the node stopped.
#[derive(Debug)]
enum Exit {
    Stopped,
    Reboot,
    /// system-restart: start again with the same arguments.
    Restart,
}

/// The node's name and data directory, from the flags and the config (in
/// a cluster the nodes share one config: a node's own section gives them).
fn node_dirs(cli: &Cli, cfg: &config::Config) -> anyhow::Result<(String, PathBuf)> {
    let node = cli
        .node
        .clone()
        .or(cfg.agent.node.clone())
        .unwrap_or_else(|| "a".into());
    let clustered = cfg.clustered();
    let own = cfg.nodes.iter().find(|n| *n.name.get_ref() == node);
    if clustered && own.is_none() {
        bail!("node {node} is not in the config's [[node]] list");
    }
    let base = cfg
        .agent
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./halyard-data"));
    let data_dir = cli
        .data_dir
        .clone()
        .or(own.and_then(|n| n.data_dir.clone()))
        .unwrap_or_else(|| if clustered { base.join(&node) } else { base });
    Ok((node, data_dir))
}

async fn run(
    cli: Cli,
    source: String,
    mut cfg: config::Config,
    log_rx: tokio::sync::mpsc::Receiver<replication::Rec>,
) -> anyhow::Result<Exit> {
    let (node, data_dir) = node_dirs(&cli, &cfg)?;
    let own = cfg
        .nodes
        .iter()
        .find(|n| *n.name.get_ref() == node)
        .cloned();
    if let Some(own) = &own {
        if let Some(l) = &own.snmp {
            cfg.snmp.listen = l.clone();
        }
        if let Some(l) = &own.netconf {
            cfg.netconf.listen = l.clone();
        }
        if let Some(l) = &own.http {
            cfg.http.listen = l.clone();
        }
    }
    let run_dir = data_dir.join("run");
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let span = tracing::info_span!("agent", node = %node);
    tracing::Instrument::instrument(
        run_node(cli, source, cfg, node, data_dir, run_dir, log_rx),
        span,
    )
    .await
}

/// Runs the node; everything it logs carries the node's name.
async fn run_node(
    cli: Cli,
    source: String,
    cfg: config::Config,
    node: String,
    data_dir: PathBuf,
    run_dir: PathBuf,
    log_rx: tokio::sync::mpsc::Receiver<replication::Rec>,
) -> anyhow::Result<Exit> {
    let clustered = cfg.clustered();
    tracing::info!(config = %source, data_dir = %data_dir.display(), "starting");

    let exe = std::env::current_exe().context("cannot find the halyard executable")?;
    let el = element::build(&cfg, &exe, &run_dir, cli.demo_scale);
    let repo = Repository::open(&data_dir.join("halyard.db"))
        .await
        .context("cannot open the repository")?;
    element::seed_repository(&el, &repo)
        .await
        .context("cannot store the non-peer nodes' files in the repository")?;
    let core_config = element::core_config(&el, &node, &run_dir, cfg.agent.watchdog_device.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut cluster_tasks = Vec::new();
    let mut cluster_node = None;
    let (core, running) = if clustered {
        let n = cluster::start(&cfg, &node, &data_dir).await?;
        let spec = halyard_backend::core::ClusterSpec {
            consensus: n.consensus.clone(),
            view: n.view.clone(),
            hosts: el.hosts.clone(),
            applied: n.applied,
            applier: n.applier,
        };
        let (core, running) = HaCore::start_clustered(core_config, repo.clone(), spec)
            .await
            .context("cannot start the HA core")?;
        let cmm = tracing::Instrument::instrument(
            halyard_backend::cmm::run(
                n.cmm.clone(),
                n.consensus.clone(),
                core.clone(),
                n.view.clone(),
                stop_rx.clone(),
            ),
            tracing::info_span!("cmm", node = %node),
        );
        // The membership monitor runs on a thread and runtime of its own:
        // heartbeats and lease renewals must not wait behind the agent's
        // other work (a busy runtime would let the leases lapse and the
        // primaries quiesce). It stops with `stop` like every other task.
        cluster_tasks.push(tokio::task::spawn_blocking(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the cluster membership monitor's runtime");
                    return;
                }
            };
            if let Err(e) = rt.block_on(cmm) {
                tracing::error!(error = %e, "cluster membership monitor stopped");
            }
        }));
        cluster_node = Some((n.consensus, n.task, n.view, n.cmm.failure));
        (core, running)
    } else {
        HaCore::start(core_config, repo.clone())
            .await
            .context("cannot start the HA core")?
    };
    let model = model::AgentModel::load(&el, core.clone(), repo.clone())
        .await
        .context("cannot build the managed objects")?;
    let sync = tokio::spawn(model.clone().sync(stop_rx.clone()));
    // Jobs and the model's other tasks: a panic is logged, counted and
    // handled (a job fails, its lock is released).
    let reaper = tokio::spawn({
        let tasks = model.tasks.clone();
        async move { tasks.reap().await }
    });
    if let Some((consensus, _, view, failure)) = &cluster_node {
        let ids: std::collections::BTreeMap<String, u64> =
            view.nodes().into_iter().map(|n| (n.name, n.id)).collect();
        let _ = model.cluster.set(model::ClusterHooks {
            consensus: consensus.clone(),
            addrs: cluster::peers(&cfg)?
                .into_iter()
                .map(|(n, _, a)| (n, a))
                .collect(),
            faults: consensus.faults(),
            nodes: el
                .node_objects
                .iter()
                .filter_map(|(n, obj)| ids.get(n).map(|id| (obj.clone(), (n.clone(), *id))))
                .collect(),
            me: node.clone(),
        });
        let _ = model.copco.cluster.set((core.clone(), node.clone()));
        cluster_tasks.push(tokio::spawn(cluster::publish_status(
            model.clone(),
            view.clone(),
            el.root.clone(),
            el.node_objects.clone(),
            cfg.nodes
                .iter()
                .filter(|n| n.join)
                .map(|n| n.name.get_ref().clone())
                .collect(),
            *failure,
            stop_rx.clone(),
        )));
    }
    // The hot-swap manager on the simulated bus, and a directory bus when configured.
    let (swap_handle, sim_bus) = halyard_backend::hotswap::sim_bus(64);
    model.serve(Arc::new(hotswap::SimBusOperations {
        model: Arc::downgrade(&model),
        port: hotswap::SimBusPort {
            bus: swap_handle,
            fru_types: cfg
                .fru_types
                .iter()
                .map(|t| t.name.get_ref().clone())
                .collect(),
        },
    }));
    let dir_bus = cfg.hotswap.directory.as_ref().map(|d| {
        halyard_backend::hotswap::DirBus::new(
            d,
            std::time::Duration::from_millis(u64::from(*cfg.hotswap.poll_ms.get_ref())),
        )
    });
    let hsm = hotswap::HotSwap::new(model.clone(), &cfg, &el, exe.clone(), run_dir.clone());
    let hotswap_task = tokio::spawn(hsm.run(
        halyard_backend::hotswap::Both::new(Some(sim_bus), dir_bus),
        stop_rx.clone(),
    ));
    // One collection before the faces open, so statistics exist from the start.
    let mut collector = stats::Collector::new(
        model.clone(),
        cfg.aggregates.clone(),
        cfg.thresholds.clone(),
        std::time::Duration::from_secs(u64::from(cfg.statistics.retention_minutes) * 60),
        std::time::Duration::from_secs(u64::from(cfg.statistics.alarm_retention_minutes) * 60),
    )
    .with_history_period(std::time::Duration::from_secs(u64::from(
        cfg.statistics.history_period_s,
    )));
    collector.cycle().await;
    let stats = tokio::spawn(collector.run(
        std::time::Duration::from_millis(u64::from(cfg.statistics.period_ms.max(100))),
        stop_rx.clone(),
    ));

    // ietf-system's system-restart / system-shutdown, from the faces.
    let (system_tx, mut system_rx) = tokio::sync::mpsc::channel(1);
    let faces = faces::start(
        &cli,
        &cfg,
        &data_dir,
        &node,
        model.clone() as Arc<dyn halyard_cluster_model::port::InformationModel>,
        stop_rx.clone(),
        system_tx,
    )
    .await?;
    inventory::check(&data_dir, &model, &el.root, &node).await;
    tracing::info!(objects = model.store.len(), faces = %faces.describe(), "ready");
    // Every node shows every node's SNMP engine ID, for `halyard user snmp`
    // to localize keys for each.
    if let Some(id) = faces.snmp_engine_id.clone() {
        cluster_tasks.push(tokio::spawn(tracing::Instrument::in_current_span(
            publish_snmp_engine(model.clone(), node.clone(), id, stop_rx.clone()),
        )));
    }

    let log = clusterlog::ClusterLog {
        model: model.clone(),
        node: node.clone(),
        root: el.root.clone(),
    };
    cluster_tasks.push(tokio::spawn(log.run(log_rx, stop_rx.clone())));
    let reboot = Arc::new(tokio::sync::Notify::new());
    // The software load, propagation and upgrade managers: a cluster node
    // that runs from its release store (started by `halyard boot`).
    if let (Some(release), Some((_, _, view, _))) = (&cfg.release, &cluster_node)
        && std::env::var_os("HALYARD_RELEASE").is_some()
    {
        let up = Arc::new(upgrade::Upgrades::new(
            model.clone(),
            view.clone(),
            el.root.clone(),
            boot::store(&data_dir),
            loadserver::LoadServer::new(release.load_server.get_ref()),
            std::time::Duration::from_millis(u64::from(*release.watchdog_ms.get_ref())),
            el.hosts.clone(),
            el.groups
                .iter()
                .map(|g| (g.name.clone(), g.model, g.members.clone()))
                .collect(),
            el.node_objects.clone(),
            reboot.clone(),
            // Where each node's HTTP face serves its releases.
            cfg.nodes
                .iter()
                .filter_map(|n| {
                    let a = n.http.as_ref()?.first()?.get_ref().clone();
                    Some((n.name.get_ref().clone(), format!("http://{a}/releases")))
                })
                .collect(),
        ));
        model.serve(up.clone());
        cluster_tasks.push(tokio::spawn(tracing::Instrument::instrument(
            up.run(stop_rx.clone()),
            tracing::info_span!("upgrade", node = %node),
        )));
    }

    let exit = tokio::select! {
        _ = wait_for_signal() => Exit::Stopped,
        _ = reboot.notified() => Exit::Reboot,
        Some(a) = system_rx.recv() => match a {
            halyard_cluster_model::port::SystemAction::Shutdown => Exit::Stopped,
            halyard_cluster_model::port::SystemAction::Restart => Exit::Restart,
        },
    };
    tracing::info!(
        ?exit,
        "stopping: faces, then components (children first), then state"
    );
    if let Some((consensus, _, _, _)) = &cluster_node {
        // Leave cleanly: give up primaries first, then let the cluster move
        // them at once instead of waiting for failure detection.
        let _ = core
            .membership(halyard_backend::core::Membership::Fence)
            .await;
        let leave = halyard_backend::cluster::Command::NodeLost {
            node: node.clone(),
            restart: false,
            reason: "node shutting down".into(),
            boot: None,
        };
        if let Ok(v) = serde_json::to_value(leave)
            && let Err(e) = consensus
                .propose(v, std::time::Duration::from_secs(2))
                .await
        {
            tracing::warn!(error = %e, "could not announce the shutdown to the cluster");
        }
    }
    let _ = stop_tx.send(true);
    let _ = hotswap_task.await;
    faces.stop().await;
    reaper.abort();
    model
        .tasks
        .shutdown(std::time::Duration::from_secs(10))
        .await;
    running.shutdown().await;
    for t in cluster_tasks {
        let _ = t.await;
    }
    if let Some((_, task, _, _)) = cluster_node {
        task.shutdown().await;
    }
    let _ = sync.await;
    let _ = stats.await;
    repo.close().await;
    tracing::info!("stopped");
    Ok(exit)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
