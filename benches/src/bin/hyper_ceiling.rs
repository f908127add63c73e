//! The reference target of the performance issue: the least a hyper proxy can do. No routing,
//! no headers touched beyond what HTTP requires, no stats: hyper-util's auto server (HTTP/1.1
//! and h2c) downstream, HTTP/1.1 keep-alive connections upstream, reused per downstream
//! connection. What mesh-proxy costs above this is ours; what this costs above nginx is
//! hyper's and tokio's.
//!
//! ```text
//! hyper_ceiling LISTEN UPSTREAM [--current-thread]
//! ```
//!
//! Runs until killed. Loopback only. `benches/load/ceiling.sh` runs it as the candidate of
//! `../shared/bench/proxy-compare.sh`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// Headers that belong to one connection (RFC 9110 §7.6.1), not forwarded.
const HOP_BY_HOP: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::HeaderName::from_static("keep-alive"),
    header::HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Idle upstream connections of one downstream connection (one is enough for HTTP/1.1; h2c
/// streams in flight at once take one each).
#[derive(Default)]
struct Pool(Mutex<Vec<SendRequest<Incoming>>>);

async fn forward(
    upstream: SocketAddr,
    pool: Arc<Pool>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    use http_body_util::BodyExt;
    // Origin form for HTTP/1.1; the authority of an h2 request becomes its Host.
    if req.headers().get(header::HOST).is_none()
        && let Some(a) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    *req.uri_mut() = path;
    *req.version_mut() = http::Version::HTTP_11;
    for h in HOP_BY_HOP {
        req.headers_mut().remove(h);
    }
    let idle = pool.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut sender = match idle {
        Some(s) if s.is_ready() => s,
        _ => match connect(upstream).await {
            Some(s) => s,
            None => return Ok(status(502)),
        },
    };
    match sender.send_request(req).await {
        Ok(mut resp) => {
            pool.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sender);
            // Hop-by-hop headers stay on their hop (HTTP/2 forbids them outright).
            for h in HOP_BY_HOP {
                resp.headers_mut().remove(h);
            }
            Ok(resp.map(|b| b.boxed_unsync()))
        }
        Err(_) => Ok(status(502)),
    }
}

async fn connect(upstream: SocketAddr) -> Option<SendRequest<Incoming>> {
    let tcp = tokio::net::TcpStream::connect(upstream).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

fn status(code: u16) -> Response<Body> {
    use http_body_util::BodyExt;
    let mut r = Response::new(
        http_body_util::Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
    r
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) {
    let listener = tokio::net::TcpListener::bind(listen).await.expect("binds");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let pool = Arc::new(Pool::default());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| forward(upstream, pool.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2).and_then(|a| a.parse::<SocketAddr>().ok()),
    ) else {
        eprintln!("usage: hyper_ceiling LISTEN UPSTREAM [--current-thread]");
        std::process::exit(2);
    };
    assert!(
        listen.ip().is_loopback() && upstream.ip().is_loopback(),
        "loopback only"
    );
    let rt = if args.iter().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .expect("a runtime");
    rt.block_on(serve(listen, upstream));
}
