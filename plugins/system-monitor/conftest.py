"""Lets ``pytest tests/`` find the module's package when run from this folder (pytest's default
import mode puts the folder of every conftest.py on ``sys.path``)."""
