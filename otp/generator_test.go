package otp

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The verification path's generator must agree with Code (pquerna/otp) for
// every algorithm and digit count, over many secrets and counters.
func TestGeneratorAgreesWithLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, alg := range []Algorithm{SHA1, SHA256, SHA512} {
		for _, digits := range []int{6, 7, 8} {
			p := Params{Digits: digits, Period: 30 * time.Second, Algorithm: alg}
			for i := range 200 {
				s := make(Secret, 16+i%49)
				for j := range s {
					s[j] = byte(r.Uint32())
				}
				counter := r.Uint64() >> (i % 64)
				g, err := newGenerator(s, p)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := string(g.code(counter)), Code(s, counter, p); got != want {
					t.Fatalf("%s/%d counter %d: generator %s, library %s", alg, digits, counter, got, want)
				}
			}
		}
	}
}
