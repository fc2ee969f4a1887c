//go:build !linux

package frontend

import (
	"log/slog"
	"net"
	"net/netip"
)

// rawSender exists on Linux only; elsewhere replies go through net.UDPConn.
type rawSender struct{}

func newRawSender(*net.UDPConn) (*rawSender, error) { return nil, nil }

func (*rawSender) send([]byte, []byte, netip.AddrPort) error { return nil }

// replyBatch exists on Linux only; elsewhere each reply is sent at once.
type replyBatch struct{}

func newReplyBatch(*rawSender, *slog.Logger) *replyBatch { return nil }

func (*replyBatch) add(*query, []byte) bool { return false }

func (*replyBatch) flush() {}
