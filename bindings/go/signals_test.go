package moduvex

import (
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"testing"
)

func signalNotify(ch chan os.Signal) { signal.Notify(ch, syscall.SIGUSR1, syscall.SIGINT) }
func signalStop(ch chan os.Signal)   { signal.Stop(ch) }

// startCPUProfile profiles unless the test binary already does (go test -cpuprofile).
func startCPUProfile(t *testing.T, w io.Writer) func() {
	if err := pprof.StartCPUProfile(w); err != nil {
		t.Logf("CPU profile already on: %v", err)
		return func() {}
	}
	return pprof.StopCPUProfile
}
