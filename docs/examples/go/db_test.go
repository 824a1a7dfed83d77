// db_test.go - one fresh PostgreSQL server for this package's tests.
package db

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"

	_ "github.com/lib/pq"
)

var db *sql.DB

func TestMain(m *testing.M) {
	// --json: Go's URL parser refuses the %2F-encoded socket path of the
	// URL, so connect with the key=value "conninfo" instead.
	out, err := exec.Command("pgsnap", "new", "--json").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgsnap new:", err)
		os.Exit(1)
	}
	var clone struct {
		ID       string `json:"id"`
		Conninfo string `json:"conninfo"`
	}
	if err := json.Unmarshal(out, &clone); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	db, err = sql.Open("postgres", clone.Conninfo+" sslmode=disable")
	code := 1
	if err == nil {
		code = m.Run()
		db.Close()
	}
	exec.Command("pgsnap", "rm", clone.ID).Run()
	os.Exit(code)
}

func TestQuery(t *testing.T) {
	var n int
	if err := db.QueryRow("select 40 + 2").Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
}

func TestTable(t *testing.T) {
	if _, err := db.Exec("create table items (id serial primary key, name text)"); err != nil {
		t.Fatal(err)
	}
	var id int
	if err := db.QueryRow("insert into items (name) values ('x') returning id").Scan(&id); err != nil || id != 1 {
		t.Fatalf("got %d, %v", id, err)
	}
}
