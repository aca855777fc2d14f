/* The SQLite part of `fleetkey device add`, and nothing else: a baseline for bench/device_add.sh.
 *
 * usage: sqlite_floor REGISTRY ID
 *
 * Opens an existing fleetkey registry with the same settings (application_id and user_version read,
 * foreign keys on, synchronous = FULL, WAL), checks that ID is new, inserts the device row and one
 * audit row in a BEGIN IMMEDIATE transaction, commits, and closes with fleetkey's WAL policy
 * (src/registry/sqlite.cpp): the WAL file is kept, and a commit that leaves 32 frames or more is
 * checkpointed at close and the WAL restarted with an empty write. No key is derived: the
 * fingerprint is a constant.
 * Linked against the same static SQLite as fleetkey, it is what a minimal C program pays for the
 * same transaction on this machine, so the benchmark can tell fleetkey's own cost from the host's.
 */
#include <sqlite3.h>

#include <stdio.h>

#define CHECKPOINT_FRAMES 32

static int wal_frames;

static int on_wal_commit(void* arg, sqlite3* db, const char* name, int frames)
{
  (void)arg;
  (void)db;
  (void)name;
  wal_frames = frames;
  return SQLITE_OK;
}

static int fail(sqlite3* db, const char* what)
{
  fprintf(stderr, "sqlite_floor: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
  sqlite3_close_v2(db);
  return 1;
}

static int exec(sqlite3* db, const char* sql)
{
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Runs one statement with up to one text parameter; *found says whether it returned a row. */
static int run(sqlite3* db, const char* sql, const char* param, int* found)
{
  sqlite3_stmt* st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    return 0;
  }
  if (param != NULL) {
    sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
  }
  const int rc = sqlite3_step(st);
  if (found != NULL) {
    *found = rc == SQLITE_ROW;
  }
  return sqlite3_finalize(st) == SQLITE_OK && (rc == SQLITE_ROW || rc == SQLITE_DONE);
}

int main(int argc, char** argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: sqlite_floor REGISTRY ID\n");
    return 2;
  }
  const char* path = argv[1];
  const char* id = argv[2];
  sqlite3* db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    return fail(db, "open");
  }
  sqlite3_busy_timeout(db, 10000);
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int*)NULL);
  sqlite3_wal_hook(db, on_wal_commit, NULL);
  exec(db, "PRAGMA journal_size_limit = 1048576");
  if (!run(db, "PRAGMA application_id", NULL, NULL) || !run(db, "PRAGMA user_version", NULL, NULL)
      || !exec(db, "PRAGMA foreign_keys = ON") || !exec(db, "PRAGMA journal_mode = WAL")
      || !exec(db, "PRAGMA synchronous = FULL") || !exec(db, "BEGIN IMMEDIATE")) {
    return fail(db, "open the registry");
  }
  int exists = 0;
  if (!run(db, "SELECT 1 FROM devices WHERE id = ?", id, &exists)) {
    return fail(db, "look up the device");
  }
  if (exists) {
    fprintf(stderr, "sqlite_floor: %s is already registered\n", id);
    sqlite3_close_v2(db);
    return 4;
  }
  if (!run(db,
           "INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, created) "
           "VALUES (?, NULL, '{}', 1, '00000000000000000000000000000000', 'active', 0, '2026-11-22T00:00:00Z')",
           id, NULL)
      || !run(db,
              "INSERT INTO audit (at, actor, action, subject, details) VALUES ('2026-11-22T00:00:00Z', 'bench', "
              "'device.add', ?, '{\"key_version\":1,\"fingerprint\":\"00000000000000000000000000000000\"}')",
              id, NULL)
      || !exec(db, "COMMIT")) {
    return fail(db, "add the device");
  }
  int log = 0, copied = 0;
  if (wal_frames >= CHECKPOINT_FRAMES
      && sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied) == SQLITE_OK
      && copied == log) {
    int version = 0;
    sqlite3_busy_timeout(db, 0);
    if (exec(db, "BEGIN IMMEDIATE")) {
      sqlite3_stmt* st = NULL;
      if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
      }
      sqlite3_finalize(st);
      char restart[64];
      snprintf(restart, sizeof restart, "PRAGMA user_version = %d", version);
      if (!exec(db, restart) || !exec(db, "COMMIT")) {
        exec(db, "ROLLBACK");
      }
    }
  }
  return sqlite3_close_v2(db) == SQLITE_OK ? 0 : 1;
}
