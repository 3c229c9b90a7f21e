#!/usr/bin/env python3
"""Checks that imports point down the layers of src/ (ARCHITECTURE.md).

Every `crate::...` path in a file's code (not its comments) names a module;
the module's layer must be the file's own or one below it. Names re-exported
at the crate root (`crate::Connection`) count as the module that defines
them. Within a layer, modules may use each other. Exit status 1 lists every
import that points up.

    python3 scripts/layers.py
"""
import pathlib
import re
import sys

# Lowest first. A file's layer is its folder under src/ (or its name for a
# file directly in src/).
LAYERS = [
    {"error", "deadline", "message", "sync"},
    {"wire"},
    {"transport"},
    {"http"},
    {"config"},
    {"session"},
    {"sse"},
    {"backplane"},
    {"server", "client"},
    {"lib", "fuzzing"},
]
# What the crate root re-exports, by the layer that defines it.
ROOT = {
    "Error": "error", "SendError": "error", "SendTimeoutError": "error",
    "Result": "lib", "Config": "config", "Message": "message",
    "Event": "wire", "Deflate": "wire", "TlsConfig": "transport",
    "Request": "http",
    "Connection": "session", "Accept": "session", "Reject": "session",
    "Resource": "session", "Broadcaster": "session", "Stats": "session",
    "MessageWriter": "session",
    "EventClient": "sse", "EventPublisher": "sse", "EventSink": "sse",
    "EventStream": "sse",
    "Backplane": "backplane",
    "Server": "server", "ServerHandle": "server", "Closer": "server",
    "Response": "server",
    "Client": "client", "ClientHandle": "client",
}


def rank(module):
    for i, layer in enumerate(LAYERS):
        if module in layer:
            return i
    return None


def code(text):
    """The text without comments (line and doc comments)."""
    return "\n".join(re.sub(r"//.*", "", line) for line in text.splitlines())


def names(text):
    """The first segment after `crate::`, including inside `crate::{..}`."""
    for m in re.finditer(r"crate::(\{[^}]*\}|\w+)", text):
        group = m.group(1)
        if group.startswith("{"):
            for part in re.split(r"[,\s]+", group.strip("{}")):
                head = part.split("::")[0].strip()
                if head and head != "self":
                    yield head
        else:
            yield group


def main():
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    bad = []
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        own = rel.parts[0].removesuffix(".rs")
        own_rank = rank(own)
        if own_rank is None:
            bad.append(f"{rel}: not in any layer (add its folder to LAYERS)")
            continue
        for name in set(names(code(path.read_text()))):
            module = ROOT.get(name, name)
            r = rank(module)
            if r is None:
                continue  # a macro or a name this script does not know
            if r > own_rank:
                bad.append(f"{rel}: uses crate::{name} ({module}), a layer above {own}")
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} import(s) point up the layers")
        return 1
    print(f"layers: every import in {src} points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
