//! A Stripe sink's settings: checked when the configuration is read, and made into a client's settings
//! and a target when a run starts.

use super::{Secret, SinkConfig, SinkKind, WriteMode};
use crate::sink::StripeTarget;
use crate::stripe::ClientSettings;
use std::num::NonZeroU32;

/// Where a Stripe key comes from when the configuration names none.
pub const STRIPE_KEY_VARIABLE: &str = "STRIPE_API_KEY";

impl SinkConfig {
    /// What serde cannot check of the Stripe settings, as (key under the sink, message).
    pub(super) fn check_stripe(&self) -> Result<(), (&'static str, String)> {
        let stripe_only = [
            ("object", self.object.is_some()),
            ("external_id", self.external_id.is_some()),
            ("api_key", self.api_key.is_some()),
            ("account", self.account.is_some()),
            ("api_base", self.api_base.is_some()),
            ("rate_limit", self.rate_limit.is_some()),
            ("concurrency", self.concurrency.is_some()),
            ("max_retries", self.max_retries.is_some()),
        ];
        if self.kind == SinkKind::Tables {
            return match stripe_only.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err((name, format!("`{name}` is for a Stripe sink (type = \"stripe\")"))),
                None => Ok(()),
            };
        }
        let object = self.object.as_deref().unwrap_or_default();
        if object.is_empty() || !object.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '/') {
            return Err((
                "object",
                "a Stripe sink needs the object records become, by its API path: object = \"products\""
                    .into(),
            ));
        }
        if self.mode != WriteMode::Append || !self.key.is_empty() {
            return Err((
                "mode",
                "a Stripe sink creates or updates each record's object by its `external_id`; `mode` and `key` are for tables".into(),
            ));
        }
        if self.rate_limit == Some(0) {
            return Err(("rate_limit", "allow at least 1 request a second".into()));
        }
        if self.concurrency == Some(0) {
            return Err(("concurrency", "allow at least 1 request at a time".into()));
        }
        if self.api_key().is_none() {
            return Err((
                "api_key",
                format!(
                    "a Stripe sink needs a secret or restricted key: api_key = \"${{{STRIPE_KEY_VARIABLE}}}\", or {STRIPE_KEY_VARIABLE} in the environment"
                ),
            ));
        }
        Ok(())
    }

    fn api_key(&self) -> Option<Secret> {
        self.api_key.clone().or_else(|| std::env::var(STRIPE_KEY_VARIABLE).ok().map(Secret::new))
    }

    /// The client settings and target of a Stripe sink (checked when the configuration was read).
    pub fn stripe(&self) -> (ClientSettings, StripeTarget) {
        let mut settings =
            ClientSettings::new(self.api_key().expect("checked when the configuration was read"));
        settings.account = self.account.clone();
        if let Some(base) = &self.api_base {
            settings.api_base = base.clone();
        }
        if let Some(rate) = self.rate_limit.and_then(NonZeroU32::new) {
            settings.rate_limit = rate;
        }
        if let Some(retries) = self.max_retries {
            settings.max_retries = retries;
        }
        let object = self.object.clone().expect("checked when the configuration was read");
        let external_id = self
            .external_id
            .clone()
            .unwrap_or_else(|| if object == "products" { "id" } else { "metadata.external_id" }.to_string());
        // Enough in flight to reach the rate at Stripe's usual few hundred milliseconds a write (a quarter of
        // the rate: 6 at 25/s, 25 at 100/s), never so many that a refused key costs many requests.
        let concurrency = self.concurrency.unwrap_or((settings.rate_limit.get() as usize / 4).clamp(4, 32));
        (settings, StripeTarget { object, external_id, concurrency })
    }
}
