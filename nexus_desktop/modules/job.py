"""One install or validation as its own process, so the gallery can show progress and cancel it.

    python -m nexus_desktop.modules.job install SOURCE --db PATH [--user-dir ...]
    python -m nexus_desktop.modules.job validate NAME --db PATH [...]

It prints JSON lines: ``{"progress": "..."}`` while it works, then one ``{"ok": true,
"result": {...}}`` or ``{"ok": false, "error": "..."}``.  The outcome is written to the
module database itself, so killing the process (cancel) leaves nothing half-recorded beyond
what the host's own install already cleans up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nexus_desktop.db.engine import open_engine
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime.validate import validate_module


def _say(**message: Any) -> None:
    print(json.dumps(message, default=str), flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus_desktop.modules.job")
    parser.add_argument("kind", choices=("install", "validate"))
    parser.add_argument("target", help="a folder/.zip/.whl to install, or a module name to validate")
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--bundled-dir", type=Path)
    parser.add_argument("--user-dir", type=Path)
    parser.add_argument("--developer-dir", type=Path)
    parser.add_argument("--developer-mode", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0)
    return parser


def run(argv: list[str]) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    host = ModuleHost(
        open_engine(args.db),
        bundled_dir=args.bundled_dir,
        user_dir=args.user_dir,
        developer_dir=args.developer_dir,
        developer_mode=args.developer_mode,
        builtins=False,
    )
    name = args.target
    if args.kind == "install":
        _say(progress=f"Installing from {Path(args.target).name}")
        name = host.install(Path(args.target)).name
    record = host.lifecycle.get(name)
    _say(progress=f"Validating {name} {record.version}: checks and its own tests")
    report = validate_module(Path(record.path), bundled=record.source == "bundled", timeout=args.timeout)
    host.lifecycle.record_validation(name, report)
    return {"name": name, "version": record.version, "validation": report}


def main(argv: list[str] | None = None) -> int:
    try:
        result = run(sys.argv[1:] if argv is None else argv)
    except Exception as error:  # every user-facing error is one clear sentence
        _say(ok=False, error=str(error) or type(error).__name__)
        return 1
    _say(ok=True, result=result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
