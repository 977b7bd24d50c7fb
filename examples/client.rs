//! Connects, sends "Hello world!", prints the reply and closes: the
//! client side of the echo page, in Rust.
//!
//! ```text
//! cargo run --release &                      # the echo endpoint on :9001
//! cargo run --example client                 # ws://127.0.0.1:9001/
//! cargo run --example client -- ws://127.0.0.1:9002/chat
//! ```

use zerows::{Client, ClientError, Message};

fn main() -> Result<(), ClientError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_string());
    let mut ws = Client::connect(&url)?;
    ws.send_text("Hello world!")?;
    // `recv` borrows the reply from the client's buffer: print it before
    // the next call.
    match ws.recv()? {
        Some(Message::Text(text)) => println!("{text}"),
        Some(Message::Binary(bytes)) => println!("{} bytes", bytes.len()),
        None => println!("the server closed the connection"),
    }
    // Sends 1000, waits for the server's close and for it to end TCP.
    ws.close(1000, "")?;
    Ok(())
}
