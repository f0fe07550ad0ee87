module github.com/siplb/siplb/benchmarks

go 1.26.0

require (
	github.com/emiago/sipgo v1.7.2
	github.com/schollz/progressbar/v3 v3.19.1
	github.com/siplb/siplb v0.0.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/term v0.44.0 // indirect
)

replace github.com/siplb/siplb => ../
