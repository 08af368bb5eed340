package bench

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxFunctionLines is the longest a non-test function may be (STYLE.md:
// a function does one thing; the redesign of issue 15 set the bound).
const maxFunctionLines = 80

// function is one function or method of the repository and its length.
type function struct {
	name  string // file:Receiver.Name
	lines int
}

// sourceFiles lists the repository's non-test, hand-written Go files.
func sourceFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") && !strings.HasSuffix(p, ".pb.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// functionsOf parses one file and measures its functions.
func functionsOf(t *testing.T, fset *token.FileSet, root, path string) (fns []function, lines int) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, path)
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
		fns = append(fns, function{name: rel + ":" + receiver(fd) + fd.Name.Name, lines: n})
	}
	return fns, strings.Count(string(src), "\n")
}

// receiver is "Type." for a method, "" for a function.
func receiver(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "."
	}
	return ""
}

// TestFunctionLengths holds every non-test function of the repository to
// maxFunctionLines. With -v it prints the lines of each package and the ten
// longest functions (the figures issue 15's note reports):
//
//	go test ./bench -run TestFunctionLengths -v
func TestFunctionLengths(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var all []function
	perPackage := map[string]int{}
	for _, p := range sourceFiles(t, root) {
		fns, lines := functionsOf(t, fset, root, p)
		all = append(all, fns...)
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		perPackage[rel] += lines
	}
	if len(all) < 100 {
		t.Fatalf("found only %d functions under %s: wrong root?", len(all), root)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lines > all[j].lines })
	for _, f := range all {
		if f.lines > maxFunctionLines {
			t.Errorf("%s is %d lines (at most %d): split it into named steps", f.name, f.lines, maxFunctionLines)
		}
	}
	pkgs := make([]string, 0, len(perPackage))
	for p := range perPackage {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		t.Logf("%6d lines  %s", perPackage[p], p)
	}
	for _, f := range all[:min(10, len(all))] {
		t.Logf("%4d  %s", f.lines, f.name)
	}
}
