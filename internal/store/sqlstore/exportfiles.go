package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"smartgate/internal/store"
)

// On SQLite a Bulk Data export's files are plain files in a directory
// beside the database (ExportDir), one directory per job; their list
// (export_files) and the jobs stay in the database. A SQLite database has
// one node, so the node that writes a file is the one that serves it.
//
// In the database each 1 MiB chunk went through the WAL page by page (a
// write for each frame and its header), was copied into the main file by
// a checkpoint, and was freed again when the job was deleted: 35-40% of
// the server's CPU during an export of 1M resources on this machine,
// where every system call is dear, and pages churned under the readers'
// caches. A file takes one write a chunk. docs/performance.md, "Export
// files beside the database".
//
// PostgreSQL keeps the chunks in the database (export_chunks), where every
// node can serve them. So do jobs a SQLite smartgate wrote before: a file
// missing from the directory is read from export_chunks.

// ExportDir is the directory of the export files of the SQLite database at
// path: /x/name.ext gives /x/name-exports.
func ExportDir(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-exports"
}

// exportReadSize is how much of a file ReadExportFile hands over at a
// time: the "at most about 1 MiB" that store.Exports promises.
const exportReadSize = 1 << 20

// jobDir is the directory of a job's files. Job ids are the server's own
// (token.NewID), but a path is built from this one only if it is a plain
// name.
func (db *DB) jobDir(jobID string) (string, error) {
	if jobID == "" || len(jobID) > 128 || strings.TrimLeft(jobID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return "", fmt.Errorf("export job id %q is not a plain name", jobID)
	}
	return filepath.Join(db.exportDir, jobID), nil
}

func (db *DB) exportFile(jobID string, seq int) (string, error) {
	dir, err := db.jobDir(jobID)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, strconv.Itoa(seq)+".ndjson"), nil
}

// putExportChunkFile appends chunk n to the file (chunk 0 starts it anew:
// a job started over writes its files again). Files and directories are
// the owner's only, as the database is: they hold health data.
func (db *DB) putExportChunkFile(ctx context.Context, jobID, owner string, seq, n int, data []byte) error {
	if err := db.owns(ctx, db.r, jobID, owner); err != nil {
		return err
	}
	name, err := db.exportFile(jobID, seq)
	if err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_APPEND
	if n == 0 {
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			return err
		}
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(name, flags, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncExportFile makes a finished file durable before the database lists
// it (a file the manifest names is whole, even after a power loss).
func (db *DB) syncExportFile(jobID string, seq int) error {
	name, err := db.exportFile(jobID, seq)
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // an empty file: no chunk was written
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readExportFileFrom hands the file over in pieces of exportReadSize; ok
// is false when there is no such file (a job written into the database).
func (db *DB) readExportFileFrom(ctx context.Context, jobID string, seq int, fn func(chunk []byte) error) (ok bool, err error) {
	name, err := db.exportFile(jobID, seq)
	if err != nil {
		return false, err
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, exportReadSize)
	for {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		k, err := io.ReadFull(f, buf)
		if k > 0 {
			if err := fn(buf[:k]); err != nil {
				return true, err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return true, nil
		}
		if err != nil {
			return true, err
		}
	}
}

// removeJobFiles deletes a job's directory, if it has one.
func (db *DB) removeJobFiles(jobID string) error {
	if db.exportDir == "" {
		return nil
	}
	dir, err := db.jobDir(jobID)
	if err != nil {
		return nil // never a name of ours: there is nothing to delete
	}
	return os.RemoveAll(dir)
}

// sweepExportDirs deletes the directories of jobs the database no longer
// has: a chunk appended while its job was being deleted can leave one.
func (db *DB) sweepExportDirs(ctx context.Context) error {
	if db.exportDir == "" {
		return nil
	}
	entries, err := os.ReadDir(db.exportDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := db.jobDir(e.Name()); err != nil || !e.IsDir() {
			continue // not a job's directory: not ours to delete
		}
		switch _, err := db.GetExportJob(ctx, e.Name()); {
		case errors.Is(err, store.ErrNotFound):
			if err := db.removeJobFiles(e.Name()); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}
