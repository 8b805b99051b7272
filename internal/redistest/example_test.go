package redistest_test

import (
	"fmt"
	"log"

	"github.com/go-redlock/redsync/internal/redistest"
)

// Outside tests, Launch and Close manage a server by hand; in tests prefer
// Start, which cleans up by itself.
func ExampleLaunch() {
	srv, err := redistest.Launch("--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	if _, err := srv.Do("SET", "greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	// Simulate a crash; the AOF keeps the data.
	if err := srv.Kill(); err != nil {
		log.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		log.Fatal(err)
	}
	rep, err := srv.Do("GET", "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Str)
}
