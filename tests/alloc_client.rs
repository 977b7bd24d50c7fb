//! Proof of the client's allocation claim: once a connection is warm,
//! `send_text`/`send_binary` followed by `recv` allocates nothing per
//! message, whether the echo is handed out from the read buffer (one frame
//! that fits) or gathered (a message of several frames, here 100 KiB that
//! the server echoes in 16 KiB frames).
//!
//! Counts are kept per thread and only on threads that opted in, so the
//! in-process server and the tests running beside this one in parallel
//! never count in each other's window.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use zerows::{Builder, Client, Message};

struct Counting;

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: ptr came from System with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocation calls (alloc, alloc_zeroed, realloc) this thread made while
/// counting.
fn calls() -> u64 {
    CALLS.with(Cell::get)
}

/// A bound on every test: a server that stops answering fails it.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Binary,
}

/// `size` bytes of payload; text mixes one- to four-byte code points, so a
/// gathered text message has code points cut by the server's frames.
fn payload(kind: Kind, size: usize) -> Vec<u8> {
    match kind {
        Kind::Text => {
            let mut p: Vec<u8> = "zerø-cöpy ✓ 𝄞 ".bytes().cycle().take(size).collect();
            while std::str::from_utf8(&p).is_err() {
                p.pop();
            }
            p
        }
        Kind::Binary => (0..size).map(|i| (i * 31 + 7) as u8).collect(),
    }
}

/// Send `p` and check its echo, byte for byte and kind for kind, without
/// allocating on the way.
fn round_trip(ws: &mut Client, kind: Kind, p: &[u8]) {
    match kind {
        Kind::Text => ws.send_text(std::str::from_utf8(p).unwrap()).unwrap(),
        Kind::Binary => ws.send_binary(p).unwrap(),
    }
    match (kind, ws.recv().unwrap()) {
        (Kind::Text, Some(Message::Text(t))) => assert!(t.as_bytes() == p, "text echo differs"),
        (Kind::Binary, Some(Message::Binary(b))) => assert!(b == p, "binary echo differs"),
        (_, other) => panic!("unexpected echo: {:?}", other.map(|m| m.kind())),
    }
}

/// Start an echo server, connect, warm the connection with `warm` round
/// trips, then assert that `count` more allocate nothing on this thread.
fn warm_client_allocates_nothing(kind: Kind, size: usize, warm: usize, count: usize) {
    let running = Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .start(|_| zerows::Echo)
        .unwrap();
    let url = format!("ws://{}/", running.local_addrs()[0]);
    let p = payload(kind, size);
    let started = Instant::now();

    COUNTED.with(|c| c.set(true));
    let before = calls();
    let mut ws = Client::connect(&url).unwrap();
    ws.set_read_timeout(Some(LIMIT));
    ws.set_write_timeout(Some(LIMIT)).unwrap();
    // The counter must see this thread's allocations, or a zero below would
    // prove nothing: dialling and the handshake surely allocate.
    assert!(calls() > before, "the counter saw no allocation in connect");

    for _ in 0..warm {
        round_trip(&mut ws, kind, &p);
    }
    let before = calls();
    for _ in 0..count {
        round_trip(&mut ws, kind, &p);
        assert!(started.elapsed() < LIMIT, "over the time limit");
    }
    let during = calls() - before;
    COUNTED.with(|c| c.set(false));

    ws.close(1000, "").unwrap();
    running.stopper().stop();
    running.join().unwrap();
    assert_eq!(
        during, 0,
        "client allocations over {count} round trips of {size} B after warm-up"
    );
}

#[test]
fn text_32_bytes() {
    warm_client_allocates_nothing(Kind::Text, 32, 100, 10_000);
}

#[test]
fn binary_1_kib() {
    warm_client_allocates_nothing(Kind::Binary, 1 << 10, 100, 5_000);
}

#[test]
fn binary_16_kib() {
    warm_client_allocates_nothing(Kind::Binary, 16 << 10, 50, 1_000);
}

/// Past the 64 KiB read buffer: gathered into the client's message buffer,
/// which is kept from one message to the next.
#[test]
fn binary_100_kib_gathered() {
    warm_client_allocates_nothing(Kind::Binary, 100 << 10, 20, 300);
}

/// The same with text: code points cut between the server's frames are
/// carried over in the read buffer, not in a new one.
#[test]
fn text_100_kib_gathered() {
    warm_client_allocates_nothing(Kind::Text, 100 << 10, 20, 300);
}
