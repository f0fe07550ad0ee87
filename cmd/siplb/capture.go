package main

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/parser"
)

// startCapture opens the HEP sender of cfg.Capture, hands it to fwd and
// runs it until ctx is done. It returns nil, and does nothing, when capture
// is off.
func startCapture(ctx context.Context, cfg *CaptureConfig, fwd *engine.Forwarder, log *slog.Logger) (*hep.Sender, error) {
	addr, on := cfg.collector()
	if !on {
		return nil, nil
	}
	s, err := hep.NewSender(hep.Config{Collector: addr, CaptureID: cfg.CaptureID, Password: cfg.Password, QueueSize: cfg.QueueSize, Transport: cfg.Transport,
		NoGSO: cfg.UDPGSO != nil && !*cfg.UDPGSO})
	if err != nil {
		return nil, invalid("capture.hep", "%v", err)
	}
	fwd.SetCapture(s)
	go s.Run(ctx)
	log.Info("capturing to a HEP collector", "collector", addr.String(), "transport", cmp.Or(cfg.Transport, "udp"), "capture_id", cfg.CaptureID, "queue_size", cfg.QueueSize, "udp_gso", s.Stats().GSO)
	return s, nil
}

// probeCapture is a balance.ProbeSender that sends a health probe, then
// mirrors it to the capture sender: probes do not pass through the
// Forwarder (their UDP answers do, and are captured there).
type probeCapture struct {
	send balance.ProbeSender
	cap  *hep.Sender
	from [balance.NumTransports]netip.AddrPort // the leg a probe of each transport leaves from (the first one)
}

// newProbeCapture wraps send, unless s is nil (capture off).
func newProbeCapture(send balance.ProbeSender, s *hep.Sender, legs []*engine.Leg) balance.ProbeSender {
	if s == nil {
		return send
	}
	p := &probeCapture{send: send, cap: s}
	for i := len(legs) - 1; i >= 0; i-- {
		p.from[legs[i].Transport] = legs[i].Addr
	}
	return p
}

func (p *probeCapture) SendProbe(to *balance.Backend, msg []byte) error {
	at := time.Now()
	if err := p.send.SendProbe(to, msg); err != nil {
		return err
	}
	proto := hep.ProtoTCP
	if to.Transport == balance.UDP {
		proto = hep.ProtoUDP
	}
	var m parser.Message
	var callID []byte
	if parser.Parse(&m, msg) == nil {
		callID = m.CallID()
	}
	pkt := hep.Packet{Time: at, Src: p.from[to.Transport], Dst: to.Addr, IPProto: proto, CorrelationID: callID, Payload: msg}
	p.cap.Capture(&pkt, nil)
	return nil
}

// captureStats returns s's counts for the metrics, nil when capture is off.
func captureStats(s *hep.Sender) func() hep.Stats {
	if s == nil {
		return nil
	}
	return s.Stats
}
