// Probe program for the Go struct offsets table (`cargo xtask go-offsets`)
// and the tracer's Go binary analysis tests (tracer/src/golang). It is
// built, not run by them: what matters is that it calls the net/http
// client and server and the net types they use, so that the linker keeps
// `net/http.(*persistConn).roundTrip`, `runtime.g`, `net.netFD`,
// `internal/poll.FD` and their DWARF.
//
// Run by hand it serves one request to itself and prints the response.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
)

func main() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "hello")
		})
		log.Fatal(http.Serve(listener, handler))
	}()
	resp, err := http.Get("http://" + listener.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	// A raw connection too, so the net.TCPConn → net.conn → net.netFD →
	// internal/poll.FD chain is reachable outside net/http as well.
	conn, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	conn.Close()
	fmt.Printf("%s %s\n", resp.Status, body)
}
