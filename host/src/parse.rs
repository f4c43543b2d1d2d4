//! Streams a file through a format plugin (and a data template, where the dataflow has one): the path every
//! file takes from bytes to record batches.

use crate::plugin::{FileParse, FormatPlugin, Parsed, PluginError, TemplateRun};
use std::io::{self, Read};
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
pub fn parse_stream(
    plugin: &FormatPlugin,
    mut template: Option<&mut TemplateRun>,
    object: &str,
    options: &[(String, String)],
    mut input: impl Read,
    mut consume: impl FnMut(Parsed) -> io::Result<()>,
) -> Result<ParseSummary, ParseError> {
    let started = Instant::now();
    let mut summary = ParseSummary::default();
    let mut parse = plugin.open(object, options).map_err(ParseError::Open)?;
    let mut chunk = vec![0u8; CHUNK_SIZE];
    let mut hand_on = |parsed: Parsed, summary: &mut ParseSummary| {
        let parsed = match template.as_deref_mut() {
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
    };
    loop {
        let filled = fill(&mut input, &mut chunk).map_err(|source| ParseError::Read {
            object: object.to_string(),
            bytes: summary.bytes,
            source,
        })?;
        if filled == 0 {
            break;
        }
        summary.bytes += filled as u64;
        let called = Instant::now();
        let fed = parse.feed(&chunk[..filled]);
        crate::metrics::plugin_call(plugin.name(), called.elapsed());
        hand_on_or_salvage(fed, &mut parse, &mut summary, &mut hand_on)?;
    }
    let called = Instant::now();
    let finished = parse.finish();
    crate::metrics::plugin_call(plugin.name(), called.elapsed());
    hand_on_or_salvage(finished, &mut parse, &mut summary, &mut hand_on)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
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

/// Reads until `buffer` is full or the input ends, so every call into the plugin carries a full chunk.
fn fill(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
