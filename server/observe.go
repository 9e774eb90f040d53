package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/observe/metrics"
)

// WithMetrics records every call in m: m.Server() runs outermost in the
// chain (inside the server's panic recovery, before any WithMiddleware or
// WithPolicy middleware, wherever the options are given), the native
// protocol reports reply sizes to m.ServerSent, and m.Handler() answers
// GET /metrics on the HTTP/1 side of every port the server serves, and on
// the admin listener (WithAdminAddr). Given more than once, the last m
// wins; WithMetrics(nil) turns metrics off. Default off.
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) {
		if o.metrics == nil && m != nil {
			// One chain slot, whichever m ends up set: o is the options
			// New is building, final by the time a service registers.
			mw := func(next endpoint.Endpoint) endpoint.Endpoint {
				if o.metrics == nil {
					return next
				}
				return o.metrics.Server()(next)
			}
			o.middlewares = append([]endpoint.Middleware{mw}, o.middlewares...)
			o.metricsSlot = true
		}
		o.metrics = m
	}
}

// WithAdminAddr opens an admin HTTP listener at addr ("host:port", as
// net.Listen takes it; port 0 picks a free one, see AdminAddr) when the
// server starts serving, and closes it when the server stops. It serves
// GET /metrics when WithMetrics is given, and the runtime profiles under
// /debug/pprof/ (index, profile, trace, cmdline, symbol and every
// runtime/pprof profile by name, with ?debug=N). The public port never
// serves profiles. Default: no admin listener.
//
// Profiles show the process's internals and cost CPU to make, so bind a
// loopback address ("127.0.0.1:9090"): addr is bound exactly as given, and
// ":9090" listens on every interface. (The sluice CLI's admin address,
// when it has one, is to default to loopback.) The handlers are Sluice's own, over runtime/pprof, so that
// importing this package registers nothing on http.DefaultServeMux, as
// importing net/http/pprof would.
func WithAdminAddr(addr string) Option {
	return func(o *options) { o.adminAddr = addr }
}

// AdminAddr returns the admin listener's address once Serve has opened
// it, and "" before, after it is closed, or without WithAdminAddr.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil || s.ctx.Err() != nil {
		return ""
	}
	return s.admin.Addr().String()
}

// startAdmin opens the admin listener, if one is configured; Serve calls
// it under s.mu before anything else starts. The listener closes when the
// server's context ends (Stop, and GracefulStop once drained).
func (s *Server) startAdmin() error {
	if s.opts.adminAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.opts.adminAddr)
	if err != nil {
		return fmt.Errorf("server: admin listener: %w", err)
	}
	hs := &http.Server{
		Handler:           s.adminMux(),
		ErrorLog:          slogAdapter(s.opts.logger),
		ReadHeaderTimeout: 10 * time.Second,
		// Profiles in progress end when the server stops.
		BaseContext: func(net.Listener) context.Context { return s.ctx },
	}
	s.admin = ln
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		hs.Serve(ln)
	}()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		hs.Close()
	}()
	return nil
}

func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	if m := s.opts.metrics; m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.HandleFunc("GET /debug/pprof/", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprofCmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.HandleFunc("GET /debug/pprof/trace", pprofTrace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprofSymbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprofSymbol)
	return mux
}

// serveMetrics answers GET /metrics on the public port's HTTP side when
// metrics are on; it reports whether it did.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) bool {
	m := s.opts.metrics
	if m == nil || r.URL.Path != "/metrics" || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	m.Handler().ServeHTTP(w, r)
	return true
}

// replied records the size of a reply the native protocol encoded, which
// happens after the middlewares return.
func (s *Server) replied(info *callinfo.Info, n int) {
	info.SentBytes = n
	if m := s.opts.metrics; m != nil {
		m.ServerSent(info)
	}
}

// pprofIndex serves /debug/pprof/NAME, a runtime/pprof profile (debug=N
// for text, gc=1 to collect garbage before a heap profile), and at
// /debug/pprof/ a page listing them.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	if name == "" {
		pprofList(w)
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		pprofError(w, http.StatusNotFound, "unknown profile "+name)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if name == "heap" && r.FormValue("gc") != "" {
		runtime.GC()
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if debug != 0 {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	p.WriteTo(w, debug)
}

func pprofList(w http.ResponseWriter) {
	ps := pprof.Profiles()
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name() < ps[j].Name() })
	var b bytes.Buffer
	b.WriteString("<html><head><title>/debug/pprof/</title></head><body>\n<p>Profiles:</p>\n<table>\n")
	for _, p := range ps {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "<tr><td align=right>%d</td><td><a href=\"%s?debug=1\">%s</a></td></tr>\n", p.Count(), n, n)
	}
	b.WriteString("<tr><td></td><td><a href=\"profile\">profile</a> (CPU, ?seconds=30)</td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"trace?seconds=1\">trace</a></td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"goroutine?debug=2\">full goroutine stack dump</a></td></tr>\n")
	b.WriteString("</table>\n</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

// pprofCPU serves a CPU profile of ?seconds=N (default 30).
func pprofCPU(w http.ResponseWriter, r *http.Request) {
	d := pprofSeconds(r, 30*time.Second)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		pprofError(w, http.StatusInternalServerError, "could not enable CPU profiling: "+err.Error())
		return
	}
	pprofSleep(r, d)
	pprof.StopCPUProfile()
}

// pprofTrace serves an execution trace of ?seconds=N (default 1).
func pprofTrace(w http.ResponseWriter, r *http.Request) {
	d := pprofSeconds(r, time.Second)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if err := trace.Start(w); err != nil {
		pprofError(w, http.StatusInternalServerError, "could not enable tracing: "+err.Error())
		return
	}
	pprofSleep(r, d)
	trace.Stop()
}

// pprofCmdline serves the command line, arguments separated by NULs.
func pprofCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(os.Args, "\x00"))
}

// pprofSymbol maps program counters ("0x1234+0x5678", in the POST body or
// the query) to function names, for pprof tools that ask.
func pprofSymbol(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b bytes.Buffer
	b.WriteString("num_symbols: 1\n")
	var in *bufio.Reader
	if r.Method == http.MethodPost {
		in = bufio.NewReader(http.MaxBytesReader(w, r.Body, 1<<20))
	} else {
		in = bufio.NewReader(strings.NewReader(r.URL.RawQuery))
	}
	for {
		word, err := in.ReadSlice('+')
		if err == nil {
			word = word[:len(word)-1]
		}
		if pc, perr := strconv.ParseUint(string(word), 0, 64); perr == nil && pc != 0 {
			if f := runtime.FuncForPC(uintptr(pc)); f != nil {
				fmt.Fprintf(&b, "%#x %s\n", pc, f.Name())
			}
		}
		if err != nil {
			break
		}
	}
	w.Write(b.Bytes())
}

func pprofSeconds(r *http.Request, def time.Duration) time.Duration {
	if sec, err := strconv.ParseFloat(r.FormValue("seconds"), 64); err == nil && sec > 0 {
		return time.Duration(sec * float64(time.Second))
	}
	return def
}

// pprofSleep waits d, or until the request ends (client gone, server stopped).
func pprofSleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func pprofError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("Content-Disposition")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, "server: pprof: "+msg)
}
