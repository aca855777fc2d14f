"""The terminal (issue 20): the passphrase prompt on /dev/tty with stdin a pipe and retries, help wrapped to
the terminal's width, the terminal QR code that fits 80 columns."""
import os
import select
import subprocess
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


if __name__ == "__main__":
    fk.main()
