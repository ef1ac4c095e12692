// gRPC load generator for `cargo xtask bench` (what wrk is for HTTP/1):
// unary grpc.health.v1.Health/Check("ok") calls with Debian's grpc-go 1.33
// (GOPATH mode), Go 1.21+, from -c goroutines spread over -conns
// connections, for -d, one call after another per goroutine.
//
// Usage: grpc_load -target HOST:PORT [-c 32] [-conns 4] [-d 10s]
//
// Prints one line: "requests=N rps=R p50_us=P p99_us=Q errors=E".
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var (
	target   = flag.String("target", "", "the server's HOST:PORT")
	callers  = flag.Int("c", 32, "concurrent callers")
	conns    = flag.Int("conns", 4, "connections the callers share")
	duration = flag.Duration("d", 10*time.Second, "how long to run")
)

func main() {
	flag.Parse()
	if *target == "" || *callers < 1 || *conns < 1 {
		log.Fatal("usage: grpc_load -target HOST:PORT [-c N] [-conns N] [-d DURATION]")
	}
	clients := make([]healthpb.HealthClient, *conns)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := grpc.DialContext(ctx, *target, grpc.WithInsecure(), grpc.WithBlock())
		cancel()
		if err != nil {
			log.Fatalf("dial %s: %v", *target, err)
		}
		defer conn.Close()
		clients[i] = healthpb.NewHealthClient(conn)
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    int
		wg        sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(*duration)
	for i := 0; i < *callers; i++ {
		wg.Add(1)
		go func(client healthpb.HealthClient) {
			defer wg.Done()
			var mine []time.Duration
			failed := 0
			for time.Now().Before(deadline) {
				began := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
				cancel()
				if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					failed++
					continue
				}
				mine = append(mine, time.Since(began))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errors += failed
			mu.Unlock()
		}(clients[i%len(clients)])
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	quantile := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))].Nanoseconds()) / 1000
	}
	fmt.Printf("requests=%d rps=%.1f p50_us=%.1f p99_us=%.1f errors=%d\n",
		len(latencies), float64(len(latencies))/elapsed.Seconds(), quantile(0.5), quantile(0.99), errors)
}
