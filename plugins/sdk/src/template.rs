//! Guest-side support for data templates (the `template` world): read the input batch row by row, build the
//! target records, reject the rows that do not fit.

use crate::batch::BatchBuilder;
use crate::bindings::sluice::plugin::types::{Batch, FatalError, RejectedRow, ValueType};
use crate::{Options, Value};

/// The bindings of the `template` world, sharing the `types` interface with the format world's bindings so
/// that batches and rejects are one Rust type in both.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "template",
        with: { "sluice:plugin/types@1.4.0": crate::bindings::sluice::plugin::types },
        pub_export_macro: true,
        default_bindings_module: "sluice_plugin_sdk::template::bindings",
    });
}

use bindings::exports::sluice::plugin::transform::{GuestMapper, Mapper, TemplateOutput};
use std::cell::RefCell;

/// A rejected row's raw text is cut to this many bytes.
const RAW_LIMIT: usize = 1024;
/// The type tags of `value-type`, as the batch builder writes them.
const NULL: u8 = ValueType::Null as u8;
const BOOLEAN: u8 = ValueType::Boolean as u8;
const INTEGER: u8 = ValueType::Integer as u8;
const FLOAT: u8 = ValueType::Float as u8;
const TEXT: u8 = ValueType::Text as u8;

/// A data template: one is made per file from the dataflow's `[template.options]`, then given each batch
/// of records.
pub trait Template: Sized + 'static {
    fn create(options: Options) -> Result<Self, FatalError>;
    /// Maps every row of `input` into `out`: a target record or a reject, never half of one.
    fn apply(&mut self, input: &Input<'_>, out: &mut Records) -> Result<(), FatalError>;
}

/// The batch a template is given, read by column and row.
pub struct Input<'a> {
    batch: &'a Batch,
}

impl<'a> Input<'a> {
    pub(crate) fn new(batch: &'a Batch) -> Input<'a> {
        Input { batch }
    }

    pub fn rows(&self) -> usize {
        self.batch.rows as usize
    }

    /// The 1-based line of the file the row starts on.
    pub fn line(&self, row: usize) -> u64 {
        self.batch.lines[row]
    }

    /// The names of the batch's columns, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.batch.columns.iter().map(|column| column.name.clone()).collect()
    }

    /// The index of the column called `name`, if the batch has one.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.batch.columns.iter().position(|column| column.name == name)
    }

    /// The value of `row` in column `column`. The host checked the batch's layout before handing it over;
    /// text that is not UTF-8 reads as null.
    pub fn value(&self, column: usize, row: usize) -> Value<'a> {
        let column = &self.batch.columns[column];
        let start = if row == 0 { 0 } else { column.ends[row - 1] as usize };
        let bytes = &column.data[start..column.ends[row] as usize];
        let text = || std::str::from_utf8(bytes).ok();
        match column.types[row] {
            NULL => Value::Null,
            BOOLEAN => Value::Boolean(bytes[0] != 0),
            INTEGER => Value::Integer(i64::from_le_bytes(bytes.try_into().unwrap_or_default())),
            FLOAT => Value::Float(f64::from_le_bytes(bytes.try_into().unwrap_or_default())),
            TEXT => text().map_or(Value::Null, Value::Text),
            _ => text().map_or(Value::Null, Value::Json),
        }
    }

    /// The row as one JSON object, for a reject's raw text.
    pub fn row_json(&self, row: usize) -> String {
        let mut object = serde_json::Map::new();
        for (index, column) in self.batch.columns.iter().enumerate() {
            let value = match self.value(index, row) {
                Value::Null => serde_json::Value::Null,
                Value::Boolean(b) => b.into(),
                Value::Integer(i) => i.into(),
                Value::Float(f) => f.into(),
                Value::Text(s) => s.into(),
                Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.into()),
            };
            object.insert(column.name.clone(), value);
        }
        serde_json::Value::Object(object).to_string()
    }
}

/// Where a template puts its results: target records through [`Records::batch`] and [`Records::end_row`],
/// refused rows through [`Records::reject`].
#[derive(Default)]
pub struct Records {
    batch: BatchBuilder,
    rejects: Vec<RejectedRow>,
}

impl Records {
    /// The record being built; a column's name is the target field's path (`metadata.sku`).
    pub fn batch(&mut self) -> &mut BatchBuilder {
        &mut self.batch
    }

    /// Ends the current record, made from the input row on 1-based line `line`.
    pub fn end_row(&mut self, line: u64) {
        self.batch.end_row(line);
    }

    /// Refuses an input row; values already pushed for it are dropped.
    pub fn reject(&mut self, line: u64, reason: impl Into<String>, raw: &str) {
        self.batch.cancel_row();
        let mut end = raw.len().min(RAW_LIMIT);
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        self.rejects.push(RejectedRow { line, reason: reason.into(), raw: raw[..end].to_string() });
    }

    pub(crate) fn take(&mut self) -> TemplateOutput {
        let records = self.batch.take().unwrap_or(Batch { rows: 0, columns: Vec::new(), lines: Vec::new() });
        TemplateOutput { records, rejects: std::mem::take(&mut self.rejects) }
    }
}

/// Adapts a [`Template`] to the contract's `mapper` resource. Used by [`export_template!`].
#[doc(hidden)]
pub struct TemplateResource<T> {
    state: RefCell<(T, Records)>,
}

impl<T: Template> GuestMapper for TemplateResource<T> {
    fn create(options: Vec<(String, String)>) -> Result<Mapper, FatalError> {
        let template = T::create(Options::new(options))?;
        Ok(Mapper::new(TemplateResource { state: RefCell::new((template, Records::default())) }))
    }

    fn apply(&self, input: Batch) -> Result<TemplateOutput, FatalError> {
        let (template, out) = &mut *self.state.borrow_mut();
        template.apply(&Input::new(&input), out)?;
        Ok(out.take())
    }
}

/// Exports a [`Template`] as the plugin's `template` world, with `about` as
/// [`export_parser!`](crate::export_parser) has it. Only when built for WebAssembly, as that is.
#[macro_export]
macro_rules! export_template {
    ($template:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SluiceTemplateExport;
            impl $crate::template::bindings::exports::sluice::plugin::transform::Guest for SluiceTemplateExport {
                type Mapper = $crate::template::TemplateResource<$template>;
            }
            $crate::template::bindings::export!(SluiceTemplateExport with_types_in $crate::template::bindings);
            $crate::export_about!();
        };
    };
}
