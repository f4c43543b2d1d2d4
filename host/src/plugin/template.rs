//! Running a data template over the batches of one object.

use super::bindings::template::{Template, TemplatePre};
use super::format::with_defaults;
use super::sandbox::{Sandbox, call_failure, deadline_ticks, new_store};
use super::wire::{batch_from_wire, batch_to_wire, rejected_from_wire};
use super::{Limits, Parsed, PluginError};
use crate::batch::{RecordBatch, RejectStage, RejectedRow};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

/// A loaded template. Opening it for an object costs one instantiation, not a compilation.
#[derive(Clone)]
pub struct TemplatePlugin {
    pub(super) name: String,
    pub(super) pre: TemplatePre<Sandbox>,
    /// The SHA-256 of the component, in hex.
    pub(super) digest: String,
    pub(super) limits: Limits,
}

/// What a template made of one batch.
#[derive(Debug)]
pub struct Templated {
    /// The target records; a column's name is the target field's path (`metadata.sku`).
    pub records: RecordBatch,
    /// Input rows that did not fit the target.
    pub rejects: Vec<RejectedRow>,
}

impl TemplatePlugin {
    /// The plugin's name in the configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this template is: its name, the SHA-256 of its component, and its limits.
    pub fn identity(&self) -> String {
        super::identity(&self.name, &self.digest, self.limits)
    }

    /// Starts a template for one object (called `object` in messages) with its options.
    pub fn open(&self, object: &str, options: &[(String, String)]) -> Result<TemplateRun, PluginError> {
        let mut run = TemplateRun {
            plugin: self.name.clone(),
            object: object.to_string(),
            limits: self.limits,
            store: new_store(self.pre.engine(), self.limits),
            instance: None,
            mapper: None,
        };
        run.store.set_epoch_deadline(deadline_ticks(self.limits));
        let instance = self.pre.instantiate(&mut run.store).map_err(|e| run.failure(e))?;
        run.store.set_epoch_deadline(deadline_ticks(self.limits));
        let options = with_defaults(&[], options);
        let created = instance
            .sluice_plugin_transform()
            .mapper()
            .call_create(&mut run.store, &options)
            .map_err(|e| run.failure(e))?;
        run.mapper = Some(created.map_err(|fatal| run.template_error(fatal.message))?);
        run.instance = Some(instance);
        Ok(run)
    }
}

/// A template applied to one object's batches: a store and an instance of its own.
pub struct TemplateRun {
    plugin: String,
    object: String,
    limits: Limits,
    store: Store<Sandbox>,
    instance: Option<Template>,
    mapper: Option<ResourceAny>,
}

impl TemplateRun {
    /// The template's name in `connector.toml`.
    pub fn plugin_name(&self) -> &str {
        &self.plugin
    }

    /// Maps one batch of records.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<Templated, PluginError> {
        let (Some(instance), Some(mapper)) = (&self.instance, self.mapper) else {
            return Err(PluginError::Trap {
                plugin: self.plugin.clone(),
                object: self.object.clone(),
                message: "the template was used after it failed".into(),
                stderr: None,
            });
        };
        self.store.set_epoch_deadline(deadline_ticks(self.limits));
        let result = instance.sluice_plugin_transform().mapper().call_apply(
            &mut self.store,
            mapper,
            &batch_to_wire(batch),
        );
        let output = match result {
            Ok(Ok(output)) => output,
            Ok(Err(fatal)) => return Err(self.template_error(fatal.message)),
            Err(error) => {
                self.instance = None;
                self.mapper = None;
                return Err(self.failure(error));
            }
        };
        let records = batch_from_wire(output.records).map_err(|message| PluginError::Contract {
            plugin: self.plugin.clone(),
            object: self.object.clone(),
            message,
        })?;
        let rejects =
            output.rejects.into_iter().map(|r| rejected_from_wire(r, RejectStage::Template)).collect();
        Ok(Templated { records, rejects })
    }

    /// Maps what a parser produced: its batches become target records; its rejects stay, joined by the
    /// template's own.
    pub fn apply_parsed(&mut self, parsed: Parsed) -> Result<Parsed, PluginError> {
        let mut templated =
            Parsed { batches: Vec::with_capacity(parsed.batches.len()), rejects: parsed.rejects };
        for batch in &parsed.batches {
            let Templated { records, rejects } = self.apply(batch)?;
            if records.num_rows() > 0 {
                templated.batches.push(records);
            }
            templated.rejects.extend(rejects);
        }
        Ok(templated)
    }

    fn template_error(&self, message: String) -> PluginError {
        PluginError::Template { plugin: self.plugin.clone(), object: self.object.clone(), message }
    }

    fn failure(&self, error: wasmtime::Error) -> PluginError {
        call_failure(&self.store, self.limits, &self.plugin, &self.object, error)
    }
}
