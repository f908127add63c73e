//! Envoy's response flags (`%RESPONSE_FLAGS%` in access logs).

use std::fmt;

/// A set of response flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ResponseFlags(u32);

macro_rules! flags {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $short:literal;)*) => {
        impl ResponseFlags {
            $($(#[$doc])* pub const $name: Self = Self(1 << $bit);)*
            const TABLE: &'static [(Self, &'static str)] = &[$((Self::$name, $short)),*];
        }
    };
}

flags! {
    /// No route matched (NR).
    NO_ROUTE_FOUND = 0, "NR";
    /// No healthy upstream host (UH).
    NO_HEALTHY_UPSTREAM = 1, "UH";
    /// Upstream connection failure (UF).
    UPSTREAM_CONNECTION_FAILURE = 2, "UF";
    /// Upstream request timeout (UT).
    UPSTREAM_REQUEST_TIMEOUT = 3, "UT";
    /// Upstream overflow: circuit breaker (UO).
    UPSTREAM_OVERFLOW = 4, "UO";
    /// Cluster not found (NC).
    NO_CLUSTER_FOUND = 5, "NC";
    /// Upstream connection termination (UC).
    UPSTREAM_CONNECTION_TERMINATION = 6, "UC";
    /// Upstream remote reset (UR).
    UPSTREAM_REMOTE_RESET = 7, "UR";
    /// Local reset (LR).
    LOCAL_RESET = 8, "LR";
    /// Delay injected by the fault filter (DI).
    DELAY_INJECTED = 9, "DI";
    /// Abort injected by the fault filter (FI).
    FAULT_INJECTED = 10, "FI";
    /// Retry limit exceeded (URX).
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 11, "URX";
    /// Downstream connection termination (DC).
    DOWNSTREAM_CONNECTION_TERMINATION = 12, "DC";
    /// Upstream protocol error (UPE).
    UPSTREAM_PROTOCOL_ERROR = 13, "UPE";
    /// Stream idle timeout (SI).
    STREAM_IDLE_TIMEOUT = 14, "SI";
    /// Downstream protocol error (DPE).
    DOWNSTREAM_PROTOCOL_ERROR = 15, "DPE";
}

impl ResponseFlags {
    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for ResponseFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Envoy's form: short names joined by `,`, or `-` when empty.
impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, short) in Self::TABLE {
            if self.contains(*flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(short)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_envoy() {
        assert_eq!(ResponseFlags::empty().to_string(), "-");
        let f = ResponseFlags::NO_ROUTE_FOUND | ResponseFlags::UPSTREAM_REQUEST_TIMEOUT;
        assert_eq!(f.to_string(), "NR,UT");
    }
}
