//! The demo: two upstream services on loopback and an embedded proxy config routing to them.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The embedded default config (Envoy bootstrap YAML with `${...}` placeholders).
pub const DEMO_YAML: &str = include_str!("../demo.yaml");

/// Fills the demo config's placeholders.
pub fn demo_config(listen: SocketAddr, service1: SocketAddr, service2: SocketAddr) -> String {
    DEMO_YAML
        .replace("${LISTEN_HOST}", &listen.ip().to_string())
        .replace("${LISTEN_PORT}", &listen.port().to_string())
        .replace("${SERVICE1_PORT}", &service1.port().to_string())
        .replace("${SERVICE2_PORT}", &service2.port().to_string())
}

/// Starts a demo service on 127.0.0.1:0 that answers every request with
/// `hello from <name>: <method> <path>` and an `x-served-by: <name>` header.
///
/// # Errors
/// When no loopback port can be bound.
pub async fn start_service(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let body = format!(
                        "hello from {name}: {} {}\n",
                        req.method(),
                        req.uri().path_and_query().map_or("/", |p| p.as_str())
                    );
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    resp.headers_mut()
                        .insert("x-served-by", http::HeaderValue::from_static(name));
                    Ok::<_, Infallible>(resp)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The curl commands the demo prints for a proxy listening on `addr`.
pub fn curl_commands(addr: SocketAddr) -> Vec<String> {
    vec![
        format!("curl -s http://{addr}/service/1"),
        format!("curl -s http://{addr}/service/2"),
        format!("curl -s -H 'x-canary: true' http://{addr}/service/1"),
        format!("curl -si http://{addr}/old"),
        format!("curl -s --http2-prior-knowledge http://{addr}/service/2"),
    ]
}
