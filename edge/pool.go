package edge

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// backend is one node behind the edge.
type backend struct {
	url      *url.URL
	name     string
	healthy  atomic.Bool
	inflight atomic.Int64 // requests sent and not finished (bodies read)
}

// pool chooses nodes: among the healthy ones not tried yet, the less busy
// of two picked at random (power of two choices on outstanding requests).
type pool struct {
	backends []*backend
	client   *http.Client
	interval time.Duration
	logger   *slog.Logger
	metrics  *metrics
	mu       sync.Mutex // serializes health rounds
}

func newPool(nodes []*url.URL, interval, timeout time.Duration, logger *slog.Logger, m *metrics) *pool {
	p := &pool{client: &http.Client{Timeout: timeout}, interval: interval, logger: logger, metrics: m}
	for _, u := range nodes {
		p.backends = append(p.backends, &backend{url: u, name: u.Host})
	}
	return p
}

// pick returns a healthy node not in tried; when no node is healthy, any
// node not tried (a node failing its readiness check, its index loading,
// still answers from PostgreSQL, and one that is down fails fast); nil
// when every node was tried.
func (p *pool) pick(tried map[*backend]bool) *backend {
	var cands []*backend
	for _, b := range p.backends {
		if b.healthy.Load() && !tried[b] {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 && p.healthyCount() == 0 {
		for _, b := range p.backends {
			if !tried[b] {
				cands = append(cands, b)
			}
		}
	}
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	i := rand.IntN(len(cands))
	j := rand.IntN(len(cands) - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// byHost returns the backend serving host, if it is healthy.
func (p *pool) byHost(host string) *backend {
	for _, b := range p.backends {
		if b.name == host && b.healthy.Load() {
			return b
		}
	}
	return nil
}

// healthyCount says how many nodes are healthy.
func (p *pool) healthyCount() int {
	n := 0
	for _, b := range p.backends {
		if b.healthy.Load() {
			n++
		}
	}
	return n
}

// down marks b unhealthy after a failed request (passive check); the next
// active check that succeeds brings it back.
func (p *pool) down(b *backend, err error) {
	if b.healthy.Swap(false) {
		p.logger.Warn("node marked down", "component", "edge", "node", b.name, "err", err)
		p.metrics.healthy.WithLabelValues(b.name).Set(0)
	}
}

// check runs one round of active health checks (GET /api/ready on every
// node, in parallel).
func (p *pool) check(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range p.backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := p.probe(ctx, b)
			if was := b.healthy.Swap(ok); was != ok {
				p.logger.Info("node health changed", "component", "edge", "node", b.name, "healthy", ok)
			}
			v := 0.0
			if ok {
				v = 1
			}
			p.metrics.healthy.WithLabelValues(b.name).Set(v)
		}()
	}
	wg.Wait()
}

func (p *pool) probe(ctx context.Context, b *backend) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url.JoinPath("/api/ready").String(), nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// run checks every interval until ctx ends.
func (p *pool) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.check(ctx)
		}
	}
}
