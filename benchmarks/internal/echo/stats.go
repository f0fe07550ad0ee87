package echo

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// method indexes the per-socket counters.
type method uint8

const (
	mINVITE method = iota
	mACK
	mBYE
	mCANCEL
	mOPTIONS
	mREGISTER
	mPRACK
	mUPDATE
	mINFO
	mMESSAGE
	mNOTIFY
	mSUBSCRIBE
	mPUBLISH
	mREFER
	mOther    // an unknown method, answered 501
	mResponse // a response reached the echo; dropped
	mInvalid  // not SIP; dropped
	mFlood    // also counted: a flood-marked message (FloodMark), any of the above
	numMethods
)

// methodNames are the keys of Stats, indexed by method.
var methodNames = [numMethods]string{
	"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
	"MESSAGE", "NOTIFY", "SUBSCRIBE", "PUBLISH", "REFER", "OTHER", "response", "invalid", "flood",
}

// methodOf maps a request method (case-sensitive, RFC 3261 §7.1) to its counter.
func methodOf(b []byte) method {
	switch string(b) {
	case "INVITE":
		return mINVITE
	case "ACK":
		return mACK
	case "BYE":
		return mBYE
	case "CANCEL":
		return mCANCEL
	case "OPTIONS":
		return mOPTIONS
	case "REGISTER":
		return mREGISTER
	case "PRACK":
		return mPRACK
	case "UPDATE":
		return mUPDATE
	case "INFO":
		return mINFO
	case "MESSAGE":
		return mMESSAGE
	case "NOTIFY":
		return mNOTIFY
	case "SUBSCRIBE":
		return mSUBSCRIBE
	case "PUBLISH":
		return mPUBLISH
	case "REFER":
		return mREFER
	}
	return mOther
}

// Stats counts received messages per listening address ("127.0.0.1:5070"
// for UDP, "tcp://127.0.0.1:5070" for TCP)
// and per method ("INVITE", …, "OTHER" for unknown methods, "response" and
// "invalid" for dropped datagrams). "flood" counts the flood-marked messages
// among them (see FloodMark), so it is not part of a row's total. Keys never
// seen are left out; every listening address is present. It marshals to the
// JSON that sipecho -stats writes.
type Stats map[string]map[string]uint64

// Stats returns a snapshot of the counters. It may be called while Serve runs.
func (s *Server) Stats() Stats {
	st := make(Stats, len(s.socks))
	for _, k := range s.socks {
		st[k.localStr] = k.stats.snapshot()
	}
	for _, l := range s.tcps {
		st[l.localStr] = l.stats.snapshot()
	}
	return st
}

// snapshot returns the methods seen and their counts.
func (c *counters) snapshot() map[string]uint64 {
	per := make(map[string]uint64)
	for i := range c {
		if n := c[i].Load(); n > 0 {
			per[methodNames[i]] = n
		}
	}
	return per
}

// Total returns the number of messages of one method over all addresses.
func (st Stats) Total(method string) uint64 {
	var n uint64
	for _, per := range st {
		n += per[method]
	}
	return n
}

// WriteTable writes st as a table: one row per address, one column per
// method seen anywhere, and a total per row (of messages: "flood" is a
// column but not added to the total).
func (st Stats) WriteTable(w io.Writer) error {
	addrs := make([]string, 0, len(st))
	for a := range st {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	var cols []string
	for _, name := range methodNames {
		if st.Total(name) > 0 {
			cols = append(cols, name)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "address\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprint(tw, "total\t\n")
	for _, a := range addrs {
		fmt.Fprintf(tw, "%s\t", a)
		var sum uint64
		for _, c := range cols {
			fmt.Fprintf(tw, "%d\t", st[a][c])
			if c != methodNames[mFlood] {
				sum += st[a][c]
			}
		}
		fmt.Fprintf(tw, "%d\t\n", sum)
	}
	return tw.Flush()
}
