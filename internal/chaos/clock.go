package chaos

import "golang.org/x/sys/unix"

// Mono returns the time of CLOCK_MONOTONIC in nanoseconds. Every process of
// the machine reads the same clock, so the timestamps that the workers and
// the harness log compare exactly, whichever process took them. (Go's own
// monotonic readings start at an offset of each process.)
func Mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("chaos: CLOCK_MONOTONIC: " + err.Error())
	}
	return ts.Nano()
}
