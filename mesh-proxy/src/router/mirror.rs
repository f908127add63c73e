//! Request mirroring (SEMANTICS §3.8): which of a route's mirror policies a request takes,
//! and the fire-and-forget copy sent to each mirror cluster.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Uri};
use mesh_core::config::RequestMirrorPolicy;
use mesh_lb::PickContext;
use mesh_route::{Forward, Hit};

use super::retry::Replay;
use super::{build_request, send};
use crate::body::ProxyBody;
use crate::conn_manager::RequestCtx;
use crate::headers;

/// The route's mirror policies (else the virtual host's, else the config's) that this
/// request takes, each by its runtime fraction of the stream's `random` value.
pub(super) fn policies<'h>(hit: &Hit<'h>, random: u64) -> Vec<&'h RequestMirrorPolicy> {
    hit.request_mirror_policies()
        .iter()
        .filter(|m| {
            m.runtime_fraction
                .as_ref()
                .is_none_or(|f| f.default_value.enabled(random))
        })
        .collect()
}

/// Sends a fire-and-forget copy of the request to a mirror cluster, its host suffixed
/// `-shadow` (unless disabled); the copy's response is read and dropped, and nothing about it
/// reaches the downstream response.
pub(super) fn shadow(
    cx: &RequestCtx,
    hit: &Hit<'_>,
    fwd: &Forward<'_>,
    parts: &Parts,
    replay: &Replay,
    m: &RequestMirrorPolicy,
    timeout: Option<Duration>,
) {
    let name = match &m.cluster_header {
        Some(h) => match parts.headers.get(h.as_str()).and_then(|v| v.to_str().ok()) {
            Some(n) if !n.is_empty() => n,
            _ => return,
        },
        None => m.cluster.as_str(),
    };
    let Some(cluster) = cx.snapshot.value.clusters.get(name).cloned() else {
        return;
    };
    let Some(i) = cluster
        .lb
        .pick_index_with(&PickContext::new(crate::random::next_u64()))
    else {
        return;
    };
    let Some(body) = replay.body() else { return };
    let mut req = build_request(
        cx,
        hit,
        fwd,
        &cluster,
        &cluster.lb.hosts()[i],
        clone_parts(parts),
        body,
        false,
    );
    if !m.disable_shadow_host_suffix_append {
        shadow_host(&mut req);
    }
    let pool = Arc::clone(&cluster.pools[i]);
    let limits = Arc::clone(cluster.lb.breakers(fwd.action().priority));
    cluster.stats.rq_total.inc();
    let send = send(cx, &pool, &limits, req, false);
    tokio::spawn(async move {
        let done = match timeout {
            Some(t) => tokio::time::timeout(t, send).await.ok(),
            None => Some(send.await),
        };
        if let Some(Ok((resp, lease))) = done
            && http_body_util::BodyExt::collect(resp.into_body())
                .await
                .is_ok()
            && let Some(lease) = lease
        {
            lease.release(tokio::time::Instant::now());
        }
    });
}

/// `host[:port]` becomes `host-shadow[:port]`, in the `Host` header and the URI.
fn shadow_host(req: &mut Request<ProxyBody>) {
    let suffix = |a: &str| {
        let (host, port) = headers::strip_port(a);
        match port {
            Some(p) => format!("{host}-shadow:{p}"),
            None => format!("{host}-shadow"),
        }
    };
    if let Some(h) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(&suffix(h))
    {
        req.headers_mut().insert(header::HOST, v);
    }
    if let Some(a) = req.uri().authority().map(|a| suffix(a.as_str())) {
        let mut p = req.uri().clone().into_parts();
        p.authority = a.parse().ok();
        if let Ok(u) = Uri::from_parts(p) {
            *req.uri_mut() = u;
        }
    }
}

fn clone_parts(p: &Parts) -> Parts {
    let (mut n, ()) = Request::new(()).into_parts();
    n.method = p.method.clone();
    n.uri = p.uri.clone();
    n.version = p.version;
    n.headers = p.headers.clone();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadowed(uri: &str, host: Option<&str>) -> (String, Option<String>) {
        let mut b = Request::get(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let mut req = b.body(crate::body::empty()).unwrap();
        shadow_host(&mut req);
        (
            req.uri().to_string(),
            req.headers()
                .get("host")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    }

    #[test]
    fn the_mirror_host_gets_the_shadow_suffix_before_its_port() {
        assert_eq!(
            shadowed("/a", Some("reviews:9080")),
            ("/a".into(), Some("reviews-shadow:9080".into()))
        );
        assert_eq!(
            shadowed("/a", Some("reviews")).1.as_deref(),
            Some("reviews-shadow")
        );
        assert_eq!(
            shadowed("http://ratings:80/x", None),
            ("http://ratings-shadow:80/x".into(), None)
        );
    }
}
