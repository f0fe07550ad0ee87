//go:build !linux

package engine

func (b *batchSock) stopReading() {}

func (k *kernelFilter) releaseSockets() {}
