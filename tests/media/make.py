#!/usr/bin/env python3
"""Make the media test set in this directory.

Everything except four small real-codec files is written here with the Python standard
library (zlib + struct): PNG, GIF (with a plain LZW encoder), an MP4 header, text, and the
hostile files. The hostile JPEGs are derived from photo.jpg.

photo.jpg, small.webp, small.heic, quadrants.bmp and quadrants.tif need real encoders; they are
committed, and `python3 make.py --with-tools` remakes them with ImageMagick (`convert`)
and exiftool before making the rest. Without the flag those five are left as they are.

All pictures show the same 2x2 quadrants (top-left red, top-right green, bottom-left
blue, bottom-right white) so tests can check orientation by colour.
"""

import os
import shutil
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


# --- PNG ---------------------------------------------------------------------------

def png_chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data))


def png(width, height, color_type, rows, extra_chunks=()):
    """rows: list of bytes per row (without the filter byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for typ, data in extra_chunks:
        out += png_chunk(typ, data)
    out += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return out


def quadrant(x, y, w, h):
    top, left = y < h // 2, x < w // 2
    if top:
        return (255, 0, 0) if left else (0, 255, 0)
    return (0, 0, 255) if left else (255, 255, 255)


def alpha_png():
    """40x30 RGBA quadrants; alpha fades from opaque (left) to transparent (right)."""
    w, h = 40, 30
    rows = []
    for y in range(h):
        row = bytearray()
        for x in range(w):
            r, g, b = quadrant(x, y, w, h)
            row += bytes((r, g, b, 255 - x * 255 // (w - 1)))
        rows.append(bytes(row))
    return png(w, h, 6, rows)


def bomb_png():
    """Declares 100,000 x 100,000 8-bit grey (10 GB of pixels) in a few KB: the IDAT is
    one megabyte of zero rows, compressed."""
    w = h = 100_000
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 << 20), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def exif_length_png():
    """A 2x2 PNG whose eXIf chunk declares 2 GiB (and then the file ends)."""
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + struct.pack(">I", 0x7FFF_FFF0) + b"eXIfMM\x00*")


# --- GIF ---------------------------------------------------------------------------

def lzw(indices, min_code_size):
    """GIF LZW: variable-width codes, LSB first, clear code at the start, end code last."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    table = {bytes([i]): i for i in range(clear)}
    next_code, width = end + 1, min_code_size + 1
    bits = nbits = 0
    out = bytearray()

    def emit(code):
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8

    emit(clear)
    cur = b""
    for i in indices:
        nxt = cur + bytes([i])
        if nxt in table:
            cur = nxt
            continue
        emit(table[cur])
        if next_code < 4096:
            table[nxt] = next_code
            next_code += 1
            if next_code > (1 << width) and width < 12:
                width += 1
        cur = bytes([i])
    if cur:
        emit(table[cur])
    emit(end)
    if nbits:
        out.append(bits & 0xFF)
    return bytes(out)


def sub_blocks(data):
    out = bytearray()
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        out += bytes([len(chunk)]) + chunk
    return bytes(out) + b"\x00"


PALETTE = bytes((255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255))  # 4 colours


def gif_frame(x, y, w, h, indices, delay=None):
    out = b""
    if delay is not None:
        out += b"\x21\xf9\x04\x04" + struct.pack("<H", delay) + b"\x00\x00"
    out += b"\x2c" + struct.pack("<HHHHB", x, y, w, h, 0)
    return out + b"\x02" + sub_blocks(lzw(indices, 2))


def gif_header(w, h):
    # Global colour table of 4 entries (size field 1 = 2^(1+1)).
    return b"GIF89a" + struct.pack("<HHBBB", w, h, 0x81, 0, 0) + PALETTE


def still_gif():
    w, h = 16, 12
    idx = []
    for y in range(h):
        for x in range(w):
            idx.append([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)].index(
                quadrant(x, y, w, h)))
    return gif_header(w, h) + gif_frame(0, 0, w, h, idx) + b"\x3b"


def animated_gif(frames=3000):
    """16x12, first frame the quadrants, then `frames` 1x1 frames, looping."""
    out = bytearray(still_gif()[:-1])
    # NETSCAPE2.0 loop extension after the header and first frame is allowed anywhere
    # before the frames it governs; put it first to look like real encoders.
    header_len = 6 + 7 + len(PALETTE)
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    out[header_len:header_len] = loop
    for i in range(frames):
        out += gif_frame(i % 16, (i // 16) % 12, 1, 1, [i % 4], delay=1)
    return bytes(out) + b"\x3b"


# --- JPEG derivatives --------------------------------------------------------------

def jpeg_segments(data):
    """Split a JPEG into (SOI, [segments before SOS], rest from SOS)."""
    assert data[:2] == b"\xff\xd8"
    i, segs = 2, []
    while True:
        assert data[i] == 0xFF
        code = data[i + 1]
        if code == 0xDA:
            return data[:2], segs, data[i:]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        segs.append(data[i:i + 2 + n])
        i += 2 + n


def exif_bomb_block():
    """A 65,527-byte TIFF block: IFD0 holds as many entries as fit, every one an Exif-IFD
    pointer to the start of another entry of the same table. A parser that follows each
    pointer to a new offset reads O(n^2) entries from it."""
    size = 65533 - 6  # APP1 payload after the length, minus "Exif\0\0"
    n = (size - 8 - 2 - 4) // 12
    out = bytearray(b"II*\x00\x08\x00\x00\x00")
    out += struct.pack("<H", n)
    for i in range(n):
        out += struct.pack("<HHII", 0x8769, 4, 1, 10 + i * 12)
    out += b"\x00\x00\x00\x00"
    out += b"\x00" * (size - len(out))
    return bytes(out)


def exif_huge_jpeg(photo):
    soi, segs, rest = jpeg_segments(photo)
    block = b"Exif\x00\x00" + exif_bomb_block()
    app1 = b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block
    # Two of them, first in the file, before the photo's own (proper) EXIF.
    return soi + app1 + app1 + b"".join(segs) + rest


def truncated_jpeg(photo):
    soi, segs, rest = jpeg_segments(photo)
    head = len(photo) - len(rest)
    # Keep the headers and the first half of the scan.
    return photo[:head + len(rest) // 2]


# --- with tools --------------------------------------------------------------------

def make_with_tools():
    convert = shutil.which("convert")
    exiftool = shutil.which("exiftool")
    if not convert or not exiftool:
        sys.exit("--with-tools needs ImageMagick's convert and exiftool")
    quads = ["-size", "32x24", "xc:red", "-size", "32x24", "xc:lime", "+append", "(",
             "-size", "32x24", "xc:blue", "-size", "32x24", "xc:white", "+append", ")",
             "-append"]

    def run(*args):
        subprocess.run(args, check=True)

    run(convert, *quads, "-strip", "-quality", "92", path("photo.jpg"))
    run(exiftool, "-q", "-overwrite_original",
        "-Make=Canon", "-Model=Canon EOS R6 ", "-Orientation#=6",
        "-DateTimeOriginal=2024:07:14 18:30:05", "-OffsetTimeOriginal=-03:00",
        "-SubSecTimeOriginal=25",
        "-GPSLatitude=22.9519", "-GPSLatitudeRef=S",
        "-GPSLongitude=43.2105", "-GPSLongitudeRef=W",
        "-GPSAltitude=700.5", "-GPSAltitudeRef=0",
        path("photo.jpg"))
    run(convert, *quads, "-strip", "-define", "webp:lossless=true", path("small.webp"))
    run(convert, *quads, "-strip", path("small.heic"))
    run(convert, *quads, "-strip", "-type", "TrueColor", "BMP3:" + path("quadrants.bmp"))
    run(convert, *quads, "-strip", "-compress", "lzw", path("quadrants.tif"))


def main():
    if "--with-tools" in sys.argv[1:]:
        make_with_tools()
    write("alpha.png", alpha_png())
    write("still.gif", still_gif())
    write("animated-3000.gif", animated_gif(3000))
    # ftyp (isom, compatible isom iso2 avc1 mp41), an empty free box, an mdat header.
    write("clip.mp4", struct.pack(">I", 32) + b"ftypisom" + struct.pack(">I", 0x200)
          + b"isomiso2avc1mp41" + struct.pack(">I", 8) + b"free"
          + struct.pack(">I", 8) + b"mdat")
    write("hello.txt", "Grüße aus ringbox.\nA plain UTF-8 text file.\n".encode())
    write("bomb-100000x100000.png", bomb_png())
    write("exif-length-2g.png", exif_length_png())
    with open(path("photo.jpg"), "rb") as f:
        photo = f.read()
    write("truncated.jpg", truncated_jpeg(photo))
    write("exif-huge.jpg", exif_huge_jpeg(photo))


if __name__ == "__main__":
    main()
