//! A Stripe API stand-in on 127.0.0.1 for tests and benchmarks. It answers the way Stripe's API does where
//! Sluice depends on it: the `Authorization: Bearer` secret key, form-encoded bodies with nested
//! parameters (`metadata[sku]=…`, `items[0][price]=…`) parsed into objects and checked per endpoint,
//! unknown parameters refused, `Idempotency-Key` replays and mismatches, custom product ids, lists
//! newest-first with `limit`, `starting_after` and `created[gt]`, events for every create and update, a
//! `Request-Id` on every answer, and a token-bucket rate limit. A test can make the next requests answer
//! 429 (with or without `Stripe-Should-Retry`), 500, or slowly, and read back every request it received.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The secret key the stand-in accepts unless started with another.
pub const TEST_KEY: &str = "sk_test_sluice_standin_4242";
/// The API version the stand-in speaks; a request pinning another is refused.
pub const API_VERSION: &str = "2025-09-30.clover";

/// How the stand-in is started.
#[derive(Clone, Debug)]
pub struct Settings {
    pub secret_key: String,
    /// Whether a 401 quotes the key it was given, unmasked, as a careless server might ("Authorization was
    /// 'Bearer …'"): Stripe masks it, and Sluice must not depend on that.
    pub echo_key: bool,
    /// Requests per second the token bucket refills; `None` for no limit.
    pub rate_limit: Option<u32>,
    /// Requests the bucket holds: how large a burst it lets through at once.
    pub burst: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { secret_key: TEST_KEY.to_string(), echo_key: false, rate_limit: None, burst: 10 }
    }
}

/// A fault the next requests meet, whatever they ask.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 `rate_limit`, with `Stripe-Should-Retry` set to this where `Some`.
    RateLimited { should_retry: Option<bool> },
    /// 500 `api_error`.
    ServerError,
    /// The request is carried out, and its answer comes this late.
    Slow(Duration),
}

/// One request as the stand-in received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The raw query string (`limit=100&created%5Bgte%5D=…`).
    pub query: String,
    pub status: u16,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    pub stripe_account: Option<String>,
    /// The raw form body (`metadata%5Bsku%5D=…`), for checking the encoding.
    pub body: String,
    /// When it arrived, from the server's start.
    pub at: Duration,
}

/// A running stand-in; it stops when dropped.
pub struct StripeServer {
    url: String,
    state: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Shared {
    settings: Settings,
    started: Instant,
    store: Mutex<Store>,
    faults: Mutex<VecDeque<Fault>>,
    bucket: Mutex<Bucket>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Store {
    /// Objects by API path (`products`), by id; `seq` orders those created in the same second.
    objects: BTreeMap<String, BTreeMap<String, Stored>>,
    idempotent: HashMap<String, Saved>,
    received: Vec<Received>,
    seq: u64,
}

#[derive(Clone)]
struct Stored {
    seq: u64,
    object: Json,
}

/// An answer kept under its idempotency key, with what it was an answer to.
struct Saved {
    request: String,
    status: StatusCode,
    body: Json,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl StripeServer {
    /// Starts a stand-in taking [`TEST_KEY`] with no rate limit.
    pub fn start() -> StripeServer {
        Self::start_with(Settings::default())
    }

    pub fn start_with(settings: Settings) -> StripeServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stripe-stand-in")
            .enable_all()
            .build()
            .expect("a runtime for the Stripe stand-in");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a port on 127.0.0.1 for the Stripe stand-in");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Shared {
            bucket: Mutex::new(Bucket { tokens: f64::from(settings.burst), refilled: Instant::now() }),
            settings,
            started: Instant::now(),
            store: Mutex::default(),
            faults: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        StripeServer { url, state, runtime: Some(runtime) }
    }

    /// The base URL (`http://127.0.0.1:PORT`), in place of `https://api.stripe.com`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes the next `count` requests meet `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.state.faults.lock().unwrap().extend(std::iter::repeat_n(fault, count));
    }

    /// The objects at an API path (`products`), oldest first.
    pub fn objects(&self, path: &str) -> Vec<Json> {
        let store = self.state.store.lock().unwrap();
        let mut stored: Vec<Stored> =
            store.objects.get(path).map(|m| m.values().cloned().collect()).unwrap_or_default();
        stored.sort_by_key(|s| s.seq);
        stored.into_iter().map(|s| s.object).collect()
    }

    /// Puts an object in place as if created through the API at `created` (Unix seconds), with an event.
    pub fn insert(&self, path: &str, object: Json, created: i64) -> String {
        let id = match object.get("id").and_then(Json::as_str) {
            Some(id) => id.to_string(),
            None => self.state.new_id(prefix(path)),
        };
        let mut object = identified(&id, path, object.as_object().cloned().unwrap_or_default());
        // As Stripe holds every object that has metadata: an empty map where none was given.
        if object.get("metadata").is_none() && path != "events" {
            object["metadata"] = json!({});
        }
        object["created"] = json!(created);
        object["livemode"] = json!(false);
        let mut store = self.state.store.lock().unwrap();
        store.put(path, object.clone());
        let event = json!({ "type": format!("{}.created", singular(path)), "data": { "object": object } });
        store.event(&self.state, event, created);
        id
    }

    /// Changes an object as an update through the API at `at` would, with an event.
    pub fn update(&self, path: &str, id: &str, changes: Json, at: i64) {
        let mut store = self.state.store.lock().unwrap();
        let object =
            &mut store.objects.get_mut(path).and_then(|m| m.get_mut(id)).expect("a stored object").object;
        let previous = merge(object, &changes);
        let snapshot = object.clone();
        let event = json!({ "type": format!("{}.updated", singular(path)), "data": { "object": snapshot, "previous_attributes": previous } });
        store.event(&self.state, event, at);
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.store.lock().unwrap().received.clone()
    }

    /// Requests answered with `status`.
    pub fn count(&self, status: u16) -> usize {
        self.state.store.lock().unwrap().received.iter().filter(|r| r.status == status).count()
    }

    /// The most requests the stand-in was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::Relaxed)
    }
}

impl Drop for StripeServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Shared {
    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}_{:014}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Takes a token from the bucket; `false` when the request is over the rate.
    fn admit(&self) -> bool {
        let Some(rate) = self.settings.rate_limit else { return true };
        let mut bucket = self.bucket.lock().unwrap();
        let now = Instant::now();
        let refill = now.duration_since(bucket.refilled).as_secs_f64() * f64::from(rate);
        bucket.tokens = (bucket.tokens + refill).min(f64::from(self.settings.burst));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Store {
    fn put(&mut self, path: &str, object: Json) {
        self.seq += 1;
        let id = object["id"].as_str().unwrap().to_string();
        let seq = self.objects.get(path).and_then(|m| m.get(&id)).map_or(self.seq, |s| s.seq);
        self.objects.entry(path.to_string()).or_default().insert(id, Stored { seq, object });
    }

    fn event(&mut self, shared: &Shared, mut event: Json, created: i64) {
        event["id"] = json!(shared.new_id("evt"));
        event["object"] = json!("event");
        event["created"] = json!(created);
        self.put("events", event);
    }
}

/// A Stripe error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
    message: String,
    /// Whether an idempotent answer is kept: only once the endpoint ran, as on Stripe.
    endpoint_ran: bool,
}

impl ApiError {
    fn invalid(param: impl Into<String>, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: Some(code),
            param: Some(param.into()),
            message: message.into(),
            endpoint_ran: false,
        }
    }

    fn body(&self) -> Json {
        let mut error = json!({ "type": self.kind, "message": self.message });
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut received = Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        status: 0,
        idempotency_key: header("idempotency-key"),
        stripe_version: header("stripe-version"),
        stripe_account: header("stripe-account"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: shared.started.elapsed(),
    };
    let fault = shared.faults.lock().unwrap().pop_front();
    let mut late = None;
    let (status, body, replayed, should_retry) = match fault {
        Some(Fault::RateLimited { should_retry }) => {
            (StatusCode::TOO_MANY_REQUESTS, rate_limited().body(), false, should_retry)
        }
        Some(Fault::ServerError) => {
            let error = ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "api_error",
                code: None,
                param: None,
                message: "An unknown error occurred.".into(),
                endpoint_ran: false,
            };
            (error.status, error.body(), false, None)
        }
        other => {
            // A slow answer: the request is carried out at once and its answer comes late, so a client
            // that gives up waiting has had its object made all the same, as happens with Stripe.
            if let Some(Fault::Slow(delay)) = other {
                late = Some(delay);
            }
            let (status, body, replayed) = answer(&shared, &method, &uri, &headers, &received.body);
            (status, body, replayed, None)
        }
    };
    received.status = status.as_u16();
    shared.store.lock().unwrap().received.push(received);
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }

    let mut response = (status, axum::Json(body)).into_response();
    let response_headers = response.headers_mut();
    let request_id = shared.new_id("req");
    response_headers.insert("request-id", HeaderValue::from_str(&request_id).unwrap());
    if replayed {
        response_headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(retry) = should_retry {
        response_headers
            .insert("stripe-should-retry", HeaderValue::from_static(if retry { "true" } else { "false" }));
    }
    response
}

/// Counts a request in flight for as long as it is answered, even if the client goes away mid-answer.
struct InFlight<'s>(&'s Shared);

impl<'s> InFlight<'s> {
    fn enter(shared: &'s Shared) -> InFlight<'s> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn rate_limited() -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        kind: "invalid_request_error",
        code: Some("rate_limit"),
        param: None,
        message: "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
            .into(),
        endpoint_ran: false,
    }
}

/// Checks the key, the version and the rate; replays an idempotent answer; else runs the endpoint.
fn answer(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
) -> (StatusCode, Json, bool) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header("authorization").and_then(|h| h.strip_prefix("Bearer "));
    if key != Some(shared.settings.secret_key.as_str()) {
        let shown = key.map(|k| format!("{}****{}", &k[..k.len().min(8)], &k[k.len().saturating_sub(4)..]));
        let error = ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: match (shown, key) {
                (_, Some(key)) if shared.settings.echo_key => {
                    format!("Invalid API Key provided: Authorization was 'Bearer {key}'")
                }
                (Some(shown), _) => format!("Invalid API Key provided: {shown}"),
                (None, _) => "You did not provide an API key.".into(),
            },
            endpoint_ran: false,
        };
        return (error.status, error.body(), false);
    }
    if !shared.admit() {
        return (StatusCode::TOO_MANY_REQUESTS, rate_limited().body(), false);
    }
    if let Some(version) = header("stripe-version")
        && version != API_VERSION
    {
        let error = ApiError::invalid(
            "Stripe-Version",
            "invalid_version",
            format!("Invalid Stripe API version: {version}"),
        );
        return (error.status, error.body(), false);
    }
    let idempotency = (method == Method::POST).then(|| header("idempotency-key")).flatten();
    let request = format!("{} {}\n{body}", method, uri.path());
    if let Some(key) = idempotency {
        let store = shared.store.lock().unwrap();
        if let Some(saved) = store.idempotent.get(key) {
            if saved.request == request {
                return (saved.status, saved.body.clone(), true);
            }
            let error = ApiError::invalid(
                "Idempotency-Key",
                "idempotency_key_in_use",
                format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                ),
            );
            return (
                error.status,
                json!({ "error": { "type": "idempotency_error", "message": error.message } }),
                false,
            );
        }
    }
    let result = route(shared, method, uri, body);
    let (status, body, keep) = match result {
        Ok(object) => (StatusCode::OK, object, true),
        Err(error) => (error.status, error.body(), error.endpoint_ran),
    };
    if let (Some(key), true) = (idempotency, keep) {
        let saved = Saved { request, status, body: body.clone() };
        shared.store.lock().unwrap().idempotent.insert(key.to_string(), saved);
    }
    (status, body, false)
}

fn route(shared: &Shared, method: &Method, uri: &Uri, body: &str) -> Result<Json, ApiError> {
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let not_found = || ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: None,
        param: None,
        message: format!("Unrecognized request URL ({method}: {}).", uri.path()),
        endpoint_ran: false,
    };
    match (method, segments.as_slice()) {
        (&Method::GET, ["v1", path]) => list(shared, path, &parse_form(uri.query().unwrap_or(""))?),
        (&Method::GET, ["v1", path, id]) => {
            let store = shared.store.lock().unwrap();
            store
                .objects
                .get(*path)
                .and_then(|m| m.get(*id))
                .map(|s| s.object.clone())
                .ok_or_else(|| missing(path, id))
        }
        (&Method::POST, ["v1", path]) => create(shared, path, parse_form(body)?),
        (&Method::POST, ["v1", path, id]) => update(shared, path, id, parse_form(body)?),
        _ => Err(not_found()),
    }
}

fn missing(path: &str, id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: Some("resource_missing"),
        param: Some("id".into()),
        message: format!("No such {}: '{id}'", singular(path)),
        endpoint_ran: true,
    }
}

/// Parses `a[b][0][c]=v&…` into nested JSON, as Stripe reads a form body or a query string.
fn parse_form(text: &str) -> Result<Map<String, Json>, ApiError> {
    let mut root = Json::Object(Map::new());
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        let (head, rest) = key.split_once('[').map_or((key.as_ref(), ""), |(h, r)| (h, r));
        let mut path = vec![head.to_string()];
        let mut rest = rest;
        while !rest.is_empty() {
            let Some((inner, after)) = rest.split_once(']') else {
                return Err(ApiError::invalid(
                    key.to_string(),
                    "parameter_invalid",
                    format!("Invalid parameter name: {key}"),
                ));
            };
            path.push(inner.to_string());
            rest = after.strip_prefix('[').unwrap_or(after);
            if !after.is_empty() && !after.starts_with('[') {
                return Err(ApiError::invalid(
                    key.to_string(),
                    "parameter_invalid",
                    format!("Invalid parameter name: {key}"),
                ));
            }
        }
        if !insert(&mut root, &path, &value) {
            return Err(ApiError::invalid(
                key.to_string(),
                "parameter_invalid",
                format!("Conflicting parameter: {key}"),
            ));
        }
    }
    let Json::Object(map) = arrays(root) else { unreachable!() };
    Ok(map)
}

/// Puts `value` at `path` under `node`; `false` where the path runs through a value.
fn insert(node: &mut Json, path: &[String], value: &str) -> bool {
    let Some(map) = node.as_object_mut() else { return false };
    match path {
        [last] => {
            map.insert(last.clone(), json!(value));
            true
        }
        [first, rest @ ..] => {
            insert(map.entry(first.clone()).or_insert_with(|| Json::Object(Map::new())), rest, value)
        }
        [] => false,
    }
}

/// Objects whose keys are exactly 0, 1, 2, … become arrays.
fn arrays(value: Json) -> Json {
    match value {
        Json::Object(map) => {
            let indexed = !map.is_empty() && map.keys().enumerate().all(|(i, k)| k.parse::<usize>() == Ok(i));
            let mut entries: Vec<(String, Json)> = map.into_iter().map(|(k, v)| (k, arrays(v))).collect();
            if indexed {
                entries.sort_by_key(|(k, _)| k.parse::<usize>().unwrap());
                Json::Array(entries.into_iter().map(|(_, v)| v).collect())
            } else {
                Json::Object(entries.into_iter().collect())
            }
        }
        other => other,
    }
}

/// The parameters an endpoint takes, as on Stripe's API reference.
fn allowed(path: &str, creating: bool) -> Option<&'static [&'static str]> {
    Some(match (path, creating) {
        ("products", true) => &[
            "id",
            "name",
            "active",
            "description",
            "metadata",
            "default_price_data",
            "images",
            "marketing_features",
            "package_dimensions",
            "shippable",
            "statement_descriptor",
            "tax_code",
            "unit_label",
            "url",
            "expand",
        ],
        ("products", false) => &[
            "name",
            "active",
            "description",
            "metadata",
            "default_price",
            "images",
            "marketing_features",
            "package_dimensions",
            "shippable",
            "statement_descriptor",
            "tax_code",
            "unit_label",
            "url",
            "expand",
        ],
        ("prices", true) => &[
            "currency",
            "product",
            "product_data",
            "unit_amount",
            "unit_amount_decimal",
            "active",
            "metadata",
            "nickname",
            "recurring",
            "lookup_key",
            "tax_behavior",
            "billing_scheme",
            "currency_options",
            "custom_unit_amount",
            "tiers",
            "tiers_mode",
            "transfer_lookup_key",
            "transform_quantity",
            "expand",
        ],
        ("prices", false) => &[
            "active",
            "metadata",
            "nickname",
            "lookup_key",
            "tax_behavior",
            "currency_options",
            "transfer_lookup_key",
            "expand",
        ],
        ("customers", true) => &[
            "address",
            "balance",
            "business_name",
            "cash_balance",
            "description",
            "email",
            "expand",
            "individual_name",
            "invoice_prefix",
            "invoice_settings",
            "metadata",
            "name",
            "next_invoice_sequence",
            "payment_method",
            "phone",
            "preferred_locales",
            "shipping",
            "source",
            "tax",
            "tax_exempt",
            "tax_id_data",
            "test_clock",
            "validate",
        ],
        ("customers", false) => &[
            "address",
            "balance",
            "business_name",
            "cash_balance",
            "default_source",
            "description",
            "email",
            "expand",
            "individual_name",
            "invoice_prefix",
            "invoice_settings",
            "metadata",
            "name",
            "next_invoice_sequence",
            "phone",
            "preferred_locales",
            "shipping",
            "source",
            "tax",
            "tax_exempt",
            "validate",
        ],
        ("coupons", true) => &[
            "amount_off",
            "applies_to",
            "currency",
            "currency_options",
            "duration",
            "duration_in_months",
            "expand",
            "id",
            "max_redemptions",
            "metadata",
            "name",
            "percent_off",
            "redeem_by",
        ],
        ("coupons", false) => &["currency_options", "expand", "metadata", "name"],
        ("promotion_codes", true) => &[
            "promotion",
            "active",
            "code",
            "customer",
            "expand",
            "expires_at",
            "max_redemptions",
            "metadata",
            "restrictions",
        ],
        ("promotion_codes", false) => &["active", "expand", "metadata", "restrictions"],
        ("tax_rates", true) => &[
            "display_name",
            "inclusive",
            "percentage",
            "active",
            "country",
            "description",
            "expand",
            "jurisdiction",
            "metadata",
            "state",
            "tax_type",
        ],
        ("tax_rates", false) => &[
            "active",
            "country",
            "description",
            "display_name",
            "expand",
            "jurisdiction",
            "metadata",
            "state",
            "tax_type",
        ],
        ("shipping_rates", true) => &[
            "display_name",
            "delivery_estimate",
            "expand",
            "fixed_amount",
            "metadata",
            "tax_behavior",
            "tax_code",
            "type",
        ],
        // An update takes `fixed_amount[currency_options]` only: see `nested_unknown`.
        ("shipping_rates", false) => &["active", "expand", "fixed_amount", "metadata", "tax_behavior"],
        ("subscriptions", true) => &[
            "customer",
            "add_invoice_items",
            "application_fee_percent",
            "automatic_tax",
            "backdate_start_date",
            "billing_cycle_anchor",
            "billing_cycle_anchor_config",
            "billing_mode",
            "billing_thresholds",
            "cancel_at",
            "cancel_at_period_end",
            "collection_method",
            "currency",
            "days_until_due",
            "default_payment_method",
            "default_source",
            "default_tax_rates",
            "description",
            "discounts",
            "expand",
            "invoice_settings",
            "items",
            "metadata",
            "off_session",
            "on_behalf_of",
            "payment_behavior",
            "payment_settings",
            "pending_invoice_item_interval",
            "proration_behavior",
            "transfer_data",
            "trial_end",
            "trial_from_plan",
            "trial_period_days",
            "trial_settings",
        ],
        ("subscriptions", false) => &[
            "add_invoice_items",
            "application_fee_percent",
            "automatic_tax",
            "billing_cycle_anchor",
            "billing_thresholds",
            "cancel_at",
            "cancel_at_period_end",
            "cancellation_details",
            "collection_method",
            "days_until_due",
            "default_payment_method",
            "default_source",
            "default_tax_rates",
            "description",
            "discounts",
            "expand",
            "invoice_settings",
            "items",
            "metadata",
            "off_session",
            "on_behalf_of",
            "pause_collection",
            "payment_behavior",
            "payment_settings",
            "pending_invoice_item_interval",
            "proration_behavior",
            "proration_date",
            "transfer_data",
            "trial_end",
            "trial_from_plan",
            "trial_settings",
        ],
        _ => return None,
    })
}

/// Parameters that take `true` or `false`.
const BOOLEANS: &[&str] = &["active", "shippable", "inclusive", "cancel_at_period_end"];

/// Currencies the stand-in takes (a subset of Stripe's).
const CURRENCIES: &[&str] = &[
    "usd", "eur", "gbp", "jpy", "cad", "aud", "chf", "sek", "nok", "dkk", "inr", "brl", "mxn", "krw", "bhd",
    "kwd",
];

fn check(path: &str, creating: bool, params: &Map<String, Json>) -> Result<(), ApiError> {
    if let Some(allowed) = allowed(path, creating)
        && let Some(unknown) = params.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            unknown.clone(),
            "parameter_unknown",
            format!("Received unknown parameter: {unknown}"),
        ));
    }
    // A shipping rate's update takes `fixed_amount[currency_options]` and nothing else under `fixed_amount`.
    if let ("shipping_rates", false, Some(Json::Object(fixed))) = (path, creating, params.get("fixed_amount"))
        && let Some(unknown) = fixed.keys().find(|k| *k != "currency_options")
    {
        let name = format!("fixed_amount[{unknown}]");
        return Err(ApiError::invalid(
            name.clone(),
            "parameter_unknown",
            format!("Received unknown parameter: {name}"),
        ));
    }
    if let Some(metadata) = params.get("metadata") {
        let Some(metadata) = metadata.as_object() else {
            return Err(ApiError::invalid("metadata", "parameter_invalid", "Invalid object"));
        };
        if metadata.len() > 50 {
            return Err(ApiError::invalid(
                "metadata",
                "parameter_invalid",
                "Metadata can have at most 50 keys.",
            ));
        }
        for (key, value) in metadata {
            if key.chars().count() > 40 || value.as_str().is_some_and(|v| v.chars().count() > 500) {
                return Err(ApiError::invalid(
                    format!("metadata[{key}]"),
                    "parameter_invalid",
                    "Metadata keys can be at most 40 characters and values at most 500 characters.",
                ));
            }
        }
    }
    for &flag in BOOLEANS {
        if let Some(value) = params.get(flag)
            && !matches!(value.as_str(), Some("true" | "false"))
        {
            return Err(ApiError::invalid(
                flag,
                "parameter_invalid_boolean",
                format!("Invalid boolean: {value}"),
            ));
        }
    }
    let price = |params: &Map<String, Json>, prefix: &str| -> Result<(), ApiError> {
        let name =
            |field: &str| if prefix.is_empty() { field.to_string() } else { format!("{prefix}[{field}]") };
        match params.get("currency").and_then(Json::as_str) {
            None => {
                return Err(ApiError::invalid(
                    name("currency"),
                    "parameter_missing",
                    format!("Missing required param: {}.", name("currency")),
                ));
            }
            Some(currency) if !CURRENCIES.contains(&currency) => {
                return Err(ApiError::invalid(
                    name("currency"),
                    "parameter_invalid",
                    format!("Invalid currency: {currency}."),
                ));
            }
            Some(_) => {}
        }
        if let Some(amount) = params.get("unit_amount") {
            match amount.as_str().map(str::parse::<i64>) {
                Some(Ok(amount)) if amount >= 0 => {}
                Some(Ok(_)) => {
                    return Err(ApiError::invalid(
                        name("unit_amount"),
                        "parameter_invalid_integer",
                        "This value must be greater than or equal to 0.",
                    ));
                }
                _ => {
                    return Err(ApiError::invalid(
                        name("unit_amount"),
                        "parameter_invalid_integer",
                        format!("Invalid integer: {amount}"),
                    ));
                }
            }
        }
        Ok(())
    };
    match (path, creating) {
        ("products", true) => {
            if params.get("name").and_then(Json::as_str).is_none_or(str::is_empty) {
                return Err(ApiError::invalid("name", "parameter_missing", "Missing required param: name."));
            }
            if let Some(data) = params.get("default_price_data") {
                price(
                    data.as_object().ok_or_else(|| {
                        ApiError::invalid("default_price_data", "parameter_invalid", "Invalid object")
                    })?,
                    "default_price_data",
                )?;
            }
        }
        ("prices", true) => {
            price(params, "")?;
            if !params.contains_key("product") && !params.contains_key("product_data") {
                return Err(ApiError::invalid(
                    "product",
                    "parameter_missing",
                    "Missing required param: product.",
                ));
            }
        }
        ("coupons", true) => {
            if !params.contains_key("percent_off") && !params.contains_key("amount_off") {
                return Err(ApiError::invalid(
                    "percent_off",
                    "parameter_missing",
                    "You must pass either `percent_off` or `amount_off`.",
                ));
            }
            match params.get("currency").and_then(Json::as_str) {
                None if params.contains_key("amount_off") => return Err(missing_param("currency")),
                Some(currency) if !CURRENCIES.contains(&currency) => {
                    return Err(ApiError::invalid(
                        "currency",
                        "parameter_invalid",
                        format!("Invalid currency: {currency}."),
                    ));
                }
                _ => {}
            }
            match params.get("duration").and_then(Json::as_str) {
                None | Some("once" | "forever") => {}
                Some("repeating") if params.contains_key("duration_in_months") => {}
                Some("repeating") => return Err(missing_param("duration_in_months")),
                Some(other) => {
                    return Err(ApiError::invalid(
                        "duration",
                        "parameter_invalid",
                        format!("Invalid duration: must be one of forever, once, or repeating (got {other})"),
                    ));
                }
            }
        }
        ("tax_rates", true) => {
            for required in ["display_name", "inclusive", "percentage"] {
                if !params.contains_key(required) {
                    return Err(missing_param(required));
                }
            }
        }
        ("shipping_rates", true) => {
            if !params.contains_key("display_name") {
                return Err(missing_param("display_name"));
            }
            let fixed = params.get("fixed_amount");
            for field in ["amount", "currency"] {
                if fixed.and_then(|f| f.get(field)).is_none() {
                    return Err(missing_param(&format!("fixed_amount[{field}]")));
                }
            }
        }
        ("promotion_codes", true) => {
            let promotion = params.get("promotion");
            if promotion.and_then(|p| p.get("type")).and_then(Json::as_str) != Some("coupon") {
                return Err(missing_param("promotion[type]"));
            }
            if promotion.and_then(|p| p.get("coupon")).is_none() {
                return Err(missing_param("promotion[coupon]"));
            }
        }
        ("subscriptions", true) => {
            if !params.contains_key("customer") {
                return Err(missing_param("customer"));
            }
            if params.get("items").and_then(|items| items.get(0)).and_then(|item| item.get("price")).is_none()
            {
                return Err(missing_param("items"));
            }
        }
        _ => {}
    }
    Ok(())
}

fn missing_param(name: &str) -> ApiError {
    ApiError::invalid(name, "parameter_missing", format!("Missing required param: {name}."))
}

/// The objects a create refers to, which must exist: (parameter, API path, id).
fn references(path: &str, params: &Map<String, Json>) -> Vec<(String, &'static str, String)> {
    let id = |value: Option<&Json>| value.and_then(Json::as_str).map(str::to_string);
    let mut refs = Vec::new();
    match path {
        "prices" => refs.extend(id(params.get("product")).map(|p| ("product".into(), "products", p))),
        "promotion_codes" => refs.extend(
            id(params.get("promotion").and_then(|p| p.get("coupon")))
                .map(|c| ("promotion[coupon]".into(), "coupons", c)),
        ),
        "subscriptions" => {
            refs.extend(id(params.get("customer")).map(|c| ("customer".into(), "customers", c)));
            for (index, item) in
                params.get("items").and_then(Json::as_array).into_iter().flatten().enumerate()
            {
                refs.extend(id(item.get("price")).map(|p| (format!("items[{index}][price]"), "prices", p)));
            }
        }
        _ => {}
    }
    refs
}

fn create(shared: &Shared, path: &str, mut params: Map<String, Json>) -> Result<Json, ApiError> {
    check(path, true, &params)?;
    let now = unix_now();
    let mut store = shared.store.lock().unwrap();
    for (param, referred, id) in references(path, &params) {
        if !store.objects.get(referred).is_some_and(|m| m.contains_key(&id)) {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                param: Some(param),
                ..missing(referred, &id)
            });
        }
    }
    let id = match params.remove("id").and_then(|v| v.as_str().map(str::to_string)) {
        Some(id) if store.objects.get(path).is_some_and(|m| m.contains_key(&id)) => {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                kind: "invalid_request_error",
                code: Some("resource_already_exists"),
                param: Some("id".into()),
                message: format!("{} already exists.", capitalised(singular(path))),
                endpoint_ran: true,
            });
        }
        Some(id) => id,
        None => shared.new_id(prefix(path)),
    };
    let price_data = params.remove("default_price_data");
    let mut object = identified(&id, path, params);
    object["created"] = json!(now);
    object["updated"] = json!(now);
    object["livemode"] = json!(false);
    if object.get("metadata").is_none() {
        object["metadata"] = json!({});
    }
    for flag in BOOLEANS {
        if let Some(value) = object.get(*flag).and_then(Json::as_str) {
            object[*flag] = json!(value == "true");
        }
    }
    if object.get("active").is_none()
        && matches!(path, "products" | "prices" | "tax_rates" | "shipping_rates" | "promotion_codes")
    {
        object["active"] = json!(true);
    }
    if let Some(amount) = object.get("unit_amount").and_then(Json::as_str) {
        object["unit_amount"] = json!(amount.parse::<i64>().unwrap());
    }
    if let Some(Json::Object(mut data)) = price_data {
        let price_id = shared.new_id("price");
        if let Some(amount) = data.get("unit_amount").and_then(Json::as_str) {
            data.insert("unit_amount".into(), json!(amount.parse::<i64>().unwrap()));
        }
        let mut price = Json::Object(data);
        price["id"] = json!(price_id);
        price["object"] = json!("price");
        price["product"] = json!(id);
        price["active"] = json!(true);
        price["created"] = json!(now);
        price["livemode"] = json!(false);
        store.put("prices", price);
        object["default_price"] = json!(price_id);
    }
    store.put(path, object.clone());
    let event = json!({ "type": format!("{}.created", singular(path)), "data": { "object": object } });
    store.event(shared, event, now);
    Ok(object)
}

fn update(shared: &Shared, path: &str, id: &str, params: Map<String, Json>) -> Result<Json, ApiError> {
    check(path, false, &params)?;
    let now = unix_now();
    let mut store = shared.store.lock().unwrap();
    let Some(stored) = store.objects.get_mut(path).and_then(|m| m.get_mut(id)) else {
        return Err(missing(path, id));
    };
    let mut changes = Json::Object(params);
    for flag in BOOLEANS {
        if let Some(value) = changes.get(*flag).and_then(Json::as_str) {
            changes[*flag] = json!(value == "true");
        }
    }
    let previous = merge(&mut stored.object, &changes);
    stored.object["updated"] = json!(now);
    let object = stored.object.clone();
    if !previous.as_object().is_some_and(Map::is_empty) {
        let event = json!({ "type": format!("{}.updated", singular(path)), "data": { "object": object, "previous_attributes": previous } });
        store.event(shared, event, now);
    }
    Ok(object)
}

/// Applies `changes` as Stripe's update does (metadata keys merged, an empty value unsetting one); returns
/// the previous values of what changed.
fn merge(object: &mut Json, changes: &Json) -> Json {
    let mut previous = Map::new();
    for (key, value) in changes.as_object().into_iter().flatten() {
        if key == "metadata" {
            let before = object["metadata"].clone();
            let metadata = object["metadata"].as_object_mut().expect("metadata is an object");
            for (k, v) in value.as_object().into_iter().flatten() {
                match v.as_str() {
                    Some("") => metadata.remove(k),
                    _ => metadata.insert(k.clone(), v.clone()),
                };
            }
            if object["metadata"] != before {
                previous.insert(key.clone(), before);
            }
        } else if object.get(key) != Some(value) {
            previous.insert(key.clone(), object.get(key).cloned().unwrap_or(Json::Null));
            object[key] = value.clone();
        }
    }
    Json::Object(previous)
}

fn list(shared: &Shared, path: &str, query: &Map<String, Json>) -> Result<Json, ApiError> {
    let limit = match query.get("limit").and_then(Json::as_str) {
        None => 10,
        Some(text) => match text.parse::<usize>() {
            Ok(limit @ 1..=100) => limit,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    "parameter_invalid_integer",
                    "This value must be between 1 and 100.",
                ));
            }
        },
    };
    let bound = |op: &str| {
        query
            .get("created")
            .and_then(|c| c.get(op))
            .and_then(Json::as_str)
            .and_then(|v| v.parse::<i64>().ok())
    };
    let types: Vec<&str> = match (query.get("type"), query.get("types")) {
        (Some(Json::String(t)), _) => vec![t.as_str()],
        (_, Some(Json::Array(ts))) => ts.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    };
    let store = shared.store.lock().unwrap();
    let mut objects: Vec<&Stored> = store.objects.get(path).map(|m| m.values().collect()).unwrap_or_default();
    // Newest first, as Stripe lists.
    objects.sort_by_key(|s| std::cmp::Reverse((s.object["created"].as_i64().unwrap_or(0), s.seq)));
    let objects: Vec<&Json> = objects
        .into_iter()
        .map(|s| &s.object)
        .filter(|o| {
            let created = o["created"].as_i64().unwrap_or(0);
            bound("gt").is_none_or(|b| created > b)
                && bound("gte").is_none_or(|b| created >= b)
                && bound("lt").is_none_or(|b| created < b)
                && bound("lte").is_none_or(|b| created <= b)
                && (types.is_empty() || types.contains(&o["type"].as_str().unwrap_or("")))
        })
        .collect();
    let start = match query.get("starting_after").and_then(Json::as_str) {
        None => 0,
        Some(after) => match objects.iter().position(|o| o["id"] == after) {
            Some(position) => position + 1,
            None => return Err(missing(path, after)),
        },
    };
    let page: Vec<Json> = objects.iter().skip(start).take(limit).map(|o| (*o).clone()).collect();
    let has_more = objects.len() > start + page.len();
    Ok(json!({ "object": "list", "url": format!("/v1/{path}"), "has_more": has_more, "data": page }))
}

/// An object with `id` and `object` first, as Stripe writes them.
fn identified(id: &str, path: &str, fields: Map<String, Json>) -> Json {
    let mut object = Map::new();
    object.insert("id".into(), json!(id));
    object.insert("object".into(), json!(singular(path)));
    object.extend(fields.into_iter().filter(|(key, _)| key != "id" && key != "object"));
    Json::Object(object)
}

fn singular(path: &str) -> &str {
    match path {
        "events" => "event",
        "balance_transactions" => "balance_transaction",
        "payment_intents" => "payment_intent",
        other => other.strip_suffix('s').unwrap_or(other),
    }
}

fn prefix(path: &str) -> &'static str {
    match path {
        "products" => "prod",
        "prices" => "price",
        "customers" => "cus",
        "charges" => "ch",
        "payment_intents" => "pi",
        "invoices" => "in",
        "subscriptions" => "sub",
        "coupons" => "co",
        "promotion_codes" => "promo",
        "tax_rates" => "txr",
        "shipping_rates" => "shr",
        "refunds" => "re",
        "balance_transactions" => "txn",
        "events" => "evt",
        _ => "obj",
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_form_keys_become_objects_and_indexed_keys_arrays() {
        let parsed =
            parse_form("name=Mug&metadata%5Bsku%5D=a1&items%5B0%5D%5Bprice%5D=p1&items%5B1%5D%5Bprice%5D=p2")
                .unwrap();
        assert_eq!(
            Json::Object(parsed),
            json!({ "name": "Mug", "metadata": { "sku": "a1" }, "items": [{ "price": "p1" }, { "price": "p2" }] })
        );
        assert!(parse_form("metadata%5Bsku=a").is_err());
    }
}
