package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplb/siplb/parser"
)

// Helpers of the end-to-end tests (failover_test.go): a UDP backend that can
// die and come back on its port, a UDP client that runs calls and
// transactions through siplb, siplb itself in-process or as a process, and
// the admin API's /backends.

// backend is a SIP server on a loopback UDP socket: it answers INVITE,
// BYE, OPTIONS and anything else but ACK with 200 (a To tag and a Contact
// naming itself, Record-Route copied, RFC 3261 §12.1.1) and records every
// request except OPTIONS by Call-ID, with the time of the first INVITE it
// saw since it was last (re)started. stop closes its socket, as a crashed
// process would; restart binds the same address again.
type backend struct {
	name string
	addr netip.AddrPort

	mu        sync.Mutex
	conn      *net.UDPConn
	done      chan struct{}        // closed when the serving goroutine of conn returns
	seen      map[string][]string  // Call-ID → methods, in arrival order
	invitedAt map[string]time.Time // Call-ID → first INVITE
	options   int                  // OPTIONS answered (health probes included)
	started   time.Time            // last (re)start
	firstNew  time.Time            // first INVITE since started; zero if none
}

// startBackend binds a backend on 127.0.0.1:0; it is stopped when the test
// ends.
func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name, seen: map[string][]string{}, invitedAt: map[string]time.Time{}}
	if err := b.listen(netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	t.Cleanup(b.stop)
	return b
}

func (b *backend) listen(at netip.AddrPort) error {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(at))
	if err != nil {
		return err
	}
	done := make(chan struct{})
	b.mu.Lock()
	b.conn, b.done = c, done
	b.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	b.started, b.firstNew = time.Now(), time.Time{}
	b.mu.Unlock()
	go b.serve(c, done)
	return nil
}

// stop closes the socket and waits until nothing more is answered. Stopping
// a stopped backend does nothing.
func (b *backend) stop() {
	b.mu.Lock()
	c, done := b.conn, b.done
	b.conn = nil
	b.mu.Unlock()
	if c == nil {
		return
	}
	c.Close()
	<-done
}

// restart binds the backend's address again after stop.
func (b *backend) restart() error {
	b.stop()
	return b.listen(b.addr)
}

// url is the backend's address in the configuration's form.
func (b *backend) url() string { return "udp://" + b.addr.String() }

func (b *backend) serve(c *net.UDPConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65535)
	var m parser.Message
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req := buf[:n]
		if parser.Parse(&m, req) != nil || !m.IsRequest() {
			continue
		}
		method := m.Method()
		b.mu.Lock()
		if method == parser.OPTIONS {
			b.options++
		} else {
			id := string(m.CallID())
			b.seen[id] = append(b.seen[id], string(m.MethodName()))
			if method == parser.INVITE {
				now := time.Now()
				if _, ok := b.invitedAt[id]; !ok {
					b.invitedAt[id] = now
				}
				if b.firstNew.IsZero() {
					b.firstNew = now
				}
			}
		}
		b.mu.Unlock()
		if method == parser.ACK {
			continue
		}
		c.WriteToUDPAddrPort(answer(req, b.addr), from)
	}
}

// methods returns the requests the backend saw in the dialog callID.
func (b *backend) methods(callID string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen[callID]...)
}

// invited reports whether an INVITE of callID reached the backend.
func (b *backend) invited(callID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.invitedAt[callID]
	return ok
}

// firstInviteSinceStart returns when the first INVITE reached the backend
// since it was last (re)started; zero if none did.
func (b *backend) firstInviteSinceStart() (started, first time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started, b.firstNew
}

// answered returns how many OPTIONS the backend answered.
func (b *backend) answered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.options
}

// answer builds the 200 OK of a UAS to req: Via, From, Call-ID, CSeq and
// Record-Route copied, a To tag added, and a Contact naming self.
func answer(req []byte, self netip.AddrPort) []byte {
	out := make([]byte, 0, len(req)+64)
	out = append(out, "SIP/2.0 200 OK\r\n"...)
	head, _, _ := bytes.Cut(req, []byte("\r\n\r\n"))
	lines := bytes.Split(head, []byte("\r\n"))
	for _, line := range lines[1:] {
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch strings.ToLower(string(bytes.TrimSpace(name))) {
		case "via", "v", "from", "f", "call-id", "i", "cseq", "record-route":
			out = append(out, line...)
		case "to", "t":
			out = append(out, line...)
			if !bytes.Contains(line, []byte("tag=")) {
				out = append(out, ";tag=be"...)
			}
		default:
			continue
		}
		out = append(out, "\r\n"...)
	}
	out = append(out, "Contact: <sip:uas@"...)
	out = self.AppendTo(out)
	out = append(out, ">\r\nContent-Length: 0\r\n\r\n"...)
	return out
}

// sipMsg joins lines into a message with CRLF line ends and a blank line.
func sipMsg(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

// errNoAnswer is a transaction none of whose tries got a final response.
var errNoAnswer = errors.New("no final response")

// client is a UA on one loopback UDP socket that runs many transactions at
// once through siplb: a reader goroutine hands each final response to the
// transaction waiting for its Call-ID and CSeq method.
type client struct {
	conn *net.UDPConn
	lb   netip.AddrPort
	self string // sent-by "127.0.0.1:port"

	mu      sync.Mutex
	waiting map[string]*pending
}

// pending is a transaction waiting for its final response.
type pending struct {
	final chan []byte
	// proceeding: a provisional response came, so an INVITE is not sent
	// again (RFC 3261 §17.1.1.2). A UAS such as sipp's aborts a call whose
	// INVITE comes again after its 200.
	proceeding atomic.Bool
}

// newClient opens a client socket toward siplb at lb; it is closed when the
// test ends.
func newClient(t *testing.T, lb netip.AddrPort) *client {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	cl := &client{conn: c, lb: lb, self: c.LocalAddr().String(), waiting: map[string]*pending{}}
	done := make(chan struct{})
	go cl.read(done)
	t.Cleanup(func() { c.Close(); <-done })
	return cl
}

func (c *client) read(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65535)
	var m parser.Message
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if parser.Parse(&m, buf[:n]) != nil || m.IsRequest() {
			continue
		}
		key := string(m.CallID()) + " " + string(m.CSeqMethodName())
		c.mu.Lock()
		p := c.waiting[key]
		c.mu.Unlock()
		if p != nil && m.StatusCode() < 200 {
			p.proceeding.Store(true)
			continue
		}
		if p != nil {
			select {
			case p.final <- bytes.Clone(buf[:n]):
			default: // a retransmission's answer; the first one counts
			}
		}
	}
}

// transact sends req (of the dialog callID, CSeq method method) and waits
// wait for a final response, sending it again up to tries times in all. It
// returns the response and the number of tries used.
func (c *client) transact(req []byte, callID, method string, tries int, wait time.Duration) ([]byte, int, error) {
	key := callID + " " + method
	p := &pending{final: make(chan []byte, 1)}
	c.mu.Lock()
	c.waiting[key] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, key)
		c.mu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for try := 1; try <= tries; try++ {
		if try == 1 || method != "INVITE" || !p.proceeding.Load() {
			if _, err := c.conn.WriteToUDPAddrPort(req, c.lb); err != nil {
				return nil, try, err
			}
		}
		timer.Reset(wait)
		select {
		case resp := <-p.final:
			return resp, try, nil
		case <-timer.C:
		}
	}
	return nil, tries, errNoAnswer
}

// send sends a request that gets no response (ACK).
func (c *client) send(req []byte) error {
	_, err := c.conn.WriteToUDPAddrPort(req, c.lb)
	return err
}

// dialog is an INVITE dialog the client established: the backend that
// answered (its Contact) and what the client needs for requests inside it.
type dialog struct {
	c      *client
	callID string
	target string   // the backend's Contact host:port: the Request-URI of in-dialog requests
	route  []string // Route lines, from the 200's Record-Route in reverse
	toTag  string
}

// retry says how a client retransmits: tries in all, wait between them.
type retry struct {
	tries int
	wait  time.Duration
}

// invite sends an INVITE for callID and, on a 200, returns the dialog.
func (c *client) invite(callID string, r retry) (*dialog, error) {
	req := sipMsg("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.self+";branch=z9hG4bK-"+callID+"-inv;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a-"+callID, "To: <sip:bob@example.com>",
		"Call-ID: "+callID, "CSeq: 1 INVITE", "Contact: <sip:alice@"+c.self+">", "Content-Length: 0")
	resp, _, err := c.transact(req, callID, "INVITE", r.tries, r.wait)
	if err != nil {
		return nil, fmt.Errorf("INVITE %s: %w", callID, err)
	}
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil {
		return nil, fmt.Errorf("INVITE %s: response: %w", callID, err)
	}
	if m.StatusCode() != 200 {
		return nil, fmt.Errorf("INVITE %s: answered %d", callID, m.StatusCode())
	}
	contact, err := m.Contact(0)
	if err != nil {
		return nil, fmt.Errorf("INVITE %s: Contact: %w", callID, err)
	}
	d := &dialog{c: c, callID: callID, toTag: string(m.ToTag()),
		target: netip.AddrPortFrom(netip.MustParseAddr(string(contact.Host)), contact.Port).String()}
	for i := m.NumRecordRoute() - 1; i >= 0; i-- {
		rr, err := m.RecordRoute(i)
		if err != nil {
			return nil, fmt.Errorf("INVITE %s: Record-Route: %w", callID, err)
		}
		d.route = append(d.route, "Route: <"+string(rr.Raw)+">")
	}
	if len(d.route) == 0 {
		return nil, fmt.Errorf("INVITE %s: 200 without Record-Route", callID)
	}
	return d, nil
}

// request builds a request inside the dialog: Request-URI the backend's
// Contact, the route set as Route (RFC 3261 §12.2.1.1).
func (d *dialog) request(method string, cseq int) []byte {
	lines := []string{method + " sip:uas@" + d.target + " SIP/2.0",
		fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%s%d;rport", d.c.self, d.callID, strings.ToLower(method), cseq)}
	lines = append(lines, d.route...)
	lines = append(lines, "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a-"+d.callID,
		"To: <sip:bob@example.com>;tag="+d.toTag, "Call-ID: "+d.callID,
		fmt.Sprintf("CSeq: %d %s", cseq, method), "Content-Length: 0")
	return sipMsg(lines...)
}

// ackBye acknowledges the 200 and ends the dialog with a BYE.
func (d *dialog) ackBye(r retry) error {
	if err := d.c.send(d.request("ACK", 1)); err != nil {
		return err
	}
	resp, _, err := d.c.transact(d.request("BYE", 2), d.callID, "BYE", r.tries, r.wait)
	if err != nil {
		return fmt.Errorf("BYE %s: %w", d.callID, err)
	}
	if !bytes.HasPrefix(resp, []byte("SIP/2.0 200 ")) {
		return fmt.Errorf("BYE %s: answered %q", d.callID, firstLine(resp))
	}
	return nil
}

// call runs INVITE, 200, ACK, BYE, 200 and returns the backend that
// answered the INVITE.
func (c *client) call(callID string, r retry) (string, error) {
	d, err := c.invite(callID, r)
	if err != nil {
		return "", err
	}
	return d.target, d.ackBye(r)
}

// options sends an out-of-dialog OPTIONS that siplb forwards to a backend
// (its Request-URI has a user part, so siplb does not answer it itself) and
// returns the tries it took.
func (c *client) options(callID string, r retry) (int, error) {
	req := sipMsg("OPTIONS sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.self+";branch=z9hG4bK-"+callID+";rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=o-"+callID, "To: <sip:bob@example.com>",
		"Call-ID: "+callID, "CSeq: 1 OPTIONS", "Content-Length: 0")
	resp, tries, err := c.transact(req, callID, "OPTIONS", r.tries, r.wait)
	if err != nil {
		return tries, fmt.Errorf("OPTIONS %s: %w", callID, err)
	}
	if !bytes.HasPrefix(resp, []byte("SIP/2.0 200 ")) {
		return tries, fmt.Errorf("OPTIONS %s: answered %q", callID, firstLine(resp))
	}
	return tries, nil
}

// ping asks siplb itself (Request-URI its own address, no user) for a 200:
// the way to know its listener serves.
func (c *client) ping(callID string) error {
	req := sipMsg("OPTIONS sip:"+c.lb.String()+" SIP/2.0",
		"Via: SIP/2.0/UDP "+c.self+";branch=z9hG4bK-"+callID+";rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=p", "To: <sip:"+c.lb.String()+">",
		"Call-ID: "+callID, "CSeq: 1 OPTIONS", "Content-Length: 0")
	_, _, err := c.transact(req, callID, "OPTIONS", 1, 200*time.Millisecond)
	return err
}

// waitServing pings siplb until it answers, for up to 10 s.
func waitServing(t *testing.T, c *client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if c.ping(fmt.Sprintf("ping-%d", i)) == nil {
			return
		}
	}
	t.Fatal("siplb did not answer OPTIONS within 10s")
}

func firstLine(b []byte) []byte {
	l, _, _ := bytes.Cut(b, []byte("\r\n"))
	return l
}

// yamlConfig is what the tests vary in a configuration: one UDP listener,
// one hash-callid pool with probing at the given settings, the admin API.
type yamlConfig struct {
	listen   netip.AddrPort
	admin    string
	udpIO    string   // engine.udp_io; "" for the default
	health   string   // the pool's health mapping, flow style: "{interval: 200ms, ...}"
	backends []string // flow-style backend mappings: "{address: udp://..., weight: 2}"
}

func (y yamlConfig) bytes() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "listen:\n  - address: udp://%s\n", y.listen)
	b.WriteString("pools:\n  - name: farm\n    algorithm: hash-callid\n")
	if y.health != "" {
		fmt.Fprintf(&b, "    health: %s\n", y.health)
	}
	b.WriteString("    backends:\n")
	for _, be := range y.backends {
		fmt.Fprintf(&b, "      - %s\n", be)
	}
	if y.udpIO != "" {
		fmt.Fprintf(&b, "engine:\n  udp_io: %s\n", y.udpIO)
	}
	fmt.Fprintf(&b, "admin:\n  listen: %s\nlog:\n  level: info\n", y.admin)
	return []byte(b.String())
}

// writeFileAtomic replaces path so that a reader sees the old or the new
// content, never a part.
func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe to write from a process's output copier
// and read from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// count returns how many times sub occurs in what was written.
func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Count(s.b.Bytes(), []byte(sub))
}

// startServe runs serve in-process with cfgYAML (written to a file, so a
// reload could read it) until the test ends; its log goes to the returned
// buffer.
func startServe(t *testing.T, cfgYAML []byte) *syncBuffer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, cfgYAML)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("configuration: %v\n%s", err, cfgYAML)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, path, path, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s")
		}
	})
	return logs
}

// backendsJSON is the part of an entry of /backends the tests read.
type backendsJSON struct {
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	State   string `json:"state"`
	Health  string `json:"health"`
}

// adminBackends fetches /backends from the admin API at addr.
func adminBackends(addr string) ([]backendsJSON, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + addr + "/backends")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/backends: %s", resp.Status)
	}
	var out []backendsJSON
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("/backends: %w", err)
	}
	return out, nil
}

// waitBackends polls /backends every 20 ms until ok holds, for up to limit;
// it returns how long that took.
func waitBackends(t *testing.T, addr string, limit time.Duration, what string, ok func([]backendsJSON) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last []backendsJSON
	var lastErr error
	for time.Since(start) < limit {
		bs, err := adminBackends(addr)
		if err == nil && ok(bs) {
			return time.Since(start)
		}
		last, lastErr = bs, err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/backends: not %s within %v; last %+v (err %v)", what, limit, last, lastErr)
	return 0
}

// entry returns the /backends entry of addr.
func entry(bs []backendsJSON, addr netip.AddrPort) (backendsJSON, bool) {
	for _, b := range bs {
		if b.Address == addr.String() {
			return b, true
		}
	}
	return backendsJSON{}, false
}
