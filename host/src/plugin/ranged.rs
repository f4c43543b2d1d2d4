//! The host side of contract 1.2.0's `input`: the file a ranged format plugin reads, served by range (to
//! plugins of the `ranged-format` world and, since 1.3.0, of the `typed-ranged-format` one).
//!
//! A ranged parser asks for bytes at offsets. Every request is checked here before any byte is read: a
//! range outside the file, or longer than one read may be, is refused with an error the plugin sees, and
//! the file is not touched. A read that fails (a broken connection) is kept, so that the object's error
//! says why and whether the next run should try it again.

use std::io;

/// The longest range one read may take. A plugin's memory is capped far below what a `u32` length could
/// ask for; this keeps the host's own buffer as small.
pub const MAX_READ: u32 = 64 << 20;

/// A file read by ranges: a local file, an S3 object. The host asks only for ranges inside the file, at
/// most [`MAX_READ`] long.
pub trait RangeRead: Send {
    /// The file's size in bytes.
    fn size(&self) -> u64;
    /// Exactly `len` bytes from `offset`.
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// The file of one ranged parse, as its store holds it.
pub(crate) struct Served {
    input: Box<dyn RangeRead>,
    size: u64,
    /// Bytes handed to the plugin so far.
    served: u64,
    /// The first read that failed, for the object's error.
    failed: Option<io::Error>,
}

impl Served {
    pub(crate) fn new(input: Box<dyn RangeRead>) -> Served {
        Served { size: input.size(), input, served: 0, failed: None }
    }

    /// Bytes handed to the plugin so far.
    pub(crate) fn served(&self) -> u64 {
        self.served
    }

    /// The read that failed, if one did.
    pub(crate) fn take_failure(&mut self) -> Option<io::Error> {
        self.failed.take()
    }

    /// The file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The `len` bytes at `offset`, refused (with the reason the plugin sees) where the range is outside
    /// the file or longer than one read may be.
    pub(crate) fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        if len > MAX_READ {
            return Err(format!(
                "a read of {len} bytes is more than the {} MiB one read may take",
                MAX_READ >> 20
            ));
        }
        let end = offset.checked_add(u64::from(len)).filter(|end| *end <= self.size);
        if end.is_none() {
            return Err(format!(
                "bytes {offset}..{} are past the end of the file ({} bytes)",
                u128::from(offset) + u128::from(len),
                self.size
            ));
        }
        match self.input.read_at(offset, len as usize) {
            Ok(bytes) => {
                self.served += bytes.len() as u64;
                Ok(bytes)
            }
            Err(error) => {
                let message = error.to_string();
                self.failed.get_or_insert(error);
                Err(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        bytes: Vec<u8>,
        reads: usize,
    }

    impl RangeRead for Counting {
        fn size(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            self.reads += 1;
            Ok(self.bytes[offset as usize..offset as usize + len].to_vec())
        }
    }

    #[test]
    fn ranges_outside_the_file_or_too_long_are_refused_before_any_read() {
        let mut served = Served::new(Box::new(Counting { bytes: (0..100).collect(), reads: 0 }));
        assert_eq!(served.read(98, 2).unwrap(), vec![98, 99]);
        assert_eq!(served.read(100, 0).unwrap(), Vec::<u8>::new());
        let past = served.read(99, 2).unwrap_err();
        assert!(past.contains("bytes 99..101 are past the end of the file (100 bytes)"), "{past}");
        let wrapping = served.read(u64::MAX, 1).unwrap_err();
        assert!(wrapping.contains("past the end"), "{wrapping}");
        let huge = served.read(0, u32::MAX).unwrap_err();
        assert!(huge.contains("more than the 64 MiB one read may take"), "{huge}");
        assert!(served.take_failure().is_none());
    }
}
