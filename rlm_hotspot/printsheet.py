"""Printable A4 sheets of prepaid scratch cards (PDF, reportlab only).

Ten business-card-sized cards (85 x 55 mm) per A4 page on a 2 x 5 grid with
crop marks, so an operator can print, stick scratch-off labels over the PIN
panel and cut with a guillotine.  The QR code only carries the portal URL plus
the card number: the PIN must stay hidden until the label is scratched off.

Fonts: only the PDF built-in fonts (Helvetica, Courier) are used, so nothing
is embedded for the usual latin text.  Built-in fonts encode WinAnsi (cp1252,
a superset of printable latin-1 that also has the euro sign); free text that
does not fit (e.g. a Cyrillic title or hotspot name) is drawn with DejaVuSans
from ``DEJAVU_DIR`` (Debian package ``fonts-dejavu-core``) when that file
exists, otherwise the unencodable characters are replaced by ``?`` -- no
transliteration, so nothing is ever silently "translated".  Card numbers and
PINs must be plain ASCII and are rejected otherwise: a mangled PIN would be a
card nobody can use.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.lib.colors import Color, black, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

__all__ = ["DEJAVU_DIR", "INSTRUCTION", "PrintableCard", "qr_payload", "render_scratch_sheet"]

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
INSTRUCTION = "Connect to Wi-Fi, open any page, enter card number and PIN"

COLS, ROWS = 2, 5
CARDS_PER_PAGE = COLS * ROWS
CARD_W, CARD_H = 85 * mm, 55 * mm
PAD = 4 * mm
QR_SIZE = 24 * mm  # includes the 4-module quiet zone
QR_MASK = 0  # fixed mask pattern, see _QrEncoder
PAGE_W, PAGE_H = A4
GRID_X, GRID_Y = (PAGE_W - COLS * CARD_W) / 2, (PAGE_H - ROWS * CARD_H) / 2
LEFT_W = CARD_W - 2 * PAD - QR_SIZE + 1 * mm  # text column left of the QR code
PANEL_Y, PANEL_H = 34.0, 44.0  # PIN panel (~50 x 15.5 mm, fits common scratch labels)
TOP = CARD_H - PAD
FACE_W = 34 * mm  # room reserved top-right for the face value
MAX_NUMBER_DIGITS, MAX_PIN_CHARS = 20, 16  # longest that fit legibly; these are never truncated

GREY = Color(0.38, 0.38, 0.38)
LIGHT = Color(0.72, 0.72, 0.72)
_BUILTIN = {False: "Helvetica", True: "Helvetica-Bold"}


@dataclass(frozen=True)
class PrintableCard:
    """One card as printed; all text already formatted by the caller."""

    number: str  # digits only
    pin: str
    face_value: str  # e.g. "5.00 EUR"
    deadline: str | None  # e.g. "use before 2026-12-31"
    hotspot: str | None


def qr_payload(portal_url: str, number: str) -> str:
    """Portal URL with ``card=<number>`` so a scan pre-fills the number.

    Never takes the PIN: the QR code is readable without scratching.  An existing
    ``card`` parameter is replaced, other parameters and the fragment are kept.
    """
    if not (number.isascii() and number.isdigit()):
        raise ValueError(f"card number must be digits, got {number!r}")
    parts = urlsplit(portal_url)
    if not (parts.scheme and parts.netloc):
        raise ValueError(f"portal_url must be an absolute URL, got {portal_url!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "card"]
    query.append(("card", number))
    return urlunsplit(parts._replace(query=urlencode(query)))


def render_scratch_sheet(cards: Sequence[PrintableCard], *, title: str, portal_url: str) -> bytes:
    """Render ``cards`` as an A4 PDF, ten per page, and return the PDF bytes.

    Static artwork (borders, labels, instruction, title, crop marks) is drawn once
    as PDF form XObjects and reused, so 10 000 cards stay fast and compact.
    Raises ValueError for an empty list or a malformed number/PIN/URL.
    """
    if not cards:
        raise ValueError("no cards to print")
    for card in cards:
        qr_payload(portal_url, card.number)  # validates number and URL before any drawing
        if len(card.number) > MAX_NUMBER_DIGITS:
            raise ValueError(f"card number {card.number} longer than {MAX_NUMBER_DIGITS} digits")
        pin_ok = all(ch.isascii() and ch.isprintable() and not ch.isspace() for ch in card.pin)
        if not (pin_ok and 0 < len(card.pin) <= MAX_PIN_CHARS):
            raise ValueError(f"PIN of card {card.number} must be 1-{MAX_PIN_CHARS} printable ASCII, no spaces")
    buf = BytesIO()
    c = Canvas(buf, pagesize=A4, pageCompression=1, invariant=1)
    c.setTitle(title)  # metadata is Unicode, no font needed
    c.setCreator("rlm_hotspot printsheet")
    _define_forms(c, title)
    encode = _QrEncoder(portal_url)
    pages = -(-len(cards) // CARDS_PER_PAGE)
    for i, card in enumerate(cards):
        slot = i % CARDS_PER_PAGE
        if slot == 0:
            if i:
                c.showPage()
            c.doForm("marks")
            page = i // CARDS_PER_PAGE + 1
            footer = f"page {page}/{pages}"
            _text(c, PAGE_W - GRID_X - 4 * mm, 4 * mm, footer, 6.5, width=80, align="right", color=GREY)
        c.saveState()
        c.translate(GRID_X + (slot % COLS) * CARD_W, GRID_Y + (ROWS - 1 - slot // COLS) * CARD_H)
        c.doForm("card")
        _draw_card(c, card, encode(card.number))
        c.restoreState()
    c.showPage()
    c.save()
    return buf.getvalue()


def _define_forms(c: Canvas, title: str) -> None:
    """Draw the per-card and per-page constant artwork once."""
    c.beginForm("card", lowerx=-1, lowery=-1, upperx=CARD_W + 1, uppery=CARD_H + 1)
    c.setStrokeColor(LIGHT)
    c.setLineWidth(0.3)
    c.rect(0, 0, CARD_W, CARD_H)  # cut guide; also shows where a card ends if cut with scissors
    _text(c, PAD, TOP - 8, title, 9.5, width=CARD_W - 2 * PAD - FACE_W, bold=True)
    c.setStrokeColor(LIGHT)
    c.line(PAD, 114, CARD_W - PAD, 114)
    _text(c, PAD, 105, "CARD NUMBER", 5.5, width=LEFT_W, color=GREY)
    c.setStrokeColor(black)
    c.setLineWidth(1.2)
    c.roundRect(PAD, PANEL_Y, LEFT_W, PANEL_H, 3)
    c.setFillColor(black)  # label as a tab on the panel border, outside the area the sticker covers
    c.roundRect(PAD, PANEL_Y + PANEL_H - 1, 56, 10, 2, stroke=0, fill=1)
    tab_y = PANEL_Y + PANEL_H + 1.6
    _text(c, PAD + 28, tab_y, "SCRATCH HERE", 6, width=50, bold=True, align="center", color=white)
    _text(c, PAD + 60, tab_y, "PIN", 6, width=30, bold=True, color=GREY)
    qr_mid = CARD_W - PAD + 2 * mm - QR_SIZE / 2
    _text(c, qr_mid, PANEL_Y - 1, "scan to open login", 5.5, width=QR_SIZE, align="center", color=GREY)
    _text(c, PAD, PAD, INSTRUCTION, 6.5, width=CARD_W - 2 * PAD, color=GREY)
    c.endForm()

    c.beginForm("marks")
    c.setStrokeColor(black)
    c.setLineWidth(0.3)
    gap, length = 2 * mm, 6 * mm
    grid_top, grid_right = GRID_Y + ROWS * CARD_H, GRID_X + COLS * CARD_W
    for col in range(COLS + 1):
        x = GRID_X + col * CARD_W
        c.line(x, GRID_Y - gap, x, GRID_Y - gap - length)
        c.line(x, grid_top + gap, x, grid_top + gap + length)
    for row in range(ROWS + 1):
        y = GRID_Y + row * CARD_H
        c.line(GRID_X - gap, y, GRID_X - gap - length, y)
        c.line(grid_right + gap, y, grid_right + gap + length, y)
    _text(c, GRID_X + 4 * mm, 4 * mm, title, 6.5, width=120 * mm, color=GREY)
    c.endForm()


def _draw_card(c: Canvas, card: PrintableCard, qr: tuple[int, int]) -> None:
    """Draw the per-card variable parts, in card-local coordinates."""
    _text(c, CARD_W - PAD, TOP - 15, card.face_value, 20, width=FACE_W, bold=True, align="right", shrink=0.3)
    if card.hotspot:
        _text(c, PAD, TOP - 18.5, card.hotspot, 7.5, width=CARD_W - 2 * PAD - FACE_W, color=GREY)
    _text(c, PAD, 93, _group(card.number), 12.5, width=LEFT_W, font="Courier-Bold")
    pin = card.pin  # letter-spaced but not grouped: a space could be mistaken for part of the PIN
    size, spacing = _pin_metrics(pin)
    width = pdfmetrics.stringWidth(pin, "Courier-Bold", size) + spacing * (len(pin) - 1)
    c.setFillColor(black)
    c.setFont("Courier-Bold", size)
    c.drawString(PAD + (LEFT_W - width) / 2, PANEL_Y + PANEL_H / 2 - 0.3 * size, pin, charSpace=spacing)
    if card.deadline:
        _text(c, PAD, PAD + 9.5, card.deadline, 7, width=LEFT_W, bold=True)
    _draw_qr(c, qr, CARD_W - PAD + 2 * mm - QR_SIZE, PANEL_Y + 4, QR_SIZE)


class _QrEncoder:
    """Encode ``qr_payload(portal_url, number)`` for thousands of numbers quickly.

    reportlab's pure-Python encoder needs ~2 ms per code (20 s for 10 000 cards).
    With a fixed mask pattern (standard-valid; the automatic choice would encode
    8 times) a QR matrix is an affine function over GF(2) of the data bits:
    Reed-Solomon is linear and masking is an XOR.  Payloads that differ only in
    the card digits therefore give ``template ^ delta[position][digit]``, with
    the template and deltas encoded once per number length by QrCodeWidget.
    """

    def __init__(self, portal_url: str) -> None:
        self._url = portal_url
        self._tables: dict[int, tuple[int, int, list[list[int]]]] = {}

    def __call__(self, number: str) -> tuple[int, int]:
        """(modules per side, row-major matrix bits as an int, MSB = top-left)."""
        table = self._tables.get(len(number)) or self._build(len(number))
        size, matrix, deltas = table
        for per_digit, digit in zip(deltas, number, strict=True):
            matrix ^= per_digit[ord(digit) - 48]
        return size, matrix

    def _build(self, length: int) -> tuple[int, int, list[list[int]]]:
        size, base = _encode(qr_payload(self._url, "0" * length))
        deltas = []
        for pos in range(length):
            zeros = "0" * pos, "0" * (length - pos - 1)
            deltas.append(
                [0] + [_encode(qr_payload(self._url, f"{zeros[0]}{d}{zeros[1]}"))[1] ^ base for d in range(1, 10)]
            )
        table = self._tables[length] = size, base, deltas
        probe = ("7931" * length)[:length]  # self-check: never print an unscannable sheet
        if self(probe) != _encode(qr_payload(self._url, probe)):
            raise RuntimeError("QR fast path disagrees with reportlab's encoder")
        return table


def _encode(payload: str) -> tuple[int, int]:
    """Encode with QrCodeWidget's encoder (level M, fixed mask) into (size, bits)."""
    qr = QrCodeWidget(payload, barLevel="M").qr  # type: ignore[attr-defined]  # set in __init__; the stub omits it
    qr.getBestMaskPattern = lambda: QR_MASK  # instance override: make() encodes once
    qr.make()
    return qr.getModuleCount(), int("".join("1" if m else "0" for row in qr.modules for m in row), 2)


def _draw_qr(c: Canvas, code: tuple[int, int], x: float, y: float, size: float) -> None:
    """Draw the matrix as a 1-bit inline image mask, one sample per module.

    ~170 bytes per code instead of ~260 vector rectangles: rectangles made the
    content stream (and reportlab's pure-Python ASCII85 pass over it) the bottleneck.
    Painting a mask with the fill colour prints as crisp as vectors.
    """
    n, matrix = code
    box = size / (n + 8)  # 4-module quiet zone on each side
    row_bytes = -(-n // 8)
    bits = format(matrix, f"0{n * n}b")
    pad = "0" * (row_bytes * 8 - n)
    data = "".join(format(int(bits[r * n : r * n + n] + pad, 2), f"0{2 * row_bytes}x") for r in range(n))
    c.saveState()
    c.setFillColor(black)
    c.transform(n * box, 0, 0, n * box, x + 4 * box, y + 4 * box)
    c.addLiteral(f"BI /W {n} /H {n} /IM true /BPC 1 /D [1 0] /F /AHx ID\n{data}>\nEI")
    c.restoreState()


def _group(digits: str) -> str:
    """'0042123456789' -> '0042 1234 5678 9': easier to read and type."""
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


@functools.lru_cache(maxsize=64)
def _pin_metrics(pin_text: str) -> tuple[float, float]:
    """Largest Courier-Bold size (with proportional letter spacing) that fits the panel."""
    size = 20.0
    while size > 8:
        spacing = 0.3 * size
        width = pdfmetrics.stringWidth(pin_text, "Courier-Bold", size) + spacing * (len(pin_text) - 1)
        if width <= LEFT_W - 20:
            break
        size -= 0.5
    return size, 0.3 * size


def _text(
    c: Canvas,
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    width: float,
    bold: bool = False,
    align: str = "left",
    color: Color = black,
    font: str | None = None,
    shrink: float = 0.7,
) -> None:
    """Draw one line of text, picking a font that can encode it and shrinking it to fit."""
    if font is None:
        font, text = _font_for(text, bold, str(DEJAVU_DIR))
    text, size = _fit(text, font, size, width, max(5.0, shrink * size))
    c.setFillColor(color)
    c.setFont(font, size)
    draw = {"left": c.drawString, "right": c.drawRightString, "center": c.drawCentredString}[align]
    draw(x, y, text)


@functools.lru_cache(maxsize=4096)
def _font_for(text: str, bold: bool, font_dir: str) -> tuple[str, str]:
    """Built-in Helvetica if the text is WinAnsi-encodable, else DejaVuSans, else '?' replacement."""
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        fonts = _unicode_fonts(font_dir)
        if fonts is not None:
            return fonts[bold], text
        return _BUILTIN[bold], text.encode("cp1252", errors="replace").decode("cp1252")
    return _BUILTIN[bold], text


@functools.cache
def _unicode_fonts(font_dir: str) -> tuple[str, str] | None:
    """Register DejaVuSans (and -Bold if present) once; None when not installed."""
    regular, bold = Path(font_dir) / "DejaVuSans.ttf", Path(font_dir) / "DejaVuSans-Bold.ttf"
    if not regular.is_file():
        return None
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
    if not bold.is_file():
        return "DejaVuSans", "DejaVuSans"
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
    return "DejaVuSans", "DejaVuSans-Bold"


@functools.lru_cache(maxsize=4096)
def _fit(text: str, font: str, size: float, max_width: float, min_size: float) -> tuple[str, float]:
    """Shrink the font down to ``min_size``, then truncate with an ellipsis."""
    while size > min_size and pdfmetrics.stringWidth(text, font, size) > max_width:
        size -= 0.5
    if pdfmetrics.stringWidth(text, font, size) <= max_width:
        return text, size
    while len(text) > 1 and pdfmetrics.stringWidth(text + "\u2026", font, size) > max_width:
        text = text[:-1]
    return text + "\u2026", size
