//go:build !(linux && (amd64 || arm64 || ppc64 || ppc64le || mips64 || mips64le || riscv64 || s390x || loong64))

package actor

import (
	"net"
	"net/netip"

	"github.com/gtudp/gtudp/peer"
)

// batchReader reads datagrams in batches where the platform has
// recvmmsg(2) (see batch_linux.go); here it does not exist, and the
// reader reads one datagram per call.
type batchReader struct{}

func newBatchReader(*net.UDPConn, int) *batchReader { return nil }

func (*batchReader) read() (int, error) { panic("unreachable") }

func (*batchReader) datagram(int) ([]byte, netip.AddrPort, bool) { panic("unreachable") }

func (*batchReader) lend(int, *peer.Buffers, <-chan struct{}) *[]byte { panic("unreachable") }

// batchWriter writes with sendmmsg(2) where it exists; here peers write
// one datagram per call.
type batchWriter struct{ *net.UDPConn }

func newBatchWriter(*net.UDPConn, int) *batchWriter { return nil }

func (*batchWriter) WriteBatch([][]byte, netip.AddrPort) (int, error) { panic("unreachable") }
