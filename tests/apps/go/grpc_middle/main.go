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
// (Internal if a call failed). With -h2c-port, GET /work/<anything> on that
// port (ServeMux pattern "/work/") makes the same calls and answers 200
// "done N" (502 if a call failed).
//
// -wait: once listening, print "WAITING" and wait for a line on stdin before
// connecting to -grpc-target (so that a tracer can follow this process from
// that connection's preface on); "DIALED" once connected. SIGHUP: dial a new
// connection to -grpc-target for the calls from then on ("REDIALED"), for a
// tracer started since.
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
	"os/signal"
	"sync/atomic"
	"syscall"
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
	// The *grpc.ClientConn of the current connection.
	downstream atomic.Value
	httpClient = &http.Client{Timeout: 10 * time.Second}
)

// dial connects to -grpc-target; calls use that connection from then on,
// and the previous one is closed once its calls are done.
func dial() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *grpcTarget, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		return fmt.Errorf("dialling %s: %v", *grpcTarget, err)
	}
	old, _ := downstream.Load().(*grpc.ClientConn)
	downstream.Store(conn)
	if old != nil {
		time.AfterFunc(10*time.Second, func() { old.Close() })
	}
	return nil
}

// work makes the configured downstream calls; the number made.
func work(ctx context.Context) (int, error) {
	made := 0
	for i := 0; i < *grpcCalls; i++ {
		conn := downstream.Load().(*grpc.ClientConn)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
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
	mux.HandleFunc("/work/", func(w http.ResponseWriter, r *http.Request) {
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
		if err := dial(); err != nil {
			log.Fatal(err)
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			for range hup {
				if err := dial(); err != nil {
					log.Print(err)
					continue
				}
				fmt.Println("REDIALED")
			}
		}()
	}
	fmt.Println("DIALED")
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health{})
	log.Printf("listening on %s (grpc-go %s)", listener.Addr(), grpc.Version)
	log.Fatal(server.Serve(listener))
}
