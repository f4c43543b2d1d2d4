//! Format plugins that read their file by ranges: formats that keep their index at the end of the file
//! (Parquet) and read only the parts they need. They are exported as the `typed-ranged-format` world
//! (contract 1.3.0), so that columns handed on with [`Emitter::emit_typed`] cross as typed buffers.
//!
//! A plugin implements [`RangedParser`] and exports it with [`export_ranged_parser!`](crate::export_ranged_parser).
//! It reads its file through the [`RangeInput`] it is created with, and puts its records into an
//! [`Emitter`] one bounded part at a time (a row group, say): the host calls
//! [`RangedParser::next`] until it says the file has ended.

use crate::bindings::sluice::plugin::types::{FatalError, Output};
use crate::ranged_bindings::exports::sluice::plugin::typed_ranged_parser::{FileReader, GuestFileReader};
use crate::ranged_bindings::sluice::plugin::columns::{TypedFatalError, TypedOutput};
use crate::{Emitter, Options, fatal};
use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// A parser of one file that reads it by ranges.
pub trait RangedParser: Sized + 'static {
    /// Builds a parser for the file `input` reads, from the dataflow's `[format.options]`. A file that
    /// cannot be this format at all (no footer) may be refused here.
    fn create(options: Options, input: RangeInput) -> Result<Self, FatalError>;
    /// Emits the next part of the records into `out`; returns `false` once the file has no more.
    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError>;
}

/// Where a [`RangeInput`]'s bytes come from: the host (through the contract's `input`), or memory in a
/// plugin's own tests.
trait ReadRange: Send + Sync {
    fn size(&self) -> u64;
    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, String>;
}

/// The file a ranged parser reads: its size, and its bytes at any offset. Cheap to clone.
#[derive(Clone)]
pub struct RangeInput {
    source: Arc<dyn ReadRange>,
}

impl RangeInput {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.source.size()
    }

    /// Exactly `len` bytes from `offset`. A range outside the file, longer than the host hands over in one
    /// read (64 MiB), or that the host failed to read, is an error saying why.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        let len =
            u32::try_from(len).map_err(|_| format!("a read of {len} bytes is longer than any one read"))?;
        self.source.read(offset, len)
    }

    /// The file as a [`Read`] + [`Seek`] cursor starting at its first byte, for libraries that read
    /// through `std::io` (wrap it in a `BufReader`: each `read` is a call to the host).
    pub fn reader(&self) -> RangeReader {
        RangeReader { input: self.clone(), position: 0 }
    }

    /// A file held in memory, for a plugin's own tests (see [`crate::testing::parse_ranged`]).
    pub fn from_bytes(bytes: Vec<u8>) -> RangeInput {
        RangeInput { source: Arc::new(InMemory(bytes)) }
    }

    fn from_host() -> RangeInput {
        RangeInput { source: Arc::new(FromHost) }
    }
}

/// A [`RangeInput`] read through `std::io`, from [`RangeInput::reader`].
pub struct RangeReader {
    input: RangeInput,
    position: u64,
}

/// The most one `read` asks of the host: a caller's buffer may be larger (`read_exact` of a whole block),
/// and `Read` may return less than asked.
const MAX_READ: u64 = 8 << 20;

impl Read for RangeReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let left = self.input.size().saturating_sub(self.position);
        let len = (buffer.len() as u64).min(MAX_READ).min(left);
        if len == 0 {
            return Ok(0);
        }
        let bytes = self.input.read(self.position, len as usize).map_err(io::Error::other)?;
        buffer[..bytes.len()].copy_from_slice(&bytes);
        self.position += bytes.len() as u64;
        Ok(bytes.len())
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.input.size().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let position = position.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a seek to before the start of the file")
        })?;
        self.position = position;
        Ok(position)
    }
}

/// The host's file, through the contract's `input` interface.
struct FromHost;

impl ReadRange for FromHost {
    fn size(&self) -> u64 {
        crate::ranged_bindings::sluice::plugin::input::size()
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        crate::ranged_bindings::sluice::plugin::input::read(offset, len)
    }
}

struct InMemory(Vec<u8>);

impl ReadRange for InMemory {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let end = offset.checked_add(u64::from(len)).filter(|end| *end <= self.size());
        match end {
            Some(end) => Ok(self.0[offset as usize..end as usize].to_vec()),
            None => Err(format!(
                "bytes {offset}..{} are past the end of the file ({} bytes)",
                offset + u64::from(len),
                self.size()
            )),
        }
    }
}

/// Adapts a [`RangedParser`] to the contract's `file-reader` resource. Used by
/// [`export_ranged_parser!`](crate::export_ranged_parser).
#[doc(hidden)]
pub struct RangedResource<P> {
    state: RefCell<RangedState<P>>,
}

struct RangedState<P> {
    parser: P,
    out: Emitter,
    ended: bool,
}

impl<P: RangedParser> GuestFileReader for RangedResource<P> {
    fn create(options: Vec<(String, String)>) -> Result<FileReader, TypedFatalError> {
        let parser = P::create(Options::new(options), RangeInput::from_host())
            .map_err(|error| typed_error(error, &mut Emitter::default()))?;
        let state = RangedState { parser, out: Emitter::default(), ended: false };
        Ok(FileReader::new(RangedResource { state: RefCell::new(state) }))
    }

    fn next(&self) -> Result<Option<TypedOutput>, TypedFatalError> {
        let state = &mut *self.state.borrow_mut();
        match next_part(state) {
            None => Ok(None),
            Some(Ok(Part::More)) => Ok(Some(state.out.take_completed_typed())),
            Some(Ok(Part::Last)) => Ok(Some(state.out.take_all_typed())),
            Some(Err(error)) => Err(typed_error(error, &mut state.out)),
        }
    }
}

/// A fatal error as the typed world hands it over, with everything completed before it.
fn typed_error(error: FatalError, out: &mut Emitter) -> TypedFatalError {
    TypedFatalError { line: error.line, message: error.message, completed: out.take_all_typed() }
}

/// What one call into a ranged parser left in its emitter.
enum Part {
    /// A part of the file; more follows.
    More,
    /// The rest of the file.
    Last,
}

/// One call's worth of a ranged parser; `None` once it has ended (or failed).
fn next_part<P: RangedParser>(state: &mut RangedState<P>) -> Option<Result<Part, FatalError>> {
    if state.ended {
        return None;
    }
    let part = match state.parser.next(&mut state.out) {
        Ok(true) => return Some(Ok(Part::More)),
        Ok(false) => Ok(Part::Last),
        Err(error) => Err(error),
    };
    state.ended = true;
    Some(part)
}

/// Runs a ranged parser over `input` natively, as the host would: for [`crate::testing`].
pub(crate) fn read_all<P: RangedParser>(
    options: Options,
    input: RangeInput,
    mut each: impl FnMut(&Output),
) -> Result<(), FatalError> {
    let parser = P::create(options, input)?;
    let mut state = RangedState { parser, out: Emitter::default(), ended: false };
    while let Some(part) = next_part(&mut state) {
        match part {
            Ok(Part::More) => each(&state.out.take_completed()),
            Ok(Part::Last) => each(&state.out.take_all()),
            Err(mut error) => {
                error.completed = state.out.take_all();
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Says why a read failed, as a [`FatalError`] with no line: the host keeps the read's own error.
pub fn read_failed(what: &str, error: impl std::fmt::Display) -> FatalError {
    fatal(0, format!("reading {what} failed: {error}"))
}

/// Exports a [`RangedParser`] as the plugin's `typed-ranged-format` world (contract 1.3.0), with its crate's
/// name, version and description as what the plugin says of itself.
#[rustfmt::skip]
#[macro_export]
macro_rules! export_ranged_parser {
    ($parser:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SluiceRangedExport;
            impl $crate::ranged_bindings::exports::sluice::plugin::typed_ranged_parser::Guest for SluiceRangedExport {
                type FileReader = $crate::ranged::RangedResource<$parser>;
            }
            $crate::ranged_bindings::export!(SluiceRangedExport with_types_in $crate::ranged_bindings);
            $crate::export_about!();
        };
    };
}
