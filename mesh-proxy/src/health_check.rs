//! Active health checks: the proxy probes every host of every cluster that configures
//! `health_checks` (HTTP GET with expected statuses, or a TCP connect) at the check's interval,
//! with its timeout, and feeds the results to mesh-lb's state machine, which sets the host's
//! `FailedActiveHc` flag after `unhealthy_threshold` failures and clears it after
//! `healthy_threshold` successes. Hosts are unhealthy until their first check passes, as in
//! Envoy. A supervisor follows config reloads: hosts that stay keep their checker; new ones
//! get one; removed ones lose theirs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use mesh_core::config::{HealthCheck, HealthChecker};
use mesh_lb::Host;
use mesh_lb::health::{ActiveHealth, CheckResult};
use tokio::task::JoinHandle;

use crate::body;
use crate::conn_manager::Shared;

/// Keeps one checker task per checked host, following the current config.
pub(crate) async fn supervise(shared: Arc<Shared>) {
    // Keyed by the host object (kept alive in the map, so the address stays unique).
    let mut tasks: HashMap<usize, (Arc<Host>, JoinHandle<()>)> = HashMap::new();
    let mut seen_version = 0;
    loop {
        let snap = shared.store.load_full();
        if snap.version != seen_version {
            seen_version = snap.version;
            let mut wanted: HashMap<usize, (Arc<Host>, HealthCheck, String)> = HashMap::new();
            for (name, c) in &snap.value.clusters {
                let Some(hc) = c.config.health_checks.first() else {
                    continue;
                };
                for h in c.lb.hosts() {
                    wanted.insert(
                        Arc::as_ptr(h) as usize,
                        (Arc::clone(h), hc.clone(), name.clone()),
                    );
                }
            }
            tasks.retain(|k, (_, t)| {
                let keep = wanted.contains_key(k);
                if !keep {
                    t.abort();
                }
                keep
            });
            for (k, (host, hc, cluster)) in wanted {
                tasks.entry(k).or_insert_with(|| {
                    (
                        Arc::clone(&host),
                        tokio::spawn(check_host(host, hc, cluster)),
                    )
                });
            }
        }
        drop(snap);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn check_host(host: Arc<Host>, hc: HealthCheck, cluster: String) {
    let mut state = ActiveHealth::from_config(&hc);
    state.start(&host);
    loop {
        let result = match tokio::time::timeout(hc.timeout, probe(&host, &hc, &cluster)).await {
            Ok(true) => CheckResult::Success,
            _ => CheckResult::Failure,
        };
        state.record(&host, result);
        tokio::time::sleep(hc.interval).await;
    }
}

/// One probe: true when the host passes.
async fn probe(host: &Host, hc: &HealthCheck, cluster: &str) -> bool {
    let a = host.address();
    let Ok(stream) = tokio::net::TcpStream::connect((a.host.as_str(), a.port)).await else {
        return false;
    };
    let HealthChecker::Http {
        path,
        host: host_header,
        expected_statuses,
    } = &hc.checker
    else {
        return true;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    let conn = tokio::spawn(conn);
    let req = Request::get(path.as_str())
        .header(
            http::header::HOST,
            host_header.as_deref().unwrap_or(cluster),
        )
        .header(http::header::USER_AGENT, "Envoy/HC")
        .body(body::empty());
    let ok = match req {
        Ok(req) => match sender.send_request(req).await {
            Ok(resp) => passes(resp.status(), expected_statuses),
            Err(_) => false,
        },
        Err(_) => false,
    };
    conn.abort();
    ok
}

/// Expected statuses are `[start, end)` ranges; none configured means 200 only.
fn passes(status: StatusCode, expected: &[(u16, u16)]) -> bool {
    let s = status.as_u16();
    if expected.is_empty() {
        s == 200
    } else {
        expected
            .iter()
            .any(|&(start, end)| (start..end).contains(&s))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn expected_statuses() {
        use http::StatusCode;
        assert!(super::passes(StatusCode::OK, &[]));
        assert!(!super::passes(StatusCode::NO_CONTENT, &[]));
        assert!(super::passes(StatusCode::NO_CONTENT, &[(200, 300)]));
        assert!(!super::passes(
            StatusCode::SERVICE_UNAVAILABLE,
            &[(200, 300)]
        ));
    }
}
