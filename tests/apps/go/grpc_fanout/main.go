// gRPC fan-out HTTP/1.1 server for the tracer's Go context tests, with
// Debian's grpc-go 1.33 (GOPATH mode), Go 1.21+. One request in makes
// several gRPC calls out, each from its own goroutine, over one shared
// ClientConn: every call's HEADERS frame is written by grpc-go's
// connection-wide writer goroutine (loopy), often several in one write, so
// the tracer has to tie each stream to the goroutine that made the call.
//
// Usage: grpc_fanout -target HOST:PORT [-wait] PORT   (listens on 127.0.0.1:PORT)
//
// -wait: once listening, print "WAITING" and wait for a line on stdin
// before connecting to TARGET (so that a tracer can select this process
// before the connection's preface goes out); "DIALED" once connected.
//
// Routes:
//
//	GET /fanout?n=N  N goroutines, each calls grpc.health.v1.Health/Check
//	                 ("ok") on TARGET; 200 with one line per call once all
//	                 are done, 502 if any failed.
//	GET /nested?n=N  the same, but each goroutine only starts another one
//	                 that makes the call: the middle goroutine makes no
//	                 syscall at all.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Most calls one incoming request may make (bounds what a bad query costs).
const maxCalls = 100

var (
	target = flag.String("target", "", "the gRPC server's HOST:PORT")
	wait   = flag.Bool("wait", false, `print "WAITING" and wait for a line on stdin before connecting`)
)

var health healthpb.HealthClient

// call makes one Check("ok") and describes its outcome.
func call(ctx context.Context, i int) (string, error) {
	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if err != nil {
		return "", fmt.Errorf("call %d: %v", i, err)
	}
	return fmt.Sprintf("call %d: %v", i, resp.GetStatus()), nil
}

func count(r *http.Request) (int, error) {
	q := r.URL.Query().Get("n")
	if q == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > maxCalls {
		return 0, fmt.Errorf("n must be 1..%d", maxCalls)
	}
	return n, nil
}

// fanout makes n calls from n goroutines; nested: each through a goroutine
// of its own goroutine.
func fanout(nested bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := count(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		lines := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if !nested {
					lines[i], errs[i] = call(ctx, i)
					return
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					lines[i], errs[i] = call(ctx, i)
				}()
				<-done
			}(i)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
}

func main() {
	flag.Parse()
	if *target == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: grpc_fanout -target HOST:PORT PORT")
		os.Exit(2)
	}
	addr := "127.0.0.1:" + flag.Arg(0)
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	if *wait {
		fmt.Println("WAITING")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			log.Fatalf("stdin closed while waiting: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := grpc.DialContext(ctx, *target, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.FailOnNonTempDialError(true))
	cancel()
	if err != nil {
		log.Fatalf("dial %s: %v", *target, err)
	}
	health = healthpb.NewHealthClient(conn)
	fmt.Println("DIALED")
	http.HandleFunc("/fanout", fanout(false))
	http.HandleFunc("/nested", fanout(true))
	log.Printf("listening on %s, calling %s (grpc-go %s)", addr, *target, grpc.Version)
	log.Fatal(http.Serve(listener, nil))
}
