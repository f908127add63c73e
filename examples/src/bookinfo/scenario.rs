//! The scenarios of Istio's traffic-management tasks, as Istio YAML layered on the base.

use std::fmt;
use std::str::FromStr;

const ALL_V1: &str = include_str!("../../bookinfo/virtual-service-all-v1.yaml");
const REVIEWS_TEST_V2: &str = include_str!("../../bookinfo/virtual-service-reviews-test-v2.yaml");
const RATINGS_TEST_DELAY: &str =
    include_str!("../../bookinfo/virtual-service-ratings-test-delay.yaml");
const RATINGS_TEST_ABORT: &str =
    include_str!("../../bookinfo/virtual-service-ratings-test-abort.yaml");
const REVIEWS_50_V3: &str = include_str!("../../bookinfo/virtual-service-reviews-50-v3.yaml");
const REVIEWS_80_20_V3: &str = include_str!("../../bookinfo/virtual-service-reviews-80-20-v3.yaml");
const REQUEST_TIMEOUT: &str = include_str!("../../bookinfo/request-timeout.yaml");
const DETAILS_CIRCUIT_BREAKER: &str =
    include_str!("../../bookinfo/destination-rule-details-circuit-breaker.yaml");
const REVIEWS_MIRROR_V2: &str =
    include_str!("../../bookinfo/virtual-service-reviews-mirror-v2.yaml");

/// A Bookinfo scenario: Istio YAML applied over the base (see the [module docs](super)).
///
/// Every scenario but [`Scenario::Default`] starts from `virtual-service-all-v1.yaml` and
/// adds its own files, in the order Istio's tasks apply them; a later resource replaces an
/// earlier one of the same kind and name. Names are kebab-case ([`Scenario::name`],
/// [`FromStr`]).
///
/// ```
/// use mesh_examples::bookinfo::Scenario;
/// let s: Scenario = "jason-v2".parse().unwrap();
/// assert_eq!(s, Scenario::JasonV2);
/// assert!(s.yaml().contains("exact: jason"));
/// assert!("nope".parse::<Scenario>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scenario {
    /// `default`: no VirtualService; reviews spreads over v1, v2 and v3.
    Default,
    /// `v1`: every service routed to v1 (`virtual-service-all-v1.yaml`).
    V1,
    /// `jason-v2`: user jason gets reviews v2 (black stars), everyone else v1.
    JasonV2,
    /// `jason-delay`: as `jason-v2`, plus a 7 s delay on ratings for jason.
    JasonDelay,
    /// `jason-abort`: as `jason-v2`, plus HTTP 500 from ratings for jason.
    JasonAbort,
    /// `v1-v3-50`: reviews split 50/50 between v1 and v3.
    V1V3Half,
    /// `v1-v3-80-20`: reviews split 80/20 between v1 and v3.
    V1V3EightyTwenty,
    /// `timeout`: reviews (v2) limited to 0.5 s while ratings is delayed 2 s.
    Timeout,
    /// `circuit-breaker`: details allows one request at a time; more get 503.
    CircuitBreaker,
    /// `mirror`: users get reviews v1, and v2 gets a copy of every request.
    Mirror,
}

// === impl Scenario ===

impl Scenario {
    /// Every scenario, in the order a tour would show them.
    pub const ALL: [Scenario; 10] = [
        Scenario::Default,
        Scenario::V1,
        Scenario::JasonV2,
        Scenario::JasonDelay,
        Scenario::JasonAbort,
        Scenario::V1V3Half,
        Scenario::V1V3EightyTwenty,
        Scenario::Timeout,
        Scenario::CircuitBreaker,
        Scenario::Mirror,
    ];

    /// The name a command line takes (`jason-v2`).
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Default => "default",
            Scenario::V1 => "v1",
            Scenario::JasonV2 => "jason-v2",
            Scenario::JasonDelay => "jason-delay",
            Scenario::JasonAbort => "jason-abort",
            Scenario::V1V3Half => "v1-v3-50",
            Scenario::V1V3EightyTwenty => "v1-v3-80-20",
            Scenario::Timeout => "timeout",
            Scenario::CircuitBreaker => "circuit-breaker",
            Scenario::Mirror => "mirror",
        }
    }

    /// One line saying what a user sees.
    pub const fn description(self) -> &'static str {
        match self {
            Scenario::Default => {
                "plain Bookinfo: reviews comes from v1 (no stars), v2 (black) or v3 (red) at random"
            }
            Scenario::V1 => "all traffic to v1: reviews never show stars",
            Scenario::JasonV2 => "user jason sees reviews v2 (black stars), everyone else v1",
            Scenario::JasonDelay => {
                "7 s delay on ratings for jason: his reviews time out (after ≈6 s) and show as unavailable"
            }
            Scenario::JasonAbort => {
                "HTTP 500 from ratings for jason: his page says ratings are unavailable"
            }
            Scenario::V1V3Half => "reviews split 50/50 between v1 (no stars) and v3 (red stars)",
            Scenario::V1V3EightyTwenty => {
                "reviews split 80/20 between v1 (no stars) and v3 (red stars)"
            }
            Scenario::Timeout => {
                "0.5 s timeout on reviews while ratings is delayed 2 s: reviews unavailable after ≈1 s"
            }
            Scenario::CircuitBreaker => {
                "details takes one request at a time: concurrent page loads show details unavailable (503)"
            }
            Scenario::Mirror => "users see reviews v1; v2 gets a mirrored copy of every request",
        }
    }

    /// The files of the scenario, in apply order (empty for [`Scenario::Default`]).
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Scenario::Default => &[],
            Scenario::V1 => &[ALL_V1],
            Scenario::JasonV2 => &[ALL_V1, REVIEWS_TEST_V2],
            Scenario::JasonDelay => &[ALL_V1, REVIEWS_TEST_V2, RATINGS_TEST_DELAY],
            Scenario::JasonAbort => &[ALL_V1, REVIEWS_TEST_V2, RATINGS_TEST_ABORT],
            Scenario::V1V3Half => &[ALL_V1, REVIEWS_50_V3],
            Scenario::V1V3EightyTwenty => &[ALL_V1, REVIEWS_80_20_V3],
            Scenario::Timeout => &[ALL_V1, REQUEST_TIMEOUT],
            Scenario::CircuitBreaker => &[ALL_V1, DETAILS_CIRCUIT_BREAKER],
            Scenario::Mirror => &[ALL_V1, REVIEWS_MIRROR_V2],
        }
    }

    /// The scenario's YAML: its files joined into one multi-document text.
    pub fn yaml(self) -> String {
        join_documents(self.files())
    }
}

/// Joins YAML texts into one multi-document text.
pub(super) fn join_documents(texts: &[&str]) -> String {
    let mut out = String::new();
    for t in texts {
        if !out.is_empty() {
            out.push_str("\n---\n");
        }
        out.push_str(t);
    }
    out
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that is not one of [`Scenario::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Bookinfo scenario {name:?} (one of: {})", Scenario::ALL.map(Scenario::name).join(", "))]
pub struct UnknownScenario {
    /// The name given.
    pub name: String,
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
            assert!(!s.description().is_empty());
        }
        let mut names: Vec<_> = Scenario::ALL.map(Scenario::name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scenario::ALL.len());
    }

    /// Every scenario parses; the only warnings say that a later file replaced a resource of
    /// an earlier one, as the layered `kubectl apply`s of Istio's tasks do.
    #[test]
    fn every_scenario_parses_as_istio_yaml() {
        for s in Scenario::ALL {
            let r = mesh_xds::istio::parse_str(&s.yaml(), s.name(), "default")
                .unwrap_or_else(|e| panic!("{s}: {e}"));
            assert!(
                r.warnings
                    .iter()
                    .all(|w| w.message.contains("as a later kubectl apply would")),
                "{s}: {:?}",
                r.warnings
            );
        }
    }
}
