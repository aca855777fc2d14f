"""The layers of fleetkey stay in their rooms: the registry is an implementation detail behind
registry::Store (include/fleetkey/registry/store.hpp).

- src/fleet and cmd include neither sqlite3.h nor a private registry header (src/registry/*, or a
  public registry header other than store.hpp and records.hpp);
- cmd includes no registry header at all and names no registry:: type: fleet's API hands it the
  fleet's own values (include/fleetkey/fleet/types.hpp);
- of fleetkey's headers, cmd includes core/, fleet/ and util/ ones only, and it names nothing of
  the layers below fleet (token::, pairing::, qr::): fleet hands it what it prints;
- fleet's public headers (include/fleetkey/fleet/) include no registry header but fleet.hpp's
  registry/store.hpp, and name no registry:: type but the Store a Fleet holds;
- util (src/util, include/fleetkey/util) includes no fleetkey header outside util/: it knows nothing
  of fleetkey (core/'s Error and exit codes included);
- no string literal in src/fleet or cmd holds SQL (SELECT/INSERT/UPDATE/DELETE ... FROM/INTO/SET/
  WHERE, PRAGMA, BEGIN/COMMIT/ROLLBACK as statements);

The checker is run on samples first, so that a checker that finds nothing fails too.
Run by ctest as layers.clean with the source directory as argument (or $FLEETKEY_SOURCE_DIR).
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FLEETKEY_SOURCE_DIR", ".")

PUBLIC_REGISTRY = {"fleetkey/registry/store.hpp", "fleetkey/registry/records.hpp"}
# The layers below fleet whose names cmd must not use (it may use crypto::Secret, fleet's vocabulary
# for secrets, but reaches crypto's functions through fleet too: that is checked by the includes).
CMD_HIDDEN = re.compile(r"\b(token|pairing|qr)::")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
SQL = [
    re.compile(r"\b(SELECT|DELETE)\b.*\bFROM\b"),
    re.compile(r"\bINSERT\b.*\bINTO\b"),
    re.compile(r"\bUPDATE\b.*\bSET\b"),
    re.compile(r"\bPRAGMA\b"),
    re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT)\b"),
    re.compile(r"\bCREATE\s+(TABLE|INDEX|TRIGGER)\b"),
]
# A C++ string literal (not a raw one: none holds SQL today), and what may separate two literals
# that the compiler joins.
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
JOIN = re.compile(r"^\s*$")


def strip_comments(text):
    """The text without comments, string and character literals kept (a // inside a string stays)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def literals(text):
    """The string literals of a C++ source, adjacent ones joined as the compiler does."""
    code = strip_comments(text)
    joined, last_end = [], None
    for m in LITERAL.finditer(code):
        if last_end is not None and JOIN.match(code[last_end : m.start()]):
            joined[-1] += m.group(1)
        else:
            joined.append(m.group(1))
        last_end = m.end()
    return joined


def code_only(text):
    """The code without comments and without the contents of string literals."""
    return LITERAL.sub('""', strip_comments(text))


def problems(name, text):
    """What is wrong with one source file of src/fleet or cmd."""
    found = []
    in_cmd = name.startswith("cmd/")
    for m in INCLUDE.finditer(strip_comments(text)):
        quote, path = m.group(1), m.group(2)
        if path == "sqlite3.h":
            found.append(f"{name}: includes <sqlite3.h>")
        elif quote == '"' and path.startswith("registry/"):
            found.append(f"{name}: includes the private registry header \"{path}\"")
        elif path.startswith("fleetkey/registry/") and path not in PUBLIC_REGISTRY:
            found.append(f"{name}: includes <{path}> (the registry's public headers are store.hpp and records.hpp)")
        elif in_cmd and path.startswith("fleetkey/registry/"):
            found.append(f"{name}: includes <{path}> (cmd reaches the registry only through fleet)")
        elif (
            in_cmd
            and path.startswith("fleetkey/")
            and not path.startswith(("fleetkey/fleet/", "fleetkey/util/", "fleetkey/core/"))
        ):
            found.append(f"{name}: includes <{path}> (cmd includes core/, fleet/ and util/ headers only)")
    if in_cmd and re.search(r"\bregistry::", code_only(text)):
        found.append(f"{name}: names a registry:: type or function (cmd reaches the registry only through fleet)")
    if in_cmd and (m := CMD_HIDDEN.search(code_only(text))):
        found.append(f"{name}: names {m.group(0)} (cmd reaches the layers below fleet only through fleet)")
    for lit in literals(text):
        if any(p.search(lit) for p in SQL):
            found.append(f"{name}: SQL in a string literal: \"{lit[:80]}\"")
    return found


def public_fleet_problems(name, text):
    """What is wrong with one public fleet header (include/fleetkey/fleet/NAME)."""
    found = []
    for m in INCLUDE.finditer(strip_comments(text)):
        path = m.group(2)
        if path.startswith(("registry/", "fleetkey/registry/")) and (name, path) != (
            "fleet.hpp",
            "fleetkey/registry/store.hpp",
        ):
            found.append(f"include/fleetkey/fleet/{name}: includes <{path}> (fleet's API hands out fleet's own types)")
    for m in re.finditer(r"\bregistry::(\w+)", code_only(text)):
        if m.group(1) != "Store":
            found.append(f"include/fleetkey/fleet/{name}: names registry::{m.group(1)} (fleet's API hands out fleet's own types)")
    return found


def util_problems(name, text):
    """What is wrong with one source of util: it includes no fleetkey header outside util/."""
    return [
        f"{name}: includes <{m.group(2)}> (util knows nothing of fleetkey: util/ headers only)"
        for m in INCLUDE.finditer(strip_comments(text))
        if m.group(2).startswith(("fleetkey/", "core/")) and not m.group(2).startswith("fleetkey/util/")
    ]


def self_test():
    bad = {
        "a.cpp": '#include <sqlite3.h>\n',
        "b.cpp": '#include "registry/sqlite.hpp"\n',
        "c.cpp": '#include <fleetkey/registry/sqlite.hpp>\n',
        "d.cpp": 'auto st = db.prepare("SELECT action FROM audit WHERE id = ?");\n',
        "e.cpp": 'auto st = db.prepare("SELECT max(id) "\n                      "FROM audit");\n',
        "f.cpp": 'db.exec("PRAGMA wal_checkpoint(TRUNCATE)");\n',
        "g.cpp": 'db.exec("INSERT INTO t VALUES (1)");\n',
        "h.cpp": 'db.exec("UPDATE devices SET x = 1");\n',
        "cmd/i.cpp": '#include <fleetkey/registry/store.hpp>\n',
        "cmd/j.cpp": 'void f(const registry::DeviceRecord& d);\n',
        "cmd/k.cpp": '#include <fleetkey/token/token.hpp>\n',
        "cmd/l.cpp": '#include <fleetkey/crypto/secret.hpp>\n',
        "cmd/m.cpp": '#include <fleetkey/qr/qr.hpp>\n',
        "cmd/n.cpp": 'std::string id; token::token_id(c, f, id);\n',
        "cmd/o.cpp": 'const pairing::MatterPayload& p = *c.matter;\n',
    }
    for name, text in bad.items():
        assert problems(name, text), f"the checker misses {text!r}"
    good = (
        '#include <fleetkey/registry/store.hpp>\n#include <fleetkey/registry/records.hpp>\n'
        '// SELECT x FROM y in a comment\n/* INSERT INTO */\n'
        'throw Error("select a device from the list, then update it");\n'
        'auto s = "a \\" SELECT";\n'
    )
    assert problems("good.cpp", good) == [], problems("good.cpp", good)
    cmd_good = 'ctx.note("see the registry:: namespace"); // registry::Store, token::Claims\n'
    assert problems("cmd/good.cpp", cmd_good) == [], problems("cmd/good.cpp", cmd_good)
    assert public_fleet_problems("pairing.hpp", "#include <fleetkey/registry/store.hpp>\n")
    assert public_fleet_problems("pairing.hpp", "PairingCode f(const registry::DeviceRecord& d);\n")
    assert public_fleet_problems("fleet.hpp", "#include <fleetkey/registry/records.hpp>\n")
    fleet_good = "#include <fleetkey/registry/store.hpp>\nregistry::Store& registry(); // not registry::DeviceRecord\n"
    assert public_fleet_problems("fleet.hpp", fleet_good) == [], public_fleet_problems("fleet.hpp", fleet_good)
    assert util_problems("src/util/file.cpp", "#include <fleetkey/core/error.hpp>\n")
    assert util_problems("src/util/file.cpp", '#include "core/error.hpp"\n')
    util_good = "#include <fleetkey/util/file.hpp>\n#include <fmt/format.h>\n// fleetkey/core/error.hpp\n"
    assert util_problems("src/util/file.cpp", util_good) == [], util_problems("src/util/file.cpp", util_good)


def main():
    self_test()
    found, checked = [], 0
    for top in ("src/fleet", "cmd"):
        for root, _, files in os.walk(os.path.join(SRC, top)):
            for f in sorted(files):
                if not f.endswith((".cpp", ".hpp")):
                    continue
                path = os.path.join(root, f)
                name = os.path.relpath(path, SRC)
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                found += problems(name, text)
                checked += 1
    assert checked > 20, f"only {checked} sources found under {SRC}"
    headers = sorted(f for f in os.listdir(os.path.join(SRC, "include/fleetkey/fleet")) if f.endswith(".hpp"))
    assert len(headers) > 10, f"only {len(headers)} public fleet headers found under {SRC}"
    for f in headers:
        with open(os.path.join(SRC, "include/fleetkey/fleet", f), encoding="utf-8") as fh:
            found += public_fleet_problems(f, fh.read())
    util_sources = 0
    for top in ("src/util", "include/fleetkey/util"):
        for f in sorted(os.listdir(os.path.join(SRC, top))):
            if f.endswith((".cpp", ".hpp")):
                with open(os.path.join(SRC, top, f), encoding="utf-8") as fh:
                    found += util_problems(f"{top}/{f}", fh.read())
                util_sources += 1
    assert util_sources > 10, f"only {util_sources} util sources found under {SRC}"
    for p in found:
        print(p)
    if found:
        sys.exit(1)
    print(
        f"{checked} sources in src/fleet and cmd: no SQL, no SQLite, no private registry header, no registry in cmd; "
        f"{len(headers)} public fleet headers without registry types; {util_sources} util sources without fleetkey"
    )


if __name__ == "__main__":
    main()
