"""Which global names a cell reads, binds, deletes and mutates, by Python's scoping rules.

One `ast.NodeVisitor` with an explicit scope stack, in the manner of pyflakes: module,
function (lambda), class and comprehension scopes. A function's locals are known before
its body is visited (Python decides them statically), class bodies do not enclose the
functions inside them, comprehension targets are local while a walrus binds outward.
Only what happens to the module's (the notebook's) namespace becomes an `Event`, in
the order the code would do it; reads inside function bodies are `deferred`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from freezer.ir import UNLISTED, Event

MUTATING_METHODS = frozenset(
    {
        "append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
        "update", "setdefault", "popitem", "add", "discard", "difference_update",
        "intersection_update", "symmetric_difference_update", "fill", "resize",
        "itemset", "put", "__setitem__", "__delitem__", "__iadd__",
    }
)  # fmt: skip

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class _Scope:
    kind: str  # module | function | class | comprehension
    names: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CellNames:
    """What one cell does to the notebook's namespace, and the statements that parse but
    cannot run where they are (`return` outside a function, `import *` inside one: the
    parser accepts them, Python's compiler refuses them)."""

    events: tuple[Event, ...]
    misplaced: tuple[tuple[int, str], ...] = ()


def analyse(tree: ast.Module) -> CellNames:
    """The global-namespace events of a parsed cell, in execution order."""
    visitor = _Visitor()
    for statement in tree.body:
        visitor.visit(statement)
    return CellNames(tuple(visitor.events), tuple(visitor.misplaced))


class _LocalNames(ast.NodeVisitor):
    """The names a function body binds locally, and its global/nonlocal declarations."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.bound.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.nonlocals.update(node.names)

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.bound.add(node.name)
        for expression in node.decorator_list:
            self.visit(expression)
        if isinstance(node, ast.ClassDef):
            for expression in [*node.bases, *(k.value for k in node.keywords)]:
                self.visit(expression)
        else:
            self._arguments(node.args)
            if node.returns:
                self.visit(node.returns)

    def _arguments(self, args: ast.arguments) -> None:
        for expression in [*args.defaults, *(d for d in args.kw_defaults if d)]:
            self.visit(expression)
        for arg in _all_args(args):
            if arg.annotation:
                self.visit(arg.annotation)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._arguments(node.args)

    def _comprehension(self, node: ast.AST) -> None:
        for walrus in ast.walk(node):
            if isinstance(walrus, ast.NamedExpr):
                self.bound.add(walrus.target.id)  # type: ignore[union-attr]
        for generator in node.generators:  # type: ignore[attr-defined]
            self.visit(generator.iter)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _alias(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound.add(alias.asname or alias.name.split(".")[0])

    visit_Import = visit_ImportFrom = _alias

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def _capture(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    visit_MatchAs = visit_MatchStar = _capture

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a]
    return [*args.posonlyargs, *args.args, *extra, *args.kwonlyargs]


def _root_name(node: ast.expr) -> ast.Name | None:
    """`x` of `x.a[0].b`: the name whose value an attribute or item chain reaches into."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node if isinstance(node, ast.Name) else None


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.stack: list[_Scope] = [_Scope("module")]
        self.events: list[Event] = []
        self.misplaced: list[tuple[int, str]] = []

    # resolution

    def _deferred(self) -> bool:
        return any(scope.kind == "function" for scope in self.stack)

    def _is_global(self, name: str) -> bool:
        """Does `name`, read in the current scope, refer to the module namespace?"""
        for depth, scope in enumerate(reversed(self.stack)):
            innermost = depth == 0
            if scope.kind == "module":
                return True
            if scope.kind == "class" and not innermost:
                continue
            if name in scope.globals:
                return True
            if name in scope.names or name in scope.nonlocals:
                return False
        return True

    def _emit(self, kind: str, name: str, node: ast.AST, detail: str = "") -> None:
        line = getattr(node, "lineno", 1)
        self.events.append(Event(kind, name, line, self._deferred(), detail))

    def _read(self, name: str, node: ast.AST) -> None:
        if self._is_global(name):
            self._emit("read", name, node)

    def _bind(self, name: str, node: ast.AST, scope: _Scope | None = None) -> None:
        scope = scope or self.stack[-1]
        if scope.kind == "module" or name in scope.globals:
            self._emit("bind", name, node)
        elif scope.kind == "class":
            scope.names.add(name)

    def _delete(self, name: str, node: ast.AST, detail: str = "del") -> None:
        """`del name`: the name must be bound (a builtin is not enough), then it is not."""
        scope = self.stack[-1]
        if self._deferred() and name in scope.globals:
            self._emit("read", name, node)
        elif scope.kind == "module" or name in scope.globals:
            self._emit("delete", name, node, detail)
        elif scope.kind == "class":
            scope.names.discard(name)

    def _mutate(self, target: ast.expr, node: ast.AST, detail: str) -> None:
        root = _root_name(target)
        if root is not None and self._is_global(root.id):
            self._emit("mutate", root.id, node, detail)

    # names

    def visit_Constant(self, node: ast.Constant) -> None:
        return None

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id, node)
        elif isinstance(node.ctx, ast.Store):
            self._bind(node.id, node)
        else:
            self._delete(node.id, node)

    def _store_target(self, target: ast.expr, statement: ast.AST, detail: str) -> None:
        """Visit an assignment target: names bind, attributes and items mutate."""
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target.value)
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
            self._mutate(target, statement, detail)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._store_target(element, statement, detail)
        elif isinstance(target, ast.Starred):
            self._store_target(target.value, statement, detail)
        else:
            self.visit(target)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._store_target(target, node, "assigns into")

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value:
            self.visit(node.value)
        if self.stack[-1].kind != "function":
            self.visit(node.annotation)
        if node.value:
            self._store_target(node.target, node, "assigns into")
        elif not isinstance(node.target, ast.Name):
            self.visit(node.target)  # `box.size: int` evaluates `box`, assigns nothing

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        target = node.target
        if isinstance(target, ast.Name):
            self._read(target.id, target)
            self.visit(node.value)
            self._mutate(target, node, "updates in place")
            self._bind(target.id, target)
        else:
            self.visit(node.value)
            self._store_target(target, node, "updates in place")

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._store_target(target, node, "deletes from")

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in MUTATING_METHODS:
            self._mutate(func.value, node, f"calls `.{func.attr}()` on")

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = next(s for s in reversed(self.stack) if s.kind != "comprehension")
        self._bind(node.target.id, node.target, scope)

    # definitions

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for expression in getattr(node, "decorator_list", []):
            self.visit(expression)
        args = node.args
        for expression in [*args.defaults, *(d for d in args.kw_defaults if d)]:
            self.visit(expression)
        if not isinstance(node, ast.Lambda):
            for arg in _all_args(args):
                if arg.annotation:
                    self.visit(arg.annotation)
            if node.returns:
                self.visit(node.returns)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        locals_ = _LocalNames()
        for statement in body:
            locals_.visit(statement)
        scope = _Scope(
            "function", {a.arg for a in _all_args(args)}, locals_.globals, locals_.nonlocals
        )
        scope.names |= locals_.bound - locals_.globals - locals_.nonlocals
        if self.stack[-1].kind == "class":
            scope.names.add("__class__")  # the implicit closure cell of methods
        for name in sorted(locals_.globals & locals_.bound):
            self._emit_deferred_bind(name, node)
        self.stack.append(scope)
        for statement in body:
            self.visit(statement)
        self.stack.pop()
        if not isinstance(node, ast.Lambda):
            self._bind(node.name, node)

    def _emit_deferred_bind(self, name: str, node: ast.AST) -> None:
        self.events.append(Event("bind", name, getattr(node, "lineno", 1), True))

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expression)
        self.stack.append(_Scope("class"))
        for statement in node.body:
            self.visit(statement)
        self.stack.pop()
        self._bind(node.name, node)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        generators = node.generators
        self.visit(generators[0].iter)
        self.stack.append(_Scope("comprehension"))
        for number, generator in enumerate(generators):
            if number:
                self.visit(generator.iter)
            for name in ast.walk(generator.target):
                if isinstance(name, ast.Name):
                    self.stack[-1].names.add(name.id)
            self._store_target(generator.target, node, "assigns into")
            for condition in generator.ifs:
                self.visit(condition)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.stack.pop()

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Global(self, node: ast.Global) -> None:
        if self.stack[-1].kind == "class":
            self.stack[-1].globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        return None

    def _outside_function(self, node: ast.Return | ast.Yield | ast.YieldFrom) -> None:
        if not self._deferred():
            keyword = {ast.Return: "return", ast.Yield: "yield", ast.YieldFrom: "yield from"}
            self.misplaced.append((node.lineno, f"'{keyword[type(node)]}' outside function"))
        self.generic_visit(node)

    visit_Return = visit_Yield = visit_YieldFrom = _outside_function

    # imports

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name.split(".")[0], node)
            elif len(self.stack) > 1:
                self.misplaced.append((node.lineno, "import * only allowed at module level"))
            else:
                # `from m import *` binds names only `m` knows: the compiler lists them
                # where it can import `m` (freezer/modules.py), else assumes any name.
                module = "." * node.level + (node.module or "")  # type: ignore[union-attr]
                self.events.append(Event("star", module, node.lineno, detail=UNLISTED))

    visit_Import = visit_ImportFrom = _import

    # statements with their own order of evaluation

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._store_target(node.target, node, "assigns into")
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._store_target(item.optional_vars, node, "assigns into")
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, node)
        for statement in node.body:
            self.visit(statement)
        if node.name:
            # Python unbinds the exception's name when the handler ends.
            self._delete(node.name, node, "except")

    # match statements

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._bind(node.name, node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name, node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        if node.rest:
            self._bind(node.rest, node)
