package index

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead-log position: where the changefeed,
// the index and a write's X-Index-LSN / min_lsn stand. It is the one LSN
// type of the code base: the store returns it, the replication log carries
// it, the index records it and the search waits for it. Its text form is
// PostgreSQL's "X/Y" (upper-case hexadecimal halves).
type LSN uint64

// ParseLSN reads PostgreSQL's "X/Y" write-ahead-log position.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("lsn %q: want X/Y", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("lsn %q: want X/Y in hexadecimal", s)
	}
	return LSN(h<<32 | l), nil
}

// String writes the position as PostgreSQL does.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// Scan reads a position from PostgreSQL's text form (a pg_lsn column or
// value cast to text), so the store can scan straight into an LSN.
func (l *LSN) Scan(src any) error {
	s, ok := src.(string)
	if !ok {
		return fmt.Errorf("lsn: cannot scan %T", src)
	}
	v, err := ParseLSN(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}
