package loadgen

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// PrintTable writes one aligned row per result: impl, QPS, p50, p99, p999,
// allocs/call and CPU µs/call.
func PrintTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "impl\tQPS\tp50\tp99\tp999\tallocs/call\tCPU µs/call\t\n")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%.1f\t%.1f\t\n",
			r.Name, r.QPS, FormatDuration(r.P50), FormatDuration(r.P99), FormatDuration(r.P999),
			r.AllocsPerCall, float64(r.CPUPerCall)/float64(time.Microsecond))
	}
	tw.Flush()
}

// FormatDuration prints d with three significant digits in ns, µs, ms or s.
func FormatDuration(d time.Duration) string {
	f := float64(d)
	var unit string
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", int64(d))
	case d < time.Millisecond:
		f, unit = f/1e3, "µs"
	case d < time.Second:
		f, unit = f/1e6, "ms"
	default:
		f, unit = f/1e9, "s"
	}
	switch {
	case f < 10:
		return fmt.Sprintf("%.2f%s", f, unit)
	case f < 100:
		return fmt.Sprintf("%.1f%s", f, unit)
	default:
		return fmt.Sprintf("%.0f%s", f, unit)
	}
}
