package client

import (
	"sync"

	"github.com/sluicerpc/sluice/protocol/connect"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// connectConn calls one address over the Connect unary protocol.
type connectConn struct {
	*connect.Client
	done chan struct{}
	once sync.Once
}

func dialConnect(addr string, o options) (conn, error) {
	c, err := connect.NewClient("http://"+addr, connect.WithMaxResponseSize(o.maxFrameSize))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "client: connect client for %s: %v", addr, err)
	}
	return &connectConn{Client: c, done: make(chan struct{})}, nil
}

func (c *connectConn) Usable() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Idle is always true: HTTP connections drain on their own.
func (c *connectConn) Idle() bool { return true }

func (c *connectConn) Done() <-chan struct{} { return c.done }

func (c *connectConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.Client.Close()
	})
	return err
}
