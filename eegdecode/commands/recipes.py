"""``eegdecode recipes [NAME]``: the packaged recipes with the papers' published numbers, or one recipe in full.

Without NAME: one row per recipe (encoder, target, the paper's 200-way top-1 intra-subject and leave-one-subject-
out on THINGS-EEG2, how many settings we changed). With NAME: its source, published numbers, settings (intra and
the leave-one-subject-out overrides), what we changed and why, what is not reproduced, and the overrides used on
simulated data. The numbers are the papers'; ours are measured with ``eegdecode train --recipe NAME``.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a recipe to show in full (default: list them all)")
    p.add_argument("--markdown", action="store_true", help="Markdown tables (for a README or a report)")
    p.add_argument("--recipe-dir", help="also read the *.yaml recipes of this folder")


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def target_label(settings: dict[str, Any]) -> str:
    """``RN50 embedding, blur ubp (uncertainty)``: a short description of a recipe's target."""
    target = settings.get("target")
    if not target:
        return f"features {settings.get('features', 'reference')}"
    backbone = str(target["backbone"]).split(":", 1)[-1]
    layers = target.get("layers", ["embedding"])
    layers = [layers] if isinstance(layers, str) else list(layers)
    if len(layers) > 3:
        label = f"{backbone} {len(layers)} layers ({layers[0]} .. {layers[-1]})"
    else:
        label = f"{backbone} {'+'.join(layers)}"
    blur = target.get("blur", ["none"])
    blur = [blur] if isinstance(blur, str) else list(blur)
    if blur != ["none"]:
        label += f", blur {'+'.join(blur)}"
        if target.get("blur_rule"):
            label += f" ({target['blur_rule']})"
    if target.get("combine") == "router":
        label += ", router"
    if target.get("head"):
        label += f", {target['head'].get('kind')} head {target['head'].get('embed_dim')}"
    return label


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    )


def _entries(keys: list[str], entries: list[dict[str, str]], markdown: bool) -> str:
    """Deviations or gaps: a Markdown table, or on a terminal one block per entry (the texts are long)."""
    if markdown:
        return _table(keys, [[str(e.get(k, "")) for k in keys] for e in entries], True)
    lines = []
    for e in entries:
        lines.append(f"- {e[keys[0]]}")
        lines += [f"    {k}: {e[k]}" for k in keys[1:] if e.get(k)]
    return "\n".join(lines)


def list_table(markdown: bool = False) -> str:
    """The table of every recipe: name, encoder, target, published top-1 (intra / loso), deviations."""
    from eegdecode.training.recipes import get_recipe, list_recipes

    header = ["recipe", "encoder", "target", "paper intra top-1", "paper loso top-1", "deviations", "source"]
    rows = []
    for name in list_recipes():
        r = get_recipe(name)
        venue = r.source.get("venue", "")
        arxiv = r.source.get("arxiv")
        rows.append(
            [
                name,
                str(r.settings.get("model", "NervformerV2")),
                target_label(r.settings),
                _pct(r.published_top1("intra")),
                _pct(r.published_top1("loso")),
                str(len(r.deviations)),
                " ".join(
                    x for x in (venue if venue != "arXiv" else "", f"arXiv {arxiv}" if arxiv else "") if x
                ),
            ]
        )
    note = (
        "Top-1 (%) of 200-way zero-shot retrieval on THINGS-EEG2 as the papers publish it (not measured here); "
        "`eegdecode recipes NAME` gives the sources and what we changed."
    )
    return _table(header, rows, markdown) + "\n\n" + note


def _flat(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for key, value in mapping.items():
        if (
            isinstance(value, dict)
            and value
            and key in ("data", "target", "router", "loss_options", "model_options", "mmd_options")
        ):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", "null" if value is None else str(value)))
    return out


def show(name: str, markdown: bool = False) -> str:
    """One recipe in full."""
    from eegdecode.training.recipes import get_recipe, simulated_overrides

    r = get_recipe(name, option="NAME")
    heading = (lambda t: f"\n## {t}\n") if markdown else (lambda t: f"\n{t}\n{'-' * len(t)}")
    parts = [
        f"# {r.name}: {r.title}"
        if markdown
        else f"{r.name}: {r.title}\n{'=' * (len(r.name) + len(r.title) + 2)}"
    ]
    parts.append(heading("Source"))
    for key, value in r.source.items():
        if isinstance(value, list):
            parts.append(f"- {key}:")
            parts += [f"  - {v}" for v in value]
        else:
            parts.append(f"- {key}: {value}")
    parts.append(heading("Published (the paper's numbers, 200-way top-1 / top-5 %)"))
    rows = []
    for dataset in ("things_eeg2", "things_meg"):
        for protocol in ("intra", "loso"):
            t1, t5 = r.published_top1(protocol, dataset), r.published_top5(protocol, dataset)
            if t1 is not None:
                rows.append([dataset, protocol, _pct(t1), _pct(t5)])
    parts.append(_table(["data set", "protocol", "top-1", "top-5"], rows, markdown))
    parts.append(f"\nFrom: {r.published.get('table', 'not stated')}")
    parts.append(heading("Settings (intra-subject; TrainConfig keys)"))
    parts.append(_table(["setting", "value"], [list(kv) for kv in _flat(r.settings)], markdown))
    if r.loso:
        parts.append(heading("Leave-one-subject-out overrides (`--protocol loso`)"))
        parts.append(_table(["setting", "value"], [list(kv) for kv in _flat(r.loso)], markdown))
    parts.append(heading(f"Deviations from the paper ({len(r.deviations)})"))
    parts.append(_entries(["setting", "ours", "theirs", "why"], r.deviations, markdown))
    if r.not_reproduced:
        parts.append(heading(f"Not reproduced ({len(r.not_reproduced)})"))
        parts.append(_entries(["what", "why", "needs"], r.not_reproduced, markdown))
    if r.notes:
        parts.append(heading("Notes"))
        parts.append(r.notes.strip())
    parts.append(heading("On simulated data (applied by `train --recipe` when the data root is simulated)"))
    parts.append(_table(["setting", "value"], [list(kv) for kv in _flat(simulated_overrides(r))], markdown))
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    from eegdecode.training.recipes import add_recipe_dir

    if args.recipe_dir:
        add_recipe_dir(args.recipe_dir)
    print(show(args.name, args.markdown) if args.name else list_table(args.markdown))
    return 0
