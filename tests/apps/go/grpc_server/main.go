// gRPC test server for the tracer's integration tests: the standard health
// service (grpc.health.v1.Health) from Debian's grpc-go 1.33, built in GOPATH
// mode (GO111MODULE=off GOPATH=/usr/share/gocode), Go 1.21+. No TLS unless
// asked for: clients speak HTTP/2 with prior knowledge (h2c).
//
// Usage: grpc_server [-cert FILE -key FILE] PORT   (listens on 127.0.0.1:PORT;
// with -cert and -key over TLS, grpc-go's TLS credentials: Go's crypto/tls)
//
// Check("ok") and Check("") → SERVING; Check of anything else → status
// NotFound. Watch("ok") streams SERVING three times, then ends with OK;
// Watch of anything else → NotFound. The health service is implemented here,
// not taken from grpc/health, so that what each call returns is fixed.
//
// Each unary call prints the `traceparent` metadata it received on stdout:
// "TRACEPARENT n=<number of values> value=<values, comma-separated>".
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// How many messages Watch("ok") sends before it ends.
const watchMessages = 3

type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case "", "ok":
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	default:
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
}

func (health) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	if req.GetService() != "ok" {
		return status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	for i := 0; i < watchMessages; i++ {
		if i > 0 {
			// Apart in time, so that each message is its own DATA frame
			// (and its own write) rather than one coalesced buffer.
			time.Sleep(10 * time.Millisecond)
		}
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	return nil
}

func printTraceparent(ctx context.Context, req interface{}, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("traceparent")
	fmt.Printf("TRACEPARENT n=%d value=%s\n", len(values), strings.Join(values, ","))
	return handler(ctx, req)
}

func main() {
	certFile := flag.String("cert", "", "serve over TLS with this certificate (PEM; needs -key)")
	keyFile := flag.String("key", "", "the private key of -cert (PEM)")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: grpc_server [-cert FILE -key FILE] PORT")
	}
	addr := "127.0.0.1:" + flag.Arg(0)
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	options := []grpc.ServerOption{grpc.UnaryInterceptor(printTraceparent)}
	if *certFile != "" {
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		options = append(options, grpc.Creds(creds))
	}
	server := grpc.NewServer(options...)
	healthpb.RegisterHealthServer(server, health{})
	log.Printf("listening on %s (grpc-go %s)", addr, grpc.Version)
	log.Fatal(server.Serve(listener))
}
