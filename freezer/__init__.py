"""nbfreeze's compiler and author-facing API: annotated notebook → checked stage graph → bundle."""

from freezer.bundle import BuildError, build_bundle
from freezer.compile import compile_notebook
from freezer.labels import load_labels

__all__ = ["BuildError", "build_bundle", "compile_notebook", "load_labels"]
