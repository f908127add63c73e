//! Host health: the flags that make it up, EDS status mapping, and the active health-check
//! state machine (SEMANTICS.md §4.1).
//!
//! A host is unhealthy when any `Failed*` flag is set, degraded when only `Degraded*` flags
//! are, healthy otherwise — Envoy's `Host::health()`. Active health checking follows Envoy's
//! `HealthCheckerImplBase::ActiveHealthCheckSession`: a host starts failed (pending its first
//! check), the very first success makes it healthy at once, afterwards `healthy_threshold`
//! consecutive successes are needed; `unhealthy_threshold` consecutive failures (or one
//! immediate failure such as `x-envoy-immediate-health-check-fail`) make it unhealthy.

use mesh_core::config::{HealthCheck, HealthStatus};

use crate::Host;

/// One reason for a host's health state (Envoy's `Host::HealthFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HealthFlag {
    /// The config source (EDS) says unhealthy, draining or timed out.
    FailedEdsHealth,
    /// The config source says degraded.
    DegradedEdsHealth,
    /// Active health checking failed (or has not passed yet).
    FailedActiveHc,
    /// Active health checking reports degraded.
    DegradedActiveHc,
    /// Ejected by outlier detection.
    FailedOutlierCheck,
}

const FAILED_MASK: u8 = 0b1_0101;
const DEGRADED_MASK: u8 = 0b0_1010;

impl HealthFlag {
    /// The flag's bit in a host's flag word.
    pub const fn bit(self) -> u8 {
        match self {
            Self::FailedEdsHealth => 1,
            Self::DegradedEdsHealth => 2,
            Self::FailedActiveHc => 4,
            Self::DegradedActiveHc => 8,
            Self::FailedOutlierCheck => 16,
        }
    }
}

/// A host's health as the balancers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostHealth {
    /// Receives traffic.
    Healthy,
    /// Receives traffic only when healthy hosts cannot carry the load.
    Degraded,
    /// Receives traffic only in panic mode.
    Unhealthy,
}

impl HostHealth {
    /// Health from a flag word.
    pub const fn from_bits(bits: u8) -> Self {
        if bits & FAILED_MASK != 0 {
            Self::Unhealthy
        } else if bits & DEGRADED_MASK != 0 {
            Self::Degraded
        } else {
            Self::Healthy
        }
    }
}

/// Applies an EDS health status to a host: HEALTHY/UNKNOWN ⇒ healthy, DEGRADED ⇒ degraded,
/// UNHEALTHY/DRAINING/TIMEOUT ⇒ unhealthy.
pub fn apply_eds_status(host: &Host, status: HealthStatus) {
    let (failed, degraded) = eds_flags(status);
    host.set_flag(HealthFlag::FailedEdsHealth, failed);
    host.set_flag(HealthFlag::DegradedEdsHealth, degraded);
}

/// The (failed, degraded) EDS flags for a status.
pub const fn eds_flags(status: HealthStatus) -> (bool, bool) {
    match status {
        HealthStatus::Unknown | HealthStatus::Healthy => (false, false),
        HealthStatus::Degraded => (false, true),
        HealthStatus::Unhealthy | HealthStatus::Draining | HealthStatus::Timeout => (true, false),
    }
}

/// The result of one active health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    /// The check passed.
    Success,
    /// The check failed (counts towards `unhealthy_threshold`).
    Failure,
    /// The check failed and asks for immediate ejection
    /// (`x-envoy-immediate-health-check-fail`).
    ImmediateFailure,
}

/// What a check result did to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    Unchanged,
    /// Counting towards a threshold.
    ChangePending,
    /// The host changed between healthy and unhealthy.
    Changed,
}

/// The active health-check state of one host.
///
/// ```
/// use mesh_lb::health::{ActiveHealth, CheckResult, Transition};
/// # let host = mesh_lb::Host::new(mesh_core::config::Address { host: "127.0.0.1".into(), port: 1 }, 1, true, Default::default(), None);
/// let mut hc = ActiveHealth::new(2, 3);
/// hc.start(&host);
/// assert!(!host.is_healthy());
/// assert_eq!(hc.record(&host, CheckResult::Success), Transition::Changed); // first check
/// assert_eq!(hc.record(&host, CheckResult::Failure), Transition::ChangePending);
/// ```
#[derive(Debug, Clone)]
pub struct ActiveHealth {
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    num_healthy: u32,
    num_unhealthy: u32,
    first_check: bool,
}

impl ActiveHealth {
    /// A state machine with the given thresholds (0 counts as 1).
    pub fn new(healthy_threshold: u32, unhealthy_threshold: u32) -> Self {
        Self {
            healthy_threshold: healthy_threshold.max(1),
            unhealthy_threshold: unhealthy_threshold.max(1),
            num_healthy: 0,
            num_unhealthy: 0,
            first_check: true,
        }
    }

    /// A state machine with the thresholds of a configured health check.
    pub fn from_config(hc: &HealthCheck) -> Self {
        Self::new(hc.healthy_threshold, hc.unhealthy_threshold)
    }

    /// Marks a newly checked host as failed until its first check passes, as Envoy does.
    pub fn start(&mut self, host: &Host) {
        self.first_check = true;
        host.set_flag(HealthFlag::FailedActiveHc, true);
    }

    /// Records a check result and updates the host's [`HealthFlag::FailedActiveHc`].
    pub fn record(&mut self, host: &Host, result: CheckResult) -> Transition {
        let failed = host.has_flag(HealthFlag::FailedActiveHc);
        let t = match result {
            CheckResult::Success => {
                self.num_unhealthy = 0;
                if !failed {
                    Transition::Unchanged
                } else {
                    self.num_healthy += 1;
                    if self.first_check || self.num_healthy >= self.healthy_threshold {
                        self.num_healthy = 0;
                        host.set_flag(HealthFlag::FailedActiveHc, false);
                        Transition::Changed
                    } else {
                        Transition::ChangePending
                    }
                }
            }
            CheckResult::Failure | CheckResult::ImmediateFailure => {
                self.num_healthy = 0;
                if failed {
                    Transition::Unchanged
                } else {
                    self.num_unhealthy += 1;
                    if result == CheckResult::ImmediateFailure
                        || self.num_unhealthy >= self.unhealthy_threshold
                    {
                        self.num_unhealthy = 0;
                        host.set_flag(HealthFlag::FailedActiveHc, true);
                        Transition::Changed
                    } else {
                        Transition::ChangePending
                    }
                }
            }
        };
        self.first_check = false;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::Address;

    fn host() -> Host {
        Host::new(
            Address {
                host: "10.0.0.1".into(),
                port: 80,
            },
            1,
            true,
            Default::default(),
            None,
        )
    }

    #[test]
    fn eds_mapping() {
        let h = host();
        apply_eds_status(&h, HealthStatus::Degraded);
        assert_eq!(h.health(), HostHealth::Degraded);
        apply_eds_status(&h, HealthStatus::Draining);
        assert_eq!(h.health(), HostHealth::Unhealthy);
        apply_eds_status(&h, HealthStatus::Unknown);
        assert_eq!(h.health(), HostHealth::Healthy);
        h.set_flag(HealthFlag::DegradedActiveHc, true);
        h.set_flag(HealthFlag::FailedOutlierCheck, true);
        assert_eq!(h.health(), HostHealth::Unhealthy, "failed beats degraded");
    }

    #[test]
    fn thresholds() {
        let h = host();
        let mut hc = ActiveHealth::new(2, 3);
        hc.start(&h);
        assert_eq!(h.health(), HostHealth::Unhealthy);
        assert_eq!(hc.record(&h, CheckResult::Success), Transition::Changed);
        assert!(h.is_healthy());
        assert_eq!(
            hc.record(&h, CheckResult::Failure),
            Transition::ChangePending
        );
        assert_eq!(
            hc.record(&h, CheckResult::Failure),
            Transition::ChangePending
        );
        assert_eq!(hc.record(&h, CheckResult::Success), Transition::Unchanged);
        assert_eq!(
            hc.record(&h, CheckResult::Failure),
            Transition::ChangePending
        );
        assert_eq!(
            hc.record(&h, CheckResult::Failure),
            Transition::ChangePending
        );
        assert_eq!(hc.record(&h, CheckResult::Failure), Transition::Changed);
        assert!(!h.is_healthy());
        assert_eq!(
            hc.record(&h, CheckResult::Success),
            Transition::ChangePending
        );
        assert_eq!(hc.record(&h, CheckResult::Success), Transition::Changed);
        assert!(h.is_healthy());
        assert_eq!(
            hc.record(&h, CheckResult::ImmediateFailure),
            Transition::Changed
        );
        assert!(!h.is_healthy());
    }
}
