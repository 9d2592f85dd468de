//go:build race

package runtime

// raceEnabled: the race-instrumented test binary is also runc's init, and
// uses more memory before exec than a tiny memory limit allows.
const raceEnabled = true
