//! Streams a file through a format plugin (and a data template, where the dataflow has one): the path every
//! file takes from bytes to record batches.

use crate::plugin::{FileParse, FormatPlugin, Parsed, PluginError, RangeRead, TemplateRun};
use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

/// Bytes handed to a plugin per call. Big enough that the cost of crossing into the component is lost
/// in the parsing; small enough that a chunk and its batches stay a few MiB.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Totals of one file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParseSummary {
    /// Records read.
    pub rows: u64,
    /// Rows refused.
    pub rejected: u64,
    /// Bytes read.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Why a file could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The plugin could not start on the file: its options are wrong, or it failed at once.
    #[error(transparent)]
    Open(PluginError),
    /// The plugin (or the template) failed part-way; what it completed before has been handed on.
    #[error(transparent)]
    Plugin(PluginError),
    /// The file's bytes stopped coming (the connection broke) or did not decompress.
    #[error("reading `{object}` failed after {bytes} bytes: {source}")]
    Read {
        /// The object's key.
        object: String,
        /// Bytes read before the failure.
        bytes: u64,
        /// Why.
        source: io::Error,
    },
    /// The consumer of the records failed (a closed pipe, a full disk).
    #[error("writing the records of `{object}` failed: {source}")]
    Consume {
        /// The object's key.
        object: String,
        /// Why.
        source: io::Error,
    },
}

/// Reads `input` to its end through `plugin`, then `template` where there is one, handing each call's
/// batches and rejects to `consume` as they come, so that a file of any size streams through in bounded
/// memory.
///
/// Each call into the plugin carries a whole chunk of `CHUNK_SIZE` bytes (the last one excepted). Where
/// the input's own buffer holds a whole chunk (an object read ahead, or bytes in memory), the plugin is fed
/// from it; smaller reads are gathered into a chunk first (wrap a reader that reads little at a time in
/// [`WholeChunks`] to spare that copy).
pub fn parse_stream(
    plugin: &FormatPlugin,
    mut template: Option<&mut TemplateRun>,
    object: &str,
    options: &[(String, String)],
    mut input: impl BufRead,
    mut consume: impl FnMut(Parsed) -> io::Result<()>,
) -> Result<ParseSummary, ParseError> {
    let started = Instant::now();
    let mut summary = ParseSummary::default();
    let mut parse = plugin.open(object, options).map_err(ParseError::Open)?;
    // The bytes of a chunk gathered from reads smaller than one.
    let mut gathered: Vec<u8> = Vec::new();
    let mut pass_on = |parsed: Parsed, summary: &mut ParseSummary| {
        hand_on(template.as_deref_mut(), object, parsed, summary, &mut consume)
    };
    let mut feed = |bytes: &[u8], parse: &mut FileParse, summary: &mut ParseSummary| {
        summary.bytes += bytes.len() as u64;
        let called = Instant::now();
        let fed = parse.feed(bytes);
        crate::metrics::plugin_call(plugin.name(), called.elapsed());
        hand_on_or_salvage(fed, parse, summary, &mut pass_on)
    };
    loop {
        let read = summary.bytes + gathered.len() as u64;
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ParseError::Read { object: object.to_string(), bytes: read, source }),
        };
        if available.is_empty() {
            break;
        }
        if gathered.is_empty() && available.len() >= CHUNK_SIZE {
            feed(&available[..CHUNK_SIZE], &mut parse, &mut summary)?;
            input.consume(CHUNK_SIZE);
            continue;
        }
        let taken = available.len().min(CHUNK_SIZE - gathered.len());
        if gathered.capacity() == 0 {
            gathered.reserve_exact(CHUNK_SIZE);
        }
        gathered.extend_from_slice(&available[..taken]);
        input.consume(taken);
        if gathered.len() == CHUNK_SIZE {
            feed(&gathered, &mut parse, &mut summary)?;
            gathered.clear();
        }
    }
    if !gathered.is_empty() {
        feed(&gathered, &mut parse, &mut summary)?;
    }
    let called = Instant::now();
    let finished = parse.finish();
    crate::metrics::plugin_call(plugin.name(), called.elapsed());
    hand_on_or_salvage(finished, &mut parse, &mut summary, &mut pass_on)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads `input` through `plugin`, a plugin that [reads by range](FormatPlugin::reads_by_range), then
/// `template` where there is one, handing each call's batches and rejects to `consume` as they come: the
/// same as [`parse_stream`] for a format that reads its file by ranges (Parquet). A read of `input` that
/// failed (rather than the plugin) is a [`ParseError::Read`].
pub fn parse_ranged(
    plugin: &FormatPlugin,
    mut template: Option<&mut TemplateRun>,
    object: &str,
    options: &[(String, String)],
    input: Box<dyn RangeRead>,
    mut consume: impl FnMut(Parsed) -> io::Result<()>,
) -> Result<ParseSummary, ParseError> {
    let started = Instant::now();
    let mut summary = ParseSummary::default();
    let mut parse = plugin.open_ranged(object, options, input).map_err(ParseError::Open)?;
    let mut pass_on = |parsed: Parsed, summary: &mut ParseSummary| {
        hand_on(template.as_deref_mut(), object, parsed, summary, &mut consume)
    };
    loop {
        let called = Instant::now();
        let next = parse.next_records();
        crate::metrics::plugin_call(plugin.name(), called.elapsed());
        summary.bytes = parse.bytes_read();
        let Some(next) = next.transpose() else { break };
        hand_on_or_salvage(next, &mut parse, &mut summary, &mut pass_on).map_err(|error| {
            // The plugin gave up because a read of its file failed: the object's error is that read's.
            match (error, parse.read_failure()) {
                (ParseError::Plugin(_), Some(source)) => {
                    ParseError::Read { object: object.to_string(), bytes: summary.bytes, source }
                }
                (error, _) => error,
            }
        })?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Hands one call's records through the template, where there is one, to `consume`.
fn hand_on(
    template: Option<&mut TemplateRun>,
    object: &str,
    parsed: Parsed,
    summary: &mut ParseSummary,
    consume: &mut impl FnMut(Parsed) -> io::Result<()>,
) -> Result<(), ParseError> {
    let parsed = match template {
        Some(template) => {
            let called = Instant::now();
            let applied = template.apply_parsed(parsed);
            crate::metrics::plugin_call(template.plugin_name(), called.elapsed());
            applied.map_err(ParseError::Plugin)?
        }
        None => parsed,
    };
    summary.rows += parsed.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    summary.rejected += parsed.rejects.len() as u64;
    consume(parsed).map_err(|source| ParseError::Consume { object: object.to_string(), source })
}

/// Hands on what a call produced; where it failed, hands on what the parser completed before the error,
/// then reports the error.
fn hand_on_or_salvage(
    result: Result<Parsed, PluginError>,
    parse: &mut FileParse,
    summary: &mut ParseSummary,
    hand_on: &mut impl FnMut(Parsed, &mut ParseSummary) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    match result {
        Ok(parsed) => hand_on(parsed, summary),
        Err(error) => {
            hand_on(parse.take_completed_before_failure(), summary)?;
            Err(ParseError::Plugin(error))
        }
    }
}

/// A reader's bytes lent a whole chunk at a time (the last one excepted), read straight into the buffer the
/// plugin is then fed from: for readers that give less than a chunk per read (a decompressor, a pipe), so
/// that their bytes are copied once on their way into the plugin, as a read-ahead object's are not at all.
pub struct WholeChunks<R> {
    inner: R,
    /// Allocated at the first read.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> WholeChunks<R> {
    /// `inner`'s bytes, a chunk at a time.
    pub fn new(inner: R) -> WholeChunks<R> {
        WholeChunks { inner, buffer: Vec::new(), start: 0, end: 0 }
    }
}

impl<R: Read> BufRead for WholeChunks<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            if self.buffer.is_empty() {
                self.buffer = vec![0; CHUNK_SIZE];
            }
            (self.start, self.end) = (0, 0);
            while self.end < CHUNK_SIZE {
                match self.inner.read(&mut self.buffer[self.end..]) {
                    Ok(0) => break,
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buffer[self.start..self.end])
    }

    fn consume(&mut self, amount: usize) {
        self.start = (self.start + amount).min(self.end);
    }
}

impl<R: Read> Read for WholeChunks<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        read_lent(self, buffer)
    }
}

/// `Read::read` of a reader that lends its bytes (`BufRead`): a copy of what it lends.
pub(crate) fn read_lent(reader: &mut impl BufRead, buffer: &mut [u8]) -> io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = buffer.len().min(available.len());
    buffer[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_chunks_are_lent_of_a_reader_that_gives_a_few_bytes_at_a_time() {
        let bytes: Vec<u8> = (0..CHUNK_SIZE + 10).map(|i| (i % 11) as u8).collect();
        // `chain` of two slices reads at most what is left of the first: a short read at the seam.
        let mut chunks = WholeChunks::new((&bytes[..3]).chain(&bytes[3..]));
        assert_eq!(chunks.fill_buf().unwrap(), &bytes[..CHUNK_SIZE]);
        chunks.consume(CHUNK_SIZE);
        assert_eq!(chunks.fill_buf().unwrap(), &bytes[CHUNK_SIZE..]);
        let mut rest = Vec::new();
        chunks.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &bytes[CHUNK_SIZE..]);
    }
}
