"""The man pages and the completions cover every command and option that `fleetkey --help` shows.

The command tree is read from the binary's own --help output, not from the generator, so that this
test checks the generated files independently. Also: man pages render without warnings, the
completion scripts load in their shells and complete, and `cmake --install` puts everything in place.
"""
import os
import re
import shutil
import subprocess
import tempfile

import fk

SRC = fk.SOURCE_DIR


def help_text(*path):
    return subprocess.run([fk.BIN, *path, "--help"], capture_output=True, text=True, check=True).stdout


def parse_help(text):
    """(subcommands, long options) from one CLI11 help page."""
    subs, opts, section = [], [], None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line
            continue
        m = re.match(r"^  (\S+)", line)
        if not m:
            continue
        if section == "Subcommands:":
            subs.append(m.group(1))
        else:
            # The names column ends at the first run of two spaces after the indent.
            names = line[2:].split("  ")[0]
            opts += re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", names)
    return subs, sorted(set(opts))


def command_tree():
    """Every command path with its options: {("device", "add"): ["--if-missing", ...], ...}."""
    tree, todo = {}, [()]
    while todo:
        path = todo.pop()
        subs, opts = parse_help(help_text(*path))
        tree[path] = opts
        todo += [path + (s,) for s in subs]
    return tree


class DocsTest(fk.FleetTest):
    @classmethod
    def setUpClass(cls):
        cls.tree = command_tree()

    def test_tree_is_complete(self):
        # Sanity of the parser itself: the foundation's commands are all found.
        for path in [("init",), ("master", "list"), ("master", "rotate"), ("master", "retire"), ("master", "passwd"),
                     ("device", "add"), ("device", "list"), ("device", "show"), ("device", "revoke"),
                     ("device", "key"), ("user", "add"), ("user", "list"), ("user", "show"), ("user", "grant"),
                     ("user", "revoke"), ("user", "key")]:
            self.assertIn(path, self.tree)
        self.assertIn("--if-missing", self.tree[("device", "add")])
        self.assertIn("--home", self.tree[()])

    def test_man_page_has_every_command_and_option(self):
        man = self.read(f"{SRC}/man/fleetkey.1").replace("\\-", "-")
        for path, opts in self.tree.items():
            if path and not any(p[:len(path)] == path and len(p) > len(path) for p in self.tree):
                self.assertIn(f'.SS "fleetkey {" ".join(path)}', man, f"man page lacks {' '.join(path)}")
                section = man.split(f'.SS "fleetkey {" ".join(path)}', 1)[1].split(".SS", 1)[0]
                for opt in opts:
                    if opt not in ("--help",) and opt not in self.tree[()]:
                        self.assertIn(opt, section, f"man page lacks {' '.join(path)} {opt}")
        for opt in self.tree[()]:
            self.assertIn(opt, man)

    def test_completions_have_every_command_and_option(self):
        for name in ["fleetkey.bash", "_fleetkey", "fleetkey.fish"]:
            text = self.read(f"{SRC}/completions/{name}")
            for path, opts in self.tree.items():
                if path:
                    self.assertIn(path[-1], text, f"{name} lacks {' '.join(path)}")
                for opt in opts:
                    needle = opt if name != "fleetkey.fish" else f"-l {opt[2:]}"
                    self.assertIn(needle, text, f"{name} lacks {' '.join(path)} {opt}")

    def test_bash_completion_completes(self):
        script = (f"source {SRC}/completions/fleetkey.bash; "
                  't(){ COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _fleetkey; '
                  'echo "${COMPREPLY[*]}"; }; '
                  't fleetkey dev; t fleetkey device k; t fleetkey --home /x device key SN-1 --format ""; '
                  't fleetkey user grant alice --r; t fleetkey init --kdf ""')
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.splitlines(), ["device", "key", "hex base64 c psk json", "--role --registry",
                                            "interactive moderate sensitive"])

    @fk.unittest.skipUnless(shutil.which("zsh"), "zsh is not installed")
    def test_zsh_completion_loads_and_its_tables_answer(self):
        subprocess.run(["zsh", "-n", f"{SRC}/completions/_fleetkey"], check=True)
        # compadd only works inside a completion widget; the tables it is fed are checked here.
        script = (f"autoload -U compinit; compinit -u; source {SRC}/completions/_fleetkey; "
                  "_fleetkey_subcommands device; _fleetkey_choices 'device key' --format; "
                  "whence -w _fleetkey; print -- $_comps[fleetkey]")
        out = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True)
        self.assertEqual(out.stdout.splitlines(), ["add import list show revoke key", "hex base64 c psk json",
                                                   "_fleetkey: function", "_fleetkey"], out.stderr)

    @fk.unittest.skipUnless(shutil.which("fish"), "fish is not installed")
    def test_fish_completion_completes(self):
        script = (f"source {SRC}/completions/fleetkey.fish; complete -C 'fleetkey device k'; "
                  "complete -C 'fleetkey device key SN-1 --format '")
        out = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True)
        words = [line.split("\t")[0] for line in out.stdout.splitlines()]
        self.assertEqual(words, ["key", "base64", "c", "hex", "json", "psk"])  # fish sorts

    @fk.unittest.skipUnless(shutil.which("groff"), "groff is not installed")
    def test_man_pages_render_without_warnings(self):
        pages = sorted(f"{SRC}/man/{p}" for p in os.listdir(f"{SRC}/man"))
        self.assertIn(f"{SRC}/man/fleetkey.1", pages)
        self.assertIn(f"{SRC}/man/fleetkey-formats.5", pages)
        for page in pages:
            r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)

    def test_cmake_install_puts_files_in_standard_places(self):
        build = os.environ.get("FLEETKEY_BUILD_DIR")
        if not build:
            self.skipTest("FLEETKEY_BUILD_DIR is not set")
        prefix = os.path.join(self.tmp, "prefix")
        subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, check=True)
        for rel in ["bin/fleetkey", "share/man/man1/fleetkey.1", "share/man/man5/fleetkey-formats.5",
                    "share/bash-completion/completions/fleetkey", "share/zsh/vendor-completions/_fleetkey",
                    "share/fish/vendor_completions.d/fleetkey.fish"]:
            self.assertTrue(os.path.isfile(os.path.join(prefix, rel)), rel)
        r = subprocess.run([os.path.join(prefix, "bin/fleetkey"), "--version"], capture_output=True, text=True)
        self.assertEqual(r.stdout, "fleetkey 0.1.0\n")


if __name__ == "__main__":
    fk.main()
