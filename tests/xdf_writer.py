"""A minimal XDF 1.0 writer for test fixtures (the format LabRecorder writes; read with pyxdf).

Chunk layout per the XDF specification: [NumLengthBytes][Length][Tag uint16][Content].
"""

import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def write_xdf(path: Path, streams: list[dict]) -> Path:
    """Write streams, each ``{"name", "type", "sfreq", "labels", "data" (n, ch) or strings,
    "timestamps", "unit"}``; string streams have ``data`` as a list of str."""
    out = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, start=1):
        is_str = isinstance(s["data"], list)
        n_ch = 1 if is_str else s["data"].shape[1]
        chans = "".join(f"<channel><label>{escape(lab)}</label><unit>{s.get('unit', 'microvolts')}"
                        f"</unit><type>{s['type']}</type></channel>" for lab in s["labels"])
        xml = (f'<?xml version="1.0"?><info><name>{s["name"]}</name><type>{s["type"]}</type>'
               f"<channel_count>{n_ch}</channel_count><nominal_srate>{s['sfreq']}</nominal_srate>"
               f"<channel_format>{'string' if is_str else 'float32'}</channel_format>"
               f"<source_id>{s['name']}-test</source_id><desc><channels>{chans}</channels></desc>"
               "</info>")
        out.append(_chunk(2, struct.pack("<I", sid) + xml.encode()))
        body = bytearray(struct.pack("<I", sid) + _varlen(len(s["timestamps"])))
        for i, ts in enumerate(s["timestamps"]):
            body += struct.pack("<Bd", 8, ts)
            if is_str:
                v = s["data"][i].encode()
                body += _varlen(len(v)) + v
            else:
                body += np.asarray(s["data"][i], dtype="<f4").tobytes()
        out.append(_chunk(3, bytes(body)))
        out.append(_chunk(4, struct.pack("<Idd", sid, s["timestamps"][0], 0.0)))
    Path(path).write_bytes(b"".join(out))
    return Path(path)
