package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// startBusy starts n child processes that each burn a core until stop,
// so that "a busy machine" is one flag away. They are processes, not
// goroutines, so that the bench's GOMAXPROCS and CPU time stay its own.
// stop returns the CPU time they used.
func startBusy(ctx context.Context, n int) (stop func() time.Duration, err error) {
	var stdins []io.Closer
	var cmds []*exec.Cmd
	stop = func() time.Duration {
		for _, in := range stdins {
			in.Close()
		}
		var cpu time.Duration
		for _, c := range cmds {
			c.Wait()
			if c.ProcessState != nil {
				cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
			}
		}
		return cpu
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for range n {
		cmd := exec.CommandContext(ctx, exe, "bench-busy")
		in, err := cmd.StdinPipe()
		if err != nil {
			stop()
			return nil, err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			stop()
			return nil, err
		}
		stdins, cmds = append(stdins, in), append(cmds, cmd)
	}
	return stop, nil
}

// runBenchBusy is a child of "gtudp bench -busy" (not listed in the
// usage): one goroutine spins until stdin closes, which happens when the
// bench ends or dies.
func runBenchBusy(ctx context.Context, args []string, stdin io.Reader, _, _ io.Writer) error {
	if len(args) > 0 {
		return usageError("bench-busy takes no arguments")
	}
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(gone)
	}()
	x := uint64(1)
	for {
		select {
		case <-gone:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		for i := range 1 << 16 {
			x = x*6364136223846793005 + uint64(i)
		}
		if x == 0 {
			fmt.Println(x) // keeps the loop from being optimised away
		}
	}
}
