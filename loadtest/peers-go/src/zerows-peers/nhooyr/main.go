// WebSocket echo server on nhooyr.io/websocket, a peer of
// `zerows-loadtest compare`: websocket.Accept, then Reader / Writer and a
// copy in a loop, as the library's echo example and its own Autobahn echo
// loop do it.
//
// Every text and binary message is written back with its own type, in
// order. Pings are answered and closes echoed by the library while a
// Reader is being waited for. The Writer streams: each Write sends a
// frame, and Close a final, empty one, so an echo may arrive fragmented
// (the generator reassembles it), and the echo of a large message starts
// before the message has all been read. A client that sends a large
// message without reading meanwhile can therefore stall with this server,
// both sides' socket buffers full; the load generator always reads.
package main

import (
	"io"
	"net/http"

	"nhooyr.io/websocket"

	"zerows-peers/peer"
)

var options = websocket.AcceptOptions{
	// The load generator and the Autobahn TestSuite send no Origin of this
	// host; a browser-facing server would check it.
	InsecureSkipVerify: true,
	// The other servers of the comparison run uncompressed unless asked
	// (`compare --deflate`); the library's default would negotiate
	// permessage-deflate whenever the client offers it.
	CompressionMode: websocket.CompressionDisabled,
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &options)
	if err != nil {
		// Accept has already answered the request with the error.
		return
	}
	defer c.Close(websocket.StatusInternalError, "")
	peer.Upgraded()
	c.SetReadLimit(peer.MaxMessage)
	ctx := r.Context()
	// io.Copy would make a 32 KiB buffer for every message; one per
	// connection keeps that out of the allocations per message, which
	// should be the library's.
	buf := make([]byte, 32<<10)
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			// The peer closed (the library has echoed the close), or broke
			// the protocol and the library has sent its close.
			return
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := io.CopyBuffer(wr, rd, buf); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
		peer.Echoed()
	}
}

func main() {
	peer.Serve("nhooyr.io/websocket", http.HandlerFunc(echo))
}
