//! Sources: where a dataflow's objects come from. Each sits behind [`Source`]: list the objects, open one
//! as a byte stream. The runner knows nothing else about them.

pub mod archive;
mod decompress;
mod local;
mod notifications;
mod ranged;
mod read_ahead;
mod s3;

pub use decompress::{by_extension, decompressing, refuse_compressed};
pub use local::LocalSource;
pub use notifications::{Delivery, KeepVisible, Message, Notifications, Received, read_message};
pub use ranged::{FileRanges, spooled};
pub use read_ahead::ReadAhead;
pub use s3::S3Source;
// Objects are named as the ground floor names them; sources list them.
pub use crate::object::ObjectMeta;

use crate::config::{Config, DataflowConfig, SourceConfig};
use crate::plugin::RangeRead;
use async_trait::async_trait;
use tokio::io::AsyncRead;

/// A source that holds more objects than this gets a warning: every run lists them all.
pub const MANY_OBJECTS: usize = 1000;

/// An object's bytes, as they arrive.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// A place objects are read from.
#[async_trait]
pub trait Source: Send + Sync {
    /// Where the source reads, for messages: `s3://bucket/prefix`, `local:/data/orders`.
    fn describe(&self) -> String;
    /// Every object of the source (below its prefix).
    async fn list(&self) -> Result<Vec<ObjectMeta>, SourceError>;
    /// The first objects of a listing, at most `limit`: proof the source can be reached and listed, at the
    /// cost of one request (`sluice check`).
    async fn list_page(&self, limit: usize) -> Result<Vec<ObjectMeta>, SourceError> {
        let mut objects = self.list().await?;
        objects.truncate(limit);
        Ok(objects)
    }
    /// Opens an object to be read from its start. Where the source can tell, an object that changed since
    /// it was listed is refused rather than read as another version.
    async fn open(&self, object: &ObjectMeta) -> Result<ObjectReader, SourceError>;
    /// Opens an object to be read by ranges, for a format plugin that reads that way (Parquet). A
    /// source that can only stream its objects gets this default: a copy in a temporary file.
    async fn open_ranged(&self, object: &ObjectMeta) -> Result<Box<dyn RangeRead>, SourceError> {
        Ok(Box::new(spooled(self, object).await?))
    }
    /// Whether `object` is still there as that version: false once it was deleted or replaced. Asked of an
    /// object an event named that did not load, to tell a message worth trying again from one about a
    /// version that is gone. A source that cannot tell says it is.
    async fn still_there(&self, _object: &ObjectMeta) -> Result<bool, SourceError> {
        Ok(true)
    }
}

/// Why a source could not list or open.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Listing failed.
    #[error("listing {source_name} failed: {message}")]
    List {
        /// The source, as [`Source::describe`] tells it.
        source_name: String,
        /// Why.
        message: String,
    },
    /// An object could not be opened (or it changed since it was listed).
    #[error("opening `{key}` of {source_name} failed: {message}")]
    Open {
        /// The source, as [`Source::describe`] tells it.
        source_name: String,
        /// The object's key.
        key: String,
        /// Why.
        message: String,
    },
    /// The bucket's notification queue could not be read or written.
    #[error("notification queue {queue}: {message}")]
    Queue {
        /// The queue's URL.
        queue: String,
        /// Why.
        message: String,
    },
    /// The source could not be made (credentials, a role, a name nobody registered).
    #[error("{source_name}: {message}")]
    Setup {
        /// The source.
        source_name: String,
        /// Why.
        message: String,
    },
}

/// Builds the file source a dataflow names (a Stripe source is read by `sync::stripe`, not as files).
pub async fn build(config: &Config, dataflow: &DataflowConfig) -> Result<Box<dyn Source>, SourceError> {
    Ok(match &dataflow.source {
        SourceConfig::Local(local) => {
            Box::new(LocalSource::new(config.resolve(&local.path), local.prefix.clone().unwrap_or_default()))
        }
        SourceConfig::S3(s3) => Box::new(S3Source::connect(s3).await?),
        SourceConfig::Stripe(_) => {
            return Err(SourceError::Setup {
                source_name: "Stripe".into(),
                message: "Stripe's API holds records, not files".into(),
            });
        }
        SourceConfig::Custom(custom) => {
            return Err(SourceError::Setup {
                source_name: format!("custom source `{}`", custom.name),
                message: "a custom source is registered by the program that embeds Sluice (`Sluice::register_source`), and the `sluice` binary registers none".into(),
            });
        }
    })
}
