//! Never returns from `feed`.

use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, export_parser};

struct LoopsForever;

impl Parser for LoopsForever {
    fn create(_: Options) -> Result<Self, FatalError> {
        Ok(LoopsForever)
    }

    fn feed(&mut self, chunk: &[u8], _: &mut Emitter) -> Result<(), FatalError> {
        let mut spins: u64 = chunk.len() as u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    fn finish(&mut self, _: &mut Emitter) -> Result<(), FatalError> {
        Ok(())
    }
}

export_parser!(LoopsForever);
