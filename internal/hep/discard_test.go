package hep

import "time"

var zeroTime time.Time

// discard takes what the rings hold and gives it back unsent, as Run
// would after sending it.
func (s *Sender) discard() {
	for _, r := range []*ring{s.small, s.large} {
		for sl := r.take(); sl != nil; sl = r.take() {
			r.release(sl)
		}
	}
}
