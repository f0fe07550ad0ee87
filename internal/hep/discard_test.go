package hep

import "time"

var zeroTime time.Time

// discard takes what the queue holds and gives it back unsent, as Run
// would after sending it.
func (s *Sender) discard() {
	for s.queue.take() != nil {
	}
	s.queue.release()
}
