package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// xz filter IDs (xz file format 1.1, §5.3).
const (
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// unxzKernel decompresses the single-block xz stream the kernel build
// writes (scripts/xz_wrap.sh): an optional x86 BCJ filter followed by
// LZMA2. github.com/ulikunitz/xz reads LZMA2 but not the BCJ filters, so
// the container is parsed here, LZMA2 decoded with its lzma package, and
// the x86 BCJ transform undone over the whole output. size is the
// uncompressed size the bzImage records.
func unxzKernel(b []byte, size int) ([]byte, error) {
	// Stream header: magic (6), flags (2), CRC32 (4).
	if len(b) < 12+8 || !bytes.HasPrefix(b, xzMagic) {
		return nil, errors.New("unxz: not an xz stream")
	}
	blk := b[12:]
	hdrLen := (int(blk[0]) + 1) * 4
	if blk[0] == 0 || hdrLen > len(blk) {
		return nil, errors.New("unxz: bad block header")
	}
	hdr := blk[1 : hdrLen-4]
	flags := hdr[0]
	hdr = hdr[1:]
	nfilters := int(flags&3) + 1
	if flags&0x3c != 0 {
		return nil, errors.New("unxz: reserved block flags set")
	}
	var err error
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, hdr, err = xzVarint(hdr); err != nil {
				return nil, err
			}
		}
	}
	bcj := false
	dictCap := -1
	for i := 0; i < nfilters; i++ {
		var id, plen uint64
		if id, hdr, err = xzVarint(hdr); err != nil {
			return nil, err
		}
		if plen, hdr, err = xzVarint(hdr); err != nil {
			return nil, err
		}
		if uint64(len(hdr)) < plen {
			return nil, errors.New("unxz: truncated filter properties")
		}
		props := hdr[:plen]
		hdr = hdr[plen:]
		switch {
		case id == xzFilterX86 && i == 0 && i < nfilters-1:
			if plen != 0 {
				return nil, errors.New("unxz: x86 BCJ filter with a start offset is not supported")
			}
			bcj = true
		case id == xzFilterLZMA2 && i == nfilters-1 && plen == 1:
			dictCap, err = lzma2DictCap(props[0])
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unxz: unsupported filter chain (filter %#x at %d of %d)", id, i+1, nfilters)
		}
	}
	if dictCap < 0 {
		return nil, errors.New("unxz: no LZMA2 filter")
	}
	if dictCap < lzma.MinDictCap {
		dictCap = lzma.MinDictCap
	}
	r, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(bytes.NewReader(blk[hdrLen:]))
	if err != nil {
		return nil, fmt.Errorf("unxz: %w", err)
	}
	out := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := io.Copy(out, r); err != nil {
		return nil, fmt.Errorf("unxz: %w", err)
	}
	buf := out.Bytes()
	if bcj {
		bcjX86Decode(buf)
	}
	return buf, nil
}

// xzVarint reads one xz multibyte integer.
func xzVarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, b[i+1:], nil
		}
	}
	return 0, nil, errors.New("unxz: bad multibyte integer in block header")
}

// lzma2DictCap decodes the LZMA2 filter's one property byte.
func lzma2DictCap(p byte) (int, error) {
	bits := int(p & 0x3f)
	if bits > 40 {
		return 0, fmt.Errorf("unxz: bad LZMA2 dictionary size %#x", p)
	}
	if bits == 40 {
		return lzma.MaxDictCap, nil
	}
	return (2 | bits&1) << (bits/2 + 11), nil
}

// bcjX86Decode undoes the x86 branch/call/jump filter in place: it turns
// the absolute addresses the encoder stored in E8/E9 (call/jmp rel32)
// instructions back into relative ones. A port of xz-embedded's bcj_x86
// (public domain) for one buffer starting at stream offset 0.
func bcjX86Decode(buf []byte) {
	maskAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	testMSByte := func(b byte) bool { return b == 0x00 || b == 0xff }
	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskBitNum[prevMask])]
				if !maskAllowed[prevMask] || testMSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !testMSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - uint32(i+5)
			if prevMask == 0 {
				break
			}
			j := maskBitNum[prevMask] * 8
			if !testMSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
