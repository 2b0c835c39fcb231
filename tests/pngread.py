"""A small PNG reader for the tests (8-bit RGB or RGBA, not interlaced: what Chromium writes), stdlib only."""

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Image:
    """Pixels as rows of bytes; pixel(x, y) is an RGB tuple."""

    def __init__(self, width, height, rows, bpp):
        self.width, self.height, self.rows, self.bpp = width, height, rows, bpp

    def pixel(self, x, y):
        i = x * self.bpp
        return tuple(self.rows[y][i : i + 3])


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == SIGNATURE, f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour, _comp, _filter, interlace = header
    assert depth == 8 and colour in (2, 6) and not interlace, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 2:
            line = bytearray((x + b) & 255 for x, b in zip(line, prev))
        elif kind:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                if kind == 1:
                    line[i] = (line[i] + a) & 255
                elif kind == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                else:
                    line[i] = (line[i] + _paeth(a, b, prev[i - bpp] if i >= bpp else 0)) & 255
        rows.append(bytes(line))
        prev = line
    return Image(width, height, rows, bpp)
