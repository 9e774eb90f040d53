package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/examples/echo/echotest"
)

func TestBench(t *testing.T) {
	a, b := echotest.Start(t, 0), echotest.Start(t, 0)
	var out, errOut bytes.Buffer
	code := runCmd([]string{"bench", a + "," + b, "sluice.examples.echo.v1.EchoService/Echo", `{"message":"x"}`, "-n", "400", "-c", "8"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	s := out.String()
	if !regexp.MustCompile(`calls 400 in \S+: [1-9][0-9]* QPS, 0 errors`).MatchString(s) || !strings.Contains(s, "p99") {
		t.Fatalf("summary:\n%s", s)
	}
	if !regexp.MustCompile(`OK\s+400`).MatchString(s) || !strings.Contains(s, a) || !strings.Contains(s, b) {
		t.Fatalf("codes or instances missing:\n%s", s)
	}
}

func TestBenchCountsErrorsByCode(t *testing.T) {
	bad := echotest.Start(t, 1)
	var out, errOut bytes.Buffer
	code := runCmd([]string{"bench", bad, "sluice.examples.echo.v1.EchoService/Echo", "-n", "50", "-c", "5", "--protocol", "grpc"}, &out, &errOut)
	if code != 1 || !regexp.MustCompile(`Unavailable\s+50`).MatchString(out.String()) {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
}
