//! A format plugin built against contract 1.0.0 (its vendored `wit/`), without the SDK: one record per
//! line, the line's text in a column `line`. A host implementing a later 1.x minor loads and runs it.

wit_bindgen::generate!({ path: "wit", world: "format" });

use exports::sluice::plugin::parser::{FileParser, Guest, GuestFileParser};
use sluice::plugin::types::{Batch, Column, FatalError, Output, ValueType};
use std::cell::RefCell;

struct Lines {
    /// The bytes of a line not yet ended, and the number of lines ended so far.
    pending: RefCell<(Vec<u8>, u64)>,
}

impl Lines {
    /// The batch of every complete line in `pending` (all of it at the end of the input).
    fn take(&self, at_end: bool) -> Output {
        let (pending, lines_seen) = &mut *self.pending.borrow_mut();
        let cut = if at_end {
            pending.len()
        } else {
            pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        let complete: Vec<u8> = pending.drain(..cut).collect();
        let mut column =
            Column { name: "line".into(), types: Vec::new(), ends: Vec::new(), data: Vec::new() };
        let mut lines = Vec::new();
        for line in complete.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            *lines_seen += 1;
            column.data.extend_from_slice(line);
            column.types.push(ValueType::Text as u8);
            column.ends.push(column.data.len() as u32);
            lines.push(*lines_seen);
        }
        let batches = if lines.is_empty() {
            Vec::new()
        } else {
            vec![Batch { rows: lines.len() as u32, columns: vec![column], lines }]
        };
        Output { batches, rejects: Vec::new() }
    }
}

impl GuestFileParser for Lines {
    fn create(_options: Vec<(String, String)>) -> Result<FileParser, FatalError> {
        Ok(FileParser::new(Lines { pending: RefCell::new((Vec::new(), 0)) }))
    }

    fn feed(&self, chunk: Vec<u8>) -> Result<Output, FatalError> {
        self.pending.borrow_mut().0.extend_from_slice(&chunk);
        Ok(self.take(false))
    }

    fn finish(&self) -> Result<Output, FatalError> {
        Ok(self.take(true))
    }
}

struct Export;

impl Guest for Export {
    type FileParser = Lines;
}

export!(Export);
