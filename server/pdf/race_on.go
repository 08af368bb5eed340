//go:build race

package pdf

// The race detector reserves terabytes of shadow address space, so a race
// build (tests only) cannot run the child under an address-space limit.
const raceBuild = true
