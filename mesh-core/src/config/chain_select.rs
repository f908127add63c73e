//! Choosing a listener's filter chain for a connection, in Envoy's order.
//!
//! Envoy compares the criteria of [`FilterChainMatch`] one after another. At each step only the
//! chains that fit the connection most specifically stay; a chain that does not set the
//! criterion fits it least specifically, and a chain that sets it to something else is out.
//! There is no going back: when a later step leaves nothing, no chain matches (and the
//! listener's default chain, if any, serves the connection), even if a less specific chain
//! dropped at an earlier step would have fitted.
//!
//! ```
//! use mesh_core::config::{Connection, FilterChainMatch, select_chain};
//! let by_port = FilterChainMatch { destination_port: Some(9080), ..Default::default() };
//! let any = FilterChainMatch::default();
//! let conn = Connection::new("10.0.0.1:50000".parse().unwrap(), "10.0.0.9:9080".parse().unwrap());
//! assert_eq!(select_chain([&any, &by_port], &conn), Some(1));
//! let other = Connection::new("10.0.0.1:50000".parse().unwrap(), "10.0.0.9:80".parse().unwrap());
//! assert_eq!(select_chain([&any, &by_port], &other), Some(0));
//! ```

use std::net::{IpAddr, SocketAddr};

use super::{CidrRange, FilterChainMatch, SourceType};

/// What the listener (and its listener filters) learned about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The client's address.
    pub source: SocketAddr,
    /// The peer's address as the socket sees it (the same as `source` without a proxy
    /// protocol).
    pub direct_source: IpAddr,
    /// Where the connection was going: the local address, or the original destination the
    /// `original_dst` listener filter restored.
    pub destination: SocketAddr,
    /// The TLS server name, from the TLS inspector.
    pub server_name: Option<String>,
    /// `raw_buffer`, or `tls` when the TLS inspector saw a ClientHello.
    pub transport_protocol: &'static str,
    /// ALPN protocols the client offered (TLS inspector), or `http/1.1`, `http/1.0` or `h2c`
    /// (HTTP inspector).
    pub application_protocols: Vec<String>,
}

impl Connection {
    /// A plain-text connection from `source` to `destination`, nothing inspected.
    pub fn new(source: SocketAddr, destination: SocketAddr) -> Self {
        Self {
            source,
            direct_source: source.ip(),
            destination,
            server_name: None,
            transport_protocol: "raw_buffer",
            application_protocols: Vec::new(),
        }
    }
}

/// The index of the chain (of `chains`, in order) that serves `conn`, or `None` when none
/// does. Validation refuses chains with the same rules, so at most one is left at the end; if
/// several were, the first would be taken.
pub fn select_chain<'a>(
    chains: impl IntoIterator<Item = &'a FilterChainMatch>,
    conn: &Connection,
) -> Option<usize> {
    let mut left: Vec<(usize, &FilterChainMatch)> = chains.into_iter().enumerate().collect();
    let steps: [&Step<'_>; 9] = [
        &|m| exact(m.destination_port, conn.destination.port()),
        &|m| longest_prefix(&m.prefix_ranges, conn.destination.ip()),
        &|m| server_name(&m.server_names, conn.server_name.as_deref()),
        &|m| exact(m.transport_protocol.as_deref(), conn.transport_protocol),
        &|m| any_of(&m.application_protocols, &conn.application_protocols),
        &|m| longest_prefix(&m.direct_source_prefix_ranges, conn.direct_source),
        &|m| source_type(m.source_type, conn),
        &|m| longest_prefix(&m.source_prefix_ranges, conn.source.ip()),
        &|m| {
            if m.source_ports.is_empty() {
                Some(0)
            } else {
                m.source_ports.contains(&conn.source.port()).then_some(1)
            }
        },
    ];
    for step in steps {
        let ranks: Vec<Option<u32>> = left.iter().map(|(_, m)| step(m)).collect();
        let best = ranks.iter().flatten().max().copied()?;
        let mut ranks = ranks.into_iter();
        left.retain(|_| ranks.next().flatten() == Some(best));
    }
    left.first().map(|(i, _)| *i)
}

/// One criterion: how specifically a chain's match fits the connection (higher is more
/// specific), or `None` when it rules the chain out.
type Step<'a> = dyn Fn(&FilterChainMatch) -> Option<u32> + 'a;

/// Unset: 0; set and equal: 1; set and different: out.
fn exact<T: PartialEq<U>, U>(set: Option<T>, actual: U) -> Option<u32> {
    match set {
        None => Some(0),
        Some(v) => (v == actual).then_some(1),
    }
}

/// Unset: 0; else the longest range holding `ip` (its length + 1), or out.
fn longest_prefix(ranges: &[CidrRange], ip: IpAddr) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| u32::from(r.prefix_len) + 1)
        .max()
}

/// Unset: 0; an exact name: above any wildcard; a wildcard `*.suffix`: by the suffix's length.
fn server_name(names: &[String], sni: Option<&str>) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni?.trim_end_matches('.').to_ascii_lowercase();
    names
        .iter()
        .filter_map(|n| {
            let n = n.to_ascii_lowercase();
            if n == sni {
                Some(u32::MAX)
            } else {
                let suffix = n.strip_prefix('*')?;
                (sni.len() > suffix.len() && sni.ends_with(suffix))
                    .then(|| u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1))
            }
        })
        .max()
}

/// Unset: 0; one of the connection's protocols listed: 1; else out.
fn any_of(listed: &[String], offered: &[String]) -> Option<u32> {
    if listed.is_empty() {
        return Some(0);
    }
    offered.iter().any(|p| listed.contains(p)).then_some(1)
}

fn source_type(t: SourceType, conn: &Connection) -> Option<u32> {
    let local = conn.direct_source.is_loopback() || conn.direct_source == conn.destination.ip();
    match t {
        SourceType::Any => Some(0),
        SourceType::SameIpOrLoopback => local.then_some(1),
        SourceType::External => (!local).then_some(1),
    }
}

impl FilterChainMatch {
    /// Whether two matches have the same rules (lists compared as sets), so that no connection
    /// could tell them apart.
    pub fn same_rules(&self, other: &Self) -> bool {
        fn set<T: Ord + Clone>(v: &[T]) -> Vec<T> {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        }
        fn cidrs(v: &[CidrRange]) -> Vec<(IpAddr, u8)> {
            set(&v
                .iter()
                .map(|r| (r.address_prefix, r.prefix_len))
                .collect::<Vec<_>>())
        }
        self.destination_port == other.destination_port
            && cidrs(&self.prefix_ranges) == cidrs(&other.prefix_ranges)
            && set(&self.server_names) == set(&other.server_names)
            && self.transport_protocol == other.transport_protocol
            && set(&self.application_protocols) == set(&other.application_protocols)
            && cidrs(&self.direct_source_prefix_ranges) == cidrs(&other.direct_source_prefix_ranges)
            && self.source_type == other.source_type
            && cidrs(&self.source_prefix_ranges) == cidrs(&other.source_prefix_ranges)
            && set(&self.source_ports) == set(&other.source_ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> CidrRange {
        let (a, l) = s.split_once('/').unwrap();
        CidrRange {
            address_prefix: a.parse().unwrap(),
            prefix_len: l.parse().unwrap(),
        }
    }

    fn conn(src: &str, dst: &str) -> Connection {
        Connection::new(src.parse().unwrap(), dst.parse().unwrap())
    }

    fn pick(chains: &[FilterChainMatch], c: &Connection) -> Option<usize> {
        select_chain(chains, c)
    }

    #[test]
    fn the_port_comes_before_everything_else() {
        let chains = [
            FilterChainMatch {
                prefix_ranges: vec![cidr("10.0.0.0/8")],
                ..Default::default()
            },
            FilterChainMatch {
                destination_port: Some(80),
                ..Default::default()
            },
        ];
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "10.1.1.1:80")), Some(1));
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "10.1.1.1:81")), Some(0));
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "11.1.1.1:81")), None);
    }

    #[test]
    fn a_later_step_does_not_fall_back_to_a_chain_an_earlier_one_dropped() {
        // Port 80 picks chain 1, which wants TLS; the plain connection matches nothing, though
        // chain 0 would have taken it.
        let chains = [
            FilterChainMatch::default(),
            FilterChainMatch {
                destination_port: Some(80),
                transport_protocol: Some("tls".into()),
                ..Default::default()
            },
        ];
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "10.1.1.1:80")), None);
        let mut tls = conn("1.1.1.1:1", "10.1.1.1:80");
        tls.transport_protocol = "tls";
        assert_eq!(pick(&chains, &tls), Some(1));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let chains = [
            FilterChainMatch {
                prefix_ranges: vec![cidr("10.0.0.0/8")],
                ..Default::default()
            },
            FilterChainMatch {
                prefix_ranges: vec![cidr("10.1.0.0/16"), cidr("192.168.0.0/16")],
                ..Default::default()
            },
            FilterChainMatch {
                prefix_ranges: vec![cidr("10.1.2.3/32")],
                ..Default::default()
            },
        ];
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "10.9.9.9:80")), Some(0));
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "10.1.9.9:80")), Some(1));
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "10.1.2.3:80")), Some(2));
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "11.1.2.3:80")), None);
    }

    #[test]
    fn server_names_exact_before_the_longest_wildcard() {
        let names = |n: &[&str]| FilterChainMatch {
            server_names: n.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let chains = [
            names(&[]),
            names(&["*.com"]),
            names(&["*.example.com"]),
            names(&["www.example.com"]),
        ];
        let sni = |s: Option<&str>| Connection {
            server_name: s.map(str::to_string),
            ..conn("1.1.1.1:1", "2.2.2.2:443")
        };
        assert_eq!(pick(&chains, &sni(Some("WWW.example.com"))), Some(3));
        assert_eq!(pick(&chains, &sni(Some("api.example.com"))), Some(2));
        assert_eq!(pick(&chains, &sni(Some("example.com"))), Some(1));
        assert_eq!(pick(&chains, &sni(Some("example.org"))), Some(0));
        assert_eq!(pick(&chains, &sni(None)), Some(0));
    }

    #[test]
    fn application_protocols_and_sources() {
        let chains = [
            FilterChainMatch {
                application_protocols: vec!["http/1.1".into(), "h2c".into()],
                ..Default::default()
            },
            FilterChainMatch::default(),
        ];
        let mut http = conn("1.1.1.1:1", "2.2.2.2:80");
        http.application_protocols = vec!["h2c".into()];
        assert_eq!(pick(&chains, &http), Some(0));
        assert_eq!(pick(&chains, &conn("1.1.1.1:1", "2.2.2.2:80")), Some(1));

        let chains = [
            FilterChainMatch {
                source_type: SourceType::SameIpOrLoopback,
                ..Default::default()
            },
            FilterChainMatch {
                source_prefix_ranges: vec![cidr("1.0.0.0/8")],
                ..Default::default()
            },
            FilterChainMatch {
                source_ports: vec![7],
                ..Default::default()
            },
        ];
        assert_eq!(pick(&chains, &conn("127.0.0.1:5", "2.2.2.2:80")), Some(0));
        assert_eq!(pick(&chains, &conn("2.2.2.2:5", "2.2.2.2:80")), Some(0));
        assert_eq!(pick(&chains, &conn("1.1.1.1:7", "2.2.2.2:80")), Some(1));
        assert_eq!(pick(&chains, &conn("3.1.1.1:7", "2.2.2.2:80")), Some(2));
        assert_eq!(pick(&chains, &conn("3.1.1.1:8", "2.2.2.2:80")), None);
    }

    #[test]
    fn same_rules_compares_lists_as_sets() {
        let a = FilterChainMatch {
            application_protocols: vec!["h2c".into(), "http/1.1".into()],
            ..Default::default()
        };
        let b = FilterChainMatch {
            application_protocols: vec!["http/1.1".into(), "h2c".into(), "h2c".into()],
            ..Default::default()
        };
        assert!(a.same_rules(&b));
        assert!(!a.same_rules(&FilterChainMatch::default()));
    }
}
