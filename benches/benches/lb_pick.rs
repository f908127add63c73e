//! Host pick cost of every mesh-lb balancer at 10 to 10,000 endpoints, alone and with a
//! second thread picking from the same balancer at the same time, and the build cost of the
//! ring-hash and Maglev tables.
//!
//! Picks go through `ClusterLb::pick_index_with`, so they include the priority choice and the
//! snapshot load, as the proxy pays them.
//!
//! `pick/tower_p2c` is a reference point, not a mesh-lb balancer: tower's P2C balancer over the
//! same endpoint counts (see [`tower_p2c`] for what one of its picks includes).
//!
//! ```text
//! cargo bench -p mesh-benches --bench lb_pick -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::config::{Cluster, LbPolicy};
use mesh_lb::balancer::{Maglev, RingHash};
use mesh_lb::{ClusterLb, Host, PickContext, mix64};
use tower::Service;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::util::rng::HasherRng;

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

/// Tower's P2C balancer (`tower::balance::p2c::Balance`, tower 0.5) over `n` endpoints, as a
/// reference for `pick/least_request` (mesh-lb's equal-weight least request is also the power
/// of two choices over the active request count).
///
/// Each endpoint is a `service_fn` that is always ready and answers `()` with a ready future,
/// wrapped in `PendingRequests`, so its load is the in-flight request count (the analogue of
/// mesh-lb's active request count). The RNG is tower's own `HasherRng` (the one
/// `Balance::new` uses) with a fixed-key SipHash, so runs are repeatable.
///
/// What one measured pick includes, and why it is more than mesh-lb's:
/// - `poll_ready` with a no-op waker: tower runs P2C here (two `HasherRng` draws, i.e. two
///   SipHash calls, and two `load()` reads), after polling discovery (exhausted, returns at
///   once) and its pending set, and then polls the chosen endpoint's own `poll_ready`.
/// - `call(())`, then dropping the response future unpolled. Tower needs it: `poll_ready`
///   only selects an endpoint once per `call` (a second `poll_ready` re-checks the same
///   endpoint without choosing again), and `call` moves the endpoint out of the ready set
///   (an `IndexMap` swap-remove) into the pending set (a `FuturesUnordered` push, which
///   allocates), from which the next `poll_ready` moves it back. The `PendingRequests`
///   handle (an `Arc` clone) is taken by `call` and released when the future is dropped.
///
/// So this is tower's pick plus its dispatch bookkeeping and the in-flight count's
/// increment and decrement, while `pick/least_request` is only the choice
/// (`ClusterLb::pick_index_with`, including the priority choice and snapshot load; its
/// random number is a `mix64` computed in the bench loop), with no request accounting.
/// The `Balance` needs `&mut self`, so there is no 2-thread variant: sharing it across
/// threads would take a lock or `tower::buffer`, which measures something else.
fn tower_p2c(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick/tower_p2c");
    let mut cx = Context::from_waker(Waker::noop());
    for n in SIZES {
        let endpoints: Vec<_> = (0..n)
            .map(|_| {
                PendingRequests::new(
                    tower::service_fn(|()| {
                        std::future::ready(Ok::<(), std::convert::Infallible>(()))
                    }),
                    CompleteOnResponse::default(),
                )
            })
            .collect();
        let rng = HasherRng::with_hasher(std::hash::BuildHasherDefault::<
            std::collections::hash_map::DefaultHasher,
        >::default());
        let mut lb = Balance::from_rng(ServiceList::new::<()>(endpoints), rng);
        // The first `poll_ready` takes every endpoint from discovery into the pending set;
        // each `poll_ready` moves at least min(pending, 32) of them to the ready set (the
        // `FuturesUnordered` yields after 32 polls), so `n` calls leave none pending and
        // the measurement starts from the steady state (one endpoint cycles per pick).
        for _ in 0..n {
            assert!(matches!(lb.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        }
        drop(lb.call(()));
        assert_eq!(lb.len(), n);
        g.bench_function(BenchmarkId::new("1_thread", n), |b| {
            b.iter(|| {
                assert!(matches!(lb.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                black_box(lb.call(()))
            })
        });
    }
    g.finish();
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

criterion_group!(benches, picks, tower_p2c, builds);
criterion_main!(benches);
