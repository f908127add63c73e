//! Where an upstream attempt's outcome is recorded: the host's counters (the admin
//! `/clusters` view) and outlier detection. The attempt loop reports every attempt here,
//! whether its result is returned, retried, or given up at the global timeout.

use std::sync::atomic::Ordering;

use mesh_lb::outlier::Outcome;

use super::SendResult;
use crate::compile::ClusterRt;
use crate::conn_manager::RequestCtx;
use crate::error::Kind;
use crate::upstream::HostPool;

/// How an attempt ended, as a host's counters count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HostResult {
    /// A response that is not a 5xx.
    Success,
    /// A 5xx, a reset, a refused connection; or a result dropped for a retry.
    Error,
    /// The attempt timed out (an error too).
    Timeout,
}

impl HostResult {
    /// What a final result counts as.
    pub(super) fn of(result: &SendResult) -> Self {
        match result {
            Ok((resp, _)) if resp.status().is_server_error() => Self::Error,
            Ok(_) => Self::Success,
            Err(e) if e.is_timeout() => Self::Timeout,
            Err(_) => Self::Error,
        }
    }
}

/// Counts one attempt on its host.
pub(super) fn record_host(pool: &HostPool, r: HostResult) {
    let hs = &pool.host_stats;
    hs.rq_total.fetch_add(1, Ordering::Relaxed);
    match r {
        HostResult::Success => hs.rq_success.fetch_add(1, Ordering::Relaxed),
        HostResult::Error => hs.rq_error.fetch_add(1, Ordering::Relaxed),
        HostResult::Timeout => {
            hs.rq_error.fetch_add(1, Ordering::Relaxed);
            hs.rq_timeout.fetch_add(1, Ordering::Relaxed)
        }
    };
}

/// What outlier detection hears of a result: the status, a timeout, or a failed
/// connection; nothing for a circuit-breaker overflow (the host was never asked).
pub(super) fn outlier_outcome(result: &SendResult) -> Option<Outcome> {
    match result {
        Ok((resp, _)) => Some(Outcome::Http(resp.status().as_u16())),
        Err(e) if e.is_overflow() => None,
        Err(e) if e.kind() == Kind::Timeout => Some(Outcome::Timeout),
        Err(_) => Some(Outcome::ConnectFailed),
    }
}

/// Feeds one attempt's result to the cluster's outlier detection, if it has one.
pub(super) fn report_outlier(
    cx: &RequestCtx,
    cluster: &ClusterRt,
    index: usize,
    result: &SendResult,
) {
    if let Some(od) = cluster.lb.outlier()
        && index < cluster.lb.hosts().len()
        && let Some(o) = outlier_outcome(result)
    {
        od.report(index, o, cx.epoch.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn status(code: u16) -> SendResult {
        let mut r = http::Response::new(crate::body::UpstreamBody::Mem(crate::body::empty()));
        *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
        Ok((r, None))
    }

    #[test]
    fn results_map_to_host_counters_and_outlier_outcomes() {
        let timeout: SendResult = Err(Error::new(Kind::Timeout, None));
        let reset: SendResult = Err(Error::new(Kind::Upstream, None));
        let overflow: SendResult = Err(Error::new(Kind::Overflow, None));
        assert_eq!(HostResult::of(&status(200)), HostResult::Success);
        assert_eq!(HostResult::of(&status(404)), HostResult::Success);
        assert_eq!(HostResult::of(&status(503)), HostResult::Error);
        assert_eq!(HostResult::of(&timeout), HostResult::Timeout);
        assert_eq!(HostResult::of(&reset), HostResult::Error);
        assert_eq!(outlier_outcome(&status(503)), Some(Outcome::Http(503)));
        assert_eq!(outlier_outcome(&timeout), Some(Outcome::Timeout));
        assert_eq!(outlier_outcome(&reset), Some(Outcome::ConnectFailed));
        assert_eq!(
            outlier_outcome(&overflow),
            None,
            "a breaker overflow never reached the host"
        );
    }
}
