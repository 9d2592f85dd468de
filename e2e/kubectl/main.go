// Command kubectl is the real kubectl, built from the k8s.io/kubectl module
// that skiff's go.mod pins, so the e2e tests drive skiff with the same client
// users run. It mirrors kubernetes/cmd/kubectl/kubectl.go.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		// Print the error the way kubectl does and exit non-zero.
		util.CheckErr(err)
	}
}
