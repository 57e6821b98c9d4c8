"""Which static modules a widget page needs before its first widget can show.

A page's module graph is page.js, which imports socket.js and widgets.js, which imports
the bundle's shared chunk. Left to itself the browser finds each import only once it
has parsed the module above it: three round trips in a row. The page template instead
starts socket.js on its own (so the WebSocket opens, and the server starts running the
notebook, while the bundle is still loading) and preloads the rest at once.
"""

from __future__ import annotations

from runtime.server import STATIC

# esbuild names the shared chunk by its content's hash; the Output widget's chunk is
# loaded only by pages that show one.
FIRST_MODULES = ["widgets.js", *sorted(p.name for p in STATIC.glob("widgets-chunk-*.js"))]
