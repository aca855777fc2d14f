"""A throwaway PostgreSQL cluster for the tests: `pg_cluster.py start STATE` and `pg_cluster.py stop STATE`.

start: initdb + pg_ctl in a new temporary directory, listening only on a UNIX socket in that
directory (no TCP), trust authentication for its own superuser "postgres", fsync off. As root
(initdb refuses to run as root), the server runs as the unprivileged user "nobody" through setpriv.
Writes STATE, a JSON file that fk.py reads: {"dir", "socket", "user", "bin"}. When no PostgreSQL
server binaries are installed, STATE says {"skip": reason} and the PostgreSQL tests skip with it.
stop: stops the server (fast shutdown) and removes the directory and STATE.
`start STATE --durable` keeps PostgreSQL's default durability (fsync, synchronous_commit): benchmarks.
"""
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile


def server_bin():
    """The directory of the newest installed initdb/pg_ctl/postgres (Debian's /usr/lib/postgresql/N/bin)."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        try:
            found.append((int(os.path.basename(os.path.dirname(d))), d))
        except ValueError:
            pass
    for _, d in sorted(found, reverse=True):
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return d
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    return None


def as_server_user(argv):
    """argv run as the server's user: this one, or "nobody" when this one is root."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=nobody", "--regid=" + str(pwd.getpwnam("nobody").pw_gid), "--clear-groups",
            "--inh-caps=-all", *argv]


def start(state_path, durable=False):
    bindir = server_bin()
    if bindir is None:
        write_state(state_path, {"skip": "no PostgreSQL server binaries (initdb, pg_ctl): install the postgresql "
                                         "package (.ci/deps does)"})
        return 0
    d = tempfile.mkdtemp(prefix="fleetkey-pg-")
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    data = os.path.join(d, "data")
    run(as_server_user([os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--locale=C", "--no-sync", "--no-instructions"]))
    options = f"-k {d} -c listen_addresses='' -c max_connections=300"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    run(as_server_user([os.path.join(bindir, "pg_ctl"), "-D", data, "-l", os.path.join(d, "server.log"), "-o",
                        options, "-w", "-t", "60", "start"]))
    write_state(state_path, {"dir": d, "socket": d, "user": "postgres", "bin": bindir, "data": data})
    return 0


def stop(state_path):
    try:
        with open(state_path) as f:
            state = json.load(f)
    except FileNotFoundError:
        return 0
    stop_state(state)
    os.remove(state_path)
    return 0


def stop_state(state):
    """Stops the cluster `state` (start's STATE, read) describes, and removes its directory."""
    if "dir" in state:
        subprocess.run(as_server_user([os.path.join(state["bin"], "pg_ctl"), "-D", state["data"], "-m", "fast",
                                       "-w", "stop"]), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(state["dir"], ignore_errors=True)


def run(argv):
    # Output to a file, not a pipe: the server that pg_ctl starts keeps its stdout open.
    with tempfile.TemporaryFile(mode="w+") as out:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        out.seek(0)
        r.stdout, r.stderr = out.read(), ""
    if r.returncode != 0:
        sys.exit(f"pg_cluster: {' '.join(argv)} failed ({r.returncode}): {r.stdout}{r.stderr}")


def write_state(path, state):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("start", "stop") or sys.argv[3:] not in ([], ["--durable"]):
        sys.exit("usage: pg_cluster.py start|stop STATE [--durable]")
    sys.exit(start(sys.argv[2], sys.argv[3:] == ["--durable"]) if sys.argv[1] == "start" else stop(sys.argv[2]))
