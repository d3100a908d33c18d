//go:build !linux

package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

// runLab is Linux-only: network namespaces, tc and TUN. hostSystem's
// check refuses before this is reached; it stays as a second line.
func runLab(context.Context, testbedOptions, io.Writer, io.Writer) error {
	return fmt.Errorf("testbed: needs Linux (network namespaces, tc, TUN); this is %s", runtime.GOOS)
}

func runTestbedChild(context.Context, []string, io.Reader, io.Writer, io.Writer) error {
	return fmt.Errorf("testbed: needs Linux (network namespaces, tc, TUN); this is %s", runtime.GOOS)
}
