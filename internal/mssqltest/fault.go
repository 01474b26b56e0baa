package mssqltest

import (
	"fmt"
	"time"
)

// Error is a SQL Server error message (the ERROR token).
type Error struct {
	Number  int32
	State   uint8
	Class   uint8
	Message string
}

// Fault makes the server misbehave for one kind of statement.
type Fault struct {
	Kind  StatementKind
	Error *Error        // answer with this ERROR (+ DONE with error flag)
	Drop  bool          // close the connection without answering
	Delay time.Duration // wait first (ended early by Attention or Close)
	// ShortRead, for KindReadFile, sends that many bytes fewer of the file
	// than DATALENGTH reports, as a broken server or proxy would.
	ShortRead int
	Times     int // how often it fires; 0 = every time
}

type faultEntry struct {
	f    Fault
	left int
}

// Inject adds a fault; faults are checked in the order they were added.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, &faultEntry{f: f, left: f.Times})
	s.mu.Unlock()
}

// takeFault returns the fault that fires for kind, if any.
func (s *Server) takeFault(kind StatementKind) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.faults {
		if e.f.Kind != kind {
			continue
		}
		if e.f.Times > 0 {
			e.left--
			if e.left <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return e.f, true
	}
	return Fault{}, false
}

func (e Error) String() string {
	return fmt.Sprintf("Msg %d, Level %d, State %d: %s", e.Number, e.Class, e.State, e.Message)
}
