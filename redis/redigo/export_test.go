package redigo

// ShareAlways makes b send every call with a deadline through its shared
// connection, also a call alone, so that tests exercise that path with
// calls one at a time.
func ShareAlways(b *BatchedPool) { b.alwaysShared = true }

// SharedUp reports whether b's shared connection is up.
func SharedUp(b *BatchedPool) bool {
	m := b.current.Load()
	return m != nil && !m.broken.Load()
}
