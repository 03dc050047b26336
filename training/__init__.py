"""The fine-tuning trainer.  It runs ONLY as a subprocess in its own virtualenv (.venv-train):

    .venv-train/bin/python -m training.train JOB.json

The app (nexus_desktop) never imports this package; it reads the JSON lines the trainer prints.
See training/README.md for the protocol.
"""
