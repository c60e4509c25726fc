package share

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	mobymount "github.com/moby/moby/api/types/mount"
)

func TestParseBind(t *testing.T) {
	cases := []struct {
		spec string
		want mobymount.Mount
		err  string
	}{
		{"/h:/c", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c"}, ""},
		{"/h:/c:ro", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true}, ""},
		{"/h:/c:rw", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c"}, ""},
		{"/h:/c:ro,Z", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true}, ""},
		{"/h:/c:z", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c"}, ""},
		{"data:/c", mobymount.Mount{Type: "volume", Source: "data", Target: "/c"}, ""},
		{"data:/c:ro,nocopy", mobymount.Mount{Type: "volume", Source: "data", Target: "/c", ReadOnly: true, VolumeOptions: &mobymount.VolumeOptions{NoCopy: true}}, ""},
		{"/h:/c:nocopy", mobymount.Mount{}, "invalid volume specification: '/h:/c:nocopy': nocopy applies to volumes only"},
		{"/c", mobymount.Mount{Type: "volume", Target: "/c"}, ""},
		{"/h:c", mobymount.Mount{}, "invalid volume specification: '/h:c': invalid mount config for type \"bind\": invalid mount path: 'c' mount path must be absolute"},
		{"/h:/c:bogus", mobymount.Mount{}, "invalid mode: bogus"},
		{"/h:/", mobymount.Mount{}, "destination can't be '/'"},
		{"./rel:/c", mobymount.Mount{}, "includes invalid characters for a local volume name"},
		{"../x:/c", mobymount.Mount{}, "includes invalid characters for a local volume name"},
		{"a:/c", mobymount.Mount{}, "includes invalid characters"}, // one character: too short
		{":/c", mobymount.Mount{}, "invalid volume specification: ':/c'"},
		{"/a:/b:ro:x", mobymount.Mount{}, "invalid volume specification"},
		{"", mobymount.Mount{}, "invalid volume specification"},
	}
	for _, c := range cases {
		got, err := ParseBind(c.spec)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParseBind(%q) = %v, want invalid argument with %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseBind(%q) = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
}

func TestParseMountFlag(t *testing.T) {
	cases := []struct {
		val  string
		want mobymount.Mount
		err  string
	}{
		{"type=bind,source=/h,target=/c", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c"}, ""},
		{"type=bind,src=/h,dst=/c,readonly", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true}, ""},
		{"type=bind,src=/h,destination=/c,ro=false", mobymount.Mount{Type: "bind", Source: "/h", Target: "/c"}, ""},
		{"source=data,target=/c,readonly=1", mobymount.Mount{Type: "volume", Source: "data", Target: "/c", ReadOnly: true}, ""},
		{"type=volume,target=/c", mobymount.Mount{Type: "volume", Target: "/c"}, ""},
		{"type=volume,src=v,target=/c,volume-label=a=b,volume-nocopy", mobymount.Mount{Type: "volume", Source: "v", Target: "/c",
			VolumeOptions: &mobymount.VolumeOptions{Labels: map[string]string{"a": "b"}, NoCopy: true}}, ""},
		{"type=bind,target=/c", mobymount.Mount{}, "source is required"},
		{"type=bind,source=/h", mobymount.Mount{}, "target is required"},
		{"type=tmpfs,target=/c", mobymount.Mount{}, `mount type "tmpfs" is not supported by Berth`},
		{"type=bind,source=/h,target=/c,bogus=1", mobymount.Mount{}, "unexpected key 'bogus' in 'bogus=1'"},
		{"type=bind,source", mobymount.Mount{}, "invalid field 'source' must be a key=value pair"},
		{"type=bind,source=/h,target=/c,readonly=maybe", mobymount.Mount{}, "invalid value for readonly: maybe"},
	}
	for _, c := range cases {
		got, err := ParseMountFlag(c.val)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseMountFlag(%q) = %v, want %q", c.val, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseMountFlag(%q) = %+v, %v; want %+v", c.val, got, err, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	host := t.TempDir()
	file := filepath.Join(host, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(
		[]string{host + "/:/src:ro", "cache:/cache"},
		[]mobymount.Mount{{Type: "volume", Source: "labelled", Target: "/l", VolumeOptions: &mobymount.VolumeOptions{Labels: map[string]string{"k": "v"}}}},
		[]string{"/anon", "/src"}, // /src is covered by the bind: dropped
		st)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("Resolve = %+v, want 4 mounts", got)
	}
	if b := got[0]; b.Type != "bind" || b.HostPath != host || b.Target != "/src" || !b.ReadOnly || b.Spec != host+"/:/src:ro" {
		t.Errorf("bind = %+v", b)
	}
	if v := got[1]; v.Type != "volume" || v.Source != "cache" || v.HostPath != filepath.Join(st.Dir(), "cache", "_data") || v.Anonymous {
		t.Errorf("named volume = %+v", v)
	}
	if l, err := st.Get("labelled"); err != nil || l.Labels["k"] != "v" {
		t.Errorf("--mount volume-label: %+v, %v", l, err)
	}
	if a := got[3]; !a.Anonymous || len(a.Source) != 64 || a.Target != "/anon" {
		t.Errorf("anonymous volume = %+v", a)
	}
	for _, dir := range []string{got[1].HostPath, got[3].HostPath} {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("volume data directory %s: %v", dir, err)
		}
	}

	// Errors: nothing made.
	before, _ := st.List()
	for _, c := range []struct {
		binds  []string
		mounts []mobymount.Mount
		want   string
	}{
		{[]string{"newvol:/x", host + "/missing:/y"}, nil, "bind source path does not exist: " + host + "/missing"},
		{[]string{file + ":/y"}, nil, "is not a directory"},
		{[]string{host + ":/x", "other:/x/"}, nil, "Duplicate mount point: /x"},
		{nil, []mobymount.Mount{{Type: "bind", Source: "rel", Target: "/x"}}, "mount path must be absolute"},
		{nil, []mobymount.Mount{{Type: "volume", Source: "../../etc", Target: "/x"}}, "invalid characters for a local volume name"},
		{nil, []mobymount.Mount{{Type: "tmpfs", Target: "/x"}}, "not supported"},
	} {
		_, err := Resolve(c.binds, c.mounts, nil, st)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Resolve(%q, %+v) = %v, want invalid argument with %q", c.binds, c.mounts, err, c.want)
		}
	}
	if after, _ := st.List(); len(after) != len(before) {
		t.Errorf("a failed Resolve made volumes: %d before, %d after", len(before), len(after))
	}
}

func TestPlan(t *testing.T) {
	got := Plan([]Mount{{HostPath: "/a"}, {HostPath: "/b", ReadOnly: true}})
	if len(got) != 2 || got[0].Tag != "berth0" || got[0].HostPath != "/a" || got[0].ReadOnly || got[1].Tag != "berth1" || !got[1].ReadOnly {
		t.Errorf("Plan = %+v", got)
	}
}

func TestCopyUp(t *testing.T) {
	vols, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	mounts, err := Resolve([]string{host + ":/b", "named:/n", "quiet:/q:nocopy", "ro:/r:ro"},
		[]mobymount.Mount{{Type: mobymount.TypeVolume, Target: "/m", VolumeOptions: &mobymount.VolumeOptions{NoCopy: true}}},
		[]string{"/anon"}, vols)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"/b": false, "/n": true, "/q": false, "/r": false, "/m": false, "/anon": true}
	for _, m := range mounts {
		if got, ok := want[m.Target]; !ok || m.CopyUp() != got {
			t.Errorf("%s (%s): CopyUp %v, want %v", m.Target, m.Type, m.CopyUp(), got)
		}
		delete(want, m.Target)
	}
	if len(want) != 0 {
		t.Errorf("mounts missing: %v", want)
	}
}
