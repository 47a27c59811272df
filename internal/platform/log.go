package platform

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"
)

// newLogInterceptor writes one line per RPC: procedure, protocol, code and
// duration. Server errors are logged at error level with their cause.
func newLogInterceptor(log *slog.Logger) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			res, err := next(ctx, req)
			var ce *connect.Error
			if err != nil && !errors.As(err, &ce) {
				// An uncoded error would reach the caller as Unknown with
				// its raw text: log the cause, answer Internal.
				log.ErrorContext(ctx, "uncoded handler error", "procedure", req.Spec().Procedure, "error", err.Error())
				err = connect.NewError(connect.CodeInternal, errors.New(internalMessage))
			}
			code := "ok"
			level := slog.LevelInfo
			if err != nil {
				c := connect.CodeOf(err)
				code = c.String()
				if isServerFault(c) {
					level = slog.LevelError
				}
			}
			if log.Enabled(ctx, level) {
				attrs := []slog.Attr{
					slog.String("procedure", req.Spec().Procedure),
					slog.String("protocol", req.Peer().Protocol),
					slog.String("code", code),
					slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				}
				if err != nil {
					attrs = append(attrs, slog.String("error", err.Error()))
				}
				log.LogAttrs(ctx, level, "rpc", attrs...)
			}
			return res, err
		}
	})
}

// newDeadlineInterceptor gives an RPC whose caller set no deadline one of d.
func newDeadlineInterceptor(d time.Duration) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if _, ok := ctx.Deadline(); !ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			return next(ctx, req)
		}
	})
}

func isServerFault(c connect.Code) bool {
	switch c {
	case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss, connect.CodeUnimplemented:
		return true
	}
	return false
}

// internalMessage is what callers see for a failure that is not theirs.
const internalMessage = "internal error; the server logged the cause"

// InfraError turns an error that is neither a caller's mistake nor a domain
// outcome into a Connect error: deadlines and cancellations keep their code,
// an unreachable dependency is Unavailable (dependency names it), and
// anything else is logged with its cause and returned as a generic Internal.
func InfraError(ctx context.Context, log *slog.Logger, dependency string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New(dependency+" did not answer in time"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	case isUnavailable(err):
		log.WarnContext(ctx, "dependency unavailable", "dependency", dependency, "error", err.Error())
		return connect.NewError(connect.CodeUnavailable, errors.New(dependency+" is unavailable; retry later"))
	}
	log.ErrorContext(ctx, "internal error", "dependency", dependency, "error", err.Error())
	return connect.NewError(connect.CodeInternal, errors.New(internalMessage))
}
