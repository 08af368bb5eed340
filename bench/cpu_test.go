package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on
// Linux for every architecture Go supports).
const clockTicks = 100

// reading is what meter saw at one instant: the database's transactions,
// the node's CPU ticks and each database backend's.
type reading struct {
	xacts    int64
	node     int64
	backends map[int]int64
}

// since is the difference r - before: transactions, the node's ticks, and
// the ticks of the backends alive at r (those born since counted from 0).
func (r reading) since(before reading) reading {
	out := reading{xacts: r.xacts - before.xacts, node: r.node - before.node, backends: map[int]int64{}}
	for pid, t := range r.backends {
		out.backends[pid] = t - before.backends[pid]
	}
	return out
}

func (r reading) nodeMs() float64 { return float64(r.node) * 1000 / clockTicks }

func (r reading) backendsMs() float64 {
	var t int64
	for _, v := range r.backends {
		t += v
	}
	return float64(t) * 1000 / clockTicks
}

// cpuTicks is the user and system CPU time a process has used (its
// threads included), in clock ticks; 0 when it cannot be read.
func cpuTicks(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from ")".
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	var user, sys int64
	fmt.Sscan(f[11], &user)
	fmt.Sscan(f[12], &sys)
	return user + sys
}

// backendTicks reads the CPU ticks of every backend of conn's database
// but conn's own (the node's pool, its changefeed's walsender); the
// database must run on this machine.
func backendTicks(ctx context.Context, b *testing.B, conn *pgx.Conn) map[int]int64 {
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]int64{}
	for _, pid := range pids {
		out[int(pid)] = cpuTicks(int(pid))
	}
	return out
}
