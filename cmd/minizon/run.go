package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/services/loms"
)

// run dispatches a command line; out receives what a person should read.
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("no command given")
	}
	env := envconf.New()
	pcfg := platform.ReadConfig(env)
	switch args[0] {
	case "dev":
		dcfg := readDevConfig(env)
		lcfg := loms.ReadConfig(env)
		if err := errors.Join(env.Err(), pcfg.Validate()); err != nil {
			return err
		}
		return runDev(ctx, pcfg, dcfg, lcfg, out)
	case "loms":
		lcfg := loms.ReadConfig(env)
		if err := errors.Join(env.Err(), pcfg.Validate(), lcfg.Validate()); err != nil {
			return err
		}
		return loms.Run(ctx, pcfg, lcfg, platform.NewLogger(pcfg.LogLevel))
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(out, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
