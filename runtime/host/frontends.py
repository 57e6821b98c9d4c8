"""Widget libraries' front ends, found where Jupyter finds them.

The page bundles the standard widgets (`comm.BUNDLED_MODULES`). Every other widget
library (bqplot, ipycanvas, ipyleaflet, ...) ships its own front end with its Python
package, and JupyterLab and Voilà load it from there: a labextension in
`jupyter_path("labextensions")` (its `package.json` names, under `jupyterlab._build`, a
webpack module-federation container, `static/remoteEntry.<hash>.js`), or, for an older
package, a classic nbextension in `jupyter_path("nbextensions")` (`<name>/index.js`, an
AMD module). This module finds them, so that the host opens a model only when the page
can load its front end, the server can serve those files (and nothing else beside
them), and the page can be told, when it first meets such a model, where its front end
is (`FrontEnds.index`).

A widget's `_model_module` is the npm package of its front end, which is also the
labextension's directory name, with one exception handled here: a labextension may be a
thin wrapper named differently (`jupyterlab-datawidgets` around `jupyter-datawidgets`);
it then lists that package among its dependencies, and an nbextension of that name says
it is a widget module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_core.paths import jupyter_path

# A package name as npm allows it (optionally scoped): what may appear in our URLs.
_PACKAGE = re.compile(r"^(?:@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*$", re.IGNORECASE)


@dataclass(frozen=True)
class LabExtension:
    """One installed labextension with a module-federation container."""

    package: str  # its npm name, which is its directory's name too
    version: str
    directory: Path  # holds package.json and static/
    load: str  # the container, relative to static/: remoteEntry.<hash>.js
    extension: str | None  # the module exposing its JupyterLab plugins: ./extension
    style: str | None  # the module exposing its CSS: ./style
    # Shared packages it expects the page (or another container) to provide: those its
    # package.json declares `bundled: false`.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrontEnds:
    """The widget front ends installed where Jupyter looks, first place found winning."""

    labextensions: dict[str, LabExtension] = field(default_factory=dict)
    nbextensions: dict[str, Path] = field(default_factory=dict)  # name -> its directory
    aliases: dict[str, str] = field(default_factory=dict)  # widget module -> labextension

    def installed(self, module: str) -> bool:
        """Whether the page can load a front end for widget module `module`."""
        return self.labextension_for(module) is not None or module in self.nbextensions

    def labextension_for(self, module: str) -> LabExtension | None:
        package = module if module in self.labextensions else self.aliases.get(module)
        return self.labextensions.get(package) if package else None

    def index(self, prefix: str = "") -> dict[str, Any]:
        """What the page is told when it first meets a model it does not bundle: for each
        labextension its container's URL and what it needs, for each widget module named
        differently its labextension, and each nbextension's URL."""
        labs = {
            name: {
                "version": lab.version,
                "load": f"{prefix}/labextensions/{name}/static/{lab.load}",
                "extension": lab.extension,
                "style": lab.style,
                "needs": list(lab.needs),
            }
            for name, lab in sorted(self.labextensions.items())
        }
        nbs = {name: f"{prefix}/nbextensions/{name}/index.js" for name in sorted(self.nbextensions)}
        return {
            "labextensions": labs,
            "aliases": dict(sorted(self.aliases.items())),
            "nbextensions": nbs,
        }


def find(
    labextension_dirs: list[str] | None = None, nbextension_dirs: list[str] | None = None
) -> FrontEnds:
    """Look where Jupyter looks (or in the directories given), now."""
    labs: dict[str, LabExtension] = {}
    deps: dict[str, list[str]] = {}
    for root in map(
        Path, labextension_dirs if labextension_dirs is not None else jupyter_path("labextensions")
    ):
        for manifest in _manifests(root):
            found = _labextension(manifest)
            if found is not None and found[0].package not in labs:
                labs[found[0].package] = found[0]
                deps[found[0].package] = found[1]
    nbs: dict[str, Path] = {}
    for root in map(
        Path, nbextension_dirs if nbextension_dirs is not None else jupyter_path("nbextensions")
    ):
        for index in [*root.glob("*/index.js"), *root.glob("@*/*/index.js")]:
            name = index.parent.relative_to(root).as_posix()
            if _PACKAGE.match(name) and name not in nbs:
                nbs[name] = index.parent
    aliases = {
        dep: package
        for package, names in sorted(deps.items())
        for dep in names
        if dep in nbs and dep not in labs
    }
    return FrontEnds(labs, nbs, aliases)


_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], FrontEnds] = {}


def installed() -> FrontEnds:
    """`find()`, once per set of directories (JUPYTER_PATH may change them)."""
    key = (tuple(jupyter_path("labextensions")), tuple(jupyter_path("nbextensions")))
    if key not in _cache:
        _cache[key] = find(list(key[0]), list(key[1]))
    return _cache[key]


def _manifests(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted([*root.glob("*/package.json"), *root.glob("@*/*/package.json")])


def _labextension(manifest: Path) -> tuple[LabExtension, list[str]] | None:
    """The labextension `manifest` describes, and its dependencies' names; None when it
    is not a federated extension we could load (no container, or one outside static/)."""
    try:
        data = json.loads(manifest.read_text("utf-8"))
        build = data["jupyterlab"]["_build"]
        package, load = str(data["name"]), str(build["load"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    directory = manifest.parent
    if (
        not _PACKAGE.match(package)
        or directory.relative_to(directory.parents[package.count("/")]).as_posix() != package
    ):
        return None
    # Some packages were built on Windows: static\remoteEntry.<hash>.js.
    parts = PurePosixPath(load.replace("\\", "/")).parts
    if len(parts) < 2 or parts[0] != "static" or ".." in parts:
        return None
    if not (directory / "static" / PurePosixPath(*parts[1:])).is_file():
        return None
    shared = data["jupyterlab"].get("sharedPackages") or {}
    needs = tuple(
        sorted(
            name
            for name, how in shared.items()
            if isinstance(how, dict) and how.get("bundled") is False
        )
    )
    lab = LabExtension(
        package=package,
        version=str(data.get("version", "")),
        directory=directory,
        load=PurePosixPath(*parts[1:]).as_posix(),
        extension=build.get("extension"),
        style=build.get("style"),
        needs=needs,
    )
    return lab, sorted(data.get("dependencies") or {})
