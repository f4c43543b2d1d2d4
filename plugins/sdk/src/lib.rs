//! Guest-side helpers for Sluice plugins: format plugins ([`Parser`]) and data templates ([`Template`]).
//!
//! A format plugin implements [`Parser`] and exports it with [`export_parser!`]; this crate owns the
//! WebAssembly Interface Types bindings of the `sluice:plugin` contract (`wit/sluice.wit`), so a plugin
//! never touches the ABI. What a parser produces goes into an [`Emitter`]: records through its
//! [`BatchBuilder`], refused rows through [`Emitter::reject`]. The emitter cuts batches at a bounded size so
//! a large file streams through in bounded memory.
//!
//! ```ignore
//! use sluice_plugin_sdk::{Emitter, FatalError, LineSplitter, Options, Parser, Value, export_parser};
//!
//! /// One record per line, with the whole line in a column `line`.
//! struct Lines { splitter: LineSplitter }
//!
//! impl Parser for Lines {
//!     fn create(options: Options) -> Result<Self, FatalError> {
//!         options.finish()?; // refuses options this parser does not know
//!         Ok(Lines { splitter: LineSplitter::default() })
//!     }
//!     fn feed(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
//!         self.splitter.feed(chunk, |line_no, line| emit(line_no, line, out))
//!     }
//!     fn finish(&mut self, out: &mut Emitter) -> Result<(), FatalError> {
//!         self.splitter.finish(|line_no, line| emit(line_no, line, out))
//!     }
//! }
//!
//! fn emit(line_no: u64, line: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
//!     match std::str::from_utf8(line) {
//!         Ok(text) => {
//!             let column = out.batch().column("line");
//!             out.batch().push(column, Value::Text(text));
//!             out.end_row(line_no);
//!         }
//!         Err(_) => out.reject(line_no, "invalid UTF-8", line),
//!     }
//!     Ok(())
//! }
//!
//! export_parser!(Lines);
//! ```

pub mod as_text;
mod batch;
pub mod columns;
mod json;
mod lines;
mod options;
pub mod ranged;
pub mod spans;
pub mod template;
pub mod testing;

pub use batch::{BatchBuilder, ColumnValues, Emitter, Value};
pub use columns::{TypedColumn, Validity};
pub use json::{float as json_float, number_value};
pub use lines::LineSplitter;
pub use options::Options;
pub use ranged::{RangeInput, RangeReader, RangedParser};
pub use spans::{RowInOrder, SpanEmitter, SpanParser};
pub use template::{Input, Records, Template};

/// The bindings generated from `wit/sluice.wit`. Plugins use them only through this crate's types.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "format",
        pub_export_macro: true,
        default_bindings_module: "sluice_plugin_sdk::bindings",
    });
}

/// The bindings of the `typed-ranged-format` world (contract 1.3.0), sharing the `types` of [`bindings`].
/// A ranged parser built with this SDK hands over typed batches; the host still runs ranged parsers built
/// against 1.2.0.
#[doc(hidden)]
pub mod ranged_bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "typed-ranged-format",
        pub_export_macro: true,
        default_bindings_module: "sluice_plugin_sdk::ranged_bindings",
        with: { "sluice:plugin/types@1.4.0": crate::bindings::sluice::plugin::types },
    });
}

/// The bindings of the `typed-format` world (contract 1.4.0), sharing the `types` of [`bindings`] and the
/// `columns` of [`ranged_bindings`]: a [`SpanParser`] hands text over as spans of the bytes it was fed.
#[doc(hidden)]
pub mod span_bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "typed-format",
        pub_export_macro: true,
        default_bindings_module: "sluice_plugin_sdk::span_bindings",
        with: {
            "sluice:plugin/types@1.4.0": crate::bindings::sluice::plugin::types,
            "sluice:plugin/columns@1.4.0": crate::ranged_bindings::sluice::plugin::columns,
        },
    });
}

/// The bindings of the `described` world (contract 1.1.0): a plugin built with the SDK says what it is.
#[doc(hidden)]
pub mod about_bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "described",
        pub_export_macro: true,
        default_bindings_module: "sluice_plugin_sdk::about_bindings",
    });
}

use bindings::exports::sluice::plugin::parser::{FileParser, GuestFileParser};
pub use bindings::sluice::plugin::types::FatalError;
use bindings::sluice::plugin::types::Output;
use std::cell::RefCell;

/// Makes a [`FatalError`]: the input cannot be read on as this format. `line` is 1-based, 0 for none.
/// The records completed before it are added when it is handed to the host.
pub fn fatal(line: u64, message: impl Into<String>) -> FatalError {
    FatalError {
        line,
        message: message.into(),
        completed: Output { batches: Vec::new(), rejects: Vec::new() },
    }
}

/// A streaming parser of one file. The host makes one per file and feeds it the file's bytes in chunks that
/// may end anywhere (inside a line, a quoted field or a UTF-8 sequence).
pub trait Parser: Sized + 'static {
    /// Builds a parser from the dataflow's `[format.options]`.
    fn create(options: Options) -> Result<Self, FatalError>;
    /// Takes the next chunk; completed records and rejects go to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError>;
    /// The file has ended: emit whatever is still held back.
    fn finish(&mut self, out: &mut Emitter) -> Result<(), FatalError>;
}

/// Adapts a [`Parser`] to the contract's `file-parser` resource. Used by [`export_parser!`].
#[doc(hidden)]
pub struct ParserResource<P> {
    state: RefCell<(P, Emitter)>,
}

impl<P: Parser> GuestFileParser for ParserResource<P> {
    fn create(options: Vec<(String, String)>) -> Result<FileParser, FatalError> {
        let parser = P::create(Options::new(options))?;
        Ok(FileParser::new(ParserResource { state: RefCell::new((parser, Emitter::default())) }))
    }

    fn feed(&self, chunk: Vec<u8>) -> Result<Output, FatalError> {
        let (parser, out) = &mut *self.state.borrow_mut();
        match parser.feed(&chunk, out) {
            Ok(()) => Ok(out.take_completed()),
            Err(error) => Err(with_completed(error, out)),
        }
    }

    fn finish(&self) -> Result<Output, FatalError> {
        let (parser, out) = &mut *self.state.borrow_mut();
        match parser.finish(out) {
            Ok(()) => Ok(out.take_all()),
            Err(error) => Err(with_completed(error, out)),
        }
    }
}

/// Hands everything completed before a fatal error to the host along with it.
fn with_completed(mut error: FatalError, out: &mut Emitter) -> FatalError {
    error.completed = out.take_all();
    error
}

/// Exports a [`Parser`] as the plugin's `format` world, with its crate's name, version and description as
/// what the plugin says of itself (`about`). Only when built for WebAssembly: a native build (the
/// plugin's own `cargo test`, through [`testing`]) has no host to export to.
// rustfmt cannot read `export!`'s `with_types_in` and would shift the line.
#[rustfmt::skip]
#[macro_export]
macro_rules! export_parser {
    ($parser:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SluiceFormatExport;
            impl $crate::bindings::exports::sluice::plugin::parser::Guest for SluiceFormatExport {
                type FileParser = $crate::ParserResource<$parser>;
            }
            $crate::bindings::export!(SluiceFormatExport with_types_in $crate::bindings);
            $crate::export_about!();
        };
    };
}

/// Exports the contract's `about` with the plugin crate's name, version and description (its
/// `Cargo.toml`'s), so `sluice plugin inspect` can say what the plugin is. Used by [`export_parser!`] and
/// [`export_template!`](crate::export_template), inside their wasm32-only block.
#[rustfmt::skip]
#[doc(hidden)]
#[macro_export]
macro_rules! export_about {
    () => {
        struct SluiceAboutExport;
        impl $crate::about_bindings::exports::sluice::plugin::about::Guest for SluiceAboutExport {
            fn describe() -> $crate::about_bindings::exports::sluice::plugin::about::Description {
                $crate::about_bindings::exports::sluice::plugin::about::Description {
                    name: env!("CARGO_PKG_NAME").into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    summary: env!("CARGO_PKG_DESCRIPTION").into(),
                }
            }
        }
        $crate::about_bindings::export!(SluiceAboutExport with_types_in $crate::about_bindings);
    };
}
