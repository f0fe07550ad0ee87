package engine

// What plain TCP streams leave in gnet's outbound buffers, because their
// peers do not read, is bounded twice: per stream by
// streams.max_write_queue (writeSock closes the stream that leaves more)
// and per event loop by its share of streams.write_budget, the streams
// leaving the most closed first. Everything here is owned by the loop:
// gnet's buffers are written and drained on it alone.

// writeBudget is one loop's account of its streams' outbound buffers.
type writeBudget struct {
	// held is what the loop's streams left buffered when last seen: at
	// each write, and at a recount. Drains between are not seen, so it is
	// an upper bound of the truth, never below it.
	held    int64
	closing int64 // of held: the streams closed for the budget or max_write_queue whose OnClose has not run
	limit   int64 // this loop's share of streams.write_budget
	counted int64 // the coarse time of the last recount
}

// noteQueued records what sc leaves buffered after a write, and closes
// streams while the loop's streams hold more than its share of the
// budget.
func (loop *loopState) noteQueued(sc *streamConn, queued int) {
	w := &loop.wq
	w.held += int64(queued - sc.queued)
	sc.queued = queued
	if w.held-w.closing > w.limit {
		loop.overBudget()
	}
}

// forgetQueued takes a closed stream out of the account (OnClose).
func (loop *loopState) forgetQueued(sc *streamConn) {
	w := &loop.wq
	w.held -= int64(sc.queued)
	if sc.slow {
		w.closing -= int64(sc.queued)
	}
	sc.queued = 0
}

// maxBudgetRounds bounds the scans of one overBudget call.
const maxBudgetRounds = 16

// overBudget recounts the loop's buffers (at most once per tick of the
// coarse clock: a recount reads every stream of the loop), then closes the
// streams that hold the most until what stays is within nine tenths of the
// share, so that the next writes do not land at the limit again at once.
func (loop *loopState) overBudget() {
	w := &loop.wq
	if now := loop.srv.now.Load(); now != w.counted {
		w.counted = now
		w.held, w.closing = 0, 0
		for sc := range loop.conns {
			if sc.c == nil {
				continue
			}
			sc.queued = sc.c.OutboundBuffered()
			w.held += int64(sc.queued)
			if sc.slow {
				w.closing += int64(sc.queued)
			}
		}
	}
	// Each round scans the loop's streams; a call makes a few at most
	// (the next write over the budget goes on).
	for round := 0; round < maxBudgetRounds && w.held-w.closing > w.limit/10*9; round++ {
		var big *streamConn
		for sc := range loop.conns {
			if sc.c != nil && !sc.slow && !sc.closed && (big == nil || sc.queued > big.queued) {
				big = sc
			}
		}
		if big == nil || big.queued == 0 {
			return
		}
		// Its count may be stale (drained since): read it before judging.
		if q := big.c.OutboundBuffered(); q != big.queued {
			w.held += int64(q - big.queued)
			big.queued = q
			continue
		}
		big.slow = true
		w.closing += int64(big.queued)
		loop.s.Counters.WriteBudgetCloses.Add(1)
		big.c.Close()
	}
}
