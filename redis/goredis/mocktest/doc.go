// Package mocktest holds no code: its tests check that the go-redis v9
// adapter (redis/goredis, and redis/goredis/v9 under the import path of
// go-redsync/redsync v4) sends its commands as go-redis's own methods do,
// so that expectations of github.com/go-redis/redismock/v9 written for a
// program on go-redsync/redsync v4 keep matching where the command is the
// same. It is a module of its own so that the library's module does not
// require the mock.
package mocktest
