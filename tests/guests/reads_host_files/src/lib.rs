//! Tries to read the host's files, environment and network, and reports what it got as a fatal error, so
//! the test can check that it got nothing.

use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, export_parser, fatal};

struct ReadsHostFiles;

impl Parser for ReadsHostFiles {
    fn create(_: Options) -> Result<Self, FatalError> {
        Ok(ReadsHostFiles)
    }

    fn feed(&mut self, _: &[u8], _: &mut Emitter) -> Result<(), FatalError> {
        let passwd = match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => format!("read /etc/passwd: {text}"),
            Err(error) => format!("opening /etc/passwd failed: {error}"),
        };
        let listing = match std::fs::read_dir("/") {
            Ok(entries) => format!("listed / with {} entries", entries.count()),
            Err(error) => format!("listing / failed: {error}"),
        };
        let environment = std::env::vars().count();
        Err(fatal(0, format!("{passwd}; {listing}; {environment} environment variables")))
    }

    fn finish(&mut self, _: &mut Emitter) -> Result<(), FatalError> {
        Ok(())
    }
}

export_parser!(ReadsHostFiles);
