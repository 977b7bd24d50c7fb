// WebSocket echo server on github.com/gorilla/websocket, a peer of
// `zerows-loadtest compare`: an Upgrader and a ReadMessage / WriteMessage
// loop, as the library's documentation and echo example show it.
//
// Every text and binary message is written back whole with its own type.
// Pings are answered and closes echoed by the library's default handlers,
// which run inside ReadMessage.
package main

import (
	"net/http"

	"github.com/gorilla/websocket"

	"zerows-peers/peer"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	// The load generator and the Autobahn TestSuite send no Origin of this
	// host; a browser-facing server would check it.
	CheckOrigin: func(*http.Request) bool { return true },
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered the request with the error.
		return
	}
	defer c.Close()
	peer.Upgraded()
	c.SetReadLimit(peer.MaxMessage)
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			// The peer closed, or broke the protocol and the library has
			// sent its close; either way the connection is done.
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
		peer.Echoed()
	}
}

func main() {
	peer.Serve("gorilla/websocket", http.HandlerFunc(echo))
}
