"""The terminal (issue 20): the passphrase prompt on /dev/tty with stdin a pipe and retries, help wrapped to
the terminal's width, the terminal QR code that fits 80 columns."""
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import fk


class TtyRun:
    def __init__(self, rc, out, tty, typed):
        self.rc, self.out, self.tty, self.typed = rc, out, tty, typed


class TerminalTest(fk.FleetTest):
    def with_tty(self, args, stdin="", answers=(), timeout=120):
        """Runs fleetkey in a new session whose controlling terminal (/dev/tty) and stderr are a
        pseudo-terminal, with stdin and stdout pipes: `stdin` is written to its stdin, and the next of
        `answers` is typed on the terminal whenever what it wrote there since the last answer ends in ':'."""
        master, slave = os.openpty()
        name = os.ttyname(slave)

        def session():
            os.setsid()
            os.close(os.open(name, os.O_RDWR))  # the first terminal a session leader opens is its own

        proc = subprocess.Popen([fk.BIN, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave,
                                env=self.env, preexec_fn=session)
        os.close(slave)
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
        tty, since, typed = b"", 0, 0
        deadline = time.time() + timeout
        while time.time() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every holder of the terminal has closed it
                    break
                if not chunk:
                    break
                tty += chunk
            elif proc.poll() is not None:
                break
            if typed < len(answers) and tty[since:].rstrip().endswith(b":"):
                os.write(master, answers[typed].encode() + b"\n")
                typed += 1
                tty += b"<typed>"
                since = len(tty)
        else:
            proc.kill()
        out = proc.stdout.read().decode()
        proc.stdout.close()
        rc = proc.wait()
        os.close(master)
        return TtyRun(rc, out, tty.decode().replace("\r\n", "\n"), typed)

    def init_with_passphrase(self, passphrase="tty secret"):
        pf = self.write_private("pass", passphrase + "\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")

    def test_prompt_on_dev_tty_with_stdin_a_pipe(self):
        self.init_with_passphrase()
        r = self.with_tty(["device", "import", "-", "--format", "csv", "--progress", "never"], stdin="id\nSN-1\nSN-2\n",
                          answers=["tty secret"])
        self.assertEqual((r.rc, r.typed), (0, 1), r.tty)
        self.assertEqual(r.tty, "Passphrase: <typed>\n")
        self.assertRegex(r.out, r"^imported 2 devices, skipped 0, in [0-9.]+ s \([0-9]+ devices/s\)\n$")
        self.assertEqual([row[0] for row in self.rows("SELECT id FROM devices ORDER BY id")], ["SN-1", "SN-2"])

    def test_wrong_passphrase_gets_a_retry(self):
        self.init_with_passphrase()
        r = self.with_tty(["device", "add", "SN-1"], answers=["wrong", "tty secret"])
        self.assertEqual((r.rc, r.typed), (0, 2), r.tty)
        self.assertEqual(r.tty, "Passphrase: <typed>\nfleetkey: warning: wrong passphrase, try again (2 of 3)\n"
                                "Passphrase: <typed>\n")
        self.assertRegex(r.out, r"^registered device SN-1 \(master key v1, fingerprint [0-9a-f]+\)\n$")

    def test_three_wrong_passphrases_fail_with_exit_5(self):
        self.init_with_passphrase()
        before = self.snapshot()
        r = self.with_tty(["device", "add", "SN-1"], answers=["one", "two", "three", "four"])
        self.assertEqual((r.rc, r.typed), (fk.KEY, 3), r.tty)
        self.assertEqual(r.tty, "Passphrase: <typed>\nfleetkey: warning: wrong passphrase, try again (2 of 3)\n"
                                "Passphrase: <typed>\nfleetkey: warning: wrong passphrase, try again (3 of 3)\n"
                                "Passphrase: <typed>\nfleetkey: error: cannot decrypt the master key: wrong "
                                "passphrase, or the key file was modified\n")
        self.assertEqual(r.out, "")
        self.assertEqual(self.snapshot(), before)

    def test_wrong_passphrase_from_a_file_is_not_retried(self):
        self.init_with_passphrase()
        pf = self.write_private("wrong", "wrong\n")
        r = self.with_tty(["--passphrase-file", pf, "device", "add", "SN-1"], answers=["tty secret"])
        self.assertEqual((r.rc, r.typed), (fk.KEY, 0), r.tty)
        self.assertEqual(r.tty, "fleetkey: error: cannot decrypt the master key: wrong passphrase, or the key file "
                                "was modified\n")

    def test_no_terminal_fails_with_exit_5(self):
        self.init_with_passphrase()
        r = self.fails(fk.KEY, "device", "import", "-", "--format", "csv", input="id\nSN-1\n")
        self.assertEqual(r.err, "fleetkey: error: a passphrase is needed and there is no terminal to ask: use "
                                "--passphrase-file, FLEETKEY_PASSPHRASE_FILE or FLEETKEY_PASSPHRASE\n")

    # -- help wrapped to the terminal's width --

    def help_at(self, columns, *path):
        return self.fk(*path, "--help", env={"COLUMNS": str(columns)}).out

    def test_help_wrapped_at_60_and_100_columns(self):
        self.assertEqual(self.help_at(60, "user", "revoke"), """\
Revoke a user's grant on one device, or on every device

Usage: fleetkey user revoke [OPTIONS] NAME

Positionals:
  NAME TEXT REQUIRED          User name

Options:
  -h,--help                   Print this help and exit
  --device ID                 Only this device (default:
                              every device)
  --if-not-revoked            Succeed without change (exit
                              0, "already revoked") if there
                              is no active grant left to
                              revoke
  --reason TEXT REQUIRED      Why, for the audit trail (1 to
                              1024 bytes of printable text)

""")
        self.assertEqual(self.help_at(100, "user", "revoke").splitlines()[9:12], [
            '  --device ID                 Only this device (default: every device)',
            '  --if-not-revoked            Succeed without change (exit 0, "already revoked") if there is no',
            '                              active grant left to revoke'])

    def test_help_never_breaks_a_word(self):
        for path in [(), ("user", "grant"), ("device", "import"), ("pair",), ("token", "mint")]:
            wide = self.help_at(1000, *path)
            for columns in (60, 100):
                text = self.help_at(columns, *path)
                for line in text.splitlines():
                    # Only the usage line (not wrapped) and a single word longer than the column may exceed it.
                    if not line.startswith("Usage:") and len(line.split()) > 1:
                        self.assertLessEqual(len(line), columns, (path, columns, line))
                self.assertEqual(text.split(), wide.split(), (path, columns))
        # Unknown width (no terminal, no $COLUMNS): 80.
        self.assertEqual(self.fk("user", "revoke", "--help").out, self.help_at(80, "user", "revoke"))

    def test_help_takes_the_width_of_the_terminal(self):
        pid, fd = pty.fork()
        if pid == 0:
            env = {k: v for k, v in self.env.items() if k != "COLUMNS"}
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
            os.execve(fk.BIN, [fk.BIN, "user", "revoke", "--help"], env)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        os.close(fd)
        self.assertEqual(out.decode().replace("\r\n", "\n"), self.help_at(60, "user", "revoke"))

    # -- user grant --qr utf8 fits the terminal --

    def qr_grant(self, columns):
        self.init_test_key()
        self.fk("-q", "device", "add", "LOCK-1")
        self.fk("-q", "user", "add", "alice")
        return self.run_fk("-q", "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--now",
                           "2026-11-22T00:00:00Z", "--qr", "utf8", env={"COLUMNS": str(columns)})

    def decode_terminal_qr(self, text):
        """What a phone reads from `text` (half blocks, light modules drawn) on a dark terminal."""
        lines = text.splitlines()
        width, pad, scale = max(len(line) for line in lines), 8, 4
        rows = []
        for line in lines:
            rows.append([c in "\u2580\u2588" for c in line.ljust(width)])
            rows.append([c in "\u2584\u2588" for c in line.ljust(width)])
        full = [[False] * (width + 2 * pad)] * pad + [[False] * pad + r + [False] * pad for r in rows] + \
            [[False] * (width + 2 * pad)] * pad
        path = os.path.join(self.tmp, "qr.pgm")
        with open(path, "wb") as f:
            f.write(b"P5 %d %d 255\n" % (len(full[0]) * scale, len(full) * scale))
            for r in full:
                f.write(b"".join(bytes([255 if v else 0]) * scale for v in r) * scale)
        return fk.zbar(path)[0]

    def test_qr_fits_80_columns(self):
        r = self.qr_grant(80)
        self.assertEqual((r.rc, r.err), (0, ""))
        lines = r.out.splitlines()
        # The 485-byte bundle: version 17 (85 modules) at M, version 15 (77) at L, with a quiet zone of 1.
        self.assertEqual({len(line) for line in lines}, {79})
        self.assertEqual(len(lines), 40)
        bundle = self.decode_terminal_qr(r.out)
        self.assertTrue(bundle.startswith('{"type":"fleetkey-grant","version":1,"user":"alice","device":"LOCK-1"'))

    def test_qr_at_m_when_the_terminal_is_wide(self):
        r = self.qr_grant(200)
        self.assertEqual((r.rc, r.err), (0, ""))
        self.assertEqual({len(line) for line in r.out.splitlines()}, {89})  # 85 modules + 2 + 2
        self.assertIn('"user":"alice"', self.decode_terminal_qr(r.out))

    def test_qr_too_wide_for_the_terminal_warns(self):
        r = self.qr_grant(60)
        self.assertEqual(r.rc, 0)
        self.assertEqual({len(line) for line in r.out.splitlines()}, {79})
        self.assertEqual(r.err, "fleetkey: warning: the QR code is 79 columns wide and the terminal 60: it wraps and "
                                "cannot be scanned (widen the terminal, or use --qr png -o FILE)\n")


if __name__ == "__main__":
    fk.main()
