//! Bytecode: `.pyc` files for every `.py` oxbuild puts in an image, so that
//! the app's non-root user, who cannot write `__pycache__` in a root-owned
//! venv, never compiles a module at start.
//!
//! The `.pyc` files are timestamp-based (PEP 552's default form) and record
//! exactly what the image holds: the source's size and its modification time,
//! which in an oxbuild layer is `SOURCE_DATE_EPOCH` for every file. The
//! interpreter checks those two numbers with one `stat` and uses the file,
//! so start-up costs what a pip-built image's does; a derived image that
//! edits a source changes its time, and the `.pyc` is then ignored, never
//! wrongly used. (Hash-based `.pyc` files would make the interpreter read and
//! hash every source on every import, or, unchecked, trust stale ones.)
//!
//! A [`Compiler`] is a CPython of the target's version run as a child
//! process with a small driver on its standard input and output: oxbuild sends
//! each source with its path in the image and gets the `.pyc` bytes back, so
//! the interpreter writes nothing. It runs with `PYTHONHASHSEED=0`, a cleared
//! environment and, where the kernel has Landlock, no right to write outside
//! oxbuild's temporary directory nor to open network connections. Files are
//! compiled in a fixed order by a fixed number of processes, each taking
//! every n-th file, so the bytes depend on neither the machine nor its cores.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

use crate::Error;

/// The driver, run as a script (see `Interpreter::command`): a header frame (`sys.version`, the cache tag),
/// then for each request (path, the source's recorded mtime as 4 bytes,
/// source) one status byte and one frame: the `.pyc` bytes, or why the source
/// does not compile. Frames are a 4-byte little-endian length and the bytes.
/// It imports nothing from the standard library beyond what starts the
/// interpreter (the timestamp writer comes from the frozen importlib), and
/// turns the cyclic garbage collector off: compiling makes no cycles worth
/// collecting, and a compile pass over a large tree spends a tenth of its time
/// in collections otherwise.
const DRIVER: &str = r#"
import sys, gc
from _frozen_importlib_external import _code_to_timestamp_pyc
gc.disable()
inp, out = sys.stdin.buffer, sys.stdout.buffer
def frame(b):
    out.write(len(b).to_bytes(4, "little")); out.write(b)
frame((sys.version + "\n" + str(sys.implementation.cache_tag)).encode())
out.flush()
while True:
    n = int.from_bytes(inp.read(4), "little")
    if n == 0:
        break
    path = inp.read(n).decode()
    mtime = int.from_bytes(inp.read(4), "little")
    src = inp.read(int.from_bytes(inp.read(4), "little"))
    try:
        code = compile(src, path, "exec", dont_inherit=True, optimize=0)
        data = bytes(_code_to_timestamp_pyc(code, mtime, len(src)))
        out.write(b"\0"); frame(data)
    except Exception as e:
        out.write(b"\1"); frame(("%s: %s" % (type(e).__name__, e)).encode())
    out.flush()
"#;

/// The kind of `.pyc` and the driver's version, in every cache key of a
/// layer with bytecode: bumped when the same sources would compile to other
/// bytes (v2: the garbage collector off, and sources taken in `.pyc` order;
/// v3: a layer of fewer than [`SPLIT_FROM`] sources compiled by one process).
pub const FORMAT: &str = "timestamp-v3";

/// How many interpreters compile a large layer side by side. Fixed, not the
/// number of cores: which process compiles which file must not depend on
/// the machine.
const PROCESSES: usize = 2;

/// A layer with fewer sources than this is compiled by one process: a
/// second interpreter costs more to start (about 12 ms of CPU) than it saves
/// on a few dozen files, and an app layer is often two or three. The split
/// depends on the number of sources alone, so the bytes still depend on
/// nothing but the layer.
const SPLIT_FROM: usize = 32;

/// How many processes compile a layer of `sources` sources.
fn processes(sources: usize) -> usize {
    if sources < SPLIT_FROM { 1 } else { PROCESSES }
}

/// How many `.pyc` files may wait, compiled, for the layer writer to take
/// them, so that a large tree's bytecode is never all in memory.
const WINDOW: usize = 64;

/// A command that runs a CPython, and where it may write.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// The program to run: the interpreter, or the base's dynamic loader.
    pub program: PathBuf,
    /// Arguments before the interpreter's own (the loader's `--library-path`
    /// and the interpreter's path).
    pub args: Vec<OsString>,
    /// The whole environment (it is cleared first).
    pub env: Vec<(OsString, OsString)>,
    /// The one directory it may write in.
    pub scratch: PathBuf,
    /// Where it came from, for the report: `the base's /usr/bin/python3.11`.
    pub origin: String,
}

/// A source to compile.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its absolute path in the image (recorded in the bytecode for tracebacks).
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What compiling one source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiled {
    /// The `.pyc` file's bytes.
    Pyc(Vec<u8>),
    /// It does not compile (Python 2 syntax, for example), and why.
    Skipped(String),
}

/// A CPython ready to compile, with what it said about itself.
///
/// Its driver processes are started ahead of the first compile (by
/// [`Compiler::new`], or once [`Ready::set`] says the interpreter's files are
/// in place), so that their start-up overlaps the rest of the build. Each
/// compile takes fresh processes: a driver that compiled one layer is never
/// used for another, so a layer's bytes never depend on what was compiled
/// before it in the same run.
#[derive(Clone)]
pub struct Compiler {
    interpreter: Interpreter,
    /// Its `sys.version`.
    pub version: String,
    /// Its cache tag, e.g. `cpython-311`, for `__pycache__` names.
    pub cache_tag: String,
    /// True when the kernel confines it (Landlock).
    pub confined: bool,
    started: Arc<Started>,
    /// Shared with the other platforms of a multi-platform build.
    memo: Option<Arc<Memo>>,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("interpreter", &self.interpreter)
            .field("version", &self.version)
            .field("cache_tag", &self.cache_tag)
            .field("confined", &self.confined)
            .finish_non_exhaustive()
    }
}

/// Drivers started ahead, and whether the interpreter's files are in place.
struct Started {
    workers: Mutex<Vec<Worker>>,
    /// Unset while the files are still being put in place.
    ready: Latch<Result<(), String>>,
}

/// Says when a [`Compiler::pending`] compiler's files are in place.
pub struct Ready {
    started: Arc<Started>,
    interpreter: Interpreter,
}

impl Ready {
    /// The interpreter's files are in place (`Ok`), or cannot be (`Err`,
    /// why): compiles waiting for them go on, and drivers start.
    pub fn set(self, result: Result<(), String>) {
        // One driver ahead: enough for a small layer (an app), and a large
        // layer's second one starts when it begins, far from its end.
        if result.is_ok()
            && let Ok(worker) = Worker::spawn(&self.interpreter)
        {
            lock(&self.started.workers).push(worker);
        }
        self.started.ready.set(result);
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        self.started.ready.set_if_unset(Err("its files were never put in place".into()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A value set once, that threads wait for: whether a kit's files are in
/// place, a source another platform compiles.
struct Latch<T> {
    value: Mutex<Option<T>>,
    changed: Condvar,
}

impl<T: Clone> Latch<T> {
    fn new(value: Option<T>) -> Latch<T> {
        Latch { value: Mutex::new(value), changed: Condvar::new() }
    }

    /// Sets the value, waking every waiter.
    fn set(&self, value: T) {
        *lock(&self.value) = Some(value);
        self.changed.notify_all();
    }

    /// Sets the value unless it was set: what a dropped setter leaves.
    fn set_if_unset(&self, value: T) {
        let mut current = lock(&self.value);
        if current.is_none() {
            *current = Some(value);
            self.changed.notify_all();
        }
    }

    /// The value, once set.
    fn wait(&self) -> T {
        let mut current = lock(&self.value);
        loop {
            if let Some(value) = &*current {
                return value.clone();
            }
            current = self.changed.wait(current).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl Interpreter {
    /// The command that runs `code` in this interpreter, with the cleared
    /// environment and the confinement every compile gets.
    ///
    /// `code` runs as a script file in the scratch directory, not with `-c`:
    /// from Python 3.13, `-c` hands its source to `linecache` (for
    /// tracebacks), which imports `tokenize`, `re` and more of the standard
    /// library than a kit carries. A script imports nothing it does not ask for.
    fn command(&self, code: &str) -> Result<Command, Error> {
        use sha2::Digest as _;
        let name = format!("oxbuild-{}.py", &hex::encode(sha2::Sha256::digest(code.as_bytes()))[..16]);
        let script = self.scratch.join(name);
        if !script.is_file() {
            // Whole or not at all: workers of one kit start side by side.
            let written = tempfile::NamedTempFile::new_in(&self.scratch)
                .and_then(|mut f| f.write_all(code.as_bytes()).map(|()| f))
                .and_then(|f| f.persist(&script).map_err(|e| e.error));
            written.map_err(|e| run_error(self, format!("writing its script into {}: {e}", self.scratch.display())))?;
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .args(["-S", "-s", "-B"])
            .arg(&script)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.scratch);
        sandbox::confine(&mut cmd, &self.scratch);
        Ok(cmd)
    }

    /// Runs `code` to the end, as a compile would run, and returns what it printed.
    pub fn run(&self, code: &str) -> Result<std::process::Output, Error> {
        self.command(code)?.stdin(Stdio::null()).output().map_err(|e| run_error(self, e))
    }
}

fn run_error(interpreter: &Interpreter, why: impl std::fmt::Display) -> Error {
    Error::Target(format!("the interpreter for bytecode ({}) cannot be used: {why}", interpreter.origin))
}

/// What an interpreter that died before its first answer said: a Python
/// traceback's last line (the error), or else the first line, since what is
/// not Python (a version manager's shim, a loader) says what is wrong first.
/// Only that last kind is called not a working Python.
fn died(stderr: &str) -> String {
    let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let traceback = stderr.contains("Traceback (most recent call last)");
    // Python's own words: `Fatal Python error: ...`, `ModuleNotFoundError: ...`.
    let python = |l: &str| {
        l.starts_with("Fatal Python error")
            || l.split_once(": ").is_some_and(|(kind, _)| kind.ends_with("Error") || kind.ends_with("Exception"))
    };
    match if traceback { lines.next_back() } else { lines.next() } {
        Some(line) if traceback || python(line) => line.to_string(),
        Some(line) => format!("it is not a working Python here: it said `{line}`"),
        None => "it exited".to_string(),
    }
}

/// One running driver; its header is read when it is first used.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// What it said of itself, once read.
    header: Option<(String, String)>,
}

impl Worker {
    fn spawn(interpreter: &Interpreter) -> Result<Worker, Error> {
        let mut cmd = interpreter.command(DRIVER)?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| run_error(interpreter, e))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        Ok(Worker { child, stdin: Some(stdin), stdout, header: None })
    }

    /// Its `sys.version` and cache tag; if it died instead, the last line it
    /// wrote on stderr.
    fn header(&mut self, interpreter: &Interpreter) -> Result<(String, String), Error> {
        if let Some(header) = &self.header {
            return Ok(header.clone());
        }
        match read_frame(&mut self.stdout) {
            Ok(header) => {
                let text = String::from_utf8_lossy(&header).into_owned();
                let (version, tag) = text.rsplit_once('\n').unwrap_or((text.as_str(), ""));
                let header = (version.to_string(), tag.to_string());
                self.header = Some(header.clone());
                Ok(header)
            }
            Err(_) => {
                self.stdin = None;
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                Err(run_error(interpreter, died(&stderr)))
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // End of input ends the driver; one never used is stopped.
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_frame(stdout: &mut ChildStdout) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stdout.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    stdout.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_frame(stdin: &mut ChildStdin, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a source larger than 4 GiB"))?;
    stdin.write_all(&len.to_le_bytes())?;
    stdin.write_all(bytes)
}

impl Compiler {
    fn with(interpreter: Interpreter, version: String, cache_tag: String, ready: Option<Result<(), String>>) -> Self {
        let started = Arc::new(Started { workers: Mutex::new(Vec::new()), ready: Latch::new(ready) });
        Compiler { confined: sandbox::available(), interpreter, version, cache_tag, started, memo: None }
    }

    /// Starts a driver of `interpreter`, to learn its version and cache tag;
    /// it stays up for the first compile.
    pub fn new(interpreter: Interpreter) -> Result<Compiler, Error> {
        let mut worker = Worker::spawn(&interpreter)?;
        let (version, cache_tag) = worker.header(&interpreter)?;
        let compiler = Compiler::with(interpreter, version, cache_tag, Some(Ok(())));
        lock(&compiler.started.workers).push(worker);
        Ok(compiler)
    }

    /// A compiler whose version and cache tag are known already (from an
    /// earlier [`Compiler::new`] of the same interpreter files). Its drivers
    /// start now, so that they are up by the time there is something to compile.
    pub fn known(interpreter: Interpreter, version: String, cache_tag: String) -> Compiler {
        let (compiler, ready) = Compiler::pending(interpreter, version, cache_tag);
        ready.set(Ok(()));
        compiler
    }

    /// Like [`Compiler::known`], but its drivers start only when it first
    /// compiles: for a caller that may only want to know what it is.
    pub fn described(interpreter: Interpreter, version: String, cache_tag: String) -> Compiler {
        Compiler::with(interpreter, version, cache_tag, Some(Ok(())))
    }

    /// Like [`Compiler::known`], for an interpreter whose files are still
    /// being put in place: compiles wait until [`Ready::set`] is called.
    pub fn pending(interpreter: Interpreter, version: String, cache_tag: String) -> (Compiler, Ready) {
        let compiler = Compiler::with(interpreter, version, cache_tag, None);
        let ready = Ready { started: compiler.started.clone(), interpreter: compiler.interpreter.clone() };
        (compiler, ready)
    }

    /// This compiler, sharing what it compiles with the other compilers of
    /// `memo` (the platforms of one multi-platform build).
    pub fn sharing(mut self, memo: Arc<Memo>) -> Compiler {
        self.memo = Some(memo);
        self
    }

    /// Where the interpreter came from.
    pub fn origin(&self) -> &str {
        &self.interpreter.origin
    }

    /// Waits until the interpreter's files are in place.
    fn wait_ready(&self) -> Result<(), Error> {
        self.started.ready.wait().map_err(|why| run_error(&self.interpreter, &why))
    }

    /// A driver: one started ahead, else a new one; its header checked.
    fn worker(&self) -> Result<Worker, Error> {
        let pooled = lock(&self.started.workers).pop();
        let mut worker = match pooled {
            Some(w) => w,
            None => Worker::spawn(&self.interpreter)?,
        };
        let (version, _) = worker.header(&self.interpreter)?;
        if !self.version.is_empty() && version != self.version {
            return Err(run_error(&self.interpreter, format!("it is now {version}, not {}", self.version)));
        }
        Ok(worker)
    }

    /// Compiles `sources`, in order, every `.pyc` recording `epoch` as its
    /// source's modification time. The result is in the same order.
    pub fn compile(&self, sources: &[Source], epoch: u64) -> Result<Vec<Compiled>, Error> {
        let paths: Vec<String> = sources.iter().map(|s| s.path.clone()).collect();
        let out = Mutex::new(vec![None; sources.len()]);
        self.compile_with(
            &paths,
            |i| Ok(sources[i].bytes.clone()),
            |i, compiled| {
                lock(&out)[i] = Some(compiled);
                Ok(())
            },
            epoch,
        )?;
        let out = out.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(out.into_iter().map(|c| c.expect("every source has a result")).collect())
    }

    /// Compiles the sources at `paths` (absolute paths in the image), reading
    /// each with `read` only when its turn comes and handing each result to
    /// `emit` at once, so that neither all sources nor all `.pyc` files are
    /// ever in memory together. Process `k` of the layer's
    /// [`processes`] takes every `k`-th source, in order.
    pub fn compile_with<R, E>(&self, paths: &[String], read: R, emit: E, epoch: u64) -> Result<(), Error>
    where
        R: Fn(usize) -> Result<Vec<u8>, Error> + Sync,
        E: Fn(usize, Compiled) -> Result<(), Error> + Sync,
    {
        if paths.is_empty() {
            return Ok(());
        }
        self.wait_ready()?;
        let mtime = (epoch & 0xFFFF_FFFF) as u32;
        let workers = processes(paths.len());
        let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|k| {
                    let (read, emit) = (&read, &emit);
                    scope.spawn(move || self.compile_share(paths, (k, workers), read, emit, mtime))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Target("a compile thread panicked".into()))))
                .collect()
        });
        results.into_iter().collect()
    }

    /// What a source's `.pyc` depends on, for [`Memo`].
    fn memo_key(&self, path: &str, mtime: u32, source: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for part in [self.version.as_bytes(), self.cache_tag.as_bytes(), path.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(mtime.to_le_bytes());
        h.update(source);
        h.finalize().into()
    }

    /// Compiles share `k` of `of`: every `of`-th source from the `k`-th.
    fn compile_share<R, E>(
        &self,
        paths: &[String],
        (k, of): (usize, usize),
        read: &R,
        emit: &E,
        mtime: u32,
    ) -> Result<(), Error>
    where
        R: Fn(usize) -> Result<Vec<u8>, Error> + Sync,
        E: Fn(usize, Compiled) -> Result<(), Error> + Sync,
    {
        let mut worker = self.worker()?;
        let broken = |e: std::io::Error| run_error(&self.interpreter, format!("it stopped answering ({e})"));
        let mut stdin = worker.stdin.take().expect("a fresh worker has its input");
        for (i, path) in paths.iter().enumerate().skip(k).step_by(of) {
            let source = read(i)?;
            let claim = match &self.memo {
                Some(memo) => match memo.claim(self.memo_key(path, mtime, &source)) {
                    Ok(done) => {
                        emit(i, done)?;
                        continue;
                    }
                    Err(claim) => Some(claim),
                },
                None => None,
            };
            write_frame(&mut stdin, path.as_bytes()).map_err(broken)?;
            stdin.write_all(&mtime.to_le_bytes()).map_err(broken)?;
            write_frame(&mut stdin, &source).map_err(broken)?;
            stdin.flush().map_err(broken)?;
            drop(source);
            let mut status = [0u8; 1];
            worker.stdout.read_exact(&mut status).map_err(broken)?;
            let payload = read_frame(&mut worker.stdout).map_err(broken)?;
            let compiled = match status[0] {
                0 => Compiled::Pyc(payload),
                _ => Compiled::Skipped(String::from_utf8_lossy(&payload).into_owned()),
            };
            if let Some(Claim(slot)) = &claim {
                slot.set(Some(compiled.clone()));
            }
            emit(i, compiled)?;
        }
        stdin.write_all(&0u32.to_le_bytes()).map_err(broken)?;
        drop(stdin);
        let _ = worker.child.wait();
        Ok(())
    }
}

/// `.pyc` files compiled in one run, shared by the images of a
/// multi-platform build: bytecode does not depend on the CPU, so a source
/// one platform compiled (or is compiling) is not compiled again for another.
/// Keyed by everything the bytes depend on: the interpreter's version and
/// cache tag, the recorded mtime, the path and the source.
#[derive(Default)]
pub struct Memo {
    done: Mutex<std::collections::HashMap<[u8; 32], Arc<MemoSlot>>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// One source's result: unset while it is being compiled; `None` when the
/// one compiling it gave up (its driver failed), so that a waiter compiles
/// it itself.
type MemoSlot = Latch<Option<Compiled>>;

/// Fills a claimed slot as given up unless it was filled: a driver that
/// fails never leaves another platform waiting.
struct Claim(Arc<MemoSlot>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.set_if_unset(None);
    }
}

impl Memo {
    /// The result for `key` (waiting while another compiles it), or a claim
    /// to compile it, filled by the caller.
    fn claim(&self, key: [u8; 32]) -> Result<Compiled, Claim> {
        let (slot, mine) = {
            let mut done = lock(&self.done);
            match done.get(&key) {
                Some(slot) => (slot.clone(), false),
                None => {
                    let slot = Arc::new(MemoSlot::new(None));
                    done.insert(key, slot.clone());
                    (slot, true)
                }
            }
        };
        if !mine && let Some(result) = slot.wait() {
            return Ok(result);
        }
        Err(Claim(slot))
    }
}

/// What compiling a layer's sources did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sources compiled.
    pub compiled: usize,
    /// Warnings for sources that do not compile, one each, as pip gives them.
    pub skipped: Vec<String>,
}

/// The `.pyc` files of one layer as they are compiled, handed to the layer
/// writer in its order and at most [`WINDOW`] ahead of it.
struct Slots {
    state: Mutex<SlotState>,
    changed: Condvar,
}

struct SlotState {
    /// Per `.pyc`, in the layer's order: its bytes once compiled (`None`
    /// inside when it was skipped), taken by the writer.
    results: Vec<Option<Option<Vec<u8>>>>,
    /// How many the writer has taken.
    taken: usize,
    /// Why compiling stopped, if it failed.
    failed: Option<String>,
    /// The writer is done (or gave up): compiling stops.
    closed: bool,
}

impl Slots {
    /// Blocks until `i` may be compiled (the writer is close enough behind).
    fn turn(&self, i: usize) -> Result<(), Error> {
        let mut s = lock(&self.state);
        while i >= s.taken + WINDOW && !s.closed {
            s = self.changed.wait(s).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if s.closed { Err(Error::Target("the layer was finished without this bytecode".into())) } else { Ok(()) }
    }

    fn put(&self, i: usize, pyc: Option<Vec<u8>>) {
        lock(&self.state).results[i] = Some(pyc);
        self.changed.notify_all();
    }

    fn fail(&self, why: String) {
        lock(&self.state).failed.get_or_insert(why);
        self.changed.notify_all();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }
}

/// One `.pyc` entry of a layer, written when it has been compiled.
#[derive(Debug)]
struct PendingPyc {
    slots: Arc<Slots>,
    index: usize,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slots")
    }
}

impl oxbuild_image::Deferred for PendingPyc {
    fn wait(&self) -> std::io::Result<Option<Vec<u8>>> {
        let mut s = lock(&self.slots.state);
        loop {
            if let Some(result) = s.results[self.index].take() {
                s.taken = s.taken.max(self.index + 1);
                drop(s);
                self.slots.changed.notify_all();
                return Ok(result);
            }
            if let Some(why) = &s.failed {
                return Err(std::io::Error::other(why.clone()));
            }
            if s.taken > self.index {
                return Err(std::io::Error::other("a .pyc was written twice"));
            }
            s = self.slots.changed.wait(s).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Adds the `.pyc` of each source at `paths` (absolute paths in the image;
/// `read` gives each one's bytes when it is compiled) to `layer`, owned by
/// `owner`, and runs `write` on the layer while they are compiled: the writer
/// takes each `.pyc` as its turn comes, so compiling and compressing overlap.
/// Sources are compiled in the order of their `.pyc` paths, which is the
/// layer's order. A source that does not compile leaves no `.pyc` (and a
/// warning); a `__pycache__` whose every source failed stays, empty.
#[allow(clippy::too_many_arguments)]
pub fn write_with<T, W, R, E>(
    layer: &mut oxbuild_image::LayerBuilder,
    paths: &[String],
    read: R,
    compiler: &Compiler,
    epoch: u64,
    owner: oxbuild_image::Owner,
    write: W,
) -> Result<(T, Outcome), E>
where
    R: Fn(usize) -> Result<Vec<u8>, Error> + Sync,
    W: FnOnce(&oxbuild_image::LayerBuilder) -> Result<T, E>,
    E: From<Error>,
{
    let mut order: Vec<(String, usize)> = paths
        .iter()
        .enumerate()
        .filter_map(|(i, p)| pyc_path(p.trim_start_matches('/'), &compiler.cache_tag).map(|pyc| (pyc, i)))
        .collect();
    order.sort();
    let slots = Arc::new(Slots {
        state: Mutex::new(SlotState { results: vec![None; order.len()], taken: 0, failed: None, closed: false }),
        changed: Condvar::new(),
    });
    for (k, (pyc, _)) in order.iter().enumerate() {
        if let Some((parent, _)) = pyc.rsplit_once('/') {
            layer.dir(parent, owner, 0o755);
        }
        layer.deferred(pyc, Arc::new(PendingPyc { slots: slots.clone(), index: k }), owner, 0o644);
    }
    let sorted: Vec<String> = order.iter().map(|(_, i)| paths[*i].clone()).collect();
    let skipped = Mutex::new(Vec::new());
    let (written, compiled) = std::thread::scope(|scope| {
        let compiling = scope.spawn(|| {
            let result = compiler.compile_with(
                &sorted,
                |k| {
                    slots.turn(k)?;
                    read(order[k].1)
                },
                |k, compiled| {
                    match compiled {
                        Compiled::Pyc(bytes) => slots.put(k, Some(bytes)),
                        Compiled::Skipped(why) => {
                            lock(&skipped).push((order[k].1, why));
                            slots.put(k, None);
                        }
                    }
                    Ok(())
                },
                epoch,
            );
            if let Err(e) = &result {
                slots.fail(e.to_string());
            }
            result
        });
        let written = write(layer);
        // A compile that failed before the writer stopped explains a write
        // that failed waiting for it; after, it only stopped because of it.
        let compile_failed_first = lock(&slots.state).failed.is_some();
        slots.close();
        let compiled = compiling.join().unwrap_or_else(|_| Err(Error::Target("a compile thread panicked".into())));
        (written.map_err(|e| (e, compile_failed_first)), compiled)
    });
    let written = match (written, compiled) {
        (Err((_, true)), Err(e)) | (Ok(_), Err(e)) => return Err(e.into()),
        (Err((e, _)), _) => return Err(e),
        (Ok(w), Ok(())) => w,
    };
    let mut skipped = skipped.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    skipped.sort();
    let outcome = Outcome {
        compiled: order.len() - skipped.len(),
        skipped: skipped.into_iter().map(|(i, why)| format!("{} was not byte-compiled: {why}", paths[i])).collect(),
    };
    Ok((written, outcome))
}

/// Where the `.pyc` of `py` (a path ending in `.py`) goes: `dir/__pycache__/name.TAG.pyc`.
pub fn pyc_path(py: &str, cache_tag: &str) -> Option<String> {
    let stem = py.strip_suffix(".py")?;
    let (dir, name) = stem.rsplit_once('/').unwrap_or(("", stem));
    Some(if dir.is_empty() {
        format!("__pycache__/{name}.{cache_tag}.pyc")
    } else {
        format!("{dir}/__pycache__/{name}.{cache_tag}.pyc")
    })
}

/// Confines what `cmd` starts to writing in `scratch` only, and to no
/// network, where the kernel has Landlock (see `sandbox`).
pub(crate) fn confine(cmd: &mut Command, scratch: &std::path::Path) {
    sandbox::confine(cmd, scratch);
}

/// Landlock, where the kernel has it: the interpreter may read anything but
/// write only in its scratch directory, and may open no TCP connection.
/// Where the kernel lacks it, the interpreter runs unconfined (and
/// [`Compiler::confined`] says so): it still gets a cleared environment, no
/// credentials, and only sources on its standard input.
mod sandbox {
    use std::os::unix::process::CommandExt as _;
    use std::path::Path;
    use std::sync::Mutex;

    use landlock::{
        ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, path_beneath_rules,
    };

    const ABI_WANTED: ABI = ABI::V4;

    /// True when the kernel enforces Landlock.
    pub fn available() -> bool {
        // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) answers the ABI version.
        // SAFETY: this form of the call reads and writes no memory.
        let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
        abi >= 1
    }

    fn ruleset(scratch: &Path) -> Result<RulesetCreated, landlock::RulesetError> {
        Ruleset::default()
            .handle_access(AccessFs::from_all(ABI_WANTED))?
            .handle_access(AccessNet::from_all(ABI_WANTED))?
            .create()?
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(ABI_WANTED)))?
            .add_rules(path_beneath_rules([scratch], AccessFs::from_all(ABI_WANTED)))
    }

    /// Confines what `cmd` starts, if the kernel can.
    pub fn confine(cmd: &mut std::process::Command, scratch: &Path) {
        if !available() {
            return;
        }
        let Ok(ruleset) = ruleset(scratch) else { return };
        // The ruleset is made here, in the parent; the child, between fork
        // and exec, only applies it.
        let ruleset = Mutex::new(Some(ruleset));
        // SAFETY: the closure runs in the child after fork; it takes the
        // prepared ruleset and makes the two system calls that apply it.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(r) = ruleset.lock().ok().and_then(|mut r| r.take()) {
                    r.restrict_self().map_err(std::io::Error::other)?;
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_dead_interpreter_said() {
        let traceback = "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'a'\n";
        assert_eq!(died(traceback), "KeyError: 'a'");
        assert_eq!(
            died("ModuleNotFoundError: No module named 'linecache'\n"),
            "ModuleNotFoundError: No module named 'linecache'"
        );
        let shim = "pyenv: python3.13: command not found\n\nThe `python3.13' command exists in these Python versions:\n  3.13.0\n\nNote: See 'pyenv help global' for tips on allowing multiple\n      Python versions to be found at the same time.\n";
        assert_eq!(died(shim), "it is not a working Python here: it said `pyenv: python3.13: command not found`");
        assert_eq!(died(""), "it exited");
    }

    #[test]
    fn pyc_paths() {
        assert_eq!(pyc_path("a/b/c.py", "cpython-311").as_deref(), Some("a/b/__pycache__/c.cpython-311.pyc"));
        assert_eq!(pyc_path("top.py", "cpython-311").as_deref(), Some("__pycache__/top.cpython-311.pyc"));
        assert_eq!(pyc_path("data.txt", "cpython-311"), None);
    }

    /// The machine's own python3, confined like a base's interpreter.
    fn host_interpreter(scratch: &std::path::Path) -> Option<Interpreter> {
        let python =
            ["/usr/bin/python3", "/usr/local/bin/python3"].into_iter().find(|p| std::path::Path::new(p).exists())?;
        Some(Interpreter {
            program: python.into(),
            args: Vec::new(),
            env: vec![("PYTHONHASHSEED".into(), "0".into())],
            scratch: scratch.to_path_buf(),
            origin: "the test machine's python3".into(),
        })
    }

    fn host() -> Option<Compiler> {
        Compiler::new(host_interpreter(&tempfile::tempdir().unwrap().keep())?).ok()
    }

    /// Every CPython 3.11+ this machine has (its python3, and a version
    /// manager's), started the way a kit starts one: with a standard library
    /// of `encodings` alone, which is all a kit carries. Python 3.13 made `-c`
    /// import `linecache` (and with it `tokenize`, `re`, ...): the driver
    /// must run without any of that.
    #[test]
    fn the_driver_starts_with_only_what_a_kit_carries() {
        let mut pythons: Vec<PathBuf> = ["/usr/bin/python3", "/usr/local/bin/python3"].map(PathBuf::from).to_vec();
        let pyenv = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv/versions"));
        for version in pyenv.and_then(|d| std::fs::read_dir(d).ok()).into_iter().flatten().flatten() {
            let name = version.file_name().to_string_lossy().into_owned();
            let minor = name.strip_prefix("3.").and_then(|r| r.split('.').next()?.parse::<u32>().ok());
            if let Some(minor) = minor.filter(|m| *m >= 11) {
                pythons.push(version.path().join(format!("bin/python3.{minor}")));
            }
        }
        let mut tried = Vec::new();
        for python in pythons.into_iter().filter(|p| p.is_file()) {
            let ask = |code: &str| {
                let out = Command::new(&python).args(["-c", code]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            };
            let encodings = PathBuf::from(ask("import encodings, os; print(os.path.dirname(encodings.__file__))"));
            let minor = ask("import sys; print(sys.version_info[1])");
            let (home, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let lib = home.path().join(format!("lib/python3.{minor}/encodings"));
            std::fs::create_dir_all(&lib).unwrap();
            for f in
                std::fs::read_dir(&encodings).unwrap().flatten().filter(|f| f.path().extension() == Some("py".as_ref()))
            {
                std::fs::copy(f.path(), lib.join(f.file_name())).unwrap();
            }
            let interpreter = Interpreter {
                program: python.clone(),
                args: Vec::new(),
                env: vec![("PYTHONHOME".into(), home.path().into()), ("PYTHONHASHSEED".into(), "0".into())],
                scratch: scratch.path().to_path_buf(),
                origin: python.display().to_string(),
            };
            let compiler = Compiler::new(interpreter).unwrap_or_else(|e| panic!("{}: {e}", python.display()));
            let source = Source { path: "/app/m.py".into(), bytes: b"x = 1\n".to_vec() };
            let compiled = compiler.compile(&[source], 0).unwrap();
            assert!(matches!(&compiled[0], Compiled::Pyc(b) if b.len() > 16), "{}: {compiled:?}", python.display());
            tried.push(format!("3.{minor}"));
        }
        // (A machine with no python3 at all skips, as the other tests here do.)
        eprintln!("tried {tried:?}");
    }

    #[test]
    fn the_interpreter_cannot_write_outside_its_scratch_directory() {
        let (scratch, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let Some(python) = host_interpreter(scratch.path()) else { return };
        assert!(sandbox::available(), "this kernel has Landlock; without it the README says what happens");
        let code = format!(
            r#"
import socket
def attempt(f):
    try:
        f(); return "allowed"
    except PermissionError:
        return "denied"
print(attempt(lambda: open({inside:?}, "w").write("x")))
print(attempt(lambda: open({outside:?}, "w").write("x")))
print(attempt(lambda: open("/etc/hostname").read()))
print(attempt(lambda: socket.create_connection(("127.0.0.1", 1), timeout=2)))
"#,
            inside = scratch.path().join("ok.txt").display().to_string(),
            outside = outside.path().join("escaped.txt").display().to_string(),
        );
        let out = python.run(&code).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            ["allowed", "denied", "allowed", "denied"],
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(scratch.path().join("ok.txt").exists());
        assert!(!outside.path().join("escaped.txt").exists());
    }

    #[test]
    fn compiles_in_order_and_skips_what_does_not_compile() {
        let Some(c) = host() else { return };
        let sources: Vec<Source> = (0..5)
            .map(|i| Source { path: format!("/app/m{i}.py"), bytes: format!("X = {i}\n").into_bytes() })
            .chain([Source { path: "/app/py2.py".into(), bytes: b"print 'hello'\n".to_vec() }])
            .collect();
        let out = c.compile(&sources, 1_700_000_000).unwrap();
        assert_eq!(out.len(), 6);
        for (i, compiled) in out.iter().take(5).enumerate() {
            let Compiled::Pyc(pyc) = compiled else { panic!("{compiled:?}") };
            // flags 0 (timestamp), the epoch, the source size.
            assert_eq!(&pyc[4..8], &[0, 0, 0, 0]);
            assert_eq!(&pyc[8..12], &1_700_000_000u32.to_le_bytes());
            assert_eq!(&pyc[12..16], &(format!("X = {i}\n").len() as u32).to_le_bytes());
            assert!(pyc.windows(b"/app/m0.py".len()).any(|w| w == format!("/app/m{i}.py").as_bytes()));
        }
        assert!(matches!(&out[5], Compiled::Skipped(why) if why.contains("SyntaxError")), "{:?}", out[5]);
        // The same input gives the same bytes.
        assert_eq!(c.compile(&sources, 1_700_000_000).unwrap(), out);
        assert!(c.cache_tag.starts_with("cpython-"), "{}", c.cache_tag);
    }

    /// The layer's writer takes each `.pyc` as it is compiled, in the
    /// layer's order, with more sources than the window holds: every source
    /// that compiles has its `.pyc` right after its `__pycache__`, the one that
    /// does not has none and a warning, and the bytes are those of a plain
    /// compile.
    #[test]
    fn a_layer_is_written_while_its_sources_compile() {
        let Some(c) = host() else { return };
        let mut paths: Vec<String> = (0..(WINDOW * 3)).map(|i| format!("/app/pkg{}/m{i}.py", i % 7)).collect();
        paths.push("/app/pkg0/py2.py".into());
        paths.push("/app/Upper.py".into());
        let source = |i: usize| -> Vec<u8> {
            if paths[i].ends_with("py2.py") { b"print 'hello'\n".to_vec() } else { format!("X = {i}\n").into_bytes() }
        };
        let store = oxbuild_image::BlobStore::open(tempfile::tempdir().unwrap().keep()).unwrap();
        let mut layer = oxbuild_image::LayerBuilder::new(1_700_000_000, oxbuild_image::Owner::ROOT);
        let (blob, outcome) = write_with(
            &mut layer,
            &paths,
            |i| Ok(source(i)),
            &c,
            1_700_000_000,
            oxbuild_image::Owner::ROOT,
            |l| l.write(&store, oxbuild_image::LayerCompression::Gzip).map_err(Error::from),
        )
        .unwrap();
        assert_eq!(outcome.compiled, paths.len() - 1);
        assert_eq!(outcome.skipped.len(), 1, "{:?}", outcome.skipped);
        assert!(outcome.skipped[0].starts_with("/app/pkg0/py2.py was not byte-compiled: SyntaxError"));
        let file = std::fs::File::open(&blob.path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut names = Vec::new();
        let mut pycs = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".pyc") {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                pycs.insert(name.clone(), bytes);
            }
            names.push(name);
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "the layer is in path order");
        assert_eq!(pycs.len(), paths.len() - 1);
        assert!(!pycs.keys().any(|p| p.contains("py2.")), "{:?}", pycs.keys());
        let one = |p: &str| pyc_path(p.trim_start_matches('/'), &c.cache_tag).unwrap();
        assert!(pycs.contains_key(&one("/app/Upper.py")));
        // The same bytes a compile of each source alone gives: nothing depends
        // on the window or on which driver took which source.
        let alone = c.compile(&[Source { path: paths[5].clone(), bytes: source(5) }], 1_700_000_000).unwrap();
        assert_eq!(alone[0], Compiled::Pyc(pycs[&one(&paths[5])].clone()));
    }

    /// A compiler whose files never arrive fails its compile with the reason
    /// instead of waiting forever.
    #[test]
    fn a_compile_waiting_for_files_that_never_come_fails_with_why() {
        let scratch = tempfile::tempdir().unwrap();
        let Some(python) = host_interpreter(scratch.path()) else { return };
        let (c, ready) = Compiler::pending(python, "3.11".into(), "cpython-311".into());
        ready.set(Err("the kit could not be unpacked: disk full".into()));
        let e = c.compile(&[Source { path: "/app/a.py".into(), bytes: b"X = 1\n".to_vec() }], 0).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
    }
}
