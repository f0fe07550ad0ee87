package main

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
)

// errSample is a sample line of the Prometheus text format that does not
// parse.
var errSample = errors.New("bad sample line")

// counters are the counter samples of one /metrics scrape, by series
// ("name" or "name{labels}" as written).
type counters map[string]float64

// parseCounters reads the Prometheus text exposition format (version
// 0.0.4) and keeps the samples of metrics typed counter, and of untyped
// ones whose name ends in _total. Comments other than # TYPE, blank lines
// and other types are skipped; a sample line that does not parse is an
// error.
func parseCounters(r io.Reader) (counters, error) {
	types := map[string]string{}
	out := counters{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#"); ok {
			f := strings.Fields(rest)
			if len(f) >= 3 && f[0] == "TYPE" {
				types[f[1]] = f[2]
			}
			continue
		}
		series, name, value, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		typ, typed := types[name]
		if typ == "counter" || (!typed && strings.HasSuffix(name, "_total")) {
			out[series] += value
		}
	}
	return out, sc.Err()
}

// parseSample splits `name{labels} value [timestamp]`; labels may hold
// spaces and braces inside quoted values.
func parseSample(line string) (series, name string, value float64, err error) {
	end := strings.IndexAny(line, "{ \t")
	if end <= 0 {
		return "", "", 0, errSample
	}
	name = line[:end]
	if line[end] == '{' {
		if end = closingBrace(line, end+1); end < 0 {
			return "", "", 0, errSample
		}
		end++
	}
	series = line[:end]
	f := strings.Fields(line[end:])
	if len(f) == 0 || len(f) > 2 {
		return "", "", 0, errSample
	}
	if value, err = strconv.ParseFloat(f[0], 64); err != nil {
		return "", "", 0, errSample
	}
	return series, name, value, nil
}

// closingBrace returns the index of the '}' that closes a label set begun
// before from, skipping quoted values (with their \-escapes); -1 if none.
func closingBrace(line string, from int) int {
	inQuote, esc := false, false
	for i := from; i < len(line); i++ {
		c := line[i]
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			inQuote = !inQuote
		case c == '}' && !inQuote:
			return i
		}
	}
	return -1
}

// nameOf is the metric name of a series.
func nameOf(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

// delta is after − before per series, for the series present after (a
// series new in after counts from 0); series that did not move are left
// out.
func delta(before, after counters) counters {
	d := counters{}
	for s, v := range after {
		if x := v - before[s]; x != 0 {
			d[s] = x
		}
	}
	return d
}

// class sorts siplb's counters into what the report adds up. Only siplb_*
// counters are read; what a name means is told by words in it, so that
// counters added later (a flood detector's, a scanner filter's, a reply
// rate limit's) are counted without this tool knowing them.
type class uint8

const (
	cOther     class = iota
	cForwarded       // siplb_*forwarded*: requests and responses sent on
	cDropped         // siplb_*drop*, *block*, *reject*, *filter*, *limit*, *flood*, *scanner*
	cReceived        // siplb_*received*
	cReplied         // siplb_replies* (without a drop word): stateless replies siplb sent itself
)

var classNames = [...]string{"other", "forwarded", "dropped", "received", "replied"}

func (c class) String() string { return classNames[c] }

// dropWords mark a counter of datagrams neither forwarded nor answered.
var dropWords = []string{"drop", "block", "reject", "filter", "limit", "flood", "scanner", "discard"}

func classOf(series string) class {
	name := nameOf(series)
	if !strings.HasPrefix(name, "siplb_") {
		return cOther
	}
	if strings.Contains(name, "forwarded") {
		return cForwarded
	}
	// Before the replies: siplb_replies_limited_total is replies not sent.
	for _, w := range dropWords {
		if strings.Contains(name, w) {
			return cDropped
		}
	}
	switch {
	case strings.HasPrefix(name, "siplb_replies"):
		return cReplied
	case strings.Contains(name, "received"):
		return cReceived
	}
	return cOther
}

// sums adds up d by class; used lists the series behind every class other
// than cOther, sorted.
func sums(d counters) (by [len(classNames)]float64, used []string) {
	for s, v := range d {
		c := classOf(s)
		by[c] += v
		if c != cOther {
			used = append(used, s)
		}
	}
	slices.Sort(used)
	return by, used
}
