package index

import "testing"

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "0/1A2B3C4", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		v, err := ParseLSN(s)
		if err != nil || v.String() != s {
			t.Errorf("%s: %v %s", s, err, v)
		}
	}
	a, _ := ParseLSN("1/0")
	b, _ := ParseLSN("0/FFFFFFFF")
	if a <= b {
		t.Error("LSN order")
	}
	for _, bad := range []string{"", "12", "x/1", "1/2/3", "100000000/0"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
