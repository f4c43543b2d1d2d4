//! ZIP archives as containers, as gzip and zstd are compressions: each member of `orders.zip` is an object
//! of its own, `orders.zip!/2026/11.csv`, listed (so preview and the ledger show it), parsed and loaded
//! (so its rows and rejects name it) on its own.
//!
//! Only the archive's central directory is read to list it: a ZIP keeps it at its end, so it takes a
//! ranged read or two, not a download. A member is read from its own bytes in the archive (stored, or
//! deflated and inflated as it streams), its CRC-32 checked at its end. A member's version is its archive's:
//! its `etag` holds the archive's size and ETag, so a worker given only the member can find the archive
//! again, and a replaced archive reads all its members again.

use crate::config::Compression;
use crate::plugin::RangeRead;
use crate::source::{ObjectMeta, Source, SourceError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use tokio::runtime::Handle;

/// Between an archive's key and a member's name in the member's key.
const SEPARATOR: &str = "!/";
/// The most asked of the archive in one read of a member's bytes.
const CHUNK: u64 = 1 << 20;

/// Whether `key` is read as a ZIP archive: by its extension, unless the dataflow reads objects as they are.
pub fn is_archive(key: &str, compression: Compression) -> bool {
    compression != Compression::None && key.to_ascii_lowercase().ends_with(".zip")
}

/// A member of an archive, as its object names it.
pub struct Member {
    /// The archive, as it was listed.
    pub archive: ObjectMeta,
    /// The member's name inside it.
    pub name: String,
}

impl Member {
    /// The member `object` names, where it names one (its key holds `!/` after a `.zip`).
    pub fn of(object: &ObjectMeta) -> Option<Member> {
        let (archive_key, name) = split(&object.key)?;
        let (size, etag) = object.etag.split_once(':')?;
        let archive = ObjectMeta {
            key: archive_key.to_string(),
            size: size.parse().ok()?,
            etag: etag.to_string(),
            last_modified: object.last_modified,
        };
        Some(Member { archive, name: name.to_string() })
    }
}

/// The key of the archive a member's key names (`in/exports.zip` of `in/exports.zip!/orders/11.csv`).
pub fn archive_key(key: &str) -> Option<&str> {
    split(key).map(|(archive, _)| archive)
}

/// A member's key as the archive's key and the member's name (`in/exports.zip`, `orders/11.csv`).
pub fn split(key: &str) -> Option<(&str, &str)> {
    let end = key.to_ascii_lowercase().find(".zip!/")? + ".zip".len();
    Some((&key[..end], &key[end + SEPARATOR.len()..]))
}

/// `listing`, each archive in it that is `wanted` replaced by its members (an archive's directory costs a
/// read or two, so a run reads only those of archives it may take members of). An archive whose directory
/// cannot be read stays as it is: opening it then fails it alone, saying why.
pub fn expand(
    runtime: &Handle,
    source: &dyn Source,
    listing: Vec<ObjectMeta>,
    compression: Compression,
    wanted: impl Fn(&ObjectMeta) -> bool,
) -> Result<Vec<ObjectMeta>, SourceError> {
    let mut expanded = Vec::with_capacity(listing.len());
    for object in listing {
        if !is_archive(&object.key, compression) || !wanted(&object) {
            expanded.push(object);
            continue;
        }
        let ranges = runtime.block_on(source.open_ranged(&object))?;
        match members(ranges) {
            Ok(members) => expanded.extend(members.into_iter().map(|(name, size)| ObjectMeta {
                key: format!("{}{SEPARATOR}{name}", object.key),
                size,
                etag: format!("{}:{}", object.size, object.etag),
                last_modified: object.last_modified,
            })),
            Err(error) => {
                tracing::warn!(object = object.key, "not a readable ZIP archive: {error}");
                expanded.push(object);
            }
        }
    }
    Ok(expanded)
}

/// The files of the archive `ranges` reads, with their sizes: directories and the metadata macOS adds
/// (`__MACOSX/`, `._*`, `.DS_Store`) left out.
pub fn members(ranges: Box<dyn RangeRead>) -> io::Result<Vec<(String, u64)>> {
    let archive =
        zip::ZipArchive::new(Seekable::buffered(ranges)).map_err(|e| zip_failure("its directory", e))?;
    let mut members = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(|e| zip_failure("its directory", e))?;
        let name = entry.name().map_err(|e| zip_failure("a member's name", e))?.into_owned();
        let file_name = name.rsplit('/').next().unwrap_or_default();
        let metadata =
            name.starts_with("__MACOSX/") || file_name.starts_with("._") || file_name == ".DS_Store";
        if entry.is_dir() || metadata {
            continue;
        }
        members.push((name, entry.size()));
    }
    Ok(members)
}

/// Why the archive `ranges` reads was listed whole: its directory cannot be read (see [`expand`]).
pub fn why_unreadable(ranges: Box<dyn RangeRead>) -> io::Error {
    match members(ranges) {
        Err(error) if error.kind() == io::ErrorKind::InvalidData => {
            unreadable(format!("not a readable ZIP archive: {error}"))
        }
        Err(error) => error,
        Ok(_) => io::Error::other(
            "the archive's directory could not be read when it was listed; the next run lists its members",
        ),
    }
}

/// Why a member or an archive cannot be read.
fn unreadable(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A zip crate error: the source's own failure as it was (a broken connection leaves the member pending),
/// anything else as bytes that are not a readable archive (which fails it).
fn zip_failure(context: &str, error: zip::result::ZipError) -> io::Error {
    match error {
        zip::result::ZipError::Io(error) => error,
        other => unreadable(format!("{context}: {other}")),
    }
}

/// The member `name` of the archive `ranges` reads: where its bytes are and how they are stored.
struct Located {
    ranges: Box<dyn RangeRead>,
    start: u64,
    compressed: u64,
    size: u64,
    deflated: bool,
    crc32: u32,
}

fn locate(ranges: Box<dyn RangeRead>, name: &str) -> io::Result<Located> {
    if is_archive(name, Compression::Auto) {
        return Err(unreadable(format!(
            "member `{name}` is a ZIP archive itself; Sluice reads the members of an archive, not of one inside it"
        )));
    }
    let mut archive = zip::ZipArchive::new(Seekable::buffered(ranges))
        .map_err(|e| zip_failure("not a readable ZIP archive", e))?;
    let index = archive
        .index_for_name(name)
        .ok_or_else(|| unreadable(format!("the archive has no member `{name}`")))?;
    let member = archive.by_index_raw(index).map_err(|e| zip_failure(&format!("member `{name}`"), e))?;
    if member.encrypted() {
        return Err(unreadable(format!("member `{name}` is encrypted")));
    }
    // The zip crate is built without its codecs (members are inflated with flate2 as they stream), so
    // deflate is one of its "unsupported" methods, named by a constant.
    let method = member.compression();
    let deflated = if method == zip::CompressionMethod::Stored {
        false
    } else if method == zip::CompressionMethod::DEFLATE {
        true
    } else {
        return Err(unreadable(format!(
            "member `{name}` is compressed with {method}; Sluice reads stored and deflated members"
        )));
    };
    let start = member.data_start().ok_or_else(|| unreadable(format!("member `{name}`: no data offset")))?;
    let (compressed, size, crc32) = (member.compressed_size(), member.size(), member.crc32());
    drop(member);
    let ranges = archive.into_inner().into_inner().ranges;
    Ok(Located { ranges, start, compressed, size, deflated, crc32 })
}

/// The member `name`'s bytes from its start, inflated where they are deflated, checked against its CRC-32
/// at their end.
pub fn stream(ranges: Box<dyn RangeRead>, name: &str) -> io::Result<Box<dyn BufRead + Send>> {
    let located = locate(ranges, name)?;
    let span = Within { ranges: located.ranges, start: located.start, size: located.compressed };
    let stored = Seekable { ranges: Box::new(span), position: 0 };
    let bytes: Box<dyn Read + Send> = if located.deflated {
        Box::new(flate2::read::DeflateDecoder::new(BufReader::with_capacity(CHUNK as usize, stored)))
    } else {
        Box::new(stored)
    };
    let checked = Checked {
        inner: bytes,
        hasher: crc32fast::Hasher::new(),
        read: 0,
        size: located.size,
        crc32: located.crc32,
        name: name.to_string(),
    };
    Ok(Box::new(BufReader::with_capacity(CHUNK as usize, checked)))
}

/// The member `name` read by ranges: a stored member is a span of the archive; a deflated one is inflated
/// into a temporary file first.
pub fn ranged(ranges: Box<dyn RangeRead>, name: &str) -> io::Result<Box<dyn RangeRead>> {
    let located = locate(ranges, name)?;
    if !located.deflated {
        return Ok(Box::new(Within { ranges: located.ranges, start: located.start, size: located.size }));
    }
    let mut file = tempfile::tempfile()?;
    io::copy(&mut stream(located.ranges, name)?, &mut file)?;
    Ok(Box::new(super::FileRanges::new(file)?))
}

/// A span of the archive as a file of its own: a stored member, or a member's compressed bytes.
struct Within {
    ranges: Box<dyn RangeRead>,
    start: u64,
    size: u64,
}

impl RangeRead for Within {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        // The host checks every range against `size` before it reads.
        self.ranges.read_at(self.start + offset, len)
    }
}

/// A member's bytes, refused at their end where their length or CRC-32 is not what the archive says.
struct Checked {
    inner: Box<dyn Read + Send>,
    hasher: crc32fast::Hasher,
    read: u64,
    size: u64,
    crc32: u32,
    name: String,
}

impl Read for Checked {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.read += read as u64;
        if read == 0 || self.read > self.size {
            let crc32 = self.hasher.clone().finalize();
            if self.read != self.size || crc32 != self.crc32 {
                return Err(unreadable(format!(
                    "member `{}` is damaged: {} bytes with CRC-32 {crc32:08x}, where the archive says {} with {:08x}",
                    self.name, self.read, self.size, self.crc32
                )));
            }
        }
        Ok(read)
    }
}

/// Ranges read in order, as `Read + Seek`: the archive for the zip crate to read its directory with
/// (buffered, so that its many small reads cost few of the source's), or a member's bytes as they stream.
struct Seekable {
    ranges: Box<dyn RangeRead>,
    position: u64,
}

impl Seekable {
    fn buffered(ranges: Box<dyn RangeRead>) -> BufReader<Seekable> {
        BufReader::with_capacity(64 * 1024, Seekable { ranges, position: 0 })
    }
}

impl Read for Seekable {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let left = self.ranges.size().saturating_sub(self.position);
        let len = (buffer.len() as u64).min(left).min(CHUNK) as usize;
        if len == 0 {
            return Ok(0);
        }
        let bytes = self.ranges.read_at(self.position, len)?;
        buffer[..len].copy_from_slice(&bytes);
        self.position += len as u64;
        Ok(len)
    }
}

impl Seek for Seekable {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.ranges.size().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position =
            position.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start"))?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::SystemTime;

    struct InMemory(Vec<u8>);

    impl RangeRead for InMemory {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }

        fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            Ok(self.0[offset as usize..offset as usize + len].to_vec())
        }
    }

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let stored =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        writer.add_directory("orders/", stored).unwrap();
        for (name, bytes) in members {
            writer.start_file(*name, stored).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_member_names_its_archive_by_its_key_and_version() {
        let object = ObjectMeta {
            key: "in/Exports.ZIP!/orders/a!/b.csv".into(),
            size: 10,
            etag: "4096:\"abc:def\"".into(),
            last_modified: SystemTime::UNIX_EPOCH,
        };
        let member = Member::of(&object).unwrap();
        assert_eq!(
            (member.archive.key.as_str(), member.name.as_str()),
            ("in/Exports.ZIP", "orders/a!/b.csv")
        );
        assert_eq!((member.archive.size, member.archive.etag.as_str()), (4096, "\"abc:def\""));
        let plain = ObjectMeta { key: "in/a.csv".into(), ..object };
        assert!(Member::of(&plain).is_none());
        assert!(is_archive("a/b.Zip", Compression::Auto) && !is_archive("a/b.Zip", Compression::None));
    }

    #[test]
    fn members_are_listed_read_whole_and_by_range_and_a_damaged_one_is_refused() {
        let bytes = archive(&[
            ("orders/a.csv", b"id\n1\n"),
            ("__MACOSX/orders/._a.csv", b"x"),
            ("b.csv", b"id\n2\n"),
        ]);
        let listed = members(Box::new(InMemory(bytes.clone()))).unwrap();
        assert_eq!(listed, [("orders/a.csv".to_string(), 5), ("b.csv".to_string(), 5)]);

        let mut text = String::new();
        stream(Box::new(InMemory(bytes.clone())), "b.csv").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "id\n2\n");
        let mut within = ranged(Box::new(InMemory(bytes.clone())), "orders/a.csv").unwrap();
        assert_eq!((within.size(), within.read_at(3, 2).unwrap()), (5, b"1\n".to_vec()));

        let mut damaged = bytes.clone();
        let at = damaged.windows(5).position(|w| w == b"id\n2\n").unwrap();
        damaged[at + 3] = b'3';
        let error =
            stream(Box::new(InMemory(damaged)), "b.csv").unwrap().read_to_string(&mut text).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("member `b.csv` is damaged"), "{error}");
        let missing = stream(Box::new(InMemory(bytes)), "c.csv").err().unwrap();
        assert!(missing.to_string().contains("the archive has no member `c.csv`"), "{missing}");
        let garbage = why_unreadable(Box::new(InMemory(b"not a zip at all".to_vec())));
        assert!(garbage.to_string().starts_with("not a readable ZIP archive"), "{garbage}");
    }

    #[test]
    fn an_archive_inside_an_archive_is_refused_saying_so() {
        let inner = archive(&[(
            "a.csv", b"id
1
",
        )]);
        let outer = archive(&[("nested/Inner.ZIP", &inner)]);
        let listed = members(Box::new(InMemory(outer.clone()))).unwrap();
        assert_eq!(listed, [("nested/Inner.ZIP".to_string(), inner.len() as u64)]);
        for error in [
            stream(Box::new(InMemory(outer.clone())), "nested/Inner.ZIP").err().unwrap(),
            ranged(Box::new(InMemory(outer)), "nested/Inner.ZIP").err().unwrap(),
        ] {
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(
                error.to_string().contains("member `nested/Inner.ZIP` is a ZIP archive itself"),
                "{error}"
            );
        }
    }
}
