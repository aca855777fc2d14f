"""Shared helpers for the CLI tests: run the built fleetkey in a fresh temporary home.

Every test gets its own home, an environment with no FLEETKEY_* variable (nor COLUMNS, SOURCE_DATE_EPOCH
or NO_COLOR) leaking in from the caller, stdin closed and no controlling terminal (a new session:
fleetkey prompts on /dev/tty), so that nothing can prompt.
"""
import json
import os
import pty
import re
import select
import sqlite3
import struct
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("FLEETKEY_BIN", os.path.join(os.path.dirname(__file__), "../../build/fleetkey"))
SOURCE_DIR = os.environ.get("FLEETKEY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))

# Exit codes from fleetkey(1).
OK, FAILURE, USAGE, NOT_FOUND, CONFLICT, KEY, REGISTRY = 0, 1, 2, 3, 4, 5, 6
TOKEN_MALFORMED, TOKEN_BAD_MAC, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID = 10, 11, 12, 13
TOKEN_REVOKED, TOKEN_UNKNOWN_KEY, TOKEN_WRONG_AUDIENCE = 14, 15, 16

TEST_SEED = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
TEST_KEY_WARNING = ("fleetkey: warning: using a TEST master key (made with --test-seed): its keys are "
                    "reproducible by anyone with the seed; never provision real devices with it\n")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# FLEETKEY_TEST_HSM=1 (the cli.hsm.* tests): init_test_key and init_plain keep the master key in a SoftHSM2
# token made in the test's own directory, never in /var/lib/softhsm.
HSM = os.environ.get("FLEETKEY_TEST_HSM") == "1"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
HSM_PIN = "1234"
HSM_URI = f"pkcs11:token=fleetkey?module-path={SOFTHSM_MODULE}"


def make_softhsm_token(tmp, label="fleetkey"):
    """Initialises a SoftHSM2 token `label` whose files are in tmp/softhsm (user PIN HSM_PIN); returns the
    environment that points SoftHSM2 there."""
    tokens = os.path.join(tmp, "softhsm", "tokens")
    os.makedirs(tokens, exist_ok=True)
    conf = os.path.join(tmp, "softhsm", "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": conf}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", HSM_PIN, "--so-pin",
                    "87654321"], env={**os.environ, **env}, check=True, capture_output=True)
    return env


def static_binary():
    """Whether fleetkey is a static executable (the release build): an ELF file without PT_INTERP."""
    with open(BIN, "rb") as f:
        elf = f.read()
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return all(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] != 3 for i in range(phnum))


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def jsonl(self):
        return [json.loads(line) for line in self.out.splitlines()]

    def __repr__(self):
        return f"Run(rc={self.rc}, out={self.out!r}, err={self.err!r})"


class FleetTest(unittest.TestCase):
    """A test case with a fresh home in self.home and helpers to run fleetkey in it."""

    maxDiff = None

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="fleetkey-test-")
        self.tmp = self._tmp.name
        self.home = os.path.join(self.tmp, "home")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("FLEETKEY_") and k not in ("COLUMNS", "SOURCE_DATE_EPOCH", "NO_COLOR")}
        self.env.update({"FLEETKEY_HOME": self.home, "FLEETKEY_ACTOR": "tester", "LC_ALL": "C.UTF-8"})
        if PG_STATE:
            pg_setup(self)

    def tearDown(self):
        self._tmp.cleanup()

    def run_fk(self, *args, input=None, env=None, binary=False):
        e = dict(self.env)
        if env:
            e.update(env)
        if PG_STATE:
            pg_registry_for_home(self, args, e)
        proc = subprocess.run([BIN, *args], input=input, capture_output=True, env=e,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              text=not binary, timeout=300, start_new_session=True)
        return Run(proc)

    def fk(self, *args, **kw):
        """Runs fleetkey and asserts success."""
        r = self.run_fk(*args, **kw)
        self.assertEqual(r.rc, 0, f"fleetkey {' '.join(args)} failed: {r}")
        return r

    def fails(self, code, *args, **kw):
        """Runs fleetkey, asserts exit `code`, nothing on stdout, and on stderr one `fleetkey: error:` line
        after nothing but the test-key warning."""
        r = self.run_fk(*args, **kw)
        self.assertEqual(r.rc, code, f"fleetkey {' '.join(args)}: {r}")
        self.assertEqual(r.out, "", r)
        err = r.err[len(TEST_KEY_WARNING):] if r.err.startswith(TEST_KEY_WARNING) else r.err
        self.assertRegex(err, r"^fleetkey: error: [^\n]+\n$")
        return r

    def pty_session(self, args, answers=(), timeout=120):
        """Runs fleetkey with a pseudo-terminal as its controlling terminal and stdout, typing the next of
        `answers` whenever its output since the last answer ends in a prompt (':'), until it exits. A
        command that asks fewer questions than there are answers leaves the rest untyped.
        Returns (exit code, everything it printed with "<typed>" where it was answered, answers typed)."""
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(BIN, [BIN, *args], self.env)
        out, since, typed = b"", 0, 0
        deadline = time.time() + timeout
        while time.time() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child has exited and the terminal is gone
                    break
                if not chunk:
                    break
                out += chunk
            if typed < len(answers) and out[since:].rstrip().endswith(b":"):
                os.write(fd, answers[typed].encode() + b"\n")
                typed += 1
                out += b"<typed>"
                since = len(out)
        else:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out.decode(), typed

    def run_on_pty(self, args, answers=()):
        """pty_session without the count: (exit code, everything it printed)."""
        rc, out, _ = self.pty_session(args, answers)
        return rc, out

    def init_test_key(self, seed=TEST_SEED):
        return self.fk("init", "--no-passphrase", "--test-seed", seed, *self.hsm_init_args())

    def init_plain(self):
        return self.fk("init", "--no-passphrase", *self.hsm_init_args())

    def hsm_init_args(self):
        """With FLEETKEY_TEST_HSM=1: a SoftHSM2 token for this test, its PIN in the environment, and init's
        --pkcs11 option."""
        if not HSM:
            return ()
        self.env.update(make_softhsm_token(self.tmp))
        self.env["FLEETKEY_PKCS11_PIN"] = HSM_PIN
        return ("--pkcs11", HSM_URI)

    def write_private(self, name, content, mode=0o600):
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w" if isinstance(content, str) else "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    @staticmethod
    def read(path, mode="r"):
        with open(path, mode) as f:
            return f.read()

    @property
    def registry_path(self):
        if PG_STATE:
            return self.pg_uri
        return os.path.join(self.home, "registry.db")

    @property
    def key_path(self):
        return os.path.join(self.home, "master.key")

    def db(self):
        if PG_STATE:
            return pg_db(self)
        con = sqlite3.connect(f"file:{self.registry_path}?mode=ro", uri=True)
        self.addCleanup(con.close)
        return con

    def writable_db(self):
        """A connection that may change the registry behind fleetkey's back (tests that tamper with it or
        build a state fleetkey would not write): sqlite3 on the file, or psycopg2 in autocommit."""
        if PG_STATE:
            return pg_db(self)
        con = sqlite3.connect(self.registry_path)
        self.addCleanup(con.close)
        return con

    def save_registry(self):
        """A copy of the registry as it is now, for restore_registry: an SQLite backup in memory, or on
        PostgreSQL a database made from this one as its template (which ends other connections to it)."""
        if PG_STATE:
            name = "fk_saved_" + os.urandom(8).hex()
            admin = pg_connect(self.pg_state, "postgres")
            self.addCleanup(admin.close)
            cur = admin.cursor()
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.pg_dbname,))
            cur.execute(f"CREATE DATABASE {name} TEMPLATE {self.pg_dbname}")
            self.addCleanup(lambda: admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            return name
        saved = sqlite3.connect(":memory:")
        self.addCleanup(saved.close)
        live = sqlite3.connect(self.registry_path)
        live.backup(saved)
        live.close()
        return saved

    def restore_registry(self, saved):
        """Puts back the registry save_registry copied."""
        if PG_STATE:
            admin = pg_connect(self.pg_state, "postgres")
            self.addCleanup(admin.close)
            admin.cursor().execute(f"DROP DATABASE {self.pg_dbname} WITH (FORCE)")
            admin.cursor().execute(f"CREATE DATABASE {self.pg_dbname} TEMPLATE {saved}")
            return
        live = sqlite3.connect(self.registry_path)
        saved.backup(live)
        live.close()

    def rows(self, sql, *params):
        return self.db().execute(sql, params).fetchall()

    def registry_bytes(self):
        """Everything the registry holds, as bytes: its files (WAL and shared memory included), or on
        PostgreSQL the database as pg_dump writes it."""
        if PG_STATE:
            return subprocess.run([os.path.join(self.pg_state["bin"], "pg_dump"), "-h", self.pg_state["socket"], "-U",
                                   self.pg_state["user"], self.pg_dbname], capture_output=True, check=True).stdout
        data = b""
        for f in sorted(os.listdir(os.path.dirname(self.registry_path))):
            if f.startswith(os.path.basename(self.registry_path)):
                data += self.read(os.path.join(os.path.dirname(self.registry_path), f), "rb")
        return data

    def snapshot(self):
        """Every table's rows, for asserting that a failed command changed nothing."""
        if PG_STATE:
            return pg_snapshot(self)
        con = self.db()
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        snap = {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
        snap["user_version"] = con.execute("PRAGMA user_version").fetchone()
        return snap


def zbar(*paths):
    """The texts zbarimg decodes from image files, in order. Only QR codes are looked for: with every
    symbology enabled, zbarimg now and then also "finds" a linear barcode in a QR code's modules."""
    r = subprocess.run(["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", *paths],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r
    return r.stdout.splitlines()


# The PostgreSQL run of these tests (tests/CMakeLists.txt's cli.pg.* entries): FLEETKEY_TEST_PG names the
# state file of the cluster tests/cli/pg_cluster.py started; each test then gets a fresh database in it,
# named by FLEETKEY_REGISTRY. db(), rows() and snapshot() read that database through psycopg2 with the
# tests' SQLite SQL adapted (? placeholders, the quoted "user" column). A test that reads or writes the
# SQLite file itself is marked @sqlite_only("why").
PG_STATE = os.environ.get("FLEETKEY_TEST_PG")


def sqlite_only(reason):
    return unittest.skipIf(PG_STATE, f"SQLite only: {reason}")


def pg_cluster():
    with open(PG_STATE) as f:
        state = json.load(f)
    if "skip" in state:
        raise unittest.SkipTest(state["skip"])
    return state


def pg_connect(state, dbname):
    import psycopg2  # Debian's python3-psycopg2; only the PostgreSQL run needs it
    con = psycopg2.connect(host=state["socket"], user=state["user"], dbname=dbname)
    con.autocommit = True
    return con


def pg_registry_for_home(test, args, e):
    """Another home (--home, $FLEETKEY_HOME) has a registry of its own on SQLite: here a database of its own."""
    args = [os.fsdecode(a) for a in args]
    if "--registry" in args or any(a.startswith("--registry=") for a in args) or \
            e.get("FLEETKEY_REGISTRY") != test.pg_uri:
        return
    home = e.get("FLEETKEY_HOME")
    for i, a in enumerate(args):
        if a == "--home" and i + 1 < len(args):
            home = args[i + 1]
        elif a.startswith("--home="):
            home = a[len("--home="):]
    if home and home != test.home:
        if home not in test.pg_homes:
            test.pg_homes[home] = pg_new_database(test)
        e["FLEETKEY_REGISTRY"] = test.pg_homes[home]


def pg_new_database(test):
    state = test.pg_state
    name = "fk_" + os.urandom(8).hex()
    admin = pg_connect(state, "postgres")
    admin.cursor().execute(f"CREATE DATABASE {name}")

    def drop():
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    test.addCleanup(drop)
    return f"postgresql:///{name}?host={state['socket']}&user={state['user']}"


def pg_setup(test):
    test.pg_state, test.pg_homes = pg_cluster(), {}
    test.pg_uri = pg_new_database(test)
    test.pg_dbname = test.pg_uri.split("?")[0].rsplit("/", 1)[1]
    test.env["FLEETKEY_REGISTRY"] = test.pg_uri


class PgCompat:
    """The part of sqlite3.Connection the tests use, over psycopg2."""

    def __init__(self, con):
        self.con = con

    @staticmethod
    def adapt(sql):
        sql = re.sub(r'(?<![\w"\'.$])user(?![\w"\'(])', '"user"', sql)
        sql = re.sub(r"json_extract\((\w+), '\$\.(\w+)'\)", r"(\1::jsonb -> '\2')", sql)
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql, params=()):
        cur = self.con.cursor()
        if sql.strip() == "PRAGMA integrity_check":
            # amcheck: every B-tree index is well-formed and indexes every row of its table.
            cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            cur.execute("SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")
            cur.execute("SELECT 'ok'")
            return cur
        cur.execute(self.adapt(sql), tuple(params))
        return cur

    # sqlite3's transaction API, for code that runs on both: every statement here commits at once.
    def commit(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self):
        self.con.close()


def pg_db(test):
    con = PgCompat(pg_connect(test.pg_state, test.pg_dbname))
    test.addCleanup(con.close)
    return con


def pg_snapshot(test):
    con = test.db()
    tables = [r[0] for r in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
    snap = {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    snap["user_version"] = con.execute("SELECT schema_version FROM fleetkey_registry").fetchone()
    return snap


def main():
    unittest.main(verbosity=2)
