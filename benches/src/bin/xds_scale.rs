//! The control plane at scale: N ADS streams (sidecars that share one view, each its own node)
//! of an S-service Istio config, on loopback. Measures, for a run of config changes, the time
//! from the change (the YAML read, translated and pushed) to every stream having ACKed it, and
//! the server's memory per connected stream.
//!
//! ```text
//! xds_scale [STREAMS] [SERVICES] [CHANGES]      (defaults 1000 100 20)
//! ```
//!
//! The clients run in a child process (this binary with `--clients ADDR N`), so the server's
//! resident memory is its own: read from `/proc/self/status` before the streams connect and
//! once every stream holds the whole config. The clients are light: they decode only what they
//! need to subscribe (cluster and route names) and ACK every response, so the figures are the
//! server's. Changes alternate between one service's endpoints (EDS only) and one service's
//! routes (RDS only). Prints one line per figure; `benches/load/xds-scale.sh` runs it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node as PbNode;
use envoy_types::pb::envoy::service::discovery::v3 as ds;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use mesh_xds::xds::pilot::Pilot;
use mesh_xds::xds::resource::ResourceType;
use mesh_xds::xds::server::{SnapshotCache, XdsServer};
use prost::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;

fn yaml(services: usize, change: usize) -> String {
    let mut out = String::new();
    for i in 0..services {
        // Change k moves one endpoint of service k/2 (even k) or one route weight (odd k).
        let moved = change.is_multiple_of(2) && i == (change / 2) % services && change > 0;
        let port = if moved { 20000 + change } else { 10000 + i };
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {{ name: svc{i}, namespace: default }}\n\
             spec:\n  hosts: [svc{i}]\n  location: MESH_INTERNAL\n\
             \x20 ports: [{{ number: 9080, name: http, protocol: HTTP }}]\n\
             \x20 resolution: STATIC\n  endpoints:\n\
             \x20 - {{ address: 10.0.{}.{}, ports: {{ http: {port} }}, labels: {{ version: v1 }} }}\n\
             \x20 - {{ address: 10.1.{}.{}, ports: {{ http: 9080 }}, labels: {{ version: v2 }} }}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{ name: svc{i}, namespace: default }}\n\
             spec:\n  host: svc{i}\n  subsets:\n  - {{ name: v1, labels: {{ version: v1 }} }}\n\
             \x20 - {{ name: v2, labels: {{ version: v2 }} }}\n",
            i / 250,
            i % 250,
            i / 250,
            i % 250,
        );
        let w = if change % 2 == 1 && i == (change / 2) % services {
            50
        } else {
            90
        };
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{ name: svc{i}, namespace: default }}\n\
             spec:\n  hosts: [svc{i}]\n  http:\n  - route:\n\
             \x20   - {{ destination: {{ host: svc{i}, subset: v1 }}, weight: {w} }}\n\
             \x20   - {{ destination: {{ host: svc{i}, subset: v2 }}, weight: {} }}\n",
            100 - w
        );
    }
    out
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--clients") {
        let addr: SocketAddr = args[2].parse().expect("an address");
        let n: usize = args[3].parse().expect("a count");
        assert!(addr.ip().is_loopback(), "loopback only");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(clients(addr, n));
        return;
    }
    let streams: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let services: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let changes: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(server(streams, services, changes));
}

fn load(dir: &std::path::Path, services: usize, change: usize) -> mesh_xds::istio::Resources {
    let file = dir.join("mesh.yaml");
    std::fs::write(&file, yaml(services, change)).unwrap();
    mesh_xds::istio::load_paths(&[file], "default")
        .unwrap()
        .value
}

async fn server(streams: usize, services: usize, changes: usize) {
    let dir = std::env::temp_dir().join(format!("mesh-xds-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pilot = Arc::new(Pilot::new(load(&dir, services, 0)));
    let cache = pilot.cache().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(XdsServer::new(cache.clone()).serve(listener, std::future::pending()));

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--clients", &addr.to_string(), &streams.to_string()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the clients start");
    // One stream first: the view is computed and encoded once, whatever the number of streams;
    // memory is measured from there.
    wait(&cache, |c| {
        c.statuses().values().any(|n| {
            ResourceType::ALL
                .iter()
                .all(|t| n.types.get(t).is_some_and(|ts| ts.acked_version.is_some()))
        })
    })
    .await;
    let rss_before = rss_kib();
    let started = Instant::now();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }
    // Every stream holds every type.
    let all_synced = |c: &SnapshotCache, min_responses: &dyn Fn(ResourceType) -> u64| {
        c.with_statuses(|s| {
            s.len() == streams
                && s.values().all(|n| {
                    ResourceType::ALL.iter().all(|t| {
                        n.types.get(t).is_some_and(|ts| {
                            ts.acked_version.is_some()
                                && ts.acked_version == ts.sent_version
                                && ts.responses >= min_responses(*t)
                        })
                    })
                })
        })
    };
    wait(&cache, |c| all_synced(c, &|_| 1)).await;
    let connect = started.elapsed();
    let rss_after = rss_kib();
    let snapshot = cache.snapshot(&cache.keys()[0]).unwrap();
    println!(
        "xds_scale: {streams} streams, {services} services ({} clusters, {} listeners, {} routes), {} view(s)",
        snapshot.len(ResourceType::Cluster),
        snapshot.len(ResourceType::Listener),
        snapshot.len(ResourceType::Route),
        cache.keys().len()
    );
    println!(
        "connect_and_sync_all: {:.0} ms",
        connect.as_secs_f64() * 1000.0
    );
    println!(
        "server_rss: {} KiB with 1 stream, {} KiB with {streams} streams: {:.1} KiB per further stream",
        rss_before,
        rss_after,
        (rss_after.saturating_sub(rss_before)) as f64 / (streams - 1).max(1) as f64
    );

    let mut times = Vec::new();
    let mut computes = Vec::new();
    for k in 1..=changes {
        let t = if k.is_multiple_of(2) {
            ResourceType::Endpoints
        } else {
            ResourceType::Route
        };
        let base: Vec<u64> = cache
            .statuses()
            .values()
            .map(|n| n.types[&t].responses)
            .collect();
        let min = base.iter().copied().min().unwrap_or(0);
        let t0 = Instant::now();
        pilot
            .update(load(&dir, services, k))
            .expect("every view translates");
        computes.push(t0.elapsed());
        wait(&cache, |c| {
            all_synced(c, &|ty| if ty == t { min + 1 } else { 1 })
        })
        .await;
        times.push(t0.elapsed());
        // Only the changed type went out.
        let other: u64 = cache
            .statuses()
            .values()
            .map(|n| {
                ResourceType::ALL
                    .iter()
                    .filter(|x| {
                        **x != t && **x != ResourceType::Endpoints && **x != ResourceType::Route
                    })
                    .map(|x| n.types[x].responses)
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(other, 2 * streams as u64, "CDS or LDS was resent");
    }
    times.sort();
    computes.sort();
    println!(
        "read_translate_encode (in the above): median {:.1} ms",
        percentile(&computes, 0.5).as_secs_f64() * 1000.0
    );
    println!(
        "change_to_all_acked: median {:.1} ms, p99 {:.1} ms, max {:.1} ms over {changes} changes (EDS and RDS alternating)",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
        times.last().unwrap().as_secs_f64() * 1000.0
    );
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn wait(cache: &SnapshotCache, done: impl Fn(&SnapshotCache) -> bool) {
    let mut changes = cache.status_changes();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(cache) {
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            panic!("not synced within 120 s");
        }
    }
}

/// N light ADS clients: wildcard CDS and LDS, EDS and RDS for what those name, every response
/// ACKed at once.
async fn clients(addr: SocketAddr, n: usize) {
    let channels: Vec<_> = {
        // A few connections, many streams each (HTTP/2), as many proxies behind few NATs.
        let mut v = Vec::new();
        for _ in 0..8 {
            v.push(
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect()
                    .await
                    .expect("connects"),
            );
        }
        v
    };
    // One stream, then the rest when the server says go.
    let (go_tx, go) = tokio::sync::oneshot::channel::<()>();
    let stdin = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line);
        let _ = go_tx.send(());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
    });
    let mut go = Some(go);
    for i in 0..n {
        if i == 1
            && let Some(go) = go.take()
        {
            let _ = go.await;
        }
        let channel = channels[i % channels.len()].clone();
        tokio::spawn(async move {
            let mut client =
                AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
            let (tx, rx) = mpsc::unbounded_channel();
            let node = PbNode {
                id: format!(
                    "sidecar~10.9.{}.{}~pod-{i}.default~default.svc.cluster.local",
                    i / 250,
                    i % 250
                ),
                ..PbNode::default()
            };
            let ask = |t: ResourceType,
                       names: Vec<String>,
                       version: String,
                       nonce: String,
                       first: bool| {
                ds::DiscoveryRequest {
                    version_info: version,
                    node: first.then(|| node.clone()),
                    resource_names: names,
                    type_url: t.type_url().into(),
                    response_nonce: nonce,
                    ..ds::DiscoveryRequest::default()
                }
            };
            tx.send(ask(
                ResourceType::Cluster,
                vec![],
                String::new(),
                String::new(),
                true,
            ))
            .unwrap();
            tx.send(ask(
                ResourceType::Listener,
                vec![],
                String::new(),
                String::new(),
                false,
            ))
            .unwrap();
            let mut responses = client
                .stream_aggregated_resources(tokio_stream::wrappers::UnboundedReceiverStream::new(
                    rx,
                ))
                .await
                .expect("the stream opens")
                .into_inner();
            let mut eds: Vec<String> = Vec::new();
            let mut rds: Vec<String> = Vec::new();
            while let Ok(Some(r)) = responses.message().await {
                let t = ResourceType::from_type_url(&r.type_url).unwrap();
                let names = match t {
                    ResourceType::Endpoints => eds.clone(),
                    ResourceType::Route => rds.clone(),
                    _ => vec![],
                };
                let _ = tx.send(ask(
                    t,
                    names,
                    r.version_info.clone(),
                    r.nonce.clone(),
                    false,
                ));
                match t {
                    ResourceType::Cluster => {
                        let names: Vec<String> = r
                            .resources
                            .iter()
                            .filter_map(|a| {
                                envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(
                                    a.value.as_slice(),
                                )
                                .ok()
                            })
                            .map(|c| c.name)
                            .collect();
                        if names != eds {
                            eds = names;
                            let _ = tx.send(ask(
                                ResourceType::Endpoints,
                                eds.clone(),
                                String::new(),
                                String::new(),
                                false,
                            ));
                        }
                    }
                    ResourceType::Listener => {
                        let names: Vec<String> = r
                            .resources
                            .iter()
                            .filter_map(|a| {
                                envoy_types::pb::envoy::config::listener::v3::Listener::decode(
                                    a.value.as_slice(),
                                )
                                .ok()
                            })
                            .flat_map(|l| route_names(&l))
                            .collect();
                        if names != rds {
                            rds = names;
                            let _ = tx.send(ask(
                                ResourceType::Route,
                                rds.clone(),
                                String::new(),
                                String::new(),
                                false,
                            ));
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    // Until the server closes stdin.
    let _ = stdin.await;
}

/// The RDS names a listener's connection managers use.
fn route_names(l: &envoy_types::pb::envoy::config::listener::v3::Listener) -> Vec<String> {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    let mut out = Vec::new();
    for fc in &l.filter_chains {
        for f in &fc.filters {
            if let Some(ConfigType::TypedConfig(any)) = &f.config_type
                && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                && let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier
            {
                out.push(rds.route_config_name);
            }
        }
    }
    out
}
