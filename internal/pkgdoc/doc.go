// Package pkgdoc holds no code: its test enforces that every package in the
// module opens with a doc comment ("Package x ..." or, for commands,
// "Command x ...").
package pkgdoc
