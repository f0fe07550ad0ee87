package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/siplb/siplb/parser"
)

// A real page in headless Chromium talks SIP to siplb over a WebSocket
// (RFC 7118): siplb runs from a configuration with a ws:// listener whose
// origins allow only the page's origin, in front of a UDP backend. The
// page's script writes raw SIP text (no SIP library is needed for that):
// REGISTER, then a call it hangs up (INVITE, ACK, BYE), then a call the
// backend hangs up, whose BYE reaches the page over its WebSocket and is
// answered. The page reports each status to the DOM; the test reads them
// and what the backend saw.

// wsPage is the test page; %d is siplb's WebSocket port.
const wsPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>siplb WebSocket test</title></head>
<body><pre id="result">{}</pre><pre id="log"></pre>
<script>
"use strict";
window.res = {};
const host = "pg" + Math.random().toString(36).slice(2, 10) + ".invalid";
function done(k, v) {
  window.res[k] = String(v);
  document.getElementById("result").textContent = JSON.stringify(window.res);
}
function log(s) { document.getElementById("log").textContent += s + "\n"; }
function parse(text) {
  const i = text.indexOf("\r\n\r\n");
  const lines = (i < 0 ? text : text.slice(0, i)).split("\r\n");
  const hdrs = lines.slice(1).map(l => {
    const c = l.indexOf(":");
    return { name: l.slice(0, c).trim().toLowerCase(), value: l.slice(c + 1).trim(), raw: l };
  });
  return {
    first: lines[0], hdrs: hdrs,
    all: n => hdrs.filter(h => h.name === n).map(h => h.value),
    get: n => { const h = hdrs.find(h => h.name === n); return h ? h.value : ""; },
  };
}
function msg(lines, body) {
  body = body || "";
  return lines.concat(["Content-Length: " + body.length]).join("\r\n") + "\r\n\r\n" + body;
}
function respond(m, status) {
  const keep = ["via", "from", "to", "call-id", "cseq", "record-route"];
  return msg(["SIP/2.0 " + status].concat(m.hdrs.filter(h => keep.includes(h.name)).map(h => h.raw)));
}
let pending = null;
const ws = new WebSocket("ws://127.0.0.1:%d", "sip");
ws.onmessage = ev => {
  const m = parse(ev.data);
  log("<- " + m.first);
  if (m.first.startsWith("SIP/2.0 ")) {
    const st = parseInt(m.first.split(" ")[1], 10);
    if (st >= 200 && pending) { const p = pending; pending = null; p({ st: st, m: m }); }
    return;
  }
  if (m.first.startsWith("BYE ")) {
    ws.send(respond(m, "200 OK"));
    done("backendBye", "answered");
  }
};
ws.onerror = () => done("error", "websocket error");
ws.onclose = ev => done("closed", ev.code);
function transact(text) {
  log("-> " + text.split("\r\n")[0]);
  return new Promise((ok, fail) => {
    pending = ok;
    ws.send(text);
    setTimeout(() => fail("no final response to " + text.split(" ")[0]), 10000);
  });
}
let n = 0;
const via = () => "Via: SIP/2.0/WS " + host + ";branch=z9hG4bK-page" + (++n) + ";rport";
const contact = "Contact: <sip:page@" + host + ";transport=ws>";
const sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
async function call(callID) {
  const r = await transact(msg(["INVITE sip:bob@example.com SIP/2.0", via(), "Max-Forwards: 70",
    "From: <sip:page@example.com>;tag=" + callID, "To: <sip:bob@example.com>", "Call-ID: " + callID,
    "CSeq: 1 INVITE", contact, "Content-Type: application/sdp"], sdp));
  // The UAC's route set: the Record-Route values in reverse (RFC 3261 §12.1.2).
  const rr = [].concat(...r.m.all("record-route").map(v => v.split(/,\s*(?=<)/))).reverse();
  const target = r.m.get("contact").replace(/^<|>.*$/g, "");
  const d = (method, cseq) => [method + " " + target + " SIP/2.0", via()].concat(rr.map(v => "Route: " + v),
    ["Max-Forwards: 70", "From: <sip:page@example.com>;tag=" + callID, "To: " + r.m.get("to"),
     "Call-ID: " + callID, "CSeq: " + cseq + " " + method]);
  return { st: r.st, ack: () => ws.send(msg(d("ACK", 1))), bye: () => transact(msg(d("BYE", 2))) };
}
async function run() {
  const reg = await transact(msg(["REGISTER sip:example.com SIP/2.0", via(), "Max-Forwards: 70",
    "From: <sip:page@example.com>;tag=reg", "To: <sip:page@example.com>", "Call-ID: page-reg",
    "CSeq: 1 REGISTER", contact, "Expires: 300"]));
  done("register", reg.st);
  const c1 = await call("page-call1");
  done("invite", c1.st);
  c1.ack();
  done("bye", (await c1.bye()).st);
  const c2 = await call("page-call2"); // the backend hangs this one up
  done("invite2", c2.st);
  c2.ack();
}
ws.onopen = () => run().catch(e => done("error", e));
</script></body></html>`

// pageBackend is the UDP backend of the browser test: 200 to every request
// but ACK, and on the ACK of the call "page-call2" a BYE of its own along
// the route set the INVITE recorded. It keeps every message it receives.
type pageBackend struct {
	conn *net.UDPConn
	addr netip.AddrPort
	lb   netip.AddrPort // siplb's UDP leg, where its BYE goes

	mu   sync.Mutex
	seen [][]byte
	invs map[string][]byte // Call-ID → INVITE received
}

func startPageBackend(t *testing.T, lb netip.AddrPort) *pageBackend {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := &pageBackend{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), lb: lb, invs: map[string][]byte{}}
	go b.serve()
	return b
}

func (b *pageBackend) serve() {
	buf := make([]byte, 65536)
	var m parser.Message
	for {
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg := bytes.Clone(buf[:n])
		b.mu.Lock()
		b.seen = append(b.seen, msg)
		b.mu.Unlock()
		if parser.Parse(&m, msg) != nil || !m.IsRequest() {
			continue
		}
		callID := string(m.CallID())
		switch m.Method() {
		case parser.INVITE:
			b.mu.Lock()
			b.invs[callID] = msg
			b.mu.Unlock()
			b.conn.WriteToUDPAddrPort(answer(msg, b.addr), from)
		case parser.ACK:
			if callID == "page-call2" {
				b.mu.Lock()
				inv := b.invs[callID]
				b.mu.Unlock()
				b.conn.WriteToUDPAddrPort(b.bye(inv), b.lb)
			}
		default:
			b.conn.WriteToUDPAddrPort(answer(msg, b.addr), from)
		}
	}
}

// bye is the backend's BYE in the dialog of inv: to the caller's Contact,
// along the Record-Route values in order (the UAS's route set, §12.1.1).
func (b *pageBackend) bye(inv []byte) []byte {
	var m parser.Message
	if parser.Parse(&m, inv) != nil {
		return nil
	}
	lines := []string{"", "Via: SIP/2.0/UDP " + b.addr.String() + ";branch=z9hG4bK-backendbye"}
	target := ""
	for line := range strings.SplitSeq(string(inv), "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "record-route":
			for v := range strings.SplitSeq(value, ",") {
				lines = append(lines, "Route: "+strings.TrimSpace(v))
			}
		case "contact":
			target = strings.Trim(strings.TrimSpace(value), "<>")
		}
	}
	lines[0] = "BYE " + target + " SIP/2.0"
	lines = append(lines, "Max-Forwards: 70", "From: "+string(m.Header(parser.HdrTo))+";tag=be",
		"To: "+string(m.Header(parser.HdrFrom)), "Call-ID: "+string(m.CallID()), "CSeq: 1 BYE", "Content-Length: 0")
	return sipMsg(lines...)
}

// received returns the messages the backend got that start with prefix.
func (b *pageBackend) received(prefix string) [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out [][]byte
	for _, m := range b.seen {
		if bytes.HasPrefix(m, []byte(prefix)) {
			out = append(out, m)
		}
	}
	return out
}

func TestWSBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the WebSocket browser test needs Debian's chromium (%v): run scripts/deps.sh or "+
			"apt-get install -y chromium", err)
	}
	wsPort, udpPort := freeTCPPort(t), freeUDPPort(t)
	lbUDP := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(udpPort))
	be := startPageBackend(t, lbUDP)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, wsPage, wsPort)
	}))
	t.Cleanup(page.Close)
	startServe(t, []byte(fmt.Sprintf(`listen:
  - address: ws://127.0.0.1:%d
    origins: [%s]
  - address: udp://127.0.0.1:%d
pools:
  - name: farm
    health: {disabled: true}
    backends:
      - address: udp://%s
log:
  level: warn
`, wsPort, page.URL, udpPort, be.addr)))
	// siplb is up once its WebSocket port answers.
	up := false
	for end := time.Now().Add(10 * time.Second); !up && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", wsPort), time.Second); err == nil {
			c.Close()
			up = true
		}
	}
	if !up {
		t.Fatal("siplb's ws listener did not come up")
	}

	profile := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, 60*time.Second)
	defer cancelRun()
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("open the page in chromium: %v", err)
	}
	const finished = `window.res && (window.res.backendBye || window.res.error || window.res.closed)`
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](finished,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		res, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the page did not finish: %v\n%s", err, res)
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`window.res`))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	for k, want := range map[string]string{"register": "200", "invite": "200", "bye": "200", "invite2": "200", "backendBye": "answered"} {
		if res[k] != want {
			t.Errorf("page: %s = %q, want %q\n%s", k, res[k], want, text)
		}
	}
	if res["error"] != "" || res["closed"] != "" {
		t.Errorf("page: error %q, closed %q\n%s", res["error"], res["closed"], text)
	}
	// The backend saw the page's requests with received naming the
	// browser's end of the WebSocket, and the page's 200 to its BYE.
	for _, method := range []string{"REGISTER ", "INVITE ", "ACK ", "BYE "} {
		got := be.received(method)
		if len(got) == 0 {
			t.Errorf("backend got no %s", method)
			continue
		}
		if !bytes.Contains(got[0], []byte("Via: SIP/2.0/WS pg")) || !bytes.Contains(got[0], []byte(";received=127.0.0.1")) {
			t.Errorf("backend's %s lacks the page's WS Via with received:\n%s", method, got[0])
		}
	}
	answered := false
	for _, m := range be.received("SIP/2.0 200 OK") {
		answered = answered || bytes.Contains(m, []byte("CSeq: 1 BYE")) && bytes.Contains(m, []byte("Call-ID: page-call2"))
	}
	if !answered {
		t.Errorf("backend got no 200 to its BYE; the page says %q", res["backendBye"])
	}
}
