package kernel

import (
	"bufio"
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
// the x86 BCJ transform undone as the output streams by.
func unxzKernel(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	// Stream header: magic (6), flags (2), CRC32 (4); then the block
	// header, whose first byte gives its length.
	head := make([]byte, 13)
	if _, err := io.ReadFull(br, head); err != nil || !bytes.HasPrefix(head, xzMagic) {
		return nil, errors.New("unxz: not an xz stream")
	}
	hdrLen := (int(head[12]) + 1) * 4
	if head[12] == 0 {
		return nil, errors.New("unxz: bad block header")
	}
	blk := make([]byte, hdrLen)
	blk[0] = head[12]
	if _, err := io.ReadFull(br, blk[1:]); err != nil {
		return nil, errors.New("unxz: bad block header")
	}
	bcj, dictCap, err := parseBlockHeader(blk[1 : hdrLen-4])
	if err != nil {
		return nil, err
	}
	lr, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(br)
	if err != nil {
		return nil, fmt.Errorf("unxz: %w", err)
	}
	if bcj {
		return &bcjX86Reader{r: lr}, nil
	}
	return lr, nil
}

// parseBlockHeader reads an xz block header (less its size byte and
// CRC32) and returns whether the x86 BCJ filter is applied and the LZMA2
// dictionary capacity.
func parseBlockHeader(hdr []byte) (bcj bool, dictCap int, err error) {
	if len(hdr) == 0 {
		return false, 0, errors.New("unxz: bad block header")
	}
	flags := hdr[0]
	hdr = hdr[1:]
	nfilters := int(flags&3) + 1
	if flags&0x3c != 0 {
		return false, 0, errors.New("unxz: reserved block flags set")
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, hdr, err = xzVarint(hdr); err != nil {
				return false, 0, err
			}
		}
	}
	dictCap = -1
	for i := 0; i < nfilters; i++ {
		var id, plen uint64
		if id, hdr, err = xzVarint(hdr); err != nil {
			return false, 0, err
		}
		if plen, hdr, err = xzVarint(hdr); err != nil {
			return false, 0, err
		}
		if uint64(len(hdr)) < plen {
			return false, 0, errors.New("unxz: truncated filter properties")
		}
		props := hdr[:plen]
		hdr = hdr[plen:]
		switch {
		case id == xzFilterX86 && i == 0 && i < nfilters-1:
			if plen != 0 {
				return false, 0, errors.New("unxz: x86 BCJ filter with a start offset is not supported")
			}
			bcj = true
		case id == xzFilterLZMA2 && i == nfilters-1 && plen == 1:
			if dictCap, err = lzma2DictCap(props[0]); err != nil {
				return false, 0, err
			}
		default:
			return false, 0, fmt.Errorf("unxz: unsupported filter chain (filter %#x at %d of %d)", id, i+1, nfilters)
		}
	}
	if dictCap < 0 {
		return false, 0, errors.New("unxz: no LZMA2 filter")
	}
	return bcj, max(dictCap, lzma.MinDictCap), nil
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

// bcjX86 undoes the x86 branch/call/jump filter: it turns the absolute
// addresses the encoder stored in E8/E9 (call/jmp rel32) instructions
// back into relative ones. A port of xz-embedded's bcj_x86 (public
// domain) that keeps its state between buffers, so it runs on a stream.
type bcjX86 struct {
	prevPos  int64 // stream offset of the last E8/E9 seen
	prevMask uint32
}

func newBCJX86() bcjX86 { return bcjX86{prevPos: -1} }

// filter decodes buf, which starts at stream offset pos, in place and
// returns how many bytes of it are final; the rest (at most 4 bytes) must
// be passed again, with what follows, on the next call — or are final as
// they are at the end of the stream.
func (s *bcjX86) filter(buf []byte, pos int64) int {
	maskAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	testMSByte := func(b byte) bool { return b == 0x00 || b == 0xff }
	i := 0
	for ; i < len(buf)-4; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		at := pos + int64(i)
		d := at - s.prevPos
		if d > 3 {
			s.prevMask = 0
		} else {
			s.prevMask = (s.prevMask << (d - 1)) & 7
			if s.prevMask != 0 {
				b := buf[i+4-int(maskBitNum[s.prevMask])]
				if !maskAllowed[s.prevMask] || testMSByte(b) {
					s.prevPos = at
					s.prevMask = s.prevMask<<1 | 1
					continue
				}
			}
		}
		s.prevPos = at
		if !testMSByte(buf[i+4]) {
			s.prevMask = s.prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - uint32(at+5)
			if s.prevMask == 0 {
				break
			}
			j := maskBitNum[s.prevMask] * 8
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
	return min(i, len(buf))
}

// bcjX86Reader undoes the x86 BCJ filter on what it reads from r.
type bcjX86Reader struct {
	r     io.Reader
	s     bcjX86
	buf   []byte // buf[start:ready] is decoded, buf[ready:] awaits more input
	start int
	ready int
	pos   int64 // stream offset of buf[0]
	err   error // r's error, once it has one
}

func (b *bcjX86Reader) Read(p []byte) (int, error) {
	for b.start == b.ready {
		if b.err != nil {
			if b.ready < len(b.buf) { // the stream's last bytes: final as they are
				b.ready = len(b.buf)
				continue
			}
			return 0, b.err
		}
		b.fill()
	}
	n := copy(p, b.buf[b.start:b.ready])
	b.start += n
	return n, nil
}

// fill reads more input and decodes what it can.
func (b *bcjX86Reader) fill() {
	if b.buf == nil {
		b.buf = make([]byte, 0, 64<<10)
	}
	// Keep the undecoded tail, drop what has been read.
	n := copy(b.buf[:cap(b.buf)], b.buf[b.start:])
	b.pos += int64(b.start)
	b.ready -= b.start
	b.start = 0
	b.buf = b.buf[:n]
	m, err := b.r.Read(b.buf[n:cap(b.buf)])
	b.buf = b.buf[:n+m]
	if err != nil {
		b.err = err
	}
	b.ready += b.s.filter(b.buf[b.ready:], b.pos+int64(b.ready))
}
