package config

import (
	"fmt"
	"time"
)

// validateTimeouts checks the timeouts section: every limit at least a
// second, and nested as they bound each other (a request cannot wait
// longer than the run, a connect or an idle spell longer than a request).
func (c *Config) validateTimeouts(p *problems) {
	t := c.Timeouts
	limits := []struct {
		key, example string
		d            Duration
	}{
		{"timeouts.connect", "30s", t.Connect},
		{"timeouts.request", "2m", t.Request},
		{"timeouts.idle", "30s", t.Idle},
		{"timeouts.run", "10m", t.Run},
	}
	ok := true
	for _, l := range limits {
		if time.Duration(l.d) < time.Second {
			p.add(l.key, fmt.Sprintf("%s is under a second", time.Duration(l.d)),
				"set it to e.g. "+l.example+" (or remove it for the default)")
			ok = false
		}
	}
	if !ok {
		return
	}
	nest := func(inner, outer string, in, out Duration) {
		if in > out {
			p.add(inner, fmt.Sprintf("%s is longer than %s (%s), which it must fit in", in, outer, out),
				fmt.Sprintf("lower %s or raise %s", inner, outer))
		}
	}
	nest("timeouts.idle", "timeouts.request", t.Idle, t.Request)
	nest("timeouts.connect", "timeouts.request", t.Connect, t.Request)
	nest("timeouts.request", "timeouts.run", t.Request, t.Run)
}
