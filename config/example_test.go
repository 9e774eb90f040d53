package config_test

import (
	"errors"
	"fmt"

	"github.com/sluicerpc/sluice/config"
)

// Greeting is the spec of an example kind.
type Greeting struct {
	// Text is what to say. Default "hello".
	Text string `json:"text,omitempty"`
	// Repeat is how many times, from 0 to 3. Default 0 (once).
	Repeat int `json:"repeat,omitempty"`
}

func init() {
	// The package that owns a kind registers it once.
	config.Register("Greeting", config.KindOf(func(g *Greeting) error {
		if g.Repeat < 0 || g.Repeat > 3 {
			return &config.FieldError{Path: "spec.repeat", Reason: "must be from 0 to 3"}
		}
		return nil
	}))
}

func Example() {
	docs, err := config.Parse([]byte(`
apiVersion: sluice/v1
kind: Greeting
metadata:
  name: morning
spec:
  text: good morning
---
apiVersion: sluice/v1
kind: Greeting
metadata:
  name: night
spec:
  text: good night
  repeat: 5
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A snapshot holds valid documents only, all or none.
	_, err = config.NewSnapshot(1, docs)
	fmt.Println(err)
	var ie *config.InvalidError
	if errors.As(err, &ie) {
		fmt.Println(ie.Name, ie.Fields[0].Path, ie.Fields[0].Line)
	}

	snap, _ := config.NewSnapshot(1, docs[:1])
	_, spec, _ := snap.Get("Greeting", "morning")
	fmt.Println(spec.(*Greeting).Text)
	// Output:
	// config: document 2 Greeting/night (line 9): spec.repeat (line 15): must be from 0 to 3
	// night spec.repeat 15
	// good morning
}
