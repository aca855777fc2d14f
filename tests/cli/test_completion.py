"""fleetkey completion bash|zsh|fish prints the scripts of completions/; the scripts complete device ids and
user names from the registry through the hidden fleetkey __complete, and `pair <Tab>` never inserts decode."""
import os
import shutil
import subprocess

import fk

SRC = fk.SOURCE_DIR


class CompletionTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        for d in ("LOCK-1", "LOCK-2", "GATE-1"):
            self.fk("-q", "device", "add", d)
        for u in ("alice", "albert", "bob"):
            self.fk("-q", "user", "add", u)
        # The scripts run `fleetkey` as typed (COMP_WORDS[0]): the built one, first on PATH.
        self.env["PATH"] = os.path.dirname(os.path.abspath(fk.BIN)) + os.pathsep + self.env.get("PATH", "")

    def bash(self, *lines):
        """Each line is a command line to complete (the last word the one completed); returns the candidates."""
        script = (f"source {SRC}/completions/fleetkey.bash; "
                  't(){ COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _fleetkey; '
                  'echo "${COMPREPLY[*]}"; }; ')
        script += "; ".join("t " + line for line in lines)
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=self.env, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        return r.stdout.splitlines()

    def test_completion_command_prints_the_scripts(self):
        for shell, name in (("bash", "fleetkey.bash"), ("zsh", "_fleetkey"), ("fish", "fleetkey.fish")):
            with open(f"{SRC}/completions/{name}") as f:
                self.assertEqual(self.fk("completion", shell).out, f.read(), shell)
        r = self.fails(fk.USAGE, "completion", "tcsh")
        self.assertIn("SHELL: tcsh not in {bash,zsh,fish}", r.err)

    def test_hidden_complete_command(self):
        self.assertEqual(self.fk("__complete", "devices", "LOCK").out, "LOCK-1\nLOCK-2\n")
        self.assertEqual(self.fk("__complete", "devices").out, "GATE-1\nLOCK-1\nLOCK-2\n")
        self.assertEqual(self.fk("__complete", "users", "al").out, "albert\nalice\n")
        # Read-only, and quiet on errors: no registry, nothing to complete.
        before = self.snapshot()
        self.fk("__complete", "devices", "L")
        self.assertEqual(self.snapshot(), before)
        r = self.run_fk("--home", os.path.join(self.tmp, "none"), "__complete", "devices", "")
        self.assertEqual((r.rc, r.out, r.err), (0, "", ""))
        self.assertNotIn("__complete", self.fk("--help").out)

    def home_words(self, home):
        """The global options that name `home`'s registry on a completion line: --home, or on PostgreSQL
        (where the registry is not in the home) --registry and the database run_fk gives that home."""
        if fk.PG_STATE:
            if home not in self.pg_homes:
                self.pg_homes[home] = fk.pg_new_database(self)
            return f"--registry '{self.pg_homes[home]}'"
        return f"--home {home}"

    def test_bash_completes_from_the_registry(self):
        self.assertEqual(self.bash("fleetkey device show L", "fleetkey device revoke ''", "fleetkey pair ''",
                                   "fleetkey pair d", "fleetkey pair G", "fleetkey user grant al",
                                   "fleetkey user grant alice --device LOCK-", "fleetkey user add ''",
                                   "fleetkey token mint --aud G", "fleetkey comp",
                                   f"fleetkey {self.home_words(self.tmp + '/none')} device show ''"),
                         ["LOCK-1 LOCK-2", "GATE-1 LOCK-1 LOCK-2", "GATE-1 LOCK-1 LOCK-2", "decode", "GATE-1",
                          "albert alice", "LOCK-1 LOCK-2", "", "GATE-1", "completion", ""])

    def test_bash_pair_never_inserts_decode(self):
        # With no device registered, `pair <Tab>` has no candidate at all (decode is offered once typed).
        env = os.path.join(self.tmp, "empty")
        self.fk("--home", env, "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.assertEqual(self.bash(f"fleetkey {self.home_words(env)} pair ''", f"fleetkey {self.home_words(env)} pair de"),
                         ["", "decode"])

    @fk.unittest.skipUnless(shutil.which("zsh"), "zsh is not installed")
    def test_zsh_script_parses(self):
        subprocess.run(["zsh", "-n", f"{SRC}/completions/_fleetkey"], check=True)
        out = subprocess.run(["zsh", "-f", "-c", f"source {SRC}/completions/_fleetkey 2>/dev/null; "
                              "_fleetkey_positional pair; _fleetkey_positional 'user key'; "
                              "_fleetkey_choices 'user grant' --device"],
                             capture_output=True, text=True).stdout
        self.assertEqual(out.splitlines(), ["@device", "@user", "@device"])

    @fk.unittest.skipUnless(shutil.which("fish"), "fish is not installed")
    def test_fish_completes_from_the_registry(self):
        subprocess.run(["fish", "--no-execute", f"{SRC}/completions/fleetkey.fish"], check=True)
        script = (f"source {SRC}/completions/fleetkey.fish; complete -C 'fleetkey device show L'; "
                  "complete -C 'fleetkey pair '; complete -C 'fleetkey user key al'")
        out = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True,
                             env=self.env)
        words = [line.split("\t")[0] for line in out.stdout.splitlines()]
        self.assertEqual(words, ["LOCK-1", "LOCK-2", "GATE-1", "LOCK-1", "LOCK-2", "albert", "alice"])


if __name__ == "__main__":
    fk.main()
