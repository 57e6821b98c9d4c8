"""The `nbfreeze` command: check, build and serve an annotated notebook, and thaw it back."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the compiler and the server are imported by the commands that use them
    from freezer.ir import Graph
    from runtime.bundle import Notebook
    from runtime.server import ServeOptions
    from runtime.store.database import Store

DEFAULT_PORT = 8866


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbfreeze",
        description="Freeze a human-in-the-loop Jupyter notebook into a multi-user web app.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="print the stage graph and every problem found")
    check.add_argument("notebook", type=Path, help="the .ipynb file")
    output = check.add_mutually_exclusive_group()
    output.add_argument("--dot", action="store_true", help="print the graph in Graphviz DOT")
    output.add_argument(
        "--json", action="store_true", help="print the graph and diagnostics as JSON"
    )
    build = commands.add_parser("build", help="compile a notebook into a bundle directory")
    build.add_argument("notebook", type=Path, help="the .ipynb file")
    build.add_argument(
        "-o", "--output", type=Path, required=True, help="the bundle directory to write"
    )
    serve = commands.add_parser("serve", help="serve a notebook or a bundle as a multi-user app")
    serve.add_argument("target", type=Path, help="a .ipynb file or a bundle directory")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--open", action="store_true", help="let anyone with the URL in (no invite links)"
    )
    serve.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: SQLite in the bundle's directory); "
        "postgresql+psycopg://… to scale out",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="close a page's session after this long without a message from it (default 1800)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (needs --db postgresql+psycopg://…)",
    )
    serve.add_argument(
        "--stage-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long a stage may run before it is stopped and reported as failed (default 600)",
    )
    serve.add_argument(
        "--stage-memory",
        type=_megabytes,
        default=None,
        metavar="MB",
        help="how much memory a shared stage may take before it is stopped and reported as "
        "failed (default: half the machine's memory)",
    )
    serve.add_argument(
        "--allow-eval",
        action="store_true",
        help="let the pages' scripts evaluate text as code ('unsafe-eval'), which some "
        "plotting libraries need (docs/security.md)",
    )
    serve.add_argument(
        "--allow-frames",
        action="append",
        default=[],
        type=_frame_origin,
        metavar="ORIGIN",
        help="let the pages frame this origin (an IFrame output), e.g. https://www.youtube.com; "
        "repeat for more (docs/security.md)",
    )
    serve.add_argument(
        "--root-path",
        default="/",
        type=_checked("root_path"),
        metavar="PATH",
        help="serve the app under this path, e.g. /labels/ behind nginx (docs/deploy.md)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        type=_checked("network"),
        metavar="ADDRESS",
        help="believe the X-Forwarded-* headers of requests from this address or network "
        "(a proxy such as nginx); repeat for more (docs/deploy.md)",
    )
    deploy = commands.add_parser(
        "deploy", help="write the configuration that puts served processes behind a proxy"
    )
    deploy.add_argument("proxy", choices=("nginx",), help="the proxy (nginx)")
    deploy.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="the address of an nbfreeze serve process; repeat for each (default 127.0.0.1:8866)",
    )
    deploy.add_argument(
        "--server-name",
        action="append",
        default=[],
        metavar="NAME",
        help="the host name the site answers to, e.g. labels.example.org; repeat for more",
    )
    deploy.add_argument(
        "--listen", default="80", metavar="PORT", help="the plain HTTP port (default 80)"
    )
    deploy.add_argument(
        "--tls-listen", default="443", metavar="PORT", help="the HTTPS port (default 443)"
    )
    deploy.add_argument("--tls-cert", metavar="FILE", help="the TLS certificate (PEM, full chain)")
    deploy.add_argument("--tls-key", metavar="FILE", help="the TLS certificate's private key")
    deploy.add_argument(
        "--root-path",
        default="/",
        metavar="PATH",
        help="the path the app lives under, as given to nbfreeze serve --root-path (default /)",
    )
    deploy.add_argument(
        "--max-body",
        default="64k",
        metavar="SIZE",
        help="the largest request body nginx passes on (default 64k, the server's own limit)",
    )
    deploy.add_argument(
        "--access-log",
        default="/var/log/nginx/nbfreeze.access.log",
        metavar="FILE",
        help="nginx's access log, which names the process that answered each request",
    )
    deploy.add_argument(
        "-o", "--output", type=Path, help="the file to write (default: print the configuration)"
    )
    invite = commands.add_parser(
        "invite",
        help="make (or revoke) a labeler's personal link, or revoke the owner's and the "
        "shared invite links",
    )
    invite.add_argument("app", type=Path, help="the served notebook or its bundle directory")
    who = invite.add_mutually_exclusive_group(required=True)
    who.add_argument("--name", help="the labeler's name, as the owner's dashboard shows it")
    who.add_argument(
        "--reviewer",
        metavar="NAME",
        help="make a reviewer's link instead: they decide the items a pool's `review` picks",
    )
    who.add_argument("--revoke", metavar="NAME", help="revoke the links of the labeler(s) named so")
    who.add_argument(
        "--revoke-links",
        action="store_true",
        help="revoke the owner's link and the shared invite link; the next serve prints new ones",
    )
    invite.add_argument("--db", metavar="URL", help="the app's database, when not the default")
    invite.add_argument(
        "--url",
        default=f"http://127.0.0.1:{DEFAULT_PORT}/",
        help="the address labelers open (default http://127.0.0.1:8866/)",
    )
    export = commands.add_parser("export", help="write a pool stage's labels to a file")
    export.add_argument(
        "app", help="the served notebook, its bundle directory, or the app's database URL"
    )
    export.add_argument("--stage", metavar="NAME", help="the pool stage (default: every one)")
    export.add_argument(
        "--format",
        dest="form",
        choices=("jsonl", "csv", "coco", "hf"),
        default="jsonl",
        help="JSON Lines, CSV, COCO (box stages) or a Hugging Face dataset directory",
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="the file to write (with --stage), else a directory with a file per stage",
    )
    export.add_argument("--db", metavar="URL", help="the app's database, when not the default")
    thaw = commands.add_parser(
        "thaw", help="the served notebook back, run to the end on the app's answers"
    )
    thaw.add_argument("app", help="the served notebook or its bundle directory")
    thaw.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="the .ipynb to write; its answers go beside it (NAME.answers.json)",
    )
    thaw.add_argument("--db", metavar="URL", help="the app's database, when not the default")
    return parser


class _Refused(Exception):
    """A command that cannot do what it was asked, with the one line that says why."""


def _megabytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megabytes, such as 4096")
    return value


def _frame_origin(text: str) -> str:
    from runtime.server import FRAME_ORIGIN

    if not FRAME_ORIGIN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an origin: give a scheme and host, such as "
            "https://www.youtube.com or https://*.example.org:8443"
        )
    return text


def _checked(name: str) -> Callable[[str], str]:
    """An argparse type that checks a value as `runtime.urls.root_path` or
    `runtime.forwarded.network` does, with its message."""

    def check(text: str) -> str:
        from runtime import forwarded, urls

        try:
            return str(urls.root_path(text) if name == "root_path" else forwarded.network(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def run_deploy(args: argparse.Namespace) -> int:
    """`nbfreeze deploy nginx`: print or write the nginx site for the served processes."""
    from runtime import nginx

    try:
        site = nginx.Site(
            upstreams=tuple(args.upstream) or ("127.0.0.1:8866",),
            server_names=tuple(args.server_name) or ("_",),
            listen=args.listen,
            tls_listen=args.tls_listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            root_path=args.root_path,
            max_body=args.max_body,
            access_log=args.access_log,
        )
    except ValueError as exc:
        print(f"nbfreeze deploy nginx: {exc}.", file=sys.stderr)
        return 1
    text = nginx.config(site)
    if args.output is None:
        print(text, end="")
        return 0
    args.output.write_text(text)
    print(f"Wrote {args.output}: test it with `nginx -t`, then reload nginx.")
    return 0


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """The `ServeOptions` that `nbfreeze serve`'s flags ask for."""
    from runtime.server import ServeOptions

    return ServeOptions(
        host=args.host,
        port=args.port,
        open_access=args.open,
        db_url=args.db,
        stage_timeout=args.stage_timeout,
        stage_memory=args.stage_memory,
        workers=args.workers,
        idle_timeout=args.idle_timeout,
        allow_eval=args.allow_eval,
        allow_frames=tuple(args.allow_frames),
        root_path=args.root_path,
        trusted_proxies=tuple(args.trusted_proxy),
    )


def run_invite(
    app: Path,
    *,
    name: str | None,
    revoke: str | None,
    db: str | None,
    url: str,
    reviewer: str | None = None,
    revoke_links: bool = False,
) -> int:
    """`nbfreeze invite`: print a new personal link (a labeler's, or a reviewer's), or
    revoke one, or revoke the owner's and the shared invite links."""
    from runtime.store.database import LABELER, REVIEWER, default_url, open_store

    bundle = app if app.is_dir() else app.with_name(app.stem + ".nbfreeze")
    if db is None and not (bundle / "app.sqlite").exists():
        print(
            f"{app}: no app database at {bundle}; serve it once first, or pass --db.",
            file=sys.stderr,
        )
        return 1
    store = open_store(db or default_url(bundle))
    if revoke_links:
        count = store.revoke_links()
        print(
            f"revoked {count} link{'s' * (count != 1)} (the owner's and the shared invite); "
            "serve again to get new ones"
        )
        return 0
    if revoke is not None:
        count = store.revoke(revoke)
        print(f"revoked {count} labeler{'s' * (count != 1)} named {revoke!r}")
        return 0 if count else 1
    if reviewer is not None:
        token = store.invite(reviewer, REVIEWER)
        print(f"{reviewer} (reviewer): {url.rstrip('/')}/?token={token}")
        return 0
    token = store.invite(name or "", LABELER)
    print(f"{name}: {url.rstrip('/')}/?token={token}")
    return 0


def run_export(app: str, *, stage: str | None, form: str, output: Path, db: str | None) -> int:
    """`nbfreeze export`: write pool stages' labels, or say in one line why not (exit 2)."""
    from runtime.app import exports

    try:
        notebook, bundle, url = _export_source(app, db)
        pools = _export_stages(app, notebook, url, stage)
        store = _open_database(url)
        try:
            if form == "coco":
                if notebook is None or bundle is None:
                    raise _Refused(
                        f"{app}: COCO needs the box stage's image and boxes, which only the "
                        "notebook knows: pass the notebook or its bundle, with --db URL"
                    )
                written = asyncio.run(
                    exports.write_coco(notebook, store, bundle / "cache", stage, output)
                )
            else:
                stages = dict.fromkeys(pools)
                written = exports.write(store, stages, form, output, single=stage is not None)
        finally:
            store.dispose()
    except (_Refused, exports.ExportRefused) as refused:
        print(f"nbfreeze export: {refused}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def run_thaw(app: str, *, output: Path, db: str | None) -> int:
    """`nbfreeze thaw`: write the notebook run on the app's answers; exit 1 when a cell
    of it failed (the notebook is written with the error in place), 2 when it cannot
    start."""
    from runtime.app import thaw

    try:
        _thaw_output(output)
        _, bundle, url = _export_source(app, db)
        if bundle is None:
            raise _Refused(
                f"{_shown_url(url)}: thawing runs the notebook: pass the served notebook or "
                "its bundle directory, and the database with --db URL"
            )
        store = _open_database(url)
        try:
            made = asyncio.run(thaw.thaw(bundle, store, output))
        finally:
            store.dispose()
    except (_Refused, thaw.ThawRefused) as refused:
        print(f"nbfreeze thaw: {refused}", file=sys.stderr)
        return 2
    print(f"wrote {made.notebook} and {made.answers}", file=sys.stderr)
    if made.failure:
        print(f"nbfreeze thaw: {made.failure}", file=sys.stderr)
        return 1
    return 0


def _thaw_output(output: Path) -> None:
    """Refuse an output that cannot be the thawed notebook, before anything runs."""
    if output.suffix != ".ipynb":
        raise _Refused(f"{output}: the thawed notebook's name must end in .ipynb")
    if output.is_dir():
        raise _Refused(f"{output}: is a directory; give the .ipynb file to write")
    if not output.parent.is_dir():
        raise _Refused(f"{output}: its folder {output.parent} does not exist")


def _export_source(app: str, db: str | None) -> tuple[Notebook | None, Path | None, str]:
    """What `nbfreeze export` reads: the bundle's notebook (none for a database URL),
    the bundle directory, and the database URL."""
    from runtime import bundle as bundles
    from runtime.store.database import default_url

    if "://" in app:
        return None, None, app
    path = Path(app)
    if not path.exists():
        raise _Refused(f"{app}: no such notebook or bundle directory (nor a database URL)")
    if not path.is_dir() and path.suffix != ".ipynb":
        raise _Refused(f"{app}: is neither a notebook (.ipynb) nor a bundle directory")
    bundle = path if path.is_dir() else path.with_name(path.stem + ".nbfreeze")
    if not (bundle / "manifest.json").is_file():
        raise _Refused(f"{app}: no bundle at {bundle}; serve the notebook once first")
    if db is None and not (bundle / "app.sqlite").exists():
        raise _Refused(f"{app}: no app database at {bundle}; serve it once first, or pass --db")
    try:
        notebook = bundles.load(bundle)
    except bundles.BundleError as error:
        raise _Refused(str(error)) from None
    return notebook, bundle, db or default_url(bundle)


def _export_stages(app: str, notebook: Notebook | None, url: str, stage: str | None) -> list[str]:
    """The pool stages to export: `stage`, checked, or every one."""
    if notebook is None:
        store = _open_database(url)
        try:
            from runtime.store.exports import pool_stages

            names = pool_stages(store)
        finally:
            store.dispose()
    else:
        names = [s.name for s in notebook.stages if s.input == "pool"]
    listed = ", ".join(names) or "none"
    if stage is None:
        if not names:
            raise _Refused(f"{app}: has no pool stage, so no labels to export")
        return names
    if notebook is not None and notebook.stage(stage) is None:
        raise _Refused(f"{app}: no stage named '{stage}' (its pool stages: {listed})")
    if notebook is not None and stage not in names:
        found = notebook.stage(stage)
        kind = f"input: {found.input}" if found and found.input else "a compute stage"
        raise _Refused(
            f"{app}: stage '{stage}' is {kind}, not a pool: only pool stages have labels to "
            f"export (its pool stages: {listed})"
        )
    if stage not in names:
        raise _Refused(
            f"{_shown_url(url)}: no pool stage named '{stage}' (its pool stages: {listed})"
        )
    return [stage]


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _open_database(url: str) -> Store:
    """The app's database, or a refusal naming it: a SQLite file that is not there is
    not made, a server that does not answer is said so."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from runtime.store.database import open_store

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _Refused(f"{url}: is not a database URL") from None
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise _Refused(f"{_shown_url(url)}: no such database file")
    try:
        return open_store(url)
    except (SQLAlchemyError, ImportError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _Refused(f"{_shown_url(url)}: cannot open the database ({reason})") from None


def _print_diagnostics(graph: Graph) -> None:
    from freezer.report import diagnostic_text

    for diagnostic in graph.diagnostics:
        print(diagnostic_text(diagnostic), file=sys.stderr)


def run_check(notebook: Path, *, as_dot: bool, as_json: bool) -> int:
    """`nbfreeze check`: exit 0 when the notebook compiles, 1 when it has errors."""
    from freezer.compile import compile_notebook, has_errors
    from freezer.report import dot, dumps, graph_json, summary, table

    graph = compile_notebook(notebook)
    failed = has_errors(graph)
    if as_json:
        sys.stdout.write(dumps(graph_json(graph)))
        return int(failed)
    if as_dot:
        if graph.stages:
            sys.stdout.write(dot(graph))
        _print_diagnostics(graph)
        return int(failed)
    if graph.stages:
        print(table(graph))
        print()
    _print_diagnostics(graph)
    print(f"{graph.notebook}: {summary(graph)}.", file=sys.stderr)
    return int(failed)


def run_build(notebook: Path, output: Path) -> int:
    """`nbfreeze build`: write the bundle, or print why not and exit 1."""
    from freezer.bundle import write_bundle
    from freezer.compile import compile_notebook, has_errors
    from freezer.report import summary

    graph = compile_notebook(notebook)
    _print_diagnostics(graph)
    if has_errors(graph):
        print(f"{graph.notebook}: {summary(graph)}; no bundle written.", file=sys.stderr)
        return 1
    write_bundle(graph, notebook.read_bytes(), output)
    print(f"wrote {output} ({summary(graph)})", file=sys.stderr)
    return 0


def bundle_for(target: Path) -> Path | None:
    """The bundle to serve: `target` itself, or a fresh build of the notebook beside it."""
    if target.is_dir() and (target / "manifest.json").is_file():
        return target
    from freezer.bundle import write_bundle
    from freezer.compile import compile_notebook, has_errors
    from freezer.report import summary

    graph = compile_notebook(target)
    _print_diagnostics(graph)
    if has_errors(graph):
        print(f"{graph.notebook}: {summary(graph)}; not serving it.", file=sys.stderr)
        return None
    out = target.with_name(target.stem + ".nbfreeze")
    return write_bundle(graph, target.read_bytes(), out)


def run_serve(target: Path, options: ServeOptions) -> int:
    """`nbfreeze serve`: build when given a notebook, then serve until interrupted."""
    if target.is_dir() and not (target / "manifest.json").is_file():
        print(
            f"{target}: is a directory without a manifest.json; pass a notebook or a bundle.",
            file=sys.stderr,
        )
        return 1
    bundle = bundle_for(target)
    if bundle is None:
        return 1
    from runtime.server import serve

    bundle = bundle.resolve()
    _work_beside(bundle.parent)
    serve(bundle, dataclasses.replace(options, db_url=_absolute_sqlite(options.db_url)))
    return 0


def _absolute_sqlite(db_url: str | None) -> str | None:
    """A SQLite URL with a relative file made absolute, so that it still names the file
    the user meant after `_work_beside` changes the working directory."""
    if db_url is None:
        return None
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return db_url
    return url.set(database=os.path.abspath(url.database)).render_as_string(hide_password=False)


def _work_beside(directory: Path) -> None:
    """Run the notebook's code as Jupyter does: from the notebook's directory, with that
    directory importable (its own modules, its data files by relative path)."""
    os.chdir(directory)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def _with_system_malloc(argv: Sequence[str]) -> None:
    """Run `serve` with the C library's allocator instead of Python's own.

    Python's small-object allocator keeps a 1 MiB arena as long as one object in it
    lives, so the memory of thousands of closed sessions would never go back to the
    system; with malloc, freeing a session's objects and `malloc_trim` give it back.
    Setting it needs a new interpreter: the process re-executes itself, once."""
    if os.environ.get("PYTHONMALLOC") == "malloc":
        return
    os.environ["PYTHONMALLOC"] = "malloc"
    os.execv(sys.executable, [sys.executable, "-m", "freezer", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `nbfreeze` command; never lets a traceback reach the user."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _with_system_malloc(argv)
    try:
        if args.command == "check":
            return run_check(args.notebook, as_dot=args.dot, as_json=args.json)
        if args.command == "build":
            return run_build(args.notebook, args.output)
        if args.command == "export":
            return run_export(
                args.app, stage=args.stage, form=args.form, output=args.output, db=args.db
            )
        if args.command == "thaw":
            return run_thaw(args.app, output=args.output, db=args.db)
        if args.command == "deploy":
            return run_deploy(args)
        if args.command == "invite":
            return run_invite(
                args.app,
                name=args.name,
                revoke=args.revoke,
                db=args.db,
                url=args.url,
                reviewer=args.reviewer,
                revoke_links=args.revoke_links,
            )
        return run_serve(args.target, serve_options(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"nbfreeze: {exc.filename or ''}: {exc.strerror}.", file=sys.stderr)
        return 1
    except Exception as exc:  # the last line of defence: a message, never a traceback
        if type(exc).__name__ == "NewerDatabase":  # runtime.store, not imported for `check`
            print(f"nbfreeze: {exc}", file=sys.stderr)
            return 1
        message = json.dumps(str(exc))
        print(
            f"nbfreeze: internal error ({type(exc).__name__}: {message}); please report it.",
            file=sys.stderr,
        )
        return 3
