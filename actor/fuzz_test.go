package actor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

// FuzzEndpoint feeds arbitrary datagrams from one address into a live
// endpoint: it must not panic, must account for every datagram, and must go
// on serving another peer as if nothing happened. The input is a sequence
// of datagrams, each prefixed by its length (one byte). The seeds run as
// unit tests; go test -fuzz FuzzEndpoint ./actor explores.
func FuzzEndpoint(f *testing.F) {
	fm := wire.DefaultFormat()
	frame := func(dgs ...[]byte) []byte {
		var b []byte
		for _, d := range dgs {
			b = append(b, byte(len(d)))
			b = append(b, d...)
		}
		return b
	}
	id := wire.ID{1, 2, 3, 4}
	f.Add(frame(fm.Append(nil, wire.Packet{Kind: wire.Data, ID: id, Payload: []byte("x")})))
	f.Add(frame(fm.Append(nil, wire.Packet{Kind: wire.Recv, ID: id}), fm.Append(nil, wire.Packet{Kind: wire.Ack, ID: id})))
	f.Add(frame([]byte{}, []byte{0x1d}, []byte{0x1d, 1, 2}, []byte("plain text"), []byte{0xae, 1, 2, 3, 4, 5, 6}))
	f.Add(frame(fm.Append(nil, wire.Packet{Kind: wire.Data, ID: id, Payload: []byte("a")}),
		fm.Append(nil, wire.Packet{Kind: wire.Data, ID: id, Payload: []byte("b")}),
		fm.Append(nil, wire.Packet{Kind: wire.Data, ID: id, Payload: []byte("a")})))
	f.Fuzz(func(t *testing.T, input []byte) {
		synctest.Test(t, func(t *testing.T) {
			mock := clock.NewMock()
			network := actortest.NewNetwork(mock)
			network.SetQueueLen(1 << 12)
			sc, _ := network.Listen("10.0.0.1:1")
			fc, _ := network.Listen("10.0.0.2:1")
			evil, _ := network.Listen("10.6.6.6:6")
			srv, _ := gtudp.New(sc, &gtudp.Config{Clock: mock, Passthrough: len(input)%2 == 1})
			friend, _ := gtudp.New(fc, &gtudp.Config{Clock: mock})
			go func() {
				for range srv.Inbox() {
				}
			}()
			sent := 0
			for len(input) > 0 {
				n := min(int(input[0]), len(input)-1)
				evil.WriteTo(input[1:1+n], sc.LocalAddr())
				input = input[1+n:]
				sent++
			}
			synctest.Wait()
			st := srv.Stats()
			es, _ := srv.PeerStats(evil.AddrPort())
			if got := st.Foreign + st.Malformed + st.StrayRecv + st.StrayAck + st.MailboxFull + es.PacketsIn; got != uint64(sent) {
				t.Fatalf("accounted for %d of %d datagrams: %+v, peer %+v", got, sent, st, es)
			}
			errc := make(chan error, 1)
			go func() { errc <- friend.Send(context.Background(), srv.LocalAddr(), []byte("ok")) }()
			synctest.Wait()
			if err := <-errc; err != nil {
				t.Fatalf("another peer after the datagrams: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // do not wait for the fuzzed exchanges to drain
			srv.Close(ctx)
			friend.Close(ctx)
		})
	})
}
