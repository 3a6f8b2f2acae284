"""Nothing read from the system ever reaches a shell: subprocesses get argument lists.

A static check over the product's code (nettop_ui/, backends/): no `shell=True`, no
os.system/os.popen, no create_subprocess_shell, and the first argument of every
subprocess call is a list or tuple expression (or a name bound to one), never a string.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "nettop_ui").rglob("*.py"), *(ROOT / "backends").rglob("*.py")])
SHELL_CALLS = {"system", "popen", "create_subprocess_shell", "getoutput", "getstatusoutput"}
SPAWN_CALLS = {"Popen", "run", "call", "check_call", "check_output", "create_subprocess_exec"}


def shell_uses(tree: ast.AST) -> list[str]:
    """Every call in `tree` that could hand a string to a shell, as 'line: what'."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name is None and isinstance(node.func, ast.Name):
            name = node.func.id
        for kw in node.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                found.append(f"{node.lineno}: shell= on {name}")
        if name in SHELL_CALLS:
            found.append(f"{node.lineno}: {name}()")
        if name in SPAWN_CALLS and node.args:
            first = node.args[0]
            if isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found.append(f"{node.lineno}: {name}() given a string command")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell_anywhere(path: Path) -> None:
    assert shell_uses(ast.parse(path.read_text())) == []


def test_the_check_catches_each_form() -> None:
    bad = """
import os, subprocess, asyncio
subprocess.run("ls " + name, shell=True)
os.system("kill " + pid)
subprocess.Popen(f"nethogs {args}")
asyncio.create_subprocess_shell(cmd)
"""
    assert len(shell_uses(ast.parse(bad))) == 5
    assert shell_uses(ast.parse("subprocess.run(['nethogs', '-t'], shell=False)")) == []
    assert len(SOURCES) > 20
