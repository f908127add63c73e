//! Virtual-host selection through `RouteTable::find` (SEMANTICS §1.1, §1.2).

use mesh_core::config::*;

use crate::support::*;

fn vh(name: &str, domains: &[&str]) -> VirtualHost {
    VirtualHost::new(name, domains.iter().copied()).with_route(Route::prefix("/", name))
}

fn selected(t: &mesh_route::RouteTable, p: &http::request::Parts) -> Option<String> {
    t.find(p, 0).map(|h| h.virtual_host().name().to_owned())
}

struct Case {
    host: Option<&'static str>,
    want: Option<&'static str>,
}

impl Case {
    fn run(&self, t: &mesh_route::RouteTable, label: &str) {
        let p = req("GET", self.host, "/", &[]);
        assert_eq!(
            selected(t, &p).as_deref(),
            self.want,
            "{label}: host {:?}",
            self.host
        );
    }
}

const fn case(host: Option<&'static str>, want: Option<&'static str>) -> Case {
    Case { host, want }
}

#[test]
fn precedence() {
    let cfg = RouteConfiguration::new("rc")
        .with_virtual_host(vh("exact", &["www.foo.com", "API.Foo.com"]))
        .with_virtual_host(vh("suffix", &["*.foo.com"]))
        .with_virtual_host(vh("longer-suffix", &["*.api.foo.com"]))
        .with_virtual_host(vh("prefix", &["www.*"]))
        .with_virtual_host(vh("default", &["*"]));
    let t = table(&cfg);
    for c in [
        case(Some("www.foo.com"), Some("exact")),
        case(Some("api.foo.com"), Some("exact")),
        case(Some("a.api.foo.com"), Some("longer-suffix")),
        case(Some(".api.foo.com"), Some("suffix")),
        case(Some("x.foo.com"), Some("suffix")),
        case(Some("www.bar.com"), Some("prefix")),
        case(Some("www.x.foo.com"), Some("suffix")), // suffix beats prefix
        case(Some("foo.com"), Some("default")),
        case(Some("www.foo.com:80"), Some("prefix")), // port not ignored; `www.*` matches
        case(None, None),
    ] {
        c.run(&t, "precedence");
    }
}

#[test]
fn no_host_only_matches_a_star_only_config() {
    let star_only = table(&RouteConfiguration::new("rc").with_virtual_host(vh("d", &["*"])));
    case(None, Some("d")).run(&star_only, "star only");
    let mixed = table(
        &RouteConfiguration::new("rc")
            .with_virtual_host(vh("a", &["a.com"]))
            .with_virtual_host(vh("d", &["*"])),
    );
    case(None, None).run(&mixed, "mixed");
    case(Some("b.com"), Some("d")).run(&mixed, "mixed");
    let none = table(&RouteConfiguration::new("rc").with_virtual_host(vh("a", &["a.com"])));
    case(Some("b.com"), None).run(&none, "no default");
}

#[test]
fn ignore_port_in_host_matching() {
    let mut cfg = RouteConfiguration::new("rc")
        .with_virtual_host(vh("web", &["example.com"]))
        .with_virtual_host(vh("v6", &["[::1]"]))
        .with_virtual_host(vh("with-port", &["other.com:8080"]));
    let strict = table(&cfg);
    case(Some("example.com:443"), None).run(&strict, "strict");
    case(Some("other.com:8080"), Some("with-port")).run(&strict, "strict");
    cfg.ignore_port_in_host_matching = true;
    let t = table(&cfg);
    for c in [
        case(Some("example.com:443"), Some("web")),
        case(Some("EXAMPLE.com:1"), Some("web")),
        case(Some("example.com"), Some("web")),
        case(Some("[::1]:8080"), Some("v6")),
        case(Some("[::1]"), Some("v6")),
        // Ports in configured domains are not stripped.
        case(Some("other.com:8080"), None),
    ] {
        c.run(&t, "ignore port");
    }
}

#[test]
fn uri_authority_wins_over_host_header() {
    let t = table(
        &RouteConfiguration::new("rc")
            .with_virtual_host(vh("a", &["a.com"]))
            .with_virtual_host(vh("b", &["b.com"])),
    );
    // HTTP/2 requests carry :authority in the URI.
    let p = http::Request::get("https://a.com/x")
        .header("host", "b.com")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(selected(&t, &p).as_deref(), Some("a"));
    assert_eq!(t.virtual_host_for(&p).map(|v| v.index()), Some(0));
    let p = get("B.COM", "/x");
    assert_eq!(selected(&t, &p).as_deref(), Some("b"));
}

#[test]
fn non_utf8_host_does_not_panic() {
    let t = table(&RouteConfiguration::new("rc").with_virtual_host(vh("a", &["*.com"])));
    let mut p = get("x.com", "/");
    p.headers.insert(
        "host",
        http::HeaderValue::from_bytes(b"\xff\xfe.com").unwrap(),
    );
    assert_eq!(selected(&t, &p).as_deref(), Some("a"));
}
