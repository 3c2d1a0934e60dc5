"""Tests for the printable scratch-card sheet (rlm_hotspot.printsheet).

The text and QR checks need poppler-utils (pdftotext, pdftoppm, pdfinfo) and
zbar-tools (zbarimg); they are skipped with a reason when those are missing.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rlm_hotspot import printsheet
from rlm_hotspot.printsheet import INSTRUCTION, PrintableCard, qr_payload, render_scratch_sheet

PORTAL = "https://hotspot.example.net/login?lang=en"
TITLE = "Wi-Fi Internet Card"


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (apt-get install {package})")
    return path


def _make_cards(count: int, seed: int = 7) -> list[PrintableCard]:
    rnd = random.Random(seed)
    alphabet = "ACDEFHJKLMNPRTUVWXY34679"  # mixed with digit PINs below
    cards = []
    for i in range(count):
        number = f"0042{rnd.randrange(10**9):09d}"
        pin = f"{rnd.randrange(10**8):08d}" if i % 2 else "".join(rnd.choice(alphabet) for _ in range(6))
        assert pin not in number
        deadline = f"use before 2026-12-{10 + i % 20:02d}" if i % 3 else None
        cards.append(PrintableCard(number, pin, "5.00 EUR", deadline, "Hotel Riviera" if i % 4 else None))
    return cards


def _text(pdf: bytes, tmp_path: Path) -> str:
    _need("pdftotext", "poppler-utils")
    src = tmp_path / "sheet.pdf"
    src.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(src), "-"], check=True, capture_output=True, text=True).stdout


def _page_count(pdf: bytes, tmp_path: Path) -> int:
    if shutil.which("pdfinfo"):
        src = tmp_path / "count.pdf"
        src.write_bytes(pdf)
        info = subprocess.run(["pdfinfo", str(src)], check=True, capture_output=True, text=True).stdout
        return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    return len(re.findall(rb"/Type /Page\b(?!s)", pdf))


@pytest.fixture(scope="module")
def cards() -> list[PrintableCard]:
    return _make_cards(25)


@pytest.fixture(scope="module")
def sheet(cards: list[PrintableCard]) -> bytes:
    return render_scratch_sheet(cards, title=TITLE, portal_url=PORTAL)


def test_qr_payload_appends_card_number() -> None:
    assert qr_payload("https://hs.example/login", "0042123") == "https://hs.example/login?card=0042123"
    assert qr_payload("http://10.0.0.1/", "9") == "http://10.0.0.1/?card=9"


def test_qr_payload_keeps_existing_query_and_fragment() -> None:
    url = "https://hs.example/p?lang=ru&ssid=Lobby%20Wi-Fi&empty=#top"
    assert qr_payload(url, "0042") == "https://hs.example/p?lang=ru&ssid=Lobby+Wi-Fi&empty=&card=0042#top"
    # a stale card parameter is replaced, never duplicated
    assert qr_payload("https://hs.example/?card=1&a=b", "77") == "https://hs.example/?a=b&card=77"


@pytest.mark.parametrize("number", ["", "12a4", "\uff11\uff12\uff13", "12 34"])
def test_qr_payload_rejects_non_digit_numbers(number: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        qr_payload(PORTAL, number)


def test_qr_payload_rejects_relative_url() -> None:
    with pytest.raises(ValueError, match="absolute"):
        qr_payload("/login", "123")


def test_pdf_header_and_page_count(sheet: bytes, tmp_path: Path) -> None:
    assert sheet.startswith(b"%PDF-")
    assert _page_count(sheet, tmp_path) == 3  # 10 cards per A4 page
    one = render_scratch_sheet(_make_cards(10), title=TITLE, portal_url=PORTAL)
    assert _page_count(one, tmp_path) == 1


def test_text_has_numbers_pins_and_labels(sheet: bytes, cards: list[PrintableCard], tmp_path: Path) -> None:
    text = _text(sheet, tmp_path)
    assert text.count("SCRATCH HERE") == len(cards)
    assert text.count(INSTRUCTION) == len(cards)
    squeezed_lines = {re.sub(r"\s+", "", line) for line in text.splitlines()}
    for card in cards:
        assert re.sub(r"(\d{4})(?=\d)", r"\1 ", card.number) in text  # groups of 4: "0042 1234 5678 9"
        assert card.pin in squeezed_lines  # letter-spaced, alone on its line
        if card.deadline:
            assert card.deadline in text


def test_qr_codes_decode_to_payloads_without_pins(
    sheet: bytes, cards: list[PrintableCard], tmp_path: Path
) -> None:
    _need("pdftoppm", "poppler-utils")
    _need("zbarimg", "zbar-tools")
    src = tmp_path / "sheet.pdf"
    src.write_bytes(sheet)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(src), str(tmp_path / "page")], check=True)
    pngs = sorted(str(p) for p in tmp_path.glob("page*.png"))
    assert len(pngs) == 3
    # zbarimg exits 4 when a page has no symbol; stderr may carry unrelated dbus noise
    out = subprocess.run(
        ["zbarimg", "--raw", "-q", *pngs], check=False, capture_output=True, text=True
    ).stdout
    decoded = [line for line in out.splitlines() if line]
    assert len(decoded) == len(cards)
    assert set(decoded) == {qr_payload(PORTAL, card.number) for card in cards}
    for payload in decoded:
        for card in cards:
            assert card.pin not in payload


def test_fast_qr_encoder_matches_reportlab() -> None:
    encode = printsheet._QrEncoder("https://hs.example/l?x=1#f")
    rnd = random.Random(3)
    for length in (1, 8, 13, 20):
        for _ in range(5):
            number = "".join(rnd.choice("0123456789") for _ in range(length))
            assert encode(number) == printsheet._encode(qr_payload("https://hs.example/l?x=1#f", number))


def test_cyrillic_uses_dejavu_when_installed(tmp_path: Path) -> None:
    if not (printsheet.DEJAVU_DIR / "DejaVuSans.ttf").is_file():
        pytest.skip("DejaVuSans.ttf not installed (apt-get install fonts-dejavu-core)")
    cards = [PrintableCard("0042000000001", "4711", "500 ₽", "до 31.12.2026", "Гостиница Москва")]
    text = _text(render_scratch_sheet(cards, title="Карта Wi-Fi", portal_url=PORTAL), tmp_path)
    for expected in ("Карта Wi-Fi", "Гостиница Москва", "500 ₽", "до 31.12.2026"):
        assert expected in text


def test_cyrillic_falls_back_to_question_marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(printsheet, "DEJAVU_DIR", tmp_path / "no-fonts")
    cards = [PrintableCard("0042000000001", "4711", "5.00 €", None, "Отель")]
    pdf = render_scratch_sheet(cards, title="Карта Wi-Fi", portal_url=PORTAL)
    assert b"DejaVu" not in pdf
    text = _text(pdf, tmp_path)
    assert "????? Wi-Fi" in text
    assert "5.00 €" in text  # the euro sign is in the built-in fonts' WinAnsi encoding


def test_long_texts_are_shrunk_not_crashing(tmp_path: Path) -> None:
    card = PrintableCard("1" * 20, "ABCDEFGHJKLMNPQR", "1 000 000.00 EUR", "x" * 200, "H" * 200)
    pdf = render_scratch_sheet([card], title="T" * 300, portal_url=PORTAL)
    text = _text(pdf, tmp_path)
    assert "ABCDEFGHJKLMNPQR" in {re.sub(r"\s+", "", line) for line in text.splitlines()}
    assert "\u2026" in text  # title/hotspot/deadline truncated with an ellipsis...
    assert "1111 1111 1111 1111 1111" in text  # ...but never the card number
    assert "1 000 000.00 EUR" in text  # nor a (merely long) face value


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (PrintableCard("12x", "1234", "5", None, None), "digits"),
        (PrintableCard("123", "12 34", "5", None, None), "PIN"),
        (PrintableCard("123", "", "5", None, None), "PIN"),
        (PrintableCard("123", "A" * 17, "5", None, None), "PIN"),
        (PrintableCard("1" * 21, "1234", "5", None, None), "longer than 20"),
        (PrintableCard("123", "12\u04174", "5", None, None), "PIN"),  # Cyrillic Ze, looks like a 3
    ],
)
def test_rejects_bad_cards(card: PrintableCard, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_scratch_sheet([card], title=TITLE, portal_url=PORTAL)


def test_rejects_empty_batch() -> None:
    with pytest.raises(ValueError, match="no cards"):
        render_scratch_sheet([], title=TITLE, portal_url=PORTAL)
