//! Bookinfo end to end: what a user sees through the ingress gateway (`GET /productpage`) in
//! each scenario of Istio's traffic-management tasks, with the real workloads, sidecar and
//! gateway on 127.0.0.1 and real HTTP clients.
//!
//! Istio's own Bookinfo samples are read unchanged from `../shared/conformance/istio-bookinfo/`
//! (a missing directory fails on CI, `CI=true`, and skips those tests elsewhere); the scenarios
//! Istio has no sample for use the demo's YAML ([`Scenario`]).
//!
//! Time: the delay and timeout scenarios run on a paused clock (see [`Ticker`]).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_core::stats::StatName;
use mesh_examples::bookinfo::{Demo, DemoOptions, Scenario, Workload};
use mesh_proxy::test_util::{Client, Collected};
use tokio::time::Instant;

fn samples() -> Option<PathBuf> {
    support::conformance_dir("istio-bookinfo")
}

/// Istio's sample files, joined into one YAML text, in order.
fn sample_yaml(dir: &Path, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("read {f}: {e}")))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The demo with Istio's own gateway and DestinationRules as the base.
async fn demo_on_samples(dir: &Path, scenario: &[&str]) -> Demo {
    let opts = DemoOptions::default()
        .base(sample_yaml(
            dir,
            &["bookinfo-gateway.yaml", "destination-rule-all.yaml"],
        ))
        .scenario(sample_yaml(dir, scenario))
        .random_seed(7);
    start(opts).await
}

async fn start(opts: DemoOptions) -> Demo {
    let demo = Demo::start(opts)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    // Only settings the proxy honours: a warning would mean part of a scenario is ignored.
    assert_eq!(demo.warnings(), [], "the config is fully supported");
    demo
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// One page load through the gateway, as `user` when given.
async fn page(client: &Client, addr: SocketAddr, user: Option<&str>) -> Page {
    let headers: Vec<(&str, &str)> = user.map(|u| ("end-user", u)).into_iter().collect();
    let r = client.get(addr, "/productpage", &headers).await;
    Page(r)
}

/// A product page as a user sees it.
struct Page(Collected);

impl Page {
    fn reviews(&self) -> &str {
        self.0.header("x-reviews-version")
    }
    fn stars(&self) -> &str {
        self.0.header("x-star-color")
    }
    fn details(&self) -> &str {
        self.0.header("x-details")
    }
    fn html(&self) -> String {
        self.0.text()
    }
    fn assert_ok(&self) {
        assert_eq!(self.0.status, 200, "{}", self.html());
    }
}

const REVIEWS_UNAVAILABLE: &str = "Sorry, product reviews are currently unavailable for this book.";
const DETAILS_UNAVAILABLE: &str = "Sorry, product details are currently unavailable for this book.";
const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// Paused time with real sockets. Tokio auto-advances a paused clock to the next timer when
/// the runtime parks with nothing to do. Loopback I/O is normally ready by then (checked while
/// writing this: 100 loopback round trips with a 10 s timer pending take no virtual time), but
/// a socket that is not yet readable when the runtime parks would let the clock jump to the
/// next timer, productpage's 3 s timeout say, and fail a request that was merely in flight. A
/// task that sleeps 1 ms in a loop keeps the next timer at most 1 ms away, which bounds any
/// such jump to 1 ms; when only the scenario's timers are left, the clock runs through them
/// in 1 ms steps.
struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    fn start() -> Self {
        Self(tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The demo's copies of Istio's samples (`examples/bookinfo/`) are the samples, unchanged
/// but for a first line saying where they come from.
#[test]
fn the_demo_carries_istios_samples_unchanged() {
    let Some(dir) = samples() else { return };
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("bookinfo");
    let mut copies = 0;
    for entry in std::fs::read_dir(&ours).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(rest) = text
            .strip_prefix(
                "# From istio/istio@86c9f01fd735fb01d8192f5bcaf0d424afb7f14c samples/bookinfo/networking/",
            )
            .and_then(|r| r.split_once('\n'))
            .map(|(_, body)| body)
        else {
            continue;
        };
        let name = path.file_name().unwrap();
        let theirs = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(rest, theirs, "{}", path.display());
        copies += 1;
    }
    assert_eq!(copies, 7);
}

// === default and all-v1 ===

#[tokio::test]
async fn plain_bookinfo_spreads_reviews_over_v1_v2_v3() {
    let demo = start(DemoOptions::default().random_seed(7)).await;
    let client = Client::http1();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..30 {
        let p = page(&client, demo.gateway_addr(), None).await;
        p.assert_ok();
        assert_eq!(p.details(), "available");
        let want_stars = match p.reviews() {
            "v1" => "none",
            "v2" => "black",
            "v3" => "red",
            other => panic!("unexpected reviews version {other:?}: {}", p.html()),
        };
        assert_eq!(p.stars(), want_stars);
        assert!(p.html().contains(&format!("reviews-{}-0", p.reviews())));
        *seen.entry(p.reviews().to_owned()).or_insert(0) += 1;
    }
    // No VirtualService and no load-balancer setting: Istio's default, least request, over
    // three idle endpoints picks at random, so every version answers some (a version missing
    // from 30 fair picks has probability 3·(2/3)^30 < 2e-5; the seed makes it repeatable).
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 30);
    demo.shutdown().await;
}

#[tokio::test]
async fn virtual_service_all_v1_serves_reviews_v1_without_stars() {
    let Some(dir) = samples() else { return };
    let demo = demo_on_samples(&dir, &["virtual-service-all-v1.yaml"]).await;
    let client = Client::http1();
    for user in [None, Some("jason")].into_iter().cycle().take(10) {
        let p = page(&client, demo.gateway_addr(), user).await;
        p.assert_ok();
        assert_eq!((p.reviews(), p.stars()), ("v1", "none"), "{}", p.html());
        assert!(!p.html().contains("stars-"));
    }
    let b = demo.bookinfo();
    assert_eq!(b.requests(Workload::ReviewsV1), 10);
    assert_eq!(b.requests(Workload::ReviewsV2), 0);
    assert_eq!(b.requests(Workload::ReviewsV3), 0);
    assert_eq!(b.requests(Workload::Ratings), 0);
    demo.shutdown().await;
}

// === request routing by user ===

#[tokio::test]
async fn reviews_test_v2_routes_jason_to_black_stars() {
    let Some(dir) = samples() else { return };
    let demo = demo_on_samples(
        &dir,
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-test-v2.yaml",
        ],
    )
    .await;
    let client = Client::http1();
    for _ in 0..3 {
        let p = page(&client, demo.gateway_addr(), Some("jason")).await;
        p.assert_ok();
        assert_eq!((p.reviews(), p.stars()), ("v2", "black"), "{}", p.html());
        assert!(p.html().contains("signed in as jason"));
        assert!(p.html().contains("stars-black"));

        let p = page(&client, demo.gateway_addr(), None).await;
        assert_eq!((p.reviews(), p.stars()), ("v1", "none"));
        let p = page(&client, demo.gateway_addr(), Some("alice")).await;
        assert_eq!((p.reviews(), p.stars()), ("v1", "none"));
    }
    // The login cookie counts too: productpage sends it on as `end-user`.
    let r = client
        .get(
            demo.gateway_addr(),
            "/productpage",
            &[("cookie", "user=jason")],
        )
        .await;
    assert_eq!(r.header("x-reviews-version"), "v2");
    demo.shutdown().await;
}

/// Signing in through the gateway, as a browser would: `POST /login` sets the `user` cookie,
/// which productpage sends on as `end-user`; `/logout` clears it.
#[tokio::test]
async fn signing_in_as_jason_through_the_gateway_shows_v2() {
    let demo = start(DemoOptions::default().scenario(Scenario::JasonV2.yaml())).await;
    let client = Client::http1();
    let addr = demo.gateway_addr();
    let login = http::Request::post(format!("http://{addr}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mesh_proxy::body::full("username=jason&passwd=secret"))
        .unwrap();
    let r = client.send(login).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), "/productpage");
    let cookie = r.header("set-cookie").split(';').next().unwrap().to_owned();
    assert_eq!(cookie, "user=jason");

    let p = client
        .get(addr, "/productpage", &[("cookie", &cookie)])
        .await;
    assert_eq!(p.header("x-reviews-version"), "v2");
    assert!(p.text().contains("signed in as jason"));

    let r = client.get(addr, "/logout", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 302);
    assert!(r.header("set-cookie").contains("Max-Age=0"));
    let p = page(&client, addr, None).await;
    assert_eq!(p.reviews(), "v1");
    assert!(p.html().contains("action=\"/login\""));
    demo.shutdown().await;
}

/// productpage and reviews pass on the user and the trace: the request id the gateway made
/// and the client's trace id reach ratings, two calls further.
#[tokio::test]
async fn the_user_and_the_trace_reach_ratings() {
    let demo = start(DemoOptions::default().scenario(Scenario::JasonV2.yaml())).await;
    let client = Client::http1();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let r = client
        .get(
            demo.gateway_addr(),
            "/productpage",
            &[("end-user", "jason"), ("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(r.header("x-reviews-version"), "v2");
    let b = demo.bookinfo();
    let seen = |w| b.last_request_headers(w).expect("the workload was called");
    let id_at_productpage = seen(Workload::Productpage)["x-request-id"].clone();
    for w in [Workload::Details, Workload::ReviewsV2, Workload::Ratings] {
        let h = seen(w);
        assert_eq!(h["x-request-id"], id_at_productpage, "{w:?}");
        assert_eq!(h["end-user"], "jason", "{w:?}");
        let tp = h["traceparent"].to_str().unwrap();
        assert_eq!(tp.split('-').nth(1), Some(trace_id), "{w:?}: {tp}");
    }
    assert_eq!(seen(Workload::Details)["host"], "details:9080");
    assert_eq!(seen(Workload::Ratings)["host"], "ratings:9080");
    demo.shutdown().await;
}

#[tokio::test]
async fn a_config_without_the_bookinfo_gateway_is_refused() {
    let err = Demo::start(DemoOptions::default().base(""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, mesh_examples::bookinfo::DemoError::NoGateway),
        "{}",
        chain(&err)
    );
}

// === fault injection ===

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn ratings_test_delay_makes_jasons_reviews_time_out_after_two_tries() {
    let Some(dir) = samples() else { return };
    let _ticker = Ticker::start();
    let demo = demo_on_samples(
        &dir,
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-test-v2.yaml",
            "virtual-service-ratings-test-delay.yaml",
        ],
    )
    .await;
    let client = Client::http1();

    let started = Instant::now();
    let p = page(&client, demo.gateway_addr(), Some("jason")).await;
    let took = started.elapsed();
    eprintln!("virtual time for the page: {took:?}");
    p.assert_ok();
    assert_eq!(p.reviews(), "unavailable");
    assert!(p.html().contains(REVIEWS_UNAVAILABLE), "{}", p.html());
    assert_eq!(p.details(), "available");
    // productpage's 3 s timeout, twice (one retry), against ratings' 7 s delay.
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_millis(6_500),
        "took {took:?}"
    );
    assert_eq!(demo.bookinfo().requests(Workload::ReviewsV2), 2);

    // Anyone else is fast and sees v1.
    let started = Instant::now();
    let p = page(&client, demo.gateway_addr(), None).await;
    assert_eq!(p.reviews(), "v1");
    assert!(started.elapsed() < Duration::from_millis(500));
    demo.shutdown().await;
}

#[tokio::test]
async fn ratings_test_abort_shows_jason_ratings_unavailable() {
    let Some(dir) = samples() else { return };
    let demo = demo_on_samples(
        &dir,
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-test-v2.yaml",
            "virtual-service-ratings-test-abort.yaml",
        ],
    )
    .await;
    let client = Client::http1();
    let p = page(&client, demo.gateway_addr(), Some("jason")).await;
    p.assert_ok();
    assert_eq!(p.reviews(), "v2", "reviews itself still answers");
    assert_eq!(p.stars(), "none");
    assert!(p.html().contains(RATINGS_UNAVAILABLE), "{}", p.html());
    // The abort happens in the sidecar: ratings never sees the request.
    assert_eq!(demo.bookinfo().requests(Workload::Ratings), 0);

    let p = page(&client, demo.gateway_addr(), None).await;
    assert_eq!((p.reviews(), p.stars()), ("v1", "none"));
    assert!(!p.html().contains(RATINGS_UNAVAILABLE));
    demo.shutdown().await;
}

// === traffic shifting ===

/// Sends `n` page loads and counts how many reviews v1 answered (the rest must be `other`).
async fn count_v1(demo: &Demo, n: usize, other: &str) -> usize {
    let client = Client::http1();
    let mut v1 = 0;
    for _ in 0..n {
        let p = page(&client, demo.gateway_addr(), None).await;
        match p.reviews() {
            "v1" => v1 += 1,
            v if v == other => {}
            v => panic!("reviews {v:?} is not in the split: {}", p.html()),
        }
    }
    v1
}

/// Whether `k` successes of `n` fit a binomial(n, p) within 5 standard deviations.
fn within_5_sd(k: usize, n: usize, p: f64) -> bool {
    let n_f = n as f64;
    let mean = n_f * p;
    let sd = (n_f * p * (1.0 - p)).sqrt();
    ((k as f64) - mean).abs() <= 5.0 * sd
}

const SPLIT_REQUESTS: usize = 400;

#[tokio::test]
async fn reviews_50_v3_splits_half_and_half() {
    let Some(dir) = samples() else { return };
    let demo = demo_on_samples(
        &dir,
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-50-v3.yaml",
        ],
    )
    .await;
    let v1 = count_v1(&demo, SPLIT_REQUESTS, "v3").await;
    assert!(
        within_5_sd(v1, SPLIT_REQUESTS, 0.5),
        "v1 answered {v1} of {SPLIT_REQUESTS}"
    );
    assert_eq!(
        demo.bookinfo().requests(Workload::ReviewsV3),
        SPLIT_REQUESTS - v1
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn reviews_80_20_splits_v1_and_v2() {
    let Some(dir) = samples() else { return };
    let demo = demo_on_samples(
        &dir,
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-80-20.yaml",
        ],
    )
    .await;
    let v1 = count_v1(&demo, SPLIT_REQUESTS, "v2").await;
    assert!(
        within_5_sd(v1, SPLIT_REQUESTS, 0.8),
        "v1 answered {v1} of {SPLIT_REQUESTS}"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn demo_80_20_scenario_splits_v1_and_v3() {
    let demo = start(DemoOptions::default().scenario(Scenario::V1V3EightyTwenty.yaml())).await;
    let v1 = count_v1(&demo, SPLIT_REQUESTS, "v3").await;
    assert!(
        within_5_sd(v1, SPLIT_REQUESTS, 0.8),
        "v1 answered {v1} of {SPLIT_REQUESTS}"
    );
    demo.shutdown().await;
}

// === request timeout ===

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_reviews_timeout_shows_reviews_unavailable_after_two_half_seconds() {
    let _ticker = Ticker::start();
    let demo = start(DemoOptions::default().scenario(Scenario::Timeout.yaml())).await;
    let client = Client::http1();
    let started = Instant::now();
    let p = page(&client, demo.gateway_addr(), None).await;
    let took = started.elapsed();
    eprintln!("virtual time for the page: {took:?}");
    p.assert_ok();
    assert_eq!(p.reviews(), "unavailable");
    assert!(p.html().contains(REVIEWS_UNAVAILABLE), "{}", p.html());
    // 0.5 s per try in the sidecar, two tries by productpage, far below ratings' 2 s.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1_400),
        "took {took:?}"
    );
    assert_eq!(demo.bookinfo().requests(Workload::ReviewsV2), 2);
    demo.shutdown().await;
}

// === circuit breaking ===

/// On the paused clock, so that however slow the machine, the held page load stays within
/// productpage's 3 s timeout for details.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_details_circuit_breaker_sheds_concurrent_requests_then_recovers() {
    let _ticker = Ticker::start();
    let demo = start(DemoOptions::default().scenario(Scenario::CircuitBreaker.yaml())).await;
    let client = Client::http1();
    let gate = demo.bookinfo().gate(Workload::Details).clone();
    let addr = demo.gateway_addr();
    let stat =
        |name: &str| StatName::cluster("outbound|9080|v1|details.default.svc.cluster.local", name);
    let pending = demo
        .sidecar()
        .stats()
        .gauge(stat("upstream_rq_pending_active"));

    // One page load holds details' only connection open (maxConnections: 1) ...
    gate.close();
    let load = || {
        let client = client.clone();
        tokio::spawn(async move { page(&client, addr, None).await })
    };
    let first = load();
    gate.wait_held(1).await;
    // ... and a second waits for it in the sidecar (http1MaxPendingRequests: 1).
    let second = load();
    // (The gauge is the readiness signal; on the paused clock each check is a 1 ms step, well
    // within productpage's 3 s timeout.)
    for _ in 0..500 {
        if pending.get() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(pending.get(), 1, "the second load waits for the connection");

    // Every further concurrent load overflows: 503 from the sidecar, details unavailable.
    for _ in 0..3 {
        let p = page(&client, addr, None).await;
        p.assert_ok();
        assert_eq!(p.details(), "unavailable");
        assert!(p.html().contains(DETAILS_UNAVAILABLE), "{}", p.html());
        assert_eq!(p.reviews(), "v1", "reviews has no breaker");
    }
    assert_eq!(demo.bookinfo().requests(Workload::Details), 1);
    let overflowed = demo
        .sidecar()
        .stats()
        .counter(stat("upstream_rq_pending_overflow"))
        .get();
    assert_eq!(overflowed, 3);

    // Released, the held and the waiting loads complete, and new loads succeed.
    gate.open();
    for held in [first, second] {
        let p = held.await.unwrap();
        assert_eq!(p.details(), "available", "{}", p.html());
    }
    assert_eq!(pending.get(), 0);
    for _ in 0..3 {
        let p = page(&client, addr, None).await;
        assert_eq!(p.details(), "available");
    }
    demo.shutdown().await;
}

// === mirroring ===

#[tokio::test]
async fn mirroring_copies_to_v2_while_users_see_v1_even_when_v2_is_dead() {
    let demo = start(DemoOptions::default().scenario(Scenario::Mirror.yaml())).await;
    let client = Client::http1();
    let b = demo.bookinfo();
    for _ in 0..5 {
        let p = page(&client, demo.gateway_addr(), None).await;
        assert_eq!((p.reviews(), p.stars()), ("v1", "none"));
    }
    // Mirrors are sent in the background: wait for the copies (no sleeping).
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_requests(Workload::ReviewsV2, 5),
    )
    .await
    .expect("reviews v2 got the mirrored copies");
    assert_eq!(b.requests(Workload::ReviewsV1), 5);

    b.stop(Workload::ReviewsV2);
    for _ in 0..5 {
        let p = page(&client, demo.gateway_addr(), None).await;
        p.assert_ok();
        assert_eq!((p.reviews(), p.stars()), ("v1", "none"));
    }
    assert_eq!(b.requests(Workload::ReviewsV1), 10);
    assert_eq!(
        b.requests(Workload::ReviewsV2),
        5,
        "the stopped v2 got nothing more"
    );
    demo.shutdown().await;
}

// === switching scenarios ===

#[tokio::test]
async fn apply_switches_scenarios_on_the_running_proxies() {
    let demo = start(DemoOptions::default().scenario(Scenario::V1.yaml())).await;
    let client = Client::http1();
    let addr = demo.gateway_addr();
    assert_eq!(page(&client, addr, Some("jason")).await.reviews(), "v1");

    let warnings = demo.apply(&Scenario::JasonV2.yaml()).await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(demo.gateway_addr(), addr);
    assert_eq!(page(&client, addr, Some("jason")).await.reviews(), "v2");
    assert_eq!(page(&client, addr, None).await.reviews(), "v1");

    let err = demo.apply("kind: [").await.unwrap_err();
    assert!(chain(&err).contains("scenario"), "{}", chain(&err));
    assert_eq!(
        page(&client, addr, Some("jason")).await.reviews(),
        "v2",
        "old config kept"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn every_demo_scenario_starts_and_serves_the_page() {
    let demo = start(DemoOptions::default()).await;
    let client = Client::http1();
    for s in Scenario::ALL {
        let warnings = demo
            .apply(&s.yaml())
            .await
            .unwrap_or_else(|e| panic!("{s}: {}", chain(&e)));
        assert!(warnings.is_empty(), "{s}: {warnings:?}");
        if s == Scenario::Timeout || s == Scenario::JasonDelay {
            continue; // slow on purpose; covered on the paused clock
        }
        let p = page(&client, demo.gateway_addr(), None).await;
        p.assert_ok();
        assert_eq!(p.details(), "available", "{s}");
    }
    demo.shutdown().await;
}
