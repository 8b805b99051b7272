package redis

// Clustered is an optional interface of a Pool whose client spreads keys
// over several servers by hash slot, as a Redis Cluster client does. A
// script that names several keys must then name keys of one slot (Redis
// answers CROSSSLOT otherwise); the core checks that before it sends
// anything (redsync.NewMultiMutex).
type Clustered interface {
	// Clustered reports whether the pool's client is a cluster client.
	Clustered() bool
}
