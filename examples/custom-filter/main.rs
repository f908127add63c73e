//! Embedding `mesh-proxy` with filters of your own.
//!
//! ```text
//! cargo run -p mesh-examples --example custom-filter
//! curl -si http://127.0.0.1:10001/                         # 401
//! curl -si -H 'x-api-key: secret-1' http://127.0.0.1:10001/  # 200, x-checked-by: acme.api_key
//! ```
//!
//! The filters are registered under the names the YAML file uses, and their config comes from
//! the file's `TypedStruct` values:
//! - `mesh_examples::api_key::ApiKey` checks the key and stamps the response;
//! - `mesh_examples::body_filters::Redact` rewrites response bodies (`/secret` comes back as
//!   `/******`), with a serde config type;
//! - `mesh_examples::body_filters::HostFromPick` sends the host the balancer picked as the
//!   upstream request's `Host`.

use mesh_examples::api_key::ApiKey;
use mesh_examples::body_filters::{HostFromPick, Redact};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A demo upstream to forward to, so the example runs on its own.
    let upstream = mesh_examples::demo::start_service("api").await?;
    let yaml = include_str!("proxy.yaml").replace("${UPSTREAM_PORT}", &upstream.port().to_string());

    let bootstrap = mesh_xds::envoy::parse_bootstrap(&yaml)?.strict()?;
    let proxy = mesh_proxy::Proxy::builder(bootstrap)
        .filter(ApiKey::NAME, ApiKey::from_config)
        .filter_typed(Redact::NAME, Redact::new)
        .filter(HostFromPick::NAME, |_: &serde_json::Value| {
            Ok::<_, mesh_core::BoxError>(HostFromPick)
        })
        .build()?;
    let running = proxy.start().await?;
    for (name, addr) in running.listener_addrs() {
        println!(
            "listener {name} on {addr}; try: curl -si -H 'x-api-key: secret-1' http://{addr}/"
        );
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
