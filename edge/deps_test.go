package edge

import (
	"os/exec"
	"strings"
	"testing"
)

// The edge imports neither pgx nor raft nor bleve (ARCHITECTURE.md): it
// runs where no database, log or index is.
func TestEdgeDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../cmd/sostenuto-edge").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/jackc/pgx", "github.com/hashicorp/raft", "github.com/blevesearch/bleve"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the edge depends on %s", dep)
			}
		}
	}
}
