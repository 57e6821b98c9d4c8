"""The staged app: an annotated notebook as pages for labelers and the owner.

The shared stages run once in the pipeline; each person's own stages are replayed from
their stored answers in a host session; pool stages hand out work from the store. The
handlers are thin, over plain functions in `staged`. May import: `runtime.host`,
`runtime.store`, `runtime.bundle`, `runtime.frontend`, `freezer.widgets` (the labeling
protocol), and itself; never `runtime.server`.
"""
