package gtudp_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
)

// endpoint opens an endpoint on the in-memory network.
func endpoint(n *actortest.Network, addr string, cfg *gtudp.Config) *gtudp.Endpoint {
	conn, err := n.Listen(addr)
	if err != nil {
		log.Fatal(err)
	}
	ep, err := gtudp.New(conn, cfg)
	if err != nil {
		log.Fatal(err)
	}
	return ep
}

// An echo server sends every message back to its sender; the client sends
// with the Outbox and reads the echoes from its Inbox.
func Example_echo() {
	network := actortest.NewNetwork(nil)
	server := endpoint(network, "10.0.0.1:4323", nil)
	client := endpoint(network, "10.0.0.2:5000", nil)
	ctx := context.Background()

	go func() {
		for m := range server.Inbox() {
			// Send blocks until the client has it; a slow client
			// slows only this goroutine.
			if err := server.Send(ctx, m.Addr, m.Data); err != nil {
				log.Print(err)
			}
		}
	}()

	client.Outbox() <- gtudp.Message{Addr: server.LocalAddr(), Data: []byte("hello")}
	r := <-client.Receipts()
	fmt.Println("delivered:", r.Err == nil)
	m := <-client.Inbox()
	fmt.Printf("echo from %v: %s\n", m.Addr, m.Data)

	client.Close(ctx)
	server.Close(ctx)
	// Output:
	// delivered: true
	// echo from 10.0.0.1:4323: hello
}

// Send blocks until the peer has the message, or says why not.
func ExampleEndpoint_Send() {
	network := actortest.NewNetwork(nil)
	a := endpoint(network, "10.0.0.1:4323", nil)
	b := endpoint(network, "10.0.0.2:4323", nil)
	ctx := context.Background()

	err := a.Send(ctx, b.LocalAddr(), []byte("ping"))
	fmt.Println("Send:", err)
	// Success means the message is in b's Inbox.
	m := <-b.Inbox()
	fmt.Printf("b got %q from %v\n", m.Data, m.Addr)

	b.Close(ctx)
	a.Close(ctx)
	// Output:
	// Send: <nil>
	// b got "ping" from 10.0.0.1:4323
}

// With Passthrough, datagrams that are not gtUDP arrive raw, and raw
// datagrams go out unframed: talk to plain UDP programs on the same
// socket.
func Example_passthrough() {
	network := actortest.NewNetwork(nil)
	ep := endpoint(network, "10.0.0.1:4323", &gtudp.Config{Passthrough: true})
	plain, err := network.Listen("10.0.0.2:9999") // not gtUDP
	if err != nil {
		log.Fatal(err)
	}
	defer plain.Close()

	plain.WriteTo([]byte("plain hello"), net.UDPAddrFromAddrPort(ep.LocalAddr()))
	m := <-ep.Inbox()
	fmt.Printf("raw=%v from %v: %s\n", m.Raw, m.Addr, m.Data)

	if err := ep.SendRaw(m.Addr, []byte("plain reply")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _, _ := plain.ReadFrom(buf)
	fmt.Printf("plain got: %s\n", buf[:n])

	ep.Close(context.Background())
	// Output:
	// raw=true from 10.0.0.2:9999: plain hello
	// plain got: plain reply
}

// A receipt carries its message back: match it by Data, Addr or ID, with
// no id scheme of your own, and reuse the buffer once the receipt is out.
func ExampleEndpoint_Receipts() {
	network := actortest.NewNetwork(nil)
	server := endpoint(network, "10.0.0.1:4323", nil)
	clients := []*gtudp.Endpoint{
		endpoint(network, "10.0.0.2:5000", nil),
		endpoint(network, "10.0.0.3:5000", nil),
	}
	go func() {
		for range server.Inbox() {
		}
	}()
	for _, c := range clients {
		c.Outbox() <- gtudp.Message{Addr: server.LocalAddr(), Data: []byte("presence from " + c.LocalAddr().String())}
	}
	for _, c := range clients {
		r := <-c.Receipts()
		fmt.Printf("%s: delivered=%v\n", r.Data, r.Err == nil)
	}

	ctx := context.Background()
	for _, c := range clients {
		c.Close(ctx)
	}
	server.Close(ctx)
	// Output:
	// presence from 10.0.0.2:5000: delivered=true
	// presence from 10.0.0.3:5000: delivered=true
}
