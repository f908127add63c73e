//! `mesh-pilot`: a control plane from Istio YAML. It serves ADS (state of the world and
//! incremental) to every proxy that connects (mesh-proxy, Envoy, proxyless gRPC clients), each
//! its own view of the mesh, chosen from its node as istiod chooses it.
//!
//! ```text
//! mesh-pilot --istio PATH… [--watch] --listen ADDR [--admin ADDR] [--namespace NS]
//! ```
//!
//! With `--watch`, a change to the files recomputes every view and pushes what changed (a
//! change to a ServiceEntry's endpoints pushes EDS only). An invalid change is reported and
//! the last good config keeps being served. `--admin` serves `GET /debug/syncz` (every
//! connected node, what it was sent and what it acknowledged or rejected, like istiod's) and
//! `GET /ready`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use mesh_xds::xds::pilot::Pilot;
use mesh_xds::xds::server::{SnapshotCache, XdsServer};

#[derive(Parser, Debug)]
#[command(
    name = "mesh-pilot",
    version,
    about = "An xDS control plane from Istio YAML"
)]
struct Cli {
    /// Istio YAML files or directories (repeatable).
    #[arg(long, required = true, num_args = 1..)]
    istio: Vec<PathBuf>,
    /// Recompute and push when the files change.
    #[arg(long)]
    watch: bool,
    /// Where to serve ADS (gRPC, no TLS), e.g. 127.0.0.1:15010.
    #[arg(long)]
    listen: SocketAddr,
    /// Where to serve the admin endpoints.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// The namespace of resources that do not name one.
    #[arg(long, default_value = "default")]
    namespace: String,
}

fn load(paths: &[PathBuf], namespace: &str) -> Result<mesh_xds::istio::Resources, String> {
    let loaded = mesh_xds::istio::load_paths(paths, namespace).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.value)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let stamp = mesh_examples::files::stamp(&cli.istio);
    let resources = match load(&cli.istio, &cli.namespace) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pilot = Arc::new(Pilot::new(resources));
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(cli.listen);
    tokio::spawn(XdsServer::new(pilot.cache().clone()).serve(listener, std::future::pending()));
    println!("mesh-pilot: xds on {addr}");
    if let Some(a) = cli.admin {
        match tokio::net::TcpListener::bind(a).await {
            Ok(l) => {
                println!("mesh-pilot: admin on {}", l.local_addr().unwrap_or(a));
                tokio::spawn(admin(l, pilot.cache().clone()));
            }
            Err(e) => {
                eprintln!("error: cannot listen on {a}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("mesh-pilot: ready");
    let mut stamp = mesh_proxy::source::Settled::new(stamp);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick(), if cli.watch => {
                if !stamp.changed(mesh_examples::files::stamp(&cli.istio)) {
                    continue;
                }
                // Reading and translating take milliseconds to seconds: off the async threads.
                let (pilot, paths, namespace) =
                    (pilot.clone(), cli.istio.clone(), cli.namespace.clone());
                let outcome = tokio::task::spawn_blocking(move || {
                    let r = load(&paths, &namespace)?;
                    let views = pilot.views().len();
                    pilot.update(r).map_err(|errors| {
                        errors
                            .iter()
                            .map(|(view, e)| format!("view {view}: {e}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })?;
                    Ok::<_, String>(views)
                })
                .await;
                match outcome {
                    Ok(Ok(views)) => println!("mesh-pilot: pushed ({views} views)"),
                    Ok(Err(e)) => eprintln!(
                        "mesh-pilot: rejected the change: {e}\nthe last good config keeps being served"
                    ),
                    Err(e) => eprintln!("mesh-pilot: the update failed: {e}"),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    println!("mesh-pilot: stopped");
    ExitCode::SUCCESS
}

/// `GET /debug/syncz` and `GET /ready`.
async fn admin(listener: tokio::net::TcpListener, cache: Arc<SnapshotCache>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let cache = cache.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let cache = cache.clone();
                async move { Ok::<_, Infallible>(route(&req, &cache)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(req: &Request<Incoming>, cache: &SnapshotCache) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/ready" => (StatusCode::OK, "ready\n".to_owned()),
        "/debug/syncz" => {
            let nodes: Vec<serde_json::Value> = cache
                .statuses()
                .into_iter()
                .map(|(id, s)| {
                    let types: serde_json::Map<String, serde_json::Value> = s
                        .types
                        .iter()
                        .map(|(t, ts)| {
                            (
                                t.short_name().to_uppercase(),
                                serde_json::json!({
                                    "sent": ts.sent_version,
                                    "acked": ts.acked_version,
                                    "nacked": ts.nack.as_ref().map(|(v, m)| serde_json::json!({"version": v, "error": m})),
                                    "responses": ts.responses,
                                    "synced": ts.sent_version.is_some() && ts.sent_version == ts.acked_version,
                                }),
                            )
                        })
                        .collect();
                    serde_json::json!({"node": id, "streams": s.streams, "types": types})
                })
                .collect();
            (
                StatusCode::OK,
                serde_json::to_string_pretty(&nodes).unwrap_or_default() + "\n",
            )
        }
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
