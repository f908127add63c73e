//! The admin server: Envoy's admin endpoints for seeing into and steering a running proxy.
//!
//! Off unless the bootstrap has an `admin` block or the builder names an address. Read-only
//! endpoints answer `GET`; mutating ones require `POST` (405 otherwise); unknown paths get 404
//! with the list of endpoints. A mutating request that a web page could have sent (a foreign
//! `Origin`, or a `Host` that is neither an address nor `localhost`) is refused with 403.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::config::{Cluster, RouteSource};
use mesh_lb::health::HealthFlag;
use mesh_xds::envoy::dump;
use mesh_xds::xds::client::DynamicResource;
use mesh_xds::xds::resource::ResourceType;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::Inner;
use crate::access_log::iso8601;
use crate::body::{self, ProxyBody};

/// The endpoints, for the 404 page: (path, method, help).
const ENDPOINTS: &[(&str, &str, &str)] = &[
    (
        "/clusters",
        "GET",
        "upstream clusters and hosts with their state (?format=json)",
    ),
    (
        "/config_dump",
        "GET",
        "the running config in Envoy's ConfigDump shape (?resource=, ?mask=)",
    ),
    (
        "/drain_listeners",
        "POST",
        "stop accepting on every listener and drain",
    ),
    (
        "/healthcheck/fail",
        "POST",
        "report not ready (/ready answers 503)",
    ),
    ("/healthcheck/ok", "POST", "report ready again"),
    (
        "/listeners",
        "GET",
        "listeners and their bound addresses (?format=json)",
    ),
    (
        "/logging",
        "POST",
        "set the log level (?level=trace|debug|info|warn|error|off)",
    ),
    ("/quitquitquit", "POST", "drain and exit"),
    (
        "/runtime",
        "GET",
        "the runtime's layers and every key's value (JSON)",
    ),
    (
        "/runtime_modify",
        "POST",
        "set admin-layer runtime keys (?key=value; an empty value removes the key)",
    ),
    (
        "/ready",
        "GET",
        "200 LIVE when config is loaded and listeners are up",
    ),
    ("/server_info", "GET", "version, state, uptime"),
    (
        "/stats",
        "GET",
        "stats in Envoy's text format (?filter=REGEX, ?usedonly)",
    ),
    (
        "/stats/prometheus",
        "GET",
        "stats in Prometheus exposition format (?filter=, ?usedonly)",
    ),
];

/// Serves the admin API until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let errors = inner
        .shared
        .stats
        .counter(mesh_core::stats::StatName::listener(
            "admin",
            "downstream_cx_accept_error",
        ));
    let mut listener = crate::listener::Acceptor::new(listener, "admin".into(), errors);
    loop {
        let (stream, _) = listener.accept().await;
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let inner = Arc::clone(&inner);
                async move {
                    let resp =
                        if req.uri().path() == "/runtime_modify" && req.method() == Method::POST {
                            runtime_modify(&inner, &req).await
                        } else {
                            handle(&inner, &req)
                        };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Why a mutating admin request may come from a web page rather than an operator: a browser
/// on the same host can send a cross-origin "simple" POST (no preflight), or reach the admin
/// port under a name of its own through DNS rebinding. A state-changing request must name
/// the admin server by address or `localhost`, and an `Origin`, when present, must be that
/// same origin.
fn foreign_request(req: &Request<Incoming>) -> Option<&'static str> {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let Some(host) = host else {
        return Some("an admin request without a host");
    };
    let name = crate::headers::strip_port(host).0;
    let literal = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    if !literal && !name.eq_ignore_ascii_case("localhost") {
        return Some("an admin request for a host that is not an address or localhost");
    }
    match req.headers().get(header::ORIGIN).map(|o| o.to_str()) {
        None => None,
        Some(Ok(origin))
            if origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host)) =>
        {
            None
        }
        Some(_) => Some("a cross-origin admin request"),
    }
}

/// `GET /runtime`: Envoy's shape, `{"layers": [names], "entries": {key: {"final_value",
/// "layer_values": [per layer]}}}`.
fn runtime(inner: &Arc<Inner>) -> Response<ProxyBody> {
    let snap = inner.shared.store.load();
    let admin = inner
        .shared
        .admin_runtime
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let rt = mesh_core::runtime::Runtime::new(&snap.value.bootstrap.layered_runtime, &admin);
    let entries: serde_json::Map<String, Value> = rt
        .entries()
        .map(|(k, last, per_layer)| {
            let layers: Vec<Value> = per_layer
                .iter()
                .map(|v| Value::String(v.clone().unwrap_or_default()))
                .collect();
            (
                k.to_owned(),
                json!({"final_value": last.unwrap_or_default(), "layer_values": layers}),
            )
        })
        .collect();
    json_response(&json!({"layers": rt.layer_names(), "entries": entries}))
}

/// `POST /runtime_modify?key=value…`: sets (an empty value removes) admin-layer keys and
/// recompiles the running config with them, as a reload does: an invalid result is refused
/// and the keys are put back.
async fn runtime_modify(inner: &Arc<Inner>, req: &Request<Incoming>) -> Response<ProxyBody> {
    if let Some(why) = foreign_request(req) {
        return text(StatusCode::FORBIDDEN, format!("{why}: refused\n"));
    }
    let q = query(req);
    if q.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: /runtime_modify?key1=value1&key2=value2\n",
        );
    }
    let bootstrap = (*inner.shared.store.load().value.bootstrap).clone();
    if !mesh_core::runtime::Runtime::has_admin_layer(&bootstrap.layered_runtime) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "No admin layer specified\n",
        );
    }
    let before = {
        let mut admin = inner
            .shared
            .admin_runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let before = admin.clone();
        for (k, v) in q {
            if v.is_empty() {
                admin.remove(&k);
            } else {
                admin.insert(k, v);
            }
        }
        before
    };
    match inner.reload(bootstrap).await {
        Ok(_) => {
            tracing::info!("runtime modified");
            text(StatusCode::OK, "OK\n")
        }
        Err(e) => {
            *inner
                .shared
                .admin_runtime
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = before;
            let cause = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default();
            text(StatusCode::BAD_REQUEST, format!("{e}: {cause}\n"))
        }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<ProxyBody> {
    let mut r = Response::new(body::full(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

fn json_response(v: &Value) -> Response<ProxyBody> {
    let mut r = Response::new(body::full(
        serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
    ));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), percent_decode(v)),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(inner: &Arc<Inner>, req: &Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path();
    let Some(&(_, method, _)) = ENDPOINTS.iter().find(|(p, _, _)| *p == path) else {
        if let Some((_, _, page)) = inner.pages.0.iter().find(|(p, _, _)| *p == path) {
            return text(StatusCode::OK, page());
        }
        let mut help = String::from("unknown admin endpoint; the endpoints are:\n");
        for (p, m, h) in ENDPOINTS {
            let _ = writeln!(help, "  {m:4} {p}: {h}");
        }
        for (p, h, _) in &inner.pages.0 {
            let _ = writeln!(help, "  GET  {p}: {h}");
        }
        return text(StatusCode::NOT_FOUND, help);
    };
    if method == "POST" && req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} changes the proxy's state: use POST\n"),
        );
    }
    if method == "POST"
        && let Some(why) = foreign_request(req)
    {
        return text(StatusCode::FORBIDDEN, format!("{why}: refused\n"));
    }
    let q = query(req);
    match path {
        "/ready" => {
            if inner.is_ready() {
                text(StatusCode::OK, "LIVE\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
            }
        }
        "/runtime" => runtime(inner),
        "/healthcheck/fail" => {
            inner.set_healthcheck_failed(true);
            text(StatusCode::OK, "OK\n")
        }
        "/healthcheck/ok" => {
            inner.set_healthcheck_failed(false);
            text(StatusCode::OK, "OK\n")
        }
        "/drain_listeners" => {
            inner.drain_listeners();
            text(StatusCode::OK, "OK\n")
        }
        "/quitquitquit" => {
            inner.request_quit();
            text(StatusCode::OK, "OK\n")
        }
        "/logging" => match q.get("level") {
            Some(level) => match inner.set_log_level(level) {
                Ok(()) => text(StatusCode::OK, format!("log level set to {level}\n")),
                Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            },
            None => text(
                StatusCode::BAD_REQUEST,
                "give ?level=trace|debug|info|warn|error|off\n",
            ),
        },
        "/listeners" => listeners(inner, q.contains_key("format") && q["format"] == "json"),
        "/server_info" => server_info(inner),
        "/stats" => stats(inner, &q, false),
        "/stats/prometheus" => stats(inner, &q, true),
        "/clusters" => clusters(inner, q.get("format").is_some_and(|f| f == "json")),
        "/config_dump" => config_dump(inner, &q),
        _ => text(StatusCode::NOT_FOUND, "unknown admin endpoint\n"),
    }
}

fn listeners(inner: &Inner, json: bool) -> Response<ProxyBody> {
    let addrs = inner.listener_addrs();
    if json {
        let statuses: Vec<Value> = addrs
            .iter()
            .map(|(n, a)| {
                json!({"name": n, "local_address": {"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}}})
            })
            .collect();
        return json_response(&json!({ "listener_statuses": statuses }));
    }
    let mut out = String::new();
    for (n, a) in addrs {
        let _ = writeln!(out, "{n}::{a}");
    }
    text(StatusCode::OK, out)
}

fn server_info(inner: &Inner) -> Response<ProxyBody> {
    let uptime = inner.started.elapsed().unwrap_or_default().as_secs();
    let state = if inner.is_ready() { "LIVE" } else { "DRAINING" };
    json_response(&json!({
        "version": concat!("mesh-proxy/", env!("CARGO_PKG_VERSION")),
        "state": state,
        "uptime_current_epoch": format!("{uptime}s"),
        "uptime_all_epochs": format!("{uptime}s"),
        "config_version": inner.shared.store.load().version,
        "command_line_options": {"drain_time": format!("{}s", inner.drain_time.as_secs_f64())},
    }))
}

fn stats(inner: &Inner, q: &HashMap<String, String>, prometheus: bool) -> Response<ProxyBody> {
    let filter = match q.get("filter").filter(|f| !f.is_empty()) {
        Some(f) => match regex::Regex::new(f) {
            Ok(r) => Some(r),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid filter regex: {e}\n"),
                );
            }
        },
        None => None,
    };
    let used_only = q.contains_key("usedonly");
    let registry = &inner.shared.stats;
    let mut keep = std::collections::HashSet::new();
    registry.for_each(|n, v| {
        let used = !used_only || !v.is_zero();
        let matched = filter.as_ref().is_none_or(|r| r.is_match(&n.envoy));
        if used && matched {
            keep.insert(n.envoy.clone());
        }
    });
    if prometheus {
        let mut r = text(
            StatusCode::OK,
            registry.render_prometheus_filtered(|n| keep.contains(&n.envoy)),
        );
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return r;
    }
    let mut rows = Vec::new();
    registry.for_each(|n, v| {
        if keep.contains(&n.envoy) {
            rows.push(format!("{}: {v}\n", n.envoy));
        }
    });
    rows.sort();
    text(StatusCode::OK, rows.concat())
}

/// Envoy's `health_flags`: `healthy`, or each failing reason prefixed with `/`.
fn health_flags(h: &mesh_lb::Host) -> String {
    let reasons = [
        (HealthFlag::FailedActiveHc, "/failed_active_hc"),
        (HealthFlag::FailedOutlierCheck, "/failed_outlier_check"),
        (HealthFlag::FailedEdsHealth, "/failed_eds_health"),
        (HealthFlag::DegradedActiveHc, "/degraded_active_hc"),
        (HealthFlag::DegradedEdsHealth, "/degraded_eds_health"),
    ];
    let s: String = reasons
        .iter()
        .filter(|(f, _)| h.has_flag(*f))
        .map(|(_, n)| *n)
        .collect();
    if s.is_empty() {
        "healthy".to_owned()
    } else {
        s
    }
}

fn host_stats(
    pool: &crate::upstream::HostPool,
    active: u64,
) -> Vec<(&'static str, u64, &'static str)> {
    let s = &pool.host_stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    vec![
        ("cx_active", l(&s.cx_active), "GAUGE"),
        ("cx_connect_fail", l(&s.cx_connect_fail), "COUNTER"),
        ("cx_total", l(&s.cx_total), "COUNTER"),
        ("rq_active", active, "GAUGE"),
        ("rq_error", l(&s.rq_error), "COUNTER"),
        ("rq_success", l(&s.rq_success), "COUNTER"),
        ("rq_timeout", l(&s.rq_timeout), "COUNTER"),
        ("rq_total", l(&s.rq_total), "COUNTER"),
    ]
}

fn clusters(inner: &Inner, json: bool) -> Response<ProxyBody> {
    let snap = inner.shared.store.load_full();
    let mut names: Vec<&String> = snap.value.clusters.keys().collect();
    names.sort();
    if json {
        let statuses: Vec<Value> = names
            .iter()
            .map(|name| {
                let c = &snap.value.clusters[*name];
                let hosts: Vec<Value> = c
                    .lb
                    .hosts()
                    .iter()
                    .zip(&c.pools)
                    .map(|(h, p)| {
                        let stats: Vec<Value> = host_stats(p, h.active_requests())
                            .into_iter()
                            .map(|(n, v, t)| json!({"name": n, "value": v, "type": t}))
                            .collect();
                        json!({
                            "address": {"socket_address": {"address": h.address().host, "port_value": h.address().port}},
                            "stats": stats,
                            "health_status": {
                                "eds_health_status": if h.has_flag(HealthFlag::FailedEdsHealth) {
                                    "UNHEALTHY"
                                } else if h.has_flag(HealthFlag::DegradedEdsHealth) {
                                    "DEGRADED"
                                } else {
                                    "HEALTHY"
                                },
                                "failed_outlier_check": h.has_flag(HealthFlag::FailedOutlierCheck),
                                "failed_active_health_check": h.has_flag(HealthFlag::FailedActiveHc),
                            },
                            "weight": h.weight(),
                            "hostname": h.hostname().unwrap_or(""),
                            "locality": {"region": h.locality().region, "zone": h.locality().zone, "sub_zone": h.locality().sub_zone},
                        })
                    })
                    .collect();
                json!({"name": name, "observability_name": name, "host_statuses": hosts})
            })
            .collect();
        return json_response(&json!({ "cluster_statuses": statuses }));
    }
    let mut out = String::new();
    let dynamic = inner.xds_state();
    for name in names {
        let c = &snap.value.clusters[name];
        let _ = writeln!(out, "{name}::observability_name::{name}");
        for (label, prio) in [
            (
                "default_priority",
                mesh_core::config::RoutingPriority::Default,
            ),
            ("high_priority", mesh_core::config::RoutingPriority::High),
        ] {
            let t = c.config.thresholds(prio);
            let _ = writeln!(
                out,
                "{name}::{label}::max_connections::{}",
                t.max_connections
            );
            let _ = writeln!(
                out,
                "{name}::{label}::max_pending_requests::{}",
                t.max_pending_requests
            );
            let _ = writeln!(out, "{name}::{label}::max_requests::{}", t.max_requests);
            let _ = writeln!(out, "{name}::{label}::max_retries::{}", t.max_retries);
        }
        let _ = writeln!(
            out,
            "{name}::added_via_api::{}",
            added_via_api(dynamic.as_ref(), name)
        );
        for (h, p) in c.lb.hosts().iter().zip(&c.pools) {
            let a = h.address();
            for (stat, v, _) in host_stats(p, h.active_requests()) {
                let _ = writeln!(out, "{name}::{a}::{stat}::{v}");
            }
            let _ = writeln!(out, "{name}::{a}::hostname::{}", h.hostname().unwrap_or(""));
            let _ = writeln!(out, "{name}::{a}::health_flags::{}", health_flags(h));
            let _ = writeln!(out, "{name}::{a}::weight::{}", h.weight());
            let _ = writeln!(out, "{name}::{a}::region::{}", h.locality().region);
            let _ = writeln!(out, "{name}::{a}::zone::{}", h.locality().zone);
            let _ = writeln!(out, "{name}::{a}::sub_zone::{}", h.locality().sub_zone);
            let _ = writeln!(out, "{name}::{a}::canary::false");
            let _ = writeln!(out, "{name}::{a}::success_rate::-1");
        }
    }
    text(StatusCode::OK, out)
}

/// Whether a cluster came from a control plane.
fn added_via_api(dynamic: Option<&mesh_xds::xds::client::XdsState>, cluster: &str) -> bool {
    dynamic.is_some_and(|d| {
        d.resources
            .get(&ResourceType::Cluster)
            .is_some_and(|m| m.contains_key(cluster))
    })
}

/// Envoy's `ConfigDump`: one entry per resource kind, each with its `@type`. The resources
/// inside are Envoy v3 messages as Envoy's JSON mapping prints them (written by
/// [`mesh_xds::envoy::dump`]: snake_case fields, durations as `"1.5s"`, enums by name, defaults
/// left out), so tools written for Envoy's `/config_dump` read them. Route configurations named
/// by RDS listeners are listed among the static route configs.
fn config_dump(inner: &Inner, q: &HashMap<String, String>) -> Response<ProxyBody> {
    let snap = inner.shared.store.load_full();
    let b = &snap.value.bootstrap;
    let version = snap.version.to_string();
    let updated = iso8601(*inner.last_updated.lock().unwrap_or_else(|p| p.into_inner()));
    let cluster_entry = |c: &Cluster| {
        // An EDS cluster's endpoints are listed with the endpoint configs, as Envoy's are.
        let json = if c.discovery_type == mesh_core::config::DiscoveryType::Eds {
            dump::cluster(&Cluster {
                load_assignment: None,
                ..c.clone()
            })
        } else {
            dump::cluster(c)
        };
        json!({"cluster": with_type("envoy.config.cluster.v3.Cluster", json), "last_updated": updated})
    };
    // Resources from a control plane (xDS), listed apart from the static ones as Envoy does.
    let dynamic = inner.xds_state().unwrap_or_default();
    let empty = std::collections::BTreeMap::new();
    let of = |t: ResourceType| dynamic.resources.get(&t).unwrap_or(&empty);
    let is_dynamic = |t: ResourceType, name: &str| of(t).contains_key(name);
    let dyn_version = |t: ResourceType| dynamic.versions.get(&t).cloned().unwrap_or_default();
    let dyn_entry = |key: &str, type_name: &str, r: &DynamicResource| {
        json!({
            "version_info": r.version_info,
            key: with_type(type_name, r.resource.to_json()),
            "last_updated": iso8601(r.last_updated),
        })
    };
    let mut route_configs = Vec::new();
    for l in &b.listeners {
        for hcm in l.hcms() {
            if let RouteSource::RouteConfig(rc) = &hcm.route {
                route_configs.push(json!({
                    "route_config": with_type("envoy.config.route.v3.RouteConfiguration", dump::route_configuration(rc)),
                    "last_updated": updated,
                }));
            }
        }
    }
    for rc in &b.route_configs {
        if is_dynamic(ResourceType::Route, &rc.name) {
            continue;
        }
        route_configs.push(json!({
            "route_config": with_type("envoy.config.route.v3.RouteConfiguration", dump::route_configuration(rc)),
            "last_updated": updated,
        }));
    }
    let endpoint_configs: Vec<Value> = b
        .clusters
        .iter()
        .filter(|c| c.discovery_type != mesh_core::config::DiscoveryType::Eds)
        .filter_map(|c| c.load_assignment.as_ref())
        .map(|la| {
            json!({
                "endpoint_config": with_type("envoy.config.endpoint.v3.ClusterLoadAssignment", dump::cluster_load_assignment(la)),
                "last_updated": updated,
            })
        })
        .collect();
    const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
    const LISTENER: &str = "envoy.config.listener.v3.Listener";
    let clusters = of(ResourceType::Cluster);
    let listeners = of(ResourceType::Listener);
    let dynamic_listeners: Vec<Value> = listeners
        .iter()
        .map(|(name, r)| {
            let mut entry = serde_json::Map::new();
            entry.insert("name".into(), json!(name));
            if r.warming {
                entry.insert("warming_state".into(), dyn_entry("listener", LISTENER, r));
                // The version in service keeps serving while the new one warms.
                if let Some(active) = b.listeners.iter().find(|l| &l.name == name) {
                    entry.insert(
                        "active_state".into(),
                        json!({"listener": with_type(LISTENER, dump::listener(active)), "last_updated": updated}),
                    );
                }
            } else {
                entry.insert("active_state".into(), dyn_entry("listener", LISTENER, r));
            }
            Value::Object(entry)
        })
        .collect();
    let configs = vec![
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "bootstrap": dump::bootstrap(b),
            "last_updated": updated,
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "version_info": if dynamic.resources.is_empty() { version.clone() } else { dyn_version(ResourceType::Cluster) },
            "static_clusters": b.clusters.iter().filter(|c| !is_dynamic(ResourceType::Cluster, &c.name)).map(cluster_entry).collect::<Vec<_>>(),
            "dynamic_active_clusters": clusters.values().filter(|r| !r.warming).map(|r| dyn_entry("cluster", CLUSTER, r)).collect::<Vec<_>>(),
            "dynamic_warming_clusters": clusters.values().filter(|r| r.warming).map(|r| dyn_entry("cluster", CLUSTER, r)).collect::<Vec<_>>(),
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "version_info": if dynamic.resources.is_empty() { version } else { dyn_version(ResourceType::Listener) },
            "static_listeners": b.listeners.iter().filter(|l| !is_dynamic(ResourceType::Listener, &l.name)).map(|l| json!({
                "listener": with_type(LISTENER, dump::listener(l)),
                "last_updated": updated,
            })).collect::<Vec<_>>(),
            "dynamic_listeners": dynamic_listeners,
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "static_route_configs": route_configs,
            "dynamic_route_configs": of(ResourceType::Route).values().map(|r| dyn_entry("route_config", "envoy.config.route.v3.RouteConfiguration", r)).collect::<Vec<_>>(),
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "static_endpoint_configs": endpoint_configs,
            "dynamic_endpoint_configs": of(ResourceType::Endpoints).values().map(|r| dyn_entry("endpoint_config", "envoy.config.endpoint.v3.ClusterLoadAssignment", r)).collect::<Vec<_>>(),
        }),
    ];
    let mask: Option<Vec<&str>> = q.get("mask").map(|m| {
        m.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    });
    let apply_mask = |v: Value| match (&mask, v) {
        (Some(fields), Value::Object(mut o)) => {
            o.retain(|k, _| k == "@type" || fields.contains(&k.as_str()));
            Value::Object(o)
        }
        (_, v) => v,
    };
    match q.get("resource").filter(|r| !r.is_empty()) {
        Some(resource) => {
            let mut out = Vec::new();
            for c in &configs {
                if let Some(Value::Array(items)) = c.get(resource.as_str()) {
                    for item in items {
                        // Each item holds one resource object beside last_updated.
                        let inner_obj = item
                            .as_object()
                            .and_then(|o| {
                                o.iter()
                                    .find(|(k, _)| *k != "last_updated")
                                    .map(|(_, v)| v.clone())
                            })
                            .unwrap_or(Value::Null);
                        out.push(apply_mask(inner_obj));
                    }
                }
            }
            if out.is_empty() && !configs.iter().any(|c| c.get(resource.as_str()).is_some()) {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("unknown resource {resource:?}\n"),
                );
            }
            json_response(&json!({ "configs": out }))
        }
        None => json_response(
            &json!({ "configs": configs.into_iter().map(apply_mask).collect::<Vec<_>>() }),
        ),
    }
}

fn with_type(type_name: &str, v: Value) -> Value {
    match v {
        Value::Object(mut o) => {
            o.insert(
                "@type".into(),
                Value::String(format!("type.googleapis.com/{type_name}")),
            );
            Value::Object(o)
        }
        v => v,
    }
}
