package server

import (
	"context"
	"log"
	"log/slog"
	"strconv"
	"strings"
)

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return def
}

// slogAdapter routes net/http's error log to the server's logger.
func slogAdapter(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Log(context.Background(), slog.LevelWarn, "server: http: "+strings.TrimSpace(string(p)))
	return len(p), nil
}
