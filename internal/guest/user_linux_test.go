package guest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/internal/usertest"
)

// TestResolveUserTable: the guest reads the container's files and answers
// the shared table as the host does (engine/rootfs runs the same table).
func TestResolveUserTable(t *testing.T) {
	fixtures, cases := usertest.Table(t)
	dirs := map[string]string{}
	for name, f := range fixtures {
		dir := t.TempDir()
		for file, content := range map[string]*string{"passwd": f.Passwd, "group": f.Group} {
			if content == nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, file), []byte(*content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs[name] = dir
	}
	for _, c := range cases {
		dir := dirs[c.Fixture]
		got, err := resolveUser(c.Spec, filepath.Join(dir, "passwd"), filepath.Join(dir, "group"), c.Extra)
		usertest.Check(t, c, got, err)
	}
}
