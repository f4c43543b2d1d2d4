//! Where a sink's Delta tables are, and how their files are reached: a folder on this machine, or a
//! bucket's folder on S3 or an S3-compatible store.
//!
//! On S3, delta-rs reaches the bucket through object_store with options Sluice hands it each time it
//! builds a store: the endpoint, region and addressing, and credentials that Sluice resolves itself
//! through the AWS SDK (static keys, the default chain, or an assumed role with its external ID, exactly
//! as the S3 source does), cached until shortly before they expire. The endpoint is always set, so that
//! delta-rs never falls back on a credential chain of its own, and every option is explicit, so that the
//! environment's `AWS_*` variables cannot point the sink elsewhere. Two writers never corrupt the log:
//! each commit is a PUT of the next version's file with `If-None-Match: *`, which S3 refuses (412) where
//! the file exists, and delta-rs then retries on the newer version or reports the conflict.

use crate::aws::S3Access;
use crate::config::DeltaRoot;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::object_store::{
    Error as ObjectStoreError, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use deltalake::writer::RecordBatchWriter;
use deltalake::{DeltaTable, DeltaTableBuilder, Path as StorePath};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use url::Url;

/// Where marker files go in a table's folder: Sluice's own, beside the Delta table's.
pub const MARKERS: &str = "_sluice_markers";

/// Credentials are resolved again this long before they expire.
const CREDENTIAL_MARGIN: Duration = Duration::from_secs(300);

/// The root of a sink's Delta tables.
#[derive(Clone)]
pub struct Location {
    root: Url,
    s3: Option<Arc<S3Store>>,
}

/// A bucket reached with an [`S3Access`].
struct S3Store {
    access: S3Access,
    /// The store's options other than credentials.
    options: HashMap<String, String>,
    credentials: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
}

/// One Delta table's location (or a folder of them).
#[derive(Clone)]
pub struct TableAt {
    pub url: Url,
    s3: Option<Arc<S3Store>>,
}

impl Location {
    /// The location `root` names; on S3, with the SDK's configuration (no request is made yet).
    pub async fn new(root: &DeltaRoot) -> Result<Location, String> {
        match root {
            DeltaRoot::Folder(path) => Ok(Location { root: folder_url(path)?, s3: None }),
            DeltaRoot::S3 { bucket, prefix, access } => {
                let (access, sdk) = access.resolve().await;
                let region = sdk.region().map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
                let endpoint = match &access.endpoint {
                    Some(endpoint) if access.path_style() => endpoint.trim_end_matches('/').to_string(),
                    // Virtual-hosted addressing: the bucket is part of the host.
                    Some(endpoint) => {
                        let mut url = Url::parse(endpoint).map_err(|e| format!("`{endpoint}`: {e}"))?;
                        let host = format!("{bucket}.{}", url.host_str().unwrap_or_default());
                        url.set_host(Some(&host)).map_err(|e| format!("`{endpoint}`: {e}"))?;
                        url.as_str().trim_end_matches('/').to_string()
                    }
                    None if access.path_style() => format!("https://s3.{region}.amazonaws.com"),
                    None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
                };
                let options = HashMap::from([
                    ("aws_allow_http".to_string(), endpoint.starts_with("http://").to_string()),
                    ("aws_endpoint".to_string(), endpoint),
                    ("aws_region".to_string(), region),
                    ("aws_virtual_hosted_style_request".to_string(), (!access.path_style()).to_string()),
                    // Commits are conditional PUTs; nothing copies if-not-exists.
                    ("aws_conditional_put".to_string(), "etag".to_string()),
                ]);
                let root = match prefix.as_str() {
                    "" => format!("s3://{bucket}/"),
                    prefix => format!("s3://{bucket}/{prefix}/"),
                };
                let root = Url::parse(&root).map_err(|e| format!("`{root}` is not a location: {e}"))?;
                let store = S3Store {
                    access,
                    options,
                    credentials: sdk.credentials_provider(),
                    cached: Mutex::new(None),
                };
                Ok(Location { root, s3: Some(Arc::new(store)) })
            }
        }
    }

    /// The folder `path` below the root (`orders/orders`).
    pub fn table(&self, path: &str) -> Result<TableAt, String> {
        let url = self.root.join(&format!("{}/", path.trim_matches('/'))).map_err(|e| e.to_string())?;
        Ok(TableAt { url, s3: self.s3.clone() })
    }

    /// Whether tables can be written under the root (a missing folder is made): a probe object is written
    /// only-if-new twice, and the second write must be refused, as a commit that lost its version to
    /// another writer's is. A store that takes both would let two writers overwrite each other's commits.
    pub async fn check(&self) -> Result<String, String> {
        let root = TableAt { url: self.root.clone(), s3: self.s3.clone() };
        if let Some(folder) = root.folder() {
            std::fs::create_dir_all(&folder)
                .map_err(|e| format!("cannot make `{}`: {e}", folder.display()))?;
        }
        let store = root.store().await?;
        let probe = StorePath::from(format!(".sluice-check-{}", uuid::Uuid::new_v4()));
        let only_new = || PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        store
            .put_opts(&probe, PutPayload::from_static(b""), only_new())
            .await
            .map_err(|e| format!("cannot write in `{root}`: {}", root.explain(&e)))?;
        let second = store.put_opts(&probe, PutPayload::from_static(b""), only_new()).await;
        let _ = store.delete(&probe).await;
        match second {
            Err(ObjectStoreError::AlreadyExists { .. }) => Ok("writable, with conditional writes".into()),
            Ok(_) => Err(format!(
                "`{root}` does not honour conditional writes (If-None-Match: *): two writers could overwrite each other's Delta commits; use a store that does (AWS S3, MinIO, Cloudflare R2, Ceph RGW 18+)"
            )),
            Err(e) => Err(format!("cannot write in `{root}`: {}", root.explain(&e))),
        }
    }
}

impl std::fmt::Display for TableAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.folder() {
            Some(folder) => write!(f, "{}", folder.display()),
            None => f.write_str(self.url.as_str().trim_end_matches('/')),
        }
    }
}

impl TableAt {
    /// The folder on this machine, where the table is in one.
    fn folder(&self) -> Option<PathBuf> {
        (self.url.scheme() == "file").then(|| self.url.to_file_path().ok()).flatten()
    }

    /// The options delta-rs builds the table's store with (none for a folder).
    pub async fn options(&self) -> Result<HashMap<String, String>, String> {
        let Some(s3) = &self.s3 else { return Ok(HashMap::new()) };
        let mut options = s3.options.clone();
        if let Some(credentials) = s3.current().await? {
            options.insert("aws_access_key_id".into(), credentials.access_key_id().to_string());
            options.insert("aws_secret_access_key".into(), credentials.secret_access_key().to_string());
            if let Some(token) = credentials.session_token() {
                options.insert("aws_session_token".into(), token.to_string());
            }
        } else {
            // No credentials anywhere: requests go unsigned, and a bucket that is not public refuses them.
            options.insert("aws_skip_signature".into(), "true".into());
        }
        Ok(options)
    }

    /// The table, not yet read.
    pub async fn builder(&self) -> Result<DeltaTableBuilder, String> {
        let builder = DeltaTableBuilder::from_url(self.url.clone()).map_err(|e| e.to_string())?;
        Ok(builder.with_storage_options(self.options().await?))
    }

    /// The table's files (paths relative to its folder).
    pub async fn store(&self) -> Result<Arc<dyn ObjectStore>, String> {
        let table = self.builder().await?.build().map_err(|e| self.explain(&e))?;
        Ok(table.object_store())
    }

    /// A writer of Parquet files of the table, with `schema`; partitioned by `partition_by`, where it
    /// names columns (each file then holds one partition's rows, in its folder, without those columns).
    pub async fn writer(
        &self,
        schema: SchemaRef,
        partition_by: &[String],
    ) -> Result<RecordBatchWriter, String> {
        let partition_by = (!partition_by.is_empty()).then(|| partition_by.to_vec());
        RecordBatchWriter::try_new(self.url.as_str(), schema, partition_by, Some(self.options().await?))
            .map_err(|e| self.explain(&e))
    }

    /// The Delta table here; `None` where there is none yet.
    pub async fn load(&self) -> Result<Option<DeltaTable>, String> {
        let store = self.store().await?;
        let log = StorePath::from("_delta_log");
        let first = store.list(Some(&log)).next().await.transpose().map_err(|e| self.explain(&e))?;
        if first.is_none() {
            return Ok(None);
        }
        let mut table = self.builder().await?.build().map_err(|e| self.explain(&e))?;
        table
            .load()
            .await
            .map_err(|e| format!("cannot read the Delta table at `{self}`: {}", self.explain(&e)))?;
        Ok(Some(table))
    }

    /// The first file here that is neither a Delta table's nor one Sluice left (the Parquet files of a
    /// first commit that never landed), where there is no Delta table.
    pub async fn foreign_file(&self) -> Result<Option<String>, String> {
        let store = self.store().await?;
        let mut files = store.list(None);
        while let Some(file) = files.next().await {
            let file = file.map_err(|e| self.explain(&e))?;
            let path = file.location.as_ref();
            let own = path.starts_with("_delta_log/")
                || path.starts_with(&format!("{MARKERS}/"))
                || path.contains(".parquet");
            if !own {
                return Ok(Some(path.to_string()));
            }
        }
        Ok(None)
    }

    /// The Delta tables in this folder: its folders that hold a `_delta_log`.
    pub async fn tables(&self) -> Result<Vec<String>, String> {
        let store = self.store().await?;
        let listed = |prefix: Option<StorePath>| {
            let store = store.clone();
            async move {
                let listing =
                    store.list_with_delimiter(prefix.as_ref()).await.map_err(|e| self.explain(&e))?;
                Ok::<_, String>(listing.common_prefixes)
            }
        };
        let mut tables = Vec::new();
        for folder in listed(None).await? {
            let holds_log =
                listed(Some(folder.clone())).await?.iter().any(|p| p.filename() == Some("_delta_log"));
            if holds_log && let Some(name) = folder.filename() {
                tables.push(name.to_string());
            }
        }
        Ok(tables)
    }

    /// Moves the folder `from` here to `to` (nothing where it does not exist): on this machine by renaming
    /// it; on S3 every file copied first and only then the originals deleted, so that a move cut short
    /// loses nothing.
    pub async fn move_folder(&self, from: &str, to: &str) -> Result<(), String> {
        if let Some(folder) = self.folder() {
            let (from, to) = (folder.join(from), folder.join(to));
            return match std::fs::rename(&from, &to) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot move `{}` to `{}`: {e}", from.display(), to.display()))
                }
                _ => Ok(()),
            };
        }
        let store = self.store().await?;
        let failed =
            |e: &dyn std::fmt::Display| format!("cannot move `{self}/{from}` to `{to}`: {}", self.explain(e));
        let files: Vec<StorePath> = store
            .list(Some(&StorePath::from(from)))
            .map_ok(|file| file.location)
            .try_collect()
            .await
            .map_err(|e| failed(&e))?;
        for file in &files {
            let below = file.as_ref().strip_prefix(from).unwrap_or(file.as_ref());
            store.copy(file, &StorePath::from(format!("{to}{below}"))).await.map_err(|e| failed(&e))?;
        }
        for file in &files {
            store.delete(file).await.map_err(|e| failed(&e))?;
        }
        Ok(())
    }

    /// Deletes everything here.
    pub async fn remove_all(&self) -> Result<(), String> {
        if let Some(folder) = self.folder() {
            return match std::fs::remove_dir_all(&folder) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot delete `{}`: {e}", folder.display()))
                }
                _ => Ok(()),
            };
        }
        let store = self.store().await?;
        let locations = store.list(None).map_ok(|file| file.location).boxed();
        store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot delete `{self}`: {}", self.explain(&e)))
    }

    /// What a storage error means, in words that say what to check, with every credential masked (S3
    /// echoes the access key in some errors).
    pub fn explain(&self, error: &dyn std::fmt::Display) -> String {
        let text = error.to_string();
        let Some(s3) = &self.s3 else { return text };
        let text = s3.redact(&text);
        match refusal(&text) {
            Some(Refusal::NoBucket) => format!("the bucket of `{self}` does not exist ({text})"),
            Some(Refusal::Denied) => format!(
                "access denied by {}: check the sink's s3 credentials, or the role and its external ID{} ({text})",
                s3.access.describe_endpoint(),
                s3.access.role_context()
            ),
            None => text,
        }
    }
}

/// Why S3 refused a request, where its error says so.
#[derive(Debug, PartialEq)]
enum Refusal {
    NoBucket,
    Denied,
}

/// The refusal an S3 error's text shows, read from S3's error codes and the HTTP status as object_store
/// prints it. Never from a bare "403": the text also holds the request's duration, and a PUT that took
/// "1.55403ms" to be told the bucket does not exist was not denied.
fn refusal(text: &str) -> Option<Refusal> {
    const DENIED: [&str; 5] =
        ["403 Forbidden", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"];
    if text.contains("NoSuchBucket") {
        Some(Refusal::NoBucket)
    } else if DENIED.iter().any(|code| text.contains(code)) {
        Some(Refusal::Denied)
    } else {
        None
    }
}

impl S3Store {
    /// Credentials good for a while yet: the cached ones, or fresh ones. `None` where the chain has none.
    async fn current(&self) -> Result<Option<Credentials>, String> {
        let Some(provider) = &self.credentials else { return Ok(None) };
        let fresh_enough =
            |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + CREDENTIAL_MARGIN);
        if let Some(cached) = self.cached.lock().unwrap().clone().filter(fresh_enough) {
            return Ok(Some(cached));
        }
        let credentials = provider.provide_credentials().await.map_err(|e| {
            let detail = self.redact(&aws_sdk_s3::error::DisplayErrorContext(&e).to_string());
            format!(
                "cannot get credentials for the Delta tables' bucket{}: {detail}",
                self.access.role_context()
            )
        })?;
        *self.cached.lock().unwrap() = Some(credentials.clone());
        Ok(Some(credentials))
    }

    /// `text` with the configured credentials, and those resolved from them, masked.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        let configured =
            [&self.access.access_key_id, &self.access.secret_access_key, &self.access.session_token];
        for secret in configured.into_iter().flatten() {
            text = secret.redact(&text);
        }
        if let Some(cached) = self.cached.lock().unwrap().as_ref() {
            let resolved =
                [Some(cached.access_key_id()), Some(cached.secret_access_key()), cached.session_token()];
            for value in resolved.into_iter().flatten().filter(|v| v.len() >= 4) {
                text = text.replace(value, "[redacted]");
            }
        }
        text
    }
}

fn folder_url(folder: &std::path::Path) -> Result<Url, String> {
    Url::from_directory_path(folder).map_err(|()| format!("`{}` is not an absolute folder", folder.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_read_from_the_error_code_or_status_not_from_digits_in_the_duration() {
        let put = "Error performing PUT http://127.0.0.1:1/lake/t/x in 1.55403ms - Server returned non-2xx \
                   status code: ";
        let no_bucket = format!("{put}404 Not Found: <Error><Code>NoSuchBucket</Code></Error>");
        assert_eq!(refusal(&no_bucket), Some(Refusal::NoBucket));
        let forbidden = format!("{put}403 Forbidden: <Error><Code>InvalidAccessKeyId</Code></Error>");
        assert_eq!(refusal(&forbidden), Some(Refusal::Denied));
        assert_eq!(refusal(&format!("{put}403 Forbidden: ")), Some(Refusal::Denied));
        assert_eq!(refusal(&format!("{put}500 Internal Server Error: slow down")), None);
    }
}
