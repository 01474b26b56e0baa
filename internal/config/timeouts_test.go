package config

import (
	"testing"
	"time"
)

func TestTimeoutsDefaultWhenAbsent(t *testing.T) {
	c := valid(t)
	want := Timeouts{Connect: Duration(30 * time.Second), Request: Duration(2 * time.Minute), Idle: Duration(30 * time.Second), Run: Duration(10 * time.Minute)}
	if c.Timeouts != want {
		t.Fatalf("timeouts = %+v, want %+v", c.Timeouts, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutsFromTheFileTheEnvironmentAndSet(t *testing.T) {
	c := mustLoad(t, designExample+"timeouts:\n  connect: 5s\n  idle: 10s\n", map[string]string{"KEYESCROW_TIMEOUTS_RUN": "1h"})
	if err := c.Set("timeouts.request", "90s"); err != nil {
		t.Fatal(err)
	}
	want := Timeouts{Connect: Duration(5 * time.Second), Request: Duration(90 * time.Second), Idle: Duration(10 * time.Second), Run: Duration(time.Hour)}
	if c.Timeouts != want {
		t.Fatalf("timeouts = %+v, want %+v", c.Timeouts, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutsRefused(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"an unknown key", "timeouts:\n  dial: 5s\n", []string{"timeouts.dial", "unknown key"}},
		{"a number without a unit", "timeouts:\n  idle: 30\n", []string{"timeouts.idle", "not a duration"}},
		{"a negative one", "timeouts:\n  run: -5m\n", []string{"timeouts.run", "negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadString(t, designExample+tt.yaml, nil)
			wantErr(t, err, tt.want...)
		})
	}
	invalid := []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"under a second", map[string]string{"timeouts.idle": "500ms"}, []string{"timeouts.idle", "under a second"}},
		{"idle longer than a request", map[string]string{"timeouts.idle": "3m"}, []string{"timeouts.idle", "longer than timeouts.request", "raise timeouts.request"}},
		{"connect longer than a request", map[string]string{"timeouts.connect": "5m"}, []string{"timeouts.connect", "longer than timeouts.request"}},
		{"a request longer than the run", map[string]string{"timeouts.request": "20m"}, []string{"timeouts.request", "longer than timeouts.run"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			for k, v := range tt.set {
				if err := c.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			wantErr(t, c.Validate(), tt.want...)
		})
	}
}
