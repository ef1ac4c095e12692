// HTTP/2 cleartext (h2c) test client for the tracer's integration tests:
// golang.org/x/net/http2.Transport from Debian's golang-golang-x-net-dev
// (x/net 0.7.0) with prior knowledge (no TLS, no Upgrade), built in GOPATH
// mode, Go 1.21+. Every request goes over one connection.
//
// Usage: h2c_client [-n N] [-concurrent] [-wait] URL [URL...]
//
// Flags may also follow the URLs.
//
// GETs every URL in turn, N rounds; prints "STATUS <code> <proto>" per
// response and "CONNECTIONS <k>" at the end. -concurrent: all requests at
// once, multiplexed as concurrent streams of the one connection (responses
// are then printed in the order they complete). -wait: print "WAITING" and
// wait for a line on stdin before connecting. Exits 1 on a transport error,
// a response that is not HTTP/2, or more than one connection; any status
// code is fine.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

var (
	rounds     = flag.Int("n", 1, "how many times to GET every URL")
	concurrent = flag.Bool("concurrent", false, "send all requests at once, as concurrent streams")
	wait       = flag.Bool("wait", false, `print "WAITING" and wait for a line on stdin first`)
)

// How many TCP connections the transport opened.
var dials atomic.Int32

// get makes one request and reads the whole response; the printed line and
// the error are returned so that concurrent requests print whole lines.
func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", fmt.Errorf("reading the body of %s: %v", url, err)
	}
	line := fmt.Sprintf("STATUS %d %s", resp.StatusCode, resp.Proto)
	if resp.ProtoMajor != 2 {
		return line, fmt.Errorf("%s answered over %s, want HTTP/2.0", url, resp.Proto)
	}
	return line, nil
}

// parseInterspersed parses the command line's flags wherever they are and
// returns the other arguments (the flag package stops at the first one), so
// that a caller can append a flag such as -wait to a built command line.
func parseInterspersed() []string {
	var rest []string
	args := os.Args[1:]
	for {
		// ExitOnError: a bad flag ends the program here.
		_ = flag.CommandLine.Parse(args)
		args = flag.Args()
		if len(args) == 0 {
			return rest
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: h2c_client [-n N] [-concurrent] [-wait] URL [URL...]")
		flag.PrintDefaults()
	}
	targets := parseInterspersed()
	if len(targets) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *wait {
		fmt.Println("WAITING")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			log.Fatalf("stdin closed while waiting: %v", err)
		}
	}
	transport := &http2.Transport{
		// Allows http:// URLs; the "TLS" dial below is a plain TCP dial,
		// so the connection starts straight with the HTTP/2 preface.
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var urls []string
	for i := 0; i < *rounds; i++ {
		urls = append(urls, targets...)
	}
	failed := false
	report := func(line string, err error) {
		if line != "" {
			fmt.Println(line)
		}
		if err != nil {
			log.Print(err)
			failed = true
		}
	}
	if *concurrent {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, url := range urls {
			wg.Add(1)
			go func(url string) {
				defer wg.Done()
				line, err := get(client, url)
				mu.Lock()
				defer mu.Unlock()
				report(line, err)
			}(url)
		}
		wg.Wait()
	} else {
		for _, url := range urls {
			report(get(client, url))
		}
	}
	fmt.Printf("CONNECTIONS %d\n", dials.Load())
	if n := dials.Load(); n > 1 {
		log.Printf("opened %d connections, want 1", n)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}
