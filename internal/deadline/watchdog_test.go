package deadline

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestTheWatchdogEndsARunThatOutlivesItsLimit(t *testing.T) {
	var out syncBuf
	codes := make(chan int, 1)
	w := NewWatchdog(&out, func(code int) { codes <- code })
	w.Arm(10 * time.Millisecond)
	select {
	case code := <-codes:
		if code != WatchdogCode || !strings.Contains(out.String(), "timeouts.run") {
			t.Fatalf("exit %d, stderr %q", code, out.String())
		}
	case <-time.After(Grace(0) + 10*time.Second):
		t.Fatal("the watchdog never fired")
	}
}

func TestAStoppedWatchdogNeverFires(t *testing.T) {
	fired := make(chan int, 1)
	w := NewWatchdog(&syncBuf{}, func(code int) { fired <- code })
	w.Arm(10 * time.Millisecond)
	w.Stop()
	select {
	case <-fired:
		t.Fatal("a stopped watchdog fired")
	case <-time.After(Grace(0) + time.Second):
	}
}

func TestGraceIsATenthOfTheRunWithinBounds(t *testing.T) {
	for run, want := range map[time.Duration]time.Duration{time.Second: 5 * time.Second, 2 * time.Minute: 12 * time.Second, time.Hour: 30 * time.Second} {
		if got := Grace(run); got != want {
			t.Errorf("Grace(%v) = %v, want %v", run, got, want)
		}
	}
}
