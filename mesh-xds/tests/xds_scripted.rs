//! The ADS client against a scripted server that writes gRPC frames by hand: what the client
//! asks (versions, nonces, NACK details, resumption), and that an unknown type, a truncated or
//! oversized message, or a server that goes away mid-stream leaves the accepted config in place
//! with the reason counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3 as ds;
use envoy_types::pb::google::protobuf::Any;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use mesh_core::config::*;
use mesh_core::stats::{Registry, StatName};
use mesh_xds::xds::client::{AdsClient, ClientConfig, XdsUpdate};
use mesh_xds::xds::resource::{self, Resource, ResourceType};
use prost::Message;
use tokio::sync::mpsc;

/// What the scripted server does next on a stream.
enum Out {
    /// Writes these bytes (whole or partial gRPC frames).
    Raw(Bytes),
    /// Ends the response body where it is, without trailers.
    Close,
}

/// One ADS stream as the test sees it: the requests decoded, and a way to write.
struct Stream {
    requests: mpsc::UnboundedReceiver<ds::DiscoveryRequest>,
    out: mpsc::UnboundedSender<Out>,
}

impl Stream {
    async fn request(&mut self) -> ds::DiscoveryRequest {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request in time")
            .expect("the stream is open")
    }

    /// The next request of a type (others, such as EDS subscriptions, are skipped).
    async fn request_of(&mut self, t: ResourceType) -> ds::DiscoveryRequest {
        loop {
            let r = self.request().await;
            if r.type_url == t.type_url() {
                return r;
            }
        }
    }

    fn send(&self, r: &ds::DiscoveryResponse) {
        self.out.send(Out::Raw(frame(&r.encode_to_vec()))).unwrap();
    }

    fn raw(&self, b: Bytes) {
        self.out.send(Out::Raw(b)).unwrap();
    }
}

/// A gRPC length-prefixed message.
fn frame(msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(msg.len() + 5);
    b.put_u8(0);
    b.put_u32(msg.len() as u32);
    b.put_slice(msg);
    b.freeze()
}

/// A server on loopback that hands each new ADS stream to the test.
async fn scripted() -> (SocketAddr, mpsc::UnboundedReceiver<Stream>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (streams_tx, streams) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let streams_tx = streams_tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let streams_tx = streams_tx.clone();
                    async move { Ok::<_, Infallible>(serve(req, &streams_tx)) }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
            });
        }
    });
    (addr, streams)
}

type Body =
    StreamBody<tokio_stream::wrappers::UnboundedReceiverStream<Result<Frame<Bytes>, Infallible>>>;

fn serve(
    req: hyper::Request<Incoming>,
    streams: &mpsc::UnboundedSender<Stream>,
) -> hyper::Response<Body> {
    let (req_tx, requests) = mpsc::unbounded_channel();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    // Requests: decode gRPC frames from the request body.
    let mut body = req.into_body();
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                buf.extend_from_slice(&d);
            }
            while buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() < 5 + len {
                    break;
                }
                let msg = buf.split_to(5 + len);
                if let Ok(r) = ds::DiscoveryRequest::decode(&msg[5..]) {
                    let _ = req_tx.send(r);
                }
            }
        }
    });
    // Responses: what the test writes.
    tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            match o {
                Out::Raw(b) => {
                    let _ = frames_tx.send(Ok(Frame::data(b)));
                }
                Out::Close => return,
            }
        }
    });
    let _ = streams.send(Stream { requests, out });
    hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(
            tokio_stream::wrappers::UnboundedReceiverStream::new(frames_rx),
        ))
        .unwrap()
}

fn bootstrap(server: SocketAddr) -> Bootstrap {
    let mut b = Bootstrap::default()
        .with_cluster(Cluster::new_static("xds", [server]).with_protocol(UpstreamProtocol::Http2));
    b.node.id = "scripted".into();
    b.dynamic_resources = Some(DynamicResources::over_ads("xds"));
    b
}

fn start(server: SocketAddr, stats: &Arc<Registry>) -> AdsClient {
    let mut cfg = ClientConfig::from_bootstrap(&bootstrap(server)).unwrap();
    cfg.base_backoff = Duration::from_millis(10);
    cfg.max_backoff = Duration::from_millis(50);
    cfg.max_response_bytes = 1 << 20;
    AdsClient::start(cfg, stats.clone())
}

fn static_cluster(name: &str, port: u16) -> Any {
    resource::encode(&Resource::Cluster(Cluster::new_static(
        name,
        [SocketAddr::from(([127, 0, 0, 1], port))],
    )))
}

fn cds(version: &str, nonce: &str, clusters: Vec<Any>) -> ds::DiscoveryResponse {
    ds::DiscoveryResponse {
        version_info: version.into(),
        resources: clusters,
        type_url: ResourceType::Cluster.type_url().into(),
        nonce: nonce.into(),
        ..ds::DiscoveryResponse::default()
    }
}

async fn update(client: &mut AdsClient) -> XdsUpdate {
    tokio::time::timeout(Duration::from_secs(10), client.next())
        .await
        .expect("an update in time")
        .expect("the client runs")
}

fn counter(stats: &Registry, name: &str) -> u64 {
    stats.counter(StatName::plain(name)).get()
}

/// Accepts v1 (cluster `a`) on a fresh stream and returns the stream.
async fn accepted_v1(
    streams: &mut mpsc::UnboundedReceiver<Stream>,
    client: &mut AdsClient,
) -> Stream {
    let mut s = streams.recv().await.unwrap();
    let first = s.request_of(ResourceType::Cluster).await;
    assert_eq!(first.version_info, "");
    assert_eq!(first.response_nonce, "");
    assert!(
        first.resource_names.is_empty(),
        "CDS is a wildcard subscription"
    );
    assert_eq!(first.node.as_ref().map(|n| n.id.as_str()), Some("scripted"));
    s.send(&cds("v1", "n1", vec![static_cluster("a", 1)]));
    let u = update(client).await;
    assert!(u.bootstrap.cluster("a").is_some());
    u.reply(Ok(()));
    let ack = s.request_of(ResourceType::Cluster).await;
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("v1", "n1")
    );
    assert!(ack.error_detail.is_none());
    assert!(
        ack.node.is_none(),
        "the node goes on the first request only"
    );
    s
}

#[tokio::test]
async fn ack_nack_and_version_handling() {
    let (addr, mut streams) = scripted().await;
    let stats = Arc::new(Registry::new());
    let mut client = start(addr, &stats);
    let s = accepted_v1(&mut streams, &mut client).await;
    let mut s = s;

    // A response the reader refuses: NACKed with the resource, the field, the old version and
    // the new nonce; nothing is offered to the proxy.
    let mut bad = envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(
        static_cluster("b", 2).value.as_slice(),
    )
    .unwrap();
    bad.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: -3,
        nanos: 0,
    });
    let bad = Any {
        type_url: ResourceType::Cluster.type_url().into(),
        value: bad.encode_to_vec(),
    };
    s.send(&cds("v2", "n2", vec![static_cluster("a", 1), bad]));
    let nack = s.request_of(ResourceType::Cluster).await;
    assert_eq!(
        nack.version_info, "v1",
        "a NACK keeps the last accepted version"
    );
    assert_eq!(nack.response_nonce, "n2");
    let detail = nack.error_detail.expect("a NACK carries the error").message;
    assert!(detail.contains("cluster \"b\""), "{detail}");
    assert!(detail.contains("connect_timeout"), "{detail}");
    assert_eq!(counter(&stats, "cluster_manager.cds.update_rejected"), 1);

    // Bytes that are not a Cluster at all: NACKed too.
    s.send(&cds(
        "v3",
        "n3",
        vec![Any {
            type_url: ResourceType::Cluster.type_url().into(),
            value: vec![0xff, 0xff, 0xff],
        }],
    ));
    let nack = s.request_of(ResourceType::Cluster).await;
    assert_eq!(nack.response_nonce, "n3");
    assert!(nack.error_detail.unwrap().message.contains("not a valid"));

    // A resource of another type inside a CDS response: NACKed.
    s.send(&cds(
        "v4",
        "n4",
        vec![resource::encode(&Resource::Route(RouteConfiguration::new(
            "r",
        )))],
    ));
    let nack = s.request_of(ResourceType::Cluster).await;
    assert!(
        nack.error_detail
            .unwrap()
            .message
            .contains("RouteConfiguration")
    );

    // A response of a type ADS here does not carry: ignored (no ACK, no NACK), counted.
    s.send(&ds::DiscoveryResponse {
        version_info: "x".into(),
        type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into(),
        nonce: "n5".into(),
        ..ds::DiscoveryResponse::default()
    });
    // Then a good one: accepted, and ACKed with its nonce.
    s.send(&cds("v6", "n6", vec![static_cluster("c", 3)]));
    let u = update(&mut client).await;
    assert!(u.bootstrap.cluster("c").is_some());
    assert!(
        u.bootstrap.cluster("a").is_none(),
        "CDS state of the world: a is removed"
    );
    u.reply(Ok(()));
    let ack = s.request_of(ResourceType::Cluster).await;
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("v6", "n6")
    );
    assert_eq!(counter(&stats, "control_plane.bad_messages"), 1);
}

#[tokio::test]
async fn a_truncated_message_ends_the_stream_and_the_config_stays() {
    let (addr, mut streams) = scripted().await;
    let stats = Arc::new(Registry::new());
    let mut client = start(addr, &stats);
    let s = accepted_v1(&mut streams, &mut client).await;

    // A frame that announces 100 bytes and carries 10, then the end of the stream (a
    // connection cut mid-message).
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u32(100);
    b.put_slice(&[0u8; 10]);
    s.raw(b.freeze());
    s.out.send(Out::Close).unwrap();

    // The client reconnects and resumes from what it accepted.
    let mut s2 = streams.recv().await.unwrap();
    let resumed = s2.request_of(ResourceType::Cluster).await;
    assert_eq!(resumed.version_info, "v1");
    assert_eq!(resumed.response_nonce, "");
    assert!(counter(&stats, "control_plane.stream_errors") >= 1);
    assert!(counter(&stats, "control_plane.bad_messages") >= 1);
    let state = client.state();
    assert!(state.borrow().resources[&ResourceType::Cluster].contains_key("a"));
}

#[tokio::test]
async fn an_oversized_message_ends_the_stream_and_the_config_stays() {
    let (addr, mut streams) = scripted().await;
    let stats = Arc::new(Registry::new());
    let mut client = start(addr, &stats);
    let s = accepted_v1(&mut streams, &mut client).await;

    // 2 MiB against the client's 1 MiB limit.
    s.raw(frame(&vec![0u8; 2 << 20]));
    let mut s2 = streams.recv().await.unwrap();
    assert_eq!(
        s2.request_of(ResourceType::Cluster).await.version_info,
        "v1"
    );
    assert!(
        counter(&stats, "control_plane.bad_messages") >= 1,
        "{}",
        stats.render_text()
    );
    assert!(
        client.state().borrow().resources[&ResourceType::Cluster].contains_key("a"),
        "the accepted config stays"
    );
}

#[tokio::test]
async fn a_server_that_goes_away_is_reconnected_and_resumed() {
    let (addr, mut streams) = scripted().await;
    let stats = Arc::new(Registry::new());
    let mut client = start(addr, &stats);
    let s = accepted_v1(&mut streams, &mut client).await;
    let mut state = client.state();
    assert!(state.borrow().connected);

    drop(s); // the server's side of the stream goes away mid-stream
    let mut s2 = streams.recv().await.unwrap();
    let resumed = s2.request_of(ResourceType::Cluster).await;
    assert_eq!(
        resumed.version_info, "v1",
        "resumed with the accepted version"
    );
    assert!(resumed.node.is_some(), "a new stream names its node again");
    // The new stream serves as the old did.
    s2.send(&cds(
        "v2",
        "m1",
        vec![static_cluster("a", 1), static_cluster("b", 2)],
    ));
    let u = update(&mut client).await;
    assert!(u.bootstrap.cluster("b").is_some());
    u.reply(Ok(()));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !state.borrow_and_update().connected {
            state.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(
        stats
            .gauge(StatName::plain("control_plane.connected_state"))
            .get(),
        1
    );
}
