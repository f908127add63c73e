//! Envoy's runtime (issue #11): static layers, the admin layer, `GET /runtime` and
//! `POST /runtime_modify`, read by route matches and the fault filter.

use http::StatusCode;
use mesh_core::config::*;
use mesh_proxy::Proxy;
use mesh_proxy::test_util::{Behavior, Client, Upstream};

async fn post(admin: std::net::SocketAddr, path: &str) -> (u16, String) {
    let req = http::Request::post(format!("http://{admin}{path}"))
        .body(mesh_proxy::body::empty())
        .unwrap();
    let r = Client::http1().send(req).await;
    (r.status.as_u16(), r.text())
}

#[tokio::test]
async fn runtime_layers_drive_route_fractions_and_faults() {
    let stable = Upstream::start("stable", Behavior::Identify).await;
    let canary = Upstream::start("canary", Behavior::Identify).await;
    let mut canary_route = Route::prefix("/", "canary");
    canary_route.route_match.runtime_fraction = Some(RuntimeFraction {
        default_value: FractionalPercent::percent(0),
        runtime_key: "routing.canary".into(),
    });
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(canary_route)
            .with_route(Route::prefix("/", "stable")),
    );
    let mut hcm = HttpConnectionManager::with_routes(routes);
    hcm.http_filters.push(HttpFilterConfig::new(
        "envoy.filters.http.fault",
        serde_json::json!({"abort": {"http_status": 503, "percentage": {"numerator": 0}}}),
    ));
    let mut boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("stable", [stable.addr()]))
        .with_cluster(Cluster::new_static("canary", [canary.addr()]));
    boot.layered_runtime = LayeredRuntime {
        layers: vec![
            RuntimeLayer::static_layer(
                "base",
                serde_json::json!({"fault": {"http": {"abort": {"abort_percent": 100, "http_status": 418}}}}),
            ),
            RuntimeLayer::admin("admin"),
        ],
    };
    let p = Proxy::builder(boot)
        .admin("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let (addr, admin) = (p.listener_addr("http").unwrap(), p.admin_addr().unwrap());
    let client = Client::http1();

    // The static layer turns the fault on, with its own status.
    assert_eq!(client.get(addr, "/", &[]).await.status.as_u16(), 418);

    // The admin layer overrides it, and turns the canary route on.
    let (status, body) = post(
        admin,
        "/runtime_modify?fault.http.abort.abort_percent=0&routing.canary=100",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    let r = client.get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-upstream"), "canary");

    // An empty value removes the key: the route's default (0%) again.
    assert_eq!(post(admin, "/runtime_modify?routing.canary=").await.0, 200);
    assert_eq!(
        client.get(addr, "/", &[]).await.header("x-upstream"),
        "stable"
    );

    let runtime: serde_json::Value =
        serde_json::from_str(&client.get(admin, "/runtime", &[]).await.text()).unwrap();
    assert_eq!(runtime["layers"], serde_json::json!(["base", "admin"]));
    let e = &runtime["entries"]["fault.http.abort.abort_percent"];
    assert_eq!(e["final_value"], "0");
    assert_eq!(e["layer_values"], serde_json::json!(["100", "0"]));
    assert!(runtime["entries"].get("routing.canary").is_none());

    assert_eq!(post(admin, "/runtime_modify").await.0, 400);
}

/// Without an admin layer among configured layers, `/runtime_modify` answers 503.
#[tokio::test]
async fn runtime_modify_needs_an_admin_layer() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "up")));
    let mut boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes),
        ))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    boot.layered_runtime = LayeredRuntime {
        layers: vec![RuntimeLayer::static_layer(
            "base",
            serde_json::json!({"a": 1}),
        )],
    };
    let p = Proxy::builder(boot)
        .admin("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let (status, body) = post(p.admin_addr().unwrap(), "/runtime_modify?a=2").await;
    assert_eq!((status, body.as_str()), (503, "No admin layer specified\n"));
}
