#!/usr/bin/env python3
"""Sums a linked image's input sections by object file, from an arm-none-eabi-ld map file.

    device_size.py MAP   -> one line per object: flash bytes (text + rodata + data), RAM bytes (bss + data)
"""
import re
import sys


def main():
    flash, ram = {}, {}
    pending = None
    with open(sys.argv[1]) as f:
        lines = f.read().splitlines()
    in_memory_map = False
    for line in lines:
        if line.startswith("Linker script and memory map"):
            in_memory_map = True
            continue
        if not in_memory_map:
            continue
        m = re.match(r"^ (\.[\w.$]+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.[\w.$]+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+\.o\)?|\S+\.a\(\S+\))$", line)
        if not m:
            pending = None
            continue
        name = m.group(1) or pending
        pending = None
        size = int(m.group(3), 16)
        if name is None or size == 0:
            continue
        obj = m.group(4)
        obj = re.sub(r".*/", "", obj)
        if name.startswith((".text", ".rodata")):
            flash[obj] = flash.get(obj, 0) + size
        elif name.startswith(".data"):
            flash[obj] = flash.get(obj, 0) + size
            ram[obj] = ram.get(obj, 0) + size
        elif name.startswith(".bss") or name.startswith("COMMON"):
            ram[obj] = ram.get(obj, 0) + size
    for obj in sorted(set(flash) | set(ram)):
        print(f"{obj} {flash.get(obj, 0)} {ram.get(obj, 0)}")


if __name__ == "__main__":
    main()
