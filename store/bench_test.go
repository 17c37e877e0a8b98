package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkUpdateParallel measures durable read-modify-write transactions on
// distinct keys from many goroutines, i.e. group commit throughput.
func BenchmarkUpdateParallel(b *testing.B) {
	db := openTestDB(b, b.TempDir())
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := Key("bench", fmt.Sprint(next.Add(1)))
		for pb.Next() {
			err := db.Update(context.Background(), func(tx *Txn) error {
				var n int
				if _, err := tx.Get(key, &n); err != nil {
					return err
				}
				return tx.Put(key, n+1)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	s := db.Stats()
	b.ReportMetric(float64(s.Commits)/float64(max(s.Syncs, 1)), "commits/sync")
}
