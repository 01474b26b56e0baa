package memstore

import (
	"fmt"
	"maps"
)

// fault is a pending injected error.
type fault struct {
	err   error
	times int
}

// Inject makes the next times calls of op ("preflight", "put", "stat",
// "open", "list") fail with an error wrapping err. times <= 0 clears it.
func (s *Store) Inject(op string, err error, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times <= 0 || err == nil {
		delete(s.faults, op)
		return
	}
	s.faults[op] = &fault{err: err, times: times}
}

// Hook makes every later call of op run fn first, without the store's lock
// held (fn may call the store). A nil fn removes the hook.
func (s *Store) Hook(op string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.hooks, op)
		return
	}
	s.hooks[op] = fn
}

// Requests returns how many times each op was called, faults included.
func (s *Store) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.requests)
}

// begin counts a call of op, runs its hook and returns an injected fault.
func (s *Store) begin(op string) error {
	s.mu.Lock()
	s.requests[op]++
	hook := s.hooks[op]
	var err error
	if f := s.faults[op]; f != nil {
		err = fmt.Errorf("memstore %s: injected fault: %w", op, f.err)
		if f.times--; f.times <= 0 {
			delete(s.faults, op)
		}
	}
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return err
}
