//! The accept loop the test kit's small servers share: one thread per
//! connection, until the [`Server`] is dropped.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// A running accept loop; stops accepting when dropped.
pub(crate) struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Accepts on `listener`, handing each connection to `handle` on a thread of its own.
    pub(crate) fn start(listener: TcpListener, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let addr = listener.local_addr().expect("a bound listener has an address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, handle) = (stop.clone(), Arc::new(handle));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handle = handle.clone();
                thread::spawn(move || handle(conn));
            }
        });
        Server { addr, stop }
    }

    /// `host:port` it listens on.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}
