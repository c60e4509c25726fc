package vmm

import "testing"

// TestEndingRecordsOnce: the first Finish records the exit, runs its
// release before Exited closes, and stamps the time; later ones change
// nothing and release nothing.
func TestEndingRecordsOnce(t *testing.T) {
	e := NewEnding()
	select {
	case <-e.Exited():
		t.Fatal("Exited closed before Finish")
	default:
	}
	released := 0
	if !e.Finish(Exit{Reason: ExitPowerOff}, func() {
		released++
		select {
		case <-e.done:
			t.Error("Exited closed before release ran")
		default:
		}
	}) {
		t.Fatal("first Finish reported it was not first")
	}
	if e.Finish(Exit{Reason: ExitHypervisorError}, func() { released++ }) {
		t.Error("second Finish reported it was first")
	}
	<-e.Exited()
	if got := e.Exit(); got.Reason != ExitPowerOff || got.At.IsZero() {
		t.Errorf("Exit = %+v, want the first reason with a time", got)
	}
	if released != 1 {
		t.Errorf("release ran %d times, want 1", released)
	}
}
