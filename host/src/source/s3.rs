//! `type = "s3"`: Amazon S3 or an S3-compatible store, through aws-sdk-s3.
//!
//! Credentials come from the configuration's static keys where given, else from the SDK's default chain
//! (environment, profile, web identity, container or instance role). With `role_arn` that identity assumes
//! the role, with `external_id` where the role's trust policy asks for one: the cross-account access of the
//! product Sluice reproduces. An `endpoint` points the client (and its STS calls) at an S3-compatible store.

use super::{ObjectMeta, ObjectReader, Source, SourceError};
use crate::config::S3SourceConfig;
use async_trait::async_trait;
use aws_config::meta::region::RegionProviderChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::SystemTime;

/// The region when neither the configuration nor the environment names one.
const FALLBACK_REGION: &str = "us-east-1";

/// An S3 bucket, or a bucket of an S3-compatible store, read through the AWS SDK.
pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: Option<String>,
    /// Where requests go, for messages: the endpoint, or AWS.
    endpoint: String,
    /// The role assumed, for messages.
    role_arn: Option<String>,
}

impl S3Source {
    /// Builds the client; no request is made until the first listing.
    pub async fn connect(config: &S3SourceConfig) -> Result<S3Source, SourceError> {
        let region = RegionProviderChain::first_try(config.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::new(FALLBACK_REGION));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(key), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                key.expose(),
                secret.expose(),
                config.session_token.as_ref().map(|token| token.expose().to_string()),
                None,
                "connector.toml",
            ));
        }
        let shared = loader.load().await;
        let mut s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style.unwrap_or(config.endpoint.is_some()));
        if let Some(role_arn) = &config.role_arn {
            let mut role = AssumeRoleProvider::builder(role_arn).session_name("sluice").configure(&shared);
            if let Some(external_id) = &config.external_id {
                role = role.external_id(external_id.expose());
            }
            s3_config = s3_config.credentials_provider(role.build().await);
        }
        Ok(S3Source {
            client: Client::from_conf(s3_config.build()),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone().filter(|prefix| !prefix.is_empty()),
            endpoint: config.endpoint.clone().unwrap_or_else(|| "AWS".to_string()),
            role_arn: config.role_arn.clone(),
        })
    }

    /// What went wrong, in words that say what to check.
    fn explain<E, R>(&self, error: &SdkError<E, R>) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let context = DisplayErrorContext(error).to_string();
        match error {
            // The client could not sign the request: its credentials could not be had (a role that
            // refused to be assumed, an empty credential chain).
            SdkError::DispatchFailure(_) if context.contains("loading credentials") => {
                let role =
                    self.role_arn.as_ref().map(|arn| format!(" (assuming role `{arn}`)")).unwrap_or_default();
                format!("cannot get credentials{role}: {}", summary(&context))
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                format!("cannot reach {}: {}", self.endpoint, summary(&context))
            }
            _ => match (error.code(), error.message()) {
                (Some("NoSuchBucket"), _) => format!("bucket `{}` does not exist", self.bucket),
                (
                    Some(
                        code @ ("InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "AccessDenied"
                        | "ExpiredToken"
                        | "InvalidToken"
                        | "InvalidClientTokenId"),
                    ),
                    message,
                ) => format!(
                    "access denied ({code}{}): check the credentials, or the role and its external ID",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => DisplayErrorContext(error).to_string(),
            },
        }
    }
}

/// An SDK error's chain without the debug dump that follows it; where a service answered with an error
/// code and message, just those.
fn summary(context: &str) -> String {
    const DUMPS: [&str; 5] =
        ["DispatchFailure(", "ServiceError(", "TimeoutError(", "ResponseError(", "ConstructionFailure("];
    let end =
        DUMPS.iter().filter_map(|dump| context.find(&format!(" ({dump}"))).min().unwrap_or(context.len());
    let chain = &context[..end];
    let quoted = |field: &str| {
        let start = chain.find(field)? + field.len();
        chain[start..].find('"').map(|len| &chain[start..start + len])
    };
    match (quoted("code: \""), quoted("message: \"")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => chain.trim_start_matches("dispatch failure: ").to_string(),
    }
}

#[async_trait]
impl Source for S3Source {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.as_deref().unwrap_or(""))
    }

    async fn list(&self) -> Result<Vec<ObjectMeta>, SourceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(self.prefix.clone())
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| SourceError::List { source_name: self.describe(), message: self.explain(&e) })?;
            objects.extend(page.contents().iter().filter_map(object_meta));
        }
        Ok(objects)
    }

    async fn list_page(&self, limit: usize) -> Result<Vec<ObjectMeta>, SourceError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(self.prefix.clone())
            .max_keys(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| SourceError::List { source_name: self.describe(), message: self.explain(&e) })?;
        Ok(page.contents().iter().filter_map(object_meta).collect())
    }

    async fn open(&self, object: &ObjectMeta) -> Result<ObjectReader, SourceError> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(&object.key);
        // The version that was listed, or a refusal: an object replaced since then is the next run's.
        if !object.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", object.etag));
        }
        let output = request.send().await.map_err(|e| SourceError::Open {
            source_name: self.describe(),
            key: object.key.clone(),
            message: self.explain(&e),
        })?;
        Ok(Box::new(Box::pin(output.body.into_async_read())))
    }
}

/// A listed object as Sluice keeps it; none for a "folder" placeholder, which holds nothing to import.
fn object_meta(object: &aws_sdk_s3::types::Object) -> Option<ObjectMeta> {
    let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else { return None };
    if key.ends_with('/') {
        return None;
    }
    Some(ObjectMeta {
        key: key.to_string(),
        size: object.size().unwrap_or(0).max(0) as u64,
        etag: object.e_tag().unwrap_or_default().trim_matches('"').to_string(),
        last_modified: SystemTime::try_from(*modified).unwrap_or(SystemTime::UNIX_EPOCH),
    })
}
