// Test HTTP/1.1 client for the tracer's integration tests (standard library
// only): N GETs of URL_PREFIX<i> (i = 1..N) over one keep-alive connection.
//
// Usage: client URL_PREFIX N
// Prints "STATUS <code>" per response.
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: client URL_PREFIX N")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 1, ForceAttemptHTTP2: false}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	for i := 1; i <= n; i++ {
		resp, err := client.Get(os.Args[1] + strconv.Itoa(i))
		if err != nil {
			log.Fatal(err)
		}
		// Drain the body so the connection is reused.
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("STATUS %d\n", resp.StatusCode)
	}
}
