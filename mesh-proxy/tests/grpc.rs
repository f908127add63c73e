//! gRPC through the proxy with a real tonic client and server: unary and server-streaming
//! calls over HTTP/2 both sides, trailers carried through, a retry on `unavailable`, and
//! gRPC-shaped local replies the tonic client understands.
//!
//! The messages are declared with prost's derive and the calls made with tonic's generic
//! client and server, as tonic's generated code does, so the test needs no protoc.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::config::*;
use mesh_core::stats::StatName;
use mesh_proxy::{Proxy, RunningProxy};
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Hello {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(string, tag = "1")]
    message: String,
    #[prost(uint32, tag = "2")]
    seq: u32,
}

const SAY_HELLO: &str = "/demo.Greeter/SayHello";
const COUNT: &str = "/demo.Greeter/Count";

/// The unary method: fails with `unavailable` while `fail` is above zero.
#[derive(Clone)]
struct SayHello {
    calls: Arc<AtomicUsize>,
    fail: Arc<AtomicUsize>,
}

impl tower::Service<Request<Hello>> for SayHello {
    type Response = Response<Reply>;
    type Error = Status;
    type Future = Ready<Result<Response<Reply>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Hello>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
        {
            return ready(Err(Status::unavailable("warming up")));
        }
        let mut resp = Response::new(Reply {
            message: format!("hello {}", req.into_inner().name),
            seq: 0,
        });
        resp.metadata_mut()
            .insert("x-served-by", "greeter".parse().unwrap());
        ready(Ok(resp))
    }
}

/// The server-streaming method: `count` replies, then the status in the trailers
/// (`resource_exhausted` when the name is "quota", OK otherwise).
#[derive(Clone)]
struct Count;

impl tower::Service<Request<Hello>> for Count {
    type Response = Response<BoxStream<'static, Result<Reply, Status>>>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Hello>) -> Self::Future {
        let hello = req.into_inner();
        let name = hello.name.clone();
        let replies = (1..=hello.count).map(move |seq| {
            Ok(Reply {
                message: format!("{name} {seq}"),
                seq,
            })
        });
        let end = (hello.name == "quota").then(|| Err(Status::resource_exhausted("quota")));
        ready(Ok(Response::new(stream::iter(replies.chain(end)).boxed())))
    }
}

struct Server {
    addr: SocketAddr,
    say_hello: SayHello,
}

/// A tonic server (HTTP/2 only) on 127.0.0.1:0.
async fn server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let say_hello = SayHello {
        calls: Arc::default(),
        fail: Arc::default(),
    };
    let svc = say_hello.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let say_hello = svc.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let say_hello = say_hello.clone();
                    async move {
                        let mut grpc =
                            tonic::server::Grpc::new(ProstCodec::<Reply, Hello>::default());
                        Ok::<_, Infallible>(match req.uri().path() {
                            SAY_HELLO => grpc.unary(say_hello, req).await,
                            COUNT => grpc.server_streaming(Count, req).await,
                            _ => Status::unimplemented("no such method").into_http(),
                        })
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server { addr, say_hello }
}

/// The proxy in front of `upstream`, HTTP/2 to it, retrying `unavailable` twice.
async fn proxy(upstream: SocketAddr) -> (RunningProxy, SocketAddr) {
    let mut route = Route::prefix("/demo.Greeter/", "greeter");
    if let Action::Route(a) = &mut route.action {
        a.retry_policy = Some(RetryPolicy {
            retry_on: "unavailable".into(),
            num_retries: 2,
            ..RetryPolicy::default()
        });
    }
    let routes = RouteConfiguration::new("grpc").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(route)
            .with_route(Route::prefix("/empty.Service/", "empty")),
    );
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "grpc",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes),
        ))
        .with_cluster(
            Cluster::new_static("greeter", [upstream]).with_protocol(UpstreamProtocol::Http2),
        )
        .with_cluster(
            Cluster::new_static("empty", std::iter::empty()).with_protocol(UpstreamProtocol::Http2),
        );
    let p = Proxy::builder(boot).build().unwrap().start().await.unwrap();
    let addr = p.listener_addr("grpc").unwrap();
    (p, addr)
}

/// A tonic client over an HTTP/2 (prior knowledge) hyper client.
fn client(addr: SocketAddr) -> tonic::client::Grpc<HyperClient<HttpConnector, tonic::body::Body>> {
    let http = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    tonic::client::Grpc::with_origin(http, format!("http://{addr}").parse().unwrap())
}

async fn say_hello(
    c: &mut tonic::client::Grpc<HyperClient<HttpConnector, tonic::body::Body>>,
    name: &str,
) -> Result<Response<Reply>, Status> {
    c.ready().await.unwrap();
    c.unary(
        Request::new(Hello {
            name: name.into(),
            count: 0,
        }),
        PathAndQuery::from_static(SAY_HELLO),
        ProstCodec::default(),
    )
    .await
}

#[tokio::test]
async fn a_unary_call_passes_through_with_its_metadata() {
    let up = server().await;
    let (p, addr) = proxy(up.addr).await;
    let mut c = client(addr);
    let r = say_hello(&mut c, "mesh").await.unwrap();
    assert_eq!(r.get_ref().message, "hello mesh");
    assert_eq!(r.metadata().get("x-served-by").unwrap(), "greeter");
    assert_eq!(r.metadata().get("server").unwrap(), "envoy");
    assert_eq!(up.say_hello.calls.load(Ordering::SeqCst), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn unavailable_is_retried_and_the_retry_answers() {
    let up = server().await;
    let (p, addr) = proxy(up.addr).await;
    up.say_hello.fail.store(2, Ordering::SeqCst);
    let mut c = client(addr);
    let r = say_hello(&mut c, "again").await.unwrap();
    assert_eq!(r.get_ref().message, "hello again");
    assert_eq!(up.say_hello.calls.load(Ordering::SeqCst), 3, "two retries");
    let retries = p
        .stats()
        .counter(StatName::cluster("greeter", "upstream_rq_retry"))
        .get();
    assert_eq!(retries, 2);

    // Out of retries, the last status reaches the client unchanged.
    up.say_hello.fail.store(3, Ordering::SeqCst);
    let e = say_hello(&mut c, "never").await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Unavailable, "warming up"));
    p.shutdown().await;
}

#[tokio::test]
async fn a_server_stream_passes_through_with_its_trailers() {
    let up = server().await;
    let (p, addr) = proxy(up.addr).await;
    let mut c = client(addr);
    let call = |name: &str, count| {
        Request::new(Hello {
            name: name.into(),
            count,
        })
    };

    c.ready().await.unwrap();
    let mut s = c
        .server_streaming::<Hello, Reply, _>(
            call("tick", 5),
            PathAndQuery::from_static(COUNT),
            ProstCodec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(reply) = s.message().await.unwrap() {
        assert_eq!(reply.message, format!("tick {}", reply.seq));
        seqs.push(reply.seq);
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(
        s.trailers().await.unwrap().is_some(),
        "the OK trailers arrived"
    );

    // A status after messages travels in the trailers: the client sees both.
    c.ready().await.unwrap();
    let mut s = c
        .server_streaming::<Hello, Reply, _>(
            call("quota", 2),
            PathAndQuery::from_static(COUNT),
            ProstCodec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().seq, 1);
    assert_eq!(s.message().await.unwrap().unwrap().seq, 2);
    let e = s.message().await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::ResourceExhausted, "quota"));
    p.shutdown().await;
}

#[tokio::test]
async fn local_replies_reach_the_client_as_grpc_statuses() {
    let up = server().await;
    let (p, addr) = proxy(up.addr).await;
    let mut c = client(addr);
    c.ready().await.unwrap();
    let no_route = c
        .unary::<Hello, Reply, _>(
            Request::new(Hello::default()),
            PathAndQuery::from_static("/other.Service/Call"),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        no_route.code(),
        Code::Unimplemented,
        "404 NR maps to UNIMPLEMENTED"
    );

    c.ready().await.unwrap();
    let no_host = c
        .unary::<Hello, Reply, _>(
            Request::new(Hello::default()),
            PathAndQuery::from_static("/empty.Service/Call"),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        no_host.code(),
        Code::Unavailable,
        "503 UH maps to UNAVAILABLE"
    );
    assert_eq!(no_host.message(), "no healthy upstream");
    p.shutdown().await;
}
