// Fan-out HTTP/1.1 server for the tracer's Go context tests (standard library
// only, Go 1.21+). One request in makes several requests out, each from its
// own goroutine, over a shared keep-alive client: the tracer has to tie each
// outgoing request to the incoming one through goroutine ancestry, not
// through the thread or the connection (connections are reused across
// incoming requests, so they carry no trace of who used them).
//
// Usage: fanout [-downstream URL] [-cert FILE -key FILE] PORT
// (listens on 127.0.0.1:PORT; with -cert and -key over TLS, HTTP/2 or
// HTTP/1.1 by ALPN, net/http's ListenAndServeTLS)
//
// Routes:
//
//	GET /fanout?n=N  N goroutines, each GETs DOWNSTREAM/leaf?i=<i>; 200 with
//	                 one summary line per call once all are done, 502 if any
//	                 failed.
//	GET /nested?n=N  the same, but each goroutine only starts another one
//	                 that makes the call and hands the result back on a
//	                 channel: the middle goroutine makes no syscall at all.
//	GET /leaf?i=I    200 "leaf I".
//
// The same binary serves as its own downstream: run it twice, front and
// leaf, with the front's -downstream pointing at the leaf.
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

var (
	downstream = flag.String("downstream", "", "base URL of the leaf server, e.g. http://127.0.0.1:8081")
	certFile   = flag.String("cert", "", "serve HTTPS with this certificate (PEM; needs -key)")
	keyFile    = flag.String("key", "", "the private key of -cert (PEM)")
)

// One client for every handler, so idle connections to the leaf are reused
// by whichever goroutine of whichever incoming request calls next. Enough
// idle connections per host that a burst of concurrent calls does not close
// and reopen them.
var client = &http.Client{Transport: transport(), Timeout: 30 * time.Second}

func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxCalls
	t.MaxIdleConnsPerHost = maxCalls
	return t
}

// result of one downstream call.
type result struct {
	i      int
	status int
	body   string
	err    error
}

// call GETs DOWNSTREAM/leaf?i=<i> and reads the whole body (so that the
// connection goes back to the idle pool).
func call(i int) result {
	resp, err := client.Get(*downstream + "/leaf?i=" + strconv.Itoa(i))
	if err != nil {
		return result{i: i, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{i: i, status: resp.StatusCode, body: string(body), err: err}
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

// fanout runs n calls, call i in its own goroutine started by start(i, out),
// and answers with their results.
func fanout(w http.ResponseWriter, r *http.Request, start func(i int, out *result, wg *sync.WaitGroup)) {
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
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range results {
		start(i, &results[i], &wg)
	}
	wg.Wait()
	var summary strings.Builder
	status := http.StatusOK
	for _, res := range results {
		if res.err != nil || res.status != http.StatusOK {
			status = http.StatusBadGateway
		}
		fmt.Fprintf(&summary, "call %d: status %d body %q err %v\n", res.i, res.status, res.body, res.err)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	io.WriteString(w, summary.String())
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: fanout [-downstream URL] [-cert FILE -key FILE] PORT")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/fanout", func(w http.ResponseWriter, r *http.Request) {
		fanout(w, r, func(i int, out *result, wg *sync.WaitGroup) {
			go func() {
				defer wg.Done()
				*out = call(i)
			}()
		})
	})
	mux.HandleFunc("/nested", func(w http.ResponseWriter, r *http.Request) {
		fanout(w, r, func(i int, out *result, wg *sync.WaitGroup) {
			go func() {
				defer wg.Done()
				done := make(chan result, 1)
				go func() { done <- call(i) }()
				*out = <-done
			}()
		})
	})
	mux.HandleFunc("/leaf", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "leaf "+r.URL.Query().Get("i"))
	})
	addr := "127.0.0.1:" + flag.Arg(0)
	log.Printf("listening on %s", addr)
	if *certFile != "" {
		log.Fatal(http.ListenAndServeTLS(addr, *certFile, *keyFile, mux))
	}
	log.Fatal(http.ListenAndServe(addr, mux))
}
