// HTTPS test client for the tracer's TLS tests (standard library only, Go
// 1.21+): Go's own crypto/tls, not OpenSSL. Every request goes over one
// keep-alive connection, verified against the test CA.
//
// Usage: tls_client -ca FILE [-n N] [-h2] [-wait] URL [URL...]
//
// GETs every URL in turn, N rounds; prints "STATUS <code> <proto>" per
// response and "CONNECTIONS <k>" (connections opened) at the end. -h2: HTTP/2
// by ALPN (else HTTP/1.1 only). -wait: print "WAITING" and wait for a line on
// stdin before connecting. Exits 1 on a transport error, a protocol other
// than the one asked for, or more than one connection.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptrace"
	"os"
	"time"
)

var (
	caFile = flag.String("ca", "", "PEM file of the CA that signed the server's certificate")
	rounds = flag.Int("n", 1, "how many times to GET every URL")
	h2     = flag.Bool("h2", false, "HTTP/2 by ALPN (else HTTP/1.1)")
	wait   = flag.Bool("wait", false, `print "WAITING" and wait for a line on stdin first`)
)

func main() {
	flag.Parse()
	if *caFile == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tls_client -ca FILE [-n N] [-h2] [-wait] URL [URL...]")
		os.Exit(2)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatalf("no certificate in %s", *caFile)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: 1,
		// A custom TLS config turns HTTP/2 off unless asked for; an empty
		// TLSNextProto keeps it off for sure.
		ForceAttemptHTTP2: *h2,
	}
	if !*h2 {
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	want := "HTTP/1.1"
	if *h2 {
		want = "HTTP/2.0"
	}
	if *wait {
		fmt.Println("WAITING")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			log.Fatalf("stdin closed while waiting: %v", err)
		}
	}
	connections := 0
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				connections++
			}
		},
	}
	for i := 0; i < *rounds; i++ {
		for _, url := range flag.Args() {
			req, err := http.NewRequest("GET", url, nil)
			if err != nil {
				log.Fatal(err)
			}
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, err := client.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			// Drain the body so the connection is reused.
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				log.Fatal(err)
			}
			resp.Body.Close()
			fmt.Printf("STATUS %d %s\n", resp.StatusCode, resp.Proto)
			if resp.Proto != want {
				log.Fatalf("%s answered over %s, want %s", url, resp.Proto, want)
			}
		}
	}
	fmt.Printf("CONNECTIONS %d\n", connections)
	if connections != 1 {
		log.Fatalf("%d connections, want 1", connections)
	}
}
