//! Objects read by ranges, for format plugins that read that way (contract 1.2.0): a local file by
//! positioned reads, and any object of a source that cannot serve ranges from a copy in a temporary file.
//! (An S3 object's ranges are ranged GETs: see `s3::S3Ranges`.)

use super::{ObjectMeta, Source, SourceError};
use crate::plugin::RangeRead;
use std::fs::File;
use std::io::{self, Read, Seek};
use tokio::io::AsyncWriteExt;

/// A file on disk, read where it is asked: the operating system's cache is the only buffer.
pub struct FileRanges {
    file: File,
    size: u64,
}

impl FileRanges {
    /// Reads `file`, as it is now.
    pub fn new(file: File) -> io::Result<FileRanges> {
        let size = file.metadata()?.len();
        Ok(FileRanges { file, size })
    }
}

impl RangeRead for FileRanges {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        // Read into spare capacity rather than a zeroed buffer: zeroing megabytes that are overwritten at
        // once was measured at a few percent of reading a Parquet file.
        let mut bytes = Vec::with_capacity(len);
        self.file.seek(io::SeekFrom::Start(offset))?;
        (&mut self.file).take(len as u64).read_to_end(&mut bytes)?;
        if bytes.len() < len {
            let short = len - bytes.len();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended {short} bytes early"),
            ));
        }
        Ok(bytes)
    }
}

/// `object` of `source` copied to a temporary file (deleted once closed), for a source that can only
/// stream its objects.
pub async fn spooled<S: Source + ?Sized>(source: &S, object: &ObjectMeta) -> Result<FileRanges, SourceError> {
    let failed = |message: String| SourceError::Open {
        source_name: source.describe(),
        key: object.key.clone(),
        message: format!("copying it to a temporary file to read by ranges failed: {message}"),
    };
    let mut reader = source.open(object).await?;
    let file = tempfile::tempfile().map_err(|e| failed(e.to_string()))?;
    let mut copy = tokio::fs::File::from_std(file.try_clone().map_err(|e| failed(e.to_string()))?);
    tokio::io::copy(&mut reader, &mut copy).await.map_err(|e| failed(e.to_string()))?;
    copy.flush().await.map_err(|e| failed(e.to_string()))?;
    FileRanges::new(file).map_err(|e| failed(e.to_string()))
}

/// Where the next read is served from, for a source whose every read costs a request: the bytes fetched
/// last, with a little read ahead. A format reads mostly forward (a page's header, then its bytes, then
/// the next header), so a read at or near the end of the window extends it with one request, rather than
/// one request per read; a read elsewhere starts a new window. The window holds at most one read plus
/// [`READ_AHEAD`] and [`GAP`] bytes.
#[derive(Default)]
pub struct Window {
    /// The file offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
}

/// Bytes fetched past the end of a read: enough for the next page's header, which the Parquet plugin asks
/// for right after a page (in a block of 4 KiB), and little enough that the end of a column chunk costs
/// little of the next (which may not be asked for).
pub const READ_AHEAD: u64 = 16 * 1024;
/// A read that begins at most this far past the window's end extends the window across the gap, rather
/// than costing a request of its own.
pub const GAP: u64 = 64 * 1024;

/// What a [`Window`] needs fetched to serve a read.
#[derive(Debug, PartialEq, Eq)]
pub struct Fetch {
    /// The range to fetch.
    pub from: u64,
    pub to: u64,
}

impl Window {
    /// `len` bytes from `offset` where the window holds them.
    pub fn serve(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let from = offset.checked_sub(self.start)? as usize;
        self.bytes.get(from..from.checked_add(len)?).map(<[u8]>::to_vec)
    }

    /// What to fetch for a read of `len` bytes from `offset` in a file of `size` bytes, which
    /// [`Window::serve`] could not serve.
    pub fn plan(&self, offset: u64, len: usize, size: u64) -> Fetch {
        let end = self.start + self.bytes.len() as u64;
        let extends = !self.bytes.is_empty() && offset >= self.start && offset <= end + GAP;
        let to = (offset + len as u64 + READ_AHEAD).min(size);
        Fetch { from: if extends { end } else { offset }, to }
    }

    /// Takes the bytes `fetched` for `plan`, then serves the read (of `len` bytes from `offset`), keeping
    /// only what lies from `offset` on.
    pub fn fill(&mut self, plan: &Fetch, fetched: Vec<u8>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if plan.from == self.start + self.bytes.len() as u64 && !self.bytes.is_empty() {
            self.bytes.extend_from_slice(&fetched);
        } else {
            self.start = plan.from;
            self.bytes = fetched;
        }
        let drop = (offset - self.start) as usize;
        self.bytes.drain(..drop.min(self.bytes.len()));
        self.start = offset;
        self.serve(offset, len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source gave {} bytes of the range {}..{}", self.bytes.len(), plan.from, plan.to),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves reads of a file of `size` bytes (byte `i` is `i % 251`) through a window, returning the
    /// ranges fetched.
    fn fetches(size: u64, reads: &[(u64, usize)]) -> Vec<(u64, u64)> {
        let file: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut window = Window::default();
        let mut fetched = Vec::new();
        let mut longest = 0;
        for &(offset, len) in reads {
            longest = longest.max(len as u64);
            let bytes = match window.serve(offset, len) {
                Some(bytes) => bytes,
                None => {
                    let plan = window.plan(offset, len, size);
                    fetched.push((plan.from, plan.to));
                    let got = file[plan.from as usize..plan.to as usize].to_vec();
                    window.fill(&plan, got, offset, len).unwrap()
                }
            };
            assert_eq!(bytes, &file[offset as usize..offset as usize + len], "read {offset}+{len}");
            assert!(window.bytes.len() as u64 <= longest + READ_AHEAD + GAP, "the window stays bounded");
        }
        fetched
    }

    #[test]
    fn reads_that_go_forward_extend_one_window_and_reads_elsewhere_start_another() {
        const K: u64 = 1024;
        let size = 10 << 20;
        let reads = [
            // A page header block, its page, the next header (inside the read-ahead), the next page.
            (0, 16 * 1024),
            (100, 300 * 1024),
            (100 + 300 * K, 16 * 1024),
            (200 + 300 * K, 300 * 1024),
            // Another column's chunk, far on: a window of its own.
            (5 << 20, 1000),
            // Just past the window: across the gap.
            ((5 << 20) + 1000 + READ_AHEAD + 10, 10),
            // The footer: at the end, cut at the file's size.
            (size - 8, 8),
        ];
        assert_eq!(
            fetches(size, &reads),
            vec![
                (0, 16 * K + READ_AHEAD),
                (16 * K + READ_AHEAD, 100 + 300 * K + READ_AHEAD),
                (100 + 300 * K + READ_AHEAD, 200 + 600 * K + READ_AHEAD),
                (5 << 20, (5 << 20) + 1000 + READ_AHEAD),
                ((5 << 20) + 1000 + READ_AHEAD, (5 << 20) + 1000 + READ_AHEAD + 20 + READ_AHEAD),
                (size - 8, size),
            ]
        );
    }
}
