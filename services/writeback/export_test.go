package writeback

import "time"

// SetMonitorTimings shortens how soon the monitor re-checks while the last
// check failed, and the least time between two checks. Call it before
// Monitor starts.
func SetMonitorTimings(s *Service, retry, gap time.Duration) {
	s.health.retry, s.health.gap = retry, gap
}
