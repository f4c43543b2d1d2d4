//! `type = "s3"`: Amazon S3 or an S3-compatible store, through aws-sdk-s3, with the access
//! [`crate::aws::S3Access`] describes.

use super::ranged::{Fetch, Window};
use super::{ObjectMeta, ObjectReader, Source, SourceError};
use crate::config::S3SourceConfig;
use crate::plugin::RangeRead;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use std::time::{Duration, SystemTime};

/// An S3 bucket, or a bucket of an S3-compatible store, read through the AWS SDK.
pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: Option<String>,
    /// Where requests go, for messages: the endpoint, or AWS.
    endpoint: String,
    /// The role assumed, for messages.
    role_arn: Option<String>,
    /// How a download that breaks is resumed.
    resume: Resume,
}

/// How a download that breaks (a reset connection, a body that stalls) is resumed within the run.
#[derive(Clone, Copy, Debug)]
struct Resume {
    /// Resumptions of one object before it is left for the next run.
    retries: u32,
    /// How long the body may go without a byte.
    stall: Duration,
}

/// Resumptions of a broken download, unless configured.
const DEFAULT_READ_RETRIES: u32 = 3;
/// How long a download may go without a byte, unless configured.
const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The wait before the first resumption; each later one waits twice as long.
const FIRST_RESUME_BACKOFF: Duration = Duration::from_millis(200);

/// The wait before the resumption that follows `failures` failures in a row (one or more): a broken
/// download's and a failed ranged read's alike.
fn resume_backoff(failures: u32) -> Duration {
    FIRST_RESUME_BACKOFF * (1 << (failures - 1).min(6))
}

impl S3Source {
    /// Builds the client; no request is made until the first listing.
    pub async fn connect(config: &S3SourceConfig) -> Result<S3Source, SourceError> {
        let (access, shared) = config.access().resolve().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(access.path_style());
        Ok(S3Source {
            client: Client::from_conf(s3_config.build()),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone().filter(|prefix| !prefix.is_empty()),
            endpoint: access.describe_endpoint(),
            role_arn: config.role_arn.clone(),
            resume: Resume {
                retries: config.read_retries.unwrap_or(DEFAULT_READ_RETRIES),
                stall: config.stall_timeout.unwrap_or(DEFAULT_STALL_TIMEOUT),
            },
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
pub(super) fn summary(context: &str) -> String {
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
        let body = self.get_from(object, 0).await.map_err(|message| SourceError::Open {
            source_name: self.describe(),
            key: object.key.clone(),
            message,
        })?;
        let download = Download {
            source: self.clone_handle(),
            object: object.clone(),
            body: Some(body),
            delivered: 0,
            failures: 0,
            done: false,
        };
        let chunks = futures::stream::unfold(download, Download::next_chunk);
        Ok(Box::new(Box::pin(tokio_util::io::StreamReader::new(chunks))))
    }

    async fn open_ranged(&self, object: &ObjectMeta) -> Result<Box<dyn RangeRead>, SourceError> {
        Ok(Box::new(S3Ranges {
            source: self.clone_handle(),
            object: object.clone(),
            runtime: tokio::runtime::Handle::current(),
            window: Window::default(),
        }))
    }

    async fn still_there(&self, object: &ObjectMeta) -> Result<bool, SourceError> {
        let mut request = self.client.head_object().bucket(&self.bucket).key(&object.key);
        if !object.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", object.etag));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if matches!(e.raw().status().as_u16(), 404 | 412) => Ok(false),
            Err(e) => Err(SourceError::Open {
                source_name: self.describe(),
                key: object.key.clone(),
                message: self.explain(&e),
            }),
        }
    }
}

impl S3Source {
    /// What a download needs of the source, to resume one on its own.
    fn clone_handle(&self) -> S3Handle {
        S3Handle {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            describe: self.describe(),
            resume: self.resume,
        }
    }

    /// The body of `object` from byte `from`: the version that was listed, or a refusal (an object
    /// replaced since then is the next run's).
    async fn get_from(&self, object: &ObjectMeta, from: u64) -> Result<ByteStream, String> {
        get_from(&self.client, &self.bucket, object, from).await.map_err(|e| self.explain(&e))
    }
}

/// A GET of `object` from byte `from`, of the ETag that was listed.
async fn get_from(
    client: &Client,
    bucket: &str,
    object: &ObjectMeta,
    from: u64,
) -> Result<ByteStream, SdkError<GetObjectError, HttpResponse>> {
    let mut request = client.get_object().bucket(bucket).key(&object.key);
    if !object.etag.is_empty() {
        request = request.if_match(format!("\"{}\"", object.etag));
    }
    if from > 0 {
        request = request.range(format!("bytes={from}-"));
    }
    Ok(request.send().await?.body)
}

/// An object read by ranged GETs of the version that was listed, each request as large as a read plus a
/// little read ahead, and reads near the last one served from what it fetched (see [`Window`]). A
/// request that fails is tried again as a broken download is resumed.
struct S3Ranges {
    source: S3Handle,
    object: ObjectMeta,
    /// The runtime the requests run on: reads come from a parser's thread, outside it.
    runtime: tokio::runtime::Handle,
    window: Window,
}

impl S3Ranges {
    /// The bytes of `fetch`, whole, or why not after the source's resumptions.
    async fn fetch(&self, fetch: &Fetch) -> std::io::Result<Vec<u8>> {
        let Resume { retries, stall } = self.source.resume;
        let mut failures = 0;
        loop {
            let cause = match self.get(fetch, stall).await {
                Ok(bytes) if bytes.len() as u64 == fetch.to - fetch.from => return Ok(bytes),
                Ok(bytes) => format!("{} bytes came of {}", bytes.len(), fetch.to - fetch.from),
                Err(cause) => cause,
            };
            failures += 1;
            if failures > retries {
                return Err(std::io::Error::other(format!(
                    "{}: reading bytes {}..{} of `{}` failed {failures} times in a row ({retries} retries): {cause}",
                    self.source.describe, fetch.from, fetch.to, self.object.key
                )));
            }
            tracing::warn!(object = %self.object.key, from = fetch.from, to = fetch.to, "retrying a ranged read: {cause}");
            tokio::time::sleep(resume_backoff(failures)).await;
        }
    }

    async fn get(&self, fetch: &Fetch, stall: Duration) -> Result<Vec<u8>, String> {
        let mut request = self.source.client.get_object().bucket(&self.source.bucket).key(&self.object.key);
        if !self.object.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", self.object.etag));
        }
        let request = request.range(format!("bytes={}-{}", fetch.from, fetch.to - 1));
        let response = request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?;
        let mut body = response.body;
        let mut bytes = Vec::with_capacity((fetch.to - fetch.from) as usize);
        loop {
            match tokio::time::timeout(stall, body.next()).await {
                Ok(Some(Ok(chunk))) => bytes.extend_from_slice(&chunk),
                Ok(None) => return Ok(bytes),
                Ok(Some(Err(error))) => return Err(DisplayErrorContext(&error).to_string()),
                Err(_) => {
                    return Err(format!(
                        "no byte came for {} (the source's stall_timeout)",
                        humantime::format_duration(stall)
                    ));
                }
            }
        }
    }
}

impl RangeRead for S3Ranges {
    fn size(&self) -> u64 {
        self.object.size
    }

    fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        if let Some(bytes) = self.window.serve(offset, len) {
            return Ok(bytes);
        }
        let plan = self.window.plan(offset, len, self.object.size);
        let fetched = self.runtime.block_on(self.fetch(&plan))?;
        self.window.fill(&plan, fetched, offset, len)
    }
}

/// The client and settings a download resumes with.
struct S3Handle {
    client: Client,
    bucket: String,
    /// The source, for messages.
    describe: String,
    resume: Resume,
}

/// One object's download, resumed from the byte it broke at while resumptions last.
struct Download {
    source: S3Handle,
    object: ObjectMeta,
    /// The body being read; none after it broke, until it is opened again.
    body: Option<ByteStream>,
    /// Bytes handed on so far.
    delivered: u64,
    /// Breaks in a row, without a byte between them.
    failures: u32,
    /// Set once an error is handed on: the stream ends there.
    done: bool,
}

impl Download {
    /// The next chunk of the object, resuming a body that broke or stalled; an error, naming the bytes
    /// received, the stall timeout and the cause, once the resumptions are spent.
    async fn next_chunk(mut self) -> Option<(std::io::Result<Bytes>, Download)> {
        if self.done {
            return None;
        }
        let Resume { retries, stall } = self.source.resume;
        loop {
            let cause = match self.body.as_mut() {
                Some(body) => match tokio::time::timeout(stall, body.next()).await {
                    Ok(Some(Ok(bytes))) => {
                        if !bytes.is_empty() {
                            self.delivered += bytes.len() as u64;
                            self.failures = 0;
                        }
                        return Some((Ok(bytes), self));
                    }
                    Ok(None) if self.delivered >= self.object.size => return None,
                    Ok(None) => {
                        format!("the body ended early, at byte {} of {}", self.delivered, self.object.size)
                    }
                    Ok(Some(Err(error))) => DisplayErrorContext(&error).to_string(),
                    Err(_) => format!(
                        "no byte came for {} (the source's stall_timeout)",
                        humantime::format_duration(stall)
                    ),
                },
                None => {
                    match get_from(&self.source.client, &self.source.bucket, &self.object, self.delivered)
                        .await
                    {
                        Ok(body) => {
                            self.body = Some(body);
                            continue;
                        }
                        Err(error) => format!("resuming failed: {}", DisplayErrorContext(&error)),
                    }
                }
            };
            self.body = None;
            self.failures += 1;
            if self.failures > retries {
                self.done = true;
                let error = std::io::Error::other(format!(
                    "{}: the download of `{}` broke at byte {} of {}, {} times in a row ({retries} resumptions): {cause}",
                    self.source.describe, self.object.key, self.delivered, self.object.size, self.failures
                ));
                return Some((Err(error), self));
            }
            tracing::warn!(object = %self.object.key, bytes = self.delivered, "resuming a download that broke: {cause}");
            tokio::time::sleep(resume_backoff(self.failures)).await;
        }
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
