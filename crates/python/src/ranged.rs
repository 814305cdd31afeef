//! A file on a web server read as `Read + Seek` through HTTP range
//! requests, so that the zip reader can take a wheel's METADATA (the end
//! of the archive, where its directory is, and one entry) with two or
//! three small requests instead of downloading the whole wheel.
//!
//! Written here because the crates that do this (`async_http_range_reader`)
//! are async and bring their own HTTP stack, where this one sends through
//! the index client (its credentials, retries and request count) and feeds
//! the synchronous `zip` reader the resolver already uses.

use std::io::{self, Read, Seek, SeekFrom};

/// How much each request asks for at least: the zip reader reads a few
/// bytes at a time, and a wheel's directory and METADATA are usually
/// within this.
pub const CHUNK: u64 = 64 << 10;

/// At most this many requests before giving up (the caller then downloads
/// the file): a directory of many megabytes is cheaper to take whole.
const MAX_REQUESTS: usize = 8;

/// Reads a file of `len` bytes through `fetch(start, end)`, which returns
/// bytes `start..end` of it; what was fetched is kept.
pub struct Ranged<F> {
    fetch: F,
    len: u64,
    pos: u64,
    chunks: Vec<(u64, Vec<u8>)>,
    requests: usize,
}

impl<F: FnMut(u64, u64) -> io::Result<Vec<u8>>> Ranged<F> {
    /// A reader over a file of `len` bytes of which `tail` (its last bytes,
    /// fetched first to learn the length) is known already.
    pub fn new(len: u64, tail: Vec<u8>, fetch: F) -> Ranged<F> {
        let start = len.saturating_sub(tail.len() as u64);
        Ranged { fetch, len, pos: 0, chunks: vec![(start, tail)], requests: 1 }
    }
}

impl<F: FnMut(u64, u64) -> io::Result<Vec<u8>>> Read for Ranged<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let pos = self.pos;
        let held = self.chunks.iter().position(|(start, bytes)| *start <= pos && pos < start + bytes.len() as u64);
        let index = match held {
            Some(i) => i,
            None => {
                if self.requests >= MAX_REQUESTS {
                    return Err(io::Error::other("too many range requests for one file"));
                }
                // Up to the next chunk held (no byte twice), at least CHUNK.
                let next = self.chunks.iter().map(|(s, _)| *s).filter(|s| *s > pos).min().unwrap_or(self.len);
                let end = next.min(pos + CHUNK.max(buf.len() as u64)).min(self.len);
                let bytes = (self.fetch)(pos, end)?;
                self.requests += 1;
                if bytes.len() as u64 != end - pos {
                    return Err(io::Error::other(format!(
                        "asked for {} bytes at {pos}, the server sent {}",
                        end - pos,
                        bytes.len()
                    )));
                }
                self.chunks.push((pos, bytes));
                self.chunks.len() - 1
            }
        };
        let (start, bytes) = &self.chunks[index];
        let from = (pos - start) as usize;
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<F> Seek for Ranged<F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads through the chunks give the file's bytes, and each byte is
    /// fetched once.
    #[test]
    fn reads_any_range_and_fetches_each_byte_once() {
        let file: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let len = file.len() as u64;
        let tail = file[file.len() - 1000..].to_vec();
        let mut asked = Vec::new();
        let mut r = Ranged::new(len, tail, |s, e| {
            asked.push((s, e));
            Ok(file[s as usize..e as usize].to_vec())
        });
        r.seek(SeekFrom::Start(10)).unwrap();
        let mut buf = vec![0; 100];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, file[10..110]);
        r.seek(SeekFrom::End(-500)).unwrap();
        let mut end = Vec::new();
        r.read_to_end(&mut end).unwrap();
        assert_eq!(end, file[file.len() - 500..]);
        r.seek(SeekFrom::Start(150_000)).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, file[150_000..]);
        assert_eq!(r.requests, 3);
        drop(r);
        assert_eq!(asked, [(10, 10 + CHUNK), (150_000, 199_000)]);
    }

    #[test]
    fn a_short_answer_is_an_error() {
        let mut r = Ranged::new(100_000, vec![0; 10], |_, _| Ok(vec![1, 2, 3]));
        let err = r.read(&mut [0; 4]).unwrap_err();
        assert!(err.to_string().contains("the server sent 3"), "{err}");
    }
}
