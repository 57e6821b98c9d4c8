"""The committed widget bundle (runtime/static/widgets*) is what `make frontend` builds.

Users, `make demo` and `make test` never run node: they get the files committed in
runtime/static. These tests check that those files are a usable ES module that fetches
nothing from outside, and (opt-in, as it needs npm and the registry) that rebuilding
from frontend/ gives exactly the committed bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "runtime" / "static"
FRONTEND = ROOT / "frontend"
BUNDLE_FILE = re.compile(r"^(widgets[.-].+|fa-.+\.woff2)$")

# URLs that are text in the bundle (XML namespaces, links in error messages, package
# metadata), never fetched. A new one fails the test so that someone looks at it.
URL_TEXT_HOSTS = {"www.w3.org", "github.com", "evilmartians.com", "www.w3ctech.com"}
# In widgets-apputils-*.js: JSON Schema ids (ajv's, as the settings schema names them)
# and React's error-decoder link in its messages; names, never fetched.
URL_TEXT_HOSTS |= {"json-schema.org", "raw.githubusercontent.com", "reactjs.org"}
# import {..} from "x", import * as m from "x", import "x", import("x"): what a module loads.
MODULE_SPECIFIER = re.compile(
    r"""(?<![\w$."'-])import\s*(?:\{[^}]*\}\s*from|\*\s*as\s+[\w$]+\s*from|\(|[\w$]+\s*from)?\s*["']([^"']+)["']"""
)
# What a browser gives only a secure context (https, localhost).
SECURE_CONTEXT_ONLY = ("randomUUID", "crypto.subtle", "navigator.clipboard", "serviceWorker")
JS_COMMENT = re.compile(r"/\*.*?\*/|(?m:^\s*//.*$)", re.S)
CDN_HINTS = ("unpkg", "jsdelivr", "cdnjs", "esm.sh", "skypack", "googleapis", "jspm")


def bundle_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if BUNDLE_FILE.match(p.name)}


def scripts() -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in sorted(STATIC.glob("widgets*.js"))}


def test_committed_bundle_is_an_es_module_exporting_the_manager() -> None:
    source = (STATIC / "widgets.js").read_text("utf-8")
    exports = re.search(r"export\s*\{([^}]*)\}\s*;?\s*$", source)
    assert exports, "widgets.js does not end in an ES module export statement"
    names = {part.split(" as ")[-1].strip() for part in exports.group(1).split(",")}
    assert {"WidgetManager", "SUPPORTED_MODULES"} <= names
    assert (STATIC / "widgets.css").stat().st_size > 10_000


def test_every_file_the_bundle_loads_is_committed_beside_it() -> None:
    wanted: set[str] = set()
    for name, source in scripts().items():
        for specifier in MODULE_SPECIFIER.findall(source):
            assert specifier.startswith("./"), f"{name} imports {specifier!r}, not a sibling file"
            wanted.add(specifier[2:])
    css = (STATIC / "widgets.css").read_text("utf-8")
    for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css):
        if not url.startswith("data:"):
            assert url.startswith("./"), f"widgets.css loads {url!r}, not a sibling file"
            wanted.add(url[2:].split("#")[0].split("?")[0])
    assert wanted, "the bundle should load its chunks and fonts"
    missing = sorted(f for f in wanted if not (STATIC / f).is_file())
    assert not missing, f"runtime/static lacks {missing}; run `make frontend`"


def test_bundle_fetches_nothing_from_outside() -> None:
    texts = {**scripts(), "widgets.css": (STATIC / "widgets.css").read_text("utf-8")}
    for name, text in texts.items():
        lowered = text.lower()
        for hint in CDN_HINTS:
            assert hint not in lowered, f"{name} mentions {hint!r}, a CDN it could load from"
        hosts = {urlsplit(url).hostname for url in re.findall(r"https?://[\w.-]+", text)}
        unknown = sorted(h for h in hosts - URL_TEXT_HOSTS if h)
        assert not unknown, f"{name} holds URLs on {unknown}; check none is fetched at run time"


def test_page_scripts_import_only_our_own_files() -> None:
    pages = (
        *("page.js", "stage.js", "socket.js", "ids.js", "drafts.js", "pace.js"),
        *("dashboard.js", "welcome.js", "api.js", "idle.js", "back.js", "history.js"),
    )
    for name in pages:
        source = (STATIC / name).read_text("utf-8")
        for specifier in MODULE_SPECIFIER.findall(source):
            allowed = ("./widgets.js", "./ids.js", "./api.js", "./drafts.js", "./idle.js")
            assert specifier in allowed, f"{name} imports {specifier}"
        # The SVG namespace is a name createElementNS needs, never fetched.
        source = source.replace("'http://www.w3.org/2000/svg'", "")
        assert not re.search(r"https?://", source), f"{name} holds a URL"


def test_our_scripts_use_nothing_that_only_a_secure_context_has() -> None:
    """A page served over plain http on a LAN's hostname is not a secure context; the
    browser test of that is tests/test_browser_staged.py. Ids come from static/ids.js."""
    ours = [p for p in STATIC.glob("*.js") if not BUNDLE_FILE.match(p.name)]
    ours += sorted((ROOT / "freezer" / "widgets" / "static").glob("*.js"))
    assert len(ours) > 5
    for path in ours:
        source = JS_COMMENT.sub("", path.read_text("utf-8"))
        for api in SECURE_CONTEXT_ONLY:
            assert api not in source, f"{path.name} uses {api}, which plain http lacks"


@pytest.mark.skipif(
    os.environ.get("NBFREEZE_TEST_FRONTEND") != "1" or shutil.which("npm") is None,
    reason="rebuilding needs npm and the npm registry; set NBFREEZE_TEST_FRONTEND=1",
)
def test_rebuilding_from_the_lockfile_gives_the_committed_files(tmp_path: Path) -> None:
    work = tmp_path / "frontend"
    work.mkdir()
    for name in ("package.json", "package-lock.json", "build.mjs"):
        shutil.copy2(FRONTEND / name, work / name)
    shutil.copytree(FRONTEND / "src", work / "src")
    out = tmp_path / "static"
    npm = ["npm", "ci", "--no-audit", "--no-fund"]
    subprocess.run(npm, cwd=work, check=True, capture_output=True)
    build = ["node", "build.mjs", "--outdir", str(out)]
    subprocess.run(build, cwd=work, check=True, capture_output=True)

    assert bundle_files(out) == bundle_files(STATIC), "run `make frontend` and commit its output"
    for name in sorted(bundle_files(out)):
        assert (out / name).read_bytes() == (STATIC / name).read_bytes(), f"{name} differs"


def test_a_page_preloads_the_modules_its_first_widget_needs_and_no_others(tmp_path):
    from runtime.frontend import FIRST_MODULES, static_imports

    (tmp_path / "entry.js").write_text(
        'import{a as b}from"./first.js";import"./second.js";const c=()=>import("./later.js");'
    )
    (tmp_path / "first.js").write_text('import{x}from"./second.js";export const a=1;')
    (tmp_path / "second.js").write_text("export const x=2;")
    assert static_imports("entry.js", tmp_path) == ["entry.js", "first.js", "second.js"]
    # The committed bundle: its on-demand chunks (Output, the sanitizer) are not preloaded.
    assert FIRST_MODULES[0] == "widgets.js"
    assert all(name.startswith("widgets-chunk-") for name in FIRST_MODULES[1:])
    on_demand = {p.name for p in STATIC.glob("widgets-*.js")} - set(FIRST_MODULES)
    assert any(name.startswith("widgets-output-") for name in on_demand)
