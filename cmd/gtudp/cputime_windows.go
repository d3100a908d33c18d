package main

import (
	"syscall"
	"time"
)

// cpuTime is the user and kernel time this process has used so far, or
// zero when the system does not say.
func cpuTime() time.Duration {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0
	}
	var creation, exit, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(h, &creation, &exit, &kernel, &user); err != nil {
		return 0
	}
	// A FILETIME here is a duration in 100 ns units, not a date:
	// Filetime.Nanoseconds would subtract the 1601 epoch from it.
	ticks := func(ft syscall.Filetime) time.Duration {
		return time.Duration(uint64(ft.HighDateTime)<<32|uint64(ft.LowDateTime)) * 100
	}
	return ticks(kernel) + ticks(user)
}
