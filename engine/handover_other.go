//go:build !linux

package engine

func (b *batchSock) stopReading() {}
