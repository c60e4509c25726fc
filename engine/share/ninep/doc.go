// Package ninep serves one host folder to one VM over 9P2000.L: the
// server behind run-time shares (berth share add).
//
// The server is built so that nothing outside the shared folder can be
// reached through it, whatever the guest sends:
//
//   - Every file is held by a descriptor, never by a path. A walk opens
//     each name relative to its parent's descriptor, one component at a
//     time, without following symlinks (openat2 with RESOLVE_BENEATH,
//     RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS on Linux; openat with
//     O_NOFOLLOW elsewhere). A symlink is served as a symlink: the guest
//     reads its text and resolves it inside the guest, in the guest's own
//     view of the share, so a link pointing outside leads nowhere.
//   - Names that are empty, ".", "..", contain "/" or NUL, or are longer
//     than 255 bytes are refused before any system call.
//   - Reopening a walked file for reading or writing (or to change its
//     mode or size) goes through its parent's descriptor with O_NOFOLLOW
//     and checks that the device and inode are the ones walked, so a
//     symlink or another file swapped in after the walk is refused
//     (ESTALE) rather than followed.
//   - A read-only share refuses every change host-side (EROFS), whatever
//     the guest mounted it with.
//   - Files are created by the Berth process, so they belong to the user
//     running Berth; requests to change ownership are accepted and
//     ignored, and set-user-ID and set-group-ID bits are dropped.
//
// The server speaks over one connection (an agent port on that VM's own
// agent transport), so only that VM can reach it.
package ninep
