package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"demo", "-d", "300ms", "-c", "8", "-size", "64"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !regexp.MustCompile(`(?m)^calls [1-9][0-9]*, errors 0$`).MatchString(out.String()) {
		t.Errorf("no successful calls reported:\n%s", out.String())
	}
	if !regexp.MustCompile(`(?m)^QPS [1-9][0-9]*   p50 \S+   p99 \S+$`).MatchString(out.String()) {
		t.Errorf("no QPS/p50/p99 line:\n%s", out.String())
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: sluice"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"demo", "-c", "0"}, 1, "-c must be > 0"},
		{[]string{"demo", "-bogus"}, 1, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(tt.args, &out, &errOut); code != tt.code || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("run(%q) = %d, %q; want %d, %q", tt.args, code, errOut.String(), tt.code, tt.want)
		}
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
