"""Render docs/rtbold-demo.png: the demo window after 10 TRs of the packaged demo.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshot.py
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "configs" / "lsl-local.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    from PyQt6 import QtWidgets

    from rtbold import demo

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    replay, cfg = demo.start_replay(speed=4.0, session_dir=Path("/tmp") / f"rtbold-shot-{os.getpid()}")
    win = demo.demo_window(cfg, exec_loop=False)
    win.resize(1600, 1000)
    win.show()
    try:
        deadline = time.monotonic() + 120
        while win.history.n_total < 12 and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        win.draw_now()
        app.processEvents()
        out = ROOT / "docs" / "rtbold-demo.png"
        win.grab().save(str(out))
        print(f"wrote {out} after {win.history.n_total} TRs")
    finally:
        win.stop(wait=True)
        replay.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
