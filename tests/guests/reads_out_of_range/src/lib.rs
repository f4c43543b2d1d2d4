//! A ranged parser (contract 1.2.0) that asks its host for ranges it may not have, by its `probe` option:
//! - `past-end`: the last byte and nine more;
//! - `huge`: 4 GiB less a byte from the start;
//! - `wraps`: four bytes from the largest offset there is, past which the end would wrap around;
//! - `unchecked`: past the end, trusting the answer (so it panics on the refusal);
//! - `whole`: the whole file, which it may, emitting its size and first byte.
//!
//! A refused read comes back as a fatal error saying what the host answered.

use sluice_plugin_sdk::{
    Emitter, FatalError, Options, RangeInput, RangedParser, Value, export_ranged_parser, fatal,
};

struct ReadsOutOfRange {
    probe: String,
    input: RangeInput,
    done: bool,
}

impl RangedParser for ReadsOutOfRange {
    fn create(mut options: Options, input: RangeInput) -> Result<Self, FatalError> {
        let probe = options.get("probe").unwrap_or_default();
        options.finish()?;
        Ok(ReadsOutOfRange { probe, input, done: false })
    }

    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError> {
        if self.done {
            return Ok(false);
        }
        self.done = true;
        let size = self.input.size();
        let read = match self.probe.as_str() {
            "past-end" => self.input.read(size - 1, 10),
            "huge" => self.input.read(0, u32::MAX as usize),
            "wraps" => self.input.read(u64::MAX - 1, 4),
            "unchecked" => Ok(self.input.read(size, 1).expect("the host gives what is asked")),
            "whole" => self.input.read(0, size as usize),
            other => return Err(fatal(0, format!("unknown probe `{other}`"))),
        };
        let bytes = read.map_err(|refusal| fatal(0, format!("the host refused: {refusal}")))?;
        let column = out.batch().column("size");
        out.batch().push(column, Value::Integer(bytes.len() as i64));
        let column = out.batch().column("first");
        out.batch().push(column, bytes.first().map_or(Value::Null, |b| Value::Integer(i64::from(*b))));
        out.end_row(1);
        Ok(true)
    }
}

export_ranged_parser!(ReadsOutOfRange);
