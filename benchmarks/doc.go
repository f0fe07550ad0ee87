// Package benchmarks holds the comparisons run by `make bench`: the siplb
// parser against sipgo's on the same message (parser_test.go). The load
// generator and the backend emulator live in cmd/sipload and cmd/sipecho,
// their cores in internal/load and internal/echo.
//
// This is a module of its own so that nothing it imports (sipgo, the
// progress bar) reaches the product's module.
package benchmarks
