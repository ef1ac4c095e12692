// Middle tier for the tracer's Go server-handler tests and bench: a gRPC
// server (grpc.health.v1.Health, Debian's grpc-go 1.33, GOPATH mode) and an
// HTTP/2 cleartext server (net/http wrapped in golang.org/x/net/http2/h2c)
// whose handlers call downstream services: -calls gRPC Check("ok") calls to
// -grpc-target over one shared ClientConn, then -http GETs of -http-url, one
// after another from the handler's own goroutine. Go 1.21+.
//
// Usage: grpc_middle [-grpc-target HOST:PORT] [-http-url URL] [-calls N]
//                    [-http N] [-h2c-port PORT] [-wait] PORT
//
// gRPC on 127.0.0.1:PORT: Check("ok") makes the calls, then answers SERVING
// (Internal if a call failed). With -h2c-port, GET /work on that port makes
// the same calls and answers 200 "done N" (502 if a call failed).
//
// -wait: once listening, print "WAITING" and wait for a line on stdin before
// connecting to -grpc-target (so that a tracer can follow this process from
// that connection's preface on); "DIALED" once connected.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

var (
	grpcTarget = flag.String("grpc-target", "", "downstream gRPC HOST:PORT")
	httpURL    = flag.String("http-url", "", "downstream URL for the HTTP calls")
	grpcCalls  = flag.Int("calls", 0, "gRPC calls per request")
	httpCalls  = flag.Int("http", 0, "HTTP calls per request")
	h2cPort    = flag.String("h2c-port", "", "also serve GET /work over h2c on this port")
	wait       = flag.Bool("wait", false, `print "WAITING" and wait for a line on stdin before dialling`)
)

var (
	downstream healthpb.HealthClient
	httpClient = &http.Client{Timeout: 10 * time.Second}
)

// work makes the configured downstream calls; the number made.
func work(ctx context.Context) (int, error) {
	made := 0
	for i := 0; i < *grpcCalls; i++ {
		resp, err := downstream.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
		if err != nil {
			return made, fmt.Errorf("gRPC call %d: %v", i, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return made, fmt.Errorf("gRPC call %d: %v", i, resp.GetStatus())
		}
		made++
	}
	for i := 0; i < *httpCalls; i++ {
		resp, err := httpClient.Get(*httpURL)
		if err != nil {
			return made, fmt.Errorf("HTTP call %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return made, fmt.Errorf("HTTP call %d: status %d", i, resp.StatusCode)
		}
		made++
	}
	return made, nil
}

type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() != "ok" {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	if _, err := work(ctx); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func serveH2C(port string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		made, err := work(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "done %d", made)
	})
	server := &http.Server{
		Addr:    "127.0.0.1:" + port,
		Handler: h2c.NewHandler(mux, &http2.Server{}),
	}
	log.Fatal(server.ListenAndServe())
}

func main() {
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: grpc_middle [flags] PORT")
	}
	listener, err := net.Listen("tcp", "127.0.0.1:"+flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	if *h2cPort != "" {
		go serveH2C(*h2cPort)
	}
	if *wait {
		fmt.Println("WAITING")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	if *grpcTarget != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := grpc.DialContext(ctx, *grpcTarget, grpc.WithInsecure(), grpc.WithBlock())
		cancel()
		if err != nil {
			log.Fatalf("dialling %s: %v", *grpcTarget, err)
		}
		downstream = healthpb.NewHealthClient(conn)
	}
	fmt.Println("DIALED")
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health{})
	log.Printf("listening on %s (grpc-go %s)", listener.Addr(), grpc.Version)
	log.Fatal(server.Serve(listener))
}
