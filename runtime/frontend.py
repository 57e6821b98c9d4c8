"""The pages' front end: where its files are, its inline script, and which static
modules a widget page needs before its first widget can show.

A page's module graph is page.js, which imports widgets.js, which imports the bundle's
chunks. Left to itself the browser finds each import only once it has parsed the module
above it: several round trips in a row. The page template instead preloads them at
once: widgets.js and every chunk it imports statically (the socket is opened earlier
still, by the page's inline script, static/socket.js). Chunks it imports on demand (the
Output widget's code, the description sanitizer) are left to load when they are wanted.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
# Inline in every widget page (static/socket.js says why, in a comment left out of the
# page), so the Content-Security-Policy names its hash.
SOCKET_SCRIPT = (STATIC / "socket.js").read_text("utf-8").split("*/", 1)[1].strip()
SOCKET_HASH = base64.b64encode(hashlib.sha256(SOCKET_SCRIPT.encode()).digest()).decode()

# `import{a as b}from"./x.js"` and `import"./x.js"`, as esbuild writes them; not
# `import("./x.js")`, which loads on demand.
_STATIC_IMPORT = re.compile(r'(?<![\w$.])import\s*(?:[\w$*{}\s,]+from\s*)?"\./([\w.-]+\.js)"')


def static_imports(entry: str, directory: Path = STATIC) -> list[str]:
    """`entry` and every module it imports statically, directly or not, in order."""
    found = [entry]
    for name in found:
        for imported in _STATIC_IMPORT.findall((directory / name).read_text()):
            if imported not in found:
                found.append(imported)
    return found


FIRST_MODULES = static_imports("widgets.js")
