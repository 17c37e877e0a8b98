// Package gsmtables works around a data race in github.com/warthog618/sms
// v0.3.0: it builds its GSM 7-bit character tables lazily in package
// variables without synchronisation, so two goroutines encoding or decoding
// at once race. Importing this package builds every table in an init
// function, before any goroutine of the program runs. Packages that encode
// or decode SMS (hw/modem, sim) import it for that effect.
package gsmtables

import "github.com/warthog618/sms/encoding/gsm7/charset"

func init() {
	charset.DefaultDecoder()
	charset.DefaultEncoder()
	charset.DefaultExtEncoder()
	for nli := charset.Default; nli <= charset.Urdu; nli++ {
		charset.NewDecoder(nli)
		charset.NewEncoder(nli)
		charset.NewExtDecoder(nli)
		charset.NewExtEncoder(nli)
	}
}
