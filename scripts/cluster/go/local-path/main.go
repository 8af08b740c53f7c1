// local-path-helper is what local-path-provisioner's helper pods run on the local cluster's real node, in place of
// its shell scripts (no shell image can be pulled here): it makes a volume's directory, or removes it. The provisioner
// calls it as `local-path-helper -p PATH -s SIZE -m MODE -a create|delete` (its setupCommand and teardownCommand).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	path := flag.String("p", "", "the volume's directory (absolute)")
	flag.String("s", "", "the claim's size in bytes (not enforced: a directory has no quota)")
	mode := flag.String("m", "Filesystem", "the volume mode")
	action := flag.String("a", "", "create or delete")
	flag.Parse()
	if err := run(*path, *mode, *action); err != nil {
		fmt.Fprintln(os.Stderr, "local-path-helper:", err)
		os.Exit(1)
	}
}

func run(path, mode, action string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) == "/" || filepath.Dir(filepath.Clean(path)) == "/" {
		return fmt.Errorf("-p %q: want an absolute path below a base directory", path)
	}
	if mode != "Filesystem" {
		return fmt.Errorf("-m %q: only Filesystem volumes are provisioned", mode)
	}
	switch action {
	case "create":
		if err := os.MkdirAll(path, 0o777); err != nil {
			return err
		}
		// Any user of the claim's pods writes there, as on a cloud's fresh volume (mkdir's mode passes the umask).
		return os.Chmod(path, 0o777)
	case "delete":
		return os.RemoveAll(path)
	}
	return fmt.Errorf("-a %q: want create or delete", action)
}
