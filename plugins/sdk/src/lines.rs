//! Splits a stream of chunks into lines, for line-oriented formats.

use crate::FatalError;

/// Feeds complete lines, without their `\n` or `\r\n`, to a callback with their 1-based line number; holds a
/// line that a chunk cut in two until its end arrives.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    line: u64,
}

impl LineSplitter {
    /// Splits `chunk`, calling `each(line_number, line)` for every line completed by it.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(u64, &[u8]) -> Result<(), FatalError>,
    ) -> Result<(), FatalError> {
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            self.line += 1;
            if self.partial.is_empty() {
                each(self.line, strip_cr(&rest[..end]))?;
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.partial);
                each(self.line, strip_cr(&line))?;
                self.partial = line;
                self.partial.clear();
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// The input has ended: a last line without a newline is passed on.
    pub fn finish(
        &mut self,
        mut each: impl FnMut(u64, &[u8]) -> Result<(), FatalError>,
    ) -> Result<(), FatalError> {
        if self.partial.is_empty() {
            return Ok(());
        }
        self.line += 1;
        let line = std::mem::take(&mut self.partial);
        each(self.line, strip_cr(&line))
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
