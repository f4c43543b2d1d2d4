//! `sluice preview`: what the next run would import and its first records, with nothing written: the
//! state store is only read (and not created), the sink not opened.

use super::SyncError;
use super::member_format::MemberFormats;
use super::object_input::{OpenFailure, open_input};
use super::plan::Plan;
use super::runner::Runner;
use crate::batch::RejectedRow;
use crate::config::{DataflowConfig, SinkKind};
use crate::object::ObjectMeta;
use crate::parse::ParseError;
use crate::plugin::{FormatPlugin, Parsed, TemplatePlugin};
use crate::sink::{StripeTarget, rejected_row};
use crate::source::Source;
use crate::state::StateStore;
use std::io;

/// The first records of one object.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The object's key.
    pub key: String,
    /// Each record as one line of JSON.
    pub records: Vec<String>,
    /// Rows refused among the first ones read.
    pub rejects: Vec<RejectedRow>,
    /// Why the object could not be read, where it could not.
    pub error: Option<String>,
}

/// A preview of a dataflow's next run.
#[derive(Clone, Debug)]
pub struct Preview {
    /// What the next run would do with each object listed.
    pub plan: Plan,
    /// The first records of the first object the run would import (else of the newest object listed).
    pub sample: Option<Sample>,
}

impl Runner<'_> {
    /// Lists and plans the dataflow's next run, and reads the first `limit` records of its first object.
    pub fn preview(&self, name: &str, limit: usize) -> Result<Preview, SyncError> {
        let dataflow = self.config().dataflow(name)?;
        let plugin = self.load_plugin(name, dataflow)?;
        let template = self.load_template(name, dataflow)?;
        let source = self.build_source(name, dataflow)?;
        let plan = self.plan_next(name, dataflow, (&plugin, template.as_ref()), source.as_ref())?;
        let sampled = plan.to_import().next().or_else(|| plan.objects.last().map(|p| &p.object));
        let Some(object) = sampled.cloned() else { return Ok(Preview { plan, sample: None }) };

        // A member of an archive may be of another format than the dataflow's (see `MemberFormats`).
        let (plugin, options) = match MemberFormats::new(self, name).other_than(&plugin, &object) {
            None => (plugin, dataflow.file_format().option_pairs()),
            Some(Ok(other)) => (other, Vec::new()),
            Some(Err(error)) => {
                let sample = Sample {
                    key: object.key.clone(),
                    records: Vec::new(),
                    rejects: Vec::new(),
                    error: Some(error.to_string()),
                };
                return Ok(Preview { plan, sample: Some(sample) });
            }
        };
        let plugins = (&plugin, template.as_ref());
        let sample = self.read_sample(source.as_ref(), dataflow, plugins, &options, &object, limit);
        Ok(Preview { plan, sample: Some(sample) })
    }

    /// The plan of the dataflow's next run, as `plugins` read its objects, with the state store only read
    /// (and not created).
    pub(super) fn plan_next(
        &self,
        name: &str,
        dataflow: &DataflowConfig,
        (plugin, template): (&FormatPlugin, Option<&TemplatePlugin>),
        source: &dyn Source,
    ) -> Result<Plan, SyncError> {
        let state_error = |source| SyncError::State { dataflow: name.to_string(), source };
        let mut state = StateStore::open_read_only(&self.config().state_database()).map_err(state_error)?;
        let reading = super::load::reading(name, dataflow, plugin, template);
        self.plan(name, dataflow, source, state.as_mut(), Some(&reading)).map_err(SyncError::Plan)
    }

    /// The first `limit` records (and rejects) of `object`, templated where the dataflow has a template,
    /// and why it could not be read where it could not.
    fn read_sample(
        &self,
        source: &dyn Source,
        dataflow: &DataflowConfig,
        plugins: (&FormatPlugin, Option<&TemplatePlugin>),
        options: &[(String, String)],
        object: &ObjectMeta,
        limit: usize,
    ) -> Sample {
        let mut sample =
            Sample { key: object.key.clone(), records: Vec::new(), rejects: Vec::new(), error: None };
        // A Stripe sink rejects a record Stripe would refuse before sending it: shown here as `run` rejects it.
        let stripe = (dataflow.sink.kind == SinkKind::Stripe)
            .then(|| StripeTarget::of(&dataflow.sink, &dataflow.sink.client_settings()));
        sample.error = self.read_object(source, dataflow, plugins, options, object, |parsed| {
            for batch in &parsed.batches {
                for row in 0..batch.num_rows() {
                    if sample.records.len() == limit {
                        break;
                    }
                    if let Some(Err(reason)) = stripe.as_ref().map(|target| target.outgoing(batch, row)) {
                        if sample.rejects.len() < limit {
                            sample.rejects.push(rejected_row(batch, row, reason));
                        }
                        continue;
                    }
                    let mut line = Vec::new();
                    batch.write_json_row(row, &mut line)?;
                    line.pop();
                    sample.records.push(String::from_utf8(line).expect("JSON is UTF-8"));
                }
            }
            sample.rejects.extend(parsed.rejects.into_iter().take(limit - sample.rejects.len().min(limit)));
            Ok(sample.records.len() < limit)
        });
        sample
    }

    /// Reads `object` through the dataflow's plugins, handing `take` what each call produced (templated
    /// where the dataflow has a template) until it answers `false`; why it could not be read, where it
    /// could not.
    pub(super) fn read_object(
        &self,
        source: &dyn Source,
        dataflow: &DataflowConfig,
        (plugin, template): (&FormatPlugin, Option<&TemplatePlugin>),
        options: &[(String, String)],
        object: &ObjectMeta,
        mut take: impl FnMut(Parsed) -> io::Result<bool>,
    ) -> Option<String> {
        let compression = dataflow.file_format().compression;
        let input = match open_input(self.runtime(), source, object, compression, plugin, Default::default())
        {
            Ok(input) => input,
            Err(OpenFailure::Source(error)) => return Some(error.to_string()),
            Err(OpenFailure::Read(error)) => return Some(error.to_string()),
        };
        let template_options = dataflow.template.as_ref().map(|t| t.option_pairs()).unwrap_or_default();
        let mut template = match template.map(|t| t.open(&object.key, &template_options)).transpose() {
            Ok(template) => template,
            Err(error) => return Some(error.to_string()),
        };
        let parsed = input.parse(plugin, template.as_mut(), &object.key, options, |parsed| {
            match take(parsed)? {
                true => Ok(()),
                // Enough read: stop the parse here.
                false => Err(io::Error::other(EnoughRead)),
            }
        });
        match parsed {
            Ok(_) => None,
            Err(ParseError::Consume { source, .. })
                if source.get_ref().is_some_and(|e| e.is::<EnoughRead>()) =>
            {
                None
            }
            Err(error) => Some(error.to_string()),
        }
    }
}

/// Ends a preview's parse once it has its records.
#[derive(Debug)]
struct EnoughRead;

impl std::fmt::Display for EnoughRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the preview has its records")
    }
}

impl std::error::Error for EnoughRead {}
