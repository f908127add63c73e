//! Random (SEMANTICS.md §4.6): a uniformly random host of the source, `random % n`. Like
//! Envoy's `RandomLoadBalancer`, weights are not considered.

use super::Balancer;
use crate::PickContext;

/// Uniform random selection.
#[derive(Debug, Clone)]
pub struct UniformRandom {
    n: usize,
}

impl UniformRandom {
    /// A balancer over `n` hosts.
    pub const fn new(n: usize) -> Self {
        Self { n }
    }
}

impl Balancer for UniformRandom {
    fn pick(&self, cx: &PickContext) -> Option<usize> {
        (self.n > 0).then(|| (cx.random_n(1) % self.n as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Random, SeededRandom};

    #[test]
    fn uniform_chi_squared() {
        let n = 10;
        let picks = 100_000;
        let lb = UniformRandom::new(n);
        let rng = SeededRandom::new(11);
        let mut c = vec![0u64; n];
        for _ in 0..picks {
            c[lb.pick(&PickContext::new(rng.next_u64())).unwrap()] += 1;
        }
        let e = picks as f64 / n as f64;
        let chi2: f64 = c.iter().map(|&o| (o as f64 - e).powi(2) / e).sum();
        // 9 degrees of freedom: p = 0.001 at 27.88.
        assert!(chi2 < 27.88, "chi2 {chi2} counts {c:?}");
        assert!(UniformRandom::new(0).pick(&PickContext::new(1)).is_none());
    }
}
