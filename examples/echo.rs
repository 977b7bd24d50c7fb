//! The echo endpoint: every message goes back to its sender unchanged.
//!
//! ```text
//! cargo run --example echo                      # ws://127.0.0.1:9001/
//! cargo run --example echo -- 127.0.0.1:9002    # or any address
//! ```
//!
//! Open the address in a browser for a page that talks to it.

use zerows::{Builder, Echo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    // `start` is given a function rather than a service because every event
    // loop (one here; see `Builder::threads`) builds its own service on its
    // own thread, so a service needs no locks. `Echo` is the built-in echo
    // service: messages stream back as they arrive, never copied.
    let running = Builder::new().listen(addr.parse()?).start(|_loop| Echo)?;
    println!("listening on ws://{}/", running.local_addrs()[0]);
    // Serve until the process is killed (Ctrl-C).
    running.join()?;
    Ok(())
}
