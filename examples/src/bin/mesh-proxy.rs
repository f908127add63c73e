//! `mesh-proxy`: run the proxy from an Envoy bootstrap file, or the built-in demo.
//!
//! ```text
//! mesh-proxy --config envoy.yaml      run from a file (YAML or JSON)
//! mesh-proxy --demo                   two demo upstreams on loopback + an embedded config
//! mesh-proxy validate envoy.yaml      check a file, print every warning and error
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mesh_core::config::Bootstrap;
use mesh_xds::envoy;

#[derive(Debug, Parser)]
#[command(
    name = "mesh-proxy",
    version,
    about = "An Envoy-compatible L7 proxy built on the mesh toolkit"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Envoy v3 bootstrap file (YAML or JSON).
    #[arg(short, long, value_name = "FILE", conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// Start two demo upstreams on loopback and proxy to them with an embedded config.
    #[arg(long)]
    demo: bool,
    /// Listener address for --demo.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:10000",
        requires = "demo"
    )]
    listen: SocketAddr,
    /// Treat unsupported config fields as errors instead of warnings.
    #[arg(long)]
    strict: bool,
    /// Seconds in-flight requests may run after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    drain_time: f64,
    /// Do not write access log lines.
    #[arg(long)]
    no_access_log: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a bootstrap file and print every warning and error.
    Validate {
        /// The file.
        file: PathBuf,
        /// Treat unsupported fields as errors.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(Command::Validate { file, strict }) = &cli.command {
        return match load(file, *strict) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(()) => ExitCode::FAILURE,
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cli))
}

/// Loads a file, printing warnings and errors; `Err` after printing.
fn load(file: &PathBuf, strict: bool) -> Result<Bootstrap, ()> {
    let loaded = envoy::load_bootstrap(file).map_err(|e| eprintln!("error: {e}"))?;
    for w in &loaded.warnings {
        eprintln!("{}: {w}", if strict { "error" } else { "warning" });
    }
    if strict && !loaded.warnings.is_empty() {
        eprintln!(
            "error: {} unsupported field(s) with --strict",
            loaded.warnings.len()
        );
        return Err(());
    }
    Ok(loaded.value)
}

async fn run(cli: Cli) -> ExitCode {
    let drain = Duration::from_secs_f64(cli.drain_time.max(0.0));
    let (mut bootstrap, demo_addr) = if cli.demo {
        let (s1, s2) = match (
            mesh_examples::demo::start_service("service1").await,
            mesh_examples::demo::start_service("service2").await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: cannot start demo upstreams: {e}");
                return ExitCode::FAILURE;
            }
        };
        let text = mesh_examples::demo::demo_config(cli.listen, s1, s2);
        match envoy::parse_bootstrap(&text) {
            Ok(l) => (l.value, Some((s1, s2))),
            Err(e) => {
                eprintln!("error: embedded demo config: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if let Some(file) = &cli.config {
        match load(file, cli.strict) {
            Ok(b) => (b, None),
            Err(()) => return ExitCode::FAILURE,
        }
    } else {
        eprintln!("error: give --config FILE or --demo (see --help)");
        return ExitCode::FAILURE;
    };
    if cli.no_access_log {
        for l in &mut bootstrap.listeners {
            for fc in &mut l.filter_chains {
                fc.http_connection_manager.access_log.clear();
            }
        }
    }
    let proxy = match mesh_proxy::Proxy::builder(bootstrap)
        .filter(
            mesh_examples::api_key::ApiKey::NAME,
            mesh_examples::api_key::ApiKey::from_config,
        )
        .drain_time(drain)
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(src) = std::error::Error::source(&e) {
                eprintln!("{src}");
            }
            return ExitCode::FAILURE;
        }
    };
    let running = match proxy.start().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: {e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
    };
    for (name, addr) in running.listener_addrs() {
        println!("mesh-proxy: listener {name} on {addr}");
    }
    if let Some((s1, s2)) = demo_addr {
        println!("mesh-proxy: demo upstreams service1 on {s1}, service2 on {s2}");
        if let Some(addr) = running.listener_addr("http") {
            println!("mesh-proxy: try");
            for c in mesh_examples::demo::curl_commands(addr) {
                println!("  {c}");
            }
        }
    }
    println!("mesh-proxy: ready");
    shutdown_signal().await;
    println!("mesh-proxy: draining (up to {}s)", drain.as_secs_f64());
    running.shutdown().await;
    println!("mesh-proxy: stopped");
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
