//go:build !linux

package actor

import "syscall"

// socketBufferSizes is unknown outside Linux: the request is made, the
// result not checked.
func socketBufferSizes(syscall.RawConn) (rcv, snd int) { return 0, 0 }
