// Package fuzz holds the fuzz targets: FuzzParse, FuzzFrame and FuzzEdits
// over the parser, and FuzzForward over the whole forwarding decision
// (engine.Forwarder), seeded with every file under parser/testdata, the
// messages in seeds_test.go and, for FuzzForward, dialogs run through the
// Forwarder (forward_test.go). "go test ./fuzz" runs the seeds as unit tests;
// "go test -run '^$' -fuzz '^FuzzParse$' ./fuzz" fuzzes one target.
package fuzz
