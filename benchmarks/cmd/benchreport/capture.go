package main

import "io"

// writeCapture writes siplb as it runs by default against siplb_capture
// (the same configuration with capture.hep mirroring every message to
// hepsink), for the scenarios that ran both at saturation: throughput, CPU
// per unit and what capture adds to it (the sender's goroutine and its
// sends included: they are siplb's CPU); the same at the open-loop rate
// where both ran it. Nothing when no scenario ran both.
func writeCapture(w io.Writer, rep *report) {
	writeOnOff(w, rep, "siplb with capture.hep on (HEPv3 to hepsink) against off (default)", "siplb_capture", "siplb", -1)
}
