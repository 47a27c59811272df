package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/product"
)

// run dispatches a command line; out receives what a person should read,
// and logs go to stderr.
func run(ctx context.Context, args []string, out io.Writer) error {
	return runLogging(ctx, args, out, os.Stderr)
}

// runLogging is run with the logs going to logOut.
func runLogging(ctx context.Context, args []string, out, logOut io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("no command given")
	}
	if args[0] == "bench" {
		return runBench(ctx, args[1:], out, logOut)
	}
	if args[0] == "product" && len(args) > 1 {
		return runProductCommand(ctx, envconf.New(), args[1:], out)
	}
	env := envconf.New()
	pcfg := platform.ReadConfig(env)
	switch args[0] {
	case "dev":
		cfg := devConfig{
			dev:           readDevConfig(env),
			loms:          loms.ReadConfig(env),
			checkout:      checkout.ReadConfig(env),
			product:       product.ReadConfig(env),
			notifications: notifications.ReadConfig(env),
		}
		return runService(ctx, env, pcfg, logOut, "dev", nil, func(deps platform.Deps) error {
			return runDev(ctx, pcfg, cfg, deps, out)
		})
	case "loms":
		cfg := loms.ReadConfig(env)
		return runService(ctx, env, pcfg, logOut, "loms", cfg.Validate, func(deps platform.Deps) error {
			return loms.Run(ctx, pcfg, cfg, deps)
		})
	case "checkout":
		cfg := checkout.ReadConfig(env)
		return runService(ctx, env, pcfg, logOut, "checkout", cfg.Validate, func(deps platform.Deps) error {
			return checkout.Run(ctx, pcfg, cfg, deps)
		})
	case "product":
		cfg := product.ReadConfig(env)
		return runService(ctx, env, pcfg, logOut, "product", cfg.Validate, func(deps platform.Deps) error {
			return product.Run(ctx, pcfg, cfg, deps)
		})
	case "notifications":
		cfg := notifications.ReadConfig(env)
		return runService(ctx, env, pcfg, logOut, "notifications", cfg.Validate, func(deps platform.Deps) error {
			return notifications.Run(ctx, pcfg, cfg, deps)
		})
	case "healthcheck":
		return runHealthcheck(ctx, env, args[1:], out)
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

// runService validates every setting read, then runs with a logger and
// telemetry set up as configured, exporting the last spans at the end.
func runService(ctx context.Context, env *envconf.Reader, pcfg platform.Config, logOut io.Writer, name string,
	validate func() error,
	run func(platform.Deps) error) error {
	tcfg := telemetry.ReadConfig(env, name)
	errs := []error{env.Err(), pcfg.Validate(), tcfg.Validate()}
	if validate != nil {
		errs = append(errs, validate())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log := platform.NewLogger(logOut, pcfg.LogLevel)
	tel, err := telemetry.New(ctx, tcfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry shutdown", "error", err.Error())
		}
	}()
	if tcfg.Endpoint != "" {
		log.Info("exporting traces over OTLP", "endpoint", tcfg.Endpoint, "service", tcfg.ServiceName)
	}
	return run(platform.Deps{Log: log, Tel: tel})
}
