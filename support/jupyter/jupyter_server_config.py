"""The Jupyter server's export settings: the same as nbconvert's (jupyter_nbconvert_config.py, beside this file)."""

from pathlib import Path

load_subconfig(str(Path(__file__).resolve().parent / "jupyter_nbconvert_config.py"))  # noqa: F821
