//! `mesh-proxy`: run the proxy from an Envoy bootstrap file, or the built-in demo.
//!
//! ```text
//! mesh-proxy --config envoy.yaml      run from a file (YAML or JSON)
//! mesh-proxy --istio DIR --role sidecar --outbound-port 15001
//!                                     run from Istio YAML as a sidecar's outbound proxy
//! mesh-proxy --istio DIR --role gateway --labels istio=ingressgateway --port-map 80=18080
//!                                     run from Istio YAML as an ingress gateway
//! mesh-proxy --gateway-api DIR --role gateway --gateway web.infra --port-map 80=18080
//!                                     serve a Kubernetes Gateway API Gateway and its routes
//! mesh-proxy --gateway-api DIR --role gateway --gateway web.infra --print-status
//!                                     print each route's status conditions and exit
//! mesh-proxy --demo                   Istio's Bookinfo: six services, a gateway and a sidecar
//! mesh-proxy --demo --ads             the same, both proxies configured over ADS
//! mesh-proxy --demo envoy             two demo upstreams behind an embedded Envoy config
//! mesh-proxy validate envoy.yaml      check a file, print every warning and error
//! ```
//!
//! `--admin ADDR` serves Envoy's admin API (a bare port binds 127.0.0.1). With `--watch`, a
//! change to the config file (or to the Istio files and directories) is validated, compiled
//! and swapped in; SIGHUP does the same at once. An invalid config is rejected with its errors
//! and the running config keeps serving. `--print-config` prints the config the proxy would
//! run, as Envoy v3 JSON (for Istio input: what the translation made of it), and exits.

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
    #[arg(short, long, value_name = "FILE", conflicts_with_all = ["demo", "istio"])]
    config: Option<PathBuf>,
    /// Istio networking YAML (VirtualService, DestinationRule, Gateway, ServiceEntry,
    /// WorkloadEntry) and Kubernetes Gateway API YAML (Gateway, HTTPRoute, GRPCRoute,
    /// ReferenceGrant, with Service and EndpointSlice objects), mixed as in a cluster: a file
    /// or a directory; repeat for more. `--gateway-api` is the same option. Needs --role.
    #[arg(
        long,
        visible_alias = "gateway-api",
        value_name = "PATH",
        conflicts_with = "demo",
        requires = "role"
    )]
    istio: Vec<PathBuf>,
    /// Gateway role: serve the Gateway API Gateway NAME of namespace NS (default: --namespace);
    /// the same as `--labels gateway.networking.k8s.io/gateway-name=NAME --namespace NS`.
    #[arg(long, value_name = "NAME[.NS]", requires = "istio")]
    gateway: Option<String>,
    /// Print the status of every Gateway API route (Accepted and ResolvedRefs per parent, as
    /// `kubectl get httproute -o yaml` shows them) and exit. The admin API serves the same at
    /// `/gateway_api_status`.
    #[arg(long, requires = "istio")]
    print_status: bool,
    /// The namespace of Istio resources without one, and of this proxy.
    #[arg(long, value_name = "NS", default_value = "default", requires = "istio")]
    namespace: String,
    /// Which proxy to build from the Istio YAML.
    #[arg(long, value_enum, requires = "istio")]
    role: Option<Role>,
    /// Sidecar: one outbound listener on 127.0.0.1:PORT that routes by Host, for setups
    /// without traffic capture. Without it, a sidecar has Istio's listener layout behind
    /// `mesh-proxy iptables`: virtualOutbound on 0.0.0.0:15001, virtualInbound on 15006.
    #[arg(long, value_name = "PORT")]
    outbound_port: Option<u16>,
    /// Captured sidecar: where connections to addresses no service owns go (meshConfig
    /// outboundTrafficPolicy.mode).
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "allow-any",
        requires = "istio"
    )]
    outbound_traffic_policy: TrafficPolicy,
    /// meshConfig accessLogFile: every listener logs there in Istio's format (`/dev/stdout`
    /// and `/dev/stderr` are the streams).
    #[arg(long, value_name = "PATH", requires = "istio")]
    access_log: Option<String>,
    /// The workload identity for ISTIO_MUTUAL: a directory holding cert-chain.pem, key.pem
    /// and root-cert.pem, as Istio's agent writes them; followed as they rotate.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/certs",
        requires = "istio"
    )]
    identity_dir: String,
    /// Gateway credentialName certificates: NAME.crt, NAME.key and (MUTUAL) NAME-ca.crt in
    /// this directory.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/istio/credentials",
        requires = "istio"
    )]
    credentials_dir: String,
    /// The proxy's workload labels, `k=v[,k=v…]`: a gateway's Gateway selector, a
    /// sidecar's `sourceLabels`.
    #[arg(long, value_name = "LABELS", value_parser = parse_labels, requires = "istio")]
    labels: Option<Labels>,
    /// Gateway: bind a Gateway server port on another local port, `SERVER=LOCAL` (like a
    /// Kubernetes Service's targetPort); repeat or separate with commas.
    #[arg(long, value_name = "MAP", value_parser = parse_port_map, requires = "istio")]
    port_map: Vec<PortMap>,
    /// Print the config the proxy would run as Envoy v3 JSON, and exit.
    #[arg(long)]
    print_config: bool,
    /// Run a demo: `bookinfo` (the default) starts Istio's Bookinfo services behind an
    /// ingress gateway and a sidecar built from Istio YAML; `envoy` two upstreams behind an
    /// embedded Envoy config.
    #[arg(long, value_enum, value_name = "DEMO", num_args = 0..=1, default_missing_value = "bookinfo")]
    demo: Option<Demo>,
    /// The Bookinfo demo's scenario (default `default`); type another scenario's name and
    /// Enter while it runs to switch. Names: default, v1, jason-v2, jason-delay,
    /// jason-abort, v1-v3-50, v1-v3-80-20, timeout, circuit-breaker, mirror.
    #[arg(long, value_name = "NAME", requires = "demo")]
    scenario: Option<String>,
    /// Run the Bookinfo demo with both proxies configured only over ADS, from a control plane
    /// in the process that serves the same YAML (what `mesh-pilot` serves).
    #[arg(long, requires = "demo")]
    ads: bool,
    /// Listener address for --demo (the Bookinfo gateway's).
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
    /// Milliseconds an access-log line may wait before it is written to its file (Envoy's
    /// flag; 64 KiB waiting are written at once; 0 writes each line as it comes).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    file_flush_interval_msec: u64,
    /// Serve the admin API on this address (`9901` alone means 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR", value_parser = parse_admin_addr)]
    admin: Option<SocketAddr>,
    /// Reload the config when its files change (SIGHUP reloads at any time).
    #[arg(long)]
    watch: bool,
    /// Worker threads (Envoy's flag; default: one per CPU this process may run on). Each
    /// worker runs its own single-threaded runtime and accepts on its own `SO_REUSEPORT`
    /// socket per listener, so a connection and its upstream connections stay on one thread.
    /// 1 serves everything on the main thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Option<u16>,
}

/// Which demo `--demo` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Demo {
    /// Istio's Bookinfo.
    Bookinfo,
    /// Two upstreams behind an embedded Envoy config.
    Envoy,
}

/// The proxy built from Istio YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// One outbound listener routing by `Host` per the mesh-bound VirtualServices.
    Sidecar,
    /// Listeners from the Gateways whose selector matches --labels.
    Gateway,
}

/// `--labels k=v,…`.
#[derive(Debug, Clone, Default)]
struct Labels(Vec<(String, String)>);

/// `--port-map SERVER=LOCAL,…`.
#[derive(Debug, Clone)]
struct PortMap(Vec<(u16, u16)>);

fn parse_labels(s: &str) -> Result<Labels, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!("{p:?} is not KEY=VALUE")),
        })
        .collect::<Result<_, _>>()
        .map(Labels)
}

fn parse_port_map(s: &str) -> Result<PortMap, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (a, b) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?} is not SERVER_PORT=LOCAL_PORT"))?;
            let port = |x: &str| {
                x.trim()
                    .parse::<u16>()
                    .map_err(|e| format!("{x:?} in {p:?} is not a port: {e}"))
            };
            Ok((port(a)?, port(b)?))
        })
        .collect::<Result<_, _>>()
        .map(PortMap)
}

use mesh_core::config::{AccessLogSink, NetworkFilter};
use mesh_examples::files::Stamp;

/// Where the config comes from, to load it again on reload.
#[derive(Debug, Clone)]
enum Source {
    /// An Envoy bootstrap file.
    Envoy(PathBuf),
    /// Istio YAML files and directories, and what to build from them.
    Istio {
        paths: Vec<PathBuf>,
        options: Box<mesh_xds::istio::Options>,
        /// The Gateway API routes' status as of the last load that succeeded.
        status: Arc<std::sync::Mutex<String>>,
    },
}

/// `--gateway NAME[.NS]`.
fn gateway_ref(cli: &Cli) -> Option<(String, Option<String>)> {
    let g = cli.gateway.as_deref()?;
    Some(match g.split_once('.') {
        Some((name, ns)) => (name.to_owned(), Some(ns.to_owned())),
        None => (g.to_owned(), None),
    })
}

impl Source {
    fn from_cli(cli: &Cli) -> Option<Self> {
        if let Some(file) = &cli.config {
            return Some(Self::Envoy(file.clone()));
        }
        if cli.istio.is_empty() {
            return None;
        }
        let labels = cli.labels.clone().unwrap_or_default().0;
        let options = match cli.role? {
            Role::Sidecar => match cli.outbound_port {
                Some(port) => mesh_xds::istio::Options::sidecar(port),
                None => mesh_xds::istio::Options::captured_sidecar(),
            }
            .labels(labels)
            .outbound_traffic_policy(match cli.outbound_traffic_policy {
                TrafficPolicy::AllowAny => mesh_xds::istio::OutboundTrafficPolicy::AllowAny,
                TrafficPolicy::RegistryOnly => mesh_xds::istio::OutboundTrafficPolicy::RegistryOnly,
            }),
            Role::Gateway => {
                let mut labels = labels;
                if let Some((name, _)) = gateway_ref(cli) {
                    labels.push((
                        mesh_xds::istio::gateway_api::GATEWAY_NAME_LABEL.to_owned(),
                        name,
                    ));
                }
                cli.port_map
                    .iter()
                    .flat_map(|m| &m.0)
                    .fold(mesh_xds::istio::Options::gateway(labels), |o, (s, l)| {
                        o.map_port(*s, *l)
                    })
            }
        }
        .namespace(
            gateway_ref(cli)
                .and_then(|(_, ns)| ns)
                .unwrap_or_else(|| cli.namespace.clone()),
        )
        .identity_dir(cli.identity_dir.clone())
        .credentials_dir(cli.credentials_dir.clone());
        let options = match cli.access_log.as_deref() {
            None => options,
            Some("/dev/stdout") => options.access_log(AccessLogSink::Stdout),
            Some("/dev/stderr") => options.access_log(AccessLogSink::Stderr),
            Some(path) => options.access_log(AccessLogSink::File(path.into())),
        };
        Some(Self::Istio {
            paths: cli.istio.clone(),
            options: Box::new(options),
            status: Arc::default(),
        })
    }

    /// What it is, for messages.
    fn describe(&self) -> String {
        match self {
            Self::Envoy(f) => f.display().to_string(),
            Self::Istio { paths, .. } => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Loads and converts it, printing warnings and errors; `Err` after printing.
    fn load(&self, strict: bool) -> Result<Bootstrap, ()> {
        match self {
            Self::Envoy(file) => load(file, strict),
            Self::Istio {
                paths,
                options,
                status,
            } => {
                let resources = mesh_xds::istio::load_paths(paths, &options.namespace)
                    .map_err(|e| eprintln!("error: {e}"))?;
                let translated = mesh_xds::istio::translate(&resources.value, options)
                    .map_err(|e| eprintln!("error: {e}"))?;
                let warnings: Vec<_> = resources
                    .warnings
                    .iter()
                    .chain(&translated.warnings)
                    .collect();
                report_warnings(&warnings, strict)?;
                // Every check start-up runs, as for a bootstrap file.
                if let Err(e) = proxy_builder(translated.value.clone()).check() {
                    eprintln!("error: the translated config: {e}");
                    return Err(());
                }
                if let Ok(mut s) = status.lock() {
                    *s = mesh_xds::istio::gateway_api::status_yaml(&resources.value, options);
                }
                Ok(translated.value)
            }
        }
    }

    /// What identifies this version of its files on disk (a directory's files included).
    fn stamp(&self) -> Stamp {
        match self {
            Self::Envoy(f) => mesh_examples::files::stamp(std::slice::from_ref(f)),
            Self::Istio { paths, .. } => mesh_examples::files::stamp(paths),
        }
    }
}

fn parse_admin_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|e| format!("{s:?} is neither a port nor an address: {e}"))
}

/// meshConfig `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TrafficPolicy {
    /// ALLOW_ANY: to where they were going.
    AllowAny,
    /// REGISTRY_ONLY: refused.
    RegistryOnly,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a bootstrap file, or Istio YAML, and print every warning and error: Istio's
    /// validation rules, what the proxy cannot honour, and every check start-up runs.
    Validate {
        /// The Envoy bootstrap file.
        #[arg(required_unless_present = "istio", conflicts_with = "istio")]
        file: Option<PathBuf>,
        /// Istio YAML files or directories (repeatable), checked as a sidecar's config.
        #[arg(long, value_name = "PATH")]
        istio: Vec<PathBuf>,
        /// The namespace of Istio resources without one.
        #[arg(long, value_name = "NS", default_value = "default")]
        namespace: String,
        /// Treat unsupported fields as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Install the iptables rules of Istio's sidecar capture (what `istio-iptables` installs
    /// in a pod: outbound TCP to the proxy's port, inbound to its inbound port, the proxy's own
    /// connections left alone), or remove them with --clean. Runs Debian's `iptables`; needs
    /// root (CAP_NET_ADMIN) in the pod's network namespace.
    Iptables {
        /// Print the rules instead of installing them.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Remove the rules instead.
        #[arg(long)]
        clean: bool,
        /// The proxy's outbound port.
        #[arg(short = 'p', long = "envoy-port", default_value_t = 15001)]
        proxy_port: u16,
        /// The proxy's inbound port.
        #[arg(short = 'z', long = "inbound-capture-port", default_value_t = 15006)]
        inbound_port: u16,
        /// The proxy's user id (its connections are not captured).
        #[arg(short = 'u', long = "proxy-uid", default_value_t = 1337)]
        uid: u32,
        /// The proxy's group id (default: the user id).
        #[arg(short = 'g', long = "proxy-gid")]
        gid: Option<u32>,
        /// Outbound destinations to capture: `*` or comma-separated IPv4 CIDRs.
        #[arg(short = 'i', long = "istio-service-cidr", default_value = "*")]
        include_cidrs: String,
        /// Outbound destinations never captured (comma-separated IPv4 CIDRs).
        #[arg(short = 'x', long = "istio-service-exclude-cidr", default_value = "")]
        exclude_cidrs: String,
        /// Outbound ports never captured (comma-separated).
        #[arg(short = 'o', long = "outbound-ports-exclude", default_value = "")]
        exclude_outbound_ports: String,
        /// Inbound ports to capture: `*` or comma-separated.
        #[arg(short = 'b', long = "istio-inbound-ports", default_value = "*")]
        inbound_ports: String,
        /// Inbound ports never captured (comma-separated).
        #[arg(
            short = 'd',
            long = "istio-local-exclude-ports",
            default_value = "15090,15021,15020"
        )]
        exclude_inbound_ports: String,
        /// Inbound capture mode (only REDIRECT).
        #[arg(
            short = 'm',
            long = "istio-inbound-interception-mode",
            default_value = "REDIRECT"
        )]
        mode: String,
    },
}

/// `mesh-proxy iptables`: prints, installs or removes the capture rules.
fn iptables(cmd: &Command) -> ExitCode {
    let Command::Iptables {
        dry_run,
        clean,
        proxy_port,
        inbound_port,
        uid,
        gid,
        include_cidrs,
        exclude_cidrs,
        exclude_outbound_ports,
        inbound_ports,
        exclude_inbound_ports,
        mode,
    } = cmd
    else {
        return ExitCode::FAILURE;
    };
    use mesh_examples::iptables::{Capture, split_list};
    let ports = |option: &str, s: &str| -> Result<Vec<u16>, String> {
        split_list(s)
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|_| format!("{option}: {p:?} is not a port"))
            })
            .collect()
    };
    let capture = (|| {
        Ok::<_, String>(Capture {
            proxy_port: *proxy_port,
            inbound_port: *inbound_port,
            proxy_uid: *uid,
            proxy_gid: gid.unwrap_or(*uid),
            include_outbound_cidrs: split_list(include_cidrs),
            exclude_outbound_cidrs: split_list(exclude_cidrs),
            exclude_outbound_ports: ports("-o", exclude_outbound_ports)?,
            include_inbound_ports: split_list(inbound_ports),
            exclude_inbound_ports: ports("-d", exclude_inbound_ports)?,
            inbound_mode: mode.clone(),
        })
    })();
    let rules = match capture.and_then(|c| {
        if *clean {
            Ok(c.cleanup_rules())
        } else {
            c.rules().map_err(|e| e.to_string())
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for rule in &rules {
        if *dry_run {
            println!("iptables {rule}");
            continue;
        }
        let status = std::process::Command::new("iptables")
            .args(rule.split_whitespace())
            .status();
        match status {
            Ok(s) if s.success() => {}
            // Removing what is not there is not an error.
            _ if *clean => {}
            Ok(s) => {
                eprintln!("error: iptables {rule}: {s}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot run iptables ({e}); install Debian's iptables package");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(cmd @ Command::Iptables { .. }) = &cli.command {
        return iptables(cmd);
    }
    let log_level = init_logging();
    if let Some(Command::Validate {
        file,
        istio,
        namespace,
        strict,
    }) = &cli.command
    {
        let source = match file {
            Some(f) => Source::Envoy(f.clone()),
            None => Source::Istio {
                paths: istio.clone(),
                options: Box::new(
                    mesh_xds::istio::Options::sidecar(15001).namespace(namespace.clone()),
                ),
                status: Arc::default(),
            },
        };
        return match source.load(*strict) {
            Ok(_) => {
                println!("{}: ok", source.describe());
                ExitCode::SUCCESS
            }
            Err(()) => ExitCode::FAILURE,
        };
    }
    // The main thread runs a single-threaded runtime: it serves the listeners itself at
    // --concurrency 1, and otherwise runs the admin server and config sources while the
    // workers serve. The Bookinfo demo's services share one multi-threaded runtime instead.
    let n = concurrency(&cli);
    let mut builder = if n > 1 && cli.demo == Some(Demo::Bookinfo) {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(n);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = match builder.enable_all().build() {
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
/// Reads, converts and checks a bootstrap file as start-up would (compiling route tables,
/// clusters and filters too), printing every warning and every error of every stage in one
/// run; `Err` after printing.
fn load(file: &PathBuf, strict: bool) -> Result<Bootstrap, ()> {
    let text = envoy::read_config(file).map_err(|e| print_error(&e))?;
    let mut d = envoy::diagnose_bootstrap(&text).map_err(|e| eprintln!("error: {e}"))?;
    if let Err(e) = proxy_builder(d.value.clone()).check() {
        d.add_errors(e.errors);
    }
    let warned = report_warnings(&d.warnings.iter().collect::<Vec<_>>(), strict);
    if !d.errors.is_empty() {
        eprintln!(
            "error: {}",
            mesh_xds::LoadError::Invalid { errors: d.errors }
        );
        return Err(());
    }
    warned?;
    Ok(d.value)
}

/// The proxy with the filters this binary registers (the example API-key filter).
fn proxy_builder(bootstrap: Bootstrap) -> mesh_proxy::ProxyBuilder {
    mesh_proxy::Proxy::builder(bootstrap).filter(
        mesh_examples::api_key::ApiKey::NAME,
        mesh_examples::api_key::ApiKey::from_config,
    )
}

/// Prints warnings (errors with `strict`); `Err` when `strict` and there are any.
fn report_warnings(warnings: &[&envoy::Warning], strict: bool) -> Result<(), ()> {
    for w in warnings {
        eprintln!("{}: {w}", if strict { "error" } else { "warning" });
    }
    if strict && !warnings.is_empty() {
        eprintln!(
            "error: {} unsupported field(s) with --strict",
            warnings.len()
        );
        return Err(());
    }
    Ok(())
}

/// `--concurrency`, or the CPUs this process may run on (its affinity mask, as `taskset`
/// sets it).
fn concurrency(cli: &Cli) -> usize {
    cli.concurrency.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        usize::from,
    )
}

async fn run(cli: Cli, log_level: LogLevel) -> ExitCode {
    let drain = Duration::from_secs_f64(cli.drain_time.max(0.0));
    if cli.demo == Some(Demo::Bookinfo) {
        return run_bookinfo(&cli, drain).await;
    }
    let source = Source::from_cli(&cli);
    // What the files looked like before they were read: a change made after this point, even
    // while the proxy is still starting, is picked up by the watcher.
    let stamp = source.as_ref().map(Source::stamp).unwrap_or_default();
    let (mut bootstrap, demo_addr) = if cli.demo == Some(Demo::Envoy) {
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
    } else if let Some(source) = &source {
        match source.load(cli.strict) {
            Ok(b) => (b, None),
            Err(()) => return ExitCode::FAILURE,
        }
    } else {
        eprintln!("error: give --config FILE, --istio PATH --role ROLE, or --demo (see --help)");
        return ExitCode::FAILURE;
    };
    if cli.print_status {
        if let Some(Source::Istio { status, .. }) = &source {
            print!("{}", status.lock().map(|s| s.clone()).unwrap_or_default());
        }
        return ExitCode::SUCCESS;
    }
    if cli.print_config {
        match serde_json::to_string_pretty(&envoy::dump::bootstrap(&bootstrap)) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    if cli.no_access_log {
        strip_access_logs(&mut bootstrap);
    }
    let dynamic_bootstrap = bootstrap
        .dynamic_resources
        .is_some()
        .then(|| bootstrap.clone());
    let workers = match concurrency(&cli) {
        1 => 0,
        n => n,
    };
    let mut builder = proxy_builder(bootstrap)
        .drain_time(drain)
        .file_flush_interval(Duration::from_millis(cli.file_flush_interval_msec))
        .workers(workers)
        .log_level_control(move |l| log_level(l));
    if let Some(a) = cli.admin {
        builder = builder.admin(a);
    }
    if let Some(Source::Istio { status, .. }) = &source {
        let status = Arc::clone(status);
        builder = builder.admin_page(
            "/gateway_api_status",
            "the Gateway API routes' status conditions (YAML)",
            move || status.lock().map(|s| s.clone()).unwrap_or_default(),
        );
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
    let (mut shutdown, hangup) = match install_signals() {
        Ok(s) => s,
        Err(code) => return code,
    };
    println!("mesh-proxy: ready");
    let running = Arc::new(running);
    let dynamic = running_bootstrap_is_dynamic(source.as_ref(), &dynamic_bootstrap);
    // A bootstrap with dynamic_resources follows its control plane; other sources are files,
    // loaded again on SIGHUP and (with --watch) when they change. Without a config source
    // SIGHUP has nothing to reload: its handler stays installed, so the signal is ignored
    // rather than fatal.
    let (follower, _hangup) = match (source, dynamic) {
        (_, Some(boot)) => {
            if cli.watch {
                eprintln!("mesh-proxy: --watch ignored: the config comes from the control plane");
            }
            match mesh_proxy::source::XdsSource::connect(&boot, running.stats().clone()) {
                Ok(xds) => (Some(running.follow(xds)), Some(hangup)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (Some(source), None) => (
            Some(follow_files(
                &running,
                source,
                stamp,
                hangup,
                cli.watch,
                cli.strict,
                cli.no_access_log,
            )),
            None,
        ),
        (None, None) => (None, Some(hangup)),
    };
    tokio::select! {
        () = shutdown.recv() => {}
        () = running.quit_requested() => {}
    }
    if let Some(r) = follower {
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

/// Runs the Bookinfo demo until SIGINT/SIGTERM, switching scenarios named on stdin.
async fn run_bookinfo(cli: &Cli, drain: Duration) -> ExitCode {
    use mesh_examples::bookinfo::{self, DemoOptions, Scenario};
    let scenario = match cli.scenario.as_deref().map(str::parse::<Scenario>) {
        None => Scenario::Default,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut opts = DemoOptions::default()
        .gateway(cli.listen)
        .scenario(scenario.yaml());
    opts.drain_time = drain;
    if cli.ads {
        opts = opts.over_ads();
    }
    if let Some(a) = cli.admin {
        // The gateway's admin API where asked; the sidecar's on a free port beside it.
        opts = opts.admin(SocketAddr::new(a.ip(), 0), a);
    }
    let demo = match bookinfo::Demo::start(opts).await {
        Ok(d) => d,
        Err(e) => {
            print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    for w in demo.warnings() {
        eprintln!("warning: {w}");
    }
    let (gateway, sidecar) = (demo.gateway_addr(), demo.sidecar_addr());
    println!("mesh-proxy: listener gateway on {gateway}");
    println!("mesh-proxy: listener sidecar on {sidecar}");
    for (which, proxy) in [("gateway", demo.gateway()), ("sidecar", demo.sidecar())] {
        if let Some(a) = proxy.admin_addr() {
            println!("mesh-proxy: {which} admin on {a}");
        }
    }
    println!(
        "mesh-proxy: bookinfo scenario {scenario}: {}",
        scenario.description()
    );
    println!("mesh-proxy: try");
    for c in bookinfo::curl_commands(gateway, sidecar) {
        println!("  {c}");
    }
    println!("mesh-proxy: scenarios (type a name and Enter to switch):");
    for s in Scenario::ALL {
        println!("  {:<16} {}", s.name(), s.description());
    }
    let (mut shutdown, mut hangup) = match install_signals() {
        Ok(s) => s,
        Err(code) => return code,
    };
    println!("mesh-proxy: ready");

    // Lines from stdin on a thread of their own (the read blocks); none when it is closed.
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            () = shutdown.recv() => break,
            () = hangup.recv() => {
                println!("mesh-proxy: SIGHUP ignored: the demo reads no config file (type a scenario to switch)");
            }
            Some(line) = lines.recv() => {
                let name = line.trim();
                if name.is_empty() {
                    continue;
                }
                match name.parse::<Scenario>() {
                    Ok(s) => match demo.apply(&s.yaml()).await {
                        Ok(warnings) => {
                            for w in warnings {
                                eprintln!("warning: {w}");
                            }
                            println!("mesh-proxy: scenario {s} applied: {}", s.description());
                        }
                        Err(e) => print_error(&e),
                    },
                    Err(e) => eprintln!("mesh-proxy: {e}"),
                }
            }
        }
    }
    println!("mesh-proxy: draining (up to {}s)", drain.as_secs_f64());
    demo.shutdown().await;
    println!("mesh-proxy: stopped");
    ExitCode::SUCCESS
}

/// Prints an error and its chain of sources (where the field paths are).
fn print_error(e: &dyn std::error::Error) {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  {s}");
        source = s.source();
    }
}

fn strip_access_logs(b: &mut Bootstrap) {
    for fc in b.listeners.iter_mut().flat_map(|l| l.chains_mut()) {
        match &mut fc.filter {
            NetworkFilter::HttpConnectionManager(h) => h.access_log.clear(),
            NetworkFilter::TcpProxy(t) => t.access_log.clear(),
        }
    }
}

/// The bootstrap to follow a control plane with, when the config is an Envoy bootstrap with
/// `dynamic_resources`.
fn running_bootstrap_is_dynamic(
    source: Option<&Source>,
    bootstrap: &Option<Bootstrap>,
) -> Option<Bootstrap> {
    match source {
        Some(Source::Envoy(_)) => bootstrap.clone(),
        _ => None,
    }
}

/// Reloads the config on SIGHUP and, with `watch`, when its files change on disk (checked
/// every 250 ms: no file-notification dependency for a few files).
fn follow_files(
    running: &mesh_proxy::RunningProxy,
    source: Source,
    stamp: Stamp,
    mut hangup: signals::Hangup,
    watch: bool,
    strict: bool,
    no_access_log: bool,
) -> tokio::task::JoinHandle<()> {
    let what = source.describe();
    let stats = running.stats().clone();
    let stamp_of = {
        let source = source.clone();
        move || format!("{:?}", source.stamp())
    };
    let load = move || {
        let Ok(mut bootstrap) = source.load(strict) else {
            eprintln!("mesh-proxy: rejected {what}; the running config keeps serving");
            stats
                .counter(mesh_core::stats::StatName::plain(
                    "server.config_reload_rejected",
                ))
                .inc();
            return None;
        };
        if no_access_log {
            strip_access_logs(&mut bootstrap);
        }
        let what = what.clone();
        Some(
            mesh_proxy::source::ConfigUpdate::new(bootstrap).on_applied(move |r| match r {
                Ok(v) => println!("mesh-proxy: reloaded {what} (config version {v})"),
                Err(e) => eprintln!(
                    "mesh-proxy: rejected {what}: {e}\n{}",
                    std::error::Error::source(e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
            }),
        )
    };
    let files = mesh_proxy::source::PollSource::new(
        format!("{stamp:?}"),
        watch.then_some(Duration::from_millis(250)),
        stamp_of,
        load,
    );
    let trigger = files.trigger();
    let follower = running.follow(files);
    tokio::spawn(async move {
        let _follower = AbortOnDrop(follower);
        loop {
            hangup.recv().await;
            trigger.notify_one();
        }
    })
}

/// Aborts a task when dropped (the file follower goes with the SIGHUP task that drives it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The process's signal handlers. Each is installed when it is created, and the proxy creates
/// them all before it announces readiness: a signal sent right after "ready" must find its
/// handler, never the default action (which ends the process for SIGHUP and SIGTERM).
#[cfg(unix)]
mod signals {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    /// SIGTERM and SIGINT: drain and stop.
    pub(crate) struct Shutdown {
        term: Signal,
        int: Signal,
    }

    impl Shutdown {
        pub(crate) fn install() -> std::io::Result<Self> {
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }

        pub(crate) async fn recv(&mut self) {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
    }

    /// SIGHUP: reload.
    pub(crate) struct Hangup(Signal);

    impl Hangup {
        pub(crate) fn install() -> std::io::Result<Self> {
            signal(SignalKind::hangup()).map(Self)
        }

        pub(crate) async fn recv(&mut self) {
            self.0.recv().await;
        }
    }
}

#[cfg(not(unix))]
mod signals {
    /// Ctrl-C: drain and stop.
    pub(crate) struct Shutdown;

    impl Shutdown {
        pub(crate) fn install() -> std::io::Result<Self> {
            Ok(Self)
        }

        pub(crate) async fn recv(&mut self) {
            let _ = tokio::signal::ctrl_c().await;
        }
    }

    /// No hangup signal here: never fires.
    pub(crate) struct Hangup;

    impl Hangup {
        pub(crate) fn install() -> std::io::Result<Self> {
            Ok(Self)
        }

        pub(crate) async fn recv(&mut self) {
            std::future::pending::<()>().await;
        }
    }
}

/// Installs the shutdown and hangup handlers, or says why not.
fn install_signals() -> Result<(signals::Shutdown, signals::Hangup), ExitCode> {
    match signals::Shutdown::install().and_then(|s| Ok((s, signals::Hangup::install()?))) {
        Ok(s) => Ok(s),
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}
