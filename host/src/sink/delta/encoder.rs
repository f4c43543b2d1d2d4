//! A group's Parquet encoding, on a thread of its own: the runner's thread converts each batch to Arrow and
//! hands it over, and goes back for the next while this one encodes. Parsing (the plugin's thread) and
//! encoding then use both cores, also across an object's end, where the next object's first chunk is
//! parsed while the last one's rows are still being encoded.
//!
//! The thread owns its writer and a runtime of its own, so the writer's object store, its connections
//! and the uploads it starts in the background all live on the thread that drives them.

use super::convert::{self, TableColumn};
use super::location::TableAt;
use deltalake::arrow::array::RecordBatch as ArrowBatch;
use deltalake::kernel::Add;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode as SchemaMode};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Batches the runner may hand over ahead of the encoding: enough to cover an object's end, few enough
/// that what waits stays a few MB.
const BATCHES_AHEAD: usize = 4;

const STOPPED: &str = "the Delta encoder stopped";

/// What the encoder writes, and where.
pub(super) struct EncoderSpec {
    /// The table, and the options its store is built with.
    pub at: TableAt,
    pub options: HashMap<String, String>,
    pub columns: Vec<TableColumn>,
    pub partition_by: Vec<String>,
    pub props: WriterProperties,
    pub file_size: u64,
}

/// The encoding thread of a group's files.
pub(super) struct Encoder {
    batches: Option<SyncSender<ArrowBatch>>,
    thread: Option<JoinHandle<Result<Vec<Add>, String>>>,
    /// The columns its files have.
    columns: Vec<TableColumn>,
    /// Why the encoding failed, once it did: every later call says so.
    failed: Option<String>,
    /// Set when the group is given up: the thread then writes no files of what it holds.
    abandoned: Arc<AtomicBool>,
}

impl Encoder {
    /// Starts encoding files of `spec`'s table.
    pub fn start(spec: EncoderSpec) -> Result<Encoder, String> {
        let (batches, received) = sync_channel::<ArrowBatch>(BATCHES_AHEAD);
        let columns = spec.columns.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let given_up = abandoned.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-delta-encoder".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the Delta encoder's I/O: {e}"))?;
                runtime.block_on(async {
                    let partition_by = (!spec.partition_by.is_empty()).then(|| spec.partition_by.clone());
                    let schema = convert::arrow_schema(&spec.columns);
                    let at = &spec.at;
                    let mut writer =
                        RecordBatchWriter::try_new(at.url.as_str(), schema, partition_by, Some(spec.options))
                            .map_err(|e| at.explain(&e))?
                            .with_writer_properties(spec.props)
                            .with_target_file_size(spec.file_size);
                    // delta-rs merges a new column into an unpartitioned writer's schema; a partitioned
                    // writer's schema is fixed (the group starts a new encoder for new columns).
                    let mode = if spec.partition_by.is_empty() {
                        SchemaMode::MergeSchema
                    } else {
                        SchemaMode::Default
                    };
                    // The sender gone is the group's seal: what was written becomes files, unless the
                    // group was given up (the writer dropped unflushed leaves nothing).
                    while let Ok(batch) = received.recv() {
                        writer.write_with_mode(batch, mode).await.map_err(|e| at.explain(&e))?;
                    }
                    if given_up.load(Ordering::Relaxed) {
                        return Ok(Vec::new());
                    }
                    writer.flush().await.map_err(|e| at.explain(&e))
                })
            })
            .map_err(|e| format!("cannot start the Delta encoder: {e}"))?;
        Ok(Encoder { batches: Some(batches), thread: Some(thread), columns, failed: None, abandoned })
    }

    /// The columns the encoder's files have.
    pub fn columns(&self) -> &[TableColumn] {
        &self.columns
    }

    /// Hands `batch` over; an error where the encoding failed (its own error).
    pub fn write(&mut self, batch: ArrowBatch) -> Result<(), String> {
        let sent = self.batches.as_ref().map(|batches| batches.send(batch).is_ok());
        match sent {
            Some(true) => Ok(()),
            // The thread ended early: it failed, and says why when it is joined.
            _ => Err(self.join().err().unwrap_or_else(|| STOPPED.to_string())),
        }
    }

    /// Waits for every batch handed over to be written, and returns the files.
    pub fn finish(mut self) -> Result<Vec<Add>, String> {
        self.join()
    }

    fn join(&mut self) -> Result<Vec<Add>, String> {
        self.batches = None;
        let Some(thread) = self.thread.take() else {
            return Err(self.failed.clone().unwrap_or_else(|| STOPPED.to_string()));
        };
        let joined = thread.join().unwrap_or_else(|_| Err("the Delta encoder panicked".to_string()));
        if let Err(error) = &joined {
            self.failed = Some(error.clone());
        }
        joined
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // A group given up: the thread ends with its channel, and writes no files.
        self.abandoned.store(true, Ordering::Relaxed);
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
