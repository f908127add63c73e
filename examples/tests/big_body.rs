//! A 256 MiB body streams through the proxy binary in both directions while its peak RSS
//! grows by less than 16 MiB: bodies are streamed, never buffered whole.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use mesh_proxy::test_util::{Behavior, Upstream};
use support::ProxyProcess;

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 256 * 1024 * 1024;

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: big
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: echo, timeout: 0s }}
          http_filters:
          - name: envoy.filters.http.router
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
"#,
        upstream.port()
    )
}

async fn post_streamed(addr: std::net::SocketAddr, total: usize) -> usize {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let chunk = Bytes::from(vec![0x5a; CHUNK]);
    let frames = futures_util::stream::iter(
        (0..total / CHUNK)
            .map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    );
    let req = Request::post("/upload")
        .header("host", "big")
        .body(StreamBody::new(frames))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            n += d.len();
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_body_streams_through_with_bounded_memory() {
    let echo = Upstream::start("echo", Behavior::Echo).await;
    let file = support::temp_file("big.yaml", &config(echo.addr()));
    let p = ProxyProcess::spawn(&["--config", file.to_str().unwrap(), "--no-access-log"]);
    let (addr, _) = p.wait_ready("http");
    // Warm up so connection buffers and pools exist before the baseline is taken.
    assert_eq!(post_streamed(addr, 4 * CHUNK).await, 4 * CHUNK);
    let baseline = p.proc_kib("VmRSS");
    assert_eq!(post_streamed(addr, TOTAL).await, TOTAL);
    let peak = p.proc_kib("VmHWM");
    let growth_kib = peak.saturating_sub(baseline);
    eprintln!("mesh-proxy RSS baseline {baseline} KiB, peak {peak} KiB, growth {growth_kib} KiB");
    assert!(
        growth_kib < 16 * 1024,
        "peak RSS grew by {growth_kib} KiB while streaming 256 MiB"
    );
    assert!(p.terminate().success());
}
