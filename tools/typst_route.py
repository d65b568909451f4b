"""Executed Jupyter notebook -> PDF without TeX.

nbconvert (Markdown, input cells hidden) -> pandoc from the pypandoc-binary wheel (--to typst)
-> the typst wheel (Typst compiler, embedded fonts only).
"""
import datetime
import subprocess
import sys
import tempfile
from pathlib import Path

import pypandoc
import typst

from support.fileio import atomic_write, write_file

# Written into the temporary folder and given to pandoc with --lua-filter.
LUA_FILTER = r"""
-- 1. An image alone in a paragraph (nbconvert writes "![png](images/out_8_0.png)") becomes a
--    centred block image, at most 90% of the text width (like nbconvert's LaTeX template), never
--    upscaled, and its alt text ("png") is not printed.
function Para(p)
  if #p.content == 1 and p.content[1].t == "Image" then
    local src = p.content[1].src:gsub("\\", "\\\\"):gsub('"', '\\"')
    return pandoc.RawBlock("typst", '#align(center, box(width: 90%, image("' .. src .. '")))')
  end
end

-- 2. A figure's caption (the paragraph after its image, starting with a bold "Figure N.") stays on the
--    image's page: both go into one block that does not break.
function Blocks(blocks)
  local out = pandoc.List()
  local i = 1
  while i <= #blocks do
    local b, nxt = blocks[i], blocks[i + 1]
    if b.t == "RawBlock" and b.format == "typst" and b.text:find("^#align%(center, box") and nxt
       and nxt.t == "Para" and nxt.content[1] and nxt.content[1].t == "Strong"
       and pandoc.utils.stringify(nxt.content[1]):find("^Figure %d+%.") then
      local caption = pandoc.write(pandoc.Pandoc({nxt}), "typst", pandoc.WriterOptions({wrap_text = "none"}))
      out:insert(pandoc.RawBlock("typst", "#block(breakable: false)[\n" .. b.text .. "\n\n" .. caption .. "]"))
      i = i + 2
    else
      out:insert(b)
      i = i + 1
    end
  end
  return out
end

-- 3. Math. texmath reads \| as the relation "parallel" (Typst then sets ||w||^2 with the 2 above
--    the bar): \| ... \| becomes \lVert ... \rVert, i.e. lr(‖ w ‖). texmath writes |w| as \| w \|,
--    which Typst spaces out: use lr(|w|). texmath drops \dfrac / \displaystyle: wrap such inline
--    math in Typst's display().
function Math(m)
  local tex = m.text:gsub("\\left\\|", "\\left\\Vert "):gsub("\\right\\|", "\\right\\Vert ")
  m.text = tex:gsub("\\|(.-)\\|", "\\lVert %1\\rVert ")
  local typ = pandoc.write(pandoc.Pandoc({pandoc.Plain({m})}), "typst",
                           pandoc.WriterOptions({wrap_text = "none"}))
  typ = typ:match("^%s*(.-)%s*$"):gsub("\\| (.-) \\|", "lr(|%1|)")
  if m.mathtype == "InlineMath" and (m.text:find("\\dfrac") or m.text:find("\\displaystyle")) then
    typ = typ:gsub("^%$(.*)%$$", "$display(%1)$")
  end
  return pandoc.RawInline("typst", typ)
end
"""


def export_notebook(executed_ipynb: Path, folder: Path, exporter) -> str:
    """The executed notebook through an nbconvert `exporter`: its body, with the images written to folder/images."""
    body, resources = exporter.from_filename(str(executed_ipynb),
                                             resources={"output_files_dir": "images", "unique_key": "out"})
    for name, data in resources.get("outputs", {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_file(folder / name, data)
    return body


def notebook_to_pdf_typst(executed_ipynb: Path, out_pdf: Path, title: str, epoch: int) -> None:
    """The executed notebook as a PDF through pandoc and Typst, titled `title`, dated `epoch` (seconds since 1970)."""
    executed_ipynb, out_pdf = Path(executed_ipynb).resolve(), Path(out_pdf).resolve()
    today = datetime.datetime.fromtimestamp(epoch, datetime.UTC).date()
    # The space in the prefix is deliberate: every run exercises paths with spaces.
    with tempfile.TemporaryDirectory(prefix="nb to typst ") as tmp:
        tmp = Path(tmp)
        # 1. Markdown with input cells hidden; outputs (PNGs) go to tmp/images/out_<cell>_<n>.png.
        from nbconvert import MarkdownExporter  # 1.2 s to import: only where a PDF is made

        body = export_notebook(executed_ipynb, tmp, MarkdownExporter(exclude_input=True))
        write_file(tmp / "report.md", body)
        write_file(tmp / "filter.lua", LUA_FILTER)
        # 2. pandoc -> Typst with its default template (US letter, 1.25in margins, 11pt, Typst's
        #    default font Libertinus Serif, which unlike New Computer Modern has ≤ ≥ ≈ ∑).
        subprocess.run(
            [pypandoc.get_pandoc_path(), "report.md",
             "--from=markdown-implicit_figures", "--to=typst", "--standalone",
             "--number-sections", "--columns=10000", "--lua-filter=filter.lua",
             "--metadata", f"title={title}",
             "--metadata", f"date={today:%B} {today.day}, {today.year}",
             "--variable=page-numbering=1",
             "--output=report.typ"],
            cwd=tmp, check=True)
        # 3. Typst -> PDF, written through a temporary name and a rename (fileio.atomic_write).
        pdf, warnings = typst.compile_with_warnings(str(tmp / "report.typ"), root=str(tmp), ignore_system_fonts=True,
                                                    timestamp=epoch)
        for warning in warnings:
            print(f"typst warning: {warning}", file=sys.stderr)
        atomic_write(out_pdf, pdf)

