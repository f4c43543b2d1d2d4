//! An object's bytes, opened as its format plugin reads them: streamed (and decompressed where the object
//! is compressed), or by ranges for a plugin that reads that way (contract 1.2.0).

use crate::config::Compression;
use crate::object::ObjectMeta;
use crate::parse::{ParseError, ParseSummary, parse_ranged, parse_stream};
use crate::plugin::{FormatPlugin, Parsed, RangeRead, TemplateRun};
use crate::source::{self, ReadAhead, Source, SourceError, archive, decompressing};
use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::runtime::Handle;

/// An object opened for its plugin.
pub(super) enum ObjectInput {
    /// Its bytes from the start, decompressed.
    Stream(Box<dyn BufRead + Send>),
    /// Its bytes at any offset.
    Ranged(Box<dyn RangeRead>),
}

/// Why an object could not be opened: the source failed, or its bytes cannot be read as they are.
pub(super) enum OpenFailure {
    Source(SourceError),
    Read(ParseError),
}

/// Opens `object` of `source` for `plugin`, on `runtime`, counting the bytes read into `count`. A
/// compressed object cannot be read by ranges: for such a plugin it fails as unreadable.
pub(super) fn open_input(
    runtime: &Handle,
    source: &dyn Source,
    object: &ObjectMeta,
    compression: Compression,
    plugin: &FormatPlugin,
    count: Arc<AtomicU64>,
) -> Result<ObjectInput, OpenFailure> {
    let unreadable = |source: io::Error| {
        OpenFailure::Read(ParseError::Read { object: object.key.clone(), bytes: 0, source })
    };
    if let Some(member) = archive::Member::of(object) {
        let ranges = runtime.block_on(source.open_ranged(&member.archive)).map_err(OpenFailure::Source)?;
        let ranges = Box::new(Counted { inner: ranges, count });
        // Reading the archive's directory and the member's bytes blocks: this runs on a parser's thread.
        if plugin.reads_by_range() {
            source::refuse_compressed(&member.name, compression, plugin.name()).map_err(unreadable)?;
            return archive::ranged(ranges, &member.name).map(ObjectInput::Ranged).map_err(unreadable);
        }
        let stream = archive::stream(ranges, &member.name).map_err(unreadable)?;
        return decompressing(&member.name, compression, stream).map(ObjectInput::Stream).map_err(unreadable);
    }
    if archive::is_archive(&object.key, compression) {
        // Listed whole only where its directory could not be read (see `archive::expand`).
        let ranges = runtime.block_on(source.open_ranged(object)).map_err(OpenFailure::Source)?;
        return Err(unreadable(archive::why_unreadable(ranges)));
    }
    if plugin.reads_by_range() {
        source::refuse_compressed(&object.key, compression, plugin.name()).map_err(unreadable)?;
        let ranges = runtime.block_on(source.open_ranged(object)).map_err(OpenFailure::Source)?;
        return Ok(ObjectInput::Ranged(Box::new(Counted { inner: ranges, count })));
    }
    let reader = open_blocking(runtime, source, object).map_err(OpenFailure::Source)?;
    decompressing(&object.key, compression, Counted { inner: reader, count })
        .map(ObjectInput::Stream)
        .map_err(unreadable)
}

impl ObjectInput {
    /// Reads the object to its end through `plugin`, then `template` where there is one (see
    /// [`parse_stream`] and [`parse_ranged`]).
    pub(super) fn parse(
        self,
        plugin: &FormatPlugin,
        template: Option<&mut TemplateRun>,
        object: &str,
        options: &[(String, String)],
        consume: impl FnMut(Parsed) -> io::Result<()>,
    ) -> Result<ParseSummary, ParseError> {
        match self {
            ObjectInput::Stream(input) => parse_stream(plugin, template, object, options, input, consume),
            ObjectInput::Ranged(input) => parse_ranged(plugin, template, object, options, input, consume),
        }
    }
}

/// Opens `object` as a blocking reader that reads ahead, for the threads that feed plugins.
pub(super) fn open_blocking(
    runtime: &Handle,
    source: &dyn Source,
    object: &ObjectMeta,
) -> Result<ReadAhead, SourceError> {
    let reader = runtime.block_on(source.open(object))?;
    Ok(ReadAhead::new(reader, runtime))
}

/// A reader that counts the bytes through it.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.count.fetch_add(amount as u64, Ordering::Relaxed);
    }
}

impl RangeRead for Counted<Box<dyn RangeRead>> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.inner.read_at(offset, len)?;
        self.count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}
