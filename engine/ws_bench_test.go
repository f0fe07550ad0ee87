package engine

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
)

// BenchmarkWSRoundTrip measures one SIP message over a WebSocket leg and
// its answer, client and siplb in one process: an OPTIONS to siplb itself,
// read by the leg's reader, decided by the forwarding rules, answered with
// a stateless 200 that the connection's writer sends. allocs/op counts both
// ends: compare with library, the same client against a bare coder/websocket
// echo server, to see what siplb adds.
func BenchmarkWSRoundTrip(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, url string, msg []byte, want string) {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"sip"}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		buf := make([]byte, 4096)
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
				b.Fatal(err)
			}
			_, r, err := c.Reader(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				k, err := r.Read(buf[n:])
				n += k
				if err != nil {
					break
				}
			}
			if !bytes.HasPrefix(buf[:n], []byte(want)) {
				b.Fatalf("got %q", buf[:n])
			}
		}
	}

	b.Run("siplb", func(b *testing.B) {
		legs := []LegConfig{{Transport: balance.WS, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
		if err := ResolvePorts(legs); err != nil {
			b.Fatal(err)
		}
		bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:9")}}}})
		if err != nil {
			b.Fatal(err)
		}
		legs = append(legs, LegConfig{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")})
		if err := ResolvePorts(legs); err != nil {
			b.Fatal(err)
		}
		f, err := NewForwarder(Config{Legs: legs}, bal)
		if err != nil {
			b.Fatal(err)
		}
		srv := NewServerWith(f, Options{Loops: 1, Limits: pool.Limits{}})
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- srv.Run(runCtx) }()
		defer func() { cancel(); <-errc }()
		<-srv.Ready()
		addr := legs[0].Addr.String()
		msg := sip("OPTIONS sip:"+addr+";transport=ws SIP/2.0",
			"Via: SIP/2.0/WS "+wsHost+";branch=z9hG4bK-bench;rport", "Max-Forwards: 70",
			"From: <sip:a@example.com>;tag=f", "To: <sip:"+addr+">", "Call-ID: bench@x",
			"CSeq: 1 OPTIONS", "Content-Length: 0")
		run(b, "ws://"+addr, msg, "SIP/2.0 200 OK")
	})

	b.Run("library", func(b *testing.B) {
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"sip"}})
			if err != nil {
				return
			}
			defer c.CloseNow()
			buf := make([]byte, 4096)
			for {
				typ, rd, err := c.Reader(context.Background())
				if err != nil {
					return
				}
				n := 0
				for {
					k, err := rd.Read(buf[n:])
					n += k
					if err != nil {
						break
					}
				}
				if err := c.Write(context.Background(), typ, buf[:n]); err != nil {
					return
				}
			}
		}))
		defer echo.Close()
		run(b, "ws"+strings.TrimPrefix(echo.URL, "http"), optionsReq(wsHost, "bench", 1), "OPTIONS ")
	})
}
