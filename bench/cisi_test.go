package bench

import "testing"

func TestLoadCISI(t *testing.T) {
	dir, err := CISIDir()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadCISI(dir)
	if err != nil || len(docs) != 1460 || docs[0].ID != 1 || docs[0].Title == "" || docs[0].Text == "" {
		t.Fatalf("%d docs, first %+v, %v", len(docs), docs[0], err)
	}
	qs, err := LoadCISIQueries(dir)
	if err != nil || len(qs) != 76 {
		t.Fatalf("%d judged queries, %v", len(qs), err)
	}
}
