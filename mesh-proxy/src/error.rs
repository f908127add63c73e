//! The proxy's opaque error type.

use std::fmt;

use mesh_core::BoxError;

/// An error from building or running the proxy.
///
/// Opaque on purpose: classify it with the `is_*` predicates, reach the cause through
/// [`std::error::Error::source`].
pub struct Error {
    inner: Box<ErrorImpl>,
}

struct ErrorImpl {
    kind: Kind,
    cause: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The config is invalid or could not be compiled.
    Config,
    /// A listener could not bind its address.
    Bind,
    /// An upstream connect failed.
    UpstreamConnect,
    /// An upstream connect timed out.
    UpstreamConnectTimeout,
    /// An upstream connection or stream failed after connecting.
    Upstream,
    /// The upstream broke HTTP's framing rules (a response with both Content-Length and
    /// Transfer-Encoding).
    UpstreamProtocol,
    /// A timeout fired.
    Timeout,
    /// The request was canceled (for example the downstream went away).
    Canceled,
    /// A circuit breaker refused the request (max_connections with max_pending_requests
    /// full, or max_requests).
    Overflow,
}

impl Error {
    pub(crate) fn new(kind: Kind, cause: impl Into<Option<BoxError>>) -> Self {
        Self {
            inner: Box::new(ErrorImpl {
                kind,
                cause: cause.into(),
            }),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// The config was rejected.
    pub fn is_config(&self) -> bool {
        self.inner.kind == Kind::Config
    }

    /// A listener could not bind.
    pub fn is_bind(&self) -> bool {
        self.inner.kind == Kind::Bind
    }

    /// Something timed out (an upstream connect, a route or per-try timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::Timeout | Kind::UpstreamConnectTimeout
        )
    }

    /// The failure came from the upstream side (connect, reset, protocol).
    pub fn is_upstream(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::UpstreamConnect
                | Kind::UpstreamConnectTimeout
                | Kind::Upstream
                | Kind::UpstreamProtocol
        )
    }

    /// The request could be retried on another attempt (it failed before a response began).
    pub fn is_retryable(&self) -> bool {
        self.is_upstream()
    }

    /// A circuit breaker refused the request (never retried, never fed to outlier detection).
    pub fn is_overflow(&self) -> bool {
        self.inner.kind == Kind::Overflow
    }

    /// The request was canceled.
    pub fn is_canceled(&self) -> bool {
        self.inner.kind == Kind::Canceled
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("mesh_proxy::Error");
        d.field(&self.inner.kind);
        if let Some(c) = &self.inner.cause {
            d.field(c);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner.kind {
            Kind::Config => "invalid config",
            Kind::Bind => "failed to bind listener",
            Kind::UpstreamConnect => "upstream connect error",
            Kind::UpstreamConnectTimeout => "upstream connect timeout",
            Kind::Upstream => "upstream connection failed",
            Kind::UpstreamProtocol => "upstream protocol error",
            Kind::Timeout => "timeout",
            Kind::Canceled => "request canceled",
            Kind::Overflow => "circuit breaker overflow",
        })
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .cause
            .as_ref()
            .map(|e| &**e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_send_sync_and_one_pointer() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_is_own_level_and_source_is_cause() {
        let e = Error::new(
            Kind::UpstreamConnect,
            Some(std::io::Error::other("refused").into()),
        );
        assert_eq!(e.to_string(), "upstream connect error");
        assert!(e.is_upstream() && e.is_retryable() && !e.is_timeout());
        assert_eq!(
            std::error::Error::source(&e).unwrap().to_string(),
            "refused"
        );
    }
}
