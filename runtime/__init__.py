"""nbfreeze's server: a frozen notebook served to many people, with no kernel per person.

Three rooms, and the module that joins them:

- `runtime.host`: the kernel-less widget host (sessions, IPython semantics, comm, the
  wire format, the per-visitor pages). It knows nothing of stages or SQL.
- `runtime.store`: the database (tables, pools and leases, migrations, agreement). It
  knows nothing of Tornado or widgets.
- `runtime.app`: the staged app (stages, the pipeline, pages, dashboard, API), which uses
  both.
- `runtime.server` builds the Tornado applications and serves them; `runtime.bundle` (the
  bundle the compiler wrote, the one door from `freezer`) and `runtime.frontend` (where
  the pages' files are) are shared by all, as are `runtime.urls` (the root path an app
  lives under) and `runtime.forwarded` (what a trusted proxy says of a request);
  `runtime.nginx` writes the proxy's configuration. tests/test_layout.py keeps the walls
  standing.
"""
