//! Istio's validation rules (istiod's admission webhook, `pkg/config/validation`), issue #11:
//! each invalid document is refused with its resource, field path and istiod's wording; the
//! valid ones load.

use mesh_xds::istio;

/// One document that must be refused.
struct Invalid {
    kind: &'static str,
    spec: &'static str,
    /// The error's path after `<name>.default <Kind>: `.
    path: &'static str,
    /// Part of istiod's message.
    message: &'static str,
}

impl Invalid {
    fn run(&self) {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: {}\nmetadata: {{ name: x }}\nspec: {}\n",
            self.kind, self.spec
        );
        let e = istio::parse_str(&text, "t.yaml", "default")
            .err()
            .unwrap_or_else(|| panic!("accepted: {}", self.spec));
        let want = format!("x.default {}: {}", self.kind, self.path);
        assert!(
            e.field_errors()
                .iter()
                .any(|fe| fe.path == want && fe.message.contains(self.message)),
            "{}: wanted {want}: {}, got {:#?}",
            self.spec,
            self.message,
            e.field_errors()
        );
    }
}

#[test]
fn invalid_service_entries() {
    for case in [
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: ['*'], ports: [{ number: 80, name: http }] }",
            path: "spec.hosts[0]",
            message: "invalid host *",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [foo.*.com], ports: [{ number: 80, name: http }] }",
            path: "spec.hosts[0]",
            message: "invalid (label \"*\" invalid)",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], addresses: [10.0.0.0/8], resolution: DNS, ports: [{ number: 80, name: http }] }",
            path: "spec.addresses[0]",
            message: "CIDR addresses are allowed only for NONE/STATIC resolution types",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], addresses: [1.2.3], ports: [{ number: 80, name: http }] }",
            path: "spec.addresses[0]",
            message: "1.2.3 is not a valid IP",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: http }, { number: 81, name: http }] }",
            path: "spec.ports[1].name",
            message: "service entry port name \"http\" already defined",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: a }, { number: 80, name: b }] }",
            path: "spec.ports[1].number",
            message: "service entry port 80 already defined",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: http, protocol: SMTP }] }",
            path: "spec.ports[0].protocol",
            message: "unsupported protocol: SMTP",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: http }], resolution: NONE, endpoints: [{ address: 1.1.1.1 }] }",
            path: "spec.endpoints",
            message: "no endpoints should be provided for resolution type none",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: http }], resolution: STATIC, endpoints: [{ address: a.example.com }] }",
            path: "spec.endpoints[0].address",
            message: "is not a valid IP address",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: http }], resolution: STATIC, endpoints: [{ address: 1.1.1.1, ports: { grpc: 90 } }] }",
            path: "spec.endpoints[0].ports.grpc",
            message: "endpoint port 90 is not defined by the service entry",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: ['*.a.com'], ports: [{ number: 80, name: http }], resolution: DNS }",
            path: "spec.hosts",
            message: "hosts must be FQDN",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com], ports: [{ number: 80, name: http }], workloadSelector: { labels: { app: '*' } } }",
            path: "spec.workloadSelector.labels",
            message: "wildcard is not supported in selector",
        },
        Invalid {
            kind: "ServiceEntry",
            spec: "{ hosts: [a.com, b.com], ports: [{ number: 3306, name: mysql, protocol: MYSQL }], resolution: DNS }",
            path: "spec.ports",
            message: "multiple hosts provided with non-HTTP, non-TLS ports",
        },
    ] {
        case.run();
    }
}

#[test]
fn invalid_destination_rules() {
    for case in [
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN, warmup: { minimumPercent: 50 } } } }",
            path: "spec.trafficPolicy.loadBalancer.warmup.duration",
            message: "duration is required",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN, warmup: { duration: 10s, minimumPercent: 150 } } } }",
            path: "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
            message: "minimumPercent value should be less than or equal to 100",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN, warmup: { duration: 10s, aggression: 0 } } } }",
            path: "spec.trafficPolicy.loadBalancer.warmup.aggression",
            message: "aggression should be greater than 0",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, subsets: [{ name: v1.0 }] }",
            path: "spec.subsets[0].name",
            message: "subset name is invalid: v1.0",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, subsets: [{ name: v1, labels: { 'version': 'a b' } }] }",
            path: "spec.subsets[0].labels",
            message: "invalid tag value",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { tls: { mode: MUTUAL } } }",
            path: "spec.trafficPolicy.tls.clientCertificate",
            message: "client certificate required for mutual tls",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { consistentHash: { maglev: { tableSize: 1000 } } } } }",
            path: "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            message: "tableSize must be a prime number for maglev",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { ttl: 1s } } } } }",
            path: "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
            message: "name required for HttpCookie",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: {} }",
            path: "spec.trafficPolicy",
            message: "traffic policy must have at least one field",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { outlierDetection: { consecutiveLocalOriginFailures: 3 } } }",
            path: "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            message: "split external local origin errors is set to false",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, workloadSelector: { matchLabels: { '': x } } }",
            path: "spec.workloadSelector.matchLabels",
            message: "empty key is not supported in selector",
        },
    ] {
        case.run();
    }
}

#[test]
fn invalid_gateways_virtual_services_and_workload_entries() {
    for case in [
        Invalid {
            kind: "Gateway",
            spec: "{ servers: [{ port: { number: 443, name: https, protocol: HTTPS }, hosts: [a.example.com] }] }",
            path: "spec.servers[0].tls",
            message: "server must have TLS settings for HTTPS/TLS protocols",
        },
        Invalid {
            kind: "Gateway",
            spec: "{ servers: [{ port: { number: 443, name: https, protocol: HTTPS }, hosts: [a.example.com], tls: { mode: SIMPLE } }] }",
            path: "spec.servers[0].tls.serverCertificate",
            message: "SIMPLE TLS requires a server certificate",
        },
        Invalid {
            kind: "Gateway",
            spec: "{ servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: [reviews] }] }",
            path: "spec.servers[0].hosts[0]",
            message: "short names (non FQDN) are not allowed",
        },
        Invalid {
            kind: "Gateway",
            spec: "{ servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ['*'] }, { port: { number: 81, name: http, protocol: HTTP }, hosts: ['*'] }] }",
            path: "spec.servers[1].port.name",
            message: "port names in servers must be unique: duplicate name http",
        },
        Invalid {
            kind: "Gateway",
            spec: "{ servers: [] }",
            path: "spec.servers",
            message: "gateway must have at least one server",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: ['*'], http: [{ route: [{ destination: { host: a } }] }] }",
            path: "spec.hosts[0]",
            message: "wildcard host * is not allowed for virtual services bound to the mesh gateway",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ route: [{ destination: { host: '*' } }] }] }",
            path: "spec.http[0].route[0].destination.host",
            message: "invalid destination host *",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ route: [{ destination: { host: a } }], timeout: 0s }] }",
            path: "spec.http[0].timeout",
            message: "duration must be greater than 1ms",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ route: [{ destination: { host: a } }], retries: { attempts: 0, perTryTimeout: 1s } }] }",
            path: "spec.http[0].retries.attempts",
            message: "http retry policy configured when attempts are set to 0 (disabled)",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ route: [{ destination: { host: a }, weight: 0 }, { destination: { host: b }, weight: 0 }] }] }",
            path: "spec.http[0].route",
            message: "total destination weight = 0",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ redirect: { uri: /x, scheme: ftp } }] }",
            path: "spec.http[0].redirect.scheme",
            message: "invalid redirect scheme",
        },
        Invalid {
            kind: "WorkloadEntry",
            spec: "{ labels: { app: web } }",
            path: "spec.address",
            message: "address is required",
        },
        Invalid {
            kind: "WorkloadEntry",
            spec: "{ address: 'host:80' }",
            path: "spec.address",
            message: "is not a valid FQDN or an IP address",
        },
        Invalid {
            kind: "WorkloadEntry",
            spec: "{ address: 1.1.1.1, ports: { http: 70000 } }",
            path: "spec.ports.http",
            message: "port number 70000 must be in the range 1..65535",
        },
        Invalid {
            kind: "WorkloadEntry",
            spec: "{ address: 1.1.1.1, labels: { '-bad': x } }",
            path: "spec.labels",
            message: "invalid tag key",
        },
    ] {
        case.run();
    }
}

/// Valid documents of each kind load (`--strict` is about unsupported fields, not validity).
#[test]
fn valid_documents_load() {
    for (kind, spec) in [
        (
            "ServiceEntry",
            "{ hosts: [api.example.com], addresses: [10.0.0.0/8, 001:db8::], ports: [{ number: 443, name: https, protocol: HTTPS }], resolution: STATIC, endpoints: [{ address: 10.1.2.3, ports: { https: 8443 } }] }",
        ),
        (
            "ServiceEntry",
            "{ hosts: ['*.example.com'], ports: [{ number: 80, name: http, protocol: HTTP }], resolution: NONE }",
        ),
        (
            "DestinationRule",
            "{ host: reviews, trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST, warmup: { duration: 30s, minimumPercent: 10, aggression: 1.5 } } }, subsets: [{ name: v1, labels: { version: v1 } }] }",
        ),
        (
            "Gateway",
            "{ selector: { istio: ingressgateway }, servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ['ns/*.example.com', '*'], tls: { httpsRedirect: true } }] }",
        ),
        (
            "VirtualService",
            "{ hosts: [reviews], http: [{ route: [{ destination: { host: reviews, subset: v1 }, weight: 75 }, { destination: { host: reviews, subset: v2 }, weight: 25 }], timeout: 2s, retries: { attempts: 3, perTryTimeout: 1s, retryOn: '5xx,reset' } }] }",
        ),
        (
            "WorkloadEntry",
            "{ address: vm1.example.com, ports: { http: 8080 }, labels: { app: web, example.com/team: a } }",
        ),
    ] {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{ name: ok }}\nspec: {spec}\n"
        );
        if let Err(e) = istio::parse_str(&text, "ok.yaml", "default") {
            panic!("{kind} {spec}: {e}");
        }
    }
}

/// The rest of the rules: route conflicts, rewrites, matches, exportTo, locality settings,
/// connection-pool consistency, gateway binds.
#[test]
fn more_invalid_documents() {
    for case in [
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a.example.com, '*.example.com'], http: [{ route: [{ destination: { host: a } }] }] }",
            path: "spec.hosts",
            message: "duplicate hosts in virtual service: a.example.com & *.example.com",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a] }",
            path: "spec",
            message: "http, tcp or tls must be provided in virtual service",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ redirect: { uri: /b }, fault: { abort: { httpStatus: 500, percentage: { value: 1 } } } }] }",
            path: "spec.http[0]",
            message: "HTTP route cannot contain both fault and redirect",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ route: [{ destination: { host: a } }], rewrite: {} }] }",
            path: "spec.http[0].rewrite",
            message: "rewrite must specify at least one of URI, UriRegexRewrite, or authority",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], http: [{ match: [{ port: 70000 }], route: [{ destination: { host: a } }] }] }",
            path: "spec.http[0].match[0].port",
            message: "port number 70000 must be in the range 1..65535",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], exportTo: ['*', '.'], http: [{ route: [{ destination: { host: a } }] }] }",
            path: "spec.exportTo",
            message: "cannot have both public (*) and non-public exportTo values for a resource",
        },
        Invalid {
            kind: "VirtualService",
            spec: "{ hosts: [a], exportTo: ['~'], http: [{ route: [{ destination: { host: a } }] }] }",
            path: "spec.exportTo[0]",
            message: "exportTo ~ (none) is not allowed for Istio configuration objects",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN, localityLbSetting: { distribute: [{ from: us/*, to: { 'us/a/*': 60, 'us/b/*': 30 } }] } } } }",
            path: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
            message: "total locality weight 90 != 100",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN, localityLbSetting: { failover: [{ from: us, to: us }] } } } }",
            path: "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            message: "locality lb failover settings must specify different regions",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: UPGRADE, useClientProtocol: true } } } }",
            path: "spec.trafficPolicy.connectionPool.http.useClientProtocol",
            message: "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
        },
        Invalid {
            kind: "DestinationRule",
            spec: "{ host: a, trafficPolicy: { portLevelSettings: [{ port: { number: 80 } }] } }",
            path: "spec.trafficPolicy.portLevelSettings[0]",
            message: "port traffic policy must have at least one field",
        },
        Invalid {
            kind: "Gateway",
            spec: "{ servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ['*'], bind: 'not-an-ip' }] }",
            path: "spec.servers[0].bind",
            message: "not-an-ip is not a valid IP",
        },
    ] {
        case.run();
    }
}
