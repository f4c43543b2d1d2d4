//! Access to Amazon S3 or an S3-compatible store, shared by the S3 source and the Delta sink on S3.
//!
//! Credentials come from the configuration's static keys where given, else from the SDK's default chain
//! (environment, profile, web identity, container or instance role). With `role_arn` that identity assumes
//! the role, with `external_id` where the role's trust policy asks for one: the cross-account access of the
//! product Sluice reproduces. An `endpoint` points the client (and its STS calls) at an S3-compatible store.

use crate::env::Secret;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use serde::Deserialize;

/// The region when neither the configuration nor the environment names one.
const FALLBACK_REGION: &str = "us-east-1";

/// How to reach a bucket: where, and as whom.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Access {
    /// The bucket's region (default: from the environment or profile, else `us-east-1`).
    #[serde(default, deserialize_with = "crate::env::optional")]
    pub region: Option<String>,
    /// An S3-compatible store's address (`http://127.0.0.1:9000`).
    #[serde(default, deserialize_with = "crate::env::optional")]
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (default: true when `endpoint`
    /// is set).
    pub force_path_style: Option<bool>,
    /// Static credentials; without them the default chain is used.
    pub access_key_id: Option<Secret>,
    /// The secret half of `access_key_id`.
    pub secret_access_key: Option<Secret>,
    /// A session token that goes with temporary credentials.
    pub session_token: Option<Secret>,
    /// A role to assume for access, as with a cross-account IAM role.
    #[serde(default, deserialize_with = "crate::env::optional")]
    pub role_arn: Option<String>,
    /// The external ID the role's trust policy asks for.
    pub external_id: Option<Secret>,
}

impl S3Access {
    /// Whether buckets are addressed as `endpoint/bucket`.
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint.is_some())
    }

    /// Where requests go, for messages: the endpoint, or AWS.
    pub fn describe_endpoint(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| "AWS".to_string())
    }

    /// The SDK's configuration, and the access with the endpoint the SDK's own settings name
    /// (`AWS_ENDPOINT_URL`, or a profile's `endpoint_url`) where the configuration names none, so that
    /// buckets there are addressed as with a configured `endpoint`.
    pub async fn resolve(&self) -> (S3Access, SdkConfig) {
        let sdk = self.sdk_config().await;
        let endpoint = self.endpoint.clone().or_else(|| sdk.endpoint_url().map(str::to_string));
        (S3Access { endpoint, ..self.clone() }, sdk)
    }

    /// The SDK's configuration: the region, the endpoint, and the credentials (the role's, where one is
    /// assumed). No request is made until the credentials are first used.
    async fn sdk_config(&self) -> SdkConfig {
        let configured = RegionProviderChain::first_try(self.region.clone().map(Region::new));
        let region = match &self.endpoint {
            // An S3-compatible store: the environment may name a region, and nothing else is asked (the
            // instance metadata service of a machine that is not on EC2 least of all).
            Some(_) => configured.or_else(EnvironmentVariableRegionProvider::new()),
            None => configured.or_default_provider(),
        }
        .or_else(Region::new(FALLBACK_REGION));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(key), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                key.expose(),
                secret.expose(),
                self.session_token.as_ref().map(|token| token.expose().to_string()),
                None,
                "connector.toml",
            ));
        }
        let shared = loader.load().await;
        let Some(role_arn) = &self.role_arn else { return shared };
        let mut role = AssumeRoleProvider::builder(role_arn).session_name("sluice").configure(&shared);
        if let Some(external_id) = &self.external_id {
            role = role.external_id(external_id.expose());
        }
        let role = SharedCredentialsProvider::new(role.build().await);
        shared.into_builder().credentials_provider(role).build()
    }

    /// Words for a credential failure: which role was being assumed.
    pub fn role_context(&self) -> String {
        self.role_arn.as_ref().map(|arn| format!(" (assuming role `{arn}`)")).unwrap_or_default()
    }
}
