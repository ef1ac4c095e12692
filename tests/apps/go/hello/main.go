// Hello server for `cargo xtask bench` (standard library only, Go 1.21+):
// the cheapest net/http handler, so that the benchmark measures what tracing
// adds, not what the handler does.
//
// Usage: hello PORT (listens on 127.0.0.1:PORT). Run it with GOMAXPROCS=1.
package main

import (
	"log"
	"net/http"
	"os"
)

var body = []byte("hello\n")

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: hello PORT")
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Args[1], nil))
}
