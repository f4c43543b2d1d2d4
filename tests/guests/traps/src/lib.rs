//! Panics (a trap, since plugins abort on panic) on the first chunk.

use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, export_parser};

struct Traps;

impl Parser for Traps {
    fn create(_: Options) -> Result<Self, FatalError> {
        Ok(Traps)
    }

    fn feed(&mut self, chunk: &[u8], _: &mut Emitter) -> Result<(), FatalError> {
        panic!("this plugin always fails (fed {} bytes)", chunk.len());
    }

    fn finish(&mut self, _: &mut Emitter) -> Result<(), FatalError> {
        Ok(())
    }
}

export_parser!(Traps);
