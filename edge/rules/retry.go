package rules

// Failure is how an attempt to reach a node failed.
type Failure string

// The failures an edge tells apart.
const (
	// Unreached: the node was not reached (connection refused): nothing
	// of the request was sent.
	Unreached Failure = "unreached"
	// Broken: the connection broke after the request may have been sent.
	Broken Failure = "broken"
)

// RetryAfterFailure reports whether a request whose attempt failed so is
// sent to another node: always when the node was unreached (nothing was
// sent), and when the connection broke only for an idempotent request;
// in both cases only when the body can be sent again (none, or kept).
func RetryAfterFailure(f Failure, idempotent, replayable bool) bool {
	return replayable && (f == Unreached || idempotent)
}

// RetryStatus reports whether an idempotent request the node answered
// with status is sent to another node (when one is left): on 502 and 504,
// the node's proxy failed or timed out. A 503 is not retried: it is the
// node's considered answer (a dependency down, or overloaded), which the
// other nodes share; retrying would multiply the load that caused it.
func RetryStatus(status int, idempotent, replayable bool) bool {
	return idempotent && replayable && (status == 502 || status == 504)
}

// MarkDown reports whether a failure marks the node down until its next
// passing health check (a refused or broken connection).
func MarkDown(f Failure) bool { return f == Unreached || f == Broken }
