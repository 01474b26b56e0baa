package sqlserver

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/testsrv/faultproxy"
)

// viaProxy returns the stand-in's DSN with its address replaced by the
// proxy's.
func viaProxy(srv *mssqltest.Server, p *faultproxy.TCP) string {
	return strings.Replace(srv.DSN(testUser, testLoginPW, nil), srv.Addr(), p.Addr, 1)
}

// finishWithin fails the test when fn has not returned within limit.
func finishWithin(t *testing.T, limit time.Duration, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("still running after %v", limit)
		return nil
	}
}

// A network that swallows everything, the cancel request included, cannot
// hold a statement past its limit: the connection is cut AttentionGrace
// after it (without the cut the driver waits 5 s for the cancel's answer,
// and forever when sending the cancel itself blocks).
func TestAStatementWhoseCancelIsSwallowedEndsWithItsConnectionCut(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{})
	p := faultproxy.NewTCP(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := OpenWith(ctx, secret.New(viaProxy(srv, p)), quietLog, deadline.Limits{Connect: 5 * time.Second, Request: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Freeze()
	err = finishWithin(t, 4500*time.Millisecond, func() error {
		return c.BackupServiceMasterKey(context.Background(), filepath.Join(t.TempDir(), "k.key"), secret.New(testBackupPW))
	})
	if exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "timeouts.request") {
		t.Fatalf("got %v (exit %d), want exit 3 naming timeouts.request", err, exitcode.Code(err))
	}
}

// A server that accepts the connection but never answers the login is
// given up at timeouts.connect.
func TestALoginThatNeverAnswersEndsAtTheConnectLimit(t *testing.T) {
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
	dsn := "sqlserver://u:p@" + ln.Addr().String() + "?encrypt=disable"
	err = finishWithin(t, 10*time.Second, func() error {
		_, err := OpenWith(context.Background(), secret.New(dsn), quietLog, deadline.Limits{Connect: time.Second, Request: 5 * time.Second})
		return err
	})
	var se *Error
	if exitcode.Code(err) != exitcode.SQLServer || !errors.As(err, &se) || se.Step != "connect" || !strings.Contains(err.Error(), "timeouts.connect") {
		t.Fatalf("got %v (exit %d), want a connect failure naming timeouts.connect", err, exitcode.Code(err))
	}
}

// The run's own deadline, when it comes first, is the one named.
func TestAStatementCutByTheRunDeadlineNamesTimeoutsRun(t *testing.T) {
	srv := newStandin(t, mssqltest.Config{})
	srv.Inject(mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Delay: time.Minute})
	c := open(t, srv.DSN(testUser, testLoginPW, nil))
	ctx, cancel := deadline.WithRun(context.Background(), time.Now(), 300*time.Millisecond)
	defer cancel()
	err := finishWithin(t, 8*time.Second, func() error {
		return c.BackupServiceMasterKey(ctx, filepath.Join(t.TempDir(), "k.key"), secret.New(testBackupPW))
	})
	if exitcode.Code(err) != exitcode.SQLServer || !strings.Contains(err.Error(), "timeouts.run") {
		t.Fatalf("got %v (exit %d), want exit 3 naming timeouts.run", err, exitcode.Code(err))
	}
}
