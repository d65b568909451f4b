"""The LaTeX route's shortcuts give what nbconvert and xdvipdfmx would: figures as PDF images, Markdown in one run."""

import io
import json

import numpy as np
import pytest

from tools import latex_route, pdf


def png(mode: str, size=(37, 11), dpi=200, **options) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="png", dpi=(dpi, dpi), **options)
    return buffer.getvalue(), pixels


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_png_becomes_a_pdf_image_of_the_same_pixels_and_size(mode):
    from pypdf import PdfReader

    data, pixels = png(mode)
    reader = PdfReader(io.BytesIO(latex_route.png_as_pdf(data)))
    page = reader.pages[0]
    assert [round(float(v), 2) for v in page.mediabox[2:]] == [round(37 * 72 / 200, 2), round(11 * 72 / 200, 2)]
    decoded = np.asarray(page.images[0].image)
    np.testing.assert_array_equal(decoded.reshape(pixels.shape), pixels)


@pytest.mark.parametrize("mode, options", [("RGBA", {}), ("RGB", {"interlace": 1})])
def test_other_pngs_stay_pngs(mode, options):
    data, _ = png(mode, **options)
    if mode == "RGB":  # Pillow writes no interlaced PNG: make the header say so
        header = bytearray(data)
        header[28] = 1  # IHDR's interlace byte (8 signature + 8 chunk head + 12 into the data)
        data = bytes(header)
    assert latex_route.png_as_pdf(data) is None
    assert latex_route.png_as_pdf(b"not a png") is None


def book(*markdown: str) -> dict:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    cells.append({"cell_type": "code", "metadata": {}, "source": "", "execution_count": 1, "outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": "Result: **0.97** at $\\lambda$"}}]})
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


TEXTS = ("## Task 2a: a heading\n\nA list:\n\n- one $x^2$\n- two", "Math $$\\frac{1}{N} \\sum_n x_n$$ and `code`.",
         "| a | b |\n|---|---|\n| 1 | 2 |")


def test_markdown_is_what_nbconverts_template_makes_of_each_piece(tmp_path, monkeypatch):
    from nbconvert.filters.pandoc import convert_pandoc

    monkeypatch.setenv("PATH", pdf.pandoc_env()["PATH"])  # nbconvert runs `pandoc`: the wheel's, as the build

    out = latex_route.markdown_as_latex(book(*TEXTS), tmp_path / "cache.json")
    for cell, text in zip(out["cells"], TEXTS):
        assert cell["cell_type"] == "raw" and cell["metadata"]["raw_mimetype"] == "text/latex"
        expected = convert_pandoc(convert_pandoc(text, latex_route.MARKDOWN_READER, "json", extra_args=[]), "json",
                                  "latex")
        assert cell["source"].strip() == expected.strip()
    output = out["cells"][-1]["outputs"][0]["data"]
    assert "text/markdown" not in output
    reader = latex_route.MARKDOWN_READER
    assert output["text/latex"] == convert_pandoc("Result: **0.97** at $\\lambda$", reader, "latex")


def test_a_prose_edit_converts_only_the_edited_piece(tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    first = latex_route.markdown_as_latex(book(*TEXTS), cache)
    converted = []
    real = latex_route.convert_markdown
    monkeypatch.setattr(latex_route, "convert_markdown", lambda pandoc, texts: converted.extend(texts) or real(pandoc,
                                                                                                        texts))
    again = latex_route.markdown_as_latex(book(*TEXTS), cache)
    assert converted == [] and again == first
    edited = latex_route.markdown_as_latex(book(TEXTS[0], "A new sentence.", TEXTS[2]), cache)
    assert converted == ["A new sentence."]
    assert "A new sentence." in edited["cells"][1]["source"]
    assert len(json.loads(cache.read_text())) == 4  # the pieces of the last build only
