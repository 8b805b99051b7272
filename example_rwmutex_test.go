package redsync_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// An RWMutex lets any number of readers in together, and a writer alone.
// This example starts three redis-servers of its own.
func ExampleRWMutex() {
	servers, err := redistest.LaunchN(3)
	if err != nil {
		log.Fatal(err)
	}
	var pools []redis.Pool
	for _, s := range servers {
		defer s.Close()
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
		defer client.Close()
		pools = append(pools, goredis.NewPool(client))
	}
	rs := redsync.New(pools...)

	// Each client has an RWMutex of its own, of the same name.
	alice := rs.NewRWMutex("catalog")
	bob := rs.NewRWMutex("catalog")
	editor := rs.NewRWMutex("catalog")

	fmt.Println("alice reads:", alice.RLock())
	fmt.Println("bob reads:", bob.RLock())
	var taken *redsync.ErrTaken
	// TryLock gives up at once; Lock would wait (retrying) for the
	// readers, and keep new ones out meanwhile.
	fmt.Println("the editor waits for the readers:", errors.As(editor.TryLock(), &taken))
	alice.RUnlock()
	bob.RUnlock()

	err = editor.Do(context.Background(), func(ctx context.Context) error {
		// The lock is the editor's alone until the function returns.
		fmt.Println("alice waits for the editor:", errors.As(alice.TryRLock(), &taken))
		return nil
	})
	fmt.Println("the editor is done:", err)
	fmt.Println("alice reads:", alice.TryRLock())
	alice.RUnlock()
	// Output:
	// alice reads: <nil>
	// bob reads: <nil>
	// the editor waits for the readers: true
	// alice waits for the editor: true
	// the editor is done: <nil>
	// alice reads: <nil>
}
