"""fleetkey agent start | stop | status: the master key unlocked once, derivations served over a UNIX socket,
byte-identical to the key file's."""
import os
import re
import signal
import socket
import stat
import struct
import time
import unittest

import fk
from fk import KEY

PASS_WARNING = re.compile(r"^fleetkey: warning: cannot reach the agent at (\S+): [^\n]+: using the master key file\n")


def wait_gone(path, timeout=10):
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(path)


def request(path, body):
    """One request in the AGENT PROTOCOL of fleetkey-formats(5); the response body, or None when the agent
    closed the connection without one."""
    data = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(struct.pack(">I", len(body)) + body)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):  # closed on us, the request unread
            return None
    if not data:
        return None
    n, = struct.unpack(">I", data[:4])
    return data[4:4 + n]


class AgentTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.runtime = os.path.join(self.tmp, "run")
        os.mkdir(self.runtime, 0o700)
        self.env["XDG_RUNTIME_DIR"] = self.runtime
        self.pids = []
        self.addCleanup(self.kill_agents)

    def kill_agents(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def start(self, *args, pf=None):
        pre = ("--passphrase-file", pf) if pf else ()
        r = self.fk(*pre, "agent", "start", *args)
        m = re.fullmatch(r"FLEETKEY_AGENT='([^']+)'; export FLEETKEY_AGENT;\necho fleetkey agent pid (\d+);\n", r.out)
        self.assertIsNotNone(m, r.out)
        path, pid = m.group(1), int(m.group(2))
        self.pids.append(pid)
        return path, pid

    def test_unlock_once_same_keys_then_stop(self):
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        self.fk("--passphrase-file", pf, "device", "add", "SN-0")
        path, pid = self.start(pf=pf)
        d = os.path.dirname(path)
        self.assertEqual(os.path.dirname(d), self.runtime)
        self.assertRegex(os.path.basename(d), r"^fleetkey-[A-Za-z0-9]{6}$")
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        agent = {"FLEETKEY_AGENT": path}
        # No passphrase anywhere: the agent does the key's work.
        self.fk("device", "add", "SN-1", env=agent)
        self.fk("user", "add", "alice", env=agent)
        self.fk("user", "grant", "alice", "--device", "SN-1", "--role", "owner", env=agent)
        for args in (["device", "key", "SN-0"], ["device", "key", "SN-1"], ["device", "key", "SN-1", "--purpose", "x"],
                     ["user", "key", "alice", "--device", "SN-1"], ["token", "key"],
                     ["token", "key", "--aud", "SN-1", "--for", "cwt64"]):
            self.assertEqual(self.fk(*args, env=agent).out, self.fk("--passphrase-file", pf, *args).out, args)
        tok = self.fk("token", "mint", "--sub", "bob", "--role", "r", "--aud", "SN-1", env=agent).out.strip()
        self.fk("--passphrase-file", pf, "token", "verify", tok, "--aud", "SN-1")
        tok = self.fk("--passphrase-file", pf, "token", "mint", "--sub", "bob", "--role", "r").out.strip()
        self.fk("token", "verify", tok, env=agent)
        st = self.fk("agent", "status", env=agent).out
        self.assertEqual(st, f"socket:    {path}\npid:       {pid}\nversions:  1 (current 1)\ntest key:  no\n"
                             "expires:   never\n")
        j = self.fk("--json", "agent", "status", env=agent).json()
        self.assertEqual(j, {"socket": path, "pid": pid, "versions": [1], "current": 1, "test_key": False,
                             "expires": None})
        r = self.fk("agent", "stop", env=agent)
        self.assertEqual(r.out, f"unset FLEETKEY_AGENT;\necho fleetkey agent pid {pid} stopped;\n")
        self.assertFalse(os.path.exists(path))
        self.assertTrue(wait_gone(d))
        # Gone: a command with the stale variable and no passphrase fails as without an agent.
        r = self.run_fk("device", "add", "SN-2", env=agent)
        self.assertEqual(r.rc, KEY, r)
        self.assertRegex(r.err, PASS_WARNING)
        self.assertRegex(r.err, r"\nfleetkey: error: a passphrase is needed and there is no terminal to ask")
        self.fails(KEY, "agent", "status", env=agent)
        self.fails(KEY, "agent", "status")

    def test_no_agent_and_no_passphrase_fails_as_before(self):
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        r = self.fails(KEY, "device", "add", "SN-1")
        self.assertIn("a passphrase is needed", r.err)
        self.fails(KEY, "agent", "start")
        self.assertEqual(os.listdir(self.runtime), [])

    def test_test_key_derivations_identical_through_the_agent(self):
        """Every derived value from a test key, through the agent and from the file, byte for byte."""
        self.init_test_key()
        path, _ = self.start()
        agent = {"FLEETKEY_AGENT": path}
        ids = os.path.join(self.tmp, "ids.csv")
        with open(ids, "w") as f:
            f.write("id\n" + "".join(f"SN-{i:05}\n" for i in range(5000)))
        keys_a, keys_b = os.path.join(self.tmp, "a.csv"), os.path.join(self.tmp, "b.csv")
        r = self.fk("device", "import", ids, "--keys-out", keys_a, env=agent)
        self.assertEqual(r.err, fk.TEST_KEY_WARNING)
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.fk("--home", other, "device", "import", ids, "--keys-out", keys_b)
        self.assertEqual(self.read(keys_a), self.read(keys_b))
        self.fk("user", "add", "alice", env=agent)
        self.fk("--home", other, "user", "add", "alice")
        grant = ["user", "grant", "alice", "--device", "SN-00007", "--role", "owner"]
        # The grant's output shows when it was made: pinned, so that a second boundary between the two
        # commands does not tell them apart.
        pinned = {"SOURCE_DATE_EPOCH": "1800000000"}
        self.assertEqual(self.fk(*grant, env={**agent, **pinned}).out.split("token:")[0],
                         self.fk("--home", other, *grant, env=pinned).out.split("token:")[0])
        for args in (["pair", "SN-00003", "--qr", "none"], ["token", "mint", "--sub", "s", "--role", "r", "--now",
                                                           "@1800000000", "--ttl", "1h"],
                     ["user", "key", "alice", "--device", "SN-00007", "--format", "hex"]):
            self.assertEqual(self.fk(*args, env=agent).out, self.fk("--home", other, *args).out, args)
        # Commands that rewrite the key ring use the key file, never the agent; the agent then exits.
        self.fk("master", "rotate", env=agent)
        self.assertTrue(wait_gone(path))

    def test_lifetime_and_sigterm_wipe_and_remove_the_socket(self):
        self.init_test_key()
        path, pid = self.start("--lifetime", "2s")
        j = self.fk("--json", "agent", "status", env={"FLEETKEY_AGENT": path}).json()
        self.assertEqual((j["pid"], j["socket"], j["test_key"], j["versions"]), (pid, path, True, [1]))
        self.assertRegex(j["expires"], fk.ISO_TIME)
        self.assertTrue(wait_gone(path))
        self.assertTrue(wait_gone(os.path.dirname(path)))
        r = self.fk("--json", "agent", "start")
        j = r.json()
        self.pids.append(j["pid"])
        self.assertEqual((list(j), j["expires"]), (["socket", "pid", "expires"], None))
        path, pid = j["socket"], j["pid"]
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_gone(path))
        self.assertTrue(wait_gone(os.path.dirname(path)))
        self.fails(fk.USAGE, "agent", "start", "--lifetime", "forever")

    def test_sigterm_at_once_after_start_still_removes_the_socket(self):
        # `agent start` prints the pid as soon as it forks: a SIGTERM sent at once must wait for the
        # agent's handler (it once met the default action, which left the socket and its directory).
        self.init_test_key()
        for _ in range(20):
            j = self.fk("--json", "agent", "start").json()
            self.pids.append(j["pid"])
            os.kill(j["pid"], signal.SIGTERM)
            self.assertTrue(wait_gone(j["socket"]))
            self.assertTrue(wait_gone(os.path.dirname(j["socket"])))

    def test_killed_agent_leaves_nothing_a_later_agent_trips_over(self):
        self.init_test_key()
        path, pid = self.start()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        self.assertTrue(os.path.exists(path))  # SIGKILL: nothing could clean up
        path2, _ = self.start()
        self.assertNotEqual(os.path.dirname(path2), os.path.dirname(path))
        self.fk("device", "add", "SN-1", env={"FLEETKEY_AGENT": path2})
        # Another fleet's registry: a warning, then that fleet's key file.
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase")
        r = self.fk("--home", other, "device", "add", "SN-1", env={"FLEETKEY_AGENT": path2})
        registry = self.pg_homes[other] if fk.PG_STATE else f"{other}/registry.db"  # the other home's registry
        self.assertEqual(r.err, f"fleetkey: warning: the agent at {path2} holds the master key of another registry "
                                f"than {registry} (version 1 has another fingerprint): using the master key "
                                "file\n")
        # The stale socket: a warning, then the key file (unencrypted here) as without an agent.
        r = self.fk("device", "add", "SN-2", env={"FLEETKEY_AGENT": path})
        self.assertRegex(r.err, PASS_WARNING)

    def test_key_file_change_stops_the_agent(self):
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        path, _ = self.start(pf=pf)
        pf2 = self.write_private("pass2", "pw2\n")
        self.fk("--passphrase-file", pf, "master", "passwd", "--new-passphrase-file", pf2, "--kdf", "interactive",
                env={"FLEETKEY_AGENT": path})
        self.assertTrue(wait_gone(path))

    def test_protocol_info_and_expand(self):
        self.init_test_key()
        path, pid = self.start()
        info = request(path, b"\x01")
        self.assertEqual(info[0], 0)
        got_pid, test, current, expires, count = struct.unpack(">IBIqH", info[1:20])
        self.assertEqual((got_pid, test, current, expires, count), (pid, 1, 1, -1, 1))
        fp = self.fk("--json", "master", "list").jsonl()[0]["fingerprint"]
        self.assertEqual(info[20 + 12:20 + 28].hex(), fp)
        # K_dev("SN-1") = HKDF-Expand(PRK[1], info("device", "SN-1"), 32): the same as `device key`.
        self.fk("device", "add", "SN-1")
        want = bytes.fromhex(self.fk("device", "key", "SN-1", "--format", "hex").out.strip())
        dev_info = b"\x00\x06device\x00\x04SN-1"
        body = b"\x02" + struct.pack(">IHI", 1, 32, 2) + (struct.pack(">H", len(dev_info)) + dev_info) * 2
        out = request(path, body)
        self.assertEqual(out, b"\x00" + want + want)
        refused = request(path, b"\x02" + struct.pack(">IHI", 7, 32, 1) + struct.pack(">H", 1) + b"x")
        self.assertEqual(refused, b"\x01master key version 7 is not in the key file")
        self.assertEqual(request(path, b"\x09"), b"\x01unknown request")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as another uid")
    def test_another_uid_is_refused(self):
        self.init_test_key()
        path, _ = self.start()
        # Open the directories and socket to everyone, so that only the SO_PEERCRED check stands in the way.
        for d in (self.tmp, self.runtime, os.path.dirname(path)):
            os.chmod(d, 0o711)
        os.chmod(path, 0o666)
        self.assertIsNotNone(request(path, b"\x01"))
        rd, wr = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(rd)
                os.setgid(65534)
                os.setuid(65534)
                os.write(wr, b"refused" if request(path, b"\x01") is None else b"served")
            except BaseException as e:
                os.write(wr, repr(e).encode())
            os._exit(0)
        os.close(wr)
        os.waitpid(child, 0)
        with os.fdopen(rd) as f:
            self.assertEqual(f.read(), "refused")
        self.assertIsNotNone(request(path, b"\x01"))  # and still serves its own user


if __name__ == "__main__":
    fk.main()
