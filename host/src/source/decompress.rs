//! gzip and zstd objects, decompressed as they stream, by the key's extension or the first bytes.

use crate::config::Compression;
use crate::parse::WholeChunks;
use std::io::{self, BufRead, Read};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// `input` as its decompressed bytes. Plain bytes come through as the input lends them (whole read-ahead
/// chunks, uncopied); decompressed ones a whole chunk at a time, decompressed straight into it.
pub fn decompressing(
    key: &str,
    compression: Compression,
    mut input: impl BufRead + Send + 'static,
) -> io::Result<Box<dyn BufRead + Send>> {
    let (compression, input): (Compression, Box<dyn BufRead + Send>) = match compression {
        Compression::Auto if let Some(named) = by_extension(key) => (named, Box::new(input)),
        Compression::Auto => {
            // Sniff the first bytes where they are in the input's buffer; where fewer are, read them and
            // put them back in front of the rest.
            let buffered = input.fill_buf()?;
            if buffered.len() >= ZSTD_MAGIC.len() || buffered.is_empty() {
                (sniff(buffered), Box::new(input))
            } else {
                let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
                (&mut input).take(ZSTD_MAGIC.len() as u64).read_to_end(&mut head)?;
                (sniff(&head), Box::new(io::Cursor::new(head).chain(input)))
            }
        }
        known => (known, Box::new(input)),
    };
    Ok(match compression {
        Compression::Gzip => Box::new(WholeChunks::new(flate2::bufread::MultiGzDecoder::new(input))),
        Compression::Zstd => Box::new(WholeChunks::new(zstd::stream::read::Decoder::with_buffer(input)?)),
        Compression::None | Compression::Auto => input,
    })
}

/// The compression `key`'s extension names (`.gz`, `.gzip`, `.zst`, `.zstd`), where it names one.
pub fn by_extension(key: &str) -> Option<Compression> {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".gzip") {
        Some(Compression::Gzip)
    } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// Refuses an object stored compressed for a plugin that reads by ranges, which such an object cannot be
/// read by.
pub fn refuse_compressed(key: &str, compression: Compression, plugin: &str) -> io::Result<()> {
    match compressed(key, compression) {
        None => Ok(()),
        Some(compressed) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the `{plugin}` plugin reads files by ranges, which a {compressed} object cannot be read by: store \
                 it uncompressed (its format compresses its own contents)"
            ),
        )),
    }
}

/// The compression `key` is stored with, by the dataflow's setting or its extension, where it has one.
fn compressed(key: &str, compression: Compression) -> Option<&'static str> {
    let compression = match compression {
        Compression::Auto => by_extension(key)?,
        set => set,
    };
    match compression {
        Compression::Gzip => Some("gzip"),
        Compression::Zstd => Some("zstd"),
        Compression::None | Compression::Auto => None,
    }
}

/// The compression the first bytes of an object say it has.
fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(key: &str, compression: Compression, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        decompressing(key, compression, io::Cursor::new(bytes)).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn by_extension_by_magic_and_plain() {
        let text = b"id,name\n1,a\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&text[..], 1).unwrap();
        assert_eq!(read_all("a.csv.gz", Compression::Auto, gz.clone()), text);
        assert_eq!(read_all("a.csv", Compression::Auto, gz), text);
        assert_eq!(read_all("a.csv.zst", Compression::Auto, zst.clone()), text);
        assert_eq!(read_all("noext", Compression::Auto, zst), text);
        assert_eq!(read_all("a.csv", Compression::Auto, text.clone()), text);
        assert_eq!(read_all("a", Compression::Auto, b"x".to_vec()), b"x");
        assert_eq!(read_all("a.gz", Compression::None, b"plain".to_vec()), b"plain");
    }

    #[test]
    fn the_magic_is_found_when_the_input_lends_fewer_bytes_than_it_has() {
        let text = b"id,name\n1,a\n".repeat(100);
        let zst = zstd::encode_all(&text[..], 1).unwrap();
        // Two bytes at a time: the sniff reads the rest of the magic and puts it back.
        let input = io::BufReader::with_capacity(2, io::Cursor::new(zst));
        let mut out = Vec::new();
        decompressing("noext", Compression::Auto, input).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, text);
    }
}
