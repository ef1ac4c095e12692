// Test HTTP/1.1 server for the tracer's integration tests (standard library
// only, Go 1.21+).
//
// Usage: server PORT
//
// Routes: GET /hello → "hello"; GET /users/<id> → JSON; GET /status/<code>
// → that status; anything else → 404.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func handle(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/hello":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "hello")
	case len(parts) == 2 && parts[0] == "users":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"id\":%q}", parts[1])
	case len(parts) == 2 && parts[0] == "status":
		code, err := strconv.Atoi(parts[1])
		if err != nil || code < 100 || code > 999 {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	default:
		http.NotFound(w, r)
	}
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: server PORT")
	}
	addr := "127.0.0.1:" + os.Args[1]
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(handle)))
}
