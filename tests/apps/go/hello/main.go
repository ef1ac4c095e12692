// Hello server for `cargo xtask bench` (standard library only, Go 1.21+):
// the cheapest net/http handler, so that the benchmark measures what tracing
// adds, not what the handler does.
//
// Usage: hello PORT [CERT KEY] (listens on 127.0.0.1:PORT; over https with
// the PEM certificate and key when given). Run it with GOMAXPROCS=1.
package main

import (
	"log"
	"net/http"
	"os"
)

var body = []byte("hello\n")

func main() {
	if len(os.Args) != 2 && len(os.Args) != 4 {
		log.Fatal("usage: hello PORT [CERT KEY]")
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	addr := "127.0.0.1:" + os.Args[1]
	if len(os.Args) == 4 {
		log.Fatal(http.ListenAndServeTLS(addr, os.Args[2], os.Args[3], nil))
	}
	log.Fatal(http.ListenAndServe(addr, nil))
}
