/* journal.h — per-worker append-only files of ledger rows, so a crash loses no
 * answered request's row.
 *
 * The ledger writer commits rows in batches every flush_ms; a process killed in
 * between lost the rows still queued. Each worker also appends its row to its own
 * journal file with one write(2) before the last byte of the answer is sent: once
 * in the file, the row survives the process (the kernel has it). At start the
 * gateway replays every journal file left in the folder into the store, skipping
 * rows the store already has (by id, over the journal's time span), and deletes
 * them. While running, a worker seals its file every second and deletes a sealed
 * file once the writer has committed every row pushed before the seal.
 *
 * Power loss: a write(2) is in the page cache, not on disk. With sync set, each
 * append is followed by fdatasync(2): the row is on disk before the answer ends
 * (the price is one disk flush per request). Without it, an OS crash or power loss
 * can lose the rows of the last seconds.
 *
 * File: dir/ledger-<worker>-<n>.journal; records are
 * [u32 payload length][u32 checksum][payload], little-endian; a torn or corrupt
 * record ends the replay of that file. Gateways may share a folder: each holds an
 * flock on its files (current and sealed) while it lives, and a replay takes only
 * files whose lock it can get, i.e. those of processes that are gone.
 */
#ifndef SY_STORE_JOURNAL_H
#define SY_STORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct store_journal store_journal_t;

/* Opens a new journal file in dir (created if missing) for worker idx. sync:
 * fdatasync after each append. Returns owned journal or NULL with err. */
store_journal_t *store_journal_open(const char *dir, int idx, bool sync, char *err, size_t errlen);
/* Appends one row with a single write(2) (strings truncated to the ledger caps). 0
 * or -errno; a failed append is counted and logged by the caller. */
int store_journal_append(store_journal_t *j, const store_ledger_row_t *row);
/* Marks that a row in the current file never reached the ledger writer (its queue
 * was full): the file is then kept for the next start's replay. */
void store_journal_keep(store_journal_t *j);
/* Seals the current file if it holds rows (a new one takes the appends). mark: the
 * writer's pushed count now (every row of the file was pushed before), dropped: its
 * dropped count. Then deletes each sealed file whose mark the writer has settled
 * (settled >= mark) with no row dropped since its seal; others stay for replay. */
void store_journal_rotate(store_journal_t *j, uint64_t pushed, uint64_t settled, uint64_t dropped);
/* Closes the current file (kept on disk) and frees j. NULL is a no-op. */
void store_journal_close(store_journal_t *j);

/* Replays every journal file in dir into s and deletes the files it replayed.
 * *n_rows: rows inserted; *n_dup: rows the store already had; *n_bad: files that
 * ended in a torn or corrupt record (their good rows are replayed). 0, or an error
 * with a message in err (files are then kept). A missing dir is not an error. */
int store_journal_replay(const char *dir, store_t *s, uint64_t *n_rows, uint64_t *n_dup,
                         uint64_t *n_bad, char *err, size_t errlen);
/* Deletes this process's journal files in dir (after a clean stop whose rows are
 * all committed). */
void store_journal_clear(const char *dir);

#endif
