//! Benchmarks for the mesh toolkit, and the setup they share.
#![forbid(unsafe_code)]

pub mod request_path {
    //! The request path in process (`Proxy::handle` → connection manager → filters → router
    //! → an in-memory upstream), configured with one feature at a time that is present but
    //! not triggered, so each feature's standing cost is a ratio to the baseline. Used by the
    //! `request_path` criterion bench and by `request_path_count` under callgrind.

    use std::net::SocketAddr;

    use http::{Request, Response};
    use http_body_util::BodyExt;
    use mesh_core::config::*;
    use mesh_proxy::{Proxy, body};

    /// What is configured besides the route.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Variant {
        /// An empty filter chain, no retry policy.
        Baseline,
        /// The fault filter with a delay and an abort, both at 0%.
        FaultAtZero,
        /// A retry policy (`5xx,reset,connect-failure`, 2 retries, previous_hosts); every
        /// answer is 200, so nothing is retried (but the body is kept for replay).
        RetryUntriggered,
    }

    impl Variant {
        /// Every variant, baseline first.
        pub const ALL: [Variant; 3] = [
            Variant::Baseline,
            Variant::FaultAtZero,
            Variant::RetryUntriggered,
        ];

        /// A short name for reports.
        pub fn name(self) -> &'static str {
            match self {
                Variant::Baseline => "baseline",
                Variant::FaultAtZero => "fault_at_0pct",
                Variant::RetryUntriggered => "retry_untriggered",
            }
        }

        /// Parses [`Variant::name`].
        pub fn from_name(s: &str) -> Option<Self> {
            Self::ALL.into_iter().find(|v| v.name() == s)
        }
    }

    /// The listener's name.
    pub const LISTENER: &str = "in";

    /// A proxy for `variant`, answering upstream requests in memory with a small 200.
    pub fn proxy(variant: Variant) -> Proxy {
        let mut route = Route::prefix("/", "svc");
        if let (Action::Route(a), Variant::RetryUntriggered) = (&mut route.action, variant) {
            a.retry_policy = Some(RetryPolicy {
                retry_on: "5xx,reset,connect-failure".into(),
                num_retries: 2,
                retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
                host_selection_retry_max_attempts: 5,
                ..RetryPolicy::default()
            });
        }
        let mut hcm = HttpConnectionManager::with_routes(
            RouteConfiguration::new("r").with_virtual_host(
                VirtualHost::new("svc", ["svc", "svc:80"])
                    .with_route(Route::prefix("/admin", "svc"))
                    .with_route(route),
            ),
        );
        hcm.access_log.clear();
        if variant == Variant::FaultAtZero {
            hcm.http_filters.push(HttpFilterConfig::new(
                "envoy.filters.http.fault",
                serde_json::json!({
                    "delay": {"fixed_delay": "1s", "percentage": {"numerator": 0}},
                    "abort": {"http_status": 503, "percentage": {"numerator": 0}},
                }),
            ));
        }
        let boot = Bootstrap::default()
            .with_listener(Listener::http(
                LISTENER,
                "127.0.0.1:10000".parse().expect("a socket address"),
                hcm,
            ))
            .with_cluster(Cluster::new_static(
                "svc",
                ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
                    .map(|a| a.parse::<SocketAddr>().expect("a socket address")),
            ));
        Proxy::builder(boot)
            .upstream_service(|_: &Address, _: Request<body::ProxyBody>| async {
                let mut r = Response::new(body::full(&b"hello"[..]));
                r.headers_mut()
                    .insert("content-type", http::HeaderValue::from_static("text/plain"));
                Ok(r)
            })
            .build()
            .expect("the bench config is valid")
    }

    /// One GET through the proxy, its response body read to the end; returns the status.
    pub async fn one(proxy: &Proxy) -> u16 {
        // Static URI and values: those hyper parses are slices of its read buffer, as cheap
        // to clone (a `&str` would be copied into a buffer of its own).
        let v = http::HeaderValue::from_static;
        let req = Request::builder()
            .uri(http::Uri::from_static("/api/v1/items?page=2"))
            .header(http::header::HOST, v("svc"))
            .header(http::header::USER_AGENT, v("bench"))
            .header(http::header::ACCEPT, v("*/*"))
            .body(body::empty())
            .expect("a valid request");
        let remote = SocketAddr::from(([127, 0, 0, 1], 40000));
        let resp = proxy
            .handle(LISTENER, remote, req)
            .await
            .expect("the listener exists");
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        status
    }
}
