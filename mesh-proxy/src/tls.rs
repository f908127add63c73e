//! TLS a filter chain terminates (Envoy's `DownstreamTlsContext`), on rustls with the ring
//! provider.
//!
//! A context is compiled with the rest of the config: certificates and keys are read and
//! checked then (a file that cannot be read, PEM that does not parse, a key that does not
//! match its certificate are config errors naming the file and the field), so a reload with a
//! bad certificate is refused and the running one keeps serving.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{
    DataSource, DownstreamTlsContext, SanMatcher, SanType, SdsSecretConfig, StringPattern,
    TlsCertificate, TlsVersion, UpstreamTlsContext,
};
use mesh_core::stats::{Counter, Registry, StatName};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::time::Instant;

/// How long a client may take to complete its handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS context that cannot be built, naming the field (relative to the transport socket's
/// `typed_config`) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub(crate) struct TlsError {
    pub(crate) field: String,
    pub(crate) message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> TlsError {
    TlsError {
        field: field.into(),
        message: message.into(),
    }
}

/// The bytes of a data source.
fn read(source: &DataSource, field: &str) -> Result<Vec<u8>, TlsError> {
    match source {
        DataSource::Filename(f) => std::fs::read(f)
            .map_err(|e| err(format!("{field}.filename"), format!("cannot read {f}: {e}"))),
        DataSource::InlineString(s) => Ok(s.as_bytes().to_vec()),
    }
}

fn certificates(
    source: &DataSource,
    field: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(source, field)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    let certs = certs.map_err(|e| {
        err(
            field,
            format!("{}: not PEM certificates: {e}", source.describe()),
        )
    })?;
    if certs.is_empty() {
        return Err(err(
            field,
            format!("{}: no certificate in it", source.describe()),
        ));
    }
    Ok(certs)
}

/// The OpenSSL names (Envoy's) of the TLS 1.2 suites the provider implements.
const SUITE_NAMES: &[(&str, rustls::CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The provider restricted to the configured TLS 1.2 suites (TLS 1.3 suites always stay, as
/// in Envoy). Envoy's `[A|B]` equal-preference groups are read as their members.
fn restricted(names: &[String]) -> Result<Arc<CryptoProvider>, TlsError> {
    // ring, chosen by measurement (see the workspace Cargo.toml): rustls marks it deprecated
    // for lacking post-quantum key exchange, which aws-lc-rs has (X25519MLKEM768).
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return Ok(Arc::new(p));
    }
    let mut wanted = Vec::new();
    for (i, entry) in names.iter().enumerate() {
        for name in entry.trim_matches(|c| c == '[' || c == ']').split('|') {
            let Some((_, suite)) = SUITE_NAMES.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = SUITE_NAMES.iter().map(|(n, _)| *n).collect();
                return Err(err(
                    format!("common_tls_context.tls_params.cipher_suites[{i}]"),
                    format!(
                        "cipher suite {name:?} is not available (TLS 1.2 suites: {})",
                        known.join(", ")
                    ),
                ));
            };
            wanted.push(*suite);
        }
    }
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(_) => wanted.contains(&s.suite()),
    });
    Ok(Arc::new(p))
}

/// The protocol versions within a context's bounds (default TLS 1.2 to 1.3).
fn protocol_versions(
    p: &mesh_core::config::TlsParams,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = p.minimum_protocol_version.unwrap_or(TlsVersion::V1_2);
    let max = p.maximum_protocol_version.unwrap_or(TlsVersion::V1_3);
    [
        (TlsVersion::V1_2, &rustls::version::TLS12),
        (TlsVersion::V1_3, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min && *v <= max)
    .map(|(_, p)| p)
    .collect()
}

/// A certificate and key loaded together: the key must be the certificate's.
fn certified_key(
    cert: &TlsCertificate,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain_field = "common_tls_context.tls_certificates[0].certificate_chain";
    let key_field = "common_tls_context.tls_certificates[0].private_key";
    let chain = certificates(&cert.certificate_chain, chain_field)?;
    let key_pem = read(&cert.private_key, key_field)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        err(
            key_field,
            format!(
                "{}: not a PEM private key: {e}",
                cert.private_key.describe()
            ),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        err(
            "common_tls_context.tls_certificates[0]",
            format!(
                "{} and {}: {e}",
                cert.certificate_chain.describe(),
                cert.private_key.describe()
            ),
        )
    })
}

/// How often the certificate files are looked at for a rotation, at most (on a handshake).
const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// What a certificate file looked like: its modification time and length.
type Stamp = Option<(std::time::SystemTime, u64)>;

fn stamp_path(path: &str) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn stamp(source: &DataSource) -> Stamp {
    match source {
        DataSource::Filename(f) => stamp_path(f),
        DataSource::InlineString(_) => None,
    }
}

/// Where a server's certificate comes from.
#[derive(Debug)]
enum CertSource {
    /// `tls_certificates[0]`.
    Files(TlsCertificate),
    /// `tls_certificate_sds_secret_configs[0]`: an SDS file naming the certificate.
    Sds(SdsSecretConfig),
}

impl CertSource {
    /// The certificate, its files read now.
    fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        match self {
            Self::Files(cert) => certified_key(cert, provider),
            Self::Sds(sds) => certified_key(&self.sds_certificate(sds)?, provider),
        }
    }

    fn sds_certificate(&self, sds: &SdsSecretConfig) -> Result<TlsCertificate, TlsError> {
        let field = "common_tls_context.tls_certificate_sds_secret_configs[0]";
        let text = std::fs::read_to_string(&sds.path).map_err(|e| {
            err(
                format!("{field}.sds_config.path_config_source.path"),
                format!("cannot read {}: {e}", sds.path),
            )
        })?;
        mesh_xds::envoy::parse_sds_certificate(&text, &sds.name)
            .map_err(|e| err(field, format!("{}: {e}", sds.path)))
    }

    /// What the files behind the certificate look like now.
    fn stamps(&self) -> Vec<Stamp> {
        match self {
            Self::Files(c) => vec![stamp(&c.certificate_chain), stamp(&c.private_key)],
            Self::Sds(sds) => {
                let mut v = vec![stamp_path(&sds.path)];
                if let Ok(c) = self.sds_certificate(sds) {
                    v.push(stamp(&c.certificate_chain));
                    v.push(stamp(&c.private_key));
                }
                v
            }
        }
    }

    fn describe(&self) -> &str {
        match self {
            Self::Files(c) => c.certificate_chain.describe(),
            Self::Sds(s) => &s.path,
        }
    }
}

/// A value loaded from files and loaded again when they change: at most once a second, on a
/// handshake, the files' stamps are looked at; when they changed and the value loads, new
/// handshakes get the new value. One caught half-written (a new certificate with the old key)
/// is retried at the next look; until then the previous value serves.
struct Watched<T> {
    current: arc_swap::ArcSwap<T>,
    seen: std::sync::Mutex<(Vec<Stamp>, Instant)>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("current", &self.current.load())
            .finish_non_exhaustive()
    }
}

impl<T> Watched<T> {
    fn new(value: T, stamps: Vec<Stamp>) -> Self {
        Self {
            current: arc_swap::ArcSwap::from_pointee(value),
            seen: std::sync::Mutex::new((stamps, Instant::now())),
        }
    }

    /// The current value, after a look at the files when one is due.
    fn get(
        &self,
        stamps: impl FnOnce() -> Vec<Stamp>,
        load: impl FnOnce() -> Result<T, TlsError>,
        what: &str,
    ) -> Arc<T> {
        // Another handshake may be looking: this one takes the current value.
        if let Ok(mut s) = self.seen.try_lock() {
            let now = Instant::now();
            if now.duration_since(s.1) >= ROTATION_CHECK {
                s.1 = now;
                let stamps = stamps();
                if stamps != s.0 {
                    match load() {
                        Ok(v) => {
                            self.current.store(Arc::new(v));
                            s.0 = stamps;
                            tracing::info!(file = %what, "TLS files rotated");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "rotated TLS files cannot be used yet; the previous ones still serve");
                        }
                    }
                }
            }
        }
        self.current.load_full()
    }
}

/// A certificate and key (a server's, or a client's), rotated as their files change (see
/// [`Watched`]). Connections open keep theirs.
#[derive(Debug)]
struct RotatingCert {
    source: CertSource,
    provider: Arc<CryptoProvider>,
    key: Watched<CertifiedKey>,
}

impl RotatingCert {
    fn new(source: CertSource, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = source.stamps();
        let key = Watched::new(source.load(&provider)?, stamps);
        Ok(Self {
            source,
            provider,
            key,
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.key.get(
            || self.source.stamps(),
            || self.source.load(&self.provider),
            self.source.describe(),
        )
    }
}

impl rustls::client::ResolvesClientCert for RotatingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Client certificates checked against a CA bundle that is followed as its file changes (the
/// workload identity's `root-cert.pem` rotates with it).
#[derive(Debug)]
struct RotatingClientVerifier {
    ca: DataSource,
    require: bool,
    provider: Arc<CryptoProvider>,
    inner: Watched<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

const CA_FIELD: &str = "common_tls_context.validation_context.trusted_ca";

impl RotatingClientVerifier {
    fn new(ca: DataSource, require: bool, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let inner = Watched::new(Self::build(&ca, require, &provider)?, vec![stamp(&ca)]);
        Ok(Self {
            ca,
            require,
            provider,
            inner,
        })
    }

    fn build(
        ca: &DataSource,
        require: bool,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certificates(ca, CA_FIELD)? {
            roots
                .add(c)
                .map_err(|e| err(CA_FIELD, format!("{}: {e}", ca.describe())))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
        let verifier = if require {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        verifier.build().map_err(|e| err(CA_FIELD, e.to_string()))
    }

    fn current(&self) -> Arc<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
        self.inner.get(
            || vec![stamp(&self.ca)],
            || Self::build(&self.ca, self.require, &self.provider),
            self.ca.describe(),
        )
    }
}

impl rustls::server::danger::ClientCertVerifier for RotatingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.require
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints: the roots may rotate under a borrowed list (hints are optional in TLS).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A compiled server-side context.
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    pub(crate) config: Arc<ServerConfig>,
    /// The names a client certificate must carry, when the context lists any.
    pub(crate) sans: Option<Arc<SanCheck>>,
}

impl ServerTls {
    /// Whether a completed handshake's client may proceed: a certificate it presented must
    /// carry a name the SAN matchers accept (the chain itself was checked in the handshake).
    pub(crate) fn accepts_peer(&self, peer: Option<&CertificateDer<'_>>) -> bool {
        match (&self.sans, peer) {
            (None, _) | (Some(_), None) => true,
            (Some(check), Some(cert)) => check.accepts(cert),
        }
    }
}

impl ServerTls {
    /// Reads and checks the certificates and keys of `t`.
    pub(crate) fn new(t: &DownstreamTlsContext) -> Result<Self, TlsError> {
        let c = &t.common_tls_context;
        let cert = match (
            c.tls_certificates.as_slice(),
            c.tls_certificate_sds_secret_configs.as_slice(),
        ) {
            ([one], []) => CertSource::Files(one.clone()),
            ([], [sds]) => CertSource::Sds(sds.clone()),
            ([], []) => {
                return Err(err(
                    "common_tls_context.tls_certificates",
                    "a server needs a certificate and its key",
                ));
            }
            _ => {
                return Err(err(
                    "common_tls_context.tls_certificates",
                    "one certificate per filter chain is supported (use a chain per server name)",
                ));
            }
        };
        let provider = restricted(&c.tls_params.cipher_suites)?;
        let resolver = Arc::new(RotatingCert::new(cert, Arc::clone(&provider))?);
        let versions = protocol_versions(&c.tls_params);
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| err("common_tls_context.tls_params", e.to_string()))?;
        let builder = match &c.validation_context {
            None => builder.with_no_client_auth(),
            Some(v) => {
                let Some(ca) = &v.trusted_ca else {
                    return Err(err(
                        "common_tls_context.validation_context.trusted_ca",
                        "a trusted CA is required to verify client certificates",
                    ));
                };
                let verifier = RotatingClientVerifier::new(
                    ca.clone(),
                    t.require_client_certificate,
                    Arc::clone(&provider),
                )?;
                builder.with_client_cert_verifier(Arc::new(verifier))
            }
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = c
            .alpn_protocols
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        // Resumption: stateless tickets and a session cache, as Envoy offers both unless
        // told not to.
        if !t.disable_stateless_session_resumption {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| err("common_tls_context", e.to_string()))?;
        }
        config.session_storage = if t.disable_stateful_session_resumption {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new(4096)
        };
        let sans = SanCheck::new(
            c.validation_context
                .as_ref()
                .map_or(&[][..], |v| &v.match_typed_subject_alt_names),
            "common_tls_context.validation_context.match_typed_subject_alt_names",
        )?;
        Ok(Self {
            config: Arc::new(config),
            sans: sans.map(Arc::new),
        })
    }
}

/// A listener's TLS stats (`listener.<address>.ssl.*`).
#[derive(Debug, Clone)]
pub(crate) struct TlsStats {
    pub(crate) handshake: Arc<Counter>,
    pub(crate) connection_error: Arc<Counter>,
    pub(crate) fail_verify_no_cert: Arc<Counter>,
    pub(crate) fail_verify_error: Arc<Counter>,
    pub(crate) fail_verify_san: Arc<Counter>,
}

impl TlsStats {
    pub(crate) fn new(r: &Registry, address: &str) -> Self {
        let c = |s: &str| r.counter(StatName::listener(address, s));
        Self {
            handshake: c("ssl.handshake"),
            connection_error: c("ssl.connection_error"),
            fail_verify_no_cert: c("ssl.fail_verify_no_cert"),
            fail_verify_error: c("ssl.fail_verify_error"),
            fail_verify_san: c("ssl.fail_verify_san"),
        }
    }

    /// Counts a failed handshake by its cause.
    pub(crate) fn failed(&self, e: &std::io::Error) {
        self.connection_error.inc();
        let cause = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match cause {
            Some(rustls::Error::NoCertificatesPresented) => self.fail_verify_no_cert.inc(),
            Some(rustls::Error::InvalidCertificate(_)) => self.fail_verify_error.inc(),
            _ => {}
        }
    }
}

/// A compiled SAN condition (Envoy's `match_typed_subject_alt_names`): a certificate passes
/// when one of its names of a listed type matches that entry's matcher.
#[derive(Debug)]
pub(crate) struct SanCheck(Vec<(SanType, SanPattern)>);

#[derive(Debug)]
enum SanPattern {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    Regex(regex::Regex),
}

impl SanPattern {
    fn matches(&self, name: &str) -> bool {
        let fold = |s: &str, ignore: bool| {
            if ignore {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        match self {
            Self::Exact(p, i) => fold(name, *i) == *p,
            Self::Prefix(p, i) => fold(name, *i).starts_with(p.as_str()),
            Self::Suffix(p, i) => fold(name, *i).ends_with(p.as_str()),
            Self::Contains(p, i) => fold(name, *i).contains(p.as_str()),
            Self::Regex(r) => r.is_match(name),
        }
    }
}

impl SanCheck {
    /// `None` when there are no matchers (any name passes).
    pub(crate) fn new(matchers: &[SanMatcher], field: &str) -> Result<Option<Self>, TlsError> {
        if matchers.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for (i, m) in matchers.iter().enumerate() {
            let i_case = m.matcher.ignore_case;
            let p = |s: &String| {
                if i_case {
                    s.to_ascii_lowercase()
                } else {
                    s.clone()
                }
            };
            let pattern = match &m.matcher.pattern {
                StringPattern::Exact(s) => SanPattern::Exact(p(s), i_case),
                StringPattern::Prefix(s) => SanPattern::Prefix(p(s), i_case),
                StringPattern::Suffix(s) => SanPattern::Suffix(p(s), i_case),
                StringPattern::Contains(s) => SanPattern::Contains(p(s), i_case),
                StringPattern::SafeRegex(r) => SanPattern::Regex(
                    regex::Regex::new(&format!("^(?:{r})$"))
                        .map_err(|e| err(format!("{field}[{i}].matcher"), e.to_string()))?,
                ),
            };
            out.push((m.san_type, pattern));
        }
        Ok(Some(Self(out)))
    }

    /// Whether the certificate (DER) carries a name the matchers accept.
    pub(crate) fn accepts(&self, der: &[u8]) -> bool {
        let names = subject_alt_names(der);
        self.0
            .iter()
            .any(|(ty, pattern)| names.iter().any(|(t, n)| t == ty && pattern.matches(n)))
    }
}

/// A certificate's subject alternative names (DNS, URI, email, IP), from its DER.
pub(crate) fn subject_alt_names(der: &[u8]) -> Vec<(SanType, String)> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(n) => Some((SanType::Dns, (*n).to_owned())),
            GeneralName::URI(u) => Some((SanType::Uri, (*u).to_owned())),
            GeneralName::RFC822Name(e) => Some((SanType::Email, (*e).to_owned())),
            GeneralName::IPAddress(b) => {
                let ip = match b.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*b).ok()?),
                    16 => std::net::IpAddr::from(<[u8; 16]>::try_from(*b).ok()?),
                    _ => return None,
                };
                Some((SanType::IpAddress, ip.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// The trust anchors of a CA bundle.
fn anchors(
    ca: &DataSource,
    field: &str,
) -> Result<Vec<rustls_pki_types::TrustAnchor<'static>>, TlsError> {
    certificates(ca, field)?
        .iter()
        .map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .map(|a| a.to_owned())
                .map_err(|e| err(field, format!("{}: {e:?}", ca.describe())))
        })
        .collect()
}

/// Checks a server's certificate as Envoy does: the chain against the trusted CAs (the host
/// name is not checked), then the SAN matchers if any.
#[derive(Debug)]
struct PeerVerifier {
    /// `None`: no validation context, nothing is checked (Envoy's behaviour). The CA file is
    /// followed as it changes.
    roots: Option<(
        DataSource,
        Watched<Vec<rustls_pki_types::TrustAnchor<'static>>>,
    )>,
    sans: Option<SanCheck>,
    provider: Arc<CryptoProvider>,
}

fn pki_error(e: webpki::Error) -> rustls::Error {
    use rustls::CertificateError as C;
    rustls::Error::InvalidCertificate(match e {
        webpki::Error::UnknownIssuer => C::UnknownIssuer,
        webpki::Error::CertExpired { .. } => C::Expired,
        webpki::Error::CertNotValidYet { .. } => C::NotValidYet,
        webpki::Error::InvalidSignatureForPublicKey => C::BadSignature,
        _ => C::BadEncoding,
    })
}

impl rustls::client::danger::ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Some((ca, watched)) = &self.roots {
            let roots = watched.get(|| vec![stamp(ca)], || anchors(ca, CA_FIELD), ca.describe());
            let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
            cert.verify_for_usage(
                self.provider.signature_verification_algorithms.all,
                &roots,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(pki_error)?;
        }
        if let Some(sans) = &self.sans
            && !sans.accepts(end_entity)
        {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ));
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A compiled client-side context: what a cluster's connections to its hosts use.
#[derive(Debug)]
pub(crate) struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// The SNI sent; `None` sends none.
    pub(crate) sni: Option<rustls_pki_types::ServerName<'static>>,
    /// The context it was built from (pools are kept across reloads when it is unchanged).
    pub(crate) context: UpstreamTlsContext,
}

impl ClientTls {
    /// Reads and checks the context's files; `http2` offers ALPN `h2` (else `http/1.1`) when
    /// the context lists no protocols.
    pub(crate) fn new(t: &UpstreamTlsContext, http2: bool) -> Result<Self, TlsError> {
        let c = &t.common_tls_context;
        let provider = restricted(&c.tls_params.cipher_suites)?;
        let versions = protocol_versions(&c.tls_params);
        let vc = c.validation_context.as_ref();
        let roots = match vc.and_then(|v| v.trusted_ca.as_ref()) {
            Some(ca) => Some((
                ca.clone(),
                Watched::new(anchors(ca, CA_FIELD)?, vec![stamp(ca)]),
            )),
            None => None,
        };
        let sans = SanCheck::new(
            vc.map_or(&[][..], |v| &v.match_typed_subject_alt_names),
            "common_tls_context.validation_context.match_typed_subject_alt_names",
        )?;
        let provider_for_cert = Arc::clone(&provider);
        let verifier = Arc::new(PeerVerifier {
            roots,
            sans,
            provider: Arc::clone(&provider),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| err("common_tls_context.tls_params", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match c.tls_certificates.as_slice() {
            [] => builder.with_no_client_auth(),
            [cert] => {
                // Followed as its files rotate, as a server's certificate is.
                let resolver = RotatingCert::new(
                    CertSource::Files(cert.clone()),
                    Arc::clone(&provider_for_cert),
                )?;
                builder.with_client_cert_resolver(Arc::new(resolver))
            }
            _ => {
                return Err(err(
                    "common_tls_context.tls_certificates",
                    "one client certificate per cluster is supported",
                ));
            }
        };
        if !c.tls_certificate_sds_secret_configs.is_empty() {
            return Err(err(
                "common_tls_context.tls_certificate_sds_secret_configs",
                "client certificates from SDS files are not supported yet",
            ));
        }
        config.alpn_protocols = if c.alpn_protocols.is_empty() {
            vec![if http2 {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }]
        } else {
            c.alpn_protocols
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect()
        };
        let sni = match &t.sni {
            None => None,
            Some(name) => Some(
                rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| err("sni", format!("{name:?}: {e}")))?,
            ),
        };
        Ok(Self {
            config: Arc::new(config),
            sni,
            context: t.clone(),
        })
    }
}

/// What an access log may say of a downstream TLS session.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub(crate) version: &'static str,
    /// The client certificate's URI SANs, comma-separated.
    pub(crate) peer_uri_san: Option<String>,
}

impl TlsInfo {
    pub(crate) fn of(conn: &rustls::ServerConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let peer_uri_san = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| {
                subject_alt_names(c)
                    .into_iter()
                    .filter(|(t, _)| *t == SanType::Uri)
                    .map(|(_, n)| n)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty());
        Self {
            version,
            peer_uri_san,
        }
    }
}
