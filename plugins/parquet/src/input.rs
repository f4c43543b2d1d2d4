//! The file, as the parquet crate reads it: a `ChunkReader` over the host's ranged reads.
//!
//! The parquet crate reads a column chunk a page at a time: the page's header through a reader (not
//! knowing its length), then the page's bytes by range; and it reads the chunks of a row group's columns
//! in turn, a batch's worth of each. Once the footer is read, the column chunks to be read are known, so a
//! read inside one fetches the chunk onward in one block (up to a bound), kept per chunk: a chunk costs
//! the host a few large reads (a few ranged GETs from S3) rather than two per page, and nothing outside
//! the columns asked for is fetched.

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use sluice_plugin_sdk::RangeInput;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// Bytes fetched for a read of unknown length outside any known column chunk (the footer's last eight
/// bytes, say).
const BLOCK: u64 = 4 * 1024;
/// The most kept of all the column chunks being read at once: the blocks are that divided among them.
const KEPT: u64 = 64 << 20;
/// A block is never smaller than this, however many columns are read.
const MIN_BLOCK: u64 = 1 << 20;

/// The host's file, with the blocks fetched of the column chunks being read.
#[derive(Clone)]
pub struct Chunks {
    input: RangeInput,
    size: u64,
    state: Arc<Mutex<Blocks>>,
}

#[derive(Default)]
struct Blocks {
    /// The byte ranges of the column chunks that will be read, by start.
    chunks: Vec<(u64, u64)>,
    /// How much of a chunk one block takes.
    block: u64,
    /// The block fetched last of each chunk (by the chunk's start), with its file offset.
    kept: HashMap<u64, (u64, Bytes)>,
}

impl Chunks {
    pub fn new(input: RangeInput) -> Chunks {
        Chunks { size: input.size(), input, state: Arc::default() }
    }

    /// Says which byte ranges (column chunks) will be read, so that reads inside one fetch it in blocks.
    pub fn will_read(&self, mut chunks: Vec<(u64, u64)>) {
        chunks.sort_unstable();
        let mut state = self.lock();
        state.block = (KEPT / chunks.len().max(1) as u64).max(MIN_BLOCK);
        state.chunks = chunks;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Blocks> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `len` bytes from `start`: from a block kept where one holds them; else fetched, with the rest of
    /// its column chunk's block where `start` lies in one.
    fn bytes(&self, start: u64, len: u64) -> Result<Bytes, String> {
        let end = start.checked_add(len).ok_or("a range past any file")?;
        let mut state = self.lock();
        let chunk = match state.chunks.partition_point(|(from, _)| *from <= start) {
            0 => None,
            after => Some(state.chunks[after - 1]).filter(|(_, to)| start < *to),
        };
        let Some((chunk_start, chunk_end)) = chunk else {
            drop(state);
            return Ok(Bytes::from(self.input.read(start, len as usize)?));
        };
        if let Some((offset, block)) = state.kept.get(&chunk_start)
            && start >= *offset
            && end <= offset + block.len() as u64
        {
            let from = (start - offset) as usize;
            return Ok(block.slice(from..from + len as usize));
        }
        let fetch = len.max(state.block.min(chunk_end - start));
        let block = Bytes::from(self.input.read(start, fetch as usize)?);
        let wanted = block.slice(..len as usize);
        state.kept.insert(chunk_start, (start, block));
        Ok(wanted)
    }
}

impl Length for Chunks {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Chunks {
    type T = Sequential;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Sequential> {
        Ok(Sequential { chunks: self.clone(), position: start, block: Bytes::new() })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.bytes(start, length as u64).map_err(ParquetError::General)
    }
}

/// Reads on from an offset, a small block at a time (or from the column chunk's kept block).
pub struct Sequential {
    chunks: Chunks,
    /// The file offset of `block`'s first byte.
    position: u64,
    block: Bytes,
}

impl Read for Sequential {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.block.is_empty() {
            let len = BLOCK.min(self.chunks.size.saturating_sub(self.position));
            if len == 0 {
                return Ok(0);
            }
            self.block = self.chunks.bytes(self.position, len).map_err(io::Error::other)?;
        }
        let n = buffer.len().min(self.block.len());
        buffer[..n].copy_from_slice(&self.block[..n]);
        self.block = self.block.slice(n..);
        self.position += n as u64;
        Ok(n)
    }
}
