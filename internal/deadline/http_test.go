package deadline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// within fails the test when fn has not returned within limit (a bound on
// a hang, not a timing assertion).
func within[T any](t *testing.T, limit time.Duration, fn func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	select {
	case v := <-done:
		return v
	case <-time.After(limit):
		t.Fatalf("still running after %v", limit)
		var zero T
		return zero
	}
}

// wantLimit checks that err names the limit key and behaves as a timeout.
func wantLimit(t *testing.T, err error, key string) {
	t.Helper()
	var e *Error
	switch {
	case err == nil:
		t.Fatalf("no error, want one naming %s", key)
	case !errors.As(err, &e) || e.Key != key:
		t.Fatalf("error %v, want one naming %s", err, key)
	case !strings.Contains(err.Error(), key):
		t.Fatalf("message %q does not name %s", err, key)
	case !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, storage.ErrUnavailable):
		t.Fatalf("error %v is not a deadline and unavailability", err)
	case errors.Is(err, context.Canceled):
		t.Fatalf("error %v reads as an interruption", err)
	}
}

func client(l Limits) *http.Client {
	return &http.Client{Transport: GuardTransport(http.DefaultTransport.(*http.Transport).Clone(), l)}
}

// stallUntil blocks a handler until the client goes away or the test ends.
func stallUntil(r *http.Request, stop <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-stop:
	}
}

func server(t *testing.T, h func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})) *httptest.Server {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(w, r, stop) }))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv
}

var small = Limits{Connect: time.Second, Request: 3 * time.Second, Idle: 300 * time.Millisecond, Run: time.Minute}

func TestAnAnswerWhoseHeadersNeverComeEndsAtTheIdleLimit(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) { stallUntil(r, stop) })
	err := within(t, 5*time.Second, func() error {
		resp, err := client(small).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	wantLimit(t, err, KeyIdle)
}

func TestABodyThatStallsAfterTheHeadersEndsAtTheIdleLimit(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte("k"), 10))
		w.(http.Flusher).Flush()
		stallUntil(r, stop)
	})
	resp, err := client(small).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	err = within(t, 5*time.Second, func() error { _, err := io.ReadAll(resp.Body); return err })
	wantLimit(t, err, KeyIdle)
}

// A trickle fast enough for the idle limit still ends at the request limit.
func TestATrickleBelowTheIdleLimitEndsAtTheRequestLimit(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte("k")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			case <-stop:
				return
			}
		}
	})
	l := small
	l.Request = 1500 * time.Millisecond
	err := within(t, 6*time.Second, func() error {
		resp, err := client(l).Get(srv.URL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	})
	wantLimit(t, err, KeyRequest)
}

// A server that stops reading the upload leaves the client's writes
// blocked: no byte moves, and the idle limit ends it.
func TestAnUploadTheServerStopsReadingEndsAtTheIdleLimit(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) { stallUntil(r, stop) })
	body := bytes.Repeat([]byte("k"), 64<<20)
	err := within(t, 8*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodPut, srv.URL, bytes.NewReader(body))
		resp, err := client(small).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	wantLimit(t, err, KeyIdle)
}

// A healthy answer slower than the idle limit in total, but never idle
// that long, goes through: the watchdog measures silence, not duration.
func TestASlowButSteadyAnswerIsNotCut(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		w.Header().Set("Content-Length", "8")
		w.WriteHeader(http.StatusOK)
		for range 8 {
			_, _ = w.Write([]byte("k"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	resp, err := client(small).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "kkkkkkkk" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// The limit an attempt hits reaches the operation through the probe even
// when the SDK rephrases the error.
func TestTheProbeCarriesTheLimitPastAnSDKThatRephrases(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) { stallUntil(r, stop) })
	c := client(small)
	rephrasing := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, errors.Join(errors.New("operation error S3: GetObject: request send failed"), storage.ErrUnavailable)
		}
		resp.Body.Close()
		return 1, nil
	}
	err := within(t, 5*time.Second, func() error { _, err := call(context.Background(), small.Request, rephrasing); return err })
	wantLimit(t, err, KeyIdle)
}

// A server that accepts the connection but never completes the TLS
// handshake is given up at timeouts.connect.
func TestAHandshakeThatNeverCompletesEndsAtTheConnectLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = small.Connect
	c := &http.Client{Transport: GuardTransport(tr, small)}
	err = within(t, 5*time.Second, func() error {
		resp, err := c.Get("https://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	wantLimit(t, err, KeyConnect)
}
