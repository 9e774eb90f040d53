package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// Duration is a time.Duration that documents write as a Go duration string:
// "250ms", "1.5s", "2m". Bare numbers are refused, as their unit would be a
// guess.
type Duration time.Duration

// String returns the duration as time.Duration formats it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; null leaves d as it is.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration such as "250ms" or "1.5s", not ` + string(b))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`must be a duration such as "250ms" or "1.5s", not "` + s + `"`)
	}
	*d = Duration(v)
	return nil
}
