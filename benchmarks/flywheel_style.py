"""A style the router's seed set lacks: terse chat slang with typos.

Two disjoint sets in that style: a stream of 60 corrections (10 per label) that a user feeds in
with ``nexus route --correct``, and 120 held-out messages (20 per label) with their own wordings
and slot values.  ``build()`` refuses to return sets that share a slot value or four words.
"""

from __future__ import annotations

import random

from nexus_desktop.training.leakage import find_overlaps
from training.router_data import fill_templates

STREAM_SLOTS = {
    "d": ["d20", "2d6", "d6", "3d8", "d10", "4d6"],
    "f": [
        "bday of mom is 12 may",
        "pin is 0420",
        "gym at 6",
        "owe jay 5 bucks",
        "raid wed 8pm",
        "car at lvl b2",
    ],
    "t": ["moms bday", "my pin", "gym time", "wat i owe jay", "raid time", "where car is"],
    "r": ["cpu", "ram", "gpu temp", "disk", "fps", "upload"],
    "m": [
        "trax my runs",
        "postz my scores 2 discord",
        "mutes discord wen i game",
        "logs my sleep",
        "checks 4 game deals",
        "reads my dms",
    ],
}
HELDOUT_SLOTS = {
    "d": ["d8", "2d10", "1d12", "5d6", "d4", "3d4"],
    "f": [
        "vet appt tue 3pm",
        "locker 2231",
        "ana's bday aug 9",
        "dinner w kev fri",
        "wifi pw moonpie7",
        "tix r in drawer",
    ],
    "t": ["vet appt", "locker #", "anas bday", "dinner w kev", "wifi pw", "the tix"],
    "r": ["vram", "ssd", "temps", "fan", "net", "battery"],
    "m": [
        "tracks my water intake",
        "auto screenshots my wins",
        "pings me b4 raids",
        "sorts my steam library",
        "counts my deaths in elden ring",
        "shows my ping in a widget",
    ],
}

STREAM_TEMPLATES = {
    "chat": [
        "lol ur funny",
        "wyd",
        "im so bored rn",
        "gm gm",
        "tbh i h8 mondays",
        "u like anime?",
        "ngl that movie slapped",
        "brb food",
        "omg i won finally",
        "sup",
    ],
    "roll_dice": ["yo roll {d} pls", "rol {d} 4 me", "{d} go go", "gimme {d} rn", "thro {d} k thx"],
    "remember_note": ["rmbr {f}", "note pls: {f}", "k save tht {f}", "dont 4get {f}", "memo {f} thx"],
    "recall_note": [
        "wat did i say bout {t}",
        "wuts my note on {t}",
        "{t}?? u saved it",
        "remind me {t} pls",
        "lookup {t}",
    ],
    "system_status": ["hows my {r} lol", "{r} rn?", "chk {r} pls", "is {r} ok??", "wuts {r} at"],
    "build_module": [
        "mk a plgn tht {m}",
        "cn u code smth tht {m}",
        "need a mod tht {m} pls",
        "build sumthin tht {m}",
        "wanna plugin that {m}",
    ],
}
HELDOUT_TEMPLATES = {
    "chat": [
        "hbu, u good?",
        "lmaooo no way",
        "ttyl gotta go",
        "ugh work was trash today",
        "fav food?",
        "idk wat to play tn",
        "that boss was ez lol",
        "gn sleep well",
        "u ever get tired?",
        "bruh my team threw",
        "wanna hear a joke",
        "yo wassup",
        "so hyped 4 the weekend",
        "rate my setup lol jk",
        "im hungry af",
        "whos ur fav hero",
        "kinda sad today ngl",
        "tell me smth cool",
        "haha ok ok",
        "u r the best fr",
    ],
    "roll_dice": [
        "ayy {d} plz",
        "quick {d} roll lol",
        "rng me {d}",
        "bro toss {d} fr",
        "{d} for dmg pls",
        "smash {d} real quick",
    ],
    "remember_note": [
        "plz rmembr {f}",
        "jot {f} ty",
        "keep dis: {f}",
        "rememba {f} ok",
        "stash this {f}",
        "sav {f}",
    ],
    "recall_note": [
        "wuz there a note abt {t}",
        "tell me {t} again plz",
        "what wuz {t}",
        "u got {t} saved?",
        "pull {t} up",
        "hw abt {t}, wut did i tell u",
    ],
    "system_status": [
        "{r} lookin ok?",
        "yo wats my {r}",
        "my {r} dying or wat",
        "{r} stats plz",
        "peek {r} quick",
        "how bad is {r} rn",
    ],
    "build_module": [
        "pls make an addon tht {m}",
        "yo write me a thing tht {m}",
        "cook up a plugin wich {m}",
        "i want an app bit that {m} lol",
        "gen a modul tht {m}",
        "can u mk a tool which {m}",
    ],
}


def build(seed: int = 11) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(stream of 60 corrections, 120 held-out messages), each as (text, label)."""
    rng = random.Random(seed)
    stream = [
        (t, label)
        for label, ts in STREAM_TEMPLATES.items()
        for t in fill_templates(ts, STREAM_SLOTS, 10, rng)
    ]
    heldout = [
        (t, label)
        for label, ts in HELDOUT_TEMPLATES.items()
        for t in fill_templates(ts, HELDOUT_SLOTS, 20, rng)
    ]
    stream_texts, held_texts = [t for t, _ in stream], [t for t, _ in heldout]
    values = [v for vs in STREAM_SLOTS.values() for v in vs]
    leaks = find_overlaps(stream_texts, held_texts, values=values)
    leaks += find_overlaps(held_texts, stream_texts, values=[v for vs in HELDOUT_SLOTS.values() for v in vs])
    if leaks or len(stream) != 60 or len(heldout) != 120:
        problems = "; ".join(o.describe() for o in leaks[:5])
        raise SystemExit(f"The style sets leak or are short ({len(stream)}, {len(heldout)}): {problems}")
    rng.shuffle(stream)
    return stream, heldout
