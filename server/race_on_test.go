//go:build race

package server

// raceSlowdown scales the time bounds of tests: the race detector slows
// the node (and the PDF reader it starts) several times over.
const raceSlowdown = 3
