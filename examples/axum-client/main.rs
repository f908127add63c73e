//! An axum service that calls Bookinfo's `reviews` through the in-process client
//! (`mesh_proxy::Client`), configured from Istio YAML: no sidecar, the same routing, balancing
//! and retries in the service's own process.
//!
//! ```text
//! cargo run -p mesh-examples --example axum-client            # the walk-through, then exits
//! cargo run -p mesh-examples --example axum-client -- --serve # and keeps serving
//! curl -s http://127.0.0.1:PORT/reviews/0
//! ```
//!
//! The walk-through starts the Bookinfo workloads on loopback, and:
//! 1. stops `reviews-v2` and sends 30 requests: Istio's default retry policy (connect
//!    failures, another host each time) makes every one succeed, and the client's stats count
//!    the retries;
//! 2. applies Istio's 80/20 VirtualService (subsets v1 and v3 of the DestinationRule) and
//!    sends 200 requests: about 160 land on v1, 40 on v3, none on v2.
//!
//! `cargo test -p mesh-examples --example axum-client` runs the same walk-through as a test.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::{BodyExt, Empty};
use mesh_core::stats::StatName;
use mesh_examples::bookinfo::{Bookinfo, Workload};
use mesh_proxy::Client;
use mesh_xds::istio::{self, Options};

type Error = Box<dyn std::error::Error + Send + Sync>;

const SUBSETS: &str = include_str!("../bookinfo/destination-rule-all.yaml");
const SPLIT_80_20: &str = include_str!("../bookinfo/virtual-service-reviews-80-20-v3.yaml");
/// The cluster Istio names for the `reviews` service (its ServiceEntry host in namespace
/// `default`, as the DestinationRule names it).
const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";

/// The app's handler: `GET /reviews/{id}` asks `reviews` (whichever version the mesh picks)
/// and says who answered.
async fn reviews(State(client): State<Client>, Path(id): Path<u32>) -> impl IntoResponse {
    let req = http::Request::get(format!("http://reviews:9080/reviews/{id}"))
        .body(Empty::<bytes::Bytes>::new())
        .expect("a valid request");
    let resp = client.send(req).await;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // The reviews service names its pod (`reviews-v1-0`) in its JSON answer.
    let version = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["podname"]
                .as_str()
                .map(|p| p.split('-').nth(1).unwrap_or("?").to_owned())
        })
        .unwrap_or_else(|| "none".to_owned());
    let code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let text = if status.is_success() {
        format!("reviews {version} answered\n")
    } else {
        format!("{}\n", String::from_utf8_lossy(&body))
    };
    (code, [("x-reviews-version", version)], text)
}

/// Istio YAML for the client: the workloads' ServiceEntries, Bookinfo's DestinationRules and
/// `extra` (a VirtualService or nothing), translated for a sidecar.
fn bootstrap(
    bookinfo: &Bookinfo,
    extra: &str,
) -> Result<(mesh_core::config::Bootstrap, String), Error> {
    let yaml = format!(
        "{}\n---\n{SUBSETS}\n---\n{extra}",
        bookinfo.service_entries()
    );
    let resources = istio::parse_str(&yaml, "bookinfo", "default")?.value;
    let bootstrap = istio::translate(&resources, &Options::sidecar(0))?.value;
    let listener = bootstrap.listeners[0].name.clone();
    Ok((bootstrap, listener))
}

/// What the walk-through saw.
#[derive(Debug)]
struct Report {
    ok_while_v2_down: usize,
    retries: u64,
    split: BTreeMap<String, usize>,
}

/// Sends `n` requests to the app and counts the versions that answered.
async fn count_versions(app: SocketAddr, n: usize) -> Result<BTreeMap<String, usize>, Error> {
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let resp = http
            .get(format!("http://{app}/reviews/{i}").parse()?)
            .await?;
        let status = resp.status();
        let key = resp.headers()["x-reviews-version"].to_str()?.to_owned();
        let body = resp.into_body().collect().await?.to_bytes();
        let key = if status.is_success() {
            key
        } else {
            format!("status {status}: {}", String::from_utf8_lossy(&body).trim())
        };
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts)
}

async fn run(serve: bool) -> Result<Report, Error> {
    let bookinfo = Bookinfo::start(None).await?;
    let (config, listener) = bootstrap(&bookinfo, "")?;
    let client = Client::start(mesh_proxy::Proxy::builder(config), listener).await?;

    let app = axum::Router::new()
        .route("/reviews/{id}", axum::routing::get(reviews))
        .with_state(client.clone());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    tokio::spawn(async move { axum::serve(tcp, app).await });
    println!("the app listens on http://{addr}/reviews/0");

    // 1. A retry: reviews-v2 goes away; the mesh retries on another host.
    bookinfo.stop(Workload::ReviewsV2);
    let v2 = bookinfo.addr(Workload::ReviewsV2);
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(v2).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let before = bookinfo.requests(Workload::ReviewsV1) + bookinfo.requests(Workload::ReviewsV3);
    let down = count_versions(addr, 30).await?;
    let retries = client
        .proxy()
        .stats()
        .counter(StatName::cluster(REVIEWS, "upstream_rq_retry"))
        .get();
    println!("with reviews-v2 stopped: {down:?}, {retries} retries");
    let ok_while_v2_down = down
        .iter()
        .filter(|(k, _)| k.starts_with('v'))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        bookinfo.requests(Workload::ReviewsV1) + bookinfo.requests(Workload::ReviewsV3) - before,
        ok_while_v2_down
    );

    // 2. A subset split: Istio's 80/20 VirtualService, applied while the app runs.
    let (config, _) = bootstrap(&bookinfo, SPLIT_80_20)?;
    client.reload(config).await?;
    let split = count_versions(addr, 200).await?;
    println!("with the 80/20 VirtualService: {split:?}");

    if serve {
        println!("serving until Ctrl-C");
        tokio::signal::ctrl_c().await?;
    }
    client.shutdown().await;
    Ok(Report {
        ok_while_v2_down,
        retries,
        split,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let serve = std::env::args().any(|a| a == "--serve");
    let r = run(serve).await?;
    println!(
        "{} of 30 answered while reviews-v2 was down ({} retries); the 80/20 split gave {:?}",
        r.ok_while_v2_down, r.retries, r.split
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn retries_around_a_stopped_host_and_splits_by_subset() {
        let r = super::run(false).await.unwrap();
        assert_eq!(r.ok_while_v2_down, 30, "{r:?}");
        assert!(r.retries > 0, "{r:?}");
        let (v1, v3) = (r.split["v1"], r.split["v3"]);
        assert_eq!(v1 + v3, 200, "{r:?}");
        // 40 expected on v3 (sd 5.7); binomial(200, 0.2) falls outside 15..=70 about once in
        // 300,000 runs.
        assert!((15..=70).contains(&v3), "{r:?}");
    }
}
