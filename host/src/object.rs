//! An object of a source (a file in a folder, an object in a bucket) as every part of a run names it:
//! listed by a source, planned by the runner, stamped on rows by a sink, remembered in the state's ledger.

use std::time::SystemTime;

/// One object of a source, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key: a path below the bucket or folder, with `/`.
    pub key: String,
    /// Its size in bytes, as stored (compressed, where it is).
    pub size: u64,
    /// Changes whenever the object's content is replaced (S3's ETag; for a local file, its mtime and size).
    pub etag: String,
    /// When the object was last written (S3: when its upload began).
    pub last_modified: SystemTime,
}
