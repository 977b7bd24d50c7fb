// WebSocket echo server on golang.org/x/net/websocket, a peer of
// `zerows-loadtest compare`: a websocket.Server whose handler receives and
// sends in a loop, as the package documents its Codec.
//
// The package's own echo example, io.Copy(ws, ws), writes every frame
// back as a text frame (Conn.Write uses Conn.PayloadType, text unless
// set), so binary messages would come back as text and fail the
// generator's check. A Codec that keeps each frame's payload type echoes
// text as text and binary as binary. The package delivers frames, not
// messages: a fragmented message is echoed as one message per fragment.
// Pings are answered by the package inside Receive.
package main

import (
	"net/http"

	"golang.org/x/net/websocket"

	"zerows-peers/peer"
)

type frame struct {
	payloadType byte
	data        []byte
}

// typed sends and receives a frame as it is, type and payload.
var typed = websocket.Codec{
	Marshal: func(v interface{}) ([]byte, byte, error) {
		f := v.(*frame)
		return f.data, f.payloadType, nil
	},
	Unmarshal: func(data []byte, payloadType byte, v interface{}) error {
		f := v.(*frame)
		f.payloadType, f.data = payloadType, data
		return nil
	},
}

func echo(ws *websocket.Conn) {
	// Receive returns io.EOF on the peer's close frame without answering
	// it, and the Server then only closes the socket; Close sends the
	// close frame (1000) first, so that the peer's close completes.
	defer ws.Close()
	ws.MaxPayloadBytes = peer.MaxMessage
	peer.Upgraded()
	var f frame
	for {
		if err := typed.Receive(ws, &f); err != nil {
			// io.EOF: the peer sent a close (answered by the deferred
			// Close), or the connection broke.
			return
		}
		if err := typed.Send(ws, &f); err != nil {
			return
		}
		peer.Echoed()
	}
}

func main() {
	peer.Serve("golang.org/x/net/websocket", websocket.Server{
		Handler: echo,
		// websocket.Handler rejects a request with no Origin (403); the
		// load generator and the Autobahn TestSuite send none.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
	})
}
