//! Trying rejected rows again (`sluice run DATAFLOW --replay-rejects`). Once a template, a mapping or
//! something in Stripe is fixed, the rows the template or the sink refused are sent on again from their
//! raw text, which holds them as JSON, without reading their files again: a template's rejects go through
//! the template as it is now, a sink's go to the sink as they were. A row that goes through leaves the
//! rejects and lands with its object and line as lineage; a row refused again stays rejected, under the
//! replay's run, with the reason of now. A rollback of the replay undoes both.
//!
//! A row the format plugin refused is left: its raw text is the file's own, and only a new read of the
//! file parses it.

use super::load::ObjectReport;
use super::runner::RunReport;
use super::stores::{DataflowStores, refuse_custom_sink, state_error};
use super::{Progress, Runner, SyncError};
use crate::batch::RejectStage;
use crate::config::{DataflowConfig, SinkKind, SinkUrl, SourceConfig};
use crate::object::ObjectMeta;
use crate::plugin::{TemplatePlugin, Templated};
use crate::sink::{StoredReject, TableSink, stored_rejects};
use crate::state::{ObjectStatus, RunStatus};
use crate::stripe::json_rows_batch;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

/// How a replay of rejected rows ended.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// The replay's run: an object per object whose rows were tried again, its rows those that went
    /// through, its rejected those refused again.
    pub run: RunReport,
    /// Rows tried again.
    pub retried: u64,
    /// Rejected rows left as they are, each with why it cannot be tried again from its raw text.
    pub left: Vec<(StoredReject, &'static str)>,
}

/// Why `reject` cannot be tried again from its raw text, where it cannot; else the record it holds.
fn record_of(reject: &StoredReject) -> Result<Json, &'static str> {
    match reject.stage {
        Some(RejectStage::Template | RejectStage::Sink) => {}
        Some(RejectStage::Parse) => {
            return Err(
                "the format plugin refused it: its raw text is the file's, which only a new read of the file parses",
            );
        }
        None => {
            return Err(
                "the sink does not keep which step refused it (a Delta table, or a row rejected by an earlier version of Sluice)",
            );
        }
    }
    match serde_json::from_str::<Json>(&reject.raw) {
        Ok(record @ Json::Object(_)) => Ok(record),
        _ => Err("its raw text is not a whole record (it was cut at 1 KiB)"),
    }
}

impl Runner<'_> {
    /// Tries the rejected rows of the dataflow `name` again, as a run of its own (see the module's doc).
    pub fn replay_rejects(&self, name: &str, progress: &dyn Progress) -> Result<ReplayReport, SyncError> {
        let started = Instant::now();
        let dataflow = self.config().dataflow(name)?;
        if let SourceConfig::Stripe(_) = dataflow.source {
            return Err(SyncError::Plan(format!(
                "dataflow `{name}` reads Stripe objects into tables: it has no template or Stripe rejects to replay"
            )));
        }
        refuse_custom_sink(name, dataflow, "replay rejected rows into")?;
        let delta_tables = matches!(self.config().sink_database(dataflow), SinkUrl::Delta(_))
            && dataflow.sink.kind != SinkKind::Stripe;
        if delta_tables {
            return Err(SyncError::Plan(format!(
                "dataflow `{name}` writes Delta tables, which do not keep the step that refused each row yet: its rejected rows cannot be replayed (import their files again)"
            )));
        }
        let template = self.load_template(name, dataflow)?;
        let mut stores = DataflowStores::open(self.config(), name, dataflow, self.registry())?;
        let state = &mut stores.state;
        let run = RunReport::begin(state, name, dataflow).map_err(state_error(name))?;
        let mut replay = ReplayReport { run, retried: 0, left: Vec::new() };
        let sink = stores.sink.as_mut();
        let outcome = self.replay(name, dataflow, template.as_ref(), sink, &mut replay, progress);
        replay.run.end(state, outcome, started);
        Ok(replay)
    }

    /// The replay's work after its run is recorded as started; an error here fails the run.
    fn replay(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
        template: Option<&TemplatePlugin>,
        sink: &mut dyn TableSink,
        replay: &mut ReplayReport,
        progress: &dyn Progress,
    ) -> Result<(), String> {
        let url = self.config().sink_database(dataflow);
        let mut by_object: BTreeMap<(String, String), Vec<(StoredReject, Json)>> = BTreeMap::new();
        for (scope, table) in self.config().dataflow_tables(name, dataflow) {
            let rejects = stored_rejects(&url, &scope, &table, None)
                .map_err(|e| format!("dataflow `{name}`, table `{table}`: {e}"))?;
            for reject in rejects {
                match record_of(&reject) {
                    Ok(record) => by_object
                        .entry((reject.object.clone(), reject.etag.clone()))
                        .or_default()
                        .push((reject, record)),
                    Err(why) => replay.left.push((reject, why)),
                }
            }
        }
        let run_id = replay.run.run_id;
        let objects = by_object.len();
        for (done, ((key, etag), rejects)) in by_object.into_iter().enumerate() {
            if self.stop().draining() {
                replay.run.interrupted(objects - done, "objects");
                break;
            }
            // The object as its rows were loaded: only its key and version name what is replayed.
            let object = ObjectMeta { key, etag, size: 0, last_modified: SystemTime::UNIX_EPOCH };
            progress.object_started(&object);
            let started = Instant::now();
            replay.retried += rejects.len() as u64;
            let outcome = replay_object(name, dataflow, template, sink, &object, run_id, rejects);
            let report = match outcome {
                Ok((rows, rejected)) => ObjectReport {
                    key: object.key.clone(),
                    status: ObjectStatus::Loaded,
                    rows,
                    rejected,
                    bytes: 0,
                    error: None,
                    elapsed: started.elapsed(),
                },
                Err(error) => ObjectReport {
                    key: object.key.clone(),
                    status: ObjectStatus::Failed,
                    rows: 0,
                    rejected: 0,
                    bytes: 0,
                    error: Some(format!("dataflow `{name}`, object `{}`: {error}", object.key)),
                    elapsed: started.elapsed(),
                },
            };
            progress.object_finished(&object, &report);
            let counts = &mut replay.run.counts;
            counts.objects += 1;
            counts.rows += report.rows;
            counts.rejected += report.rejected;
            counts.failed_objects += u64::from(report.status != ObjectStatus::Loaded);
            replay.run.objects.push(report);
        }
        sink.finish_run().map_err(|e| e.to_string())?;
        if replay.run.status == RunStatus::Running {
            replay.run.conclude("objects");
        }
        Ok(())
    }
}

/// Tries `object`'s rejected `rows` again in one transaction of `sink`; the rows that went through and
/// those rejected again.
fn replay_object(
    name: &str,
    dataflow: &DataflowConfig,
    template: Option<&TemplatePlugin>,
    sink: &mut dyn TableSink,
    object: &ObjectMeta,
    run_id: i64,
    rows: Vec<(StoredReject, Json)>,
) -> Result<(u64, u64), String> {
    let retried: Vec<StoredReject> = rows.iter().map(|(reject, _)| reject.clone()).collect();
    let (mut templated, mut written) = (Vec::new(), Vec::new());
    for (reject, record) in rows {
        match reject.stage {
            Some(RejectStage::Template) => templated.push((reject.line, record)),
            _ => written.push((reject.line, record)),
        }
    }
    let mut writer = sink.begin_replay(object, run_id, &retried).map_err(|e| e.to_string())?;
    if !templated.is_empty() {
        let records = json_rows_batch(&templated);
        // A dataflow whose template was taken away writes its records as they are.
        let Templated { records, rejects } = match template {
            Some(template) => {
                let options = dataflow.template.as_ref().map(|t| t.option_pairs()).unwrap_or_default();
                let mut mapping = template.open(&object.key, &options).map_err(|e| e.to_string())?;
                mapping.apply(&records).map_err(|e| e.to_string())?
            }
            None => Templated { records, rejects: Vec::new() },
        };
        writer.write_owned(records).and_then(|()| writer.reject(&rejects)).map_err(|e| e.to_string())?;
    }
    if !written.is_empty() {
        writer.write_owned(json_rows_batch(&written)).map_err(|e| e.to_string())?;
    }
    let committed = writer.commit().map_err(|e| e.to_string())?;
    tracing::info!(dataflow = name, object = object.key, rows = committed.rows, "replayed rejected rows");
    Ok((committed.rows, committed.rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(stage: Option<RejectStage>, raw: &str) -> StoredReject {
        StoredReject {
            run_id: 1,
            object: "a.csv".into(),
            etag: "e".into(),
            line: 3,
            reason: "why".into(),
            raw: raw.into(),
            stage,
        }
    }

    #[test]
    fn only_template_and_sink_rejects_holding_a_whole_record_are_tried_again() {
        let record = r#"{"name":"Mug","price":"12"}"#;
        assert!(record_of(&reject(Some(RejectStage::Template), record)).is_ok());
        assert!(record_of(&reject(Some(RejectStage::Sink), record)).is_ok());
        let parse = record_of(&reject(Some(RejectStage::Parse), record)).unwrap_err();
        assert!(parse.contains("format plugin"), "{parse}");
        let unknown = record_of(&reject(None, record)).unwrap_err();
        assert!(unknown.contains("does not keep"), "{unknown}");
        let cut = record_of(&reject(Some(RejectStage::Template), r#"{"name":"Mu"#)).unwrap_err();
        assert!(cut.contains("cut at 1 KiB"), "{cut}");
        assert!(record_of(&reject(Some(RejectStage::Sink), "[1, 2]")).is_err());
    }
}
