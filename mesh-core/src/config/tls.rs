//! TLS transport sockets (Envoy's `DownstreamTlsContext` and `UpstreamTlsContext`): where
//! certificates and keys come from, which peers are trusted, and the protocol bounds.

use serde::{Deserialize, Serialize};

use super::route::StringMatcher;

/// Where a certificate, key or CA bundle comes from (Envoy's `DataSource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A file, read when the config is compiled (and again on every reload).
    Filename(String),
    /// PEM text in the config itself.
    InlineString(String),
}

impl DataSource {
    /// What the source is, for messages: the file name, or `inline`.
    pub fn describe(&self) -> &str {
        match self {
            Self::Filename(f) => f,
            Self::InlineString(_) => "inline",
        }
    }
}

/// A certificate chain and its private key, in PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// The leaf certificate first, then its intermediates.
    pub certificate_chain: DataSource,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: DataSource,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "TLSv1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSv1_3")]
    V1_3,
}

/// Envoy's `TlsParameters`: the protocol bounds and cipher suites.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsParams {
    /// Lowest version accepted (default TLS 1.2).
    pub minimum_protocol_version: Option<TlsVersion>,
    /// Highest version accepted (default TLS 1.3).
    pub maximum_protocol_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites allowed, by their OpenSSL/BoringSSL names (`ECDHE-RSA-AES128-GCM-SHA256`);
    /// empty allows the provider's default set. TLS 1.3 suites are not configurable, as in Envoy.
    pub cipher_suites: Vec<String>,
}

/// Which subject alternative name a matcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SanType {
    /// `dNSName`.
    Dns,
    /// `uniformResourceIdentifier` (SPIFFE identities: `spiffe://cluster.local/ns/default/sa/x`).
    Uri,
    /// `rfc822Name`.
    Email,
    /// `iPAddress`.
    IpAddress,
}

/// Envoy's `SubjectAltNameMatcher`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanMatcher {
    /// Which kind of name.
    pub san_type: SanType,
    /// How the name must read.
    pub matcher: StringMatcher,
}

/// Envoy's `CertificateValidationContext`: whom to trust.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidationContext {
    /// CA certificates a peer's chain must lead to.
    pub trusted_ca: Option<DataSource>,
    /// The peer certificate must carry a SAN matching one of these (empty: any).
    pub match_typed_subject_alt_names: Vec<SanMatcher>,
}

/// Envoy's `CommonTlsContext`: what both sides share.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonTlsContext {
    /// This side's certificates (a server picks by the client's SNI and key type; Envoy allows
    /// one per key type).
    pub tls_certificates: Vec<TlsCertificate>,
    /// This side's certificate from SDS files (Envoy's `tls_certificate_sds_secret_configs`
    /// with a `path_config_source`): followed as the files change.
    pub tls_certificate_sds_secret_configs: Vec<SdsSecretConfig>,
    /// ALPN protocols offered or accepted, in preference order (`h2`, `http/1.1`).
    pub alpn_protocols: Vec<String>,
    /// Versions and cipher suites.
    pub tls_params: TlsParams,
    /// Peer validation.
    pub validation_context: Option<ValidationContext>,
}

/// Envoy's `DownstreamTlsContext`: TLS a listener's filter chain terminates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DownstreamTlsContext {
    /// Certificates, ALPN, versions, client validation.
    pub common_tls_context: CommonTlsContext,
    /// Refuse clients without a certificate the validation context accepts (mutual TLS).
    pub require_client_certificate: bool,
    /// Issue no session tickets (default false: tickets resume sessions).
    pub disable_stateless_session_resumption: bool,
    /// Keep no session cache (default false: cached sessions resume by id).
    pub disable_stateful_session_resumption: bool,
}

/// A secret from an SDS file: the file holds a `DiscoveryResponse`-shaped list of `Secret`
/// resources (YAML or JSON), and the one named `name` is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdsSecretConfig {
    /// The secret's name.
    pub name: String,
    /// The SDS file (`sds_config.path_config_source.path`).
    pub path: String,
}

/// Envoy's `UpstreamTlsContext`: TLS a cluster originates to its hosts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamTlsContext {
    /// Client certificate, ALPN, versions, server validation. Without a validation context the
    /// server's certificate is not checked, as in Envoy.
    pub common_tls_context: CommonTlsContext,
    /// The server name sent (SNI); none sends none.
    pub sni: Option<String>,
}

/// Envoy's `TransportSocketMatch`: hosts whose `envoy.transport_socket_match` metadata holds
/// every key of `match_metadata` (with the same value) use this socket instead of the
/// cluster's. The first match in order applies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TransportSocketMatch {
    /// The match's name (for stats and messages).
    pub name: String,
    /// The metadata a host must carry (empty: every host).
    pub match_metadata: serde_json::Map<String, serde_json::Value>,
    /// TLS for those hosts; `None` is plain text (`raw_buffer`).
    pub transport_socket: Option<UpstreamTlsContext>,
}

impl TransportSocketMatch {
    /// Whether a host with this metadata takes the match.
    pub fn matches(&self, metadata: &super::Metadata) -> bool {
        let host = metadata.get("envoy.transport_socket_match");
        self.match_metadata
            .iter()
            .all(|(k, v)| host.and_then(|m| m.get(k)) == Some(v))
    }
}
