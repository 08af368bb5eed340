package server

import (
	"net/http/httptest"
	"testing"

	"github.com/sostenuto/sostenuto/index"
)

// A write's X-Index-LSN is answered and the newest one this node
// acknowledged is kept (an older one never lowers it); until the local
// index applies it, cached chat retrievals are re-checked.
func TestAckWriteKeepsTheNewest(t *testing.T) {
	s := &Server{}
	if s.indexBehindWrites() {
		t.Fatal("behind before any write")
	}
	for _, lsn := range []index.LSN{0x10_0000, 0x0F_0000} {
		rec := httptest.NewRecorder()
		s.ackWrite(rec, lsn)
		if rec.Header().Get(HeaderIndexLSN) != lsn.String() {
			t.Fatalf("header %q", rec.Header().Get(HeaderIndexLSN))
		}
	}
	if s.acked.Load() != 0x10_0000 || !s.indexBehindWrites() {
		t.Fatalf("acked %x, behind %v", s.acked.Load(), s.indexBehindWrites())
	}
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	live := index.NewLive(e)
	s.engine = live
	if !s.indexBehindWrites() {
		t.Fatal("an index at 0 is not behind 0/100000")
	}
	if err := live.Engine().Apply(index.Ops{Position: index.Position{LSN: 0x10_0000}}); err != nil {
		t.Fatal(err)
	}
	if s.indexBehindWrites() {
		t.Fatal("an index at the acknowledged write is still behind")
	}
}
