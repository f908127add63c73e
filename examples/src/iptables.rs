//! The traffic capture of Istio's sidecar: the `nat` rules `istio-iptables` installs in a pod,
//! so that every TCP connection the application makes goes to the proxy's outbound port
//! (15001) and every one it receives to the inbound port (15006), except the proxy's own.
//!
//! ```
//! use mesh_examples::iptables::Capture;
//! let rules = Capture::default().rules().unwrap();
//! // Outbound: the OUTPUT chain jumps to ISTIO_OUTPUT, which lets the proxy's own
//! // connections (uid 1337) through and redirects the rest to 15001.
//! assert!(rules.contains(&"-t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001".into()));
//! assert!(rules.contains(&"-t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN".into()));
//! assert_eq!(rules.last().unwrap(), "-t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT");
//! ```
//!
//! The rules, in order (first match wins), as Istio writes them for
//! `-p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -b '*'`:
//!
//! | chain | rule | why |
//! |---|---|---|
//! | `PREROUTING` | `-p tcp -j ISTIO_INBOUND` | inbound connections |
//! | `ISTIO_INBOUND` | `--dport 15008 -j RETURN`, excluded ports `-j RETURN` | HBONE and the proxy's own ports |
//! | `ISTIO_INBOUND` | `-p tcp -j ISTIO_IN_REDIRECT` (or one rule per included port) | to 15006 |
//! | `OUTPUT` | `-j ISTIO_OUTPUT` | outbound connections |
//! | `ISTIO_OUTPUT` | `-o lo -s 127.0.0.6/32 -j RETURN` | the proxy's inbound passthrough |
//! | `ISTIO_OUTPUT` | `-o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT` | the proxy calling its own pod goes through inbound |
//! | `ISTIO_OUTPUT` | `-o lo -m owner ! --uid-owner 1337 -j RETURN` | the application's loopback traffic |
//! | `ISTIO_OUTPUT` | `-m owner --uid-owner 1337 -j RETURN` | the proxy's own connections: no loop |
//! | `ISTIO_OUTPUT` | (the three uid rules again for the gid) | |
//! | `ISTIO_OUTPUT` | `-d 127.0.0.1/32 -j RETURN`, excluded CIDRs `-j RETURN` | |
//! | `ISTIO_OUTPUT` | `-j ISTIO_REDIRECT` (or `-d CIDR` per included range) | to 15001 |

use std::fmt::Write as _;

/// Which connections to capture, with `istio-iptables`' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Where outbound connections go (`-p`, default 15001).
    pub proxy_port: u16,
    /// Where inbound connections go (`-z`, default 15006).
    pub inbound_port: u16,
    /// The proxy's user id, whose connections are not captured (`-u`, default 1337).
    pub proxy_uid: u32,
    /// The proxy's group id (`-g`, default 1337).
    pub proxy_gid: u32,
    /// Outbound destinations to capture (`-i`): `*` for all (default), or CIDRs.
    pub include_outbound_cidrs: Vec<String>,
    /// Outbound destinations never captured (`-x`).
    pub exclude_outbound_cidrs: Vec<String>,
    /// Outbound destination ports never captured (`-o`).
    pub exclude_outbound_ports: Vec<u16>,
    /// Inbound ports to capture (`-b`): `*` for all (default), or ports.
    pub include_inbound_ports: Vec<String>,
    /// Inbound ports never captured (`-d`; the sidecar injector adds 15090, 15021 and 15020).
    pub exclude_inbound_ports: Vec<u16>,
    /// Inbound capture mode (`-m`): `REDIRECT` (the only one supported).
    pub inbound_mode: String,
}

impl Default for Capture {
    fn default() -> Self {
        Self {
            proxy_port: 15001,
            inbound_port: 15006,
            proxy_uid: 1337,
            proxy_gid: 1337,
            include_outbound_cidrs: vec!["*".into()],
            exclude_outbound_cidrs: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            include_inbound_ports: vec!["*".into()],
            exclude_inbound_ports: vec![15090, 15021, 15020],
            inbound_mode: "REDIRECT".into(),
        }
    }
}

/// The HBONE port: never captured.
const HBONE_PORT: u16 = 15008;

/// The chains the rules create, in creation order.
const CHAINS: [&str; 4] = [
    "ISTIO_INBOUND",
    "ISTIO_REDIRECT",
    "ISTIO_IN_REDIRECT",
    "ISTIO_OUTPUT",
];

/// A setting that cannot be turned into rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{option}: {reason}")]
pub struct CaptureError {
    /// The option at fault (`-m`, `-i`, …).
    pub option: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl Capture {
    /// The `iptables` arguments that install the capture, one rule per string, in order.
    ///
    /// # Errors
    /// A [`CaptureError`] naming the option for a mode other than `REDIRECT` (TPROXY needs
    /// transparent listeners, which the proxy does not have), an IPv6 or malformed CIDR, or a
    /// malformed port.
    pub fn rules(&self) -> Result<Vec<String>, CaptureError> {
        if self.inbound_mode != "REDIRECT" {
            return Err(CaptureError {
                option: "-m",
                reason: format!(
                    "inbound capture mode {:?} is not supported (REDIRECT is)",
                    self.inbound_mode
                ),
            });
        }
        for (option, list) in [
            ("-i", &self.include_outbound_cidrs),
            ("-x", &self.exclude_outbound_cidrs),
        ] {
            for c in list.iter().filter(|c| *c != "*") {
                check_cidr(c).map_err(|reason| CaptureError { option, reason })?;
            }
        }
        for p in self.include_inbound_ports.iter().filter(|p| *p != "*") {
            p.parse::<u16>().map_err(|_| CaptureError {
                option: "-b",
                reason: format!("{p:?} is not a port"),
            })?;
        }
        let mut r = Vec::new();
        let mut add = |rule: String| r.push(format!("-t nat {rule}"));
        for c in CHAINS {
            add(format!("-N {c}"));
        }
        add(format!(
            "-A ISTIO_INBOUND -p tcp --dport {HBONE_PORT} -j RETURN"
        ));
        add(format!(
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {}",
            self.proxy_port
        ));
        add(format!(
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {}",
            self.inbound_port
        ));
        // Inbound.
        if !self.include_inbound_ports.is_empty() {
            add("-A PREROUTING -p tcp -j ISTIO_INBOUND".into());
            if self.include_inbound_ports.iter().any(|p| p == "*") {
                for p in &self.exclude_inbound_ports {
                    add(format!("-A ISTIO_INBOUND -p tcp --dport {p} -j RETURN"));
                }
                add("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".into());
            } else {
                for p in &self.include_inbound_ports {
                    add(format!(
                        "-A ISTIO_INBOUND -p tcp --dport {p} -j ISTIO_IN_REDIRECT"
                    ));
                }
            }
        }
        // Outbound.
        add("-A OUTPUT -j ISTIO_OUTPUT".into());
        if !self.exclude_outbound_ports.is_empty() {
            let ports = join(&self.exclude_outbound_ports);
            add(format!(
                "-A ISTIO_OUTPUT -p tcp -m multiport --dports {ports} -j RETURN"
            ));
        }
        add("-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN".into());
        for (kind, id) in [("uid", self.proxy_uid), ("gid", self.proxy_gid)] {
            add(format!(
                "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport {HBONE_PORT} -m owner --{kind}-owner {id} -j ISTIO_IN_REDIRECT"
            ));
            add(format!(
                "-A ISTIO_OUTPUT -o lo -m owner ! --{kind}-owner {id} -j RETURN"
            ));
            add(format!(
                "-A ISTIO_OUTPUT -m owner --{kind}-owner {id} -j RETURN"
            ));
        }
        add("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
        for c in &self.exclude_outbound_cidrs {
            add(format!("-A ISTIO_OUTPUT -d {c} -j RETURN"));
        }
        if self.include_outbound_cidrs.iter().any(|c| c == "*") {
            add("-A ISTIO_OUTPUT -j ISTIO_REDIRECT".into());
        } else {
            for c in &self.include_outbound_cidrs {
                add(format!("-A ISTIO_OUTPUT -d {c} -j ISTIO_REDIRECT"));
            }
        }
        Ok(r)
    }

    /// The `iptables` arguments that remove the capture (the jumps, then the chains); each
    /// may fail harmlessly when the capture is not installed.
    pub fn cleanup_rules(&self) -> Vec<String> {
        let mut r = vec![
            "-t nat -D PREROUTING -p tcp -j ISTIO_INBOUND".to_owned(),
            "-t nat -D OUTPUT -j ISTIO_OUTPUT".to_owned(),
        ];
        for c in CHAINS {
            r.push(format!("-t nat -F {c}"));
        }
        for c in CHAINS {
            r.push(format!("-t nat -X {c}"));
        }
        r
    }
}

fn join(ports: &[u16]) -> String {
    let mut s = String::new();
    for (i, p) in ports.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{p}");
    }
    s
}

/// An IPv4 CIDR (`10.0.0.0/8`) or address.
fn check_cidr(c: &str) -> Result<(), String> {
    let (ip, len) = c.split_once('/').unwrap_or((c, "32"));
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("{c:?} is not an address or CIDR"))?;
    if ip.is_ipv6() {
        return Err(format!("{c:?}: IPv6 capture (ip6tables) is not supported"));
    }
    match len.parse::<u8>() {
        Ok(n) if n <= 32 => Ok(()),
        _ => Err(format!("{c:?}: the prefix length must be 0 to 32")),
    }
}

/// Parses a comma-separated list (`15090,15021`, or `*`), as `istio-iptables` takes it.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Istio's golden output for `-p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -b '*'
    /// -d 15090,15021,15020`, as `iptables` arguments (its save format without the table
    /// header).
    #[test]
    fn the_default_capture_matches_istio_iptables() {
        let expected = "\
-t nat -N ISTIO_INBOUND
-t nat -N ISTIO_REDIRECT
-t nat -N ISTIO_IN_REDIRECT
-t nat -N ISTIO_OUTPUT
-t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-t nat -A PREROUTING -p tcp -j ISTIO_INBOUND
-t nat -A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-t nat -A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-t nat -A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-t nat -A OUTPUT -j ISTIO_OUTPUT
-t nat -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-t nat -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-t nat -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT";
        assert_eq!(Capture::default().rules().unwrap().join("\n"), expected);
    }

    #[test]
    fn included_ranges_ports_and_exclusions() {
        let c = Capture {
            include_outbound_cidrs: vec!["10.96.0.0/12".into(), "10.77.0.0/16".into()],
            exclude_outbound_cidrs: vec!["10.77.9.0/24".into()],
            exclude_outbound_ports: vec![22, 443],
            include_inbound_ports: vec!["8080".into(), "9090".into()],
            ..Capture::default()
        };
        let r = c.rules().unwrap();
        let tail: Vec<&str> = r.iter().rev().take(4).rev().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "-t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
                "-t nat -A ISTIO_OUTPUT -d 10.77.9.0/24 -j RETURN",
                "-t nat -A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT",
                "-t nat -A ISTIO_OUTPUT -d 10.77.0.0/16 -j ISTIO_REDIRECT",
            ]
        );
        assert!(
            r.contains(&"-t nat -A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT".into())
        );
        assert!(!r.iter().any(|l| l.contains("--dport 15090")));
        assert!(r.contains(
            &"-t nat -A ISTIO_OUTPUT -p tcp -m multiport --dports 22,443 -j RETURN".into()
        ));
        // No inbound ports: no PREROUTING jump.
        let none = Capture {
            include_inbound_ports: vec![],
            ..Capture::default()
        };
        assert!(
            !none
                .rules()
                .unwrap()
                .iter()
                .any(|l| l.contains("PREROUTING"))
        );
    }

    #[test]
    fn what_cannot_be_captured_names_the_option() {
        let tproxy = Capture {
            inbound_mode: "TPROXY".into(),
            ..Capture::default()
        };
        assert_eq!(tproxy.rules().unwrap_err().option, "-m");
        let v6 = Capture {
            include_outbound_cidrs: vec!["fd00::/8".into()],
            ..Capture::default()
        };
        assert!(v6.rules().unwrap_err().to_string().starts_with("-i: "));
        let bad = Capture {
            exclude_outbound_cidrs: vec!["10.0.0.0/40".into()],
            ..Capture::default()
        };
        assert_eq!(bad.rules().unwrap_err().option, "-x");
        let port = Capture {
            include_inbound_ports: vec!["http".into()],
            ..Capture::default()
        };
        assert_eq!(port.rules().unwrap_err().option, "-b");
    }
}
