//! A counting global allocator for the memory tests, and an in-process
//! server whose thread is the only one counted, so test clients can
//! allocate freely. A test binary can have one global allocator: include
//! this module (`#[path = "common/counting.rs"] mod counting;`) and nothing
//! else that declares one.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;

use zerows::server::{Config, Server, Stopper};
use zerows::{Echo, Handle, Service};

struct Counting;

/// Allocation calls (alloc and realloc) made by counted threads.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Live heap bytes (allocated minus freed) of counted threads.
static LIVE: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            CALLS.fetch_add(1, Ordering::Relaxed);
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            CALLS.fetch_add(1, Ordering::Relaxed);
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Count the allocations of the calling thread from now on (a loop a
/// `Builder` started, from its service's `started`).
pub fn count_this_thread() {
    COUNTED.with(|c| c.set(true));
}

/// Allocation calls on counted threads so far.
pub fn calls() -> u64 {
    CALLS.load(Ordering::SeqCst)
}

/// Live heap bytes of counted threads.
pub fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

/// An echo server on 127.0.0.1:0 with `config` otherwise, running on a
/// thread whose allocations are counted.
pub fn start_server(config: Config) -> (SocketAddr, Stopper, JoinHandle<()>) {
    start_service(config, Echo)
}

/// [`start_server`] with another service.
pub fn start_service<S: Service + Send + 'static>(
    config: Config,
    service: S,
) -> (SocketAddr, Stopper, JoinHandle<()>)
where
    S::State: Send,
{
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..config
    };
    let (addr, stop, _, t) = start_with_handle(config, service);
    (addr, stop, t)
}

/// [`start_service`], with the server's push handle too.
pub fn start_with_handle<S: Service + Send + 'static>(
    config: Config,
    service: S,
) -> (SocketAddr, Stopper, Handle, JoinHandle<()>)
where
    S::State: Send,
{
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..config
    };
    let mut server = Server::bind(config, service).unwrap();
    let addr = server.local_addrs()[0];
    let stop = server.stopper();
    let handle = server.handle();
    let t = std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        server.run().unwrap();
    });
    (addr, stop, handle, t)
}
