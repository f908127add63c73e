//! The whole demo: the workloads, a sidecar and an ingress gateway, configured from Istio YAML.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use mesh_core::config::{Bootstrap, Cluster, DynamicResources, Node, UpstreamProtocol};
use mesh_proxy::{Proxy, RunningProxy};
use mesh_xds::LoadError;
use mesh_xds::istio::{self, Meta, Options, Resources, Warning};
use mesh_xds::xds::pilot::{NodeView, Pilot};
use mesh_xds::xds::server::XdsServer;

use super::Bookinfo;
#[cfg(doc)]
use super::Scenario;

/// The demo's base config: Bookinfo's Gateway (`bookinfo-gateway`, server port 8080, its
/// VirtualService to productpage) and the DestinationRules with subsets v1/v2/v3
/// (`destination-rule-all.yaml`), both as Istio ships them. No VirtualService routes the
/// services, so each spreads over its versions (Istio's default least-request balancing).
pub const BASE_YAML: &str = concat!(
    include_str!("../../bookinfo/bookinfo-gateway.yaml"),
    "\n---\n",
    include_str!("../../bookinfo/destination-rule-all.yaml"),
);

/// The gateway workload's labels, as Bookinfo's Gateway selects them.
const GATEWAY_LABELS: [(&str, &str); 1] = [("istio", "ingressgateway")];

/// How [`Demo::start`] runs the demo.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoOptions {
    /// Where the ingress gateway listens: the Gateway's server port 8080 (and 80, for
    /// Gateways written with it) is mapped here. Default `127.0.0.1:0`.
    pub gateway: SocketAddr,
    /// The base Istio YAML. Default [`BASE_YAML`].
    pub base: String,
    /// The scenario's Istio YAML, applied over the base. Default: none ([`Scenario::Default`]).
    pub scenario: String,
    /// The sidecar's admin API address. Default: none.
    pub sidecar_admin: Option<SocketAddr>,
    /// The gateway's admin API address. Default: none.
    pub gateway_admin: Option<SocketAddr>,
    /// Seeds both proxies' sampling (weights, fault and mirror fractions). Default: unseeded.
    pub random_seed: Option<u64>,
    /// How long in-flight requests get on shutdown. Default 1 second.
    pub drain_time: Duration,
    /// Configure both proxies over ADS from an in-process control plane
    /// ([`mesh_xds::xds::pilot::Pilot`]) instead of handing them the translation.
    pub ads: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            gateway: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            base: BASE_YAML.to_owned(),
            scenario: String::new(),
            sidecar_admin: None,
            gateway_admin: None,
            random_seed: None,
            drain_time: Duration::from_secs(1),
            ads: false,
        }
    }
}

// === impl DemoOptions ===

impl DemoOptions {
    /// Sets where the gateway listens (builder style).
    pub fn gateway(mut self, addr: SocketAddr) -> Self {
        self.gateway = addr;
        self
    }

    /// Replaces the base YAML (builder style).
    pub fn base(mut self, yaml: impl Into<String>) -> Self {
        self.base = yaml.into();
        self
    }

    /// Sets the scenario YAML (builder style); see [`Scenario::yaml`].
    pub fn scenario(mut self, yaml: impl Into<String>) -> Self {
        self.scenario = yaml.into();
        self
    }

    /// Serves the sidecar's and the gateway's admin APIs (builder style).
    pub fn admin(mut self, sidecar: SocketAddr, gateway: SocketAddr) -> Self {
        self.sidecar_admin = Some(sidecar);
        self.gateway_admin = Some(gateway);
        self
    }

    /// Seeds both proxies' sampling (builder style).
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.random_seed = Some(seed);
        self
    }

    /// Runs both proxies configured only over ADS, from a control plane in this process that
    /// serves the same Istio YAML (builder style).
    pub fn over_ads(mut self) -> Self {
        self.ads = true;
        self
    }
}

/// Why the demo could not start or take a config.
///
/// `Display` names only this level; the details (every Istio problem with its field path, the
/// proxy's validation errors) are in the [`source`](std::error::Error::source) chain, which a
/// command line should print.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A workload could not bind its loopback port.
    #[error("starting the Bookinfo workloads failed")]
    Workloads(#[source] std::io::Error),
    /// Istio YAML did not parse or translate; the source lists every problem with its path.
    #[error("invalid Istio config ({what})")]
    Config {
        /// Which part: `base`, `scenario`, `sidecar translation`, `gateway translation`.
        what: &'static str,
        /// What was wrong.
        #[source]
        source: LoadError,
    },
    /// A proxy rejected its config or could not bind.
    #[error("the {which} proxy failed")]
    Proxy {
        /// `sidecar` or `gateway`.
        which: &'static str,
        /// What went wrong.
        #[source]
        source: mesh_proxy::Error,
    },
    /// No Gateway selects the ingress gateway (`istio: ingressgateway`), so it would have
    /// no listener.
    #[error("no Gateway selects istio: ingressgateway, so the ingress gateway has no listener")]
    NoGateway,
    /// The proxy did not take what the control plane served it.
    #[error("the {which} proxy did not take the control plane's config in time")]
    Sync {
        /// `sidecar` or `gateway`.
        which: &'static str,
    },
}

/// Bookinfo behind a sidecar and an ingress gateway, all in this process.
///
/// Requests enter at [`Demo::gateway_addr`] (`GET /productpage`); the gateway routes them to
/// productpage, whose calls (and reviews' calls to ratings) go through the sidecar at
/// [`Demo::sidecar_addr`]. Both proxies are translated from the same Istio config
/// ([module docs](super)).
///
/// End it with [`Demo::shutdown`]: a dropped `Demo` stops the workloads, but its proxies keep
/// serving until the runtime ends (a [`RunningProxy`] only stops when shut down).
#[derive(Debug)]
pub struct Demo {
    bookinfo: Bookinfo,
    sidecar: RunningProxy,
    gateway: RunningProxy,
    gateway_addr: SocketAddr,
    sidecar_addr: SocketAddr,
    /// The service entries and the base, parsed once.
    below: Resources,
    gateway_options: Options,
    warnings: Mutex<Vec<Warning>>,
    xds: Option<XdsDemo>,
}

/// The control plane of a demo run over ADS, and what follows it.
#[derive(Debug)]
struct XdsDemo {
    pilot: Pilot,
    sidecar_view: String,
    gateway_view: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for XdsDemo {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A translated config for both proxies.
struct Translated {
    sidecar: Bootstrap,
    gateway: Bootstrap,
    warnings: Vec<Warning>,
}

// === impl Demo ===

impl Demo {
    /// Starts the workloads, then the sidecar (on an ephemeral loopback port, which the
    /// workloads are then told), then the gateway.
    ///
    /// # Errors
    /// [`DemoError::Config`] when the base or the scenario is not valid Istio YAML for these
    /// services; [`DemoError::NoGateway`] when no Gateway selects the ingress gateway;
    /// [`DemoError::Proxy`] when a proxy cannot bind; [`DemoError::Workloads`].
    pub async fn start(opts: DemoOptions) -> Result<Demo, DemoError> {
        let bookinfo = Bookinfo::start(None).await.map_err(DemoError::Workloads)?;
        let mut below = parse(&bookinfo.service_entries(), "service entries")?;
        layer(&mut below, parse(&opts.base, "base")?);
        let gateway_options = Options::gateway(GATEWAY_LABELS)
            .bind_address(opts.gateway.ip())
            .map_port(80, opts.gateway.port())
            .map_port(8080, opts.gateway.port());
        let t = translate(&below, &opts.scenario, &gateway_options)?;
        if opts.ads {
            return Self::start_over_ads(opts, bookinfo, below, gateway_options, t).await;
        }

        let proxy = |bootstrap: Bootstrap, admin: Option<SocketAddr>| {
            let mut b = Proxy::builder(bootstrap).drain_time(opts.drain_time);
            if let Some(a) = admin {
                b = b.admin(a);
            }
            if let Some(seed) = opts.random_seed {
                b = b.random_seed(seed);
            }
            b.build()
        };
        let err = |which| move |source| DemoError::Proxy { which, source };
        let sidecar = proxy(t.sidecar, opts.sidecar_admin)
            .map_err(err("sidecar"))?
            .start()
            .await
            .map_err(err("sidecar"))?;
        let sidecar_addr = first_listener(&sidecar).expect("a sidecar has its outbound listener");
        bookinfo.set_outbound(sidecar_addr);
        let gateway = match proxy(t.gateway, opts.gateway_admin) {
            Ok(p) => p.start().await,
            Err(e) => Err(e),
        };
        let gateway = match gateway {
            Ok(g) => g,
            Err(e) => {
                sidecar.shutdown().await;
                return Err(err("gateway")(e));
            }
        };
        let Some(gateway_addr) = first_listener(&gateway) else {
            gateway.shutdown().await;
            sidecar.shutdown().await;
            return Err(DemoError::NoGateway);
        };
        Ok(Demo {
            bookinfo,
            sidecar,
            gateway,
            gateway_addr,
            sidecar_addr,
            below,
            gateway_options,
            warnings: Mutex::new(t.warnings),
            xds: None,
        })
    }

    /// [`Demo::start`] with both proxies configured over ADS.
    async fn start_over_ads(
        opts: DemoOptions,
        bookinfo: Bookinfo,
        below: Resources,
        gateway_options: Options,
        t: Translated,
    ) -> Result<Demo, DemoError> {
        if t.gateway.listeners.is_empty() {
            return Err(DemoError::NoGateway);
        }
        let mut res = below.clone();
        layer(&mut res, parse(&opts.scenario, "scenario")?);
        let pilot = Pilot::new(res);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(DemoError::Workloads)?;
        let server = listener.local_addr().map_err(DemoError::Workloads)?;
        let mut tasks = vec![tokio::spawn({
            let cache = pilot.cache().clone();
            async move {
                let _ = XdsServer::new(cache)
                    .serve(listener, std::future::pending())
                    .await;
            }
        })];

        // One sidecar for every workload (no labels), and the ingress gateway, as in the
        // demo without a control plane; the gateway's server ports bind where asked.
        let mut sidecar_node = Node {
            id: "sidecar~127.0.0.1~bookinfo-sidecar.default~default.svc.cluster.local".into(),
            ..Node::default()
        };
        sidecar_node
            .metadata
            .insert("NAMESPACE".into(), "default".into());
        sidecar_node
            .metadata
            .insert("MESH_OUTBOUND_PORT".into(), 0.into());
        let mut gateway_node = Node {
            id: "router~127.0.0.1~istio-ingressgateway-0.default~default.svc.cluster.local".into(),
            ..Node::default()
        };
        gateway_node
            .metadata
            .insert("NAMESPACE".into(), "default".into());
        gateway_node.metadata.insert(
            "LABELS".into(),
            serde_json::json!(
                GATEWAY_LABELS
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                    .collect::<serde_json::Map<_, _>>()
            ),
        );
        let port = opts.gateway.port();
        gateway_node.metadata.insert(
            "MESH_PORT_MAP".into(),
            format!("80={port},8080={port}").into(),
        );
        let sidecar_view = NodeView::of(&sidecar_node).key();
        let gateway_view = NodeView::of(&gateway_node).key();

        let err = |which| move |source| DemoError::Proxy { which, source };
        let start = |node: Node, admin: Option<SocketAddr>| {
            let bootstrap = ads_bootstrap(server, node);
            let mut b = Proxy::builder(bootstrap.clone()).drain_time(opts.drain_time);
            if let Some(a) = admin {
                b = b.admin(a);
            }
            if let Some(seed) = opts.random_seed {
                b = b.random_seed(seed);
            }
            async move {
                let running = b.build()?.start().await?;
                let source =
                    mesh_proxy::source::XdsSource::connect(&bootstrap, running.stats().clone())
                        .expect("the bootstrap names its control plane");
                let follower = running.follow(source);
                Ok::<_, mesh_proxy::Error>((running, follower))
            }
        };
        let (sidecar, follower) = start(sidecar_node, opts.sidecar_admin)
            .await
            .map_err(err("sidecar"))?;
        tasks.push(follower);
        let (gateway, follower) = start(gateway_node, opts.gateway_admin)
            .await
            .map_err(err("gateway"))?;
        tasks.push(follower);
        let xds = XdsDemo {
            pilot,
            sidecar_view,
            gateway_view,
            tasks,
        };
        let ready = match xds.synced(&sidecar, &gateway).await {
            Ok(()) => first_listener(&sidecar)
                .zip(first_listener(&gateway))
                .ok_or(DemoError::NoGateway),
            Err(e) => Err(e),
        };
        let (sidecar_addr, gateway_addr) = match ready {
            Ok(addrs) => addrs,
            Err(e) => {
                // As start does: nothing is left running.
                gateway.shutdown().await;
                sidecar.shutdown().await;
                return Err(e);
            }
        };
        bookinfo.set_outbound(sidecar_addr);
        Ok(Demo {
            bookinfo,
            sidecar,
            gateway,
            gateway_addr,
            sidecar_addr,
            below,
            gateway_options,
            warnings: Mutex::new(t.warnings),
            xds: Some(xds),
        })
    }

    /// Replaces the scenario: `scenario_yaml` (e.g. [`Scenario::yaml`], or any Istio YAML)
    /// is applied over the service entries and the base, translated, and both proxies are
    /// reloaded in place (the sidecar first; their listeners keep their ports and
    /// connections). An empty text goes back to [`Scenario::Default`]. Returns the warnings
    /// of the new config (unknown or unsupported fields).
    ///
    /// # Errors
    /// [`DemoError::Config`] or [`DemoError::NoGateway`], and the running config stays;
    /// [`DemoError::Proxy`] when a proxy rejects it (if the gateway does after the sidecar
    /// took it, the sidecar runs the new config and the gateway the old).
    pub async fn apply(&self, scenario_yaml: &str) -> Result<Vec<Warning>, DemoError> {
        let t = translate(&self.below, scenario_yaml, &self.gateway_options)?;
        if t.gateway.listeners.is_empty() {
            return Err(DemoError::NoGateway);
        }
        if let Some(xds) = &self.xds {
            let mut res = self.below.clone();
            layer(&mut res, parse(scenario_yaml, "scenario")?);
            if let Err(mut errors) = xds.pilot.update(res) {
                let (_, source) = errors.swap_remove(0);
                return Err(DemoError::Config {
                    what: "control plane translation",
                    source,
                });
            }
            xds.synced(&self.sidecar, &self.gateway).await?;
            *self.warnings.lock().unwrap_or_else(|p| p.into_inner()) = t.warnings.clone();
            return Ok(t.warnings);
        }
        let err = |which| move |source| DemoError::Proxy { which, source };
        self.sidecar
            .reload(t.sidecar)
            .await
            .map_err(err("sidecar"))?;
        self.gateway
            .reload(t.gateway)
            .await
            .map_err(err("gateway"))?;
        *self.warnings.lock().unwrap_or_else(|p| p.into_inner()) = t.warnings.clone();
        Ok(t.warnings)
    }

    /// The control plane, when the demo runs over ADS.
    pub fn pilot(&self) -> Option<&Pilot> {
        self.xds.as_ref().map(|x| &x.pilot)
    }

    /// Where the ingress gateway listens (`http://ADDR/productpage`).
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// Where the sidecar's outbound listener is (`curl -H 'Host: reviews:9080' ADDR/reviews/0`).
    pub fn sidecar_addr(&self) -> SocketAddr {
        self.sidecar_addr
    }

    /// The workloads (addresses, request counts, gates).
    pub fn bookinfo(&self) -> &Bookinfo {
        &self.bookinfo
    }

    /// The sidecar proxy (stats, admin address).
    pub fn sidecar(&self) -> &RunningProxy {
        &self.sidecar
    }

    /// The gateway proxy (stats, admin address).
    pub fn gateway(&self) -> &RunningProxy {
        &self.gateway
    }

    /// The warnings of the config being served.
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Shuts the gateway down, then the sidecar (each drains its in-flight requests up to
    /// [`DemoOptions::drain_time`]), then stops the workloads.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.sidecar.shutdown().await;
        drop(self.bookinfo);
    }
}

impl XdsDemo {
    /// Waits until both proxies hold (and run) what the control plane serves them now.
    async fn synced(
        &self,
        sidecar: &RunningProxy,
        gateway: &RunningProxy,
    ) -> Result<(), DemoError> {
        for (which, proxy, view) in [
            ("sidecar", sidecar, &self.sidecar_view),
            ("gateway", gateway, &self.gateway_view),
        ] {
            let Some(mut state) = proxy.dynamic_state() else {
                return Err(DemoError::Sync { which });
            };
            let cache = self.pilot.cache();
            let done = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let holds = cache
                        .snapshot(view)
                        .is_some_and(|snap| state.borrow_and_update().holds(&snap));
                    if holds {
                        return true;
                    }
                    if state.changed().await.is_err() {
                        return false;
                    }
                }
            })
            .await;
            if done != Ok(true) {
                return Err(DemoError::Sync { which });
            }
        }
        Ok(())
    }
}

/// A bootstrap with nothing but its node and the control plane to ask.
fn ads_bootstrap(server: SocketAddr, node: Node) -> Bootstrap {
    let mut b = Bootstrap::default().with_cluster(
        Cluster::new_static("xds-grpc", [server]).with_protocol(UpstreamProtocol::Http2),
    );
    b.node = node;
    b.dynamic_resources = Some(DynamicResources::over_ads("xds-grpc"));
    b
}

fn first_listener(p: &RunningProxy) -> Option<SocketAddr> {
    p.listener_addrs().first().map(|(_, a)| *a)
}

fn parse(yaml: &str, what: &'static str) -> Result<Resources, DemoError> {
    let loaded = istio::parse_str(yaml, what, "default")
        .map_err(|source| DemoError::Config { what, source })?;
    for w in &loaded.warnings {
        tracing::warn!(%w, "istio config warning");
    }
    Ok(loaded.value)
}

/// Applies `top` over `base` as `kubectl apply` would: a resource replaces the one of the
/// same kind, namespace and name (keeping its place), others are appended.
fn layer(base: &mut Resources, top: Resources) {
    fn each<T>(base: &mut Vec<T>, top: Vec<T>, meta: fn(&T) -> &Meta) {
        for t in top {
            let same = |b: &T| {
                let (a, b) = (meta(b), meta(&t));
                a.name == b.name && a.namespace == b.namespace
            };
            match base.iter().position(same) {
                Some(i) => base[i] = t,
                None => base.push(t),
            }
        }
    }
    each(&mut base.virtual_services, top.virtual_services, |r| {
        &r.meta
    });
    each(&mut base.destination_rules, top.destination_rules, |r| {
        &r.meta
    });
    each(&mut base.gateways, top.gateways, |r| &r.meta);
    each(&mut base.service_entries, top.service_entries, |r| &r.meta);
    each(&mut base.workload_entries, top.workload_entries, |r| {
        &r.meta
    });
}

/// The scenario over `below`, translated for the sidecar and the gateway.
fn translate(
    below: &Resources,
    scenario_yaml: &str,
    gateway: &Options,
) -> Result<Translated, DemoError> {
    let mut res = Resources::default();
    layer(&mut res, below.clone());
    layer(&mut res, parse(scenario_yaml, "scenario")?);
    let cfg = |what| move |source| DemoError::Config { what, source };
    let sidecar =
        istio::translate(&res, &Options::sidecar(0)).map_err(cfg("sidecar translation"))?;
    let gw = istio::translate(&res, gateway).map_err(cfg("gateway translation"))?;
    let mut warnings = sidecar.warnings;
    warnings.extend(gw.warnings);
    Ok(Translated {
        sidecar: sidecar.value,
        gateway: gw.value,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookinfo::Scenario;

    #[test]
    fn a_later_resource_replaces_one_of_the_same_name() {
        let all_v1 = Scenario::V1.yaml();
        let mut res = istio::parse_str(&all_v1, "v1", "default").unwrap().value;
        assert_eq!(res.virtual_services.len(), 4);
        let top = istio::parse_str(&Scenario::JasonV2.yaml(), "jason", "default")
            .unwrap()
            .value;
        layer(&mut res, top);
        assert_eq!(res.virtual_services.len(), 4);
        let reviews = res
            .virtual_services
            .iter()
            .find(|v| v.meta.name == "reviews")
            .unwrap();
        assert_eq!(
            reviews.http.len(),
            2,
            "jason's rule replaced the all-v1 one"
        );
    }
}
