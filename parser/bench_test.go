package parser_test

import (
	"testing"

	"github.com/siplb/siplb/parser"
)

func BenchmarkParse(b *testing.B) {
	for _, kind := range []string{"invite_sdp", "register_auth", "response_rr", "compact", "tortuous_ws", "long_values"} {
		b.Run(kind, func(b *testing.B) {
			msg := readTestdata(b, "valid/"+kind+".sip")
			var m parser.Message
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if err := parser.Parse(&m, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("reject", func(b *testing.B) {
		msg := readTestdata(b, "invalid/missing_call_id.sip")
		var m parser.Message
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := parser.Parse(&m, msg); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

// BenchmarkAppendForward measures the request edit of a stateless proxy:
// parse, push Via, decrement Max-Forwards, add Record-Route, serialise.
func BenchmarkAppendForward(b *testing.B) {
	msg := readTestdata(b, "valid/invite_sdp.sip")
	var m parser.Message
	e := parser.Edits{
		PushVia:     []byte("SIP/2.0/UDP 192.0.2.100:5060;branch=z9hG4bK-lb-1"),
		MaxForwards: true,
		RecordRoute: []byte("<sip:192.0.2.100:5060;lr>"),
	}
	dst := make([]byte, 0, 4096)
	b.Run("edit", func(b *testing.B) {
		if err := parser.Parse(&m, msg); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			dst = m.AppendForward(dst[:0], &e)
		}
	})
	b.Run("parse+edit", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := parser.Parse(&m, msg); err != nil {
				b.Fatal(err)
			}
			dst = m.AppendForward(dst[:0], &e)
		}
	})
	b.Run("response", func(b *testing.B) {
		resp := readTestdata(b, "valid/response_rr.sip")
		re := parser.Edits{RemoveTopVia: true}
		b.ReportAllocs()
		b.SetBytes(int64(len(resp)))
		for b.Loop() {
			if err := parser.Parse(&m, resp); err != nil {
				b.Fatal(err)
			}
			dst = m.AppendForward(dst[:0], &re)
		}
	})
}

func BenchmarkFrame(b *testing.B) {
	msg := readTestdata(b, "valid/invite_sdp.sip")
	stream := append(append([]byte(nil), msg...), msg...)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		n, kind, err := parser.Frame(stream, parser.Limits{})
		if err != nil || kind != parser.FrameMessage || n != len(msg) {
			b.Fatal(n, kind, err)
		}
	}
}
