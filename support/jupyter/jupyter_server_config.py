"""The Jupyter server's settings: the same exports as nbconvert's (jupyter_nbconvert_config.py, beside this file),
and git told, after each save of a notebook, when nothing but its outputs changed."""

import subprocess
import threading
from pathlib import Path

load_subconfig(str(Path(__file__).resolve().parent / "jupyter_nbconvert_config.py"))  # noqa: F821


def refresh_git_index(path: str) -> bool:
    """Stage the notebook at `path` if what git would stage of it (the nbstripout filter takes its outputs off) is what
    is staged already; whether it did. Staging it then changes nothing but git's record of the file's size and time:
    without it `git status` lists every notebook run in JupyterLab as modified, since git takes a file whose size
    changed for modified without running the filter. A notebook with a real edit stays modified; nothing is
    committed."""
    folder, name = Path(path).parent, Path(path).name

    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=60)
        return proc.stdout.strip() if proc.returncode == 0 else None

    staged = (git("ls-files", "--stage", "--", name) or "").split()  # mode, blob, stage, name; none: not tracked
    if len(staged) < 2 or git("hash-object", "--", name) != staged[1]:  # hash-object runs the filter, as add does
        return False
    return git("add", "--", name) is not None


def after_save(model, os_path, contents_manager, **kwargs) -> None:
    if model.get("type") == "notebook":
        threading.Thread(target=refresh_git_index, args=(os_path,), daemon=True).start()  # the save does not wait


c = get_config()  # noqa: F821
c.FileContentsManager.post_save_hook = after_save
