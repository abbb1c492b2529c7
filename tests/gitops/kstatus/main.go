// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux's
// `wait: true` and `healthChecks` use) says about Kubernetes objects.
//
// It reads a stream of JSON objects on stdin (for example `kubectl get -o json` output, one object each)
// and writes one JSON line per object: {"status": "InProgress", "message": "...", "conditions": [...]}.
// The tests run it on objects read from a real API server, so the verdict is kstatus's own, not a copy.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	decoder := json.NewDecoder(in)
	encoder := json.NewEncoder(out)
	for {
		var raw json.RawMessage
		err := decoder.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading an object from stdin: %w", err)
		}
		// Numbers as int64 where they are whole, as the API machinery reads them (generation is an int64).
		var object map[string]interface{}
		if err := utiljson.Unmarshal(raw, &object); err != nil {
			return fmt.Errorf("decoding an object: %w", err)
		}
		result, err := status.Compute(&unstructured.Unstructured{Object: object})
		if err != nil {
			return fmt.Errorf("computing the status: %w", err)
		}
		if err := encoder.Encode(verdict{string(result.Status), result.Message, result.Conditions}); err != nil {
			return err
		}
	}
}
