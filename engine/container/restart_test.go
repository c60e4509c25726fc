package container

import (
	"strings"
	"testing"

	mobycontainer "github.com/moby/moby/api/types/container"
)

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy   mobycontainer.RestartPolicy
		count    int
		code     int
		manual   bool
		restarts bool
	}{
		{mobycontainer.RestartPolicy{Name: "no"}, 0, 1, false, false},
		{mobycontainer.RestartPolicy{}, 0, 1, false, false},
		{mobycontainer.RestartPolicy{Name: "always"}, 5, 0, false, true},
		{mobycontainer.RestartPolicy{Name: "always"}, 0, 137, true, false},
		{mobycontainer.RestartPolicy{Name: "unless-stopped"}, 0, 0, false, true},
		{mobycontainer.RestartPolicy{Name: "unless-stopped"}, 0, 0, true, false},
		{mobycontainer.RestartPolicy{Name: "on-failure"}, 9, 1, false, true},
		{mobycontainer.RestartPolicy{Name: "on-failure"}, 0, 0, false, false},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, 1, 3, false, true},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, 2, 3, false, false},
	} {
		c := &Container{spec: Spec{HostConfig: &mobycontainer.HostConfig{RestartPolicy: tc.policy}}, state: State{RestartCount: tc.count}}
		if got := c.shouldRestartLocked(tc.code, tc.manual); got != tc.restarts {
			t.Errorf("%+v after %d restarts, exit %d, manual %v: restart %v, want %v", tc.policy, tc.count, tc.code, tc.manual, got, tc.restarts)
		}
	}
}

func TestCheckRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		p          mobycontainer.RestartPolicy
		autoRemove bool
		err        string
	}{
		{mobycontainer.RestartPolicy{}, true, ""},
		{mobycontainer.RestartPolicy{Name: "no"}, true, ""},
		{mobycontainer.RestartPolicy{Name: "always"}, false, ""},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 4}, false, ""},
		{mobycontainer.RestartPolicy{Name: "always"}, true, "can't create 'AutoRemove' container with restart policy"},
		{mobycontainer.RestartPolicy{Name: "always", MaximumRetryCount: 1}, false, "maximum retry count can only be used with 'on-failure'"},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: -1}, false, "cannot be negative"},
		{mobycontainer.RestartPolicy{Name: "sometimes"}, false, "unknown policy 'sometimes'"},
	} {
		err := checkRestartPolicy(tc.p, tc.autoRemove)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v (autoRemove %v): %v; want %q", tc.p, tc.autoRemove, err, tc.err)
		}
	}
}
