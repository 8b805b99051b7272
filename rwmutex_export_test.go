package redsync

// RWKeyForTest is rwKey, for the tests of package redsync_test that look
// at an RWMutex's keys on the nodes.
func RWKeyForTest(name, suffix string) string { return rwKey(name, suffix) }
