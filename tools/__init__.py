"""The build: `python make.py <target>` runs these steps (tools/pipeline.py) inside .venv."""
