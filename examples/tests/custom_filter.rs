//! The custom-filter example's shape: a user's filter registered by name and configured from
//! the YAML file that names it.

use http::StatusCode;
use mesh_examples::api_key::ApiKey;
use mesh_examples::body_filters::{HostFromPick, Redact};
use mesh_proxy::test_util::{Behavior, Client, Upstream};

/// A proxy builder with the example's three filters registered, as its `main` registers them.
fn with_example_filters(bootstrap: mesh_core::config::Bootstrap) -> mesh_proxy::ProxyBuilder {
    mesh_proxy::Proxy::builder(bootstrap)
        .filter(ApiKey::NAME, ApiKey::from_config)
        .filter_typed(Redact::NAME, Redact::new)
        .filter(HostFromPick::NAME, |_: &serde_json::Value| {
            Ok::<_, mesh_core::BoxError>(HostFromPick)
        })
}

#[tokio::test]
async fn a_filter_named_in_yaml_runs_with_its_config() {
    let upstream = Upstream::start("api", Behavior::Identify).await;
    let yaml = include_str!("../custom-filter/proxy.yaml")
        .replace("${UPSTREAM_PORT}", &upstream.addr().port().to_string())
        .replace("port_value: 10001", "port_value: 0");
    let bootstrap = mesh_xds::envoy::parse_bootstrap(&yaml)
        .unwrap()
        .strict()
        .unwrap();

    // Without the factory, the name is unknown and the config is rejected with its path.
    let err = mesh_proxy::Proxy::builder(bootstrap.clone())
        .build()
        .unwrap_err();
    let msg = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        msg.contains("http_filters[0]") && msg.contains("acme.api_key"),
        "{msg}"
    );

    // A mistake in the typed config of the body filter names its field.
    let mut bad = bootstrap.clone();
    if let Some(mesh_core::config::NetworkFilter::HttpConnectionManager(h)) =
        bad.listeners[0].chains_mut().next().map(|c| &mut c.filter)
    {
        h.http_filters[1].config = serde_json::json!({"wrod": "secret"});
    }
    let err = with_example_filters(bad).build().unwrap_err();
    let msg = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(msg.contains("wrod"), "{msg}");

    let running = with_example_filters(bootstrap)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = running.listener_addr("http").unwrap();
    let c = Client::http1();
    let denied = c.get(addr, "/x", &[]).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.text(), "missing or unknown API key\n");
    assert_eq!(
        c.get(addr, "/x", &[("x-api-key", "wrong")]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        upstream.requests(),
        0,
        "rejected requests never reach the upstream"
    );

    let ok = c.get(addr, "/x", &[("x-api-key", "secret-2")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.text(), "api GET /x");
    assert_eq!(ok.header("x-checked-by"), "acme.api_key");
    // The upstream saw the picked host as its Host, not the client's.
    assert_eq!(ok.header("x-seen-host"), upstream.addr().to_string());

    // The response body is rewritten; its length is no longer the upstream's.
    let redacted = c
        .get(addr, "/secret/plans", &[("x-api-key", "secret-1")])
        .await;
    assert_eq!(redacted.status, StatusCode::OK);
    assert_eq!(redacted.text(), "api GET /******/plans");
    running.shutdown().await;
}

#[test]
fn bad_filter_config_names_the_field() {
    let err = ApiKey::from_config(&serde_json::json!({"header": "x-api-key"})).unwrap_err();
    assert_eq!(err.to_string(), "`keys` is required and must be a list");
}
