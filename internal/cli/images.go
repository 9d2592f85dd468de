package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"skiff/internal/config"
	"skiff/internal/kubelet"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/runtime"
)

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:  "images",
		Usage: "manage the node's images (for air-gapped nodes: import tarballs)",
		Flags: []cli.Flag{dataDirFlag()},
		Subcommands: []*cli.Command{
			{
				Name:      "import",
				Usage:     "import docker-save or OCI-layout tarballs (.tar, .tar.gz)",
				ArgsUsage: "FILE...",
				Action:    importImages,
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list the node's images",
				Action:  listImages,
			},
			{
				Name:      "rm",
				Usage:     "remove images not used by any container",
				ArgsUsage: "IMAGE...",
				Action:    removeImages,
			},
		},
	}
}

// openImageStore opens the node's image store. The agent holds it while it
// runs, so the error then says what to do instead.
func openImageStore(c *cli.Context) (*images.Store, config.Layout, error) {
	layout := config.Layout{DataDir: c.String("data-dir")}
	store, err := images.Open(layout.ImagesDir(), images.Options{Logger: newLogger(c)})
	if err != nil {
		return nil, layout, fmt.Errorf("%w\n(while the agent runs it owns the image store: drop tarballs into %s and it imports them within 30 s)", err, layout.ImageImportDir())
	}
	return store, layout, nil
}

func importImages(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("give one or more tarballs to import (docker save or OCI layout)")
	}
	store, _, err := openImageStore(c)
	if err != nil {
		return err
	}
	defer store.Close()
	progress := images.NewProgressPrinter(os.Stderr)
	for _, path := range c.Args().Slice() {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		imgs, err := store.Import(c.Context, f, progress)
		f.Close()
		if err != nil {
			return fmt.Errorf("import %s: %w", filepath.Base(path), err)
		}
		for _, img := range imgs {
			fmt.Fprintf(c.App.Writer, "imported %s %v\n", shortImageID(img.ID), img.RepoTags)
		}
	}
	return nil
}

func listImages(c *cli.Context) error {
	store, _, err := openImageStore(c)
	if err != nil {
		return err
	}
	defer store.Close()
	imgs, err := store.List()
	if err != nil {
		return err
	}
	images.PrintList(c.App.Writer, imgs)
	return nil
}

func removeImages(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("give one or more images to remove")
	}
	store, layout, err := openImageStore(c)
	if err != nil {
		return err
	}
	defer store.Close()
	inUse := imagesInUse(c, layout)
	for _, ref := range c.Args().Slice() {
		if err := store.Remove(ref, inUse); err != nil {
			return fmt.Errorf("rm %s: %w", ref, err)
		}
		fmt.Fprintf(c.App.Writer, "removed %s\n", ref)
	}
	return nil
}

// imagesInUse reads the containers' state directly: containers keep
// running while the agent is stopped. If it cannot tell, every image
// counts as in use.
func imagesInUse(c *cli.Context, layout config.Layout) func(string) bool {
	rt, err := runtime.New(runtime.Config{Root: layout.ContainersDir(), Logger: newLogger(c)})
	if err != nil {
		return func(string) bool { return true }
	}
	inUse, err := kubelet.ImagesInUse(c.Context, rt)
	if err != nil {
		return func(string) bool { return true }
	}
	return func(id string) bool { return inUse[id] }
}

func shortImageID(id string) string {
	if len(id) > 19 {
		return id[7:19]
	}
	return id
}
