package main

// compose.yaml and the Dockerfile cannot be run here (no Docker engine), so
// these tests check them against the code: every variable a service is
// given must be one it reads, the settings must pass the service's own
// validation, and the names that tie the containers together (databases,
// topics, hosts, ports, the binary's path) must agree.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/product"
)

// repoRoot is where compose.yaml, the Dockerfile and go.mod are, seen from
// this package's directory (where go test runs).
const repoRoot = "../.."

// validator is a service's configuration.
type validator interface{ Validate() error }

// composedServices are the miniZON services compose.yaml runs, with the
// function that reads each one's configuration and the host port each is
// published on (README and ARCHITECTURE.md name these ports).
var composedServices = []struct {
	name     string
	read     func(*envconf.Reader) validator
	hostPort string
}{
	{"checkout", func(env *envconf.Reader) validator { return checkout.ReadConfig(env) }, "8080"},
	{"loms", func(env *envconf.Reader) validator { return loms.ReadConfig(env) }, "8081"},
	{"product", func(env *envconf.Reader) validator { return product.ReadConfig(env) }, "8082"},
	{"notifications", func(env *envconf.Reader) validator { return notifications.ReadConfig(env) }, "8083"},
}

// composeFile is the part of compose.yaml these tests look at.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string              `yaml:"image"`
	Build           *composeBuild       `yaml:"build"`
	Command         stringList          `yaml:"command"`
	Entrypoint      stringList          `yaml:"entrypoint"`
	Environment     composeEnv          `yaml:"environment"`
	Healthcheck     *composeHealthcheck `yaml:"healthcheck"`
	DependsOn       dependsOn           `yaml:"depends_on"`
	Ports           []string            `yaml:"ports"`
	Volumes         []string            `yaml:"volumes"`
	Restart         string              `yaml:"restart"`
	StopGracePeriod string              `yaml:"stop_grace_period"`
	Profiles        []string            `yaml:"profiles"`
}

type composeHealthcheck struct {
	Test    stringList `yaml:"test"`
	Timeout string     `yaml:"timeout"`
	Disable bool       `yaml:"disable"`
}

// composeBuild is `build: DIR` or `build: {context: DIR, dockerfile: FILE}`.
type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// stringList is a command in either of compose's forms; the string form is
// split on spaces, which is enough for the checks here.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(l))
}

// composeEnv is a service's environment: a nil value is a variable passed
// on from the shell that runs compose, unset here.
type composeEnv map[string]*string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	if n.Kind == yaml.SequenceNode {
		var items []string
		if err := n.Decode(&items); err != nil {
			return err
		}
		for _, it := range items {
			k, v, ok := strings.Cut(it, "=")
			if ok {
				(*e)[k] = &v
			} else {
				(*e)[k] = nil
			}
		}
		return nil
	}
	// Decoding into a map applies YAML merge keys (<<: *anchor).
	var m map[string]yaml.Node
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		for v.Kind == yaml.AliasNode {
			v = *v.Alias
		}
		switch {
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("environment %s: want a string", k)
		case v.ShortTag() == "!!null":
			(*e)[k] = nil
		case v.ShortTag() == "!!bool":
			// YAML 1.1 parsers read yes/no/on/off as booleans too, and
			// Compose has refused unquoted booleans here.
			return fmt.Errorf("environment %s: quote %s, a YAML boolean", k, v.Value)
		default:
			s := v.Value
			(*e)[k] = &s
		}
	}
	return nil
}

// dependsOn maps a dependency to its condition ("" in the list form).
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*d)[name] = ""
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for name, dep := range m {
		(*d)[name] = dep.Condition
	}
	return nil
}

// loadCompose parses compose.yaml with its variables resolved as
// `docker compose up` resolves them in a shell that sets none of them.
func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	return loadComposeWith(t, nil)
}

// loadComposeWith is loadCompose in a shell that sets vars.
func loadComposeWith(t *testing.T, vars map[string]string) *composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse compose.yaml: %v", err)
	}
	for _, err := range interpolateNode(&doc, "", vars) {
		t.Errorf("compose.yaml: %v", err)
	}
	var cf composeFile
	if err := doc.Decode(&cf); err != nil {
		t.Fatalf("decode compose.yaml: %v", err)
	}
	return &cf
}

// interpolateNode resolves the variables in every value under n in place,
// as Compose does before it reads the file. Aliases are skipped: their
// anchor is resolved where it is defined.
func interpolateNode(n *yaml.Node, path string, vars map[string]string) []error {
	var errs []error
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			errs = append(errs, interpolateNode(c, path, vars)...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, interpolateNode(n.Content[i+1], path+"."+n.Content[i].Value, vars)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			errs = append(errs, interpolateNode(c, fmt.Sprintf("%s[%d]", path, i), vars)...)
		}
	case yaml.ScalarNode:
		v, err := interpolateWith(n.Value, vars)
		if err != nil {
			return []error{fmt.Errorf("%s: %w", strings.TrimPrefix(path, "."), err)}
		}
		n.Value = v
	}
	return errs
}

var interpolationRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(:?[-+?])?(.*)$`)

// interpolate resolves Compose's variable syntax in s for a shell that sets
// none of the variables. Every variable must have a default (${VAR:-x},
// possibly empty), so that a bare `docker compose up` needs nothing set and
// warns about nothing; "$$" is a literal "$".
func interpolate(s string) (string, error) { return interpolateWith(s, nil) }

// interpolateWith is interpolate in a shell that sets vars.
func interpolateWith(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i++
			continue
		case !strings.HasPrefix(rest, "{"):
			name := interpolationRE.FindStringSubmatch(rest)
			if name == nil {
				return "", fmt.Errorf("lone $ in %q: write $$ for a literal $", s)
			}
			return "", fmt.Errorf("$%s has no default: write ${%s:-}", name[1], name[1])
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := rest[1:end]
		i += 1 + end
		m := interpolationRE.FindStringSubmatch(expr)
		if m == nil || strings.Contains(m[3], "$") {
			return "", fmt.Errorf("${%s}: not a variable this test can resolve", expr)
		}
		if v, ok := vars[m[1]]; ok && (v != "" || !strings.HasPrefix(m[2], ":")) {
			if !strings.Contains(m[2], "+") {
				b.WriteString(v)
			} else {
				b.WriteString(m[3])
			}
			continue
		}
		switch name, op, arg := m[1], m[2], m[3]; op {
		case ":-", "-":
			b.WriteString(arg)
		case ":+", "+":
			// Unset: the alternative is not used.
		case ":?", "?":
			return "", fmt.Errorf("${%s} must be set: `docker compose up` alone must work", name)
		default:
			return "", fmt.Errorf("${%s} has no default: Compose warns and substitutes nothing; write ${%s:-}", name, name)
		}
	}
	return b.String(), nil
}

func TestInterpolate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"${A:-}", ""},
		{"x${A:-http://jaeger:4318}y", "xhttp://jaeger:4318y"},
		{"${A-d}", "d"},
		{"${A:+alt}", ""},
		{"awk '{ print $$1 }'", "awk '{ print $1 }'"},
	} {
		if got, err := interpolate(tc.in); err != nil || got != tc.want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"$A", "${A}", "${A:?set it}", "${A:-${B:-}}", "cost: $", "${A"} {
		if got, err := interpolate(in); err == nil {
			t.Errorf("interpolate(%q) = %q, want an error", in, got)
		}
	}
}

// serviceEnv is a service's environment as its process sees it.
func serviceEnv(svc composeService) map[string]string {
	vars := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			vars[k] = *v
		}
	}
	return vars
}

// readConfigs reads everything a miniZON service process reads.
func readConfigs(env *envconf.Reader, name string, read func(*envconf.Reader) validator) (platform.Config, telemetry.Config, validator) {
	return platform.ReadConfig(env), telemetry.ReadConfig(env, name), read(env)
}

// variablesRead are the names of every variable the service reads.
func variablesRead(name string, read func(*envconf.Reader) validator) []string {
	env := envconf.FromMap(nil)
	readConfigs(env, name, read)
	return env.Names()
}

func TestComposeImagesArePinned(t *testing.T) {
	t.Parallel()
	cf := loadCompose(t)
	for name, svc := range cf.Services {
		if svc.Build != nil {
			continue
		}
		if err := checkPinned(svc.Image); err != nil {
			t.Errorf("service %s: image %q: %v", name, svc.Image, err)
		}
	}
}

// checkPinned accepts an image reference with a version tag or a digest.
func checkPinned(image string) error {
	if image == "" {
		return errors.New("no image and no build")
	}
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok:
		return errors.New("no tag: Docker takes latest, whatever that is today")
	case tag == "latest" || !strings.ContainsAny(tag, "0123456789"):
		return fmt.Errorf("tag %q is not a version", tag)
	}
	return nil
}

func TestCheckPinned(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"postgres:15.8-bookworm", "docker.redpanda.com/redpandadata/redpanda:v24.2.7", "localhost:5000/x:1", "x@sha256:abc"} {
		if err := checkPinned(ok); err != nil {
			t.Errorf("checkPinned(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "postgres", "postgres:latest", "localhost:5000/x", "redpanda:stable"} {
		if checkPinned(bad) == nil {
			t.Errorf("checkPinned(%q) = nil, want an error", bad)
		}
	}
}

// TestComposeServices checks each miniZON service's entry: the image, the
// command, the health check, the start order, and that every variable it
// sets is one the service reads and together they pass its validation.
func TestComposeServices(t *testing.T) {
	t.Parallel()
	cf := loadCompose(t)
	img, _ := loadDockerfile(t) // TestDockerfile reports its problems
	databases := initDatabases(t, cf)
	usedDatabases := map[string]string{}
	traceNames := map[string]string{}
	hostPorts := publishedPorts(cf)
	for _, s := range composedServices {
		svc, ok := cf.Services[s.name]
		if !ok {
			t.Errorf("compose.yaml has no service %s", s.name)
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			// Built from the Dockerfile, run with its own subcommand.
			if b := svc.Build; b == nil || filepath.Clean(b.Context) != "." || (b.Dockerfile != "" && b.Dockerfile != "Dockerfile") {
				t.Errorf("service %s: build %+v, want the repository's Dockerfile (build: .)", s.name, b)
			}
			if len(svc.Command) == 0 || svc.Command[0] != s.name {
				t.Errorf("service %s: command %q, want [%q]", s.name, svc.Command, s.name)
			}

			// Every variable set is read, and required ones are set.
			allowed := variablesRead(s.name, s.read)
			for k := range svc.Environment {
				if !slices.Contains(allowed, k) {
					t.Errorf("service %s: environment variable %s is not read by %s (it reads %s)",
						s.name, k, s.name, strings.Join(allowed, ", "))
				}
			}
			vars := serviceEnv(svc)
			env := envconf.FromMap(vars)
			pcfg, tcfg, cfg := readConfigs(env, s.name, s.read)
			if err := errors.Join(env.Err(), pcfg.Validate(), tcfg.Validate(), cfg.Validate()); err != nil {
				t.Errorf("service %s would not start with its compose.yaml environment:\n%v", s.name, err)
			}
			traceNames[s.name] = tcfg.ServiceName

			// Reachable: listening on every interface, on the port that
			// is published.
			host, port, err := net.SplitHostPort(pcfg.Addr)
			if err != nil {
				t.Fatalf("service %s: MINIZON_ADDR=%q: %v", s.name, pcfg.Addr, err)
			}
			if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
				t.Errorf("service %s: MINIZON_ADDR=%q listens on %s only: no other container can reach it; want 0.0.0.0:%s",
					s.name, pcfg.Addr, host, port)
			}
			wantPort := s.hostPort + ":" + port
			if !slices.Contains(svc.Ports, wantPort) {
				t.Errorf("service %s: ports %q, want %q (MINIZON_ADDR's port published as %s)", s.name, svc.Ports, wantPort, s.hostPort)
			}

			// Health checked by the binary itself (the image has no shell),
			// within the check's own timeout.
			hc := svc.Healthcheck
			want := []string{"CMD", img.entrypoint, "healthcheck"}
			switch {
			case hc == nil || hc.Disable:
				t.Errorf("service %s: no healthcheck", s.name)
			case !slices.Equal(hc.Test, want):
				t.Errorf("service %s: healthcheck test %q, want %q", s.name, hc.Test, want)
			case hc.Timeout != "" && mustDuration(t, s.name, "healthcheck timeout", hc.Timeout) <= healthcheckTimeout:
				t.Errorf("service %s: healthcheck timeout %s must exceed the command's own %v, or Docker kills it first",
					s.name, hc.Timeout, healthcheckTimeout)
			}

			// Stopped gracefully.
			if svc.Restart == "" || svc.Restart == "no" {
				t.Errorf("service %s: restart %q, want on-failure", s.name, svc.Restart)
			}
			drain := pcfg.ShutdownDelay + pcfg.ShutdownTimeout
			if svc.StopGracePeriod == "" || mustDuration(t, s.name, "stop_grace_period", svc.StopGracePeriod) <= drain {
				t.Errorf("service %s: stop_grace_period %q must exceed MINIZON_SHUTDOWN_DELAY + MINIZON_SHUTDOWN_TIMEOUT (%v), or Docker kills it mid-drain",
					s.name, svc.StopGracePeriod, drain)
			}

			// Started after what it needs.
			checkDependencies(t, cf, s.name, svc)

			// Its own database, one the init script creates.
			if u, err := url.Parse(vars["DATABASE_URL"]); err == nil {
				db := strings.TrimPrefix(u.Path, "/")
				if !slices.Contains(databases[u.Hostname()], db) {
					t.Errorf("service %s: DATABASE_URL names database %q, which %s's init script does not create (it creates %q)",
						s.name, db, u.Hostname(), databases[u.Hostname()])
				}
				if other, ok := usedDatabases[db]; ok {
					t.Errorf("service %s: DATABASE_URL database %q is %s's: every service owns its database", s.name, db, other)
				}
				usedDatabases[db] = s.name
				checkDatabaseUser(t, cf, s.name, u)
			}
		})
	}
	for hostPort, services := range hostPorts {
		if len(services) > 1 {
			t.Errorf("host port %s is published by %q: only one can bind it", hostPort, services)
		}
	}
	seen := map[string]string{}
	for svc, name := range traceNames {
		if other, ok := seen[name]; ok {
			t.Errorf("services %s and %s both report traces as %q (OTEL_SERVICE_NAME)", other, svc, name)
		}
		seen[name] = svc
	}
}

func mustDuration(t *testing.T, service, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("service %s: %s %q: %v", service, what, s, err)
	}
	return d
}

// publishedPorts maps each published host port to the services publishing it.
func publishedPorts(cf *composeFile) map[string][]string {
	ports := map[string][]string{}
	for name, svc := range cf.Services {
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			if len(parts) < 2 {
				continue // a container port only: Docker picks the host port
			}
			host := strings.Join(parts[:len(parts)-1], ":")
			ports[host] = append(ports[host], name)
		}
	}
	return ports
}

// checkDependencies: every depends_on entry names a service and a condition
// that service can meet, every host the service connects to (database,
// brokers, other services) is started before it, and a Kafka user waits
// for the topics to be created.
func checkDependencies(t *testing.T, cf *composeFile, name string, svc composeService) {
	t.Helper()
	if len(svc.DependsOn) == 0 {
		t.Errorf("service %s: no depends_on", name)
	}
	for dep, cond := range svc.DependsOn {
		target, ok := cf.Services[dep]
		switch {
		case !ok:
			t.Errorf("service %s: depends on %s, which is not a service", name, dep)
		case cond == "":
			t.Errorf("service %s: depends on %s without a condition: it would start before %s is ready", name, dep, dep)
		case cond == "service_healthy" && (target.Healthcheck == nil || target.Healthcheck.Disable):
			t.Errorf("service %s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
		case cond != "service_healthy" && cond != "service_started" && cond != "service_completed_successfully":
			t.Errorf("service %s: depends on %s with unknown condition %q", name, dep, cond)
		}
	}
	after := dependencyClosure(cf, name)
	vars := serviceEnv(svc)
	for _, host := range connectsTo(vars) {
		if _, ok := cf.Services[host]; !ok {
			t.Errorf("service %s connects to %s, which is not a service in compose.yaml", name, host)
		} else if !after[host] {
			t.Errorf("service %s connects to %s but does not depend on it", name, host)
		}
	}
	if vars["KAFKA_BROKERS"] != "" {
		topics := topicInitService(t, cf)
		if svc.DependsOn[topics] != "service_completed_successfully" {
			t.Errorf("service %s uses Kafka: want depends_on %s with condition service_completed_successfully, got %q",
				name, topics, svc.DependsOn[topics])
		}
	}
}

// dependencyClosure is every service name started before name.
func dependencyClosure(cf *composeFile, name string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		for dep := range cf.Services[n].DependsOn {
			if !seen[dep] {
				seen[dep] = true
				visit(dep)
			}
		}
	}
	visit(name)
	return seen
}

// connectsTo lists the hosts named by a service's connection variables.
func connectsTo(vars map[string]string) []string {
	var hosts []string
	if u, err := url.Parse(vars["DATABASE_URL"]); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	for _, b := range strings.Split(vars["KAFKA_BROKERS"], ",") {
		if h, _, err := net.SplitHostPort(strings.TrimSpace(b)); err == nil {
			hosts = append(hosts, h)
		}
	}
	for k, v := range vars {
		if !strings.HasSuffix(k, "_ADDR") || k == "MINIZON_ADDR" {
			continue
		}
		if base, err := rpcclient.BaseURL(v); err == nil {
			if u, err := url.Parse(base); err == nil {
				hosts = append(hosts, u.Hostname())
			}
		}
	}
	return hosts
}

// initDatabases maps each service that runs Postgres init scripts to the
// databases its scripts (or POSTGRES_DB) create.
func initDatabases(t *testing.T, cf *composeFile) map[string][]string {
	t.Helper()
	create := regexp.MustCompile(`(?i)CREATE\s+DATABASE\s+"?([A-Za-z0-9_]+)`)
	out := map[string][]string{}
	for name, svc := range cf.Services {
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || parts[1] != "/docker-entrypoint-initdb.d" {
				continue
			}
			scripts, err := filepath.Glob(filepath.Join(repoRoot, parts[0], "*.sql"))
			if err != nil || len(scripts) == 0 {
				t.Errorf("service %s: no *.sql in %s, mounted as its init scripts", name, parts[0])
			}
			for _, f := range scripts {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				// Comments may mention CREATE DATABASE too.
				sql := regexp.MustCompile(`--.*`).ReplaceAllString(string(b), "")
				for _, m := range create.FindAllStringSubmatch(sql, -1) {
					out[name] = append(out[name], m[1])
				}
			}
			if svc.Environment["POSTGRES_DB"] != nil {
				out[name] = append(out[name], *svc.Environment["POSTGRES_DB"])
			}
		}
	}
	return out
}

// checkDatabaseUser: the URL's user and password are the ones the Postgres
// service is initialised with.
func checkDatabaseUser(t *testing.T, cf *composeFile, name string, u *url.URL) {
	t.Helper()
	pg := serviceEnv(cf.Services[u.Hostname()])
	wantUser, wantPassword := pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]
	if wantUser == "" {
		wantUser = "postgres" // the image's default
	}
	password, _ := u.User.Password()
	if u.User.Username() != wantUser || password != wantPassword {
		t.Errorf("service %s: DATABASE_URL logs in as %q, but %s is initialised with POSTGRES_USER %q and its POSTGRES_PASSWORD",
			name, u.User.Username(), u.Hostname(), wantUser)
	}
}

// topicInitService is the one-shot service that creates the Kafka topics.
func topicInitService(t *testing.T, cf *composeFile) string {
	t.Helper()
	var names []string
	for name, svc := range cf.Services {
		if strings.Contains(strings.Join(slices.Concat(svc.Entrypoint, svc.Command), " "), "rpk topic create") {
			names = append(names, name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("want one service running `rpk topic create`, got %q", names)
	}
	return names[0]
}

// TestComposeCreatesTopics: the init service creates LOMS's topic with the
// partitions LOMS expects and Notifications' dead-letter topic, after the
// broker is healthy. Its script calls `create TOPIC PARTITIONS`.
func TestComposeCreatesTopics(t *testing.T) {
	t.Parallel()
	cf := loadCompose(t)
	name := topicInitService(t, cf)
	svc := cf.Services[name]
	script := strings.Join(slices.Concat(svc.Entrypoint, svc.Command), " ")
	words := strings.FieldsFunc(script, func(r rune) bool { return strings.ContainsRune(" \t\n\"'", r) })
	// partitions is the count the script creates topic with, or -1.
	partitions := func(topic string) int {
		i := slices.Index(words, topic)
		if i < 0 || i+1 == len(words) {
			t.Errorf("service %s does not create topic %s", name, topic)
			return -1
		}
		n, err := strconv.Atoi(words[i+1])
		if err != nil || n < 1 {
			t.Errorf("service %s: topic %s followed by %q, want its partition count", name, topic, words[i+1])
			return -1
		}
		return n
	}
	lomsEnv := serviceEnv(cf.Services["loms"])
	lomsCfg := loms.ReadConfig(envconf.FromMap(lomsEnv))
	if got, want := partitions(outbox.Topic), int(lomsCfg.Outbox.Partitions); got > 0 && got != want {
		t.Errorf("service %s creates %s with %d partitions, LOMS expects %d (LOMS_EVENTS_PARTITIONS)", name, outbox.Topic, got, want)
	}
	partitions(notifications.DeadLetterTopic)
	// The broker LOMS is given is the one the topics are created on.
	broker := strings.TrimSpace(strings.Split(lomsEnv["KAFKA_BROKERS"], ",")[0])
	host, _, _ := net.SplitHostPort(broker)
	if !strings.Contains(script, broker) || svc.DependsOn[host] != "service_healthy" {
		t.Errorf("service %s: want it to create the topics on %s after %s is healthy (depends_on: %v)", name, broker, host, svc.DependsOn)
	}
	if svc.Restart != "" && svc.Restart != "no" {
		t.Errorf("service %s: restart %q; a one-shot job must not restart after it succeeded", name, svc.Restart)
	}
}

// TestComposeSecretsAgree: Checkout presents a token ProductService accepts.
func TestComposeSecretsAgree(t *testing.T) {
	t.Parallel()
	cf := loadCompose(t)
	c := checkout.ReadConfig(envconf.FromMap(serviceEnv(cf.Services["checkout"])))
	p := product.ReadConfig(envconf.FromMap(serviceEnv(cf.Services["product"])))
	if !slices.Contains(p.Tokens, c.Products.Token) {
		t.Error("checkout's PRODUCT_TOKEN is not one of product's PRODUCT_TOKENS: every product lookup would be refused")
	}
}

// TestComposeNamedVolumesDeclared: a named volume must be declared at the
// top level, or Compose refuses the file.
func TestComposeNamedVolumesDeclared(t *testing.T) {
	t.Parallel()
	cf := loadCompose(t)
	for name, svc := range cf.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~") {
				continue // a bind mount
			}
			if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("service %s uses volume %s, which is not declared under volumes:", name, src)
			}
		}
	}
}

// TestComposeCommandsAreSubcommands: each command compose.yaml runs, and
// its health check, is one this binary dispatches. With no database
// configured every service refuses to start; what matters is that it is not
// an unknown command.
func TestComposeCommandsAreSubcommands(t *testing.T) {
	cf := loadCompose(t)
	for _, k := range []string{"DATABASE_URL", "KAFKA_BROKERS", "LOMS_ADDR", "PRODUCT_ADDR", "PRODUCT_TOKEN", "PRODUCT_TOKENS"} {
		t.Setenv(k, "")
	}
	t.Setenv("MINIZON_ADDR", closedAddr(t))
	commands := [][]string{{"healthcheck"}}
	for _, s := range composedServices {
		commands = append(commands, cf.Services[s.name].Command)
	}
	for _, args := range commands {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := run(ctx, args, io.Discard)
		cancel()
		if err == nil {
			t.Errorf("minizon %s: started without a database or server", strings.Join(args, " "))
		} else if strings.Contains(err.Error(), "unknown command") {
			t.Errorf("minizon %s: %v; add it to run's switch in run.go", strings.Join(args, " "), err)
		}
	}
}

// dockerImage is what the tests need to know about the Dockerfile.
type dockerImage struct {
	// entrypoint is the binary's path in the final image.
	entrypoint string
}

// dockerStage is one FROM and its instructions, continuation lines joined.
type dockerStage struct {
	image, name string
	instrs      [][2]string // instruction (upper case), arguments
}

func parseDockerfile(text string) []dockerStage {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var stages []dockerStage
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		if instr == "FROM" {
			var words []string
			for _, w := range strings.Fields(args) {
				if !strings.HasPrefix(w, "--") {
					words = append(words, w)
				}
			}
			st := dockerStage{image: words[0]}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				st.name = words[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, [2]string{instr, args})
		}
	}
	return stages
}

// goVersion is go.mod's `go` line's major.minor ("1.26").
func goVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// loadDockerfile returns what compose.yaml must agree with and what is
// wrong with the Dockerfile: it wants a Go build stage on go.mod's Go
// version building a static ./cmd/minizon, and a final stage that runs it
// as a user other than root.
func loadDockerfile(t *testing.T) (dockerImage, []string) {
	t.Helper()
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(string(b))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final one", len(stages))
	}
	var build *dockerStage
	var out string
	for i := range stages {
		for _, in := range stages[i].instrs {
			if in[0] == "RUN" && strings.Contains(in[1], "go build") {
				build = &stages[i]
				if !strings.Contains(in[1], "CGO_ENABLED=0") {
					fail("%q: want CGO_ENABLED=0, as the final image has no libc", in[1])
				}
				if !strings.Contains(in[1], "./cmd/minizon") {
					fail("%q: want it to build ./cmd/minizon", in[1])
				}
				if m := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(in[1]); m != nil {
					out = m[1]
				}
			}
		}
	}
	if build == nil {
		t.Fatal("Dockerfile: no stage runs go build")
	}
	// `go mod download` loads every module go.mod replaces with a local
	// folder: each one's go.mod must be in the image before it runs.
	for _, dir := range localReplaces(t) {
		copied := false
		for _, in := range build.instrs {
			if in[0] == "COPY" && slices.Contains(strings.Fields(in[1]), dir+"/go.mod") {
				copied = true
			}
			if in[0] == "RUN" && strings.Contains(in[1], "go mod download") {
				if !copied {
					fail("%q runs before %s/go.mod is copied (go.mod replaces a module with ./%s)", in[1], dir, dir)
				}
				break
			}
		}
	}
	goVer := goVersion(t)
	repo, tag, _ := strings.Cut(build.image, ":")
	if repo != "golang" || !regexp.MustCompile(`^`+regexp.QuoteMeta(goVer)+`($|[.-])`).MatchString(tag) {
		fail("build stage FROM %s, want golang:%s (go.mod's go line)", build.image, goVer)
	}

	final := stages[len(stages)-1]
	// Distroless tags name a variant (nonroot), not a version: the
	// Debian release is in the image name, and only a digest pins more.
	if _, tag, _ := strings.Cut(final.image[strings.LastIndex(final.image, "/")+1:], ":"); !strings.Contains(final.image, "@sha256:") && (tag == "" || tag == "latest") {
		fail("final stage FROM %s: want a tag other than latest, or a digest", final.image)
	}
	var img dockerImage
	user := ""
	binary := ""
	for _, in := range final.instrs {
		switch in[0] {
		case "USER":
			user = in[1]
		case "COPY":
			f := strings.Fields(in[1])
			if len(f) == 3 && f[0] == "--from="+build.name && f[1] == out {
				binary = f[2]
			}
		case "ENTRYPOINT":
			var argv []string
			if err := json.Unmarshal([]byte(in[1]), &argv); err != nil || len(argv) == 0 {
				fail("ENTRYPOINT %s: want the exec form [\"/path\"], which needs no shell", in[1])
			} else {
				img.entrypoint = argv[0]
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		fail("final stage runs as %q, want a user other than root (USER nonroot)", user)
	}
	if binary == "" || binary != img.entrypoint {
		fail("ENTRYPOINT %q is not the binary copied from the build stage's %s (copied to %q)", img.entrypoint, out, binary)
	}
	return img, problems
}

// localReplaces are the folders go.mod replaces modules with, such as gen.
func localReplaces(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	// `replace m => ./dir` alone or in a replace ( ... ) block.
	for _, m := range regexp.MustCompile(`(?m)^(?:replace)?\s*\S+(?:\s+\S+)?\s+=>\s+(\.\.?/\S+)\s*$`).FindAllSubmatch(b, -1) {
		dirs = append(dirs, path.Clean(string(m[1])))
	}
	return dirs
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	_, problems := loadDockerfile(t)
	for _, p := range problems {
		t.Error("Dockerfile: " + p)
	}
}

// TestComposeHAProfile: the profile ha adds a standby of postgres, copied
// with pg_basebackup and kept by streaming replication, which the primary
// allows; set as README.md says, every service's DATABASE_URL names both
// servers and asks for the writable one, and LOMS reads from the standby.
func TestComposeHAProfile(t *testing.T) {
	t.Parallel()
	const readURL = "postgres://minizon:minizon@postgres-standby:5432/loms?sslmode=disable"
	cf := loadComposeWith(t, map[string]string{
		"MINIZON_PG_HOSTS": "postgres:5432,postgres-standby:5432",
		"LOMS_READ_URL":    readURL,
	})
	standby, ok := cf.Services["postgres-standby"]
	if !ok {
		t.Fatal("compose.yaml has no service postgres-standby")
	}
	if !slices.Equal(standby.Profiles, []string{"ha"}) {
		t.Errorf("postgres-standby: profiles %q, want only ha (a bare `docker compose up` runs no standby)", standby.Profiles)
	}
	if standby.Image != cf.Services["postgres"].Image {
		t.Errorf("postgres-standby: image %q, want the primary's %q (a physical copy needs the same major version)",
			standby.Image, cf.Services["postgres"].Image)
	}
	script := strings.Join(slices.Concat(standby.Entrypoint, standby.Command), " ")
	for _, want := range []string{"pg_basebackup -h postgres", "-R", "primary_conninfo", "exec postgres"} {
		if !strings.Contains(script, want) {
			t.Errorf("postgres-standby's command lacks %q:\n%s", want, script)
		}
	}
	if standby.Healthcheck == nil || len(standby.Healthcheck.Test) == 0 {
		t.Error("postgres-standby has no healthcheck")
	}
	if standby.DependsOn["postgres"] != "service_healthy" {
		t.Errorf("postgres-standby depends on %v, want postgres healthy (the copy is taken from it)", standby.DependsOn)
	}
	hba, err := os.ReadFile(filepath.Join(repoRoot, "deploy/postgres/20-replication.sh"))
	if err != nil || !strings.Contains(string(hba), "host replication") || !strings.Contains(string(hba), "pg_hba.conf") {
		t.Errorf("deploy/postgres does not allow replication connections: %v", err)
	}
	for _, s := range composedServices {
		vars := serviceEnv(cf.Services[s.name])
		cfg, err := pgconn.ParseConfig(vars["DATABASE_URL"])
		if err != nil {
			t.Errorf("service %s: DATABASE_URL: %v", s.name, err)
			continue
		}
		hosts := []string{cfg.Host}
		for _, fb := range cfg.Fallbacks {
			if !slices.Contains(hosts, fb.Host) {
				hosts = append(hosts, fb.Host)
			}
		}
		if !slices.Equal(hosts, []string{"postgres", "postgres-standby"}) || cfg.ValidateConnect == nil {
			t.Errorf("service %s: DATABASE_URL reaches %q (checking for a writable server: %v), want both servers, the writable one",
				s.name, hosts, cfg.ValidateConnect != nil)
		}
	}
	if got := serviceEnv(cf.Services["loms"])["LOMS_READ_URL"]; got != readURL {
		t.Errorf("loms: LOMS_READ_URL %q, want %q", got, readURL)
	}
}
