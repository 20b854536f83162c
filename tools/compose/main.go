// Command compose-config loads a compose file the way `docker compose config` does, with the
// Compose Specification's own loader (github.com/compose-spec/compose-go): schema validation,
// interpolation of ${VAR:-default} with an empty environment, profiles, and the consistency
// checks (depends_on, volumes, networks). It prints the resolved project as JSON, or the error
// and exit status 1. tests/deploy-compose.test.ts builds it into .cache/ and runs it.
//
//	compose-config [-profile NAME]... FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type profiles []string

func (p *profiles) String() string     { return strings.Join(*p, ",") }
func (p *profiles) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	var selected profiles
	flag.Var(&selected, "profile", "a profile to enable (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-config [-profile NAME]... FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{flag.Arg(0)},
		cli.WithEnv([]string{}),
		cli.WithProfiles(selected),
		cli.WithInterpolation(true),
		cli.WithConsistency(true),
		cli.WithNormalization(true),
	)
	if err == nil {
		project, loadErr := options.LoadProject(context.Background())
		err = loadErr
		if err == nil {
			var out []byte
			out, err = project.MarshalJSON()
			if err == nil {
				os.Stdout.Write(append(out, '\n'))
				return
			}
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
