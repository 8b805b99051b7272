package otel_test

import (
	"context"
	"fmt"
	"log"

	goredislib "github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	redsyncotel "github.com/go-redlock/redsync/otel"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// An Observer set on the Redsync records every lock of its mutexes. A real
// program passes its own providers (or none, for the global ones); here
// the SDK keeps metrics and spans in memory to print them.
func Example() {
	pools, stop := examplePools() // three throwaway redis-servers
	defer stop()

	reader := sdkmetric.NewManualReader()
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tracers := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	obs, err := redsyncotel.NewObserver(
		redsyncotel.WithMeterProvider(meters),
		redsyncotel.WithTracerProvider(tracers),
		redsyncotel.WithLockNames(), // few lock names: one time series each
	)
	if err != nil {
		log.Fatal(err)
	}
	rs := redsync.New(pools...)
	rs.SetObserver(obs)

	err = rs.Do(context.Background(), "nightly-report", func(ctx context.Context) error {
		return nil // the work
	})
	if err != nil {
		log.Fatal(err)
	}

	for _, s := range spans.Ended() {
		fmt.Printf("span %s with %d events\n", s.Name(), len(s.Events()))
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			fmt.Printf("%s = %d\n", m.Name, sum.DataPoints[0].Value)
		}
	}
	// Output:
	// span redsync.acquire with 4 events
	// span redsync.release with 3 events
	// redsync.lock.acquire.attempts = 1
}

// examplePools starts three redis-servers on 127.0.0.1 and returns a pool
// for each, and a function that stops them.
func examplePools() ([]redis.Pool, func()) {
	servers, err := redistest.LaunchN(3)
	if err != nil {
		log.Fatal(err)
	}
	pools := make([]redis.Pool, len(servers))
	clients := make([]*goredislib.Client, len(servers))
	for i, s := range servers {
		clients[i] = goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
		pools[i] = goredis.NewPool(clients[i])
	}
	return pools, func() {
		for i := range servers {
			clients[i].Close()
			servers[i].Close()
		}
	}
}
