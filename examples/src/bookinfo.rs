//! Istio's Bookinfo demo, in process: Rust stand-ins for its six workloads on loopback, a
//! sidecar and an ingress gateway built from Istio YAML, and the scenarios of Istio's
//! traffic-management tasks.
//!
//! # The workloads
//!
//! [`Bookinfo`] starts the same call graph as Istio's Bookinfo, each workload on its own
//! `127.0.0.1:0` port:
//!
//! ```text
//! gateway ─▶ productpage ─┬─▶ details
//!                         └─▶ reviews v1 | v2 ─▶ ratings
//!                                         | v3 ─▶ ratings
//! ```
//!
//! - `productpage` answers `GET /productpage` (also `/`, `/health`, and `POST /login` with a
//!   form field `username`, which sets a `user=NAME` cookie, and `GET /logout`, which clears
//!   it; both redirect to the page). It calls `details` (`GET /details/0`, 3 s timeout) and
//!   `reviews` (`GET /reviews/0`, 3 s timeout per try, one retry), concurrently, through the
//!   **outbound proxy**, naming the destination in `Host` (`details:9080`,
//!   `reviews:9080`) as a pod's request would. The signed-in user is the incoming `end-user`
//!   header, or else a `user=NAME` cookie (the real productpage keeps a login session; a cookie
//!   is the closest stateless form). It is sent on as `end-user`, together with the trace
//!   headers (`x-request-id`, `traceparent`, `tracestate`, `b3`, `x-b3-*`,
//!   `x-ot-span-context`) and `user-agent`. The page is HTML and always 200, like the real one;
//!   failures show Bookinfo's messages ("Sorry, product reviews are currently unavailable for
//!   this book.", "Sorry, product details are currently unavailable for this book."). For tests
//!   and curl users it names the reviews pod (`reviews-v2-0`), marks stars with
//!   `stars-black`/`stars-red`, and sets the response headers `x-reviews-version:
//!   v1|v2|v3|unavailable`, `x-star-color: black|red|none` and `x-details:
//!   available|unavailable`.
//! - `details` v1 answers `GET /details/ID` with the book's details as JSON.
//! - `reviews` v1, v2 and v3 answer `GET /reviews/ID` with JSON in the real service's shape
//!   (`{"id":"0","podname":"reviews-v2-0","reviews":[{"reviewer":…,"text":…,"rating":{"stars":5,"color":"black"}}]}`).
//!   v1 has no ratings; v2 (black stars) and v3 (red stars) call `ratings` through the outbound
//!   proxy (`Host: ratings:9080`, 10 s timeout, the same headers passed on). When ratings
//!   fails each review's rating is `{"error":"Ratings service is currently unavailable"}`, as
//!   the real service writes it, and productpage shows that message.
//! - `ratings` v1 answers `GET /ratings/ID` with `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`.
//!
//! Every workload counts the requests it receives ([`Bookinfo::requests`]), can hold them at
//! a [`Gate`] ([`Bookinfo::gate`]), and can be stopped ([`Bookinfo::stop`]).
//!
//! # The mesh
//!
//! [`Demo`] runs the workloads behind two proxies translated from Istio YAML by
//! [`mesh_xds::istio`]: one **sidecar** (role sidecar, one outbound listener) that every
//! workload calls through, and an **ingress gateway** (labels `istio: ingressgateway`). The
//! config is three layers, later ones replacing earlier resources of the same kind, namespace
//! and name (as `kubectl apply` of the next file would): the ServiceEntries of the workloads
//! ([`Bookinfo::service_entries`]), a base ([`BASE_YAML`]: Bookinfo's gateway and
//! DestinationRules, no VirtualService, so reviews spreads over v1/v2/v3 as plain Bookinfo does,
//! by Istio's default least-request balancing) and a [`Scenario`] (or any Istio YAML), which [`Demo::apply`] swaps at run time.
//!
//! # Examples
//!
//! ```no_run
//! use mesh_examples::bookinfo::{Demo, DemoOptions, Scenario};
//! # async fn run() -> Result<(), mesh_examples::bookinfo::DemoError> {
//! let demo = Demo::start(DemoOptions::default()).await?;
//! println!("open http://{}/productpage", demo.gateway_addr());
//! demo.apply(&Scenario::JasonV2.yaml()).await?;
//! demo.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod demo;
mod gate;
mod scenario;
mod services;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use self::demo::{BASE_YAML, Demo, DemoError, DemoOptions};
pub use self::gate::Gate;
pub use self::scenario::{Scenario, UnknownScenario};

/// What to try against a demo whose gateway listens on `gateway` and sidecar on `sidecar`
/// (for a command line to print).
///
/// ```
/// let cmds = mesh_examples::bookinfo::curl_commands(
///     "127.0.0.1:8080".parse().unwrap(),
///     "127.0.0.1:15001".parse().unwrap(),
/// );
/// assert!(cmds[0].contains("http://127.0.0.1:8080/productpage"));
/// ```
pub fn curl_commands(gateway: SocketAddr, sidecar: SocketAddr) -> Vec<String> {
    vec![
        format!("curl -si http://{gateway}/productpage | grep -i '^x-\\|reviews-v'"),
        format!("curl -s -H 'end-user: jason' -D - -o /dev/null http://{gateway}/productpage"),
        format!("curl -s -b user=jason http://{gateway}/productpage"),
        format!("curl -s -H 'Host: reviews:9080' http://{sidecar}/reviews/0"),
        format!("curl -s -H 'Host: ratings:9080' http://{sidecar}/ratings/0"),
    ]
}

/// The port every Bookinfo service listens on in the mesh (its ServiceEntry port).
pub const SERVICE_PORT: u16 = 9080;

/// One Bookinfo workload (a service at one version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// `productpage` v1.
    Productpage,
    /// `details` v1.
    Details,
    /// `reviews` v1: no ratings.
    ReviewsV1,
    /// `reviews` v2: ratings as black stars.
    ReviewsV2,
    /// `reviews` v3: ratings as red stars.
    ReviewsV3,
    /// `ratings` v1.
    Ratings,
}

// === impl Workload ===

impl Workload {
    /// Every workload, in start order.
    pub const ALL: [Workload; 6] = [
        Workload::Productpage,
        Workload::Details,
        Workload::ReviewsV1,
        Workload::ReviewsV2,
        Workload::ReviewsV3,
        Workload::Ratings,
    ];

    /// The service (`app` label): `productpage`, `details`, `reviews` or `ratings`.
    pub const fn app(self) -> &'static str {
        match self {
            Workload::Productpage => "productpage",
            Workload::Details => "details",
            Workload::ReviewsV1 | Workload::ReviewsV2 | Workload::ReviewsV3 => "reviews",
            Workload::Ratings => "ratings",
        }
    }

    /// The `version` label: `v1`, `v2` or `v3`.
    pub const fn version(self) -> &'static str {
        match self {
            Workload::ReviewsV2 => "v2",
            Workload::ReviewsV3 => "v3",
            _ => "v1",
        }
    }

    /// The pod name it reports (`reviews-v2-0`).
    pub fn podname(self) -> String {
        format!("{}-{}-0", self.app(), self.version())
    }
}

/// The six Bookinfo workloads, serving on loopback.
///
/// They call each other through one outbound proxy whose address may be set after they start
/// ([`Bookinfo::set_outbound`]): the proxy's config needs the workloads' ports, and the
/// workloads need the proxy's. Until it is set, outbound calls fail (productpage shows its
/// "unavailable" messages). Dropping a `Bookinfo` stops every workload.
#[derive(Debug)]
pub struct Bookinfo {
    running: Vec<Running>,
    outbound: watch::Sender<Option<SocketAddr>>,
}

#[derive(Debug)]
struct Running {
    workload: Workload,
    addr: SocketAddr,
    requests: watch::Sender<usize>,
    last: Arc<Mutex<Option<HeaderMap>>>,
    gate: Gate,
    stop: watch::Sender<bool>,
}

// === impl Bookinfo ===

impl Bookinfo {
    /// Starts every workload on `127.0.0.1:0`, calling through `outbound` when it is given.
    ///
    /// # Errors
    /// When a loopback port cannot be bound.
    pub async fn start(outbound: Option<SocketAddr>) -> std::io::Result<Bookinfo> {
        let (outbound, outbound_rx) = watch::channel(outbound);
        let mut running = Vec::new();
        for workload in Workload::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let requests = watch::channel(0).0;
            let last = Arc::default();
            let gate = Gate::new();
            let stop = watch::channel(false).0;
            let ctx = services::Ctx::new(
                workload,
                outbound_rx.clone(),
                requests.clone(),
                Arc::clone(&last),
                gate.clone(),
            );
            tokio::spawn(services::serve(listener, Arc::new(ctx), stop.subscribe()));
            running.push(Running {
                workload,
                addr,
                requests,
                last,
                gate,
                stop,
            });
        }
        Ok(Bookinfo { running, outbound })
    }

    /// Sets (or changes) the outbound proxy the workloads call through.
    pub fn set_outbound(&self, addr: SocketAddr) {
        self.outbound.send_replace(Some(addr));
    }

    /// The outbound proxy, when set.
    pub fn outbound(&self) -> Option<SocketAddr> {
        *self.outbound.borrow()
    }

    fn get(&self, w: Workload) -> &Running {
        self.running
            .iter()
            .find(|r| r.workload == w)
            .expect("every workload is started by Bookinfo::start")
    }

    /// Where a workload listens.
    pub fn addr(&self, w: Workload) -> SocketAddr {
        self.get(w).addr
    }

    /// How many requests a workload has received (health checks excluded).
    pub fn requests(&self, w: Workload) -> usize {
        *self.get(w).requests.borrow()
    }

    /// Completes once a workload has received at least `n` requests.
    pub async fn wait_requests(&self, w: Workload, n: usize) {
        let mut rx = self.get(w).requests.subscribe();
        let _ = rx.wait_for(|seen| *seen >= n).await;
    }

    /// The headers of the last request a workload received (health checks excluded), to see
    /// what the proxies and the callers passed on.
    pub fn last_request_headers(&self, w: Workload) -> Option<HeaderMap> {
        self.get(w)
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The gate in front of a workload's handler (open unless a test closes it).
    pub fn gate(&self, w: Workload) -> &Gate {
        &self.get(w).gate
    }

    /// Stops a workload for good: its port is closed and its open connections are dropped,
    /// so requests to it fail as they would to a dead pod.
    pub fn stop(&self, w: Workload) {
        self.get(w).stop.send_replace(true);
    }

    /// Istio ServiceEntries for the four services: hosts `productpage`, `details`, `reviews`
    /// and `ratings` (namespace `default`), port 9080 named `http`, resolution `STATIC`, one
    /// endpoint per workload on 127.0.0.1 whose `http` port maps to the workload's port,
    /// labelled `app` and `version` (so DestinationRule subsets `v1`/`v2`/`v3` select them).
    pub fn service_entries(&self) -> String {
        let mut out = String::from(
            "# The Bookinfo workloads of this process (generated by Bookinfo::service_entries).\n",
        );
        for app in ["productpage", "details", "reviews", "ratings"] {
            let _ = write!(
                out,
                "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
                 metadata:\n  name: {app}\n  namespace: default\n\
                 spec:\n  hosts: [{app}]\n  location: MESH_INTERNAL\n\
                 \x20 ports: [{{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}]\n\
                 \x20 resolution: STATIC\n  endpoints:\n"
            );
            for r in self.running.iter().filter(|r| r.workload.app() == app) {
                let _ = writeln!(
                    out,
                    "  - {{ address: {}, ports: {{ http: {} }}, labels: {{ app: {app}, version: {} }} }}",
                    r.addr.ip(),
                    r.addr.port(),
                    r.workload.version()
                );
            }
        }
        out
    }
}

impl Drop for Bookinfo {
    fn drop(&mut self) {
        for r in &self.running {
            r.stop.send_replace(true);
        }
    }
}
