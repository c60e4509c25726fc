package ext4

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sort"

	"github.com/berthvm/berth/engine/errdefs"
)

// nodeLayout is where Close puts one inode's metadata.
type nodeLayout struct {
	parent     *node
	names      []string // directories: children, sorted
	dirBlocks  uint64
	treeBlocks uint64 // extent tree blocks outside the inode
	treeStart  uint64
	xattrBlock uint64 // 0: none
	subdirs    int
}

type layout struct {
	maxIno    uint32
	byIno     []*node
	lay       map[*node]*nodeLayout
	blocks    uint64 // total blocks
	groups    uint64
	ipg       uint64 // inodes per group
	gdtBlocks uint64
	bbStart   uint64 // block bitmaps
	ibStart   uint64 // inode bitmaps
	itStart   uint64 // inode tables
	dirStart  uint64
	treeStart uint64
	xaStart   uint64
	jStart    uint64 // journal
	jBlocks   uint64
	metaEnd   uint64
}

// Close finishes the image: it flushes the file data, numbers the inodes
// (root 2, lost+found 11, the rest depth-first in name order), sizes the
// filesystem, writes directories, extent trees, xattr blocks, the inode
// table, block and inode bitmaps, the journal superblock, the group
// descriptors and the superblock, sets the file length (the unwritten
// parts stay holes) and punches holes where removed files' data was.
// When the Writer was made by Create it closes the file, and on failure
// removes it.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("close ext4 %s: already closed", w.name)
	}
	err := w.finish(ctx)
	w.closed = true
	if w.owned {
		if cerr := w.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close ext4 %s: %w", w.name, cerr)
		}
		if err != nil {
			os.Remove(w.name)
		}
	}
	return err
}

func (w *Writer) finish(ctx context.Context) error {
	if w.err != nil {
		return fmt.Errorf("close ext4 %s: earlier write failed: %w", w.name, w.err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("close ext4 %s: write data: %w", w.name, err)
	}
	l, err := w.plan(ctx)
	if err != nil {
		return fmt.Errorf("close ext4 %s: %w", w.name, err)
	}
	if err := w.writeMeta(ctx, l); err != nil {
		return fmt.Errorf("close ext4 %s: %w", w.name, err)
	}
	return nil
}

// plan numbers the inodes and decides the size and the layout.
func (w *Writer) plan(ctx context.Context) (*layout, error) {
	l := &layout{lay: make(map[*node]*nodeLayout)}
	if err := w.numberInodes(ctx, l); err != nil {
		return nil, err
	}
	meta := l.countFixedMetadata()
	if err := w.chooseSize(l, meta.total()); err != nil {
		return nil, err
	}
	l.place(w.next, meta)
	return l, nil
}

// numberInodes walks the tree depth-first in name order and gives every
// node its inode number (root 2, lost+found 11, the others from 12 on) and
// its nodeLayout with the directory's sorted names and block count.
func (w *Writer) numberInodes(ctx context.Context, l *layout) error {
	lostFound := w.root.children["lost+found"]
	w.root.ino, lostFound.ino = rootIno, lostFoundIno
	l.lay[w.root] = &nodeLayout{parent: w.root}
	next := uint32(lostFoundIno + 1)
	stack := []*node{w.root}
	visited := 0
	for len(stack) > 0 {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited++; visited%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		dl := l.lay[dir]
		dl.names = make([]string, 0, len(dir.children))
		for name := range dir.children {
			dl.names = append(dl.names, name)
		}
		sort.Strings(dl.names)
		dl.dirBlocks = countDirBlocks(dl.names)
		for i := len(dl.names) - 1; i >= 0; i-- {
			child := dir.children[dl.names[i]]
			if child.typ == TypeDir {
				dl.subdirs++
			}
			if _, seen := l.lay[child]; seen {
				continue // a hard link to a node already numbered
			}
			l.lay[child] = &nodeLayout{parent: dir}
			if child != lostFound {
				child.ino = next
				next++
			}
			if child.typ == TypeDir {
				stack = append(stack, child)
			}
		}
	}
	if next-1 > uint32(1<<32-1)-1 {
		return errdefs.InvalidArgument(errors.New("too many inodes"))
	}
	l.maxIno = next - 1
	l.byIno = make([]*node, l.maxIno+1)
	for n := range l.lay {
		l.byIno[n.ino] = n
	}
	return nil
}

// metadataBlocks counts the metadata blocks whose number does not depend
// on the filesystem's size.
type metadataBlocks struct {
	dir, extentTree, xattr uint64
}

func (m metadataBlocks) total() uint64 { return m.dir + m.extentTree + m.xattr }

// countFixedMetadata counts the directory, extent tree and xattr blocks
// of every node, recording each node's extent tree size.
func (l *layout) countFixedMetadata() metadataBlocks {
	var m metadataBlocks
	for _, n := range l.byIno {
		if n == nil {
			continue
		}
		nl := l.lay[n]
		m.dir += nl.dirBlocks
		nl.treeBlocks = treeBlockCount(extentCount(n, nl))
		m.extentTree += nl.treeBlocks
		if _, blk := splitXattrs(n.xattrs); len(blk) > 0 {
			m.xattr++
		}
	}
	return m
}

// chooseSize sets the filesystem's size in blocks, its groups, inodes per
// group and journal size: WithSize's size when given (an error when the
// content does not fit), otherwise the content plus the free space and
// free inodes asked for. Sizes feed back into each other (more blocks,
// more groups, more inode tables), so it iterates until they agree.
func (w *Writer) chooseSize(l *layout, fixedMeta uint64) error {
	dataEnd := w.next
	maxGroups := (w.dataStart - 1) * (blockSize / descSize)
	used := uint64(l.maxIno)
	minFree := w.opts.minFree
	if minFree < 0 {
		minFree = 1<<30 + int64(dataEnd-w.dataStart)*blockSize/2
	}
	freeInodes := uint64(w.opts.minInodes)
	if freeInodes == 0 {
		freeInodes = 16384 + used/2
	}
	fixedSize := w.opts.size > 0
	total := uint64(w.opts.size) / blockSize
	if !fixedSize {
		total = dataEnd + fixedMeta + uint64(minFree)/blockSize
	}
	for iter := 0; ; iter++ {
		if iter > 64 {
			return errors.New("size computation does not converge")
		}
		groups := ceilDiv(total, blocksPerGroup)
		inodes := max(total*blockSize/inodeRatio, used+freeInodes)
		if fixedSize {
			inodes = max(total*blockSize/inodeRatio, used)
		}
		inodesPerGroup := (ceilDiv(inodes, groups) + 15) &^ 15
		if inodesPerGroup > blocksPerGroup {
			if fixedSize {
				return errdefs.InvalidArgument(fmt.Errorf("size %d bytes too small for %d inodes", w.opts.size, used))
			}
			total = ceilDiv(inodes, blocksPerGroup) * blocksPerGroup
			continue
		}
		journal := journalBlocks(total)
		need := dataEnd + 2*groups + groups*inodesPerGroup*inodeSize/blockSize + fixedMeta + journal
		if groups > maxGroups {
			return errdefs.InvalidArgument(fmt.Errorf("image of %d bytes larger than the maximum size %d the writer was made for", total*blockSize, w.opts.maxSize))
		}
		if fixedSize {
			if need > total {
				return errdefs.InvalidArgument(fmt.Errorf("size %d bytes too small for the content: it needs at least %d bytes", w.opts.size, need*blockSize))
			}
		} else if want := need + uint64(minFree)/blockSize; want > total {
			total = want
			continue
		}
		l.blocks, l.groups, l.ipg, l.jBlocks = total, groups, inodesPerGroup, journal
		return nil
	}
}

// place lays the metadata out after the data, which ends at block
// dataEnd: block bitmaps, inode bitmaps, inode tables, then directory
// blocks, extent trees and xattr blocks in inode order, then the journal.
func (l *layout) place(dataEnd uint64, meta metadataBlocks) {
	l.gdtBlocks = ceilDiv(l.groups*descSize, blockSize)
	l.bbStart = dataEnd
	l.ibStart = l.bbStart + l.groups
	l.itStart = l.ibStart + l.groups
	l.dirStart = l.itStart + l.groups*l.ipg*inodeSize/blockSize
	l.treeStart = l.dirStart + meta.dir
	l.xaStart = l.treeStart + meta.extentTree
	l.jStart = l.xaStart + meta.xattr
	l.metaEnd = l.jStart + l.jBlocks

	dirCur, treeCur, xaCur := l.dirStart, l.treeStart, l.xaStart
	for _, n := range l.byIno {
		if n == nil {
			continue
		}
		nl := l.lay[n]
		if n.typ == TypeDir {
			n.extents = contiguousExtents(dirCur, nl.dirBlocks)
			dirCur += nl.dirBlocks
		}
		nl.treeStart = treeCur
		treeCur += nl.treeBlocks
		if _, blk := splitXattrs(n.xattrs); len(blk) > 0 {
			nl.xattrBlock = xaCur
			xaCur++
		}
	}
}

func extentCount(n *node, nl *nodeLayout) int {
	if n.typ == TypeDir {
		return int(ceilDiv(nl.dirBlocks, maxExtentLen))
	}
	return len(n.extents)
}

func contiguousExtents(start, count uint64) []extent {
	var es []extent
	for l := uint64(0); l < count; l += maxExtentLen {
		es = append(es, extent{logical: uint32(l), physical: start + l, length: uint32(min(maxExtentLen, count-l))})
	}
	return es
}

func journalBlocks(T uint64) uint64 {
	switch {
	case T < 32768:
		return 1024
	case T < 256*1024:
		return 4096
	case T < 512*1024:
		return 8192
	case T < 4096*1024:
		return 16384
	case T < 8192*1024:
		return 32768
	default:
		return 65536
	}
}

const extentsPerBlock = (blockSize - 12) / 12

// treeBlockCount is the number of blocks an extent tree of n extents
// needs outside the inode.
func treeBlockCount(n int) uint64 {
	var total uint64
	for n > 4 {
		n = int(ceilDiv(uint64(n), extentsPerBlock))
		total += uint64(n)
	}
	return total
}

func dirRecLen(name string) int { return (8 + len(name) + 3) &^ 3 }

func countDirBlocks(names []string) uint64 {
	blocks, pos := uint64(1), 24 // "." and ".."
	for _, name := range names {
		rl := dirRecLen(name)
		if pos+rl > blockSize {
			blocks++
			pos = 0
		}
		pos += rl
	}
	return blocks
}

// seqWriterMax is the most metadata a seqWriter batches into one write.
const seqWriterMax = 4 << 20

// seqWriter batches sequential writes of metadata; its buffer grows up to
// seqWriterMax, so a small image costs a small buffer.
type seqWriter struct {
	f   *os.File
	off int64
	buf []byte
	err error
}

func newSeqWriter(f *os.File, block uint64) *seqWriter {
	return &seqWriter{f: f, off: int64(block) * blockSize}
}

// next returns the next n zeroed bytes to fill.
func (s *seqWriter) next(n int) []byte {
	if len(s.buf)+n > seqWriterMax {
		s.flush()
	}
	start := len(s.buf)
	s.buf = growBuffer(s.buf, n, seqWriterMax)[:start+n]
	b := s.buf[start:]
	clear(b)
	return b
}

func (s *seqWriter) flush() error {
	if s.err == nil && len(s.buf) > 0 {
		_, s.err = s.f.WriteAt(s.buf, s.off)
		s.off += int64(len(s.buf))
	}
	s.buf = s.buf[:0]
	return s.err
}

func fileTypeCode(t FileType) uint8 {
	switch t {
	case TypeRegular:
		return 1
	case TypeDir:
		return 2
	case TypeCharDevice:
		return 3
	case TypeBlockDevice:
		return 4
	case TypeFIFO:
		return 5
	case TypeSocket:
		return 6
	case TypeSymlink:
		return 7
	}
	return 0
}

func (w *Writer) writeMeta(ctx context.Context, l *layout) error {
	if err := w.writeDirectories(ctx, l); err != nil {
		return fmt.Errorf("write directories: %w", err)
	}
	dirsPerGroup, err := w.writeInodes(ctx, l)
	if err != nil {
		return fmt.Errorf("write inodes: %w", err)
	}
	freeBlocks, totalFreeBlocks, err := w.writeBlockBitmaps(l)
	if err != nil {
		return fmt.Errorf("write block bitmaps: %w", err)
	}
	freeInodes, err := w.writeInodeBitmaps(l)
	if err != nil {
		return fmt.Errorf("write inode bitmaps: %w", err)
	}
	if err := w.writeGroupDescriptors(l, freeBlocks, freeInodes, dirsPerGroup); err != nil {
		return fmt.Errorf("write group descriptors: %w", err)
	}
	if _, err := w.f.WriteAt(w.journalSuperblock(l), int64(l.jStart)*blockSize); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	sb, err := w.superblock(l, totalFreeBlocks, l.groups*l.ipg-uint64(l.maxIno))
	if err != nil {
		return err
	}
	if _, err := w.f.WriteAt(sb, 1024); err != nil {
		return fmt.Errorf("write superblock: %w", err)
	}
	if err := w.f.Truncate(int64(l.blocks) * blockSize); err != nil {
		return fmt.Errorf("set size: %w", err)
	}
	if err := w.punchFreed(); err != nil {
		return fmt.Errorf("punch holes: %w", err)
	}
	return nil
}

// writeDirectories writes the blocks of every directory, in inode order.
func (w *Writer) writeDirectories(ctx context.Context, l *layout) error {
	dw := newSeqWriter(w.f, l.dirStart)
	for i, n := range l.byIno {
		if n == nil || n.typ != TypeDir {
			continue
		}
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		writeDir(dw, n, l.lay[n])
	}
	return dw.flush()
}

// writeInodes writes the inode table, and the extent tree and xattr
// blocks the inodes point to. It returns how many directories each group
// holds.
func (w *Writer) writeInodes(ctx context.Context, l *layout) (dirsPerGroup []uint64, err error) {
	it := newSeqWriter(w.f, l.itStart)
	tw := newSeqWriter(w.f, l.treeStart)
	xw := newSeqWriter(w.f, l.xaStart)
	dirsPerGroup = make([]uint64, l.groups)
	for ino := uint32(1); ino <= l.maxIno; ino++ {
		b := it.next(inodeSize)
		n := l.byIno[ino]
		if ino%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		switch {
		case n != nil:
			if n.typ == TypeDir {
				dirsPerGroup[(ino-1)/uint32(l.ipg)]++
			}
			w.encodeInode(b, n, l.lay[n], tw, xw)
		case ino == journalIno:
			w.encodeJournalInode(b, l)
		default:
			binary.LittleEndian.PutUint16(b[128:], extraIsize)
		}
	}
	for _, s := range []*seqWriter{it, tw, xw} {
		if err := s.flush(); err != nil {
			return nil, err
		}
	}
	return dirsPerGroup, nil
}

// writeBlockBitmaps marks the superblock, group descriptors, file data
// and metadata in use, and returns the free blocks of each group and in
// all.
func (w *Writer) writeBlockBitmaps(l *layout) (freeBlocks []uint64, total uint64, err error) {
	bm := make([]byte, l.groups*blockSize)
	setBits(bm, 0, 1+l.gdtBlocks)
	for _, n := range l.byIno {
		if n == nil || n.typ == TypeDir {
			continue
		}
		for _, e := range n.extents {
			setBits(bm, e.physical, uint64(e.length))
		}
	}
	setBits(bm, l.bbStart, l.metaEnd-l.bbStart)
	setBits(bm, l.blocks, l.groups*blocksPerGroup-l.blocks) // padding
	freeBlocks = make([]uint64, l.groups)
	for g := range l.groups {
		used := popcount(bm[g*blockSize : (g+1)*blockSize])
		freeBlocks[g] = blocksPerGroup - used
		total += freeBlocks[g]
	}
	if _, err := w.f.WriteAt(bm, int64(l.bbStart)*blockSize); err != nil {
		return nil, 0, err
	}
	return freeBlocks, total, nil
}

// writeInodeBitmaps marks inodes 1 to maxIno in use and returns the free
// inodes of each group.
func (w *Writer) writeInodeBitmaps(l *layout) (freeInodes []uint64, err error) {
	ib := make([]byte, l.groups*blockSize)
	freeInodes = make([]uint64, l.groups)
	for g := range l.groups {
		grp := ib[g*blockSize : (g+1)*blockSize]
		first := g * l.ipg // inode first+1 is bit 0
		usedHere := uint64(0)
		if uint64(l.maxIno) > first {
			usedHere = min(l.ipg, uint64(l.maxIno)-first)
		}
		setBits(grp, 0, usedHere)
		setBits(grp, l.ipg, blocksPerGroup-l.ipg)
		freeInodes[g] = l.ipg - usedHere
	}
	if _, err := w.f.WriteAt(ib, int64(l.ibStart)*blockSize); err != nil {
		return nil, err
	}
	return freeInodes, nil
}

// writeGroupDescriptors writes one descriptor per group, after the
// superblock's block.
func (w *Writer) writeGroupDescriptors(l *layout, freeBlocks, freeInodes, dirs []uint64) error {
	gdt := make([]byte, l.gdtBlocks*blockSize)
	for g := range l.groups {
		d := gdt[g*descSize:]
		put64split(d[0:], d[32:], l.bbStart+g)
		put64split(d[4:], d[36:], l.ibStart+g)
		put64split(d[8:], d[40:], l.itStart+g*l.ipg*inodeSize/blockSize)
		put32split16(d[12:], d[44:], uint32(freeBlocks[g]))
		put32split16(d[14:], d[46:], uint32(freeInodes[g]))
		put32split16(d[16:], d[48:], uint32(dirs[g]))
	}
	_, err := w.f.WriteAt(gdt, blockSize)
	return err
}

func (w *Writer) punchFreed() error {
	if len(w.freed) == 0 {
		return nil
	}
	sort.Slice(w.freed, func(i, j int) bool { return w.freed[i].physical < w.freed[j].physical })
	start, end := w.freed[0].physical, w.freed[0].physical+uint64(w.freed[0].length)
	for _, e := range w.freed[1:] {
		if e.physical == end {
			end += uint64(e.length)
			continue
		}
		if err := punchHole(w.f, int64(start)*blockSize, int64(end-start)*blockSize); err != nil {
			return err
		}
		start, end = e.physical, e.physical+uint64(e.length)
	}
	return punchHole(w.f, int64(start)*blockSize, int64(end-start)*blockSize)
}

func writeDir(dw *seqWriter, n *node, nl *nodeLayout) {
	blk := dw.next(blockSize)
	pos, last := 0, -1
	add := func(ino uint32, name string, ft uint8) {
		rl := dirRecLen(name)
		if pos+rl > blockSize {
			binary.LittleEndian.PutUint16(blk[last+4:], uint16(blockSize-last))
			blk = dw.next(blockSize)
			pos = 0
		}
		binary.LittleEndian.PutUint32(blk[pos:], ino)
		binary.LittleEndian.PutUint16(blk[pos+4:], uint16(rl))
		blk[pos+6] = uint8(len(name))
		blk[pos+7] = ft
		copy(blk[pos+8:], name)
		last = pos
		pos += rl
	}
	add(n.ino, ".", 2)
	add(nl.parent.ino, "..", 2)
	for _, name := range nl.names {
		c := n.children[name]
		add(c.ino, name, fileTypeCode(c.typ))
	}
	binary.LittleEndian.PutUint16(blk[last+4:], uint16(blockSize-last))
}

const (
	flagExtents = 0x80000
	extentMagic = 0xF30A
)

func encodeTime(b []byte, lo, extra int, sec int64, nsec int) {
	binary.LittleEndian.PutUint32(b[lo:], uint32(int32(sec)))
	epoch := uint32((sec-int64(int32(sec)))>>32) & 3
	binary.LittleEndian.PutUint32(b[extra:], uint32(nsec)<<2|epoch)
}

func (w *Writer) encodeInode(b []byte, n *node, nl *nodeLayout, tw, xw *seqWriter) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], n.typ.ifmt()|n.mode)
	le.PutUint16(b[2:], uint16(n.uid))
	le.PutUint16(b[120:], uint16(n.uid>>16))
	le.PutUint16(b[24:], uint16(n.gid))
	le.PutUint16(b[122:], uint16(n.gid>>16))
	size := uint64(n.size)
	links := n.refs
	if n.typ == TypeDir {
		size = nl.dirBlocks * blockSize
		links = 2 + nl.subdirs
		if links > maxLinks {
			links = 1 // dir_nlink: "many"
		}
	}
	le.PutUint32(b[4:], uint32(size))
	le.PutUint32(b[108:], uint32(size>>32))
	le.PutUint16(b[26:], uint16(links))
	encodeTime(b, 8, 140, n.atime.Unix(), n.atime.Nanosecond())
	encodeTime(b, 12, 132, n.ctime.Unix(), n.ctime.Nanosecond())
	encodeTime(b, 16, 136, n.mtime.Unix(), n.mtime.Nanosecond())
	encodeTime(b, 144, 148, n.ctime.Unix(), n.ctime.Nanosecond())
	le.PutUint16(b[128:], extraIsize)

	var blocks uint64
	switch {
	case n.typ == TypeSymlink && len(n.extents) == 0 && len(n.target) < fastSymlinkMax:
		copy(b[40:100], n.target)
	case n.typ == TypeCharDevice || n.typ == TypeBlockDevice:
		if n.major < 256 && n.minor < 256 {
			le.PutUint32(b[40:], n.major<<8|n.minor)
		} else {
			le.PutUint32(b[44:], (n.minor&0xff)|(n.major<<8)|((n.minor&^0xff)<<12))
		}
	case n.typ == TypeRegular || n.typ == TypeDir || n.typ == TypeSymlink:
		le.PutUint32(b[32:], flagExtents)
		for _, e := range n.extents {
			blocks += uint64(e.length)
		}
		blocks += nl.treeBlocks
		writeExtentTree(b[40:100], n.extents, nl.treeStart, tw)
	}
	inl, blk := splitXattrs(n.xattrs)
	if len(inl) > 0 {
		le.PutUint32(b[160:], xattrMagic)
		putXattrs(b[164:], 0, 0, inl, false)
	}
	if len(blk) > 0 {
		encodeXattrBlock(xw.next(blockSize), blk)
		le.PutUint32(b[104:], uint32(nl.xattrBlock))
		le.PutUint16(b[118:], uint16(nl.xattrBlock>>32))
		blocks++
	}
	sectors := blocks * (blockSize / 512)
	le.PutUint32(b[28:], uint32(sectors))
	le.PutUint16(b[116:], uint16(sectors>>32))
}

func putExtentHeader(b []byte, entries, maxEntries, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], extentMagic)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(maxEntries))
	le.PutUint16(b[6:], uint16(depth))
}

func putLeaf(b []byte, e extent) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], e.logical)
	le.PutUint16(b[4:], uint16(e.length))
	le.PutUint16(b[6:], uint16(e.physical>>32))
	le.PutUint32(b[8:], uint32(e.physical))
}

func putIndex(b []byte, logical uint32, child uint64) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], logical)
	le.PutUint32(b[4:], uint32(child))
	le.PutUint16(b[8:], uint16(child>>32))
}

// writeExtentTree encodes the extent tree root into root (the inode's
// i_block) and the tree's other blocks, numbered from start, into tw.
func writeExtentTree(root []byte, es []extent, start uint64, tw *seqWriter) {
	if len(es) <= 4 {
		putExtentHeader(root, len(es), 4, 0)
		for i, e := range es {
			putLeaf(root[12+12*i:], e)
		}
		return
	}
	// Leaves, then each index level above them, in consecutive blocks.
	type entry struct {
		logical uint32
		block   uint64
	}
	var level []entry
	cur := start
	for i := 0; i < len(es); i += extentsPerBlock {
		chunk := es[i:min(i+extentsPerBlock, len(es))]
		b := tw.next(blockSize)
		putExtentHeader(b, len(chunk), extentsPerBlock, 0)
		for j, e := range chunk {
			putLeaf(b[12+12*j:], e)
		}
		level = append(level, entry{chunk[0].logical, cur})
		cur++
	}
	depth := 1
	for len(level) > 4 {
		var up []entry
		for i := 0; i < len(level); i += extentsPerBlock {
			chunk := level[i:min(i+extentsPerBlock, len(level))]
			b := tw.next(blockSize)
			putExtentHeader(b, len(chunk), extentsPerBlock, depth)
			for j, e := range chunk {
				putIndex(b[12+12*j:], e.logical, e.block)
			}
			up = append(up, entry{chunk[0].logical, cur})
			cur++
		}
		level = up
		depth++
	}
	putExtentHeader(root, len(level), 4, depth)
	for i, e := range level {
		putIndex(root[12+12*i:], e.logical, e.block)
	}
}

func (w *Writer) encodeJournalInode(b []byte, l *layout) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], sIFREG|0o600)
	size := l.jBlocks * blockSize
	le.PutUint32(b[4:], uint32(size))
	le.PutUint32(b[108:], uint32(size>>32))
	t := w.opts.now
	for _, off := range [][2]int{{8, 140}, {12, 132}, {16, 136}, {144, 148}} {
		encodeTime(b, off[0], off[1], t.Unix(), t.Nanosecond())
	}
	le.PutUint16(b[26:], 1)
	le.PutUint32(b[32:], flagExtents)
	le.PutUint16(b[128:], extraIsize)
	sectors := l.jBlocks * (blockSize / 512)
	le.PutUint32(b[28:], uint32(sectors))
	le.PutUint16(b[116:], uint16(sectors>>32))
	es := contiguousExtents(l.jStart, l.jBlocks)
	// At most 65536 blocks: two extents, always in the inode.
	writeExtentTree(b[40:100], es, 0, nil)
}

func (w *Writer) uuid() ([16]byte, error) {
	if w.opts.uuidSet {
		return w.opts.uuid, nil
	}
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return u, err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}

func (w *Writer) journalSuperblock(l *layout) []byte {
	b := make([]byte, 1024)
	be := binary.BigEndian
	be.PutUint32(b[0:], 0xC03B3998)
	be.PutUint32(b[4:], 4) // superblock v2
	be.PutUint32(b[12:], blockSize)
	be.PutUint32(b[16:], uint32(l.jBlocks))
	be.PutUint32(b[20:], 1) // first log block
	be.PutUint32(b[24:], 1) // sequence
	copy(b[48:64], w.fsUUID[:])
	be.PutUint32(b[64:], 1) // users
	return b
}

// Feature flags.
const (
	compatHasJournal   = 0x4
	compatExtAttr      = 0x8
	compatSparseSuper2 = 0x200

	incompatFiletype = 0x2
	incompatExtents  = 0x40
	incompat64bit    = 0x80
	incompatFlexBG   = 0x200

	roCompatSparseSuper = 0x1
	roCompatLargeFile   = 0x2
	roCompatHugeFile    = 0x8
	roCompatDirNlink    = 0x20
	roCompatExtraIsize  = 0x40
)

func (w *Writer) superblock(l *layout, freeBlocks, freeInodes uint64) ([]byte, error) {
	b := make([]byte, 1024)
	le := binary.LittleEndian
	now := uint32(w.opts.now.Unix())
	le.PutUint32(b[0:], uint32(l.groups*l.ipg))
	put64split(b[4:], b[0x150:], l.blocks)
	put64split(b[12:], b[0x158:], freeBlocks)
	le.PutUint32(b[16:], uint32(freeInodes))
	le.PutUint32(b[20:], 0) // first data block
	le.PutUint32(b[24:], 2) // log block size - 10
	le.PutUint32(b[28:], 2) // log cluster size - 10
	le.PutUint32(b[32:], blocksPerGroup)
	le.PutUint32(b[36:], blocksPerGroup)
	le.PutUint32(b[40:], uint32(l.ipg))
	le.PutUint32(b[48:], now) // write time
	le.PutUint16(b[54:], 0xFFFF)
	le.PutUint16(b[56:], 0xEF53)
	le.PutUint16(b[58:], 1) // clean
	le.PutUint16(b[60:], 1) // continue on errors
	le.PutUint32(b[64:], now)
	le.PutUint32(b[76:], 1) // dynamic revision
	le.PutUint32(b[84:], firstIno)
	le.PutUint16(b[88:], inodeSize)
	le.PutUint32(b[92:], compatHasJournal|compatExtAttr|compatSparseSuper2)
	le.PutUint32(b[96:], incompatFiletype|incompatExtents|incompat64bit|incompatFlexBG)
	le.PutUint32(b[100:], roCompatSparseSuper|roCompatLargeFile|roCompatHugeFile|roCompatDirNlink|roCompatExtraIsize)
	copy(b[104:120], w.fsUUID[:])
	le.PutUint32(b[224:], journalIno)
	var seed [16]byte
	if w.opts.uuidSet {
		sum := sha256.Sum256(append([]byte("berth ext4 hash seed"), w.fsUUID[:]...))
		copy(seed[:], sum[:])
	} else if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("hash seed: %w", err)
	}
	copy(b[236:252], seed[:])
	b[252] = 1 // half_md4
	b[253] = 1 // s_jnl_blocks holds a copy of the journal inode's blocks
	le.PutUint16(b[254:], descSize)
	le.PutUint32(b[256:], 0x0C) // user_xattr, acl
	le.PutUint32(b[264:], now)  // mkfs time
	// s_jnl_blocks: i_block, i_size_high, i_size of the journal inode.
	ji := make([]byte, inodeSize)
	w.encodeJournalInode(ji, l)
	copy(b[268:328], ji[40:100])
	le.PutUint32(b[328:], le.Uint32(ji[108:]))
	le.PutUint32(b[332:], le.Uint32(ji[4:]))
	le.PutUint16(b[348:], extraIsize)
	le.PutUint16(b[350:], extraIsize)
	le.PutUint32(b[352:], 0x2) // unsigned directory hash
	b[372] = 4                 // 16 groups per flex group
	// s_backup_bgs stays zero: no superblock backups (sparse_super2).
	return b, nil
}

func put64split(lo, hi []byte, v uint64) {
	binary.LittleEndian.PutUint32(lo, uint32(v))
	binary.LittleEndian.PutUint32(hi, uint32(v>>32))
}

func put32split16(lo, hi []byte, v uint32) {
	binary.LittleEndian.PutUint16(lo, uint16(v))
	binary.LittleEndian.PutUint16(hi, uint16(v>>16))
}

// setBits sets bits [start, start+n) of the little-endian bitmap bm.
func setBits(bm []byte, start, n uint64) {
	end := start + n
	for start < end && start%8 != 0 {
		bm[start/8] |= 1 << (start % 8)
		start++
	}
	for ; start+8 <= end; start += 8 {
		bm[start/8] = 0xFF
	}
	for ; start < end; start++ {
		bm[start/8] |= 1 << (start % 8)
	}
}

func popcount(b []byte) uint64 {
	var c int
	for i := 0; i+8 <= len(b); i += 8 {
		c += bits.OnesCount64(binary.LittleEndian.Uint64(b[i:]))
	}
	return uint64(c)
}
