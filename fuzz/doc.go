// Package fuzz holds the fuzz targets of the parser: FuzzParse, FuzzFrame
// and FuzzForward, seeded with every file under parser/testdata and the
// messages in seeds_test.go. "go test ./fuzz" runs the seeds as unit tests;
// "go test -run '^$' -fuzz '^FuzzParse$' ./fuzz" fuzzes one target.
package fuzz
