//! `halyard`: the high-availability network-element management agent.
//!
//! Without `--config` it runs the built-in demo element
//! (`examples/demo.toml`). `halyard check --config FILE` validates a
//! config file; `halyard counterd` is the example HA-aware daemon the demo
//! supervises.

mod config;
mod copco;
mod element;
mod model;

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
    match cli.command {
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
        None => {}
    }
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(cli, source, cfg))
}

async fn run(cli: Cli, source: String, cfg: config::Config) -> anyhow::Result<()> {
    let data_dir = cli
        .data_dir
        .clone()
        .or(cfg.agent.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./halyard-data"));
    let node = cli
        .node
        .clone()
        .or(cfg.agent.node.clone())
        .unwrap_or_else(|| "a".into());
    let run_dir = data_dir.join("run");
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let span = tracing::info_span!("agent", node = %node);
    let _g = span.enter();
    tracing::info!(config = %source, data_dir = %data_dir.display(), "starting");

    let exe = std::env::current_exe().context("cannot find the halyard executable")?;
    let el = element::build(&cfg, &exe, &run_dir, cli.demo_scale);
    let repo = Repository::open(&data_dir.join("halyard.db"))
        .await
        .context("cannot open the repository")?;
    let (core, running) = HaCore::start(
        element::core_config(&el, &node, &run_dir, cfg.agent.watchdog_device.clone()),
        repo.clone(),
    )
    .await
    .context("cannot start the HA core")?;
    let model = model::AgentModel::load(&el, core.clone(), repo.clone())
        .await
        .context("cannot build the managed objects")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sync = tokio::spawn(model.clone().sync(stop_rx.clone()));

    let faces = faces::start(
        &cli,
        &cfg,
        &data_dir,
        model.clone() as Arc<dyn halyard_cluster_model::port::InformationModel>,
        stop_rx.clone(),
    )
    .await?;
    tracing::info!(objects = model.store.len(), faces = %faces.describe(), "ready");

    wait_for_signal().await;
    tracing::info!("stopping: faces, then components (children first), then state");
    let _ = stop_tx.send(true);
    faces.stop().await;
    running.shutdown().await;
    let _ = sync.await;
    repo.close().await;
    tracing::info!("stopped");
    Ok(())
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

mod faces {
    //! Starting and stopping the protocol faces.

    use std::path::Path;
    use std::sync::Arc;

    use halyard_cluster_model::port::InformationModel;

    use crate::Cli;
    use crate::config::Config;

    #[derive(Debug, Default)]
    pub struct Faces {
        tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
    }

    impl Faces {
        pub fn describe(&self) -> String {
            if self.tasks.is_empty() {
                "none".into()
            } else {
                self.tasks
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        pub async fn stop(self) {
            for (_, t) in self.tasks {
                let _ = t.await;
            }
        }
    }

    pub async fn start(
        _cli: &Cli,
        _cfg: &Config,
        _data_dir: &Path,
        _model: Arc<dyn InformationModel>,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Faces> {
        Ok(Faces::default())
    }
}
