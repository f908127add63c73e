//! `mesh-proxy`: run the proxy from an Envoy bootstrap file, or the built-in demo.
//!
//! ```text
//! mesh-proxy --config envoy.yaml      run from a file (YAML or JSON)
//! mesh-proxy --demo                   two demo upstreams on loopback + an embedded config
//! mesh-proxy validate envoy.yaml      check a file, print every warning and error
//! ```
//!
//! `--admin ADDR` serves Envoy's admin API (a bare port binds 127.0.0.1). With `--watch`, a
//! change to the config file is validated, compiled and swapped in; SIGHUP does the same at
//! once. An invalid file is rejected with its errors and the running config keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
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
    /// Serve the admin API on this address (`9901` alone means 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR", value_parser = parse_admin_addr)]
    admin: Option<SocketAddr>,
    /// Reload the config file when it changes (SIGHUP reloads at any time).
    #[arg(long, requires = "config")]
    watch: bool,
}

fn parse_admin_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|e| format!("{s:?} is neither a port nor an address: {e}"))
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
    let log_level = init_logging();
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
    rt.block_on(run(cli, log_level))
}

type LogLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Logs to stderr, level from `RUST_LOG` (default `info`), changeable at run time.
fn init_logging() -> LogLevel {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .init();
    Arc::new(move |level: &str| {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        if !LEVELS.contains(&level) {
            return Err(format!("unknown level {level:?}; use one of {LEVELS:?}"));
        }
        handle
            .modify(|f| *f = EnvFilter::new(level))
            .map_err(|e| e.to_string())
    })
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

async fn run(cli: Cli, log_level: LogLevel) -> ExitCode {
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
        strip_access_logs(&mut bootstrap);
    }
    let mut builder = mesh_proxy::Proxy::builder(bootstrap)
        .filter(
            mesh_examples::api_key::ApiKey::NAME,
            mesh_examples::api_key::ApiKey::from_config,
        )
        .drain_time(drain)
        .log_level_control(move |l| log_level(l));
    if let Some(a) = cli.admin {
        builder = builder.admin(a);
    }
    let proxy = match builder.build() {
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
    if let Some(a) = running.admin_addr() {
        println!("mesh-proxy: admin on {a}");
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
    let running = Arc::new(running);
    let reloader = cli.config.clone().map(|file| {
        tokio::spawn(reload_loop(
            Arc::clone(&running),
            file,
            cli.watch,
            cli.strict,
            cli.no_access_log,
        ))
    });
    tokio::select! {
        () = shutdown_signal() => {}
        () = running.quit_requested() => {}
    }
    if let Some(r) = reloader {
        r.abort();
        let _ = r.await;
    }
    let Some(running) = Arc::into_inner(running) else {
        eprintln!("error: the proxy is still shared at shutdown");
        return ExitCode::FAILURE;
    };
    println!("mesh-proxy: draining (up to {}s)", drain.as_secs_f64());
    running.shutdown().await;
    println!("mesh-proxy: stopped");
    ExitCode::SUCCESS
}

fn strip_access_logs(b: &mut Bootstrap) {
    for l in &mut b.listeners {
        for fc in &mut l.filter_chains {
            fc.http_connection_manager.access_log.clear();
        }
    }
}

/// What identifies a version of the config file on disk.
fn file_stamp(file: &PathBuf) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(file).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads the config file on SIGHUP and, with `watch`, when it changes on disk (checked every
/// 250 ms: no file-notification dependency for one file).
async fn reload_loop(
    running: Arc<mesh_proxy::RunningProxy>,
    file: PathBuf,
    watch: bool,
    strict: bool,
    no_access_log: bool,
) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut stamp = file_stamp(&file);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        #[cfg(unix)]
        let hup_fired = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fired = std::future::pending::<()>();
        tokio::select! {
            () = hup_fired => {}
            _ = tick.tick(), if watch => {
                let now = file_stamp(&file);
                if now == stamp {
                    continue;
                }
                stamp = now;
            }
        }
        let rejected = || {
            running
                .stats()
                .counter(mesh_core::stats::StatName::plain(
                    "server.config_reload_rejected",
                ))
                .inc();
        };
        let Ok(mut bootstrap) = load(&file, strict) else {
            eprintln!(
                "mesh-proxy: rejected {}; the running config keeps serving",
                file.display()
            );
            rejected();
            continue;
        };
        if no_access_log {
            strip_access_logs(&mut bootstrap);
        }
        match running.reload(bootstrap).await {
            Ok(v) => println!(
                "mesh-proxy: reloaded {} (config version {v})",
                file.display()
            ),
            Err(e) => {
                eprintln!(
                    "mesh-proxy: rejected {}: {e}\n{}",
                    file.display(),
                    std::error::Error::source(&e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
            }
        }
    }
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
