//! `type = "local"`: a folder whose files stand in for a bucket. Keys are paths below the folder with `/`;
//! LastModified is the file's mtime; the ETag is made of mtime and size, so touching a file imports it
//! again, as re-uploading an object would.

use super::{FileRanges, ObjectMeta, ObjectReader, Source, SourceError};
use crate::plugin::RangeRead;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A local folder whose files stand in for a bucket's objects.
pub struct LocalSource {
    root: PathBuf,
    prefix: String,
}

impl LocalSource {
    /// The files below `root` whose keys (paths below `root`, with `/`) start with `prefix`.
    pub fn new(root: PathBuf, prefix: String) -> LocalSource {
        LocalSource { root, prefix }
    }

    fn error(&self, message: String) -> SourceError {
        SourceError::List { source_name: self.describe(), message }
    }
}

#[async_trait]
impl Source for LocalSource {
    fn describe(&self) -> String {
        format!("local:{}", self.root.join(&self.prefix).display())
    }

    async fn list(&self) -> Result<Vec<ObjectMeta>, SourceError> {
        let root = self.root.clone();
        let prefix = self.prefix.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let mut objects = Vec::new();
            walk(&root, &root, &prefix, &mut objects).map(|()| objects)
        })
        .await
        .map_err(|e| self.error(e.to_string()))?;
        let mut objects = listed.map_err(|e| self.error(e.to_string()))?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn open(&self, object: &ObjectMeta) -> Result<ObjectReader, SourceError> {
        let path = self.root.join(&object.key);
        let file = tokio::fs::File::open(&path).await.map_err(|e| SourceError::Open {
            source_name: self.describe(),
            key: object.key.clone(),
            message: e.to_string(),
        })?;
        Ok(Box::new(file))
    }

    async fn open_ranged(&self, object: &ObjectMeta) -> Result<Box<dyn RangeRead>, SourceError> {
        let path = self.root.join(&object.key);
        let opened = std::fs::File::open(&path).and_then(FileRanges::new);
        let file = opened.map_err(|e| SourceError::Open {
            source_name: self.describe(),
            key: object.key.clone(),
            message: e.to_string(),
        })?;
        Ok(Box::new(file))
    }
}

/// Lists the files below `dir` whose keys start with `prefix`; hidden files and folders are skipped.
fn walk(root: &Path, dir: &Path, prefix: &str, objects: &mut Vec<ObjectMeta>) -> std::io::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read folder {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let metadata = std::fs::metadata(&path)?;
        let relative = path.strip_prefix(root).expect("walked below the root");
        let key =
            relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        if metadata.is_dir() {
            // A folder is walked when a key below it can still match the prefix.
            let folder = format!("{key}/");
            if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                walk(root, &path, prefix, objects)?;
            }
        } else if metadata.is_file() && key.starts_with(prefix) {
            let last_modified = metadata.modified()?;
            let nanos = last_modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            objects.push(ObjectMeta {
                key,
                size: metadata.len(),
                etag: format!("{nanos:x}-{:x}", metadata.len()),
                last_modified: last_modified.max(UNIX_EPOCH),
            });
        }
    }
    Ok(())
}
