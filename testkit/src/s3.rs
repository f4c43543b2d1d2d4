//! A real S3 protocol server for tests: s3s parses and answers the wire protocol (SigV4 checked against
//! one static key pair), and a small store keeps objects as files with the ETag and LastModified a test
//! chooses, so a test can put an object "uploaded 100 days ago" without a clock of its own. Started with a
//! [`Role`], it also answers STS AssumeRole (see [`crate::sts`]).
//!
//! Writers (the Delta sink) get what S3 gives them: PutObject, with `If-None-Match: *` refused with 412
//! where the key exists (S3's conditional write, which keeps two writers of a Delta log apart); multipart
//! uploads, whose completion takes the same condition; CopyObject within the server; HeadObject;
//! DeleteObject(s); and listings by delimiter.

use crate::sts::{AssumeRole, Keys, OnlyTheRole, ROLE_ACCESS_KEY, ROLE_SECRET_KEY, Role};
use async_trait::async_trait;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use md5::{Digest, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CommonPrefix, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag, ETagCondition, GetObjectInput,
    GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListObjectsV2Input, ListObjectsV2Output, Object, PutObjectInput, PutObjectOutput, StreamingBlob,
    Timestamp, UploadPartInput, UploadPartOutput,
};
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// The key pair the server accepts.
pub const ACCESS_KEY: &str = "AKIASLUICETEST";
pub const SECRET_KEY: &str = "sluice-test-secret-key";
/// The region the server claims; any works with path-style requests.
pub const REGION: &str = "us-east-1";

/// The most keys one ListObjectsV2 page holds, as on S3.
const PAGE_LIMIT: usize = 1000;

#[derive(Clone, Debug)]
struct StoredObject {
    etag: String,
    size: u64,
    last_modified: SystemTime,
    file: PathBuf,
}

struct Store {
    buckets: Mutex<BTreeMap<String, BTreeMap<String, StoredObject>>>,
    /// Where objects' bytes are kept, a file each.
    files: tempfile::TempDir,
    next_file: AtomicUsize,
    /// Multipart uploads in progress: their parts by number.
    uploads: Mutex<HashMap<String, BTreeMap<i32, bytes::Bytes>>>,
    /// Delta commits (PUTs of `_delta_log/N.json`) refused for `If-None-Match: *`.
    refused_commits: AtomicUsize,
    /// Conditional PUTs of Delta commits that another writer beats to their version, still to come.
    beaten_commits: AtomicUsize,
    /// Whether `If-None-Match: *` is ignored, as by a store without conditional writes.
    ignores_conditions: std::sync::atomic::AtomicBool,
    gets: AtomicUsize,
    /// Bytes of GetObject bodies answered (the ranges' lengths, not the objects').
    bytes_served: AtomicU64,
    lists: AtomicUsize,
    /// Milliseconds each GetObject waits before answering: a slow store, to widen a test's window.
    get_delay_ms: AtomicU64,
    /// Faults the next GetObject bodies meet, one each.
    body_faults: Mutex<VecDeque<BodyFault>>,
    /// The `Range` of each GetObject, as asked (`None`: the whole object).
    ranges: Mutex<Vec<Option<String>>>,
    assume_role_calls: Arc<AtomicUsize>,
    /// Where each bucket's `ObjectCreated` events go, in order (see [`S3Server::notify_queue`]).
    notify: Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<String>>>,
}

/// What goes wrong with a GetObject's body, as with a connection that breaks or a store that stops
/// sending part-way.
#[derive(Clone, Copy, Debug)]
pub enum BodyFault {
    /// The connection breaks after this many bytes of the body.
    CutAfter(u64),
    /// After this many bytes, nothing comes for this long.
    StallAfter(u64, std::time::Duration),
}

/// An S3 server on 127.0.0.1 with its own runtime; it stops when dropped.
pub struct S3Server {
    endpoint: String,
    store: Arc<Store>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    /// Starts a server on a free port of 127.0.0.1 that takes [`ACCESS_KEY`] and [`SECRET_KEY`].
    pub fn start() -> S3Server {
        Self::start_with(None)
    }

    /// Starts a server whose buckets only `role` may read: [`ACCESS_KEY`] may only assume it (with the
    /// role's external ID), through STS at the same endpoint.
    pub fn start_with_role(role: Role) -> S3Server {
        Self::start_with(Some(role))
    }

    fn start_with(role: Option<Role>) -> S3Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-test-server")
            .enable_all()
            .build()
            .expect("a runtime for the S3 test server");
        let store = Arc::new(Store {
            buckets: Mutex::default(),
            files: tempfile::tempdir().expect("a folder for the test objects"),
            next_file: AtomicUsize::new(0),
            uploads: Mutex::default(),
            refused_commits: AtomicUsize::new(0),
            beaten_commits: AtomicUsize::new(0),
            ignores_conditions: Default::default(),
            gets: AtomicUsize::new(0),
            bytes_served: AtomicU64::new(0),
            lists: AtomicUsize::new(0),
            get_delay_ms: Default::default(),
            body_faults: Mutex::default(),
            ranges: Mutex::default(),
            assume_role_calls: Arc::default(),
            notify: Mutex::default(),
        });
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a free port on 127.0.0.1");
        let endpoint = format!("http://{}", listener.local_addr().expect("a bound address"));
        let service = {
            let mut builder = S3ServiceBuilder::new(StoreService(store.clone()));
            let mut keys =
                std::collections::HashMap::from([(ACCESS_KEY.to_string(), SECRET_KEY.to_string())]);
            if let Some(role) = role {
                keys.insert(ROLE_ACCESS_KEY.to_string(), ROLE_SECRET_KEY.to_string());
                builder.set_route(AssumeRole { role, calls: store.assume_role_calls.clone() });
                builder.set_access(OnlyTheRole);
            }
            builder.set_auth(Keys(keys));
            builder.build()
        };
        runtime.spawn(async move {
            let connections = ConnectionBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let connection =
                    connections.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        S3Server { endpoint, store, runtime: Some(runtime) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.store.buckets.lock().unwrap().entry(bucket.to_string()).or_default();
    }

    /// Stores an object as if uploaded at `last_modified`; returns its ETag (the MD5 of its bytes, as S3
    /// gives for a single-part upload).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8], last_modified: SystemTime) -> String {
        let etag = format!("{:x}", Md5::digest(bytes));
        self.store.keep(bucket, key, bytes, etag.clone(), last_modified, false).unwrap_or_else(|e| {
            panic!("cannot store `{key}` in `{bucket}` (create the bucket first): {e:?}")
        });
        etag
    }

    /// The keys in `bucket` that start with `prefix`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let buckets = self.store.buckets.lock().unwrap();
        let objects = buckets.get(bucket).into_iter().flat_map(|objects| objects.keys());
        objects.filter(|key| key.starts_with(prefix)).cloned().collect()
    }

    /// Deletes every key in `bucket` that starts with `prefix`, as a lost or wiped store would have it.
    pub fn delete_prefix(&self, bucket: &str, prefix: &str) {
        for key in self.keys(bucket, prefix) {
            self.store.remove(bucket, &key).expect("the bucket exists");
        }
    }

    /// Makes another writer win the next `count` Delta commits (conditional PUTs of `_delta_log/N.json`):
    /// just before each, a commit of its own (commit info only, no data) lands at that version, so the
    /// PUT is refused with 412, as when two writers race for a version.
    pub fn beat_next_commits(&self, count: usize) {
        self.store.beaten_commits.store(count, Ordering::Relaxed);
    }

    /// Makes the server ignore `If-None-Match: *`, as an S3-compatible store without conditional writes
    /// does: a write over an existing key succeeds.
    pub fn ignore_conditional_writes(&self) {
        self.store.ignores_conditions.store(true, Ordering::Relaxed);
    }

    /// How many Delta commits `If-None-Match: *` refused because their version existed.
    pub fn refused_commits(&self) -> usize {
        self.store.refused_commits.load(Ordering::Relaxed)
    }

    /// Changes an object's LastModified, as a late-finishing upload shows.
    pub fn set_last_modified(&self, bucket: &str, key: &str, last_modified: SystemTime) {
        let mut buckets = self.store.buckets.lock().unwrap();
        buckets.get_mut(bucket).and_then(|b| b.get_mut(key)).expect("the object exists").last_modified =
            last_modified;
    }

    /// Makes the next `count` GetObject bodies meet `fault`.
    pub fn fail_next_bodies(&self, count: usize, fault: BodyFault) {
        self.store.body_faults.lock().unwrap().extend(std::iter::repeat_n(fault, count));
    }

    /// The `Range` header of every GetObject so far (`None`: the whole object), in order.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.store.ranges.lock().unwrap().clone()
    }

    /// Makes every GetObject wait `delay` before answering.
    pub fn set_get_delay(&self, delay: std::time::Duration) {
        self.store.get_delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// How many GetObject requests the server has answered.
    pub fn gets(&self) -> usize {
        self.store.gets.load(Ordering::Relaxed)
    }

    /// How many bytes of objects the server has sent in GetObject bodies.
    pub fn bytes_served(&self) -> u64 {
        self.store.bytes_served.load(Ordering::Relaxed)
    }

    /// How many AssumeRole requests the server has answered.
    pub fn assume_role_calls(&self) -> usize {
        self.store.assume_role_calls.load(Ordering::Relaxed)
    }

    /// How many ListObjectsV2 pages the server has answered.
    pub fn list_pages(&self) -> usize {
        self.store.lists.load(Ordering::Relaxed)
    }

    /// Sends an `ObjectCreated:Put` event to the SQS queue at `queue_url` for every object stored in
    /// `bucket` from now on (by PutObject, a copy, a multipart upload or [`S3Server::put`]), as a bucket's
    /// event notification configuration makes S3 do: shortly after the write, in the order of the writes.
    pub fn notify_queue(&self, bucket: &str, sqs: aws_sdk_sqs::Client, queue_url: &str) {
        let (events, mut to_send) = tokio::sync::mpsc::unbounded_channel::<String>();
        let queue_url = queue_url.to_string();
        self.runtime.as_ref().expect("the server runs").spawn(async move {
            while let Some(event) = to_send.recv().await {
                if let Err(e) = sqs.send_message().queue_url(&queue_url).message_body(event).send().await {
                    eprintln!("the test S3 server could not send an event to {queue_url}: {e:?}");
                }
            }
        });
        self.store.notify.lock().unwrap().insert(bucket.to_string(), events);
    }

    /// Where the server keeps objects (one file each).
    pub fn files(&self) -> &Path {
        self.store.files.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store {
    /// Stores `bytes` as `key`; with `only_new`, only where the key does not exist (`If-None-Match: *`),
    /// checked and stored under one lock, as S3 does.
    fn keep(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        etag: String,
        last_modified: SystemTime,
        only_new: bool,
    ) -> S3Result<String> {
        let file = self.files.path().join(self.next_file.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::write(&file, bytes).map_err(|e| s3_error!(e, InternalError))?;
        let mut buckets = self.buckets.lock().unwrap();
        let objects = buckets.get_mut(bucket).ok_or_else(|| s3_error!(NoSuchBucket))?;
        if only_new && objects.contains_key(key) {
            drop(buckets);
            let _ = std::fs::remove_file(&file);
            if is_delta_commit(key) {
                self.refused_commits.fetch_add(1, Ordering::Relaxed);
            }
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let object = StoredObject { etag: etag.clone(), size: bytes.len() as u64, last_modified, file };
        if let Some(old) = objects.insert(key.to_string(), object) {
            let _ = std::fs::remove_file(old.file);
        }
        if let Some(events) = self.notify.lock().unwrap().get(bucket) {
            let _ = events.send(crate::sqs::object_created(
                bucket,
                key,
                bytes.len() as u64,
                &etag,
                last_modified,
            ));
        }
        Ok(etag)
    }

    fn remove(&self, bucket: &str, key: &str) -> S3Result<()> {
        let mut buckets = self.buckets.lock().unwrap();
        let objects = buckets.get_mut(bucket).ok_or_else(|| s3_error!(NoSuchBucket))?;
        if let Some(old) = objects.remove(key) {
            let _ = std::fs::remove_file(old.file);
        }
        Ok(())
    }
}

/// Reads a request's body whole (test objects are small).
async fn body_bytes(body: Option<StreamingBlob>) -> S3Result<bytes::Bytes> {
    let mut bytes = Vec::new();
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?);
        }
    }
    Ok(bytes.into())
}

/// Whether `key` is a Delta table's commit (`.../_delta_log/00000000000000000003.json`).
fn is_delta_commit(key: &str) -> bool {
    key.rsplit_once("/_delta_log/").is_some_and(|(_, name)| name.ends_with(".json") && !name.contains('/'))
}

/// Takes one from `counter` where it is above zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
}

impl StoreService {
    /// Whether a write asked for `If-None-Match: *` (and the store honours it): to be refused where the
    /// key exists.
    fn only_new(&self, condition: &Option<ETagCondition>) -> bool {
        matches!(condition, Some(ETagCondition::Any)) && !self.0.ignores_conditions.load(Ordering::Relaxed)
    }
}

struct StoreService(Arc<Store>);

impl StoreService {
    /// Runs `f` on a bucket's objects under the store's lock.
    fn with_bucket<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&BTreeMap<String, StoredObject>) -> T,
    ) -> S3Result<T> {
        let buckets = self.0.buckets.lock().unwrap();
        buckets.get(bucket).map(f).ok_or_else(|| s3_error!(NoSuchBucket))
    }
}

#[async_trait]
impl S3 for StoreService {
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.with_bucket(&req.input.bucket, |_| ())?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.0.lists.fetch_add(1, Ordering::Relaxed);
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.continuation_token.clone().or(input.start_after.clone()).unwrap_or_default();
        let limit = input.max_keys.map_or(PAGE_LIMIT, |m| (m.max(0) as usize).min(PAGE_LIMIT));
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let (contents, prefixes, truncated) = self.with_bucket(&input.bucket, |objects| {
            let mut matching =
                objects.range(after.clone()..).filter(|(key, _)| key.starts_with(&prefix) && **key != after);
            // With a delimiter, keys that hold it past the prefix roll up into one common prefix each.
            let mut page = Vec::new();
            let mut prefixes = BTreeSet::new();
            let mut last = None;
            for (key, object) in matching.by_ref() {
                last = Some(key.clone());
                let rolled = delimiter.as_ref().and_then(|d| {
                    key[prefix.len()..]
                        .find(d.as_str())
                        .map(|at| key[..prefix.len() + at + d.len()].to_string())
                });
                match rolled {
                    Some(common) => {
                        prefixes.insert(common);
                    }
                    None => page.push(Object {
                        key: Some(key.clone()),
                        size: Some(object.size as i64),
                        e_tag: Some(ETag::Strong(object.etag.clone())),
                        last_modified: Some(Timestamp::from(object.last_modified)),
                        ..Default::default()
                    }),
                }
                if page.len() + prefixes.len() >= limit {
                    break;
                }
            }
            (page, prefixes, last.filter(|_| matching.next().is_some()))
        })?;
        let output = ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            key_count: Some(contents.len() as i32),
            max_keys: Some(limit as i32),
            is_truncated: Some(truncated.is_some()),
            next_continuation_token: truncated,
            continuation_token: input.continuation_token,
            contents: Some(contents),
            common_prefixes: (!prefixes.is_empty())
                .then(|| prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
            delimiter: input.delimiter,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.0.gets.fetch_add(1, Ordering::Relaxed);
        let delay = self.0.get_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let input = req.input;
        let object = self
            .with_bucket(&input.bucket, |objects| objects.get(&input.key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        if let Some(expected) = input.if_match.as_ref().and_then(|c| c.as_etag())
            && expected.value() != object.etag
        {
            return Err(s3_error!(PreconditionFailed));
        }
        self.0.ranges.lock().unwrap().push(input.range.as_ref().map(|range| format!("{range:?}")));
        let range = match &input.range {
            Some(range) => range.check(object.size).map_err(|_| s3_error!(InvalidRange))?,
            None => 0..object.size,
        };
        let mut file = tokio::fs::File::open(&object.file).await.map_err(|e| s3_error!(e, InternalError))?;
        file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(|e| s3_error!(e, InternalError))?;
        let length = range.end - range.start;
        self.0.bytes_served.fetch_add(length, Ordering::Relaxed);
        let fault = self.0.body_faults.lock().unwrap().pop_front();
        let body = match fault {
            None => StreamingBlob::wrap(ReaderStream::with_capacity(file.take(length), 1 << 20)),
            Some(fault) => {
                // Test objects are small: read whole, then handed over as the fault says.
                let mut bytes = Vec::with_capacity(length as usize);
                file.take(length).read_to_end(&mut bytes).await.map_err(|e| s3_error!(e, InternalError))?;
                faulty_body(bytes, fault)
            }
        };
        let content_range = input
            .range
            .is_some()
            .then(|| format!("bytes {}-{}/{}", range.start, range.end.saturating_sub(1), object.size));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(length as i64),
            content_range,
            e_tag: Some(ETag::Strong(object.etag)),
            last_modified: Some(Timestamp::from(object.last_modified)),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let object = self
            .with_bucket(&input.bucket, |objects| objects.get(&input.key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(object.size as i64),
            e_tag: Some(ETag::Strong(object.etag)),
            last_modified: Some(Timestamp::from(object.last_modified)),
            ..Default::default()
        }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let bytes = body_bytes(input.body).await?;
        let etag = format!("{:x}", Md5::digest(&bytes));
        let only_new = self.only_new(&input.if_none_match);
        if only_new && is_delta_commit(&input.key) && take_one(&self.0.beaten_commits) {
            let theirs = format!(
                r#"{{"commitInfo":{{"timestamp":{},"operation":"WRITE","operationParameters":{{"mode":"Append"}},"isBlindAppend":true,"engineInfo":"another-writer"}}}}"#,
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis()
            );
            let etag = format!("{:x}", Md5::digest(theirs.as_bytes()));
            let _ = self.0.keep(&input.bucket, &input.key, theirs.as_bytes(), etag, SystemTime::now(), true);
        }
        let etag = self.0.keep(&input.bucket, &input.key, &bytes, etag, SystemTime::now(), only_new)?;
        Ok(S3Response::new(PutObjectOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket { bucket, key, .. } = &input.copy_source else {
            return Err(s3_error!(NotImplemented, "only copies from a bucket of this server"));
        };
        let source = self
            .with_bucket(bucket, |objects| objects.get(&**key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        let bytes = tokio::fs::read(&source.file).await.map_err(|e| s3_error!(e, InternalError))?;
        let now = SystemTime::now();
        let etag = self.0.keep(&input.bucket, &input.key, &bytes, source.etag, now, false)?;
        let result = CopyObjectResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(Timestamp::from(now)),
            ..Default::default()
        };
        Ok(S3Response::new(CopyObjectOutput { copy_object_result: Some(result), ..Default::default() }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.0.remove(&req.input.bucket, &req.input.key)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let mut deleted = Vec::new();
        for object in input.delete.objects {
            self.0.remove(&input.bucket, &object.key)?;
            deleted.push(DeletedObject { key: Some(object.key), ..Default::default() });
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), ..Default::default() }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.with_bucket(&input.bucket, |_| ())?;
        let upload_id = format!("upload-{}", self.0.next_file.fetch_add(1, Ordering::Relaxed));
        self.0.uploads.lock().unwrap().insert(upload_id.clone(), BTreeMap::new());
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let bytes = body_bytes(input.body).await?;
        let etag = format!("{:x}", Md5::digest(&bytes));
        let mut uploads = self.0.uploads.lock().unwrap();
        let parts = uploads.get_mut(&input.upload_id).ok_or_else(|| s3_error!(NoSuchUpload))?;
        parts.insert(input.part_number, bytes);
        Ok(S3Response::new(UploadPartOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let parts =
            self.0.uploads.lock().unwrap().remove(&input.upload_id).ok_or_else(|| s3_error!(NoSuchUpload))?;
        let listed = input.multipart_upload.and_then(|upload| upload.parts).unwrap_or_default();
        let mut bytes = Vec::new();
        for part in &listed {
            let number =
                part.part_number.ok_or_else(|| s3_error!(InvalidPart, "a part without its number"))?;
            let part =
                parts.get(&number).ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
            bytes.extend_from_slice(part);
        }
        // A multipart upload's ETag is the MD5 of its parts' MD5s, with the count of parts.
        let mut digests = Md5::new();
        for part in parts.values() {
            digests.update(Md5::digest(part));
        }
        let etag = format!("{:x}-{}", digests.finalize(), listed.len());
        let only_new = self.only_new(&input.if_none_match);
        let etag = self.0.keep(&input.bucket, &input.key, &bytes, etag, SystemTime::now(), only_new)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.0.uploads.lock().unwrap().remove(&req.input.upload_id);
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// `bytes` as a body that meets `fault` part-way.
fn faulty_body(bytes: Vec<u8>, fault: BodyFault) -> StreamingBlob {
    let bytes = bytes::Bytes::from(bytes);
    match fault {
        BodyFault::CutAfter(after) => {
            let head = bytes.slice(..(after as usize).min(bytes.len()));
            // The break comes a moment after the bytes, so that they (and the headers) are sent first, as
            // when a connection fails part-way through a download.
            let cut = futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the test server cut the body"))
            });
            StreamingBlob::wrap(futures::stream::iter([Ok(head)]).chain(cut))
        }
        BodyFault::StallAfter(after, stall) => {
            let split = (after as usize).min(bytes.len());
            let (head, tail) = (bytes.slice(..split), bytes.slice(split..));
            let rest = futures::stream::once(async move {
                tokio::time::sleep(stall).await;
                Ok::<_, std::io::Error>(tail)
            });
            StreamingBlob::wrap(futures::stream::iter([Ok(head)]).chain(rest))
        }
    }
}
