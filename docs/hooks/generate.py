"""MkDocs hook: generate the API reference and the examples gallery at build time.

Nothing generated is written into ``docs/``: the pages are added to the build as in-memory files
(``File.generated``), so ``mkdocs serve`` does not loop on its own output and the tree stays clean.

* ``api/<package>.md``: for each package of :data:`API_PACKAGES`, its docstring and one mkdocstrings block per
  public submodule, discovered from the source tree (a new module appears without editing anything here).
* ``examples/<name>.md``: for each ``examples/*.py``, the script is **run** (on the simulated data; it must finish
  in seconds) and the page shows its docstring, its code, what it printed and the figures it saved into
  ``$EEGDECODE_EXAMPLE_OUT``. A failing example fails the build, so the gallery cannot rot.

Why a hook and not mkdocs-gallery: this needs no further dependency, runs each example in its own process with a
timeout and the build's Python, and its failures are plain build errors in strict mode.
"""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.generate")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
API_PACKAGES = (
    "data",
    "embeddings",
    "targets",
    "models",
    "training",
    "evaluation",
    "generation",
    "metrics",
    "report",
    "download",
    "sweep",
    "preprocessing",
)
EXAMPLE_TIMEOUT_S = 180


def api_packages() -> list[str]:
    """The packages of :data:`API_PACKAGES` that exist in this checkout."""
    return [p for p in API_PACKAGES if (ROOT / "eegdecode" / p / "__init__.py").exists()]


def submodules(package: str) -> list[str]:
    """Public submodules (files and subpackages) of ``eegdecode.<package>``, sorted."""
    base = ROOT / "eegdecode" / package
    names = [p.stem for p in base.glob("*.py") if not p.name.startswith("_")]
    names += [p.parent.name for p in base.glob("*/__init__.py") if not p.parent.name.startswith("_")]
    return sorted(names)


def example_scripts() -> list[Path]:
    """The gallery's scripts, ``examples/*.py`` sorted by name (a leading number orders them)."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def example_page_name(script: Path) -> str:
    """``examples/01_simulate_and_train.py`` -> ``simulate_and_train`` (the page ``examples/<name>.md``)."""
    stem = script.stem
    head, _, tail = stem.partition("_")
    return tail if head.isdigit() and tail else stem


def generated_pages() -> list[str]:
    """Every page this hook adds, as paths relative to ``docs/`` (used by ``tests/test_docs.py``)."""
    pages = ["api/index.md"] + [f"api/{p}.md" for p in api_packages()]
    pages += ["examples/index.md"] + [f"examples/{example_page_name(s)}.md" for s in example_scripts()]
    return pages


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


def _module_doc(path: Path) -> str | None:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))


def api_page(package: str) -> str:
    """Markdown of ``api/<package>.md``."""
    lines = [
        f"# `eegdecode.{package}`",
        "",
        f"::: eegdecode.{package}",
        "    options:",
        "      show_root_heading: false",
        "      members: false",
        "",
    ]
    for name in submodules(package):
        lines += [f"::: eegdecode.{package}.{name}", ""]
    return "\n".join(lines)


def api_index() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the package's docstrings (numpy style). Imports flow one way: data -> targets/embeddings ->",
        "models -> training -> evaluation -> generation -> metrics -> report.",
        "",
        "| package | what it holds |",
        "|---|---|",
    ]
    for p in api_packages():
        doc = _first_line(_module_doc(ROOT / "eegdecode" / p / "__init__.py"))
        lines.append(f"| [`eegdecode.{p}`]({p}.md) | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _split_docstring(source: str) -> tuple[str, str]:
    """(docstring, code without the docstring) of an example script."""
    tree = ast.parse(source)
    doc = ast.get_docstring(tree) or ""
    if (
        tree.body
        and isinstance(tree.body[0], ast.Expr)
        and isinstance(getattr(tree.body[0], "value", None), ast.Constant)
    ):
        end = tree.body[0].end_lineno or 0
        code = "\n".join(source.splitlines()[end:]).strip("\n")
    else:
        code = source.strip("\n")
    return doc, code


def run_example(script: Path, out_dir: Path) -> tuple[str, float]:
    """Run one example in its own process (cwd: a fresh temporary folder); returns (output, seconds)."""
    env = dict(os.environ)
    env.update(
        EEGDECODE_EXAMPLE_OUT=str(out_dir),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    )
    env.setdefault("OMP_NUM_THREADS", "1")  # the examples run side by side
    with tempfile.TemporaryDirectory(prefix="eegdecode_example_") as cwd:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(script)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=EXAMPLE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"{script.relative_to(ROOT)}: ran past {EXAMPLE_TIMEOUT_S} s") from err
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{script.relative_to(ROOT)} failed (exit status {proc.returncode}):\n{tail}")
    return proc.stdout.rstrip(), seconds


def example_page(script: Path, output: str, seconds: float, figures: list[str]) -> str:
    doc, code = _split_docstring(script.read_text(encoding="utf-8"))
    title, _, body = doc.partition("\n")
    lines = [f"# {title.strip() or example_page_name(script)}", "", body.strip(), ""]
    lines += [f"Source: `examples/{script.name}` (run it with `python examples/{script.name}`).", ""]
    lines += [
        "```python",
        code,
        "```",
        "",
        "## Output",
        "",
        f"Printed when these pages were built (the script ran in {seconds:.1f} s).",
        "",
    ]
    lines += ["```text", output or "(nothing printed)", "```", ""]
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


def examples_index(scripts: list[Path]) -> str:
    lines = [
        "# Examples",
        "",
        "Each example runs on the built-in simulated THINGS-EEG2 in seconds on a CPU; the pages below were produced",
        "by running them while the documentation was built (a failing example fails the build).",
        "",
        "| example | what it shows |",
        "|---|---|",
    ]
    for s in scripts:
        title, _, body = (_module_doc(s) or "").partition("\n")
        summary = " ".join(body.strip().split("\n\n")[0].split())
        lines.append(f"| [{title.strip()}]({example_page_name(s)}.md) | {summary} |")
    return "\n".join(lines) + "\n"


def on_files(files, config):
    """MkDocs event: add the generated pages (and example figures) to the build."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    def add(src_uri: str, content: str | bytes) -> None:
        files.append(File.generated(config, src_uri, content=content))

    add("api/index.md", api_index())
    for package in api_packages():
        add(f"api/{package}.md", api_page(package))

    scripts = example_scripts()
    add("examples/index.md", examples_index(scripts))
    with tempfile.TemporaryDirectory(prefix="eegdecode_example_out_") as out:
        out_dirs = {s: Path(out) / s.stem for s in scripts}
        for d in out_dirs.values():
            d.mkdir()
        # The examples are independent processes: run them side by side (they wait on imports and disk as much as
        # on the CPU), and fail the build on the first error, naming the script.
        with ThreadPoolExecutor(max_workers=max(1, min(len(scripts), os.cpu_count() or 1, 4))) as pool:
            futures = {s: pool.submit(run_example, s, out_dirs[s]) for s in scripts}
            try:
                results = {s: f.result() for s, f in futures.items()}
            except RuntimeError as err:
                raise PluginError(str(err)) from err
        for script in scripts:
            name = example_page_name(script)
            output, seconds = results[script]
            log.info("example %s ran in %.1f s", script.name, seconds)
            figures = []
            for png in sorted(out_dirs[script].glob("*.png")):
                fig = f"{name}_{png.name}"
                add(f"examples/{fig}", png.read_bytes())
                figures.append(fig)
            add(f"examples/{name}.md", example_page(script, output, seconds, figures))
    return files
