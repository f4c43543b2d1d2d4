//! The file, as the parquet crate reads it: a `ChunkReader` over the host's ranged reads.
//!
//! The parquet crate reads a column chunk a page at a time: the page's header through a reader (not
//! knowing its length), then the page's bytes by range; and it reads the chunks of a row group's columns
//! in turn, a batch's worth of each. Once the footer is read, the column chunks to be read are known, so a
//! read inside one fetches the chunk onward in one block (up to a bound), kept per chunk: a chunk costs
//! the host a few large reads (a few ranged GETs from S3) rather than two per page, and nothing outside
//! the columns asked for is fetched. Only as many blocks are kept as a row group has chunks being read,
//! the least recently used let go first, so what is kept does not grow with the file.

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
    /// How many blocks are kept: the chunks of one row group that are read.
    capacity: usize,
    /// The block fetched last of each chunk being read (by the chunk's start): when it was last used,
    /// its file offset, its bytes.
    kept: HashMap<u64, (u64, u64, Bytes)>,
    /// Counts uses, to tell the least recently used block.
    uses: u64,
}

impl Chunks {
    pub fn new(input: RangeInput) -> Chunks {
        Chunks { size: input.size(), input, state: Arc::default() }
    }

    /// Says which byte ranges (column chunks) will be read, `per_group` of them in each row group, so
    /// that reads inside one fetch it in blocks.
    pub fn will_read(&self, mut chunks: Vec<(u64, u64)>, per_group: usize) {
        chunks.sort_unstable();
        let mut state = self.lock();
        state.capacity = per_group.max(1);
        state.block = (KEPT / state.capacity as u64).max(MIN_BLOCK);
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
        state.uses += 1;
        let now = state.uses;
        if let Some((used, offset, block)) = state.kept.get_mut(&chunk_start)
            && start >= *offset
            && end <= *offset + block.len() as u64
        {
            *used = now;
            let from = (start - *offset) as usize;
            return Ok(block.slice(from..from + len as usize));
        }
        let fetch = len.max(state.block.min(chunk_end - start));
        let block = Bytes::from(self.input.read(start, fetch as usize)?);
        let wanted = block.slice(..len as usize);
        state.kept.insert(chunk_start, (now, start, block));
        if state.kept.len() > state.capacity {
            let oldest = state.kept.iter().min_by_key(|(_, (used, _, _))| *used).map(|(chunk, _)| *chunk);
            state.kept.remove(&oldest.expect("more than one block is kept"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_fetched_in_blocks_and_only_a_row_groups_worth_of_blocks_is_kept() {
        let file: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let chunks = Chunks::new(RangeInput::from_bytes(file.clone()));
        // Ten row groups of two column chunks, 500 bytes each.
        let ranges = (0..20).map(|i| (i * 500, i * 500 + 500)).collect();
        chunks.will_read(ranges, 2);
        for group in 0..10u64 {
            for page in 0..5u64 {
                for column in 0..2u64 {
                    let start = (group * 2 + column) * 500 + page * 100;
                    let bytes = chunks.get_bytes(start, 100).unwrap();
                    assert_eq!(&bytes[..], &file[start as usize..start as usize + 100]);
                }
            }
            let state = chunks.lock();
            assert!(state.kept.len() <= 2, "{} blocks kept after row group {group}", state.kept.len());
            // Each chunk was fetched whole at its first read: its block holds all of it.
            assert!(state.kept.values().all(|(_, _, block)| block.len() == 500));
        }
    }
}
