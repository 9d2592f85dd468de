package kubelettest

import (
	"io"
	"log"
	goruntime "runtime"
)

func runtimeArch() string { return goruntime.GOARCH }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
