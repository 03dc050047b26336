"""What the approval dialog and `nexus modules approve` say, in words: one copy for both.

Qt-free, so the command line shows the same sentences, permissions and validation report as the
dialog (ui/approval_dialog.py adds colours and layout).
"""

from __future__ import annotations

from typing import Any

NOTHING_ASKED = "Nothing beyond its own folder: no network, no other files, no programs, no secrets."
ENFORCED = (
    "The operating system holds it to the list above: besides its own folder and data folder it "
    "cannot read or change your files, the app's database, other modules or your keyring, reach "
    "any other host, or touch your other programs, and every program it starts ends with it. "
    "Its checks ran before approval with no network, secrets, programs or writes."
)
TRUST_NOTE = (
    "Approving lets this module's code run on your computer with the access above. The limits "
    "hold, but they cannot make code harmless within them: approve only modules you trust."
)
TRUST_NOTE_WEAKER = (
    "Approving lets this module's code run on your computer with the access above. What this PC "
    "cannot enforce is held only by your trust in the module: approve only modules you trust."
)


def report_summary(report: dict[str, Any] | None) -> str:
    """One line about the last validation or run (a module card's footer, a report's first line)."""
    if not report:
        return "Not validated yet"
    if report.get("kind") == "validation":
        checks = report.get("checks") or []
        passed = sum(1 for check in checks if check.get("ok"))
        if report.get("ok"):
            seconds = float(report.get("seconds", 0))
            return f"Validated: {passed} of {len(checks)} checks passed in {seconds:.1f} s"
        return f"Validation failed: {str(report.get('error') or 'a check failed').rstrip('.')}"
    if report.get("error"):
        return f"Last run failed: {str(report['error']).rstrip('.')}"
    return "Last run: no errors"


def report_lines(report: dict[str, Any] | None) -> list[str]:
    """A report in words, one line each (checks with a mark, then their problems)."""
    if not report:
        return ["No report yet."]
    lines = [report_summary(report)]
    for check in report.get("checks") or []:
        mark = "✓" if check.get("ok") else "✗"
        lines.append(f"{mark}  {check.get('name', '?')}: {check.get('message', '')}".rstrip())
        lines += [f"      {problem}" for problem in (check.get("problems") or [])[1:6]]
    for key in ("op", "error"):
        if key in report and report.get("kind") != "validation":
            lines.append(f"{key}: {report[key]}")
    lines += [f"stderr: {line}" for line in report.get("stderr") or []]
    return lines
