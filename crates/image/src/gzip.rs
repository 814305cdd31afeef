//! gzip on every core, with bytes that do not depend on how many there are.
//!
//! The uncompressed stream is cut into blocks of [`BLOCK`] bytes. Each block
//! is deflated on its own, primed with the last 32 KiB of the block before it
//! as a preset dictionary, so matches still reach back across the cut much as
//! they would in one stream. Every block but the last ends with a sync flush
//! (an empty stored block), which leaves it on a byte boundary so the blocks
//! can be concatenated; the last one ends the deflate stream. The CRC-32 of
//! the whole input is combined from the blocks' CRCs.
//!
//! Worker threads compress blocks in whatever order they get to them and the
//! writer puts them out in order. What comes out is a function of the input,
//! the block size and the level only: one thread or sixteen, this machine or
//! another, a layer gets the same digest. Input shorter than one block never
//! starts a thread and comes out as a plain single-stream gzip member.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per independently compressed block. Large enough that
/// the sync-flush markers and the restarts cost well under 0.1% of the size,
/// small enough that two threads are busy on any layer over a few MiB.
pub const BLOCK: usize = 1 << 20;

/// The deflate level of every gzip layer oxbuild writes. Level 5 gives
/// blobs 0.2-0.4% larger than level 6 for 15-20% less CPU (zlib-rs on a
/// Python dependency tree and on a Debian base: see BENCHMARKS.md): the time
/// goes to every fresh build, the bytes to every pull, and at this ratio the
/// time is worth more. Changing it changes every layer digest; the layer
/// cache keys name it ([`crate::LayerCompression::key`]).
pub const LEVEL: u32 = 5;

/// How far back deflate can look: the dictionary handed from block to block.
const WINDOW: usize = 32 * 1024;

/// The fixed gzip header: no name, no comment, mtime 0, default-level XFL,
/// OS 255 ("unknown"), so nothing about the machine ends up in the bytes.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

struct Job {
    index: u64,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    index: u64,
    result: io::Result<(Vec<u8>, crc32fast::Hasher)>,
}

struct Workers {
    jobs: Vec<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    handles: Vec<thread::JoinHandle<()>>,
}

/// A gzip writer that compresses on up to `threads` worker threads; see the
/// module docs. Call [`ParallelGzip::finish`] to write the trailer.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: Compression,
    threads: usize,
    block: Vec<u8>,
    /// The tail of the last block handed out: the next block's dictionary.
    previous_tail: Vec<u8>,
    next_index: u64,
    next_out: u64,
    waiting: BTreeMap<u64, (Vec<u8>, crc32fast::Hasher)>,
    workers: Option<Workers>,
    /// Blocks are compressed on the calling thread: none was asked for, or
    /// none could be started.
    inline: bool,
    crc: crc32fast::Hasher,
    total_in: u64,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    /// A writer at `level` using as many threads as the machine offers.
    pub fn new(out: W, level: Compression) -> Self {
        let threads = thread::available_parallelism().map_or(1, |n| n.get()).min(16);
        Self::with_threads(out, level, threads)
    }

    /// A writer at `level` on exactly `threads` worker threads; 0 compresses
    /// on the calling thread (as when no thread can be started). The output
    /// is the same for every thread count.
    pub fn with_threads(out: W, level: Compression, threads: usize) -> Self {
        ParallelGzip {
            out,
            level,
            threads,
            inline: threads == 0,
            block: Vec::with_capacity(BLOCK),
            previous_tail: Vec::new(),
            next_index: 0,
            next_out: 0,
            waiting: BTreeMap::new(),
            workers: None,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            header_written: false,
        }
    }

    /// Compresses what is left, writes the gzip trailer and returns the
    /// underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        let data = std::mem::take(&mut self.block);
        let dictionary = std::mem::take(&mut self.previous_tail);
        if self.workers.is_none() && self.next_index == 0 {
            // Everything fit in one block: no threads, one deflate stream.
            let (bytes, crc) = compress_block(&mut Compress::new(self.level, false), &dictionary, &data, true)?;
            self.emit(0, bytes, crc)?;
        } else {
            self.dispatch(Job { index: self.next_index, dictionary, data, last: true })?;
            while self.next_out < self.next_index {
                self.collect(true)?;
            }
        }
        self.write_header()?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        trailer[4..].copy_from_slice(&(self.total_in as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        if let Some(workers) = self.workers.take() {
            drop(workers.jobs);
            for handle in workers.handles {
                let _ = handle.join();
            }
        }
        Ok(self.out)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    fn emit(&mut self, index: u64, bytes: Vec<u8>, crc: crc32fast::Hasher) -> io::Result<()> {
        debug_assert_eq!(index, self.next_out);
        self.write_header()?;
        self.out.write_all(&bytes)?;
        self.crc.combine(&crc);
        self.next_out += 1;
        Ok(())
    }

    /// Hands the full block to a worker, keeping its tail as the next dictionary.
    fn send_full_block(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dictionary = std::mem::replace(&mut self.previous_tail, data[data.len() - WINDOW..].to_vec());
        self.dispatch(Job { index: self.next_index, dictionary, data, last: false })?;
        // Keep a bounded number of blocks in flight: memory stays at a few
        // blocks per thread however large the layer.
        while self.workers.is_some() && self.next_index - self.next_out >= 2 * self.threads as u64 {
            self.collect(true)?;
        }
        while self.collect(false)? {}
        Ok(())
    }

    fn dispatch(&mut self, job: Job) -> io::Result<()> {
        if self.workers.is_none() && !self.inline {
            self.workers = spawn(self.threads, self.level);
            self.inline = self.workers.is_none();
        }
        self.next_index += 1;
        let Some(workers) = &self.workers else {
            // No thread could be started (a pids limit, say): compress here.
            let (bytes, crc) =
                compress_block(&mut Compress::new(self.level, false), &job.dictionary, &job.data, job.last)?;
            return self.emit(job.index, bytes, crc);
        };
        let worker = (job.index % workers.jobs.len() as u64) as usize;
        workers.jobs[worker].send(job).map_err(|_| io::Error::other("a compression thread stopped"))
    }

    /// Takes one finished block (waiting for it if `block`), and writes out
    /// every block that is next in order. Returns whether one was taken.
    fn collect(&mut self, block: bool) -> io::Result<bool> {
        let Some(workers) = &self.workers else { return Ok(false) };
        let done = if block {
            workers.done.recv().map_err(|_| io::Error::other("a compression thread stopped"))?
        } else {
            match workers.done.try_recv() {
                Ok(done) => done,
                Err(_) => return Ok(false),
            }
        };
        self.waiting.insert(done.index, done.result?);
        while let Some((bytes, crc)) = self.waiting.remove(&self.next_out) {
            self.emit(self.next_out, bytes, crc)?;
        }
        Ok(true)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            let take = buf.len().min(BLOCK - self.block.len());
            self.block.extend_from_slice(&buf[..take]);
            self.total_in += take as u64;
            buf = &buf[take..];
            if self.block.len() == BLOCK {
                self.send_full_block()?;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are cut at fixed offsets, so a flush cannot end one early
        // without changing the bytes; it only passes on what is finished.
        self.out.flush()
    }
}

/// Starts up to `threads` workers; None when not even one can be started.
fn spawn(threads: usize, level: Compression) -> Option<Workers> {
    let (done_tx, done) = mpsc::channel();
    let mut jobs = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for n in 0..threads {
        let (tx, rx) = mpsc::channel::<Job>();
        let done_tx = done_tx.clone();
        let started = thread::Builder::new().name(format!("gzip-{n}")).spawn(move || {
            let mut deflate = Compress::new(level, false);
            for job in rx {
                // A panic becomes an error for this block, so the writer
                // fails instead of waiting for a block that never comes.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    compress_block(&mut deflate, &job.dictionary, &job.data, job.last)
                }))
                .unwrap_or_else(|_| Err(io::Error::other("a compression thread panicked")));
                let failed = result.is_err();
                if done_tx.send(Done { index: job.index, result }).is_err() || failed {
                    return;
                }
            }
        });
        match started {
            Ok(handle) => {
                handles.push(handle);
                jobs.push(tx);
            }
            Err(_) => break,
        }
    }
    (!jobs.is_empty()).then_some(Workers { jobs, done, handles })
}

/// Raw deflate of one block, primed with `dictionary`, ended with a sync flush
/// (or the end of the stream if `last`); and the block's CRC-32.
fn compress_block(
    deflate: &mut Compress,
    dictionary: &[u8],
    data: &[u8],
    last: bool,
) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    deflate.reset();
    if !dictionary.is_empty() {
        deflate.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = deflate.total_in();
        let status = deflate.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        consumed += (deflate.total_in() - before) as usize;
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            // A flush is complete once all input is in and deflate stopped
            // with room to spare.
            Status::Ok | Status::BufError if !last && consumed == data.len() && room_left => break,
            Status::Ok | Status::BufError => {}
        }
    }
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Text-like bytes that compress, with matches across block boundaries.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        let words = [&b"wheel "[..], b"site-packages/", b"numpy", b"__init__.py\n", b"def f(x):\n    return x\n"];
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            if state.is_multiple_of(7) {
                out.extend_from_slice(&state.to_le_bytes());
            } else {
                out.extend_from_slice(words[state as usize % words.len()]);
            }
        }
        out.truncate(len);
        out
    }

    fn compress(data: &[u8], threads: usize) -> Vec<u8> {
        let mut gz = ParallelGzip::with_threads(Vec::new(), Compression::new(6), threads);
        // Uneven writes, so block cuts fall inside them.
        for chunk in data.chunks(300_007) {
            gz.write_all(chunk).unwrap();
        }
        gz.finish().unwrap()
    }

    #[test]
    fn round_trips_at_every_block_edge() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + BLOCK / 2] {
            let data = sample(len);
            let gz = compress(&data, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut back).unwrap();
            assert!(back == data, "{len} bytes did not round-trip");
        }
    }

    #[test]
    fn bytes_do_not_depend_on_the_thread_count() {
        let data = sample(5 * BLOCK + 12345);
        let one = compress(&data, 1);
        assert_eq!(compress(&data, 0), one, "on the calling thread");
        assert_eq!(compress(&data, 2), one);
        assert_eq!(compress(&data, 7), one);
    }

    /// zlib's own streaming output changes with the sizes of the writes fed to
    /// it (deflate looks ahead only as far as the input it was given), so a
    /// new tar crate writing in other chunks would have changed every digest.
    /// Whole blocks are compressed at once here, which rules that out.
    #[test]
    fn bytes_do_not_depend_on_how_the_input_is_written() {
        let data = sample(BLOCK + 70_000);
        let whole = compress(&data, 2);
        let mut gz = ParallelGzip::with_threads(Vec::new(), Compression::new(6), 2);
        for chunk in data.chunks(512) {
            gz.write_all(chunk).unwrap();
        }
        assert_eq!(gz.finish().unwrap(), whole);
    }

    #[test]
    fn one_block_is_the_same_as_a_plain_gzip_stream() {
        let data = sample(100_000);
        let mut plain = flate2::GzBuilder::new().mtime(0).operating_system(255).write(Vec::new(), Compression::new(6));
        plain.write_all(&data).unwrap(); // in one write: see the test above
        assert_eq!(compress(&data, 2), plain.finish().unwrap());
    }

    #[test]
    fn the_dictionary_keeps_the_size_close_to_one_stream() {
        let data = sample(4 * BLOCK);
        let mut plain = flate2::GzBuilder::new().mtime(0).operating_system(255).write(Vec::new(), Compression::new(6));
        plain.write_all(&data).unwrap();
        let (ours, theirs) = (compress(&data, 2).len() as f64, plain.finish().unwrap().len() as f64);
        assert!(ours / theirs < 1.005, "{ours} against {theirs}");
    }

    /// gzip(1) reads it too, as the layer's eventual readers (Go's gzip in
    /// podman and containerd, GNU tar) all do.
    #[test]
    fn gzip_tool_accepts_it() {
        let data = sample(2 * BLOCK + 99);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, compress(&data, 2)).unwrap();
        let out = std::process::Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == data);
    }
}
