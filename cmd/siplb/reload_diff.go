package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// What a reload may change while siplb runs. A reload compares the new
// configuration with the running one key by key: a change under a key
// listed here is applied, a change anywhere else refuses the whole reload,
// naming every such key and its line ("line 3: listen[1].address: needs a
// restart"), and nothing is applied. Nothing is silently ignored.
//
// Live, and how:
//   - pools: the Balancer's table is rebuilt and swapped in one step
//     (members, weights, priorities, states, algorithms, backend_sources),
//     and the health checks are reconfigured; except what needs a restart
//     below (poolRestarts);
//   - engine.branch_secret, engine.previous_secrets, engine.secret_grace:
//     the key ring is rotated (rotate.go);
//   - admin.token, admin.token_file: the next API request needs the new
//     token (the file is read again at each reload);
//   - log.level: the level of every logger;
//   - shutdown: read when the drain begins.
//
// Restart: listen (the sockets, their names, pools, TLS files, ACLs: the
// certificates themselves are re-read at every reload), engine.loops,
// udp_io, record_route, retry_after, max_header, max_body,
// rewrite_contact, force_rewrite, state_dir (the Forwarder and the event
// loops are built once), streams (limits given to the engine at start),
// dns (the resolver), routing (the Forwarder's next hops), security (the
// guard is built once: its flood detector's tables and limiters), admin.listen,
// log.format (the handler), cluster (the memberlist node is made once; a new
// branch secret is still shared live, rotate.go), capture (the HEP sender).
var liveKeys = []string{
	"pools",
	"engine.branch_secret", "engine.previous_secrets", "engine.secret_grace",
	"admin.token", "admin.token_file",
	"log.level",
	"shutdown",
}

// restartKey is a key a reload changed that needs a restart, and why when
// the key alone does not say it.
type restartKey struct {
	key, why string
}

// restartError refuses a reload: the keys that need a restart, each with
// its line in the new file where it has one.
type restartError struct {
	keys  []restartKey
	lines []int // 0: no line
}

func (e *restartError) Error() string {
	var b strings.Builder
	for i, k := range e.keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.lines[i] > 0 {
			fmt.Fprintf(&b, "line %d: ", e.lines[i])
		}
		b.WriteString(k.key + ": needs a restart")
		if k.why != "" {
			b.WriteString(" (" + k.why + ")")
		}
	}
	return b.String()
}

// needsRestart compares a new configuration (whose document is doc) with
// the running one and returns a *restartError naming every key that
// changed and cannot change live, or nil.
func needsRestart(running, next *Config, doc *yaml.Node) error {
	var keys []restartKey
	walkDiff(reflect.ValueOf(forDiff(running)).Elem(), reflect.ValueOf(forDiff(next)).Elem(), "", "", &keys)
	keys = append(keys, poolRestarts(running, next)...)
	if len(keys) == 0 {
		return nil
	}
	e := &restartError{keys: keys, lines: make([]int, len(keys))}
	for i, k := range keys {
		if doc != nil {
			e.lines[i] = lineOf(doc, k.key)
		}
	}
	return e
}

// forDiff returns a copy of c with the sections whose zero values mean
// defaults filled in, so that writing out a default is no change.
func forDiff(c *Config) *Config {
	d := *c
	d.Streams = c.Streams.Defaults()
	d.Security = c.Security.Defaults()
	return &d
}

// isLive reports whether a key path with its indices removed
// ("pools[].backends[].weight") is, or is under, a key of liveKeys.
func isLive(norm string) bool {
	for _, k := range liveKeys {
		if norm == k || strings.HasPrefix(norm, k+".") || strings.HasPrefix(norm, k+"[") {
			return true
		}
	}
	return false
}

// walkDiff appends to out the keys under path (norm: path without its
// indices) where a and b differ and that are not live. A list that grew or
// shrank names the first element one of them lacks; a map that changed is
// named as a whole.
func walkDiff(a, b reflect.Value, path, norm string, out *[]restartKey) {
	if norm != "" && isLive(norm) {
		return
	}
	switch a.Kind() {
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() != b.IsNil():
			*out = append(*out, restartKey{key: path})
		default:
			walkDiff(a.Elem(), b.Elem(), path, norm, out)
		}
	case reflect.Struct:
		fields := 0
		for i := range a.NumField() {
			f := a.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			fields++
			p, n := name, name
			if path != "" {
				p, n = path+"."+name, norm+"."+name
			}
			walkDiff(a.Field(i), b.Field(i), p, n, out)
		}
		if fields == 0 && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, restartKey{key: path})
		}
	case reflect.Slice:
		if elem := a.Type().Elem(); elem.Kind() != reflect.Struct && (elem.Kind() != reflect.Pointer || elem.Elem().Kind() != reflect.Struct) {
			// A list of values (addresses, CIDRs, secrets) is one key.
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				*out = append(*out, restartKey{key: path})
			}
			return
		}
		for i := range max(a.Len(), b.Len()) {
			p := fmt.Sprintf("%s[%d]", path, i)
			if i >= a.Len() || i >= b.Len() {
				*out = append(*out, restartKey{key: p, why: lengthWhy(a.Len(), b.Len())})
				return
			}
			walkDiff(a.Index(i), b.Index(i), p, norm+"[]", out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, restartKey{key: path})
		}
	}
}

func lengthWhy(was, now int) string {
	if now > was {
		return "added"
	}
	return "removed"
}

// poolRestarts names what a reload cannot change in pools, which are live
// otherwise:
//   - the DNS sources of a pool (pools[].discovery): they are looked up by
//     a Discovery made at start;
//   - the static members of a pool that has DNS sources: once DNS answered
//     they are not its members, and a reload keeps the members it has;
//   - the position of a pool that a listener takes its requests to: the
//     engine's legs hold their pool's index (the first pool for a listener
//     without listen[].pool).
func poolRestarts(running, next *Config) []restartKey {
	var out []restartKey
	had := make(map[string]int, len(running.Pools))
	for i, p := range running.Pools {
		had[p.Name] = i
	}
	kept := make(map[string]bool, len(next.Pools))
	for i, p := range next.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		kept[p.Name] = true
		var was PoolConfig
		if j, ok := had[p.Name]; ok {
			was = running.Pools[j]
		}
		switch {
		case (len(p.Discovery) > 0 || len(was.Discovery) > 0) && !reflect.DeepEqual(p.Discovery, was.Discovery):
			out = append(out, restartKey{key: path + ".discovery", why: "DNS sources are looked up by what the start made of them"})
		case len(p.Discovery) > 0 && !reflect.DeepEqual(p.Backends, was.Backends):
			out = append(out, restartKey{key: path + ".backends", why: "the pool takes its members from DNS"})
		}
	}
	for _, p := range running.Pools {
		if !kept[p.Name] && len(p.Discovery) > 0 {
			out = append(out, restartKey{key: "pools", why: fmt.Sprintf("pool %q, fed by DNS, removed", p.Name)})
		}
	}
	poolAt := func(c *Config, name string) int {
		return slices.IndexFunc(c.Pools, func(p PoolConfig) bool { return p.Name == name })
	}
	for i, l := range running.Listen {
		if i >= len(next.Listen) {
			break // a listener removed: named above
		}
		want := 0 // the first pool
		if l.Pool != "" {
			want = poolAt(running, l.Pool)
		}
		name := running.Pools[want].Name
		if at := poolAt(next, name); at != want {
			key := fmt.Sprintf("pools[%d].name", want)
			why := fmt.Sprintf("listen[%d] takes its requests to pool %q, which must stay pools[%d]", i, name, want)
			if !slices.ContainsFunc(out, func(k restartKey) bool { return k.key == key }) {
				out = append(out, restartKey{key: key, why: why})
			}
		}
	}
	return out
}
