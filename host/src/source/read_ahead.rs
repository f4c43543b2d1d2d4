//! An object's bytes for a parser on a thread of its own, read ahead: a task on the runtime reads the
//! object chunk by chunk and hands whole chunks over, a few ahead, so that the download goes on while the
//! parser works, and the parser's thread wakes once a chunk rather than once a network frame. As a
//! `BufRead`, it lends each chunk as it came, so the parser feeds its plugin from it without a copy.

use super::ObjectReader;
use bytes::{Buf, Bytes, BytesMut};
use std::io::{self, BufRead, Read};
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Bytes per chunk handed over: what the parser feeds its plugin at once (`parse::CHUNK_SIZE`).
const CHUNK: usize = crate::parse::CHUNK_SIZE;
/// Chunks read ahead of the parser: enough to keep the download going through a chunk's parse, and a
/// bounded few MB per object in flight.
const CHUNKS_AHEAD: usize = 2;

/// A blocking reader of an object's bytes that a task on `runtime` reads ahead.
pub struct ReadAhead {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    ended: bool,
}

impl ReadAhead {
    /// Starts reading `reader` on `runtime`; the reading stops when the `ReadAhead` is dropped.
    pub fn new(mut reader: ObjectReader, runtime: &Handle) -> ReadAhead {
        let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
        runtime.spawn(async move {
            loop {
                let mut chunk = BytesMut::with_capacity(CHUNK);
                let read = loop {
                    match reader.read_buf(&mut chunk).await {
                        Ok(0) => break Ok(()),
                        Ok(_) if chunk.len() < CHUNK => continue,
                        Ok(_) => break Ok(()),
                        Err(error) => break Err(error),
                    }
                };
                let end = read.is_err() || chunk.len() < CHUNK;
                let handed = match read {
                    Err(error) if chunk.is_empty() => sender.send(Err(error)).await,
                    // The bytes before an error first, then the error.
                    Err(error) => match sender.send(Ok(chunk.freeze())).await {
                        Ok(()) => sender.send(Err(error)).await,
                        closed => closed,
                    },
                    Ok(()) if chunk.is_empty() => Ok(()),
                    Ok(()) => sender.send(Ok(chunk.freeze())).await,
                };
                // The reader gone, or the object read to its end.
                if handed.is_err() || end {
                    break;
                }
            }
        });
        ReadAhead { chunks, current: Bytes::new(), ended: false }
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while !self.current.has_remaining() {
            if self.ended {
                return Ok(&[]);
            }
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => {
                    self.ended = true;
                    return Err(error);
                }
                None => {
                    self.ended = true;
                    return Ok(&[]);
                }
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount);
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        crate::parse::read_lent(self, buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that gives `bytes` a few at a time, then fails where `fail` says.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        fail_at: Option<usize>,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buffer: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            if self.fail_at == Some(self.at) {
                return std::task::Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut")));
            }
            let end = (self.at + 7.min(buffer.remaining()))
                .min(self.bytes.len())
                .min(self.fail_at.unwrap_or(usize::MAX));
            buffer.put_slice(&self.bytes[self.at..end]);
            self.at = end;
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn read_all(bytes: &[u8], fail_at: Option<usize>) -> (Vec<u8>, Option<io::Error>) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let reader = Trickle { bytes: bytes.to_vec(), at: 0, fail_at };
        let mut ahead = ReadAhead::new(Box::new(reader), runtime.handle());
        let mut out = Vec::new();
        let mut buffer = [0u8; 1000];
        loop {
            match ahead.read(&mut buffer) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buffer[..n]),
                Err(error) => return (out, Some(error)),
            }
        }
    }

    #[test]
    fn every_byte_arrives_in_order_across_chunks() {
        let bytes: Vec<u8> = (0..CHUNK * 2 + 12345).map(|i| (i % 251) as u8).collect();
        let (read, error) = read_all(&bytes, None);
        assert!(error.is_none());
        assert_eq!(read, bytes);
    }

    #[test]
    fn whole_chunks_are_lent_as_they_came() {
        let bytes: Vec<u8> = (0..CHUNK + 100).map(|i| (i % 7) as u8).collect();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let reader = Trickle { bytes: bytes.clone(), at: 0, fail_at: None };
        let mut ahead = ReadAhead::new(Box::new(reader), runtime.handle());
        assert_eq!(
            ahead.fill_buf().unwrap(),
            &bytes[..CHUNK],
            "the first chunk whole, though read 7 bytes at a time"
        );
        ahead.consume(CHUNK - 1);
        assert_eq!(ahead.fill_buf().unwrap(), &bytes[CHUNK - 1..CHUNK]);
        ahead.consume(1);
        assert_eq!(ahead.fill_buf().unwrap(), &bytes[CHUNK..]);
        ahead.consume(100);
        assert!(ahead.fill_buf().unwrap().is_empty());
    }

    #[test]
    fn the_bytes_before_an_error_arrive_then_the_error() {
        let bytes: Vec<u8> = (0..CHUNK + 5000).map(|i| (i % 13) as u8).collect();
        let (read, error) = read_all(&bytes, Some(CHUNK + 4998));
        assert_eq!(read, &bytes[..CHUNK + 4998]);
        assert_eq!(error.unwrap().kind(), io::ErrorKind::ConnectionReset);
    }
}
