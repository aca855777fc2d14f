"""The man pages and the completions cover every command and option that `fleetkey --help` shows.

The command tree is read from the binary's own --help output, not from the generator, so that this
test checks the generated files independently. Also: man pages render without warnings, the
completion scripts load in their shells and complete, and `cmake --install` puts everything in place.
"""
import os
import re
import shlex
import shutil
import subprocess

import fk

SRC = fk.SOURCE_DIR


def help_text(*path):
    return subprocess.run([fk.BIN, *path, "--help"], capture_output=True, text=True, check=True).stdout


def parse_help(text, positionals=None):
    """(subcommands, long options) from one CLI11 help page; the names of positionals are appended
    to `positionals` when given."""
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
        elif section == "Positionals:":
            if positionals is not None:
                positionals.append(m.group(1))
        else:
            # The names column ends at the first run of two spaces after the indent.
            names = line[2:].split("  ")[0]
            opts += re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", names)
    return subs, sorted(set(opts))


def command_tree(positionals=None):
    """Every command path with its options: {("device", "add"): ["--if-missing", ...], ...}; with
    `positionals`, also {path: ["ID"]} there."""
    tree, todo = {}, [()]
    while todo:
        path = todo.pop()
        pos = []
        subs, opts = parse_help(help_text(*path), pos)
        tree[path] = opts
        if positionals is not None:
            positionals[path] = pos
        todo += [path + (s,) for s in subs]
    return tree


def man_section(man, path):
    """The text of the .SS section of `fleetkey PATH` in fleetkey(1), or None. After PATH comes a
    positional (upper case) or an option, never a lower-case word: "pair decode" is not "pair"."""
    m = re.search(r'^\.SS "fleetkey %s(?: (?![a-z])[^"]*)?"\n' % re.escape(" ".join(path)), man, re.M)
    return None if m is None else man[m.end():].split(".SS", 1)[0].split(".\\\" END GENERATED", 1)[0]


class DocsTest(fk.FleetTest):
    @classmethod
    def setUpClass(cls):
        cls.positionals = {}
        cls.tree = command_tree(cls.positionals)

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
        # Every command with an option or positional of its own has a section listing them, leaf
        # or not (`pair DEVICE` has the subcommand `decode`): read from --help, not the generator.
        man = self.read(f"{SRC}/man/fleetkey.1").replace("\\-", "-")
        sections = 0
        for path, opts in self.tree.items():
            own = [o for o in opts if o != "--help" and o not in self.tree[()]]
            if not path or not (own or self.positionals[path]):
                continue
            section = man_section(man, path)
            self.assertIsNotNone(section, f"man page lacks a section for {' '.join(path)}")
            sections += 1
            for opt in own:
                self.assertRegex(section, r"\\fB%s\\fR" % re.escape(opt), f"man page lacks {' '.join(path)} {opt}")
            for pos in self.positionals[path]:
                self.assertIn(f"\\fI{pos}\\fR", section, f"man page lacks {' '.join(path)} {pos}")
        self.assertGreaterEqual(sections, 20)
        self.assertIsNotNone(man_section(man, ("pair",)))
        for opt in self.tree[()]:
            self.assertIn(opt, man)

    def test_man_page_says_nothing_twice(self):
        # A help text that already says "(repeatable)" got it appended again; "auto (...), always,
        # never: one of auto, always, never" listed the choices twice.
        man = self.read(f"{SRC}/man/fleetkey.1")
        self.assertIsNone(re.search(r"(\([a-z ]+\)) \1", man))
        self.assertNotIn("always, never: one of", man)
        for path in [("device", "add"), ("user", "add"), ("token", "mint")]:
            self.assertEqual(man_section(man, path).count("(repeatable)"), 1, path)

    def test_readme_commands_exist(self):
        # Every `$ fleetkey ...` line of the README names a command path and only options it has.
        readme = self.read(f"{SRC}/README.md")
        lines = [line[2:] for line in readme.splitlines() if line.startswith("$ fleetkey ")]
        self.assertGreaterEqual(len(lines), 30)
        globals_with_value = {"--home", "--registry", "--master-key", "--passphrase-file"}
        for line in lines:
            words = shlex.split(line.split(";")[0].split(" > ")[0])[1:]
            path, i = (), 0
            while i < len(words):
                w = words[i]
                if w in globals_with_value:
                    i += 2
                    continue
                if w.startswith("-"):
                    name = w.split("=")[0]
                    if name.startswith("--"):
                        self.assertIn(name, self.tree[path] + self.tree[()], f"README: {line}")
                elif path + (w,) in self.tree:
                    path += (w,)
                i += 1
            self.assertNotEqual(path, (), line)
            self.assertFalse(any(p[:len(path)] == path and len(p) > len(path) for p in self.tree)
                             and not self.positionals[path], f"README: {line} names a command group")

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
        self.assertEqual(out.stdout.splitlines(), ["add import list show revoke key state", "hex base64 c psk json",
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
