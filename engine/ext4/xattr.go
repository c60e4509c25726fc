package ext4

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

type xattr struct {
	index uint8
	name  string // without the prefix of its index
	value []byte
}

var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"user.", 1},
	{"trusted.", 4},
	{"security.", 6},
}

const (
	xattrIndexACLAccess  = 2
	xattrIndexACLDefault = 3
	xattrMagic           = 0xEA020000
	inodeXattrSpace      = inodeSize - 128 - extraIsize // magic + entries + values
	blockXattrHeader     = 32
)

// XattrSupported reports whether the writer can store an extended
// attribute of that name: the user., trusted. and security. namespaces and
// POSIX ACLs (system.posix_acl_access, system.posix_acl_default).
func XattrSupported(name string) bool {
	_, _, ok := splitXattrName(name)
	return ok
}

func splitXattrName(name string) (uint8, string, bool) {
	switch name {
	case "system.posix_acl_access":
		return xattrIndexACLAccess, "", true
	case "system.posix_acl_default":
		return xattrIndexACLDefault, "", true
	}
	for _, p := range xattrPrefixes {
		if rest, ok := strings.CutPrefix(name, p.prefix); ok && rest != "" {
			return p.index, rest, true
		}
	}
	return 0, "", false
}

func (x xattr) fullName() string {
	switch x.index {
	case xattrIndexACLAccess:
		return "system.posix_acl_access"
	case xattrIndexACLDefault:
		return "system.posix_acl_default"
	}
	for _, p := range xattrPrefixes {
		if p.index == x.index {
			return p.prefix + x.name
		}
	}
	return x.name
}

func entrySize(x xattr) int { return (16 + len(x.name) + 3) &^ 3 }
func valueSize(x xattr) int { return (len(x.value) + 3) &^ 3 }

// buildXattrs validates the attributes and returns them in on-disk order.
func buildXattrs(m map[string][]byte) ([]xattr, error) {
	if len(m) == 0 {
		return nil, nil
	}
	xs := make([]xattr, 0, len(m))
	for name, v := range m {
		idx, short, ok := splitXattrName(name)
		if !ok {
			return nil, fmt.Errorf("xattr %q: unsupported namespace", name)
		}
		if len(short) > 255 {
			return nil, fmt.Errorf("xattr %q: name too long", name)
		}
		if idx == xattrIndexACLAccess || idx == xattrIndexACLDefault {
			conv, err := aclToDisk(v)
			if err != nil {
				return nil, fmt.Errorf("xattr %q: %v", name, err)
			}
			v = conv
		}
		xs = append(xs, xattr{index: idx, name: short, value: v})
	}
	sort.Slice(xs, func(i, j int) bool {
		a, b := xs[i], xs[j]
		if a.index != b.index {
			return a.index < b.index
		}
		if len(a.name) != len(b.name) {
			return len(a.name) < len(b.name)
		}
		return a.name < b.name
	})
	if _, blk := splitXattrs(xs); len(blk) > 0 {
		total := 4
		for _, x := range blk {
			total += entrySize(x) + valueSize(x)
		}
		if total > blockSize-blockXattrHeader {
			return nil, fmt.Errorf("xattrs need %d bytes, more than one block holds", total+blockXattrHeader)
		}
	}
	return xs, nil
}

// splitXattrs returns the attributes that go into the inode's spare space
// and those that go into the xattr block.
func splitXattrs(xs []xattr) (inline, block []xattr) {
	used := 4 + 4 // magic and the terminating zero entry
	i := 0
	for ; i < len(xs); i++ {
		need := entrySize(xs[i]) + valueSize(xs[i])
		if used+need > inodeXattrSpace {
			break
		}
		used += need
	}
	return xs[:i], xs[i:]
}

// putXattrs encodes entries into region: entries grow from entryStart,
// values from the end of region. valueBase is subtracted from value
// offsets (in-inode offsets count from the first entry).
func putXattrs(region []byte, entryStart, valueBase int, xs []xattr, withHash bool) []uint32 {
	hashes := make([]uint32, len(xs))
	off := entryStart
	vend := len(region)
	for i, x := range xs {
		e := region[off:]
		e[0] = uint8(len(x.name))
		e[1] = x.index
		voff := 0
		if len(x.value) > 0 {
			vend -= valueSize(x)
			copy(region[vend:], x.value)
			voff = vend - valueBase
		}
		binary.LittleEndian.PutUint16(e[2:], uint16(voff))
		binary.LittleEndian.PutUint32(e[4:], 0)
		binary.LittleEndian.PutUint32(e[8:], uint32(len(x.value)))
		var h uint32
		if withHash {
			h = xattrHash(x)
		}
		hashes[i] = h
		binary.LittleEndian.PutUint32(e[12:], h)
		copy(e[16:], x.name)
		off += entrySize(x)
	}
	return hashes
}

// xattrHash is ext2fs_ext_attr_hash_entry.
func xattrHash(x xattr) uint32 {
	var h uint32
	for i := 0; i < len(x.name); i++ {
		h = (h << 5) ^ (h >> 27) ^ uint32(x.name[i])
	}
	if len(x.value) > 0 {
		padded := make([]byte, valueSize(x))
		copy(padded, x.value)
		for i := 0; i < len(padded); i += 4 {
			h = (h << 16) ^ (h >> 16) ^ binary.LittleEndian.Uint32(padded[i:])
		}
	}
	return h
}

// encodeXattrBlock builds the xattr block for the attributes.
func encodeXattrBlock(b []byte, xs []xattr) {
	clear(b)
	binary.LittleEndian.PutUint32(b[0:], xattrMagic)
	binary.LittleEndian.PutUint32(b[4:], 1) // refcount
	binary.LittleEndian.PutUint32(b[8:], 1) // blocks
	hashes := putXattrs(b, blockXattrHeader, 0, xs, true)
	var h uint32
	for _, eh := range hashes {
		if eh == 0 {
			h = 0
			break
		}
		h = (h << 16) ^ (h >> 16) ^ eh
	}
	binary.LittleEndian.PutUint32(b[12:], h)
}

// aclToDisk converts a POSIX ACL from the xattr form the VFS and tar use
// (version 2, 8-byte entries) to ext4's on-disk form (version 1, 4-byte
// entries except for named users and groups).
func aclToDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || (len(v)-4)%8 != 0 || binary.LittleEndian.Uint32(v) != 2 {
		return nil, fmt.Errorf("not a version 2 POSIX ACL")
	}
	out := binary.LittleEndian.AppendUint32(nil, 1)
	for p := 4; p < len(v); p += 8 {
		tag := binary.LittleEndian.Uint16(v[p:])
		out = append(out, v[p:p+4]...)
		switch tag {
		case 0x02, 0x08: // ACL_USER, ACL_GROUP
			out = append(out, v[p+4:p+8]...)
		case 0x01, 0x04, 0x10, 0x20:
		default:
			return nil, fmt.Errorf("unknown ACL tag %#x", tag)
		}
	}
	return out, nil
}

// aclFromDisk is the inverse of aclToDisk.
func aclFromDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || binary.LittleEndian.Uint32(v) != 1 {
		return nil, fmt.Errorf("not an ext4 ACL")
	}
	out := binary.LittleEndian.AppendUint32(nil, 2)
	for p := 4; p < len(v); {
		if p+4 > len(v) {
			return nil, fmt.Errorf("truncated ACL")
		}
		tag := binary.LittleEndian.Uint16(v[p:])
		out = append(out, v[p:p+4]...)
		if tag == 0x02 || tag == 0x08 {
			if p+8 > len(v) {
				return nil, fmt.Errorf("truncated ACL")
			}
			out = append(out, v[p+4:p+8]...)
			p += 8
		} else {
			out = binary.LittleEndian.AppendUint32(out, 0xFFFFFFFF)
			p += 4
		}
	}
	return out, nil
}
