//! proptest strategies: route tables with overlapping prefixes, exact paths, regexes from a
//! small alphabet, header and query conditions, case-insensitive routes and runtime fractions;
//! requests with partial prefix hits, mixed case, path parameters and query strings.

use mesh_core::config::*;
use proptest::prelude::*;
use proptest::sample::select;

/// Path segments: short, overlapping, mixed case.
const SEGMENTS: &[&str] = &["a", "b", "ab", "A", "Ab", "aB", "x1", "1", "a.b", "-"];

/// `/seg/seg...`, possibly with a trailing `/`.
pub(crate) fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(select(SEGMENTS), 0..4),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && !p.ends_with('/') {
                p.push('/');
            }
            p
        })
}

/// A path cut at a random length (so prefixes end mid-segment too), possibly empty.
pub(crate) fn prefix() -> impl Strategy<Value = String> {
    (path(), any::<prop::sample::Index>()).prop_map(|(p, cut)| {
        let n = cut.index(p.len() + 1);
        p[..n].to_owned()
    })
}

/// A valid `path_separated_prefix`: `^[^?#]+[^?#/]$`.
fn separated_prefix() -> impl Strategy<Value = String> {
    prop::collection::vec(select(SEGMENTS), 1..4).prop_map(|segs| format!("/{}", segs.join("/")))
}

/// Regex fragments; any concatenation compiles. Some start with literals (so the index keys
/// them by literal prefix), some make a literal optional, some alternate or set flags.
const REGEX_PARTS: &[&str] = &[
    "/",
    "a",
    "b",
    "A",
    "/a",
    "/ab",
    "/b/",
    "[ab]+",
    "[a-z0-9]*",
    ".*",
    ".",
    "(a|b)",
    "x?",
    "b*",
    "\\.",
    "\\d+",
    "[^/]+",
    "/?",
    "(?i)a",
    "a{1,2}",
    "\\-",
    "1",
];

/// A regex from [`REGEX_PARTS`], sometimes anchored with `^` or made case-insensitive.
pub(crate) fn regex() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(select(REGEX_PARTS), 1..5),
        select(&["", "", "", "^", "(?i)"][..]),
    )
        .prop_map(|(parts, lead)| format!("{lead}{}", parts.concat()))
}

/// Header values; `b,a` and repeated headers exercise joining.
pub(crate) const VALUES: &[&str] = &["", "a", "A", "ab", "1", "2", "b,a", "-1", "x"];
/// Header names used by conditions (`X-A` checks case-insensitive names).
const HEADER_NAMES: &[&str] = &["x-a", "x-b", "X-A", ":method"];

fn non_empty_value() -> impl Strategy<Value = String> {
    select(&["a", "A", "b", "1", ","][..]).prop_map(str::to_owned)
}

fn string_matcher() -> impl Strategy<Value = StringMatcher> {
    let pattern = prop_oneof![
        select(VALUES).prop_map(|v| StringPattern::Exact(v.to_owned())),
        select(&["GET", "get", "POST"][..]).prop_map(|v| StringPattern::Exact(v.to_owned())),
        non_empty_value().prop_map(StringPattern::Prefix),
        non_empty_value().prop_map(StringPattern::Suffix),
        non_empty_value().prop_map(StringPattern::Contains),
        select(&["a.*", "[ab]+", "^$", "1|2", "(?i)A", ""][..])
            .prop_map(|r| StringPattern::SafeRegex(r.to_owned())),
    ];
    (pattern, any::<bool>()).prop_map(|(pattern, ignore_case)| StringMatcher {
        pattern,
        ignore_case,
    })
}

fn header_matcher() -> impl Strategy<Value = HeaderMatcher> {
    let spec = prop_oneof![
        3 => string_matcher().prop_map(HeaderMatchSpec::String),
        1 => (-2i64..3, -2i64..5).prop_map(|(start, end)| HeaderMatchSpec::Range { start, end }),
        1 => any::<bool>().prop_map(HeaderMatchSpec::Present),
    ];
    (
        select(HEADER_NAMES),
        spec,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(name, spec, invert, missing_empty)| HeaderMatcher {
            name: name.to_owned(),
            spec,
            invert_match: invert,
            treat_missing_header_as_empty: missing_empty,
        })
}

fn query_matcher() -> impl Strategy<Value = QueryParameterMatcher> {
    (
        select(&["q", "k"][..]),
        prop::option::of(select(&["1", "a", ""][..])),
    )
        .prop_map(|(name, value)| QueryParameterMatcher {
            name: name.to_owned(),
            string_match: value.map(StringMatcher::exact),
        })
}

/// Path specifiers the naive reference understands.
fn simple_path_match() -> impl Strategy<Value = PathMatch> {
    prop_oneof![
        3 => prefix().prop_map(PathMatch::Prefix),
        3 => path().prop_map(PathMatch::Path),
        2 => regex().prop_map(PathMatch::SafeRegex),
        1 => separated_prefix().prop_map(PathMatch::PathSeparatedPrefix),
    ]
}

/// Every path specifier, including URI templates and `connect_matcher`.
fn any_path_match() -> impl Strategy<Value = PathMatch> {
    prop_oneof![
        8 => simple_path_match(),
        1 => select(&["/a/*", "/{x}", "/a/**", "/{x}/b", "/A/{x=**}", "/{f}.b", "/x1/{y}/"][..])
            .prop_map(|t| PathMatch::PathTemplate(t.to_owned())),
        1 => Just(PathMatch::ConnectMatcher),
    ]
}

fn route_match(
    path: impl Strategy<Value = PathMatch>,
    extras: bool,
) -> impl Strategy<Value = RouteMatch> {
    (
        path,
        prop::bool::weighted(0.3),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(header_matcher(), 1..3),
        ],
        prop_oneof![
            5 => Just(Vec::new()),
            1 => prop::collection::vec(query_matcher(), 1..2),
        ],
        prop::option::weighted(0.15, 0u32..=100),
        prop::bool::weighted(0.1),
        if extras {
            prop::option::weighted(
                0.15,
                (
                    prop::option::of(any::<bool>()),
                    prop::option::of(any::<bool>()),
                ),
            )
            .boxed()
        } else {
            Just(None).boxed()
        },
    )
        .prop_map(
            |(path, case_insensitive, headers, query, fraction, grpc, tls)| RouteMatch {
                path,
                case_sensitive: !case_insensitive,
                runtime_fraction: fraction.map(|n| RuntimeFraction {
                    default_value: FractionalPercent::percent(n),
                    runtime_key: String::new(),
                }),
                headers,
                query_parameters: query,
                grpc,
                tls_context: tls.map(|(presented, validated)| TlsContextMatch {
                    presented,
                    validated,
                }),
            },
        )
}

fn routes(
    path: impl Strategy<Value = PathMatch> + Clone,
    extras: bool,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Route>> {
    prop::collection::vec(route_match(path, extras), len).prop_map(|matches| {
        matches
            .into_iter()
            .enumerate()
            .map(|(i, m)| Route::new(m, Action::Route(RouteAction::cluster(format!("c{i}")))))
            .collect()
    })
}

/// Which route kinds a generated table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mix {
    /// What the naive reference understands: prefixes, exact paths, regexes, separated
    /// prefixes.
    Simple,
    /// Mostly regexes, most of them without a literal prefix (several regex sets per host).
    RegexHeavy,
    /// Also URI templates, `connect_matcher` and TLS conditions.
    Every,
}

/// Two virtual hosts, `a.com` and `*`, with random routes of the given mix.
pub(crate) fn table(
    mix: Mix,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = RouteConfiguration> {
    let extras = mix == Mix::Every;
    let path = match mix {
        Mix::Simple => simple_path_match().boxed(),
        Mix::RegexHeavy => prop_oneof![
            1 => simple_path_match(),
            4 => (regex(), prop::bool::weighted(0.6))
                .prop_map(|(r, ci)| PathMatch::SafeRegex(if ci { format!("(?i){r}") } else { r })),
        ]
        .boxed(),
        Mix::Every => any_path_match().boxed(),
    };
    (
        routes(path.clone(), extras, len.clone()),
        routes(path, extras, 0..len.end / 4 + 1),
        any::<bool>(),
    )
        .prop_map(|(a, other, ignore_params)| {
            let mut vh = VirtualHost::new("a", ["a.com"]);
            vh.routes = a;
            let mut rest = VirtualHost::new("rest", ["*"]);
            rest.routes = other;
            let mut cfg = RouteConfiguration::new("rc")
                .with_virtual_host(vh)
                .with_virtual_host(rest);
            cfg.ignore_path_parameters_in_path_matching = ignore_params;
            cfg
        })
}

/// A request as the reference sees it.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) host: &'static str,
    /// `:path` with query.
    pub(crate) path: String,
    /// Lower-case names, in order.
    pub(crate) headers: Vec<(&'static str, &'static str)>,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) tls: Option<(bool, bool)>,
    pub(crate) random: u64,
}

impl Req {
    /// The request as `http` parts.
    pub(crate) fn parts(&self) -> http::request::Parts {
        let mut b = http::Request::builder()
            .method(self.method)
            .uri(self.path.as_str())
            .header("host", self.host);
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        if let Some(ct) = self.content_type {
            b = b.header("content-type", ct);
        }
        let mut parts = b.body(()).unwrap().into_parts().0;
        if let Some((presented, validated)) = self.tls {
            parts.extensions.insert(mesh_route::DownstreamTls {
                presented,
                validated,
            });
        }
        parts
    }
}

/// Requests: paths from the same segments (so prefixes hit fully, partially or not), mixed
/// case, optional `;params`, query strings, headers, gRPC content types and TLS facts.
pub(crate) fn request() -> impl Strategy<Value = Req> {
    let query = select(
        &[
            "", "?", "?q=1", "?q=1&k=a", "?k&q", "?q=a&q=1", "?q", "?k=1&q=",
        ][..],
    );
    let params = select(&["", "", ";p=1", ";"][..]);
    let headers = prop::collection::vec((select(&["x-a", "x-b"][..]), select(VALUES)), 0..4);
    (
        (
            select(&["GET", "POST"][..]),
            select(&["a.com", "A.Com", "b.com"][..]),
        ),
        (path(), params, query),
        headers,
        prop::option::of(select(
            &[
                "application/grpc",
                "application/grpc+proto",
                "application/json",
            ][..],
        )),
        prop::option::of((any::<bool>(), any::<bool>())),
        0u64..200,
    )
        .prop_map(
            |((method, host), (path, params, query), headers, content_type, tls, random)| Req {
                method,
                host,
                path: format!("{path}{params}{query}"),
                headers,
                content_type,
                tls,
                random,
            },
        )
}
