//! A request through the proxy in process (hyper client → proxy → hyper upstream, loopback,
//! keep-alive) against the same request sent to the upstream directly, in one run, so the
//! cost the proxy adds is a ratio.
//!
//! ```text
//! cargo bench -p mesh-benches --bench proxy_e2e
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::config::*;
use mesh_proxy::test_util::{Behavior, Client, Upstream};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (upstream, proxy_addr, _running) = rt.block_on(async {
        let upstream = Upstream::start("bench", Behavior::Identify).await;
        let mut hcm =
            HttpConnectionManager::with_routes(RouteConfiguration::new("r").with_virtual_host(
                VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "bench")),
            ));
        hcm.access_log.clear();
        let boot = Bootstrap::default()
            .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
            .with_cluster(Cluster::new_static("bench", [upstream.addr()]));
        let running = mesh_proxy::Proxy::builder(boot)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let addr = running.listener_addr("http").unwrap();
        (upstream, addr, running)
    });
    let client = Client::http1();
    let mut g = c.benchmark_group("proxy_e2e");
    g.bench_function("direct", |b| {
        b.iter(|| rt.block_on(async { black_box(client.get(upstream.addr(), "/x", &[]).await) }))
    });
    g.bench_function("via_proxy", |b| {
        b.iter(|| rt.block_on(async { black_box(client.get(proxy_addr, "/x", &[]).await) }))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
