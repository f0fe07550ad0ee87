package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCaptureConfigErrors(t *testing.T) {
	base := "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\ncapture:\n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"not an address", "  hep: homer.example:9060\n", "line 8: capture.hep: want the collector's IP:PORT"},
		{"unspecified", "  hep: 0.0.0.0:9060\n", "line 8: capture.hep: want a specific IP"},
		{"port 0", "  hep: 127.0.0.1:0\n", "capture.hep: want a specific IP (no zone) and a port other than 0"},
		{"long password", "  hep: 127.0.0.1:9060\n  password: " + strings.Repeat("p", 256) + "\n", "line 9: capture.password: at most 255 bytes"},
		{"queue too large", "  hep: 127.0.0.1:9060\n  queue_size: 70000\n", "line 9: capture.queue_size: must be between 1 and 65536"},
		{"negative queue", "  hep: 127.0.0.1:9060\n  queue_size: -1\n", "capture.queue_size"},
		{"capture id out of range", "  hep: 127.0.0.1:9060\n  capture_id: 5000000000\n", "line 9"},
		{"capture id without hep", "  capture_id: 7\n", "line 8: capture.capture_id: set without capture.hep"},
		{"password without hep", "  password: x\n", "capture.password: set without capture.hep"},
		{"unknown key", "  hep: 127.0.0.1:9060\n  agent: 1\n", "line 9: field agent not found"},
		{"unknown transport", "  hep: 127.0.0.1:9060\n  transport: sctp\n", `line 9: capture.transport: want udp or tcp, got "sctp"`},
		{"udp_gso without hep", "  udp_gso: false\n", "line 8: capture.udp_gso: set without capture.hep"},
		{"udp_gso over tcp", "  hep: 127.0.0.1:9060\n  transport: tcp\n  udp_gso: true\n", "line 10: capture.udp_gso: applies to capture.transport udp only"},
		{"udp_gso not a bool", "  hep: 127.0.0.1:9060\n  udp_gso: maybe\n", "line 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(base + tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := parseConfig([]byte(base + "  hep: \"[::1]:9060\"\n  capture_id: 2001\n  password: pw\n  queue_size: 64\n")); err != nil {
		t.Errorf("a valid capture block: %v", err)
	}
}

// hepFrame is a HEPv3 frame as this test reads it: each generic chunk's
// value by type. A vendor chunk (siplb's pad, over UDP GSO) is skipped, as
// Kamailio's sipcapture skips it.
type hepFrame map[uint16][]byte

func decodeHEP(b []byte) (hepFrame, bool) {
	if len(b) < 6 || string(b[:4]) != "HEP3" || int(binary.BigEndian.Uint16(b[4:])) != len(b) {
		return nil, false
	}
	f := hepFrame{}
	for i := 6; i < len(b); {
		if len(b)-i < 6 {
			return nil, false
		}
		n := int(binary.BigEndian.Uint16(b[i+4:]))
		if n < 6 || i+n > len(b) {
			return nil, false
		}
		if binary.BigEndian.Uint16(b[i:]) == 0 {
			f[binary.BigEndian.Uint16(b[i+2:])] = b[i+6 : i+n]
		}
		i += n
	}
	return f, true
}

// endpoints are the frame's addresses (IPv4 chunks 3, 4 or IPv6 5, 6).
func (f hepFrame) endpoints() (src, dst netip.AddrPort) {
	s, d := f[3], f[4]
	if s == nil {
		s, d = f[5], f[6]
	}
	sa, _ := netip.AddrFromSlice(s)
	da, _ := netip.AddrFromSlice(d)
	return netip.AddrPortFrom(sa, binary.BigEndian.Uint16(f[7])), netip.AddrPortFrom(da, binary.BigEndian.Uint16(f[8]))
}

// collector is a HEP collector on 127.0.0.1 over udp or tcp; next returns
// the next frame's bytes, false after a timeout or a close.
type collector struct {
	addr string
	next func(deadline time.Time) ([]byte, bool)
}

func startCollector(t *testing.T, transport string) collector {
	t.Helper()
	if transport == "udp" {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		buf := make([]byte, 1<<16)
		return collector{addr: c.LocalAddr().String(), next: func(d time.Time) ([]byte, bool) {
			c.SetReadDeadline(d)
			n, err := c.Read(buf)
			return buf[:n], err == nil
		}}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conn net.Conn
	return collector{addr: ln.Addr().String(), next: func(d time.Time) ([]byte, bool) {
		if conn == nil {
			ln.(*net.TCPListener).SetDeadline(d)
			c, err := ln.Accept()
			if err != nil {
				return nil, false
			}
			conn = c
			t.Cleanup(func() { c.Close() })
		}
		conn.SetReadDeadline(d)
		head := make([]byte, 6)
		if _, err := io.ReadFull(conn, head); err != nil {
			return nil, false
		}
		n := int(binary.BigEndian.Uint16(head[4:]))
		if n < 6 {
			return head, true // not a frame: decodeHEP says so
		}
		b := append(head, make([]byte, n-6)...)
		_, err := io.ReadFull(conn, b[6:])
		return b, err == nil
	}}
}

// siplb serving in-process with capture.hep mirrors a call (each message
// in and out, with the real addresses and the Call-ID) and its health
// probes to a collector, over UDP or TCP, and counts what it sent.
func TestCaptureEndToEnd(t *testing.T) {
	tests := []struct {
		name, transport, extra string
		gso                    float64 // siplb_capture_udp_gso
	}{
		{"udp", "udp", "", 1}, // GSO where the kernel has it (Linux 4.18)
		{"udp without gso", "udp", "  udp_gso: false\n", 0},
		{"tcp", "tcp", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gso := tc.gso
			if runtime.GOOS != "linux" {
				gso = 0
			}
			testCaptureEndToEnd(t, tc.transport, tc.extra, gso)
		})
	}
}

func testCaptureEndToEnd(t *testing.T, transport, extra string, gso float64) {
	col := startCollector(t, transport)
	be := startBackend(t, "A")
	lbAddr := netip.AddrPortFrom(netip.MustParseAddrPort("127.0.0.1:0").Addr(), uint16(freeUDPPort(t)))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := yamlConfig{listen: lbAddr, admin: adminAddr, health: "{interval: 200ms, timeout: 100ms}",
		backends: []string{"{address: " + be.url() + "}"}}
	y := string(cfg.bytes()) + fmt.Sprintf("capture:\n  hep: %s\n  transport: %s\n  capture_id: 2001\n  password: s3cret\n", col.addr, transport) + extra
	startServe(t, []byte(y))
	cl := newClient(t, lbAddr)
	waitServing(t, cl)
	const callID = "capture-e2e"
	if _, err := cl.call(callID, retry{tries: 3, wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	clientAddr := netip.MustParseAddrPort(cl.self)

	// What the collector must see: the INVITE from the client to siplb and
	// on to the backend, the 200 from the backend and on to the client,
	// and a probe from siplb to the backend.
	type seen struct{ inviteIn, inviteOut, okIn, okOut, probe bool }
	var got seen
	deadline := time.Now().Add(5 * time.Second)
	for got != (seen{true, true, true, true, true}) && time.Now().Before(deadline) {
		b, ok := col.next(deadline)
		if !ok {
			break
		}
		f, ok := decodeHEP(b)
		if !ok {
			t.Fatalf("collector got something that is not a HEPv3 frame: %q", b[:min(len(b), 64)])
		}
		if binary.BigEndian.Uint32(f[12]) != 2001 || string(f[14]) != "s3cret" || f[11][0] != 1 || f[2][0] != 17 {
			t.Errorf("frame: capture id %x, auth key %q, proto type %v, ip proto %v; want 2001, s3cret, SIP (1), UDP (17)", f[12], f[14], f[11], f[2])
		}
		src, dst := f.endpoints()
		payload := f[15]
		first := string(firstLine(payload))
		switch {
		case strings.HasPrefix(first, "OPTIONS ") && src == lbAddr && dst == be.addr:
			got.probe = true
		case string(f[17]) != callID:
		case strings.HasPrefix(first, "INVITE ") && src == clientAddr && dst == lbAddr:
			got.inviteIn = true
		case strings.HasPrefix(first, "INVITE ") && src == lbAddr && dst == be.addr:
			got.inviteOut = bytes.Count(payload, []byte("\r\nVia: ")) == 2 // siplb's Via added
		case strings.HasPrefix(first, "SIP/2.0 200") && bytes.Contains(payload, []byte("CSeq: 1 INVITE")) && src == be.addr && dst == lbAddr:
			got.okIn = true
		case strings.HasPrefix(first, "SIP/2.0 200") && bytes.Contains(payload, []byte("CSeq: 1 INVITE")) && src == lbAddr && dst == clientAddr:
			got.okOut = true
		}
	}
	if got != (seen{true, true, true, true, true}) {
		t.Errorf("collector saw %+v, want every one", got)
	}
	// The Sender counts a batch once its send returns, which on a loaded
	// machine can be after the collector has read the frames: poll.
	mfs := scrape(t, adminAddr)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); mfs = scrape(t, adminAddr) {
		if v, ok := value(mfs["siplb_capture_sent_total"], nil); ok && v >= 5 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v, ok := value(mfs["siplb_capture_sent_total"], nil); !ok || v < 5 {
		t.Errorf("siplb_capture_sent_total = %v (present %v), want at least 5", v, ok)
	}
	if v, ok := value(mfs["siplb_capture_dropped_total"], map[string]string{"reason": "queue_full"}); !ok || v != 0 {
		t.Errorf(`siplb_capture_dropped_total{reason="queue_full"} = %v (present %v), want 0`, v, ok)
	}
	if v, ok := value(mfs["siplb_capture_udp_gso"], nil); !ok || v != gso {
		t.Errorf("siplb_capture_udp_gso = %v (present %v), want %v", v, ok, gso)
	}
	// The sender's CPU: read from its thread's clock on Linux, 0 elsewhere.
	if v, ok := value(mfs["siplb_capture_send_cpu_seconds_total"], nil); !ok || (runtime.GOOS == "linux") != (v > 0) || v > 1 {
		t.Errorf("siplb_capture_send_cpu_seconds_total = %v (present %v), want above 0 (on Linux) and under a second for a few frames", v, ok)
	}
}
