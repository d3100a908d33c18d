package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gtudp/gtudp"
)

// send -file sends a whole file, or stdin, as one message; one too large
// for a datagram is refused cleanly, exit status 1.
func TestSend_File(t *testing.T) {
	ctx := context.Background()
	ep, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close(ctx)
	addr := ep.LocalAddr().String()
	dir := t.TempDir()
	content := bytes.Repeat([]byte("line one\nline two\n"), 1000) // 18,000 bytes, newlines kept
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		stdin io.Reader
		label string
	}{
		{[]string{"send", "-file", small, addr}, nil, `file "` + small + `" (18000 bytes)`},
		{[]string{"send", "-file", "-", addr}, bytes.NewReader(content), "stdin (18000 bytes)"},
	} {
		var out bytes.Buffer
		if err := run(ctx, tc.args, tc.stdin, &out, io.Discard); err != nil {
			t.Fatalf("gtudp %q: %v\n%s", tc.args, err, out.String())
		}
		if !strings.HasPrefix(out.String(), "delivered "+tc.label) {
			t.Errorf("gtudp %q printed %q", tc.args, out.String())
		}
		if m := <-ep.Inbox(); !bytes.Equal(m.Data, content) {
			t.Errorf("gtudp %q delivered %d bytes, want the file's %d", tc.args, len(m.Data), len(content))
		}
	}

	// A megabyte goes in fragments; past MaxMessage (16 MiB) a file is
	// refused before anything is sent.
	mib := filepath.Join(dir, "mib")
	content = bytes.Repeat([]byte{1, 2, 3, 4}, 1<<18)
	if err := os.WriteFile(mib, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"send", "-file", mib, addr}, nil, io.Discard, io.Discard); err != nil {
		t.Fatalf("send -file of 1 MiB: %v", err)
	}
	if m := <-ep.Inbox(); !bytes.Equal(m.Data, content) {
		t.Errorf("send -file of 1 MiB delivered %d bytes, not the file", len(m.Data))
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 16<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, stderr bytes.Buffer
	err = run(ctx, []string{"send", "-file", big, addr}, nil, &out, io.Discard)
	code := exitCode(err, &stderr)
	if code != 1 || !strings.HasPrefix(out.String(), `REFUSED file "`+big+`" (16777217 bytes)`) ||
		!strings.Contains(out.String(), "too large") || strings.Contains(out.String()+stderr.String(), "gtudp: gtudp:") {
		t.Errorf("send -file of 1 MiB: exit %d, stdout %q, stderr %q; want 1 and REFUSED", code, out.String(), stderr.String())
	}
	if err := run(ctx, []string{"send", "-file", small, addr, "extra"}, nil, io.Discard, io.Discard); exitCode(err, io.Discard) != 2 {
		t.Errorf("send -file with a MESSAGE too: %v, want a usage error", err)
	}
}
