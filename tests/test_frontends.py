"""Widget libraries' front ends are found where Jupyter finds them, and served from
there alone: the installed files, compressed, hashed names cached for good, nothing
outside those directories."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from runtime_harness import NotebookTestCase

from runtime.host import frontends


def labextension(
    root: Path, name: str, load: str = "static/remoteEntry.0123456789abcdef.js", **extra
):
    directory = root / name
    (directory / "static").mkdir(parents=True)
    (directory / "static" / load.replace("\\", "/").split("/", 1)[1]).write_text("var _JUPYTERLAB;")
    manifest = {"name": name, "version": "1.2.3", "jupyterlab": {"_build": {"load": load}}} | extra
    (directory / "package.json").write_text(json.dumps(manifest))
    return directory


def test_labextensions_are_found_first_place_first_scoped_and_windows_built_ones_too(
    tmp_path: Path,
):
    first, second = tmp_path / "a", tmp_path / "b"
    labextension(first, "bqplot", extension="x")
    labextension(second, "bqplot")
    labextension(second, "@scope/thing", load="static\\remoteEntry.fedcba9876543210.js")
    (second / "not-federated").mkdir()
    (second / "not-federated" / "package.json").write_text('{"name": "not-federated"}')
    found = frontends.find([str(first), str(second)], [])
    assert sorted(found.labextensions) == ["@scope/thing", "bqplot"]
    assert found.labextensions["bqplot"].directory == first / "bqplot"
    assert found.labextensions["@scope/thing"].load == "remoteEntry.fedcba9876543210.js"
    assert not found.installed("not-federated")


def test_a_container_outside_static_is_not_loaded(tmp_path: Path):
    directory = labextension(tmp_path, "evil")
    manifest = json.loads((directory / "package.json").read_text())
    manifest["jupyterlab"]["_build"]["load"] = "static/../../../etc/passwd"
    (directory / "package.json").write_text(json.dumps(manifest))
    assert frontends.find([str(tmp_path)], []).labextensions == {}


def test_a_widget_module_named_apart_from_its_labextension_is_found_through_it(tmp_path: Path):
    labs, nbs = tmp_path / "labextensions", tmp_path / "nbextensions"
    labextension(labs, "jupyterlab-datawidgets", dependencies={"jupyter-datawidgets": "^5"})
    (nbs / "jupyter-datawidgets").mkdir(parents=True)
    (nbs / "jupyter-datawidgets" / "index.js").write_text("define([], {})")
    found = frontends.find([str(labs)], [str(nbs)])
    assert found.labextension_for("jupyter-datawidgets").package == "jupyterlab-datawidgets"
    assert found.index()["aliases"] == {"jupyter-datawidgets": "jupyterlab-datawidgets"}


class TestServedFrontEnds(NotebookTestCase):
    cells = ("1 + 1",)

    def test_the_index_names_each_installed_container_by_its_url(self):
        index = json.loads(self.fetch("/api/v1/frontends").body)
        bqplot = index["labextensions"]["bqplot"]
        assert bqplot["load"].startswith("/labextensions/bqplot/static/remoteEntry.")
        assert "bqscales" in bqplot["needs"]
        assert index["nbextensions"]["bqplot"] == "/nbextensions/bqplot/index.js"

    def test_a_hashed_file_is_served_gzipped_and_cached_as_immutable(self):
        url = json.loads(self.fetch("/api/v1/frontends").body)["labextensions"]["bqplot"]["load"]
        response = self.fetch(url, headers={"Accept-Encoding": "gzip"}, decompress_response=False)
        assert response.code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
        assert b"_JUPYTERLAB" in gzip.decompress(response.body)
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    def test_a_file_whose_name_carries_no_hash_is_revalidated(self):
        response = self.fetch("/labextensions/bqplot/static/style.js")
        assert response.code == 200
        assert response.headers["Cache-Control"] == "no-cache"

    def test_nothing_outside_an_installed_front_end_is_served(self):
        for path in (
            "/labextensions/bqplot/package.json",
            "/labextensions/bqplot/static/..%2Fpackage.json",
            "/labextensions/bqplot/static/%2E%2E/package.json",
            "/labextensions/no-such-package/static/remoteEntry.js",
            "/labextensions/..%2F..%2F..%2Fetc/static/passwd",
            "/nbextensions/bqplot/..%2F..%2Flabextensions%2Fbqplot%2Fpackage.json",
        ):
            assert self.fetch(path).code in (403, 404), path

    def test_a_classic_nbextension_is_served(self):
        response = self.fetch("/nbextensions/bqplot/index.js")
        assert response.code == 200
        assert b"define" in response.body
