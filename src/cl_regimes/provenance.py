"""What a rerun needs besides a run's configuration: the facts of the machine and code
that touch its numbers, a digest of the images it trained and was tested on, and the
digest of the code a method from outside the library runs (its identity: a record is
reused only while that code is unchanged).

``python -m cl_regimes verify`` compares these facts, as a record holds them, with
the rerun's (``verify.py``).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import linecache
import os
import platform
import socket
import sys
import textwrap
from functools import cache
from importlib import metadata
from pathlib import Path

import torch

from cl_regimes import __version__, data, methods, results
from cl_regimes.config import ConfigError

# the packages whose versions can change a run's numbers (sklearn: the digits split)
PACKAGES = ("torch", "torchvision", "numpy", "pillow", "scikit-learn")
# the facts that, when they differ, explain a rerun that differs
FACTS = (
    "packages",
    "cpu",
    "cpu_capability",
    "onednn_max_isa",
    "device",
    "threads",
    "precision",
    "images",
    "init_weights",
)
# The instruction set of torch's CPU kernels (ATen's, and oneDNN's convolutions) sets
# their roundings: the same code gives other numbers on an AVX-512 CPU than on an AVX2
# one. These variables, set before torch loads, make a CPU use a lower one (``verify``).
ISA_VARIABLES = {  # ATen's capability -> the environment that selects it
    "AVX512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "DEFAULT": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


ISA_FLAGS = {  # ATen's capability -> the CPU flags it needs (/proc/cpuinfo's names)
    "AVX512": {"avx512f", "avx512bw", "avx512vl", "avx512dq"},
    "AVX2": {"avx2", "fma"},
    "DEFAULT": set(),
}


@cache
def cpu_isas() -> tuple[str, ...]:
    """The instruction sets of ``ISA_VARIABLES`` this CPU has (its flags in /proc/cpuinfo;
    elsewhere, the one torch uses and those below it)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next(set(x.split(":", 1)[1].split()) for x in info if x.startswith("flags"))
        return tuple(isa for isa, needs in ISA_FLAGS.items() if needs <= flags)
    except (OSError, StopIteration):
        names = list(ISA_VARIABLES)
        now = torch.backends.cpu.get_cpu_capability()
        return tuple(names[names.index(now) :] if now in names else ["DEFAULT"])


@cache
def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@cache
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def images_digest(blocks: list[data.Block]) -> str:
    """sha256 of every task's training and test images and labels, as the run used them
    (after resizing, subsampling and the scenario's transform), by task number."""
    digest = hashlib.sha256()
    for block in blocks:
        for t in (block.train.x, block.train.y, block.test.x, block.test.y):
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def initial_weights(config) -> dict:
    """``{"init_weights": sha256}`` of the ImageNet weights a pretrained run starts from
    (``init=pretrained``); nothing for a random initialisation."""
    if config.init != "pretrained":
        return {}
    from cl_regimes import initialisation

    return {"init_weights": initialisation.digest()}


def method_source(name: str) -> dict | None:
    """An outside method's identity: ``sha256``, a digest of the code it runs with
    comments, docstrings and formatting left out (``method_code``), ``files``, what was
    hashed, and ``path``, where it was loaded from (information only: the same code by
    path or by entry point is the same method, ``results.same_code``). None for the
    library's own methods, whose code is the commit."""
    if methods.builtin(name):
        return None
    cls = methods.get(name)
    files, digest = method_code(cls)
    return {"path": f"{cls.__module__}:{cls.__qualname__}", "sha256": digest, "files": files}


def method_code(cls: type) -> tuple[list[str], str]:
    """(what was hashed, sha256 of it) of the code ``cls`` runs: the modules of its own
    package (or, for a single module, of its folder or distribution) that its module's
    import statements reach; for a class of a notebook or ``__main__``, its source and
    that of its bases defined there. Each part is parsed and dumped without docstrings
    or positions, and the parts hashed in the order of their digests: a file's name or
    place does not count, nor a module with no code (an empty ``__init__.py``). Raises
    ConfigError when the source cannot be read: its records could not tell a change."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or not file:
        parts = {f"{c.__module__}.{c.__qualname__}": _dump(_class_node(c)) for c in _own_bases(cls)}
    else:
        parts = {label: _dump(tree) for label, tree in _module_trees(module).items()}
    parts = {label: code for label, code in parts.items() if code}
    digest = hashlib.sha256()
    for part in sorted(hashlib.sha256(code.encode()).hexdigest() for code in parts.values()):
        digest.update(part.encode())
    return sorted(parts), digest.hexdigest()


def _dump(tree: ast.AST) -> str:
    """``tree`` without its docstrings, as ``ast.dump`` writes it without positions (""
    for a module with no statements)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    if isinstance(tree, ast.Module) and all(isinstance(n, ast.Pass) for n in tree.body):
        return ""
    return ast.dump(tree)


def _own_bases(cls: type) -> list[type]:
    """``cls`` and the bases it inherits from its own module (a notebook's classes)."""
    return [c for c in cls.__mro__ if c.__module__ == cls.__module__]


def _class_node(cls: type) -> ast.ClassDef:
    """The definition of ``cls``, from the lines its functions were compiled from (an
    IPython cell's are in ``linecache``), else from ``inspect``."""
    for value in vars(cls).values():
        func = inspect.unwrap(getattr(value, "__func__", getattr(value, "fget", value)))
        code = getattr(func, "__code__", None)
        lines = code and linecache.getlines(code.co_filename)
        if not lines:
            continue
        for node in ast.walk(ast.parse("".join(lines))):
            if (
                isinstance(node, ast.ClassDef)
                and node.name == cls.__name__
                and node.lineno <= code.co_firstlineno <= node.end_lineno
            ):
                return node
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    except (OSError, TypeError, SyntaxError):
        raise ConfigError(
            f"method {cls.__module__}.{cls.__qualname__}: its source cannot be read, so its "
            "records could not tell when its code changes; define it in a file "
            "(--method module:Class) or a notebook cell"
        ) from None


def _module_trees(module) -> dict[str, ast.Module]:
    """The parsed files of a plug-in's own code that ``module``'s imports reach, by path
    relative to the folder of its top-level package (or module)."""
    name = module.__name__
    top = name.partition(".")[0]
    single = top == name and not hasattr(module, "__path__")
    if single:  # the modules beside it (of its distribution, where it is installed)
        roots = [Path(module.__file__).parent]
        installed = _distribution_files(Path(module.__file__))
    else:  # the modules of its top-level package (a namespace package's folders)
        roots = [Path(p) for p in sys.modules[top].__path__]
        installed = None

    def locate(modname: str) -> tuple[Path | None, bool]:
        parts = modname.split(".")
        if not single and parts[0] != top:
            return None, False
        file, package = _find(roots, parts if single else parts[1:])
        if file and installed and file.resolve() not in installed:
            return None, False
        return file, package

    trees: dict[str, ast.Module] = {}
    todo = [(name, Path(module.__file__), hasattr(module, "__path__"))]
    todo += [(m, *locate(m)) for m in _parents(name)]
    while todo:
        modname, file, package = todo.pop()
        root = file and next((r for r in roots if file.is_relative_to(r)), file.parent)
        label = file and file.relative_to(root if single else root.parent).as_posix()
        if not file or label in trees:
            continue
        try:
            trees[label] = tree = ast.parse(file.read_bytes())
        except (OSError, SyntaxError, ValueError) as err:
            raise ConfigError(f"method module {modname!r}: cannot parse {file}: {err}") from None
        todo += [(m, *locate(m)) for m in _imports(tree, modname, package)]
    return trees


def _find(roots: list[Path], parts: list[str]) -> tuple[Path | None, bool]:
    """(the file of the module at ``parts`` under one of ``roots``, whether a package)."""
    for root in roots:
        folder = root.joinpath(*parts)
        if parts and folder.with_suffix(".py").is_file():
            return folder.with_suffix(".py"), False
        if (folder / "__init__.py").is_file():
            return folder / "__init__.py", True
    return None, False


def _parents(name: str) -> list[str]:
    """The packages above module ``name``: importing it runs theirs."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports(tree: ast.Module, name: str, package: bool) -> set[str]:
    """Every module an import statement of module ``name`` may load (anywhere in it, a
    function's too), with their parent packages; ``from m import x`` counts ``m.x``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(filter(None, [*here, base]))
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    found.discard("")
    return found | {p for m in found for p in _parents(m)}


def _distribution_files(file: Path) -> set[Path] | None:
    """The files of the installed distribution ``file`` belongs to (None: not installed)."""
    for dist in metadata.distributions(path=[str(file.parent)]):
        files = {Path(dist.locate_file(f)).resolve() for f in dist.files or ()}
        if file.resolve() in files:
            return files
    return None


def environment(device: torch.device, precision: str, group_size: int) -> dict:
    """The machine and code facts of a run trained now on ``device``."""
    return {
        "cl_regimes": __version__,
        "commit": results.git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "packages": package_versions(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "group_size": group_size,
        "host": socket.gethostname(),
    }
