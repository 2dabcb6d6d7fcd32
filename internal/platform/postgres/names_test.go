package postgres_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var queryName = regexp.MustCompile(`^-- name: ([A-Z][A-Za-z0-9]+)\n`)

// txControl matches the transaction control statements a pipelined
// transaction sends itself, as pgx does for an ordinary one.
var txControl = regexp.MustCompile(`^(begin|commit|rollback)( isolation level read committed)?$`)

// TestEveryQueryIsNamed keeps the convention that every statement of the
// application starts with "-- name: Name": the name is its span's name
// (SpanName) and what finds it in pg_stat_statements. It reads every
// non-test Go file under internal/ (test harness packages aside) and checks
// each Query, QueryRow, Exec and batch Queue whose SQL is a literal, or a
// concatenation that starts with one (transaction control aside); names
// are unique within a package.
func TestEveryQueryIsNamed(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	seen := map[string]string{} // package/name -> where
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasSuffix(d.Name(), "test") && path != root {
				return filepath.SkipDir // pgtest, apptest, kafkatest, smtptest, moneytest
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			// The SQL is the argument after the context, or a batch's
			// Queue's first.
			arg := 1
			switch sel.Sel.Name {
			case "Query", "QueryRow", "Exec":
			case "Queue":
				arg = 0
			default:
				return true
			}
			if len(call.Args) <= arg {
				return true
			}
			e := call.Args[arg]
			for {
				be, ok := e.(*ast.BinaryExpr)
				if !ok {
					break
				}
				e = be.X
			}
			lit, ok := e.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true // dynamic SQL (migration files, identifiers) is named where it is built
			}
			sql, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Errorf("%s: %v", fset.Position(lit.Pos()), err)
				return true
			}
			checked++
			if txControl.MatchString(sql) {
				return true // named by its first word, as pgx's own are
			}
			m := queryName.FindStringSubmatch(sql)
			if m == nil {
				first, _, _ := strings.Cut(sql, "\n")
				t.Errorf("%s: statement %q does not start with \"-- name: Name\\n\"", fset.Position(lit.Pos()), first)
				return true
			}
			key := filepath.Dir(path) + "/" + m[1]
			if prev, dup := seen[key]; dup {
				t.Errorf("%s: query name %s is used at %s too", fset.Position(lit.Pos()), m[1], prev)
			}
			seen[key] = fset.Position(lit.Pos()).String()
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 60 {
		t.Fatalf("checked only %d statements: the walk missed the code", checked)
	}
}
