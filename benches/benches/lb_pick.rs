//! Host pick cost of every mesh-lb balancer at 10 to 10,000 endpoints, alone and with a
//! second thread picking from the same balancer at the same time, and the build cost of the
//! ring-hash and Maglev tables.
//!
//! Picks go through `ClusterLb::pick_index_with`, so they include the priority choice and the
//! snapshot load, as the proxy pays them.
//!
//! ```text
//! cargo bench -p mesh-benches --bench lb_pick -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::config::{Cluster, LbPolicy};
use mesh_lb::balancer::{Maglev, RingHash};
use mesh_lb::{ClusterLb, Host, PickContext, mix64};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn cluster(policy: LbPolicy, n: usize, weighted: bool) -> Cluster {
    let mut c = Cluster::new_static(
        "bench",
        (0..n).map(|i| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8080))),
    );
    if weighted {
        for (i, ep) in c.load_assignment.as_mut().unwrap().endpoints[0]
            .lb_endpoints
            .iter_mut()
            .enumerate()
        {
            ep.load_balancing_weight = (i % 5) as u32 + 1;
        }
    }
    c.lb_policy = policy;
    c
}

const POLICIES: [(&str, LbPolicy, bool); 7] = [
    ("round_robin", LbPolicy::RoundRobin, false),
    ("round_robin_weighted", LbPolicy::RoundRobin, true),
    ("least_request", LbPolicy::LeastRequest, false),
    ("least_request_weighted", LbPolicy::LeastRequest, true),
    ("random", LbPolicy::Random, false),
    ("ring_hash", LbPolicy::RingHash, false),
    ("maglev", LbPolicy::Maglev, false),
];

#[inline]
fn pick(lb: &ClusterLb, state: &mut u64) -> Option<usize> {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let r = mix64(*state);
    lb.pick_index_with(&PickContext::new(r).with_hash(Some(r.rotate_left(17))))
}

fn picks(c: &mut Criterion) {
    for (name, policy, weighted) in POLICIES {
        let mut g = c.benchmark_group(format!("pick/{name}"));
        for n in SIZES {
            let lb = ClusterLb::new(&cluster(policy, n, weighted)).unwrap();
            g.bench_with_input(BenchmarkId::new("1_thread", n), &lb, |b, lb| {
                let mut s = 1;
                b.iter(|| black_box(pick(lb, &mut s)))
            });
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                let (lb, stop) = (&lb, &stop);
                scope.spawn(move || {
                    let mut s = 2;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            black_box(pick(lb, &mut s));
                        }
                    }
                });
                g.bench_with_input(BenchmarkId::new("2_threads", n), lb, |b, lb| {
                    let mut s = 3;
                    b.iter(|| black_box(pick(lb, &mut s)))
                });
                stop.store(true, Ordering::Relaxed);
            });
        }
        g.finish();
    }
}

fn builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    // Builds take milliseconds; fewer samples keep the run short.
    g.sample_size(20);
    for n in SIZES {
        let lb = ClusterLb::new(&cluster(LbPolicy::RoundRobin, n, false)).unwrap();
        let hosts: Vec<Arc<Host>> = lb.hosts().to_vec();
        g.bench_with_input(BenchmarkId::new("maglev_65537", n), &hosts, |b, h| {
            b.iter(|| black_box(Maglev::new(h, 65537)))
        });
        g.bench_with_input(BenchmarkId::new("ring_hash", n), &hosts, |b, h| {
            b.iter(|| black_box(RingHash::new(h, 1024, 8 << 20)))
        });
    }
    g.finish();
}

criterion_group!(benches, picks, builds);
criterion_main!(benches);
