package platform

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"
)

// logInterceptor writes one line per RPC, unary or streaming: procedure,
// protocol, code and duration. It is also where an RPC's error gets its
// final code: server faults are logged at error level with their cause,
// and a call its caller gave up on is counted as the caller's deadline or
// cancellation, not as a fault of ours.
type logInterceptor struct {
	log *slog.Logger
}

func newLogInterceptor(log *slog.Logger) connect.Interceptor {
	return logInterceptor{log: log}
}

func (l logInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		return res, l.finish(ctx, req.Spec().Procedure, req.Peer().Protocol, start, err)
	}
}

func (logInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (l logInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		return l.finish(ctx, conn.Spec().Procedure, conn.Peer().Protocol, start, err)
	}
}

// finish codes err and writes the RPC's line.
func (l logInterceptor) finish(ctx context.Context, procedure, protocol string, start time.Time, err error) error {
	err, cause := l.code(ctx, procedure, err)
	code := "ok"
	level := slog.LevelInfo
	if err != nil {
		c := connect.CodeOf(err)
		code = c.String()
		if isServerFault(c) {
			level = slog.LevelError
		}
	}
	if l.log.Enabled(ctx, level) {
		attrs := []slog.Attr{
			slog.String("procedure", procedure),
			slog.String("protocol", protocol),
			slog.String("code", code),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		if cause != nil {
			attrs = append(attrs, slog.String("cause", cause.Error()))
		}
		l.log.LogAttrs(ctx, level, "rpc", attrs...)
	}
	return err
}

// code returns err as the caller gets it, and what it replaced, if anything.
// Caller mistakes and domain outcomes keep their codes. A context error, or
// a fault (internal, unknown) after the caller's deadline passed or it went
// away, is the caller's deadline or cancellation: connect-go itself returns
// the bare context error when the deadline ran out before the handler, and
// a query cut short by the caller may fail in ways that look like a fault.
// What remains uncoded would reach the caller as unknown with its raw
// text: it is logged and answered as internal.
func (l logInterceptor) code(ctx context.Context, procedure string, err error) (coded, replaced error) {
	if err == nil {
		return nil, nil
	}
	var ce *connect.Error
	isCoded := errors.As(err, &ce)
	if isCoded && ce.Code() != connect.CodeInternal && ce.Code() != connect.CodeUnknown {
		return err, nil
	}
	if c, ok := contextCode(ctx, err); ok {
		return connect.NewError(c, errors.New(contextMessage(c))), err
	}
	if isCoded {
		return err, nil
	}
	// An uncoded error would reach the caller as Unknown with its raw text:
	// log the cause, answer Internal.
	l.log.ErrorContext(ctx, "uncoded handler error", "procedure", procedure, "error", err.Error())
	return connect.NewError(connect.CodeInternal, errors.New(internalMessage)), nil
}

// contextCode tells whether err is explained by ctx ending: the shutdown
// ending a long-lived stream (unavailable: reconnect, likely to another
// replica), a deadline, the caller's or the server's default
// (deadline_exceeded), or the caller going away (canceled).
func contextCode(ctx context.Context, err error) (connect.Code, bool) {
	switch {
	case errors.Is(context.Cause(ctx), ErrShuttingDown):
		return connect.CodeUnavailable, true
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded, true
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		return connect.CodeCanceled, true
	}
	return 0, false
}

// contextMessage is what the caller reads for a call contextCode explains.
func contextMessage(c connect.Code) string {
	switch c {
	case connect.CodeUnavailable:
		return ErrShuttingDown.Error() + "; retry"
	case connect.CodeCanceled:
		return "request cancelled"
	}
	return "the deadline passed before the call finished"
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
