//! Allocates (and touches) memory until it dies.

use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, export_parser};

struct AllocatesForever {
    hoard: Vec<Vec<u8>>,
}

impl Parser for AllocatesForever {
    fn create(_: Options) -> Result<Self, FatalError> {
        Ok(AllocatesForever { hoard: Vec::new() })
    }

    fn feed(&mut self, _: &[u8], _: &mut Emitter) -> Result<(), FatalError> {
        loop {
            self.hoard.push(vec![1u8; 1 << 20]);
        }
    }

    fn finish(&mut self, _: &mut Emitter) -> Result<(), FatalError> {
        Ok(())
    }
}

export_parser!(AllocatesForever);
