"""Writes the intent-router seed set and its held-out benchmark (deterministic; the files are committed).

    python -m training.router_data

The held-out phrasings use verbs and wordings that never occur in the seed set: a router must
generalise to how people actually ask, and a held-out set that repeats the training wording
would only measure memorisation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LABELS = ("chat", "roll_dice", "remember_note", "recall_note", "system_status", "build_module")
SYSTEM_PROMPT = (
    "You are the intent router of a desktop assistant. Classify the user's message into exactly one "
    "label: chat, roll_dice, remember_note, recall_note, system_status, build_module. "
    "Answer with the label only."
)
ROOT = Path(__file__).resolve().parent.parent
SEED_PATH = ROOT / "resources" / "training" / "router_seed.jsonl"
HELDOUT_PATH = ROOT / "resources" / "benchmarks" / "router_heldout.jsonl"

_DICE = ["a d20", "2d6", "a d6", "3d8", "a d10", "1d4", "two dice", "a die", "4d6", "d100", "a d12", "3d6"]
_FACTS = [
    "my sister's birthday is on March 3rd",
    "the wifi password is bluebird42",
    "I parked on level 3",
    "the dentist appointment is Friday at 10",
    "Sam owes me 20 dollars",
    "my favourite pizza is margherita",
    "the boss fight needs fire resistance",
    "I left my keys in the blue jacket",
    "the meeting moved to Tuesday",
    "my character is a level 7 ranger",
    "the server restarts every Sunday",
    "I take my coffee with oat milk",
]
_TOPICS = [
    "my sister's birthday",
    "the wifi password",
    "where I parked",
    "the dentist appointment",
    "what Sam owes me",
    "my favourite pizza",
    "the boss fight",
    "my keys",
    "the meeting",
    "my character",
    "the server schedule",
    "my coffee order",
]
_RESOURCES = [
    "CPU usage",
    "RAM",
    "free memory",
    "GPU temperature",
    "disk space",
    "GPU load",
    "CPU temperature",
    "battery level",
    "network speed",
    "fan speed",
    "uptime",
    "free disk space",
]
_MODULES = [
    "tracks my game sessions",
    "posts my high scores to a spreadsheet",
    "reads RSS feeds aloud",
    "controls my smart lights",
    "shows the weather",
    "sends me a reminder every hour",
    "converts currencies",
    "plays lo-fi music",
    "summarises my emails",
    "counts my steps",
    "checks Steam sales",
    "manages a todo list",
]
_CHAT = [
    "How was your day?",
    "Tell me a joke.",
    "What do you think about cats?",
    "I'm bored, talk to me.",
    "What's your favourite movie?",
    "Do you like rainy days?",
    "Can you tell me a story about a dragon?",
    "Good morning!",
    "What's the meaning of life?",
    "I just beat the final boss!",
    "Who would win, a pirate or a ninja?",
    "Do you ever get lonely?",
    "Recommend me a book.",
    "I'm feeling a bit down today.",
    "What's your name?",
    "Haha that was funny.",
    "Explain black holes like I'm five.",
    "What should I cook tonight?",
    "Thanks, you're the best.",
    "Are you a robot?",
    "I love this song.",
    "What games do you like?",
    "Tell me something interesting.",
    "Hi there!",
    "Can we just chat for a bit?",
    "What would you do with a million dollars?",
    "Write me a short poem about the sea.",
    "Why is the sky blue?",
    "I had a weird dream last night.",
    "Say something nice.",
]

_TRAIN_TEMPLATES: dict[str, list[str]] = {
    "roll_dice": [
        "Roll {dice}.",
        "roll {dice} for me",
        "Can you roll {dice}?",
        "Throw {dice}.",
        "throw {dice} please",
        "Toss {dice} for me.",
        "Roll {dice} for initiative.",
        "I need a roll of {dice}.",
        "Give me a dice roll: {dice}.",
        "Let's roll {dice} for damage.",
        "Roll the dice, {dice}.",
        "Do a {dice} roll.",
    ],
    "remember_note": [
        "Remember that {fact}.",
        "Please remember: {fact}.",
        "Note that {fact}.",
        "Make a note: {fact}.",
        "Save a note that {fact}.",
        "Write down that {fact}.",
        "Store this: {fact}.",
        "Jot down that {fact}.",
        "Keep in mind that {fact}.",
        "Don't forget that {fact}.",
        "Add a note: {fact}.",
        "Save this for later: {fact}.",
    ],
    "recall_note": [
        "What did I tell you about {topic}?",
        "Remind me about {topic}.",
        "What's my note about {topic}?",
        "Look up my note on {topic}.",
        "Do you remember {topic}?",
        "Read back my note about {topic}.",
        "Show me my notes about {topic}.",
        "What do you know about {topic} from my notes?",
        "Find my note about {topic}.",
        "What did I save about {topic}?",
        "Search my notes for {topic}.",
        "Retrieve my note on {topic}.",
    ],
    "system_status": [
        "What's my {resource}?",
        "Check the {resource}.",
        "How is the {resource} right now?",
        "Show me the {resource}.",
        "Tell me the current {resource}.",
        "System status: {resource}?",
        "How much {resource} do I have?",
        "Is my {resource} okay?",
        "Give me a status report on {resource}.",
        "Monitor the {resource}.",
        "Report the {resource}.",
        "What is the {resource} at?",
    ],
    "build_module": [
        "Build a module that {module}.",
        "Create a plugin that {module}.",
        "Make an extension that {module}.",
        "Write a module that {module}.",
        "Can you build me a plugin that {module}?",
        "Generate an add-on that {module}.",
        "I want a new module that {module}.",
        "Make me a module which {module}.",
        "Create a new skill that {module}.",
        "Build an extension which {module}.",
        "Program a plugin that {module}.",
        "Add a module that {module}.",
    ],
}

# Wordings and verbs that never appear in the seed set.
_HELDOUT_TEMPLATES: dict[str, list[str]] = {
    "chat": [
        "What's up, buddy?",
        "Any fun plans for the weekend?",
        "I think penguins are underrated.",
        "Could you cheer me up a little?",
        "Which season do you prefer, summer or winter?",
        "My cat knocked my mug off the desk again.",
        "Describe your ideal vacation.",
        "Let's debate: tabs or spaces?",
        "I'm so tired after work.",
        "Invent a riddle for me.",
        "Have you heard of the Fermi paradox?",
        "Yo! Long time no see.",
        "Compose a haiku about autumn.",
        "Is cereal a soup?",
        "My team lost the match, ugh.",
        "If you were an animal, which one would you be?",
        "Describe the taste of chocolate.",
        "Pep talk please, I have an exam tomorrow.",
        "What's a good name for a goldfish?",
        "Honestly, you're pretty fun to hang out with.",
        "Share a fun fact about octopuses.",
        "Do you dream?",
        "Give me advice on learning guitar.",
        "The sunset tonight was gorgeous.",
        "Guess what, I got the job!",
        "Why do people like horror films?",
        "Sing me a lullaby.",
        "How do you feel about Mondays?",
        "Tell me about ancient Rome.",
        "Good night, see you tomorrow.",
    ],
    "roll_dice": [
        "Cast {dice} and tell me the result.",
        "Chuck {dice}.",
        "Flick {dice} across the table.",
        "What comes up on {dice}?",
        "Randomize {dice} for my attack.",
        "Shake and drop {dice}.",
        "Give me a random result from {dice}.",
        "Let fate decide with {dice}.",
        "I'm attacking the goblin, {dice} please.",
        "Saving throw time, {dice}.",
    ],
    "remember_note": [
        "Memorize this: {fact}.",
        "Log that {fact}.",
        "Record that {fact}.",
        "File away that {fact}.",
        "Put on record that {fact}.",
        "Pin this: {fact}.",
        "Hold on to this info: {fact}.",
        "For future reference, {fact}.",
        "Commit to memory that {fact}.",
        "Memo to self: {fact}.",
    ],
    "recall_note": [
        "Fetch the memo on {topic}.",
        "Pull up {topic}.",
        "Dig out what I mentioned about {topic}.",
        "Any info stored on {topic}?",
        "Recall {topic} for me.",
        "What was that thing about {topic}?",
        "Bring back what I logged on {topic}.",
        "Quick question, {topic}, what did I say?",
        "List everything on record about {topic}.",
        "Tell me again about {topic}.",
    ],
    "system_status": [
        "How hot is the {resource} running?",
        "Is the {resource} under pressure?",
        "Diagnostics on {resource}, please.",
        "Gauge the {resource}.",
        "Peek at the {resource}.",
        "Any trouble with {resource} on this PC?",
        "Measure the {resource}.",
        "Inspect the {resource} of this machine.",
        "How's the hardware doing, {resource} especially?",
        "Readout of the {resource}.",
    ],
    "build_module": [
        "Scaffold a component that {module}.",
        "Code up something that {module}.",
        "Develop an integration that {module}.",
        "Put together a tool that {module}.",
        "Craft a widget that {module}.",
        "Implement a feature that {module}.",
        "Design an app piece that {module}.",
        "Assemble a package that {module}.",
        "Engineer a utility which {module}.",
        "Whip up an automation that {module}.",
    ],
}

_TRAIN_CHAT_EXTRA = [
    "Lol okay.",
    "Do you prefer tea or coffee?",
    "I watched a great documentary yesterday.",
    "Tell me about yourself.",
    "What's the best pizza topping?",
    "Can you help me name my dog?",
    "I'm nervous about my trip.",
    "How are you?",
    "What do you think of space travel?",
    "Tell me a fun fact.",
]


def _row(text: str, label: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": text},
            {"role": "assistant", "content": label},
        ]
    }


def _fill(templates: list[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct texts, cycling through the templates so each wording is used evenly."""
    fillers = {"dice": _DICE, "fact": _FACTS, "topic": _TOPICS, "resource": _RESOURCES, "module": _MODULES}
    texts: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(texts) < count and attempts < count * 50:
        template = templates[attempts % len(templates)]
        attempts += 1
        values = {key: rng.choice(options) for key, options in fillers.items()}
        text = template.format(**values)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def build(train_per_label: int = 80, heldout_per_label: int = 30, seed: int = 7) -> tuple[list, list]:
    rng = random.Random(seed)
    train: list[dict[str, object]] = []
    heldout: list[dict[str, object]] = []
    chat_train = _CHAT + _TRAIN_CHAT_EXTRA
    # Chat has no slots: pad with lightly varied casing/punctuation of its own lines.
    chat_variants = chat_train + [t.lower().rstrip(".!?") for t in chat_train]
    train += [_row(text, "chat") for text in chat_variants[:train_per_label]]
    for label, templates in _TRAIN_TEMPLATES.items():
        train += [_row(text, label) for text in _fill(templates, train_per_label, rng)]
    heldout += [_row(text, "chat") for text in _HELDOUT_TEMPLATES["chat"][:heldout_per_label]]
    for label in LABELS[1:]:
        texts = _fill(_HELDOUT_TEMPLATES[label], heldout_per_label, rng)
        heldout += [_row(text, label) for text in texts]
    rng.shuffle(train)
    return train, heldout


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    train, heldout = build()
    write_jsonl(SEED_PATH, train)
    write_jsonl(HELDOUT_PATH, heldout)
    print(f"{len(train)} seed rows -> {SEED_PATH}\n{len(heldout)} held-out rows -> {HELDOUT_PATH}")


if __name__ == "__main__":
    main()
