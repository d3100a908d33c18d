//go:build !unix && !windows

package main

import "time"

// cpuTime is zero where the process's CPU time cannot be read (Plan 9,
// WebAssembly): the bench then shows no CPU per message.
func cpuTime() time.Duration { return 0 }
