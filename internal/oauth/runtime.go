package oauth

import "smartgate/internal/config"

// live returns the configuration as runtime settings make it now. Each
// call loads one atomic snapshot (config.Live), so a handler reading it
// never races with an administrator's change.
func (s *Server) live() *config.Config {
	if s.Live != nil {
		return s.Live.Load()
	}
	return s.Config
}
