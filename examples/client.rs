//! Connects, sends "Hello world!", prints the reply and closes: the
//! client side of the echo page, in Rust.
//!
//! ```text
//! cargo run --release &                      # the echo endpoint on :9001
//! cargo run --example client                 # ws://127.0.0.1:9001/
//! cargo run --example client -- ws://127.0.0.1:9002/chat
//! ```

use zerows::{Client, ClientError, Message};

/// Send "Hello world!" to the server at `url`, and return its reply as
/// text (`None` if the server closed instead of answering).
pub fn hello(url: &str) -> Result<Option<String>, ClientError> {
    let mut ws = Client::connect(url)?;
    ws.send_text("Hello world!")?;
    // `recv` borrows the reply from the client's buffer: copy what is kept
    // before the next call.
    let reply = match ws.recv()? {
        Some(Message::Text(text)) => Some(text.to_string()),
        Some(Message::Binary(bytes)) => Some(format!("{} bytes", bytes.len())),
        None => return Ok(None),
    };
    // Sends 1000, waits for the server's close and for it to end TCP.
    ws.close(1000, "")?;
    Ok(reply)
}

fn main() -> Result<(), ClientError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_string());
    match hello(&url)? {
        Some(reply) => println!("{reply}"),
        None => println!("the server closed the connection"),
    }
    Ok(())
}
