module github.com/gtudp/gtudp

go 1.25

require (
	github.com/benbjohnson/clock v1.3.5
	github.com/google/uuid v1.6.0
	pgregory.net/rapid v1.3.0
)

require go.uber.org/goleak v1.3.0 // indirect
