module github.com/gtudp/gtudp

go 1.25

require (
	github.com/HdrHistogram/hdrhistogram-go v1.1.2
	github.com/benbjohnson/clock v1.3.5
	github.com/google/uuid v1.6.0
	github.com/vbauerster/mpb/v8 v8.10.2
	github.com/xtaci/kcp-go/v5 v5.6.24
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.37.0
	golang.org/x/term v0.36.0
	pgregory.net/rapid v1.3.0
)

require (
	github.com/VividCortex/ewma v1.2.0 // indirect
	github.com/acarl005/stripansi v0.0.0-20180116102854-5a71ef0e047d // indirect
	github.com/klauspost/cpuid/v2 v2.2.6 // indirect
	github.com/klauspost/reedsolomon v1.12.0 // indirect
	github.com/mattn/go-runewidth v0.0.16 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/tjfoc/gmsm v1.4.1 // indirect
	golang.org/x/crypto v0.36.0 // indirect
	golang.org/x/net v0.38.0 // indirect
)
