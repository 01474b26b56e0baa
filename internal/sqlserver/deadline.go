package sqlserver

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/exitcode"
)

// AttentionGrace is how long a statement past its limit may take to end
// after the driver sends the cancel request (TDS Attention). A server that
// ignores it, or a network that swallows it, has the connection cut then:
// every blocked read and write on it fails.
const AttentionGrace = 2 * time.Second

// conns remembers the TCP connections the driver dials, so a limit can cut
// them whatever the driver is waiting for.
type conns struct {
	connect time.Duration

	mu   sync.Mutex
	list []net.Conn
}

// DialContext dials like the driver's own dialer (TCP keep-alive 30s),
// within the connect limit.
func (w *conns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: w.connect, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err == nil && strings.HasPrefix(network, "tcp") {
		w.mu.Lock()
		w.list = append(w.list, c)
		w.mu.Unlock()
	}
	return c, err
}

// cut makes every read and write on the connections fail from at on.
func (w *conns) cut(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.list {
		_ = c.SetDeadline(at)
	}
}

// watch cuts the connections grace after ctx ends, unless the returned
// stop is called first.
func (w *conns) watch(ctx context.Context, grace time.Duration) (stop func() bool) {
	return context.AfterFunc(ctx, func() { w.cut(time.Now().Add(grace)) })
}

// timedOut returns err as a SQL Server failure naming the limit that ended
// ctx, when one did; else translate(step, err).
func timedOut(ctx context.Context, step string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() == context.DeadlineExceeded {
		if e := deadline.Of(ctx, nil); e != nil {
			return exitcode.Wrap(exitcode.SQLServer, &Error{Step: step, Message: e.Error(),
				Hint: "check that the server is up and not blocked (a long-running transaction, a full log)"})
		}
	}
	return translate(step, err)
}
