"""The build: `python make.py <target>` parses its arguments in tools/cli.py, makes .venv (tools/venv.py) and runs
tools/targets.py inside it; the steps live in tasks.py, report.py and pdf.py, what they know in project.py."""
