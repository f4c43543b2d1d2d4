//! Stripe settings of sinks and sources: checked when the configuration is read, and made into a client's
//! settings (and a sink's target) when a run starts.

use super::{Secret, SinkConfig, SinkKind, StripeSourceConfig, TemplateConfig, WriteMode};
use crate::stripe::{ClientSettings, ObjectSpec, bracketed, object_spec, supported_objects};
use std::num::NonZeroU32;
use std::time::Duration;

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
        if self.kind != SinkKind::Stripe {
            return match stripe_only.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err((name, format!("`{name}` is for a Stripe sink (type = \"stripe\")"))),
                None => Ok(()),
            };
        }
        let object = self.object.as_deref().unwrap_or_default();
        if object.is_empty() {
            return Err((
                "object",
                format!(
                    "a Stripe sink needs the object records become, by its API path: object = \"products\" (Sluice writes {})",
                    supported_objects()
                ),
            ));
        }
        if object_spec(object).is_none() {
            return Err((
                "object",
                format!(
                    "Sluice does not write `{object}` to Stripe: it knows the parameters and requirements of {} only",
                    supported_objects()
                ),
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
        check_key(self.api_key.as_ref())
    }

    /// The object a Stripe sink writes (checked when the configuration was read).
    pub fn stripe_object(&self) -> &'static ObjectSpec {
        self.object.as_deref().and_then(object_spec).expect("checked when the configuration was read")
    }

    /// The record field that holds a record's external id: `external_id`, else Stripe's own `id` for
    /// products and `metadata.external_id` for the rest.
    pub fn external_id_field(&self) -> String {
        match &self.external_id {
            Some(field) => field.clone(),
            None if self.object.as_deref() == Some("products") => "id".into(),
            None => "metadata.external_id".into(),
        }
    }

    /// Where a Stripe sink's template is the bundled `map`, whether its fields can make every object:
    /// the parameters Stripe requires, and the external id, are all mapped, and every field is a
    /// parameter of the object. As (key under the template, message).
    pub(super) fn check_stripe_mapping(
        &self,
        template: Option<&TemplateConfig>,
    ) -> Result<(), (&'static str, String)> {
        let Some(template) = template.filter(|t| self.kind == SinkKind::Stripe && t.plugin == "map") else {
            return Ok(());
        };
        let Some(toml::Value::Table(fields)) = template.options.get("fields") else { return Ok(()) };
        let spec = self.stripe_object();
        let targets: Vec<String> = fields.keys().cloned().collect();
        if let Some(target) = targets.iter().find(|target| !spec.creates(&bracketed(target))) {
            return Err((
                "options.fields",
                format!(
                    "field `{target}` is not a parameter of {} (the parameters are on {})",
                    spec.path, spec.reference
                ),
            ));
        }
        if let Some(missing) = spec.unmapped(&targets) {
            return Err((
                "options.fields",
                format!("Stripe needs {missing} to create {}, and no field makes it: map it", spec.path),
            ));
        }
        let external_id = self.external_id_field();
        if !targets.contains(&external_id) {
            return Err((
                "options.fields",
                format!(
                    "no field makes `{external_id}`, which Sluice knows each {} again by (the sink's `external_id`): map it",
                    spec.path
                ),
            ));
        }
        Ok(())
    }

    /// The client settings of a Stripe sink (checked when the configuration was read).
    pub fn client_settings(&self) -> ClientSettings {
        Connection {
            api_key: self.api_key.as_ref(),
            account: self.account.as_ref(),
            api_base: self.api_base.as_ref(),
            rate_limit: self.rate_limit,
            max_retries: self.max_retries,
        }
        .settings()
    }
}

/// How far before the newest object (or event) seen a Stripe source's later run lists again, unless
/// configured.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3600);

impl StripeSourceConfig {
    /// How far before the newest object or event seen later runs look again (default 1 hour).
    pub fn lookback(&self) -> Duration {
        self.lookback.unwrap_or(DEFAULT_LOOKBACK)
    }

    /// What serde cannot check, as (key under the source, message).
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.tables.is_empty() {
            return Err((
                "tables",
                "name the Stripe objects to import: tables = [\"customers\", \"charges\"]".into(),
            ));
        }
        if let Some(table) = self
            .tables
            .iter()
            .find(|t| t.is_empty() || !t.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        {
            return Err((
                "tables",
                format!("`{table}` is not a Stripe object's API path (such as `payment_intents`)"),
            ));
        }
        if self.rate_limit == Some(0) {
            return Err(("rate_limit", "allow at least 1 request a second".into()));
        }
        check_key(self.api_key.as_ref())
    }

    /// The client settings of a Stripe source (checked when the configuration was read).
    pub fn client_settings(&self) -> ClientSettings {
        Connection {
            api_key: self.api_key.as_ref(),
            account: self.account.as_ref(),
            api_base: self.api_base.as_ref(),
            rate_limit: self.rate_limit,
            max_retries: self.max_retries,
        }
        .settings()
    }
}

/// How a sink or a source reaches Stripe, as configured.
struct Connection<'c> {
    api_key: Option<&'c Secret>,
    account: Option<&'c String>,
    api_base: Option<&'c String>,
    rate_limit: Option<u32>,
    max_retries: Option<u32>,
}

impl Connection<'_> {
    fn settings(&self) -> ClientSettings {
        let mut settings =
            ClientSettings::new(api_key(self.api_key).expect("checked when the configuration was read"));
        settings.account = self.account.cloned();
        if let Some(base) = self.api_base {
            settings.api_base = base.clone();
        }
        if let Some(rate) = self.rate_limit.and_then(NonZeroU32::new) {
            settings.rate_limit = rate;
        }
        if let Some(retries) = self.max_retries {
            settings.max_retries = retries;
        }
        settings
    }
}

/// The configured key, else the environment's.
fn api_key(configured: Option<&Secret>) -> Option<Secret> {
    configured.cloned().or_else(|| std::env::var(STRIPE_KEY_VARIABLE).ok().map(Secret::new))
}

fn check_key(configured: Option<&Secret>) -> Result<(), (&'static str, String)> {
    match api_key(configured) {
        Some(_) => Ok(()),
        None => Err((
            "api_key",
            format!(
                "Stripe needs a secret or restricted key: api_key = \"${{{STRIPE_KEY_VARIABLE}}}\", or {STRIPE_KEY_VARIABLE} in the environment"
            ),
        )),
    }
}
