package balance

// ResolveCached is Resolve from the cache alone, for a data path that must
// not wait on DNS: ok is false when the answer is not cached (or has
// expired), and the caller resolves off the data path, then asks again. A
// cached answer is returned with the error cached with it. It allocates
// nothing when host is passed as a string conversion of bytes at the call
// (the compiler does not copy for a map lookup key).
func (r *Resolver) ResolveCached(host string, port uint16, transport string, secure bool) (ts []Target, err error, ok bool) {
	ts, _, err, ok = r.results.lookup(resolveKey{host: host, transport: transport, port: port, secure: secure}, r.now())
	return ts, err, ok
}
