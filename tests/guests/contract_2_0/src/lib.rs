//! A format plugin built against a future contract 2.0.0 (its vendored `wit/`): a 1.x host refuses it,
//! naming both versions.

wit_bindgen::generate!({ path: "wit", world: "format" });

use exports::sluice::plugin::parser::{FileParser, Guest, GuestFileParser};

struct Rows;

impl GuestFileParser for Rows {
    fn create(_options: Vec<(String, String)>) -> Result<FileParser, String> {
        Ok(FileParser::new(Rows))
    }

    fn feed(&self, chunk: Vec<u8>) -> Result<Vec<String>, String> {
        Ok(vec![String::from_utf8_lossy(&chunk).into_owned()])
    }

    fn finish(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

struct Export;

impl Guest for Export {
    type FileParser = Rows;
}

export!(Export);
