// Package peer is what the Go echo servers of the comparison share: the
// command line (`--listen ADDR`, as the Rust peers take it), the
// /memstats page that `zerows-loadtest compare` reads to count
// allocations per message, and a clean exit on SIGTERM or SIGINT.
//
// Only the echo loop differs between the servers, and each is written the
// way its library documents an echo server.
package peer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxMessage bounds a message (for x/net, a frame). It is above the load
// generator's largest payload (16 MiB) and the Autobahn TestSuite's largest
// message (16 MiB, group 9), so that no library's own default (nhooyr's is
// 32 KiB) turns a valid message away; each server sets it explicitly.
const MaxMessage = 32 << 20

// messages counts the echoed messages, read beside the allocation counter
// so that allocations per message cover the same window; connections
// counts upgrades, so that the reader can start its window once every
// connection is made and no handshake falls inside it.
var messages, connections atomic.Uint64

// Echoed counts one message written back.
func Echoed() { messages.Add(1) }

// Upgraded counts one connection upgraded.
func Upgraded() { connections.Add(1) }

// memstats answers `mallocs N\nmessages M\nconnections C\n`: the
// runtime's count of heap objects allocated since the start, the messages
// echoed and the connections upgraded. All three only grow: the reader
// takes differences.
func memstats(w http.ResponseWriter, _ *http.Request) {
	var m runtime.MemStats
	// ReadMemStats stops the world briefly: the reader polls while the
	// connections are being made, then asks only at the two ends of its
	// window, so no pause falls inside it.
	runtime.ReadMemStats(&m)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "mallocs %d\nmessages %d\nconnections %d\n",
		m.Mallocs, messages.Load(), connections.Load())
}

// Serve parses the command line and serves the WebSocket handler on "/"
// (every path but /memstats) until SIGTERM or SIGINT, then exits 0.
func Serve(name string, ws http.Handler) {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(),
			"WebSocket echo server on %s (comparison peer)\n\nUsage: %s --listen ADDR\n",
			name, os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.Handle("/", ws)
	mux.HandleFunc("/memstats", memstats)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	// Upgraded connections are hijacked and no longer the server's: the
	// timeout bounds only a request head that never completes.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "%s: listening on %s\n", name, ln.Addr())
	select {
	case <-ctx.Done():
		// Close, not Shutdown: Shutdown waits for idle HTTP connections but
		// not for hijacked ones, and an echo server owes its peers nothing
		// more than the TCP close the exit gives them.
		srv.Close()
		<-done
		fmt.Fprintf(os.Stderr, "%s: stopped after %d messages\n", name, messages.Load())
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("serve: %v", err)
		}
	}
}
