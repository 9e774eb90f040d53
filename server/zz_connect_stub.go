package server

import "net/http"

func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}
