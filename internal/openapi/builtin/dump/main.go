// Command dump writes the generated built-in definitions as gzip'ed JSON,
// in the form package openapi embeds (see openapi.BuiltinDefinition).
package main

import (
	"flag"
	"fmt"
	"os"

	"skiff/internal/openapi"
	"skiff/internal/openapi/builtin"
)

func main() {
	out := flag.String("o", "", "the file to write")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "dump: -o is required")
		os.Exit(2)
	}
	data, err := openapi.EncodeBuiltin(builtin.GetOpenAPIDefinitions)
	if err == nil {
		err = os.WriteFile(*out, data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dump: %v\n", err)
		os.Exit(1)
	}
}
