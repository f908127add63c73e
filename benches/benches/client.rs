//! A call through the in-process client (`mesh_proxy::Client`: route matching, round-robin
//! balancing over two hosts, a retry policy configured and not triggered) against the same
//! call made with a bare hyper-util client to the same loopback upstream, and through a
//! sidecar `mesh-proxy` (hyper-util client → proxy listener → upstream) for comparison. One
//! request at a time, keep-alive, the body read to its end. Each batch of calls runs in a task
//! on the runtime's workers, as calls from a service's handlers do (not from a thread outside
//! the runtime, where every socket wake-up crosses threads).
//!
//! Target (issue #16): the in-process client ≤ 1.1 × the bare client's median.
//!
//! ```text
//! cargo bench -p mesh-benches --bench client
//! CLIENT_INTERLEAVE=30 cargo bench -p mesh-benches --bench client
//! ```
//!
//! The second form skips criterion: it runs every variant in turn, round after round (2,000
//! calls each), and prints each one's median time per call and the median of its per-round
//! ratios to the bare client. On a machine whose load drifts, criterion's variants, measured
//! one after another, drift apart by more than they differ; interleaved rounds slow alike.

use std::hint::black_box;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh_core::config::*;

/// An upstream as a service looks: a plain hyper HTTP/1.1 server answering a short fixed body
/// (the test upstreams of `mesh_proxy::test_util` echo request headers back, which would make
/// the upstream's own work grow with what the mesh adds).
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let _ = conn.set_nodelay(true);
            let svc = hyper::service::service_fn(|_req| async {
                let body = http_body_util::Full::new(Bytes::from_static(b"reviews v1"));
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(conn), svc);
            tokio::spawn(conn);
        }
    });
    addr
}

fn bootstrap(hosts: [SocketAddr; 2], retry: bool, lean: bool) -> Bootstrap {
    let mut route = Route::prefix("/", "reviews");
    if let Action::Route(a) = &mut route.action
        && retry
    {
        a.retry_policy = Some(RetryPolicy {
            retry_on: "5xx,connect-failure".into(),
            num_retries: 2,
            retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
            host_selection_retry_max_attempts: 3,
            ..RetryPolicy::default()
        });
    }
    let mut hcm = HttpConnectionManager::with_routes(
        RouteConfiguration::new("out")
            .with_virtual_host(VirtualHost::new("reviews", ["*"]).with_route(route)),
    );
    hcm.access_log.clear();
    if lean {
        // Envoy's switches for the headers it adds: no generated `x-request-id`, and no
        // `x-envoy-*` headers (`x-envoy-expected-rq-timeout-ms`) on the upstream request.
        hcm.generate_request_id = false;
        hcm.suppress_envoy_headers = true;
    }
    Bootstrap::default()
        .with_listener(Listener::http("out", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("reviews", hosts))
}

type Call = std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>>;

async fn get(client: &HyperClient<HttpConnector, Empty<Bytes>>, uri: &http::Uri) -> Bytes {
    let resp = client.get(uri.clone()).await.expect("a response");
    assert!(resp.status().is_success());
    resp.into_body().collect().await.expect("a body").to_bytes()
}

/// A variant's call, made afresh each time.
type Variant = std::sync::Arc<dyn Fn() -> Call + Send + Sync>;

/// The runtime, the variants (bare first) and what must live as long as they do.
struct Setup {
    rt: tokio::runtime::Runtime,
    variants: Vec<(&'static str, Variant)>,
    _keep: Box<dyn std::any::Any>,
}

impl Setup {
    /// `iters` calls in one task on the runtime; the time the task measured.
    fn run(&self, iters: u64, call: Variant) -> std::time::Duration {
        self.rt.block_on(async move {
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                for _ in 0..iters {
                    black_box(call().await);
                }
                start.elapsed()
            })
            .await
            .unwrap()
        })
    }
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (a, b, client, plain, lean, sidecar) = rt.block_on(async {
        let (a, b) = (upstream().await, upstream().await);
        let boot = bootstrap([a, b], true, false);
        let client = mesh_proxy::Client::start(mesh_proxy::Proxy::builder(boot.clone()), "out")
            .await
            .unwrap();
        let plain = bootstrap([a, b], false, false);
        let plain = mesh_proxy::Client::start(mesh_proxy::Proxy::builder(plain), "out")
            .await
            .unwrap();
        let lean = bootstrap([a, b], true, true);
        let lean = mesh_proxy::Client::start(mesh_proxy::Proxy::builder(lean), "out")
            .await
            .unwrap();
        let sidecar = mesh_proxy::Proxy::builder(boot)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        (a, b, client, plain, lean, sidecar)
    });
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let direct: http::Uri = format!("http://{a}/reviews/1").parse().unwrap();
    let via_sidecar: http::Uri =
        format!("http://{}/reviews/1", sidecar.listener_addr("out").unwrap())
            .parse()
            .unwrap();

    let hyper = std::sync::Arc::new(hyper);
    Setup {
        rt,
        variants: vec![
            ("bare_hyper_util", via_hyper(&hyper, direct)),
            ("in_process_client", via_client(client)),
            ("in_process_client_no_retry_policy", via_client(plain)),
            (
                "in_process_client_without_generated_headers",
                via_client(lean),
            ),
            ("via_sidecar", via_hyper(&hyper, via_sidecar)),
        ],
        _keep: Box::new((b, sidecar)),
    }
}

/// Calls `uri` with the bare hyper-util client.
fn via_hyper(
    hyper: &std::sync::Arc<HyperClient<HttpConnector, Empty<Bytes>>>,
    uri: http::Uri,
) -> Variant {
    let h = hyper.clone();
    std::sync::Arc::new(move || {
        let (h, u) = (h.clone(), uri.clone());
        Box::pin(async move { get(&h, &u).await })
    })
}

/// Calls `reviews` through an in-process client.
fn via_client(client: mesh_proxy::Client) -> Variant {
    let cl = std::sync::Arc::new(client);
    std::sync::Arc::new(move || {
        let cl = cl.clone();
        Box::pin(async move {
            let req = http::Request::get("http://reviews/reviews/1")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = cl.send(req).await;
            assert!(resp.status().is_success());
            resp.into_body().collect().await.unwrap().to_bytes()
        })
    })
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut g = c.benchmark_group("client");
    for (name, call) in &s.variants {
        g.bench_function(*name, |bench| {
            bench.iter_custom(|iters| s.run(iters, call.clone()))
        });
    }
    g.finish();
}

/// `rounds` rounds of every variant in turn, after one round to warm up.
fn interleave(rounds: usize) {
    const CALLS: u32 = 2_000;
    let s = setup();
    let mut per_call: Vec<Vec<f64>> = vec![Vec::new(); s.variants.len()];
    for round in 0..=rounds {
        for (i, (_, call)) in s.variants.iter().enumerate() {
            let t = s.run(u64::from(CALLS), call.clone());
            if round > 0 {
                per_call[i].push(t.as_secs_f64() * 1e6 / f64::from(CALLS));
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("{:<46} {:>12} {:>8}", "variant", "µs/call", "ratio");
    for (i, (name, _)) in s.variants.iter().enumerate() {
        let ratios = per_call[i]
            .iter()
            .zip(&per_call[0])
            .map(|(v, b)| v / b)
            .collect();
        println!(
            "{name:<46} {:>12.2} {:>8.3}",
            median(per_call[i].clone()),
            median(ratios)
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("CLIENT_INTERLEAVE") {
        Ok(r) => interleave(r.parse().expect("CLIENT_INTERLEAVE is a number of rounds")),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
