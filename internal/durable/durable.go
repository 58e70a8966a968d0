// Package durable makes file system changes survive a machine crash:
// fsync of directories, and directory creation that is fsynced into the
// parent. A rename, link, create or unlink is only durable once the
// directory holding the name is fsynced.
//
// Every function takes the file system to work on: vfs.OS{} in
// production, a vfs.MemFS in the tests that simulate a power loss.
package durable

import (
	"github.com/ckptdev/ckpt/internal/vfs"
)

// SyncDir fsyncs the directory dir, making the names created, renamed or
// removed in it durable.
func SyncDir(fsys vfs.FS, dir string) error {
	return fsys.SyncDir(dir)
}

// MkdirAll creates dir and its missing parents (mode 0755), fsyncing each
// parent after a child is created in it, so that the new directories are
// durable before anything is written in them. An existing dir is fine; an
// existing file there is an error matching fs.ErrExist.
func MkdirAll(fsys vfs.FS, dir string) error {
	return vfs.MkdirAll(fsys, dir, 0o755)
}
