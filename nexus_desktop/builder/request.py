"""Checking a module request before any code is generated.

A generated module is contained like any other (the kernel sandbox during validation, approval
before it runs), but a request whose whole point is to get around that (read other modules'
secrets or the keyring, switch off approval or the sandbox, reach hosts it will not declare,
touch files outside its folder) is refused up front with the reason: building it could only end
in a module nobody should approve, and the model should never be asked to try.
"""

from __future__ import annotations

import re

MIN_DESCRIPTION_CHARS = 8
MAX_DESCRIPTION_CHARS = 2000

_VERB = r"(?:read|get|steal|dump|copy|collect|export|grab|access|list|print|send|leak|see)"

# (pattern, why it is refused).  Patterns are searched case-insensitively in the request.
_FORBIDDEN: tuple[tuple[str, str], ...] = (
    (
        rf"{_VERB}\w*\b[^.]{{0,60}}\b(?:other|another|all|every|any)\s+modules?(?:'s|')?[^.]{{0,30}}"
        r"\b(?:secrets?|credentials?|keys?|tokens?|passwords?|data|files?|folders?)",
        "it asks for other modules' secrets or files; a module only ever gets its own",
    ),
    (
        r"\b(?:keyring|keychain|credential manager|secret service|kwallet|gnome-keyring)\b",
        "it asks for the keyring itself; a module gets only the secrets it declares, handed to it",
    ),
    (
        r"\b(?:disabl\w*|turn(?:s|ing)? off|switch(?:es|ing)? off|skip\w*|bypass\w*|circumvent\w*|"
        r"get around|remov\w*|without|avoid\w*|escap\w*|break\w* out of|auto-?approv\w*)"
        r"[^.]{0,40}\b(?:approval|approve|"
        r"sandbox|containment|landlock|seccomp|permission checks?|validation|the proxy|gatekeeper)",
        "it asks to switch off approval or the sandbox; every module is validated, contained and approved",
    ),
    (
        r"\b(?:undeclared|unlisted|hidden|arbitrary)\s+(?:hosts?|servers?|domains?|urls?|addresses|"
        r"endpoints?)\b|\bany (?:host|server|url)s? (?:it|i|the user) (?:wants?|likes?|chooses?)\b|"
        r"\bwithout declaring\b|\braw sockets?\b|\bexfiltrat",
        "it asks to reach hosts it would not declare; a module reaches only the hosts in its manifest",
    ),
    (
        r"~/\.ssh|\.ssh/|\bid_rsa\b|\bid_ed25519\b|/etc/(?:passwd|shadow|sudoers)|"
        r"\bbrowser(?:'s)? (?:passwords|cookies|history)\b|\bnexus\.db\b|\bthe app'?s database\b|"
        r"\b(?:any|all|every) files? on (?:the|my|this) (?:pc|computer|disk|machine)\b",
        "it asks to touch files outside its own folder that no module may have",
    ),
    (
        r"\b(?:keylogger|log (?:every|all) keystrokes|privilege escalation|run as root|sudo|"
        r"disable (?:the )?antivirus|auto-?approv\w*)\b",
        "it asks for something no module may do on this PC",
    ),
)
_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), why) for pattern, why in _FORBIDDEN)


def refusal(description: str) -> str | None:
    """Why ``description`` is refused before any code is generated, or None when it may be built.

    The answer is one sentence for the build card, saying what to do instead."""
    text = " ".join(description.split())
    if len(text) < MIN_DESCRIPTION_CHARS:
        return (
            "The request is too short to build from; describe what the module should do, "
            "e.g. 'a tool that rolls dice'."
        )
    if len(text) > MAX_DESCRIPTION_CHARS:
        return (
            f"The request is {len(text):,} characters, over the {MAX_DESCRIPTION_CHARS:,} a build takes; "
            "describe the module in a few sentences."
        )
    for pattern, why in _COMPILED:
        if pattern.search(text):
            return f"Refused: {why}. Ask for the module without that part."
    return None


_STOPWORDS = frozenset(
    {
        "a", "an", "the", "me", "my", "i", "we", "our", "us", "you", "your", "for", "to", "of", "and",
        "or", "with", "that", "which", "who", "build", "make", "create", "write", "please", "can",
        "could", "would", "module", "tool", "plugin", "app", "something", "thing", "some", "new",
        "small", "simple", "let", "lets", "if", "like", "such", "as", "whether", "tells", "tell",
        "shows", "show", "gives", "give", "is", "are", "it", "its", "this",
    }
)  # fmt: skip


def module_name_for(description: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A module name (lowercase words joined by dashes) from the request's first telling words,
    with -2, -3... when it is already taken."""
    found = re.findall(r"[a-z][a-z0-9]+", description.lower())
    words = [w for w in found if w not in _STOPWORDS]
    base = "-".join(words[:3])[:40].strip("-") or "generated-module"
    name, number = base, 2
    while name in taken:
        name = f"{base}-{number}"
        number += 1
    return name
