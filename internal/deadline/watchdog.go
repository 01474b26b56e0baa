package deadline

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// WatchdogCode is the exit code of a process the watchdog ends: 1, an
// internal error, because the run could not stop itself at its deadline.
const WatchdogCode = 1

// Grace is how long past timeouts.run the watchdog waits for the run to
// unwind on its own (print its receipt, release the lock): a tenth of the
// run, at least 5s and at most 30s.
func Grace(run time.Duration) time.Duration {
	return min(max(run/10, 5*time.Second), 30*time.Second)
}

// Watchdog is the last resort against a run that outlives its deadline
// because something blocks where no context reaches (a system call on a
// hung network mount or device). Once armed, it writes one line to stderr
// and calls exit(WatchdogCode) when the run has not ended by its limit plus
// Grace. The process's file locks are released by the system on exit.
type Watchdog struct {
	stderr io.Writer
	exit   func(int)

	mu    sync.Mutex
	timer *time.Timer
}

// NewWatchdog returns an unarmed watchdog.
func NewWatchdog(stderr io.Writer, exit func(int)) *Watchdog {
	return &Watchdog{stderr: stderr, exit: exit}
}

// Arm (re)starts the countdown: the run may still last left.
func (w *Watchdog) Arm(left time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	grace := Grace(left)
	w.timer = time.AfterFunc(left+grace, func() {
		fmt.Fprintf(w.stderr, "keyescrow: the run did not end within %s of reaching timeouts.run and was stopped (exit %d): something blocked where no timeout reaches, such as a hung network mount or device; nothing of this run is proven\n", grace, WatchdogCode)
		w.exit(WatchdogCode)
	})
}

// Stop disarms the watchdog (the run ended).
func (w *Watchdog) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}
