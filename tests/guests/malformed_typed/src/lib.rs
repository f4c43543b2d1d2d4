//! A ranged parser (contract 1.3.0) that hands over a typed batch broken in the way its `probe` option
//! names, after a good one:
//! - `text-past-end`: a text column whose last value ends past its data;
//! - `text-backwards`: a text column whose offsets go back;
//! - `short-bitmap`: a validity bitmap a byte short of a bit per row;
//! - `key-outside`: text drawn from a dictionary by a key past its end.
//!
//! (A column shorter than its batch the SDK itself refuses; the host's check of that is a unit test.) The
//! host must refuse the broken batch and keep the good one.

use sluice_plugin_sdk::{
    Emitter, FatalError, Options, RangeInput, RangedParser, TypedColumn, Validity, export_ranged_parser,
    fatal,
};

struct MalformedTyped {
    probe: String,
    calls: u32,
}

impl RangedParser for MalformedTyped {
    fn create(mut options: Options, _input: RangeInput) -> Result<Self, FatalError> {
        let probe = options.get("probe").unwrap_or_default();
        options.finish()?;
        Ok(MalformedTyped { probe, calls: 0 })
    }

    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError> {
        self.calls += 1;
        if self.calls == 1 {
            let good = TypedColumn::integers("n", (1..=9).collect(), Validity::all());
            out.emit_typed(vec![good], 9, 1);
            return Ok(true);
        }
        let text = |ends: Vec<u32>| TypedColumn::text("note", ends, b"abcdefghi".to_vec(), Validity::all());
        let broken = match self.probe.as_str() {
            "text-past-end" => text(vec![1, 2, 3, 4, 5, 6, 7, 8, 4096]),
            "text-backwards" => text(vec![1, 2, 3, 4, 5, 4, 7, 8, 9]),
            "short-bitmap" => {
                TypedColumn::integers("n", (1..=9).collect(), Validity::from_bitmap(vec![0xff]))
            }
            "key-outside" => {
                let keys = vec![0, 1, 0, 1, 0, 1, 0, 1, 2];
                TypedColumn::dictionary("name", keys, vec![3, 5], b"annbo".to_vec(), Validity::all())
            }
            other => return Err(fatal(0, format!("unknown probe `{other}`"))),
        };
        out.emit_typed(vec![broken], 9, 10);
        Ok(false)
    }
}

export_ranged_parser!(MalformedTyped);
