package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/pgcluster"
	"github.com/minizon/minizon/internal/pgtest"
)

var (
	soak       = flag.Duration("soak", 0, "run TestSoak: the faults in rotation under load for this long")
	brokerDown = flag.Duration("broker-down", 30*time.Second, "how long TestBrokerDownUnderLoad keeps the broker down")
	// minizon is the binary under test: MINIZON_BIN, or built by TestMain
	// (with the race detector when the tests have it).
	minizon string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	minizon = os.Getenv("MINIZON_BIN")
	if minizon == "" {
		dir, err := os.MkdirTemp("", "minizon-faults-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		minizon = filepath.Join(dir, "minizon")
		args := []string{"build", "-o", minizon}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "github.com/minizon/minizon/cmd/minizon")...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build minizon:", err)
			return 1
		}
	}
	return m.Run()
}

// options shape a system.
type options struct {
	// loms and notifications are the replicas of each, as processes.
	loms, notifications int
	// paymentTimeout is LOMS_PAYMENT_TIMEOUT; long unless the sweeper is
	// part of the test.
	paymentTimeout time.Duration
	// sessionTimeout is Notifications' KAFKA_SESSION_TIMEOUT: short where
	// a replica is killed, so that its partitions move on soon; the
	// default elsewhere, so that a replica starved of CPU keeps them.
	sessionTimeout time.Duration
	// standby adds a streaming-replication standby of Postgres, and the
	// services and the audit reach the database through both addresses.
	standby replication
}

// replication is how a standby follows its primary.
type replication int

const (
	noStandby replication = iota
	// synchronousStandby: a commit is acknowledged once the standby has
	// flushed it too.
	synchronousStandby
	// asynchronousStandby: the standby may lag; a commit acknowledged but
	// not yet sent to it is lost when the primary is.
	asynchronousStandby
)

// system is one deployment: a durable Postgres cluster, a Kafka broker
// that can be stopped and started on the same port with its data, a
// webhook receiving the notifications, and the services as processes.
type system struct {
	t   *testing.T
	dir string
	pg  *pgcluster.Cluster
	// standby is the standby of pg, if any; failover promotes it.
	standby *pgcluster.Cluster
	lomsDB  *pgxpool.Pool
	// lomsQ is what the audit reads LOMS's database through: the pool, or
	// one snapshot while an audit runs.
	lomsQ         querier
	notifyDB      *pgxpool.Pool
	broker        *broker
	hook          *webhook
	loms          []*proc
	notifications []*proc
	opts          options
}

func newSystem(t *testing.T, opts options) *system {
	t.Helper()
	ctx := t.Context()
	s := &system{t: t, dir: pgtest.ReachableTempDir(t), opts: opts}
	// Durable: a crash must not lose commits (a throwaway cluster runs
	// with synchronous_commit off and would).
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(s.dir, "pg")})
	if err != nil {
		t.Fatal(err)
	}
	s.pg = pg
	t.Cleanup(func() { _ = pg.Stop() })
	for _, db := range []string{"loms", "notifications"} {
		if err := pg.CreateDatabase(ctx, db, ""); err != nil {
			t.Fatal(err)
		}
	}
	if opts.standby != noStandby {
		if s.standby, err = pg.StartStandby(ctx, pgcluster.Options{Dir: filepath.Join(s.dir, "pg-standby")}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.standby.Stop() })
	}
	// After the standby is made: it would copy the setting, and once
	// promoted wait for a standby of its own.
	if opts.standby == synchronousStandby {
		if err := pg.SetSynchronous(ctx, "*"); err != nil {
			t.Fatal(err)
		}
	}
	s.broker = startBroker(t, filepath.Join(s.dir, "kafka"))
	s.hook = newWebhook(t)

	for i := range opts.loms {
		s.loms = append(s.loms, s.spawn(fmt.Sprintf("loms-%d", i+1), "loms",
			"DATABASE_URL="+s.dbURL("loms"),
			"KAFKA_BROKERS="+s.broker.addr,
			"MINIZON_SEED=true",
			"LOMS_PAYMENT_TIMEOUT="+opts.paymentTimeout.String(),
			"LOMS_OUTBOX_POLL_INTERVAL=50ms",
			"KAFKA_PRODUCE_TIMEOUT=3s",
			"MINIZON_REQUEST_TIMEOUT=5s"))
	}
	for i := range opts.notifications {
		env := []string{
			"DATABASE_URL=" + s.dbURL("notifications"),
			"KAFKA_BROKERS=" + s.broker.addr,
			// A path per replica shows which one delivered.
			"NOTIFY_WEBHOOK_URL=" + s.hook.srv.URL + "/" + strconv.Itoa(i+1),
			"NOTIFY_RETRY_BACKOFF_MAX=1s",
		}
		if opts.sessionTimeout > 0 {
			env = append(env, "KAFKA_SESSION_TIMEOUT="+opts.sessionTimeout.String())
		}
		s.notifications = append(s.notifications, s.spawn(fmt.Sprintf("notifications-%d", i+1), "notifications", env...))
	}
	s.lomsDB = pool(t, s.dbURL("loms"))
	s.lomsQ = s.lomsDB
	s.notifyDB = pool(t, s.dbURL("notifications"))
	return s
}

// dbURL is where the services and the audit find database name: with a
// standby, on whichever of the two servers accepts writes. connect_timeout
// bounds each address's attempt, for a server that is gone without
// refusing connections.
func (s *system) dbURL(name string) string {
	if s.standby == nil {
		return s.pg.URL(name)
	}
	return pgcluster.FailoverURL(name, s.pg, s.standby) + "&connect_timeout=2"
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// lomsURLs are the base URLs of the LOMS replicas.
func (s *system) lomsURLs() []string {
	urls := make([]string, len(s.loms))
	for i, p := range s.loms {
		urls[i] = "http://" + p.addr
	}
	return urls
}

// unsent counts the events the relays have not published yet.
func (s *system) unsent() (int64, error) {
	var n int64
	err := s.lomsDB.QueryRow(s.t.Context(), "SELECT count(*) FROM outbox").Scan(&n)
	return n, err
}

// crashPostgres stops Postgres as a crash would, keeps it down for d, and
// starts it again on the same port.
func (s *system) crashPostgres(d time.Duration) {
	s.t.Helper()
	if err := s.pg.Crash(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
	time.Sleep(d)
	if err := s.pg.Restart(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
}

// failover loses the primary as its machine would be lost (every process
// killed at once) and promotes the standby, as an operator or a failover
// manager would. It returns when the primary died and when the standby
// took writes; the services are told nothing.
func (s *system) failover() (killed, promoted time.Time) {
	s.t.Helper()
	if err := s.pg.Kill(); err != nil {
		s.t.Fatal(err)
	}
	killed = time.Now()
	if err := s.standby.Promote(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
	return killed, time.Now()
}

// pauseReplication stops the primary's WAL senders (SIGSTOP): the standby
// receives nothing more, as when it falls behind, while the primary goes on
// committing without it. Kill ends them with the rest.
func (s *system) pauseReplication() {
	s.t.Helper()
	rows, err := s.lomsDB.Query(s.t.Context(), "SELECT pid FROM pg_stat_replication")
	if err != nil {
		s.t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(pids) == 0 {
		s.t.Fatalf("WAL senders %v: %v", pids, err)
	}
	for _, pid := range pids {
		// Resumed if the test ends before Kill: a stopped process would
		// hold up the server's shutdown.
		s.t.Cleanup(func() {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(comm), "postgres") {
				_ = syscall.Kill(int(pid), syscall.SIGCONT)
			}
		})
		if err := syscall.Kill(int(pid), syscall.SIGSTOP); err != nil {
			s.t.Fatalf("pause WAL sender %d: %v", pid, err)
		}
	}
}

// proc is one service process.
type proc struct {
	t       *testing.T
	name    string
	service string
	addr    string
	env     []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

func (s *system) spawn(name, service string, env ...string) *proc {
	s.t.Helper()
	p := &proc{t: s.t, name: name, service: service, addr: freeAddr(s.t), logPath: filepath.Join(s.dir, name+".log"),
		env: append(envconf.Foreign(os.Environ()), env...)}
	p.env = append(p.env, "MINIZON_ADDR="+p.addr, "MINIZON_LOG_LEVEL=warn", "MINIZON_SHUTDOWN_TIMEOUT=5s")
	p.start()
	s.t.Cleanup(func() {
		p.stop()
		// A race-built service prints its data races and goes on.
		if races := grep(p.logPath, "WARNING: DATA RACE", 1); races != "" {
			s.t.Errorf("%s had a data race:\n%s", p.name, tail(p.logPath, 60))
		}
		if s.t.Failed() {
			s.t.Logf("%s's errors:\n%s\nlast lines of its log:\n%s", p.name, grep(p.logPath, `"level":"ERROR"`, 20),
				tail(p.logPath, 20))
		}
	})
	return p
}

// start runs the process and waits until its health check passes.
func (p *proc) start() {
	p.t.Helper()
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer log.Close()
	p.cmd = exec.Command(minizon, p.service)
	p.cmd.Env = p.env
	// Not outliving a test binary that dies (a timeout's panic skips the
	// cleanups).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if exec.Command(minizon, "healthcheck", p.addr).Run() == nil {
			return
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited while starting:\n%s", p.name, tail(p.logPath, 30))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not healthy after a minute:\n%s", p.name, tail(p.logPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no drain, no flush, no goodbye.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop ends the process with SIGTERM, as an orchestrator would, and
// kills it if it has not drained in time.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// broker is an in-process Kafka broker that keeps its data and port
// across a stop, so that stopping it is an outage, not a new cluster.
type broker struct {
	t    *testing.T
	dir  string
	port int
	addr string
	mu   sync.Mutex
	c    *kfake.Cluster
}

func startBroker(t *testing.T, dir string) *broker {
	t.Helper()
	b := &broker{t: t, dir: dir}
	b.start()
	b.addr = b.c.ListenAddrs()[0]
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(b.dir), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(3)}
	if b.port != 0 {
		opts = append(opts, kfake.Ports(b.port))
	}
	var err error
	// The port was just released; binding it again may take a moment.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if b.c, err = kfake.NewCluster(opts...); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		b.t.Fatalf("start broker: %v", err)
	}
	_, port, _ := net.SplitHostPort(b.c.ListenAddrs()[0])
	b.port, _ = strconv.Atoi(port)
}

func (b *broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

// webhook receives the notifications and counts them by event id and by
// the replica that sent them.
type webhook struct {
	srv       *httptest.Server
	mu        sync.Mutex
	byEvent   map[string]int
	byReplica map[string]int
}

func newWebhook(t *testing.T) *webhook {
	h := &webhook{byEvent: map[string]int{}, byReplica: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			EventID string `json:"event_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.EventID == "" {
			http.Error(w, "want a notification", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.byEvent[body.EventID]++
		h.byReplica[r.URL.Path]++
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *webhook) counts() (byEvent, byReplica map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	byEvent, byReplica = make(map[string]int, len(h.byEvent)), make(map[string]int, len(h.byReplica))
	for k, v := range h.byEvent {
		byEvent[k] = v
	}
	for k, v := range h.byReplica {
		byReplica[k] = v
	}
	return byEvent, byReplica
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tail is the end of a log file, for failure reports.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	parts := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n")))
}

// grep is the first lines of a log file that hold s, for failure reports.
func grep(path, s string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(line, []byte(s)) && len(out) < lines {
			out = append(out, line)
		}
	}
	return string(bytes.Join(out, []byte("\n")))
}

// waitFor polls cond until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = io.ErrNoProgress
			}
			return fmt.Errorf("still not so after %v: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
