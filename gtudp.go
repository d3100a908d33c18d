package gtudp

import (
	"fmt"
	"net"

	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Endpoint is a gtUDP endpoint on one socket; see the package
// documentation for its lifecycle and guarantees. All its methods are safe
// for concurrent use.
type Endpoint = actor.Endpoint

// Config configures an Endpoint; the zero value (or nil) works.
type Config = actor.Config

// Message is a datagram to send, or one received from the Inbox.
type Message = peer.Message

// Receipt is the outcome of one message sent through the Outbox.
type Receipt = peer.Receipt

// Stats are an endpoint's counters, with the totals over its peers.
type Stats = actor.Stats

// PeerStats are the counters of one remote peer.
type PeerStats = peer.Stats

// Format is the wire format: magic prefix and type identifiers.
type Format = wire.Format

// UndeliveredError is the error of a message the endpoint gave up on: it
// names the peer, the message and the attempts made, and matches
// ErrUndelivered.
type UndeliveredError = peer.UndeliveredError

// Errors, for use with errors.Is. A Send can also return its context's
// error.
var (
	// ErrClosed: the endpoint is closed or closing, or its socket failed.
	// It also matches net.ErrClosed.
	ErrClosed = peer.ErrClosed
	// ErrUndelivered: the peer never answered RECV within MaxAttempts or
	// Lifetime. The error is an *UndeliveredError.
	ErrUndelivered = peer.ErrUndelivered
	// ErrTooLarge: the message does not fit in one UDP datagram with its
	// header.
	ErrTooLarge = wire.ErrTooLarge
	// ErrPeerLimit: a send to a new address found MaxPeers peers live.
	ErrPeerLimit = actor.ErrPeerLimit
)

// DefaultFormat returns the Python original's format: type identifiers
// 0x1D (DATA), 0x5F (RECV), 0xAE (ACK) and no magic prefix.
func DefaultFormat() Format { return wire.DefaultFormat() }

// Listen opens a UDP socket on address ("udp", "udp4" or "udp6" network,
// as net.ListenPacket takes them) and returns an endpoint serving it; Close
// closes the socket. cfg may be nil.
func Listen(network, address string, cfg *Config) (*Endpoint, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("gtudp: network %q is not UDP (want udp, udp4 or udp6)", network)
	}
	conn, err := net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	ep, err := actor.New(conn, cfg, true)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ep, nil
}

// New returns an endpoint serving conn, which may be any net.PacketConn
// (actortest.Network gives in-memory ones). Close leaves conn open; until
// then the endpoint is its only reader. cfg may be nil.
func New(conn net.PacketConn, cfg *Config) (*Endpoint, error) {
	return actor.New(conn, cfg, false)
}
