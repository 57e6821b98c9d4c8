"""The kernel-less widget host: what a Jupyter kernel gives a notebook's code, per session.

Sessions run cells with IPython's semantics (displays, captured output, `get_ipython()`),
host widgets through our own `comm` implementation, and speak the Jupyter widget
protocol over one WebSocket per page. It serves a notebook with no annotations as Voilà
does, a page per visitor. May import: `runtime.bundle`, `runtime.frontend`, and itself;
never `runtime.app`, `runtime.store`, `runtime.server` or SQL.
"""
