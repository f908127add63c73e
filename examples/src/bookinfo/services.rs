//! The six workloads' HTTP handlers and their outbound calls.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Gate, Workload};

/// productpage's timeout per call to details and per try to reviews (the real one's 3 s).
pub(super) const PRODUCTPAGE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times productpage tries reviews (the real one: one retry).
pub(super) const REVIEWS_TRIES: usize = 2;
/// reviews' timeout for its call to ratings.
pub(super) const RATINGS_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
pub(super) const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";
pub(super) const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// The headers Bookinfo's services pass on to the calls they make (the user and tracing).
const PROPAGATE: &[&str] = &[
    "end-user",
    "user-agent",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
];

type Body = Full<Bytes>;

/// What one workload's handler needs.
#[derive(Debug)]
pub(super) struct Ctx {
    pub(super) workload: Workload,
    /// The outbound (sidecar) proxy, once known.
    pub(super) outbound: watch::Receiver<Option<SocketAddr>>,
    pub(super) requests: watch::Sender<usize>,
    /// The headers of the last request counted.
    pub(super) last: Arc<Mutex<Option<HeaderMap>>>,
    pub(super) gate: Gate,
    pub(super) client: Client<HttpConnector, Body>,
}

impl Ctx {
    pub(super) fn new(
        workload: Workload,
        outbound: watch::Receiver<Option<SocketAddr>>,
        requests: watch::Sender<usize>,
        last: Arc<Mutex<Option<HeaderMap>>>,
        gate: Gate,
    ) -> Self {
        Self {
            workload,
            outbound,
            requests,
            last,
            gate,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

/// Serves `listener` until `stop` turns true; then open connections are closed too.
pub(super) async fn serve(listener: TcpListener, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    loop {
        // Stop first: once `stop` is set no new request is handled.
        let stream = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let ctx = Arc::clone(&ctx);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => {}
                _ = conn => {}
            }
        });
    }
}

async fn handle(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let name = ctx.workload.app();
    if path == "/health" {
        return json_response(
            StatusCode::OK,
            &json!({ "status": format!("{} is healthy", capitalized(name)) }),
        );
    }
    *ctx.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(req.headers().clone());
    ctx.requests.send_modify(|n| *n += 1);
    ctx.gate.pass().await;
    if ctx.workload == Workload::Productpage && path == "/login" && req.method() == Method::POST {
        return login(req).await;
    }
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let headers = req.headers();
    match ctx.workload {
        Workload::Productpage if path == "/productpage" => productpage(ctx, headers).await,
        Workload::Productpage if path == "/" => index(),
        Workload::Productpage if path == "/logout" => signed_in_as(None),
        Workload::Details => match id(&path, "/details/") {
            Some(id) => json_response(StatusCode::OK, &details(id)),
            None => not_found(),
        },
        Workload::ReviewsV1 | Workload::ReviewsV2 | Workload::ReviewsV3 => {
            match id(&path, "/reviews/") {
                Some(id) => reviews(ctx, id, headers).await,
                None => not_found(),
            }
        }
        Workload::Ratings => match id(&path, "/ratings/") {
            Some(id) => json_response(
                StatusCode::OK,
                &json!({ "id": id, "ratings": { "Reviewer1": 5, "Reviewer2": 4 } }),
            ),
            None => not_found(),
        },
        Workload::Productpage => not_found(),
    }
}

// === outbound calls ===

/// Why a call through the outbound proxy failed.
#[derive(Debug)]
enum CallError {
    NoOutbound,
    Status(StatusCode),
    Transport(String),
    Timeout,
    BadJson,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NoOutbound => f.write_str("no outbound proxy set"),
            CallError::Status(s) => write!(f, "status {s}"),
            CallError::Transport(e) => write!(f, "transport error: {e}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::BadJson => f.write_str("the answer is not JSON"),
        }
    }
}

/// `GET path` to `authority` (e.g. `details:9080`) through the outbound proxy, within
/// `timeout`, passing on the propagated headers of `incoming`; the body as JSON when 200.
async fn call(
    ctx: &Ctx,
    authority: &str,
    path: &str,
    incoming: &HeaderMap,
    timeout: Duration,
) -> Result<Value, CallError> {
    let outbound = (*ctx.outbound.borrow()).ok_or(CallError::NoOutbound)?;
    let mut req = Request::get(format!("http://{outbound}{path}"))
        .body(Body::default())
        .expect("a GET with an absolute URI built from a socket address is valid");
    let h = req.headers_mut();
    h.insert(
        HOST,
        HeaderValue::from_str(authority).map_err(|e| CallError::Transport(e.to_string()))?,
    );
    for name in PROPAGATE {
        for v in incoming.get_all(*name) {
            h.append(*name, v.clone());
        }
    }
    let attempt = async {
        let resp = ctx
            .client
            .request(req)
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(CallError::Status(status));
        }
        serde_json::from_slice(&body).map_err(|_| CallError::BadJson)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| CallError::Timeout)?
}

// === productpage ===

/// The signed-in user: the `end-user` header, else a `user=NAME` cookie.
fn user(headers: &HeaderMap) -> Option<String> {
    if let Some(u) = headers.get("end-user").and_then(|v| v.to_str().ok()) {
        return Some(u.to_owned());
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("user=").map(str::to_owned))
        .filter(|u| !u.is_empty())
}

async fn productpage(ctx: &Ctx, incoming: &HeaderMap) -> Response<Body> {
    let mut fwd = incoming.clone();
    let user = user(incoming);
    if let Some(u) = &user {
        // A cookie login reaches the other services as `end-user`, as Bookinfo sends it.
        if let Ok(v) = HeaderValue::from_str(u) {
            fwd.insert("end-user", v);
        }
    }
    let details = call(ctx, "details:9080", "/details/0", &fwd, PRODUCTPAGE_TIMEOUT);
    let reviews = async {
        let mut last = Err(CallError::NoOutbound);
        for _ in 0..REVIEWS_TRIES {
            last = call(ctx, "reviews:9080", "/reviews/0", &fwd, PRODUCTPAGE_TIMEOUT).await;
            if last.is_ok() {
                break;
            }
        }
        last
    };
    let (details, reviews) = tokio::join!(details, reviews);
    if let Err(error) = &details {
        tracing::debug!(%error, "productpage: details failed");
    }
    if let Err(error) = &reviews {
        tracing::debug!(%error, "productpage: reviews failed");
    }
    page(user.as_deref(), details.ok(), reviews.ok())
}

/// What the page shows of a reviews answer.
struct ReviewsView {
    podname: String,
    version: String,
    /// `black`, `red`, or `none` (v1, or ratings unavailable).
    color: String,
    ratings_error: bool,
    items: Vec<(String, String, Option<u64>)>,
}

fn view(reviews: &Value) -> ReviewsView {
    let podname = reviews["podname"].as_str().unwrap_or("unknown").to_owned();
    let version = podname
        .strip_prefix("reviews-")
        .and_then(|r| r.split('-').next())
        .unwrap_or("unknown")
        .to_owned();
    let mut color = "none".to_owned();
    let mut ratings_error = false;
    let mut items = Vec::new();
    for r in reviews["reviews"].as_array().into_iter().flatten() {
        let rating = &r["rating"];
        if rating["error"].is_string() {
            ratings_error = true;
        }
        if let Some(c) = rating["color"].as_str() {
            c.clone_into(&mut color);
        }
        items.push((
            r["reviewer"].as_str().unwrap_or_default().to_owned(),
            r["text"].as_str().unwrap_or_default().to_owned(),
            rating["stars"].as_u64(),
        ));
    }
    ReviewsView {
        podname,
        version,
        color,
        ratings_error,
        items,
    }
}

fn page(user: Option<&str>, details: Option<Value>, reviews: Option<Value>) -> Response<Body> {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n\
         <h1>The Comedy of Errors</h1>\n",
    );
    match user {
        Some(u) => html.push_str(&format!(
            "<p class=\"user\">signed in as {} (<a href=\"/logout\">sign out</a>)</p>\n",
            escape(u)
        )),
        None => html.push_str(
            "<form class=\"user\" method=\"post\" action=\"/login\">not signed in: \
             <input name=\"username\" placeholder=\"jason\"> <button>sign in</button></form>\n",
        ),
    }
    html.push_str("<h2>Book Details</h2>\n");
    let details_state = match &details {
        Some(d) => {
            html.push_str("<dl class=\"details\">\n");
            for key in [
                "type",
                "pages",
                "publisher",
                "language",
                "ISBN-10",
                "ISBN-13",
            ] {
                let v = match &d[key] {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                html.push_str(&format!("<dt>{key}</dt><dd>{}</dd>\n", escape(&v)));
            }
            html.push_str("</dl>\n");
            "available"
        }
        None => {
            html.push_str(&format!("<p class=\"error\">{DETAILS_UNAVAILABLE}</p>\n"));
            "unavailable"
        }
    };
    html.push_str("<h2>Book Reviews</h2>\n");
    let (version, color) = match reviews.as_ref().map(view) {
        Some(v) => {
            html.push_str(&format!(
                "<p class=\"reviews-source\">Reviews served by: {}</p>\n",
                escape(&v.podname)
            ));
            for (reviewer, text, stars) in &v.items {
                html.push_str(&format!(
                    "<blockquote><p>{}</p><small>{}</small>",
                    escape(text),
                    escape(reviewer)
                ));
                if let Some(n) = stars {
                    let n = usize::try_from(*n).unwrap_or(0).min(5);
                    html.push_str(&format!(
                        " <span class=\"stars stars-{}\">{}{}</span>",
                        escape(&v.color),
                        "\u{2605}".repeat(n),
                        "\u{2606}".repeat(5 - n)
                    ));
                }
                html.push_str("</blockquote>\n");
            }
            if v.ratings_error {
                html.push_str(&format!("<p class=\"error\">{RATINGS_UNAVAILABLE}</p>\n"));
            }
            (v.version, v.color)
        }
        None => {
            html.push_str(&format!("<p class=\"error\">{REVIEWS_UNAVAILABLE}</p>\n"));
            ("unavailable".to_owned(), "none".to_owned())
        }
    };
    html.push_str("</body></html>\n");
    let mut resp = Response::new(Body::new(Bytes::from(html)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert("x-details", HeaderValue::from_static(details_state));
    for (name, value) in [("x-reviews-version", version), ("x-star-color", color)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// `POST /login` with the form field `username`: signs in by setting the `user` cookie and
/// goes back to the page. (The real productpage keeps a session; it accepts any password
/// too.)
async fn login(req: Request<Incoming>) -> Response<Body> {
    let Ok(body) = req.into_body().collect().await else {
        return text(StatusCode::BAD_REQUEST, "unreadable form\n");
    };
    let form = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let name = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("username="))
        .unwrap_or_default();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return text(
            StatusCode::BAD_REQUEST,
            "username must be letters, digits, '-', '_' or '.'\n",
        );
    }
    signed_in_as(Some(name))
}

/// A redirect to the page that sets (or, for `None`, clears) the `user` cookie.
fn signed_in_as(user: Option<&str>) -> Response<Body> {
    let cookie = match user {
        Some(u) => format!("user={u}; Path=/"),
        None => "user=; Path=/; Max-Age=0".to_owned(),
    };
    let mut resp = text(StatusCode::FOUND, "");
    let h = resp.headers_mut();
    h.insert(
        http::header::LOCATION,
        HeaderValue::from_static("/productpage"),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(http::header::SET_COOKIE, v);
    }
    resp
}

fn index() -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from_static(
        b"<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n\
          <p>Bookinfo: <a href=\"/productpage\">the product page</a> \
          (sign in with an <code>end-user</code> header or a <code>user=NAME</code> cookie)</p>\n\
          </body></html>\n",
    )));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

// === details, reviews ===

fn details(id: u64) -> Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}

async fn reviews(ctx: &Ctx, id: u64, incoming: &HeaderMap) -> Response<Body> {
    let color = match ctx.workload {
        Workload::ReviewsV2 => Some("black"),
        Workload::ReviewsV3 => Some("red"),
        _ => None,
    };
    let texts = [
        (
            "Reviewer1",
            "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
        ),
        (
            "Reviewer2",
            "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
        ),
    ];
    let ratings = match color {
        Some(_) => Some(
            call(
                ctx,
                "ratings:9080",
                &format!("/ratings/{id}"),
                incoming,
                RATINGS_TIMEOUT,
            )
            .await,
        ),
        None => None,
    };
    let items: Vec<Value> = texts
        .iter()
        .map(|(reviewer, text)| {
            let mut r = json!({ "reviewer": reviewer, "text": text });
            match (&ratings, color) {
                (Some(Ok(v)), Some(c)) => match v["ratings"][reviewer].as_u64() {
                    Some(stars) => r["rating"] = json!({ "stars": stars, "color": c }),
                    None => r["rating"] = json!({ "error": RATINGS_UNAVAILABLE }),
                },
                (Some(Err(_)), _) => r["rating"] = json!({ "error": RATINGS_UNAVAILABLE }),
                _ => {}
            }
            r
        })
        .collect();
    if let Some(Err(e)) = &ratings {
        tracing::debug!(error = %e, "reviews: ratings failed");
    }
    json_response(
        StatusCode::OK,
        &json!({
            "id": id.to_string(),
            "podname": ctx.workload.podname(),
            "clustername": "null",
            "reviews": items,
        }),
    )
}

// === helpers ===

fn id(path: &str, prefix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?.parse().ok()
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_header_then_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(user(&h), None);
        h.insert(COOKIE, HeaderValue::from_static("a=b; user=jason"));
        assert_eq!(user(&h).as_deref(), Some("jason"));
        h.insert("end-user", HeaderValue::from_static("alice"));
        assert_eq!(user(&h).as_deref(), Some("alice"));
    }

    #[test]
    fn the_page_names_the_reviews_version_and_star_colour() {
        let reviews = json!({
            "podname": "reviews-v3-0",
            "reviews": [{ "reviewer": "R", "text": "t", "rating": { "stars": 4, "color": "red" } }]
        });
        let resp = page(Some("jason"), None, Some(reviews));
        assert_eq!(resp.headers()["x-reviews-version"], "v3");
        assert_eq!(resp.headers()["x-star-color"], "red");
        assert_eq!(resp.headers()["x-details"], "unavailable");
    }
}
