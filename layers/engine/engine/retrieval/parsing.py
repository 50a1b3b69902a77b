"""Text out of an uploaded file: plain text, Markdown, JSON, HTML and PDF (and other UTF-8 text).

PDF with pypdf: pure Python (nothing to compile for the arm64 Lambda layer), maintained, and its
``extract_text`` handles the common text PDFs; scanned (image-only) PDFs yield no text and fail as
``invalid_file``. HTML with the standard library's parser (scripts and styles dropped). JSON is re-dumped
indented, so chunks split between values rather than inside a one-line document.
"""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser

__all__ = ["UnsupportedFile", "extract_text"]


class UnsupportedFile(Exception):
    """The file's type is not one ingestion reads (``code`` ``unsupported_file``) or it has no text
    (``invalid_file``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template"})
    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(text: str) -> str:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnsupportedFile("invalid_file", f"The PDF could not be read: {exc}") from exc


def extract_text(filename: str, data: bytes) -> str:
    """The file's text; raises :class:`UnsupportedFile`."""
    name = filename.lower()
    if name.endswith(".pdf") or data.startswith(b"%PDF-"):
        text = _pdf(data)
    else:
        try:
            decoded = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UnsupportedFile(
                "unsupported_file", f"{filename}: only text (txt, md, json, html, csv, code) and PDF files are read."
            ) from None
        if "\x00" in decoded:
            raise UnsupportedFile("unsupported_file", f"{filename}: a binary file, not text.")
        if name.endswith((".html", ".htm")) or decoded.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            text = _html(decoded)
        elif name.endswith(".json"):
            try:
                text = json.dumps(json.loads(decoded), indent=2, ensure_ascii=False)
            except ValueError as exc:
                raise UnsupportedFile("invalid_file", f"{filename}: not valid JSON ({exc}).") from exc
        else:
            text = decoded
    if not text.strip():
        raise UnsupportedFile("invalid_file", f"{filename}: no text could be extracted.")
    return text
