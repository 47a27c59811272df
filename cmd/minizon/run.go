package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/product"
)

// run dispatches a command line; out receives what a person should read.
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("no command given")
	}
	if args[0] == "product" && len(args) > 1 {
		return runProductCommand(ctx, envconf.New(), args[1:], out)
	}
	env := envconf.New()
	pcfg := platform.ReadConfig(env)
	switch args[0] {
	case "dev":
		cfg := devConfig{
			dev:      readDevConfig(env),
			loms:     loms.ReadConfig(env),
			checkout: checkout.ReadConfig(env),
			product:  product.ReadConfig(env),
		}
		if err := errors.Join(env.Err(), pcfg.Validate()); err != nil {
			return err
		}
		return runDev(ctx, pcfg, cfg, out)
	case "loms":
		cfg := loms.ReadConfig(env)
		if err := errors.Join(env.Err(), pcfg.Validate(), cfg.Validate()); err != nil {
			return err
		}
		return loms.Run(ctx, pcfg, cfg, platform.NewLogger(pcfg.LogLevel))
	case "checkout":
		cfg := checkout.ReadConfig(env)
		if err := errors.Join(env.Err(), pcfg.Validate(), cfg.Validate()); err != nil {
			return err
		}
		return checkout.Run(ctx, pcfg, cfg, platform.NewLogger(pcfg.LogLevel))
	case "product":
		cfg := product.ReadConfig(env)
		if err := errors.Join(env.Err(), pcfg.Validate(), cfg.Validate()); err != nil {
			return err
		}
		return product.Run(ctx, pcfg, cfg, platform.NewLogger(pcfg.LogLevel))
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(out, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// runProductCommand runs `minizon product SUBCOMMAND ...`.
func runProductCommand(ctx context.Context, env *envconf.Reader, args []string, out io.Writer) error {
	if args[0] != "import" || len(args) != 2 {
		fmt.Fprint(out, usage)
		return fmt.Errorf("unknown command \"product %s\"; want: product import FILE.csv", strings.Join(args, " "))
	}
	url := env.String("DATABASE_URL", "")
	if err := env.Err(); err != nil {
		return err
	}
	if url == "" {
		return errors.New("DATABASE_URL is required: the product database to load the catalog into")
	}
	return product.Import(ctx, url, args[1], out)
}
