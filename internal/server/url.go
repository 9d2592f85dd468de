package server

// LocalURL is the URL this node's own components (its agent) use to reach
// the API server.
func (s *Server) LocalURL() string { return s.localURL() }
