package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTPConfig holds the listener-level limits of the HTTP server.
type HTTPConfig struct {
	ReadHeaderTimeout time.Duration // slowloris bound
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ShutdownTimeout   time.Duration // drain bound on SIGTERM
	// WriteTimeout is the outer bound of any response (the per-kind
	// deadlines are shorter); it also makes the server reset the write
	// deadline for each request of a kept-alive connection. 20 min when
	// zero.
	WriteTimeout time.Duration
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish within ShutdownTimeout, and
// returns nil when they did. Requests still running past the bound are cut
// and Serve returns the shutdown error.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg HTTPConfig, logger *slog.Logger) error {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 20 * time.Minute
	}
	srv := &http.Server{
		Handler:           h,
		WriteTimeout:      cfg.WriteTimeout,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "component", "http", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests", "component", "http", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		logger.Warn("shutdown bound reached; open connections cut", "component", "http")
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return errors.Join(err, serr)
	}
	return err
}
