package sqlstore

import (
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite's WAL is copied back into the database file by checkpoints. By
// default the commit that takes the WAL past 1,000 pages runs one itself,
// inline: that commit, and every write queued behind SQLite's one writer,
// waits several milliseconds. With private_key_jwt every token request
// commits its assertion's jti, so those stalls were the tail of its
// latency: p99 8.0-10.0 ms with 4 clients, against 4.7-5.2 ms with the
// checkpoints run beside the writer (bench/peers.sh, RS384).
//
// So a goroutine checkpoints on a connection of its own every
// checkpointEvery, in PASSIVE mode (it never waits for the writer or the
// readers, and copies what it can), and the writer runs one inline only
// as a backstop, past walBackstopPages (64 MiB with 8 KiB pages, 32 MiB
// in a file made with 4 KiB pages before sqlitePageSize), should the
// background fall behind.
const (
	checkpointEvery  = 200 * time.Millisecond
	walBackstopPages = 8192
)

// checkpointer runs the background checkpoints of one SQLite database.
type checkpointer struct {
	conn     *sql.DB
	stop     chan struct{}
	done     sync.WaitGroup
	stopOnce sync.Once
	closeErr error
	// runs counts the checkpoints that copied pages (for tests).
	runs atomic.Int64
}

func startCheckpointer(dsn string) (*checkpointer, error) {
	conn, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	conn.SetMaxOpenConns(1)
	conn.SetMaxIdleConns(1)
	conn.SetConnMaxLifetime(0)
	c := &checkpointer{conn: conn, stop: make(chan struct{})}
	c.done.Add(1)
	go c.loop()
	return c, nil
}

func (c *checkpointer) loop() {
	defer c.done.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// busy is 1 when another checkpoint ran; log is the WAL's
			// pages, copied how many of them are in the database file.
			var busy, log, copied int
			if err := c.conn.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied); err == nil && copied > 0 {
				c.runs.Add(1)
			}
		}
	}
}

// close stops the checkpoints; a second call does nothing (DB.Close may
// run twice).
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() {
		close(c.stop)
		c.done.Wait()
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}
