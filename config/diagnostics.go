package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	wordwrap "github.com/mitchellh/go-wordwrap"
)

// diagWidth is the column the detail text is wrapped at.
const diagWidth = 80

// WriteDiagnostics renders diags as plain text in the layout of HCL's
// NewDiagnosticTextWriter without colour, prefixed with a compiler-style
// position: "FILE:LINE:COLUMN: Error: <summary>", "on FILE line
// L, in BLOCK:", the source lines of the subject with the offending range
// underlined by a line of carets, then the detail wrapped at 80 columns.
// files supplies the source snippets (as returned by Parse or LoadFile); a
// diagnostic whose file is missing says the source is not available. Nil
// diagnostics are skipped. The only errors returned are w's write errors.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	for _, d := range diags {
		if d == nil {
			continue
		}
		var b bytes.Buffer
		writeDiagnostic(&b, files, d)
		if _, err := w.Write(b.Bytes()); err != nil {
			return fmt.Errorf("writing diagnostics: %w", err)
		}
	}
	return nil
}

func writeDiagnostic(b *bytes.Buffer, files map[string]*hcl.File, d *hcl.Diagnostic) {
	severity := "Error"
	if d.Severity == hcl.DiagWarning {
		severity = "Warning"
	}
	// A compiler-style position first, so editors and grep can jump to it.
	if d.Subject != nil {
		fmt.Fprintf(b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	fmt.Fprintf(b, "%s: %s\n\n", severity, d.Summary)

	if d.Subject != nil {
		writeSnippet(b, files, d)
	}
	if d.Detail != "" {
		fmt.Fprintf(b, "%s\n\n", wordwrap.WrapString(d.Detail, diagWidth))
	}
}

func writeSnippet(b *bytes.Buffer, files map[string]*hcl.File, d *hcl.Diagnostic) {
	subject := *d.Subject
	file := files[subject.Filename]
	if file == nil || file.Bytes == nil {
		fmt.Fprintf(b, "  on %s line %d:\n  (source code not available)\n\n", subject.Filename, subject.Start.Line)
		return
	}

	snip, highlight := subject, subject
	if d.Context != nil {
		snip = hcl.RangeOver(snip, *d.Context)
	}
	// An empty range cannot be shown; widen it to one character like HCL
	// does, even if that points just past the end of a line.
	if snip.Empty() {
		snip.End.Byte++
		snip.End.Column++
	}
	if highlight.Empty() {
		highlight.End.Byte++
		highlight.End.Column++
	}

	var where string
	if cs, ok := file.Nav.(interface{ ContextString(offset int) string }); ok {
		if s := cs.ContextString(subject.Start.Byte); s != "" {
			where = ", in " + s
		}
	}
	fmt.Fprintf(b, "  on %s line %d%s:\n", subject.Filename, subject.Start.Line, where)

	src := file.Bytes
	sc := hcl.NewRangeScanner(src, subject.Filename, bufio.ScanLines)
	for sc.Scan() {
		line := sc.Range()
		if !line.Overlaps(snip) {
			continue
		}
		prefix := fmt.Sprintf("%4d: ", line.Start.Line)
		fmt.Fprintf(b, "%s%s\n", prefix, sc.Bytes())

		start := max(highlight.Start.Byte, line.Start.Byte)
		end := min(highlight.End.Byte, line.End.Byte)
		width := 0
		switch {
		case start < end:
			width = utf8.RuneCount(src[start:end])
		case highlight.Start.Byte >= line.Start.Byte && highlight.Start.Byte <= line.End.Byte:
			start, width = highlight.Start.Byte, 1 // points at the end of the line
		default:
			continue
		}
		fmt.Fprintf(b, "%s%s%s\n", strings.Repeat(" ", len(prefix)), blank(src[line.Start.Byte:start]), strings.Repeat("^", width))
	}
	b.WriteByte('\n')
}

// blank returns s with every character except tabs replaced by a space, so
// that carets printed after it line up with the source line above.
func blank(s []byte) string {
	var out strings.Builder
	for _, r := range string(s) {
		if r == '\t' {
			out.WriteRune('\t')
		} else {
			out.WriteByte(' ')
		}
	}
	return out.String()
}
