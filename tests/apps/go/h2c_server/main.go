// HTTP/2 cleartext (h2c) test server for the tracer's integration tests:
// net/http wrapped in golang.org/x/net/http2/h2c from Debian's
// golang-golang-x-net-dev (x/net 0.7.0), built in GOPATH mode
// (GO111MODULE=off GOPATH=/usr/share/gocode), Go 1.21+. It accepts both the
// prior-knowledge preface and HTTP/1.1 `Upgrade: h2c`; plain HTTP/1.1
// requests are served too.
//
// Usage: h2c_server PORT   (listens on 127.0.0.1:PORT)
//
// Routes: GET /hello → 200 "hello"; GET /status/<code> → that status;
// anything else → 404. Every request is logged on stderr with its protocol
// ("GET /hello HTTP/2.0"), so a test can tell HTTP/2 from HTTP/1.1.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: h2c_server PORT")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "hello")
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 200 || code > 999 {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s %s", r.Method, r.URL.Path, r.Proto)
		mux.ServeHTTP(w, r)
	})
	addr := "127.0.0.1:" + os.Args[1]
	server := &http.Server{Addr: addr, Handler: h2c.NewHandler(logged, &http2.Server{})}
	log.Printf("listening on %s", addr)
	log.Fatal(server.ListenAndServe())
}
