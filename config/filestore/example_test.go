package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/configtest"
	"github.com/sluicerpc/sluice/config/filestore"
)

func widgetFile(size int) []byte {
	return fmt.Appendf(nil, "apiVersion: sluice/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: %d\n", size)
}

func Example() {
	configtest.Register() // Widget, a kind for tests; real kinds register themselves

	dir, _ := os.MkdirTemp("", "rules")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "rules.yaml")
	os.WriteFile(path, widgetFile(1), 0o644)

	rejected := make(chan error, 1)
	s := filestore.New(path, filestore.WithInterval(10*time.Millisecond), filestore.WithOnReject(func(err error) { rejected <- err }))
	w, err := config.Watch(context.Background(), s)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	size := func() int { return configtest.Spec(w.Current(), "w").Size }
	fmt.Println("size", size())

	// An invalid edit is rejected; the running config stays.
	os.WriteFile(path, widgetFile(-1), 0o644)
	var ie *config.InvalidError
	if errors.As(<-rejected, &ie) {
		fmt.Println("rejected:", ie.Fields[0])
	}
	fmt.Println("size", size())

	// A valid edit is applied to the running process.
	os.WriteFile(path, widgetFile(2), 0o644)
	for deadline := time.Now().Add(5 * time.Second); size() != 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("size", size())
	// Output:
	// size 1
	// rejected: spec.size (line 6): must not be negative
	// size 1
	// size 2
}
