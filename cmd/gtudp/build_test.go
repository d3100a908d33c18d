package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuild_OtherPlatforms cross-compiles the command for the platforms
// users run it on besides this one: a system call that exists on Linux
// only (getrusage's fields, say) breaks them without any test here
// noticing.
func TestBuild_OtherPlatforms(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the command three times; not in -short")
	}
	// go test puts its own GOROOT/bin first on the PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]string{
		{"GOOS=windows", "GOARCH=amd64"},
		{"GOOS=darwin", "GOARCH=arm64"},
		{"GOOS=linux", "GOARCH=386"},
	} {
		cmd := exec.Command(goTool, "build", "-o", os.DevNull, ".")
		cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%v go build: %v\n%s", env, err, out)
		}
	}
}

// TestCPUTime checks the process's CPU time is read at all and grows with
// work: the bench's CPU per message depends on it.
func TestCPUTime(t *testing.T) {
	before := cpuTime()
	x := uint64(1)
	for cpuTime()-before < 20e6 { // 20 ms of CPU
		for i := range 1 << 16 {
			x = x*6364136223846793005 + uint64(i)
		}
		if before == 0 && cpuTime() == 0 {
			t.Fatal("cpuTime is zero on this platform")
		}
	}
	_ = x
}
