package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication"
)

// Cluster is what the API needs of this node's Raft membership.
type Cluster interface {
	ID() string
	IsLeader() bool
	Status() replication.Status
	Join(ctx context.Context, m replication.Member) error
	Remove(id string) error
	RepairChunks(ctx context.Context, ids []index.ID) error
}

// HeaderClusterSecret carries the shared secret a node presents to join.
const HeaderClusterSecret = "X-Sostenuto-Cluster-Secret"

func (s *Server) clusterRoutes(r chi.Router) {
	r.With(s.requireAuth, s.requireAdmin).Get("/cluster/status", s.clusterStatus)
	r.With(s.adminOrClusterSecret).Post("/cluster/nodes", s.joinNode)
	r.With(s.requireAuth, s.requireAdmin).Delete("/cluster/nodes/{id}", s.removeNode)
	r.With(s.adminOrClusterSecret).Post("/cluster/repair", s.repairChunks)
}

func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !actor(r).IsAdmin() {
			WriteProblem(w, r, NewProblem(http.StatusForbidden, CodeForbidden, "only administrators may do this"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminOrClusterSecret lets in a node presenting the cluster secret, or an
// administrator.
func (s *Server) adminOrClusterSecret(next http.Handler) http.Handler {
	admin := s.requireAuth(s.requireAdmin(next))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get(HeaderClusterSecret); got != "" {
			if s.cfg.ClusterSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.ClusterSecret)) != 1 {
				WriteProblem(w, r, NewProblem(http.StatusUnauthorized, CodeUnauthenticated, "wrong cluster secret"))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		admin.ServeHTTP(w, r)
	})
}

type clusterStatusResponse struct {
	Node       string                    `json:"node"`
	Role       string                    `json:"role"`
	Leader     string                    `json:"leader"`
	Term       uint64                    `json:"term"`
	Ready      bool                      `json:"ready"`
	AppliedLSN *string                   `json:"applied_lsn"`
	LagBytes   *uint64                   `json:"lag_bytes"`
	LagSeconds *float64                  `json:"lag_seconds"`
	Chunks     int                       `json:"chunks"`
	Digest     string                    `json:"digest"`
	Nodes      []replication.ClusterNode `json:"nodes"`
	// Embedding is the embedding models the index holds: each model's
	// vectors (how many, and a digest of the chunks holding one).
	Embedding *clusterEmbedding `json:"embedding,omitempty"`
}

// clusterEmbedding is what clusterStatus says of the index's models.
type clusterEmbedding struct {
	Active          string `json:"active"`
	ActiveDim       int    `json:"active_dim"`
	ActiveVectors   int    `json:"active_vectors"`
	ActiveDigest    string `json:"active_digest"`
	Building        string `json:"building,omitempty"`
	BuildingDim     int    `json:"building_dim,omitempty"`
	BuildingVectors int    `json:"building_vectors,omitempty"`
	BuildingDigest  string `json:"building_digest,omitempty"`
}

// embeddingOf describes e's models.
func embeddingOf(e *index.Engine) *clusterEmbedding {
	m := e.Model()
	out := &clusterEmbedding{Active: m.Active, ActiveDim: m.ActiveDim, Building: m.Building, BuildingDim: m.BuildingDim}
	out.ActiveVectors, out.ActiveDigest = ModelDigest(e.ModelChunks(m.Active))
	if m.Building != "" {
		out.BuildingVectors, out.BuildingDigest = ModelDigest(e.ModelChunks(m.Building))
	}
	return out
}

// ModelDigest is how many chunks hold a vector of a model, and the
// ChunkDigest of their ids (each at version 0).
func ModelDigest(ids []index.ID) (int, string) {
	m := make(map[index.ID]int64, len(ids))
	for _, id := range ids {
		m[id] = 0
	}
	return len(ids), ChunkDigest(m)
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	out := clusterStatusResponse{Node: s.cfg.NodeID, Role: "standalone", Nodes: []replication.ClusterNode{}, Ready: s.engineReady()}
	if s.cluster != nil {
		st := s.cluster.Status()
		out.Role, out.Leader, out.Term = st.Role, st.Leader, st.Term
		if st.Nodes != nil {
			out.Nodes = st.Nodes
		}
		applied := st.Applied.LSN
		appliedText := applied.String()
		out.AppliedLSN = &appliedText
		if pos, err := s.store.WALPosition(r.Context()); err == nil {
			lag := uint64(0)
			if pos > applied {
				lag = uint64(pos - applied)
			}
			out.LagBytes = &lag
			secs := 0.0
			if lag > 0 && !st.CommitTime.IsZero() {
				secs = max(0, time.Since(st.CommitTime).Seconds())
			}
			out.LagSeconds = &secs
		}
	}
	if s.engine != nil {
		e := s.engine.Engine()
		out.Chunks, out.Digest = e.Len(), ChunkDigest(e.ChunkVersions())
		if e.Model().Active != "" {
			out.Embedding = embeddingOf(e)
		}
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, out)
}

// ChunkDigest is a SHA-256 over the sorted (chunk id, version) pairs: two
// nodes (or a node and PostgreSQL) hold the same chunks exactly when their
// digests match.
func ChunkDigest(versions map[index.ID]int64) string {
	ids := make([]index.ID, 0, len(versions))
	for id := range versions {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b index.ID) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	var v [8]byte
	for _, id := range ids {
		h.Write(id[:])
		binary.BigEndian.PutUint64(v[:], uint64(versions[id]))
		h.Write(v[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

type joinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_address"`
	HTTPAddr string `json:"http_address"`
}

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (in joinRequest) validate() error {
	var errs []FieldError
	if !nodeIDPattern.MatchString(in.ID) {
		errs = append(errs, FieldError{"id", "must be 1-64 letters, digits, '.', '_' or '-'"})
	}
	if host, port, err := net.SplitHostPort(in.RaftAddr); err != nil || host == "" || port == "" {
		errs = append(errs, FieldError{"raft_address", "must be host:port"})
	}
	if in.HTTPAddr != "" && !regexp.MustCompile(`^https?://[^/\s]+$`).MatchString(in.HTTPAddr) {
		errs = append(errs, FieldError{"http_address", "must be a base URL like http://10.0.0.2:8080"})
	}
	if len(errs) > 0 {
		return Invalid("the node has invalid fields", errs...)
	}
	return nil
}

// errNoCluster answers membership requests on a node without Raft.
var errNoCluster = NewProblem(http.StatusConflict, CodeConflict, "this node runs without the replicated index (SOSTENUTO_INDEX=false), so it has no cluster")

func (s *Server) joinNode(w http.ResponseWriter, r *http.Request) {
	var in joinRequest
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if err := in.validate(); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if s.cluster == nil {
		WriteProblem(w, r, errNoCluster)
		return
	}
	if !s.cluster.IsLeader() {
		s.forwardToLeader(w, r, in)
		return
	}
	err := s.cluster.Join(r.Context(), replication.Member{ID: in.ID, RaftAddr: in.RaftAddr, HTTPAddr: in.HTTPAddr})
	if err != nil {
		s.WriteError(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, err.Error()))
		return
	}
	s.logger.InfoContext(r.Context(), "node joined", "component", "cluster", "id", in.ID, "raft", in.RaftAddr)
	WriteJSON(w, http.StatusOK, map[string]any{"nodes": s.cluster.Status().Nodes})
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if s.cluster == nil {
		WriteProblem(w, r, errNoCluster)
		return
	}
	known := false
	for _, n := range s.cluster.Status().Nodes {
		known = known || n.ID == id
	}
	if !known {
		WriteProblem(w, r, NewProblem(http.StatusNotFound, CodeNotFound, "no node "+id+" in the cluster"))
		return
	}
	if !s.cluster.IsLeader() {
		s.forwardToLeader(w, r, nil)
		return
	}
	if err := s.cluster.Remove(id); err != nil {
		s.WriteError(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, err.Error()))
		return
	}
	s.logger.InfoContext(r.Context(), "node removed", "component", "cluster", "id", id)
	w.WriteHeader(http.StatusNoContent)
}

// forwardToLeader replays a membership request to the leader's API, with
// the caller's credentials, and relays the answer.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request, body any) {
	st := s.cluster.Status()
	if st.LeaderHTTP == "" || r.Header.Get("X-Sostenuto-Forwarded") != "" {
		WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable,
			fmt.Sprintf("this node is not the leader and does not know the leader's address (leader %q)", st.Leader)))
		return
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, st.LeaderHTTP+r.URL.Path, rd)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	for _, h := range []string{"Authorization", HeaderClusterSecret, "Content-Type"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set("X-Sostenuto-Forwarded", s.cfg.NodeID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		WriteProblem(w, r, NewProblem(http.StatusBadGateway, CodeUnavailable, "the leader did not answer: "+err.Error()))
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 1<<20)) //nolint:errcheck // the client went away
}

type repairRequest struct {
	ChunkIDs []string `json:"chunk_ids"`
}

const maxRepair = 10000

// repairChunks (anti-entropy) has the leader read the chunks' current state
// from PostgreSQL and propose it through the log.
func (s *Server) repairChunks(w http.ResponseWriter, r *http.Request) {
	var in repairRequest
	if err := DecodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if len(in.ChunkIDs) == 0 || len(in.ChunkIDs) > maxRepair {
		s.WriteError(w, r, Invalid("the repair has invalid fields", FieldError{"chunk_ids", fmt.Sprintf("must list 1 to %d chunk ids", maxRepair)}))
		return
	}
	ids := make([]index.ID, len(in.ChunkIDs))
	for i, v := range in.ChunkIDs {
		u, err := uuid.Parse(v)
		if err != nil {
			s.WriteError(w, r, Invalid("the repair has invalid fields", FieldError{"chunk_ids", fmt.Sprintf("%q is not a UUID", v)}))
			return
		}
		ids[i] = index.ID(u)
	}
	if s.cluster == nil {
		WriteProblem(w, r, errNoCluster)
		return
	}
	if !s.cluster.IsLeader() {
		s.forwardToLeader(w, r, in)
		return
	}
	if err := s.cluster.RepairChunks(r.Context(), ids); err != nil {
		s.WriteError(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, err.Error()))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// lagBytes is PostgreSQL's WAL position minus the applied one (-1 when the
// database does not answer).
func (s *Server) lagBytes() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pos, err := s.store.WALPosition(ctx)
	if err != nil {
		return -1
	}
	applied := s.cluster.Status().Applied.LSN
	if pos <= applied {
		return 0
	}
	return float64(pos - applied)
}
