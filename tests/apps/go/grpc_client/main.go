// gRPC test client for the tracer's integration tests: calls the health
// service of grpc_server with Debian's grpc-go 1.33 (GOPATH mode), Go 1.21+.
// All calls go over one connection: insecure (h2c), or with -ca over TLS
// (grpc-go's TLS credentials: Go's crypto/tls), verified against that CA.
//
// Usage: grpc_client -target HOST:PORT [-call check-ok|check-missing|watch] [-n N]
//                    [-traceparent VALUE] [-concurrent] [-ca FILE] [-wait]
//
//	check-ok       Check("ok"), expects SERVING; prints "CHECK ok SERVING"
//	check-missing  Check("missing"), expects status NotFound; prints
//	               "CHECK missing NotFound"
//	watch          Watch("ok"), expects 3 × SERVING then OK; prints
//	               "WATCH ok SERVING" per message, then "WATCH ok END OK"
//
// The call is made N times, one after another (-concurrent: all at once,
// from N goroutines, as concurrent streams of the one connection). -traceparent: send that value as `traceparent`
// metadata with every call (what an instrumented caller does). -wait: print "WAITING" and wait for a line on
// stdin before connecting (so that a tracer can be started on this process
// first). Exits 1 on any unexpected result.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// How many messages grpc_server's Watch("ok") sends.
const watchMessages = 3

var (
	target   = flag.String("target", "", "the server's HOST:PORT")
	callName = flag.String("call", "check-ok", "check-ok, check-missing or watch")
	repeat   = flag.Int("n", 1, "how many times to make the call")
	wait     = flag.Bool("wait", false, `print "WAITING" and wait for a line on stdin first`)
	parent   = flag.String("traceparent", "", "traceparent metadata sent with every call")
	parallel = flag.Bool("concurrent", false, "make the N calls at once, as concurrent streams of the one connection")
	caFile   = flag.String("ca", "", "connect over TLS, verifying the server against this CA (PEM)")
)

func checkOK(ctx context.Context, client healthpb.HealthClient) error {
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if err != nil {
		return fmt.Errorf("Check(ok): %v", err)
	}
	fmt.Printf("CHECK ok %v\n", resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("Check(ok) = %v, want SERVING", resp.GetStatus())
	}
	return nil
}

func checkMissing(ctx context.Context, client healthpb.HealthClient) error {
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "missing"})
	code := status.Code(err)
	fmt.Printf("CHECK missing %v\n", code)
	if code != codes.NotFound {
		return fmt.Errorf("Check(missing): %v, want status NotFound", err)
	}
	return nil
}

func watch(ctx context.Context, client healthpb.HealthClient) error {
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if err != nil {
		return fmt.Errorf("Watch(ok): %v", err)
	}
	received := 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("Watch(ok) after %d messages: %v", received, err)
		}
		received++
		fmt.Printf("WATCH ok %v\n", resp.GetStatus())
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("Watch(ok) sent %v, want SERVING", resp.GetStatus())
		}
	}
	fmt.Println("WATCH ok END OK")
	if received != watchMessages {
		return fmt.Errorf("Watch(ok) sent %d messages, want %d", received, watchMessages)
	}
	return nil
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: grpc_client -target HOST:PORT [-call check-ok|check-missing|watch] [-n N] [-wait]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *target == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	calls := map[string]func(context.Context, healthpb.HealthClient) error{
		"check-ok":      checkOK,
		"check-missing": checkMissing,
		"watch":         watch,
	}
	run, ok := calls[*callName]
	if !ok {
		flag.Usage()
		os.Exit(2)
	}
	if *wait {
		fmt.Println("WAITING")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			log.Fatalf("stdin closed while waiting: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// WithBlock: a server that is not there is a clear dial error, not a
	// failure of the first call; and a refused connection ends the dial at
	// once instead of retrying until the timeout.
	security := grpc.WithInsecure()
	if *caFile != "" {
		creds, err := credentials.NewClientTLSFromFile(*caFile, "")
		if err != nil {
			log.Fatal(err)
		}
		security = grpc.WithTransportCredentials(creds)
	}
	conn, err := grpc.DialContext(ctx, *target, security, grpc.WithBlock(),
		grpc.FailOnNonTempDialError(true))
	if err != nil {
		log.Fatalf("dial %s: %v", *target, err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	if *parent != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", *parent)
	}
	if *parallel {
		errs := make(chan error, *repeat)
		for i := 0; i < *repeat; i++ {
			go func() { errs <- run(ctx, client) }()
		}
		for i := 0; i < *repeat; i++ {
			if err := <-errs; err != nil {
				conn.Close()
				log.Fatal(err)
			}
		}
		return
	}
	for i := 0; i < *repeat; i++ {
		if err := run(ctx, client); err != nil {
			conn.Close()
			log.Fatal(err)
		}
	}
}
