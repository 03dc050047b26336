"""The self-improvement loop: collect signals from chat, export datasets, train adapters in a
separate process, benchmark them, gate them and keep a registry of the active adapter per model.

Qt-free, and it never imports the training libraries: the trainer is a subprocess (``training.train``).
"""
