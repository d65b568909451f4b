"""The LaTeX route's own conversions, which nbconvert and xdvipdfmx would make more slowly (tools/pdf.py, latex_pdf).

- the report's Markdown (cells, and the Markdown its code displays) into LaTeX: one pandoc run for the pieces
  not converted before, where nbconvert's template runs pandoc two times per cell;
- each RGB figure PNG into a one-page PDF image holding the PNG's compressed rows as they are, which xdvipdfmx
  copies where it would decode and recompress a PNG.

tests/test_pdf_route.py shows each gives what the slower way gives.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path

import pypandoc

from support.fileio import atomic_write, write_file
from support.results import sha256_bytes
from tools.common import BuildError

CELL_BREAK = "%% tdt4265: the next Markdown piece"
MARKDOWN_READER = "markdown+tex_math_double_backslash"  # nbconvert's LaTeX template reads Markdown with this


def markdown_as_latex(book: dict, cache_file: Path) -> dict:
    """The notebook with its Markdown (cells and display outputs) turned into LaTeX by one pandoc run.

    nbconvert's LaTeX template would run pandoc twice per Markdown cell and once per Markdown output (about 80
    processes, over a second). Here the pieces not in `cache_file` (their LaTeX from earlier builds: a prose edit
    converts one) go through one pandoc, between raw-LaTeX markers, with the template's reader, and come back as
    raw LaTeX cells and text/latex outputs, which the template prints as they are.
    """
    book = json.loads(json.dumps(book))
    pieces = []  # (the dict holding the piece, its key)
    for cell in book["cells"]:
        if cell["cell_type"] == "markdown":
            cell.update(cell_type="raw", metadata={**cell["metadata"], "raw_mimetype": "text/latex"})
            cell.pop("attachments", None)
            pieces.append((cell, "source"))
        for output in cell.get("outputs", ()):
            if "text/markdown" in output.get("data", {}):
                output["data"]["text/latex"] = output["data"].pop("text/markdown")
                pieces.append((output["data"], "text/latex"))
    pandoc = pypandoc.get_pandoc_path()
    reader = f"{MARKDOWN_READER} {pandoc} {pypandoc.get_pandoc_version()}"
    texts = ["".join(holder[key]) for holder, key in pieces]
    digests = [sha256_bytes(f"{reader}\n{text}".encode()) for text in texts]
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    missing = {digest: text for digest, text in zip(digests, texts) if digest not in cache}
    cache.update(zip(missing, convert_markdown(pandoc, list(missing.values()))) if missing else ())
    for (holder, key), digest in zip(pieces, digests):  # a cell as a paragraph of its own, as the template sets it
        holder[key] = cache[digest].strip("\n") if key == "text/latex" else f"\n    {cache[digest].strip()}\n"
    atomic_write(cache_file, json.dumps({digest: cache[digest] for digest in digests}).encode())
    return book


def convert_markdown(pandoc: str, texts: list[str]) -> list[str]:
    """Each Markdown text as LaTeX, through one pandoc run (nbconvert's citation filter first, where it applies)."""
    if any("data-cite" in text for text in texts):
        from nbconvert.filters import citation2latex  # nbconvert takes 1.2 s to import: only when needed

        texts = [citation2latex(text) for text in texts]
    joined = "".join(f"{text}\n\n```{{=latex}}\n{CELL_BREAK}\n```\n\n" for text in texts)
    proc = subprocess.run([pandoc, f"--from={MARKDOWN_READER}", "--to=latex"], input=joined, capture_output=True,
                          text=True, encoding="utf-8")
    parts = proc.stdout.split(CELL_BREAK)
    if proc.returncode or len(parts) != len(texts) + 1:
        raise BuildError(f"pandoc could not convert the report's Markdown ({len(parts) - 1} of {len(texts)} pieces):"
                         f"\n{proc.stderr[-2000:]}")
    return parts[:-1]


def png_as_pdf(png: bytes) -> bytes | None:
    """A one-page PDF of an 8-bit RGB or grey, non-interlaced PNG, its compressed rows copied as they are (PDF's
    Flate filter with PNG predictors reads them), sized by its dpi; None for any other PNG.

    xdvipdfmx decodes and recompresses every PNG it includes (half a second for the report's figures, at each
    build); a PDF image it copies.
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    chunks, pos = {}, 8
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunks.setdefault(kind, []).append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    if b"IHDR" not in chunks or b"IDAT" not in chunks:
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    if depth != 8 or interlace or color not in (0, 2):
        return None
    dpi = 72.0
    if b"pHYs" in chunks:
        per_x, _, unit = struct.unpack(">IIB", chunks[b"pHYs"][0])
        dpi = per_x * 0.0254 if unit == 1 and per_x else dpi
    colors, space = (1, "/DeviceGray") if color == 0 else (3, "/DeviceRGB")
    points = f"{width * 72 / dpi:.4f} {height * 72 / dpi:.4f}"  # the page: the image's size at its dpi
    data = b"".join(chunks[b"IDAT"])
    content = f"q {points.replace(' ', ' 0 0 ')} 0 0 cm /Im0 Do Q".encode()  # scale the unit square to the page
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {points}] /Resources << /XObject << /Im0 4 0 R >> >> "
        "/Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace {space} /BitsPerComponent 8 "
        f"/Filter /FlateDecode /DecodeParms << /Predictor 15 /Colors {colors} /BitsPerComponent 8 /Columns {width} >> "
        f"/Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pngs_as_pdfs(body: str, work: Path) -> str:
    """The LaTeX `body` including a PDF copy (png_as_pdf) of each PNG in work/images/ that has one."""
    def swap(match: re.Match) -> str:
        pdf = png_as_pdf((work / match[1]).read_bytes())
        if pdf is None:
            return match[0]
        write_file((work / match[1]).with_suffix(".pdf"), pdf)
        return "{" + match[1][:-4] + ".pdf}"

    return re.sub(r"\{(images/[^{}]+\.png)\}", swap, body)
