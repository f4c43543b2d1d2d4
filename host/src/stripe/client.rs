//! One careful client of Stripe's API: a pinned `Stripe-Version`, the secret key only ever in the
//! `Authorization` header, idempotency keys on writes, a client-side rate limit shared by every request in
//! flight, and retries with exponential backoff and jitter where Stripe (or the network) says a request
//! may succeed later.

use crate::env::Secret;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use serde_json::Value as Json;
use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The API version Sluice is written against; Stripe answers in its shapes whatever the account's default.
pub const API_VERSION: &str = "2025-09-30.clover";
/// Stripe's API, where a configuration names no other.
pub const API_BASE: &str = "https://api.stripe.com";

/// How to reach Stripe, from a dataflow's configuration.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The secret or restricted key.
    pub api_key: Secret,
    /// A connected account to act for (`Stripe-Account`).
    pub account: Option<String>,
    /// The API's base URL.
    pub api_base: String,
    /// Requests per second.
    pub rate_limit: NonZeroU32,
    /// Retries of a request that met a 429, a 5xx or a network error.
    pub max_retries: u32,
    /// The first retry waits about this long; each later one twice as long, up to 10 s.
    pub first_backoff: Duration,
    /// How long one request may take.
    pub timeout: Duration,
}

/// The longest wait between two attempts of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Retries of a request that could not reach Stripe while Stripe has not answered any: an address that is
/// wrong or down fails the run within seconds, rather than every record waiting out every retry.
const FIRST_CONTACT_RETRIES: u32 = 2;
/// How long a connection to Stripe may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientSettings {
    /// Settings with Stripe's defaults: 25 requests a second with a test key, 100 with a live one (the
    /// limits Stripe itself enforces by default), 6 retries.
    pub fn new(api_key: Secret) -> ClientSettings {
        let live = api_key.expose().starts_with("sk_live_") || api_key.expose().starts_with("rk_live_");
        ClientSettings {
            rate_limit: NonZeroU32::new(if live { 100 } else { 25 }).unwrap(),
            api_key,
            account: None,
            api_base: API_BASE.to_string(),
            max_retries: 6,
            first_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(80),
        }
    }
}

/// What Stripe answered to a request it carried out.
#[derive(Debug)]
pub struct Answer {
    /// The JSON Stripe answered.
    pub body: Json,
    /// Stripe's `Request-Id`, for support.
    pub request_id: Option<String>,
}

/// Why a request did not succeed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused this request (a parameter it does not take, an object it cannot find): the request's
    /// own fault, so retrying would not help.
    #[error("{message} ({}{}{})", describe_code(code), describe_param(param), describe_request(request_id))]
    Refused {
        /// The HTTP status (400, 402, 404).
        status: u16,
        /// Stripe's error code, where it gave one.
        code: Option<String>,
        /// The parameter at fault, where Stripe named one.
        param: Option<String>,
        /// Stripe's message.
        message: String,
        /// Stripe's `Request-Id`, for support.
        request_id: Option<String>,
    },
    /// Stripe refused the key (401) or its permissions (403): every request would fail the same way.
    #[error("Stripe refused the API key: {message} (HTTP {status}{})", describe_request(request_id))]
    Key {
        /// 401 or 403.
        status: u16,
        /// Stripe's message.
        message: String,
        /// Stripe's `Request-Id`, for support.
        request_id: Option<String>,
    },
    /// Stripe or the network kept failing through every retry.
    #[error("Stripe did not answer after {attempts} attempts; the last: {last}")]
    Unavailable {
        /// Requests made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

impl StripeError {
    /// Stripe's error code (`resource_already_exists`), where it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            StripeError::Refused { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn describe_code(code: &Option<String>) -> String {
    format!("code {}", code.as_deref().unwrap_or("none"))
}

fn describe_param(param: &Option<String>) -> String {
    param.as_ref().map(|p| format!(", param {p}")).unwrap_or_default()
}

fn describe_request(request_id: &Option<String>) -> String {
    request_id.as_ref().map(|id| format!(", request {id}")).unwrap_or_default()
}

/// A Stripe API client; share one per dataflow run so that its rate limit covers every request.
pub struct StripeClient {
    http: reqwest::Client,
    settings: ClientSettings,
    limiter: DefaultDirectRateLimiter,
    /// Set by the first 401 or 403: later requests fail at once instead of each meeting the same refusal.
    key_refused: OnceLock<StripeError>,
    /// Set by the first answer that shows Stripe took the key.
    key_accepted: AtomicBool,
    requests: AtomicU64,
}

impl StripeClient {
    /// A client with `settings`; an error where its HTTP client cannot be made.
    pub fn new(settings: ClientSettings) -> Result<StripeClient, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(settings.timeout))
            .user_agent(concat!("Sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the Stripe HTTP client could not start: {e}"))?;
        // Requests are spaced evenly, with a small burst (a twentieth of the rate, 2 to 10) so that a timer
        // waking late can catch up rather than lose its slot; Stripe's own limiter takes bursts that size.
        let burst = NonZeroU32::new((settings.rate_limit.get() / 20).clamp(2, 10)).expect("at least 2");
        let quota = Quota::per_second(settings.rate_limit).allow_burst(burst);
        Ok(StripeClient {
            http,
            limiter: RateLimiter::direct(quota),
            settings,
            key_refused: OnceLock::new(),
            key_accepted: AtomicBool::new(false),
            requests: AtomicU64::new(0),
        })
    }

    /// Whether Stripe has answered a request in a way that shows it took the key. Until then a caller
    /// sends one request at a time, so that a wrong key (or an address where nothing answers) costs one
    /// refusal, not one per request in flight.
    pub fn key_accepted(&self) -> bool {
        self.key_accepted.load(Ordering::Relaxed)
    }

    /// Stripe's refusal of the key, once it has refused it: every request would meet it.
    pub fn key_refused(&self) -> Option<&StripeError> {
        self.key_refused.get()
    }

    /// Requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `POST /v1/{path}` with form parameters, under an idempotency key so that a retry never acts twice.
    pub async fn post(
        &self,
        path: &str,
        params: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Answer, StripeError> {
        self.send(Method::POST, path, params, Some(idempotency_key)).await
    }

    /// `GET /v1/{path}` with query parameters.
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Answer, StripeError> {
        self.send(Method::GET, path, query, None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Answer, StripeError> {
        let url = format!("{}/v1/{path}", self.settings.api_base.trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            if let Some(refused) = self.key_refused.get() {
                return Err(refused.clone());
            }
            attempt += 1;
            self.limiter.until_ready().await;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.settings.api_key.expose())
                .header("Stripe-Version", API_VERSION);
            if let Some(account) = &self.settings.account {
                request = request.header("Stripe-Account", account);
            }
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            request = if method == Method::GET { request.query(params) } else { request.form(params) };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match request.send().await {
                Err(error) => {
                    crate::metrics::stripe_request(method.as_str(), "network_error");
                    self.settings.api_key.redact(&network_failure(&error))
                }
                Ok(response) => {
                    crate::metrics::stripe_request(method.as_str(), response.status().as_str());
                    match self.read(response).await {
                        Ok(answer) => return Ok(answer),
                        Err(Failure::Final(error)) => return Err(error),
                        Err(Failure::Retryable(reason)) => reason,
                    }
                }
            };
            let retries = match self.key_accepted() {
                true => self.settings.max_retries,
                false => self.settings.max_retries.min(FIRST_CONTACT_RETRIES),
            };
            if attempt > retries {
                return Err(StripeError::Unavailable { attempts: attempt, last: failure });
            }
            tracing::debug!(path, attempt, "retrying a Stripe request: {failure}");
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }

    /// An answer, or whether the request may be tried again.
    async fn read(&self, response: reqwest::Response) -> Result<Answer, Failure> {
        let status = response.status();
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let request_id = header("request-id");
        let should_retry = header("stripe-should-retry").map(|v| v == "true");
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => {
                return Err(Failure::Retryable(self.settings.api_key.redact(&network_failure(&error))));
            }
        };
        let json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        if status.as_u16() != 401 && status.as_u16() != 403 {
            self.key_accepted.store(true, Ordering::Relaxed);
        }
        if status.is_success() {
            return Ok(Answer { body: json, request_id });
        }
        let error = &json["error"];
        let text = |key: &str| error.get(key).and_then(Json::as_str).map(str::to_string);
        // A server may echo the key back ("Authorization was 'Bearer …'"): what Stripe says is kept in
        // run history and printed, so the key never is.
        let message = text("message").unwrap_or_else(|| format!("HTTP {status} without an error message"));
        let message = self.settings.api_key.redact(&message);
        if status.as_u16() == 401 || status.as_u16() == 403 {
            let refused = StripeError::Key { status: status.as_u16(), message, request_id };
            return Err(Failure::Final(self.key_refused.get_or_init(|| refused).clone()));
        }
        // Stripe's own word wins; without it, rate limits, lock timeouts and server errors are worth another try.
        let transient = status.as_u16() == 429 || status.as_u16() == 409 || status.is_server_error();
        if should_retry.unwrap_or(transient) {
            let request = describe_request(&request_id);
            return Err(Failure::Retryable(format!("HTTP {status}: {message}{request}")));
        }
        Err(Failure::Final(StripeError::Refused {
            status: status.as_u16(),
            code: text("code"),
            param: text("param"),
            message,
            request_id,
        }))
    }

    /// Exponential backoff with jitter: attempt n waits a random time in [d/2, d] with d = first·2ⁿ⁻¹.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self.settings.first_backoff.saturating_mul(1 << (attempt - 1).min(16));
        let ceiling = doubled.min(MAX_BACKOFF);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

enum Failure {
    Final(StripeError),
    Retryable(String),
}

fn network_failure(error: &reqwest::Error) -> String {
    // reqwest's message names the URL, which holds no secret; the key is only ever in a header.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rate_follows_the_key_mode() {
        assert_eq!(ClientSettings::new(Secret::new("sk_test_abc")).rate_limit.get(), 25);
        assert_eq!(ClientSettings::new(Secret::new("rk_live_abc")).rate_limit.get(), 100);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_ceiling() {
        let client = StripeClient::new(ClientSettings::new(Secret::new("sk_test_abc"))).unwrap();
        for attempt in 1..=12 {
            let ceiling = (Duration::from_millis(500) * (1 << (attempt - 1))).min(MAX_BACKOFF);
            for _ in 0..50 {
                let wait = client.backoff(attempt);
                assert!(wait >= ceiling / 2 && wait <= ceiling, "attempt {attempt}: {wait:?}");
            }
        }
    }

    #[test]
    fn a_refusal_reads_with_stripes_code_param_and_request_id() {
        let refused = StripeError::Refused {
            status: 400,
            code: Some("parameter_invalid_integer".into()),
            param: Some("default_price_data[unit_amount]".into()),
            message: "This value must be greater than or equal to 0.".into(),
            request_id: Some("req_123".into()),
        };
        assert_eq!(
            refused.to_string(),
            "This value must be greater than or equal to 0. (code parameter_invalid_integer, param default_price_data[unit_amount], request req_123)"
        );
    }
}
