package s3store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger routes the AWS SDK's own log lines (such as "falling back to
// IMDSv1" on a host without an instance metadata service) through the
// program's logger, so stderr carries one format only and every line passes
// the secret scrubber. Without it the SDK prints "SDK <date> WARN …" to
// stderr by itself.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "aws sdk: "+strings.TrimSpace(fmt.Sprintf(format, v...)))
}
