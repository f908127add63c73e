//! Access logs in Envoy's format.
//!
//! Envoy's default format is
//! `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//! %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
//! "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%"
//! "%UPSTREAM_HOST%"`. The same operators work in a custom `format`; an unknown operator is a
//! config error, a missing value prints `-`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};
use mesh_core::config::{AccessLog, AccessLogSink};
use mesh_core::flags::ResponseFlags;

/// Envoy's default access log format.
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(String),
    StartTime,
    Req(Field, Option<Field>),
    /// `None`: a name no header can have (it prints `-`).
    Resp(Option<HeaderName>),
    Protocol,
    ResponseCode,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    DownstreamRemoteAddress,
    DownstreamLocalAddress,
    DownstreamTlsVersion,
    DownstreamPeerUriSan,
    RouteName,
}

/// What `%REQ(…)%` prints: a pseudo-header, or a header looked up by its parsed name (a name
/// given as text would be parsed again at every line).
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Method,
    Path,
    Authority,
    Header(HeaderName),
    /// A name no header can have: prints `-`.
    Never,
}

impl Field {
    fn of(name: &str) -> Self {
        match name {
            ":method" => Self::Method,
            ":path" => Self::Path,
            ":authority" | "host" => Self::Authority,
            n => HeaderName::from_bytes(n.as_bytes()).map_or(Self::Never, Self::Header),
        }
    }
}

/// Appends `v`, or `-` when there is none (or it is empty), as Envoy prints a missing value.
fn put(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) if !v.is_empty() => out.push_str(v),
        _ => out.push('-'),
    }
}

/// Appends `v` as [`put`] does, written in place.
fn put_display(out: &mut String, v: Option<impl std::fmt::Display>) {
    let at = out.len();
    if let Some(v) = v {
        let _ = write!(out, "{v}");
    }
    if out.len() == at {
        out.push('-');
    }
}

/// A header's value as text, if it has one.
fn header<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Everything one access-log line may print.
#[derive(Debug, Default)]
pub(crate) struct LogRecord {
    pub(crate) start: Option<SystemTime>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) authority: String,
    pub(crate) protocol: &'static str,
    pub(crate) request_headers: HeaderMap,
    pub(crate) response_headers: HeaderMap,
    pub(crate) status: u16,
    pub(crate) flags: ResponseFlags,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) duration: Duration,
    pub(crate) upstream_host: Option<String>,
    pub(crate) upstream_cluster: Option<String>,
    pub(crate) downstream_remote: Option<std::net::SocketAddr>,
    /// Where the connection was going: the listener's address, or the original destination
    /// the `original_dst` listener filter restored.
    pub(crate) downstream_local: Option<std::net::SocketAddr>,
    /// The downstream TLS session, if any.
    pub(crate) tls: Option<crate::tls::TlsInfo>,
    pub(crate) route_name: Option<String>,
}

/// A compiled access log.
#[derive(Debug)]
pub(crate) struct AccessLogger {
    tokens: Vec<Token>,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    Stdout,
    Stderr,
    File(Arc<FileLog>),
}

/// Envoy's default for `--file-flush-interval-msec`: how long a line may wait in an access
/// log's buffer.
pub const DEFAULT_FILE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Envoy's default for `--file-flush-min-size-kb`: a buffer this full is written at once.
const FLUSH_SIZE: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The access-log files of a proxy (Envoy's access log manager): each path is opened once and
/// shared by every config that names it, so a reload neither reopens it nor splits its
/// buffer. Lines are buffered and written by a flush thread per file, every `interval` or
/// when 64 KiB are waiting, as Envoy does; a zero interval writes each line as it comes.
#[derive(Debug)]
pub(crate) struct LogFiles {
    interval: Duration,
    open: Mutex<HashMap<PathBuf, Weak<FileLog>>>,
}

impl LogFiles {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            open: Mutex::default(),
        }
    }

    /// The log for `path`, opened (for appending) if no config holds it yet.
    fn get(&self, path: &Path) -> std::io::Result<Arc<FileLog>> {
        let mut open = lock(&self.open);
        if let Some(log) = open.get(path).and_then(Weak::upgrade) {
            return Ok(log);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let log = FileLog::start(path, file, self.interval)?;
        open.retain(|_, l| l.strong_count() > 0);
        open.insert(path.to_owned(), Arc::downgrade(&log));
        Ok(log)
    }

    /// Writes every buffered line now (at shutdown).
    pub(crate) fn flush(&self) {
        let logs: Vec<_> = lock(&self.open)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for log in logs {
            log.file.flush();
        }
    }
}

/// One access-log file while a config holds it; dropped, it writes what is left and its
/// flush thread ends.
#[derive(Debug)]
struct FileLog {
    file: Arc<Buffered>,
}

/// A file and the lines waiting for it.
#[derive(Debug)]
struct Buffered {
    path: PathBuf,
    /// Held while writing, so that buffers reach the file in the order they were filled.
    file: Mutex<std::fs::File>,
    pending: Mutex<Pending>,
    /// Wakes the flush thread: a full buffer, or the end.
    wake: Condvar,
    /// Zero: no buffer, each line is written as it comes.
    interval: Duration,
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

impl FileLog {
    fn start(path: &Path, file: std::fs::File, interval: Duration) -> std::io::Result<Arc<Self>> {
        let file = Arc::new(Buffered {
            path: path.to_owned(),
            file: Mutex::new(file),
            pending: Mutex::default(),
            wake: Condvar::new(),
            interval,
        });
        if !interval.is_zero() {
            let f = Arc::clone(&file);
            std::thread::Builder::new()
                .name("mesh-access-log".into())
                .spawn(move || f.run())?;
        }
        Ok(Arc::new(Self { file }))
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        lock(&self.file.pending).closed = true;
        self.file.wake.notify_one();
        self.file.flush();
    }
}

impl Buffered {
    fn write_line(&self, line: &[u8]) {
        if self.interval.is_zero() {
            let r = lock(&self.file).write_all(line);
            self.failed(r);
            return;
        }
        let mut pending = lock(&self.pending);
        pending.lines.extend_from_slice(line);
        if pending.lines.len() >= FLUSH_SIZE {
            self.wake.notify_one();
        }
    }

    /// Writes what is buffered.
    fn flush(&self) {
        let mut file = lock(&self.file);
        let lines = std::mem::take(&mut lock(&self.pending).lines);
        if !lines.is_empty() {
            let r = file.write_all(&lines);
            self.failed(r);
        }
    }

    fn failed(&self, r: std::io::Result<()>) {
        if let Err(error) = r {
            tracing::warn!(path = %self.path.display(), %error, "access log write failed");
        }
    }

    /// The flush thread: writes the buffer every interval, or as soon as it is full, until
    /// the log is dropped.
    fn run(&self) {
        let mut pending = lock(&self.pending);
        while !pending.closed {
            if pending.lines.len() < FLUSH_SIZE {
                pending = self
                    .wake
                    .wait_timeout(pending, self.interval)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(pending);
            self.flush();
            pending = lock(&self.pending);
        }
    }
}

/// A bad access-log format.
#[derive(Debug, thiserror::Error)]
#[error("invalid access log format: {0}")]
pub(crate) struct FormatError(String);

impl AccessLogger {
    /// The log `cfg` describes; a file comes from `files`.
    pub(crate) fn new(cfg: &AccessLog, files: &LogFiles) -> Result<Self, FormatError> {
        let tokens = parse(cfg.format.as_deref().unwrap_or(DEFAULT_FORMAT))?;
        let sink = match &cfg.sink {
            AccessLogSink::Stdout => Sink::Stdout,
            AccessLogSink::Stderr => Sink::Stderr,
            AccessLogSink::File(p) => Sink::File(
                files
                    .get(Path::new(p))
                    .map_err(|e| FormatError(format!("cannot open access log {p:?}: {e}")))?,
            ),
        };
        Ok(Self { tokens, sink })
    }

    pub(crate) fn log(&self, r: &LogRecord) {
        let line = self.format(r);
        // A line standard output or error cannot take is lost, as Envoy loses it.
        match &self.sink {
            Sink::Stdout => drop(std::io::stdout().lock().write_all(line.as_bytes())),
            Sink::Stderr => drop(std::io::stderr().lock().write_all(line.as_bytes())),
            Sink::File(f) => f.file.write_line(line.as_bytes()),
        }
    }

    fn format(&self, r: &LogRecord) -> String {
        // Written in place: no value is copied into a string of its own first.
        let mut out = String::with_capacity(256);
        let mut num = itoa::Buffer::new();
        for t in &self.tokens {
            match t {
                Token::Lit(s) => out.push_str(s),
                Token::StartTime => match r.start {
                    Some(t) => iso8601_into(&mut out, t),
                    None => out.push('-'),
                },
                Token::Req(name, alt) => {
                    let get = |f: &Field| match f {
                        Field::Method => Some(r.method.as_str()),
                        Field::Path => Some(r.path.as_str()),
                        Field::Authority => Some(r.authority.as_str()),
                        Field::Header(n) => header(&r.request_headers, n),
                        Field::Never => None,
                    };
                    put(&mut out, get(name).or_else(|| alt.as_ref().and_then(get)));
                }
                Token::Resp(name) => put(
                    &mut out,
                    name.as_ref().and_then(|n| header(&r.response_headers, n)),
                ),
                Token::Protocol => put(&mut out, Some(r.protocol)),
                Token::ResponseCode => out.push_str(num.format(r.status)),
                Token::ResponseFlags => put_display(&mut out, Some(r.flags)),
                Token::BytesReceived => out.push_str(num.format(r.bytes_received)),
                Token::BytesSent => out.push_str(num.format(r.bytes_sent)),
                Token::Duration => out.push_str(num.format(r.duration.as_millis())),
                Token::UpstreamHost => put(&mut out, r.upstream_host.as_deref()),
                Token::UpstreamCluster => put(&mut out, r.upstream_cluster.as_deref()),
                Token::DownstreamRemoteAddress => put_display(&mut out, r.downstream_remote),
                Token::DownstreamLocalAddress => put_display(&mut out, r.downstream_local),
                Token::DownstreamTlsVersion => put(&mut out, r.tls.as_ref().map(|t| t.version)),
                Token::DownstreamPeerUriSan => put(
                    &mut out,
                    r.tls.as_ref().and_then(|t| t.peer_uri_san.as_deref()),
                ),
                Token::RouteName => put(&mut out, r.route_name.as_deref()),
            }
        }
        out
    }
}

fn parse(fmt: &str) -> Result<Vec<Token>, FormatError> {
    let mut tokens = Vec::new();
    let mut rest = fmt;
    while let Some(i) = rest.find('%') {
        if i > 0 {
            tokens.push(Token::Lit(rest[..i].to_owned()));
        }
        let after = &rest[i + 1..];
        let Some(j) = after.find('%') else {
            return Err(FormatError(format!("unterminated operator in {fmt:?}")));
        };
        let op = &after[..j];
        rest = &after[j + 1..];
        if op.is_empty() {
            tokens.push(Token::Lit("%".into()));
            continue;
        }
        let arg = |prefix: &str| -> Option<String> {
            op.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.split(')').next())
                .map(str::to_owned)
        };
        let t = if let Some(a) = arg("REQ") {
            let (main, alt) = match a.split_once('?') {
                Some((m, alt)) => (m, Some(alt)),
                None => (a.as_str(), None),
            };
            let field = |n: &str| Field::of(&n.to_ascii_lowercase());
            Token::Req(field(main), alt.map(field))
        } else if let Some(a) = arg("RESP") {
            Token::Resp(HeaderName::from_bytes(a.to_ascii_lowercase().as_bytes()).ok())
        } else {
            match op.split('(').next().unwrap_or(op) {
                "START_TIME" => Token::StartTime,
                "PROTOCOL" => Token::Protocol,
                "RESPONSE_CODE" => Token::ResponseCode,
                "RESPONSE_FLAGS" => Token::ResponseFlags,
                "BYTES_RECEIVED" => Token::BytesReceived,
                "BYTES_SENT" => Token::BytesSent,
                "DURATION" => Token::Duration,
                "UPSTREAM_HOST" => Token::UpstreamHost,
                "UPSTREAM_CLUSTER" => Token::UpstreamCluster,
                "DOWNSTREAM_REMOTE_ADDRESS" => Token::DownstreamRemoteAddress,
                "DOWNSTREAM_LOCAL_ADDRESS" => Token::DownstreamLocalAddress,
                "DOWNSTREAM_TLS_VERSION" => Token::DownstreamTlsVersion,
                "DOWNSTREAM_PEER_URI_SAN" => Token::DownstreamPeerUriSan,
                "ROUTE_NAME" => Token::RouteName,
                other => return Err(FormatError(format!("unsupported operator %{other}%"))),
            }
        };
        tokens.push(t);
    }
    if !rest.is_empty() {
        tokens.push(Token::Lit(rest.to_owned()));
    }
    if !matches!(tokens.last(), Some(Token::Lit(s)) if s.ends_with('\n')) {
        tokens.push(Token::Lit("\n".into()));
    }
    Ok(tokens)
}

/// `2016-04-15T20:17:00.310Z`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let mut s = String::with_capacity(24);
    iso8601_into(&mut s, t);
    s
}

/// Appends `t` as [`iso8601`] writes it. The date and time to the second are formatted once
/// per second per thread, as the server's `Date` header is.
fn iso8601_into(out: &mut String, t: SystemTime) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.1.clear();
            to_the_second(&mut c.1, secs);
            c.0 = secs;
        }
        out.push_str(&c.1);
    });
    let ms = d.subsec_millis();
    for digit in [ms / 100, ms / 10 % 10, ms % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
    out.push('Z');
}

/// `2016-04-15T20:17:00.` for `secs` after the epoch.
fn to_the_second(out: &mut String, secs: u64) {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_prints_like_envoy() {
        let log = AccessLogger {
            tokens: parse(DEFAULT_FORMAT).unwrap(),
            sink: Sink::Stdout,
        };
        let mut r = LogRecord {
            start: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_460_751_420_310)),
            method: "GET".into(),
            path: "/a".into(),
            authority: "example.com".into(),
            protocol: "HTTP/1.1",
            status: 404,
            flags: ResponseFlags::NO_ROUTE_FOUND,
            duration: Duration::from_millis(3),
            ..LogRecord::default()
        };
        r.request_headers
            .insert("user-agent", http::HeaderValue::from_static("curl/8"));
        assert_eq!(
            log.format(&r),
            "[2016-04-15T20:17:00.310Z] \"GET /a HTTP/1.1\" 404 NR 0 0 3 - \"-\" \"curl/8\" \"-\" \"example.com\" \"-\"\n"
        );
    }

    #[test]
    fn times_print_to_the_millisecond_across_seconds() {
        let at = |ms: u64| iso8601(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(1_460_751_420_310), "2016-04-15T20:17:00.310Z");
        assert_eq!(
            at(1_460_751_420_007),
            "2016-04-15T20:17:00.007Z",
            "same second"
        );
        assert_eq!(
            at(1_460_751_421_999),
            "2016-04-15T20:17:01.999Z",
            "the next"
        );
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            at(1_460_751_420_310),
            "2016-04-15T20:17:00.310Z",
            "back again"
        );
    }

    #[test]
    fn headers_are_printed_by_name_and_pseudo_headers_from_the_request() {
        let log = AccessLogger {
            tokens: parse(
                "%REQ(X-A)% %REQ(X-MISSING?:PATH)% %REQ(:AUTHORITY)% %RESP(SERVER)% %REQ(BAD NAME)% %RESPONSE_FLAGS%",
            )
            .unwrap(),
            sink: Sink::Stdout,
        };
        let mut r = LogRecord {
            path: "/p".into(),
            authority: "host.test".into(),
            ..LogRecord::default()
        };
        r.request_headers
            .insert("x-a", http::HeaderValue::from_static("1"));
        r.response_headers
            .insert("server", http::HeaderValue::from_static("envoy"));
        assert_eq!(log.format(&r), "1 /p host.test envoy - -\n");
    }

    #[test]
    fn unknown_operators_are_rejected() {
        assert!(parse("%NOPE%").is_err());
        assert!(parse("%REQ(:PATH)").is_err());
        assert_eq!(
            parse("%%").unwrap(),
            vec![Token::Lit("%".into()), Token::Lit("\n".into())]
        );
    }

    /// A file logger of `files` at `path` whose lines are the request's method.
    fn method_log(path: &Path, files: &LogFiles) -> AccessLogger {
        let cfg = AccessLog {
            sink: AccessLogSink::File(path.to_str().unwrap().to_owned()),
            format: Some("%REQ(:METHOD)%\n".into()),
        };
        AccessLogger::new(&cfg, files).unwrap()
    }

    fn record(method: &str) -> LogRecord {
        LogRecord {
            method: method.into(),
            ..LogRecord::default()
        }
    }

    fn temp_log(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("mesh-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn file_lines_wait_for_a_flush_and_configs_share_the_file() {
        let path = temp_log("buffered");
        let files = LogFiles::new(Duration::from_secs(3600));
        let first = method_log(&path, &files);
        first.log(&record("GET"));
        assert_eq!(read(&path), "", "buffered, not written per line");
        // A reloaded config naming the same path writes to the same buffer, in order.
        let second = method_log(&path, &files);
        second.log(&record("PUT"));
        files.flush();
        assert_eq!(read(&path), "GET\nPUT\n");
        // The last config to let go of the file writes what is left.
        second.log(&record("POST"));
        drop(first);
        assert_eq!(read(&path), "GET\nPUT\n", "still held by the second config");
        drop(second);
        assert_eq!(read(&path), "GET\nPUT\nPOST\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting_for_the_interval() {
        let path = temp_log("full");
        let files = LogFiles::new(Duration::from_secs(3600));
        let log = method_log(&path, &files);
        let line = "X".repeat(1023);
        for _ in 0..64 {
            log.log(&record(&line));
        }
        // The flush thread writes it: wait for that thread, bounded (no timer is involved).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while read(&path).len() < FLUSH_SIZE && tokio::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(read(&path).len(), FLUSH_SIZE, "64 lines of 1 KiB");
        drop(log);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_zero_interval_writes_each_line_as_it_comes() {
        let path = temp_log("direct");
        let files = LogFiles::new(Duration::ZERO);
        let log = method_log(&path, &files);
        log.log(&record("GET"));
        assert_eq!(read(&path), "GET\n");
        drop(log);
        let _ = std::fs::remove_file(&path);
    }
}
