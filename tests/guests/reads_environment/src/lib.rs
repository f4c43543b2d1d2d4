//! Reports what it can see of the host's environment, arguments and clock as a fatal error, so the test
//! can check that it sees nothing.

use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, export_parser, fatal};

struct ReadsEnvironment;

impl Parser for ReadsEnvironment {
    fn create(_: Options) -> Result<Self, FatalError> {
        Ok(ReadsEnvironment)
    }

    fn feed(&mut self, _: &[u8], _: &mut Emitter) -> Result<(), FatalError> {
        let variables: Vec<String> = std::env::vars().map(|(key, _)| key).collect();
        let arguments = std::env::args().count();
        Err(fatal(
            0,
            format!("{} environment variables {variables:?}; {arguments} arguments", variables.len()),
        ))
    }

    fn finish(&mut self, _: &mut Emitter) -> Result<(), FatalError> {
        Ok(())
    }
}

export_parser!(ReadsEnvironment);
