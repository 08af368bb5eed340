package replication

import (
	"context"

	"github.com/sostenuto/sostenuto/index"
)

// startCompactor runs the index's Compactor over the node's live engine
// (whichever one a base or a restore swapped in) until stop is called;
// Run starts it and stops it when it ends. The FSM itself never compacts.
func (n *Node) startCompactor(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	c := index.NewCompactor(n.Live, 0, n.cfg.Logger)
	go func() {
		defer close(done)
		c.Run(ctx) //nolint:errcheck // Run ends only with its context
	}()
	return func() { cancel(); <-done }
}
