//! A sink written in Rust by the program that embeds Sluice ([`RecordSink`]), as the runner drives every
//! sink: objects begun, written, committed or dropped.
//!
//! Such a sink keeps no markers in Sluice's sense, so the state ledger is the record of what it holds:
//! an object is recorded loaded once the sink's [`RecordWriter::commit`] returned. A process killed
//! between the two leaves an object the sink committed but the ledger does not know, and the next run
//! hands it over again; a sink that must see each object once keeps the `(key, etag)` of what it
//! committed and skips it (the object and its run are given to [`RecordSink::begin_object`] for that).

use super::{CommittedObject, ObjectWrite, RolledBack, SinkError, TableSink};
use crate::batch::RecordBatch;
use crate::batch::RejectedRow;
use crate::object::ObjectMeta;
use std::sync::Arc;

/// A sink of records written by the embedding program; registered by name with
/// [`crate::embed::Sluice::register_sink`] and named by a dataflow's `sink = { type = "custom", name }`.
///
/// Objects of one dataflow are handed over one at a time, each through a writer of its own; the sink may
/// be asked for writers of several dataflows at once, so it is `Sync`.
pub trait RecordSink: Send + Sync {
    /// Starts one object of `dataflow`'s run `run_id`. Nothing of it should be visible to the sink's own
    /// readers until [`RecordWriter::commit`]: a writer dropped without a commit (the object failed, or
    /// the run was stopped) must leave nothing behind.
    fn begin_object(
        &self,
        dataflow: &str,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn RecordWriter>, SinkError>;

    /// The run `run_id` of `dataflow` ended, every object committed or given up.
    fn finish_run(&self, _dataflow: &str, _run_id: i64) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The records of one object on their way into a [`RecordSink`].
pub trait RecordWriter: Send {
    /// Takes the next batch, by value, so a sink that keeps or forwards it copies nothing.
    fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError>;
    /// Takes rows the format plugin or the template refused (default: dropped; the run report counts
    /// them).
    fn reject(&mut self, _rejects: &[RejectedRow]) -> Result<(), SinkError> {
        Ok(())
    }
    /// Makes the object's records visible, all together. An error fails the object, which is then
    /// imported again by the next run.
    fn commit(self: Box<Self>) -> Result<(), SinkError>;
}

/// A [`RecordSink`] as a [`TableSink`], for one dataflow.
pub(crate) struct CustomSink {
    sink: Arc<dyn RecordSink>,
    /// The name the sink was registered under, for messages.
    name: String,
    dataflow: String,
    run_id: Option<i64>,
}

impl CustomSink {
    pub(crate) fn new(sink: Arc<dyn RecordSink>, name: &str, dataflow: &str) -> CustomSink {
        CustomSink { sink, name: name.to_string(), dataflow: dataflow.to_string(), run_id: None }
    }

    fn cannot(&self, what: &str) -> SinkError {
        SinkError::table(
            self.name.clone(),
            format!("the custom sink `{}` {what}: it is the embedding program's own", self.name),
        )
    }
}

impl TableSink for CustomSink {
    fn keeps_markers(&self) -> bool {
        false
    }

    fn committed_objects(&mut self) -> Result<Vec<CommittedObject>, SinkError> {
        Ok(Vec::new())
    }

    fn remove(&mut self) -> Result<u64, SinkError> {
        Err(self.cannot("cannot be emptied by Sluice"))
    }

    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError> {
        Err(self.cannot("keeps no versions to roll back"))
    }

    fn newest_run(&mut self) -> Result<Option<i64>, SinkError> {
        Ok(None)
    }

    fn finish_run(&mut self) -> Result<(), SinkError> {
        match self.run_id {
            Some(run_id) => self.sink.finish_run(&self.dataflow, run_id),
            None => Ok(()),
        }
    }

    fn pairs(&mut self, _key: &str, _value: &str) -> Result<Vec<(String, String)>, SinkError> {
        Ok(Vec::new())
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        self.run_id = Some(run_id);
        let writer = self.sink.begin_object(&self.dataflow, object, run_id)?;
        Ok(Box::new(CustomObject { writer, object: object.clone(), run_id, rows: 0, rejected: 0 }))
    }
}

/// One object on its way into a custom sink, counted as it goes.
struct CustomObject {
    writer: Box<dyn RecordWriter>,
    object: ObjectMeta,
    run_id: i64,
    rows: u64,
    rejected: u64,
}

impl ObjectWrite for CustomObject {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.write_owned(batch.clone())
    }

    fn write_owned(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        let rows = batch.num_rows() as u64;
        self.writer.write(batch)?;
        self.rows += rows;
        Ok(())
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        if rejects.is_empty() {
            return Ok(());
        }
        self.writer.reject(rejects)?;
        self.rejected += rejects.len() as u64;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<CommittedObject, SinkError> {
        let CustomObject { writer, object, run_id, rows, rejected } = *self;
        writer.commit()?;
        Ok(CommittedObject::of(&object, rows, rejected, run_id))
    }
}
