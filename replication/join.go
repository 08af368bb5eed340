package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
)

// JoinVia asks the cluster reachable at base (any member's API) to add
// this node, presenting the cluster secret, and retries until this node is
// a member with a leader. A node restarting with its Raft state is already
// a member and asks nothing.
func (n *Node) JoinVia(ctx context.Context, base, secret string) error {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		if n.isMember() {
			return nil
		}
		err := n.askToJoin(ctx, strings.TrimSuffix(base, "/"), secret)
		if err == nil {
			n.cfg.Logger.Info("joined the cluster", "component", "replication", "via", base)
			return nil
		}
		n.cfg.Logger.Warn("joining the cluster failed; retrying", "component", "replication", "via", base, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (n *Node) isMember() bool {
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return false
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.ID) {
			return true
		}
	}
	return false
}

func (n *Node) askToJoin(ctx context.Context, base, secret string) error {
	body := map[string]string{"id": n.cfg.ID, "raft_address": n.cfg.RaftAdvertise, "http_address": n.cfg.HTTPAddr}
	return postCluster(ctx, base+"/api/cluster/nodes", secret, body, http.StatusOK)
}

// postCluster POSTs a JSON body to another node's cluster endpoint with the
// cluster secret and expects want.
func postCluster(ctx context.Context, url, secret string, body any, want int) error {
	raw, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Sostenuto-Cluster-Secret", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

func (n *Node) askLeaderToRepair(ctx context.Context, ids []index.ID, secret string) error {
	st := n.Status()
	if st.LeaderHTTP == "" {
		return ErrNotLeader
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = uuid.UUID(id).String()
	}
	return postCluster(ctx, st.LeaderHTTP+"/api/cluster/repair", secret, map[string]any{"chunk_ids": list}, http.StatusNoContent)
}
