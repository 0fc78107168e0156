"""docs/cli.md, generated from the Typer app itself (`make docs`, or `python -m prefcurate.cli.docs`).

Every command, argument and option with its choices and default, in the order `--help` shows them,
so the reference cannot drift from the code; `tests/test_docs.py` fails when the file is stale.
"""

from __future__ import annotations

import inspect
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer._click import Context  # Typer vendors its own click

HEADER = """# Command-line reference

Generated from the code by `make docs` (`python -m prefcurate.cli.docs > docs/cli.md`); do not edit.
Every command also prints this with `--help`. Library errors end a command with one line on stderr,
`Error: ...`, and exit code 1; a bad option value or a missing argument exits with code 2.
"""


def _type(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    shown = str(param.display_type(ctx)).strip("<>")
    if "|" in shown:
        return " \\| ".join(f"`{c}`" for c in shown.split("|"))
    return {"str": "text", "int": "integer", "float": "number"}.get(shown, shown)


def _default(param: Any) -> str:
    value = param.default
    if getattr(param, "secondary_opts", None) and isinstance(value, bool):
        return f"`{param.opts[0] if value else param.secondary_opts[0]}`"
    if value is None or value is False or value == () or callable(value):
        return ""
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _command(name: str, cmd: Any, depth: int) -> list[str]:
    lines = [f"{'#' * depth} `{name}`", ""]
    doc = inspect.cleandoc(cmd.help or "")
    if doc:
        lines += [doc, ""]
    ctx = Context(cmd, info_name=name)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines += ["```", f"{name} {usage}".rstrip(), "```", ""]
    if hasattr(cmd, "list_commands"):
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                lines += _command(f"{name} {sub_name}", sub, depth + 1)
        return lines
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        lines += ["| argument / option | type | default | description |", "|---|---|---|---|"]
        for p in params:
            if p.param_type_name == "argument":
                label = f"`{(p.name or '').upper()}`" + ("" if p.required else " (optional)")
                text = getattr(p, "help", "") or ""
            else:
                opts = [*p.opts, *p.secondary_opts]
                label = ", ".join(f"`{o}`" for o in opts) + (" (required)" if p.required else "")
                text = p.help or ""
            lines.append(f"| {label} | {_type(p, ctx)} | {_default(p)} | {_cell(text)} |")
        lines.append("")
    if cmd.epilog:
        lines += [inspect.cleandoc(cmd.epilog), ""]
    return lines


def render_markdown(app: typer.Typer | None = None) -> str:
    """The whole reference as Markdown (deterministic: no terminal width, no colours)."""
    if app is None:
        from prefcurate.cli import app as default_app

        app = default_app
    root = typer.main.get_command(app)
    lines = [HEADER]
    ctx = Context(root, info_name="prefcurate")
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        cmd: Any = root.get_command(ctx, name)  # type: ignore[attr-defined]
        if cmd is not None and not cmd.hidden:
            lines += _command(f"prefcurate {name}", cmd, 2)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    text = render_markdown()
    if target is None:
        sys.stdout.write(text)
    else:
        target.write_text(text)


if __name__ == "__main__":
    main()
