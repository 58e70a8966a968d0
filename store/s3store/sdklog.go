package s3store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger routes the AWS SDK's own messages (a credential source that
// failed, a deprecated setting) into the store's logger, so that they
// keep the program's log format instead of reaching stderr raw.
type sdkLogger struct{ log *slog.Logger }

var _ logging.ContextLogger = sdkLogger{}

// Logf logs one SDK message: warnings as warnings, the rest at debug level.
func (l sdkLogger) Logf(class logging.Classification, format string, v ...any) {
	l.logf(context.Background(), class, format, v...)
}

// WithContext keeps the context of the request the message is about.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	return ctxLogger{l, ctx}
}

func (l sdkLogger) logf(ctx context.Context, class logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if class == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(ctx, level, "s3store: AWS SDK: "+fmt.Sprintf(format, v...))
}

type ctxLogger struct {
	l   sdkLogger
	ctx context.Context
}

func (c ctxLogger) Logf(class logging.Classification, format string, v ...any) {
	c.l.logf(c.ctx, class, format, v...)
}
