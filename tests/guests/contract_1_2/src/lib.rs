//! A ranged format plugin built against contract 1.2.0 (its vendored `wit/`), without the SDK: it reads
//! its whole file through `input` and makes one record per line, the line's text in a column `line`, in
//! the 1.0 batch layout. A host implementing 1.3.0 (whose SDK builds typed ranged parsers) still runs it.

wit_bindgen::generate!({ path: "wit", world: "ranged-format" });

use exports::sluice::plugin::ranged_parser::{FileReader, Guest, GuestFileReader};
use sluice::plugin::input;
use sluice::plugin::types::{Batch, Column, FatalError, Output, ValueType};
use std::cell::Cell;

struct WholeFile {
    read: Cell<bool>,
}

impl GuestFileReader for WholeFile {
    fn create(_options: Vec<(String, String)>) -> Result<FileReader, FatalError> {
        Ok(FileReader::new(WholeFile { read: Cell::new(false) }))
    }

    fn next(&self) -> Result<Option<Output>, FatalError> {
        if self.read.replace(true) {
            return Ok(None);
        }
        let failed = |message: String| FatalError {
            line: 0,
            message,
            completed: Output { batches: Vec::new(), rejects: Vec::new() },
        };
        let size = u32::try_from(input::size()).map_err(|_| failed("the file is too large".into()))?;
        let bytes = input::read(0, size).map_err(failed)?;
        let mut column =
            Column { name: "line".into(), types: Vec::new(), ends: Vec::new(), data: Vec::new() };
        let mut lines = Vec::new();
        for (number, line) in bytes.split(|&b| b == b'\n').enumerate().filter(|(_, line)| !line.is_empty()) {
            column.data.extend_from_slice(line);
            column.types.push(ValueType::Text as u8);
            column.ends.push(column.data.len() as u32);
            lines.push(number as u64 + 1);
        }
        let batch = Batch { rows: lines.len() as u32, columns: vec![column], lines };
        Ok(Some(Output { batches: vec![batch], rejects: Vec::new() }))
    }
}

struct Export;

impl Guest for Export {
    type FileReader = WholeFile;
}

export!(Export);
