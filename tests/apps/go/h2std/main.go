// Fan-out server over the HTTP/2 bundled in Go's net/http (standard library
// only, no golang.org/x/net, no TLS), for the tracer's Go HTTP/2 tests.
// Needs Go 1.24+ (http.Protocols, SetUnencryptedHTTP2).
//
// Like go/fanout: one request in makes several requests out, each from its
// own goroutine, over a shared client. Here the server accepts HTTP/1.1 and
// unencrypted HTTP/2 (prior knowledge), and the client speaks unencrypted
// HTTP/2 only: every call to the downstream goes as a stream of one h2c
// connection, written by the bundled http2 client.
//
// Usage: h2std [-downstream URL] PORT   (listens on 127.0.0.1:PORT)
//
// Routes:
//
//	GET /fanout?n=N  N goroutines, each GETs DOWNSTREAM/leaf?i=<i>; 200 with
//	                 one summary line per call (with the response's protocol)
//	                 once all are done, 502 if any failed or was not HTTP/2.
//	GET /serial?n=N  the same N calls made one after another by the handler's
//	                 own goroutine.
//	GET /leaf?i=I    200 "leaf I".
//	GET /things/{name}  200 "thing NAME" (a ServeMux wildcard pattern).
//
// Every request is logged on stderr as "METHOD PATH PROTO"
// ("GET /leaf HTTP/2.0"), so a test can tell HTTP/2 from HTTP/1.1.
//
// Built in GOPATH mode, whose GODEBUG defaults are Go 1.20's: the directive
// below gives it Go 1.22's ServeMux (patterns with methods and wildcards,
// and Request.Pattern), as a module of Go 1.22+ has by default.
//
//go:debug httpmuxgo121=0
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Most calls one incoming request may make (bounds what a bad query costs).
const maxCalls = 100

var downstream = flag.String("downstream", "", "base URL of the leaf server, e.g. http://127.0.0.1:8081")

// One client for every handler: its calls are streams of one h2c
// connection, whichever goroutine of whichever incoming request makes them.
var client = &http.Client{Transport: transport(), Timeout: 30 * time.Second}

func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// result of one downstream call.
type result struct {
	i      int
	status int
	proto  string
	body   string
	err    error
}

// call GETs DOWNSTREAM/leaf?i=<i> and reads the whole body.
func call(i int) result {
	resp, err := client.Get(*downstream + "/leaf?i=" + strconv.Itoa(i))
	if err != nil {
		return result{i: i, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{i: i, status: resp.StatusCode, proto: resp.Proto, body: string(body), err: err}
}

// count reads n from the query: 1 by default, at most maxCalls.
func count(r *http.Request) (int, error) {
	q := r.URL.Query().Get("n")
	if q == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 0 || n > maxCalls {
		return 0, fmt.Errorf("n must be 0..%d", maxCalls)
	}
	return n, nil
}

// fanout runs n calls, each in its own goroutine, and answers with their
// results.
func fanout(w http.ResponseWriter, r *http.Request) {
	calls(w, r, func(results []result) {
		var wg sync.WaitGroup
		wg.Add(len(results))
		for i := range results {
			go func(i int) {
				defer wg.Done()
				results[i] = call(i)
			}(i)
		}
		wg.Wait()
	})
}

// serial runs n calls one after another in the handler's goroutine.
func serial(w http.ResponseWriter, r *http.Request) {
	calls(w, r, func(results []result) {
		for i := range results {
			results[i] = call(i)
		}
	})
}

// calls has run fill in n results and answers with them.
func calls(w http.ResponseWriter, r *http.Request, run func(results []result)) {
	n, err := count(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if *downstream == "" {
		http.Error(w, "no -downstream", http.StatusInternalServerError)
		return
	}
	results := make([]result, n)
	run(results)
	var summary strings.Builder
	status := http.StatusOK
	for _, res := range results {
		if res.err != nil || res.status != http.StatusOK || res.proto != "HTTP/2.0" {
			status = http.StatusBadGateway
		}
		fmt.Fprintf(&summary, "call %d: status %d proto %s body %q err %v\n", res.i, res.status, res.proto, res.body, res.err)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	io.WriteString(w, summary.String())
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: h2std [-downstream URL] PORT")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/fanout", fanout)
	mux.HandleFunc("/serial", serial)
	mux.HandleFunc("/leaf", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "leaf "+r.URL.Query().Get("i"))
	})
	mux.HandleFunc("GET /things/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "thing "+r.PathValue("name"))
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s %s", r.Method, r.URL.Path, r.Proto)
		mux.ServeHTTP(w, r)
	})
	addr := "127.0.0.1:" + flag.Arg(0)
	server := &http.Server{Addr: addr, Handler: logged, Protocols: new(http.Protocols)}
	server.Protocols.SetHTTP1(true)
	server.Protocols.SetUnencryptedHTTP2(true)
	log.Printf("listening on %s", addr)
	log.Fatal(server.ListenAndServe())
}
