//go:build tracer_cgo

// Built only with -tags tracer_cgo (and CGO_ENABLED=1): makes fanout a cgo
// binary, linked with the C library, whose runtime keeps the current
// goroutine where a pure-Go binary does too (the tracer reads it at
// fsbase-8). The program itself does not change.
package main

// #include <stdlib.h>
import "C"
