"""Render the README pictures.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshot.py               # rtbold-demo.png
    QT_QPA_PLATFORM=offscreen python docs/make_screenshot.py --positions   # glassbrain-difumo64-..

The first is the demo window after 30 TRs of the packaged demo, FC view after global-signal
regression; ``--bundle`` and ``--recording`` give another model and replay, e.g. the 128-region
view (``docs/rtbold-difumo128.png``)::

    python docs/make_screenshot.py --bundle runs/bench128/ridge_sn/seed0/bundle.safetensors \
        --recording runs/sim_heldout128/sub-201/eeg/sub-201_task-rest_run-01_eeg.vhdr \
        --out docs/rtbold-difumo128.png

``--positions`` compares the
DiFuMo-64 glass-brain positions: the older hand-set ones (``difumo64_display_coords_approx.csv``)
above, the ones computed from the DiFuMo maps (``difumo64_coords.csv``, what the window draws)
below, markers coloured by Yeo-7 network.
"""

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "configs" / "lsl-local.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
logger = logging.getLogger("make_screenshot")


def demo_screenshot(out: Path, bundle: Path | None = None, recording: Path | None = None) -> None:
    """The demo window after 30 TRs of a replay (a full 30-TR FC window, shown after
    global-signal regression): the packaged demo, or ``bundle`` on ``recording``."""
    from PyQt6 import QtWidgets

    from rtbold import demo

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    replay, cfg = demo.start_replay(bundle=bundle, recording=recording, speed=8.0,
                                    session_dir=Path("/tmp") / f"rtbold-shot-{os.getpid()}")
    win = demo.demo_window(cfg, exec_loop=False)
    win.resize(1600, 1000)
    win.show()
    win.fc.kind_combo.setCurrentIndex(1)  # FC after GSR: network structure under the global part
    try:
        deadline = time.monotonic() + 180
        while win.history.n_total < 30 and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        win.draw_now()
        app.processEvents()
        win.grab().save(str(out))
        logger.info("wrote %s after %d TRs", out, win.history.n_total)
    finally:
        win.stop(wait=True)
        replay.stop()


def positions_figure(out: Path) -> None:
    """Hand-set (top) and computed (bottom) DiFuMo-64 glass-brain positions, by network."""
    import numpy as np
    import pyqtgraph as pg
    from PyQt6 import QtWidgets

    from rtbold.atlas import RegionMarker, load_atlas
    from rtbold.gui import theme
    from rtbold.gui.glassbrain import GlassBrainView
    from rtbold.gui.regions import region_info

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    theme.configure_pyqtgraph()
    atlas = load_atlas(64)
    hand = []
    for d in atlas.display:
        if d["mode"] == "bilateral_pair":
            x = abs(d["x"])
            hand.append(RegionMarker(((-x, d["y"], d["z"]), (x, d["y"], d["z"])), 0.5, 0.5))
        else:
            side = {"midline": (0.5, 0.5)}.get(d["mode"], (float(d["x"] < 0), float(d["x"] > 0)))
            hand.append(RegionMarker(((d["x"], d["y"], d["z"]),), *side))
    computed = region_info()
    variants = (("hand-set (difumo64_display_coords_approx.csv, before)",
                 dataclasses.replace(computed, display=hand)),
                ("computed from the DiFuMo-64 maps (difumo64_coords.csv, now drawn)", computed))
    page = QtWidgets.QWidget()
    page.setStyleSheet(theme.APP_STYLESHEET)
    lay = QtWidgets.QVBoxLayout(page)
    for title, regions in variants:
        lay.addWidget(QtWidgets.QLabel(f"<b>DiFuMo-64 positions, {title}</b>: "
                                       f"{sum(m.bilateral for m in regions.display)} pairs, "
                                       f"{sum(not m.bilateral for m in regions.display)} single"))
        view = GlassBrainView(regions)
        for key, sc in view.scatters.items():
            nets = np.asarray(regions.networks, object)[view.marker_region[view._orders[key]]]
            sc.setBrush([pg.mkBrush(theme.network_color(n)) for n in nets])
        view.colorbar.hide()
        bar = view.layout().itemAt(0).layout()  # the colour-limit controls: not used here
        for k in range(bar.count()):
            if bar.itemAt(k).widget() is not None:
                bar.itemAt(k).widget().hide()
        lay.addWidget(view)
    legend = "  ".join(f"<span style='color:{theme.network_color(n)}'>●</span> {n}"
                       for n in computed.networks_present())
    lay.addWidget(QtWidgets.QLabel(legend))
    page.resize(1300, 820)
    page.show()
    app.processEvents()
    page.grab().save(str(out))
    both = [(a, b) for a, b in zip(hand, computed.display) if a.bilateral and b.bilateral]
    dx = [abs(a.points[1][0]) - abs(b.points[1][0]) for a, b in both]
    dist = [np.linalg.norm(np.subtract(a.points, b.points), axis=1).mean() for a, b in both]
    logger.info("wrote %s; %d regions drawn as pairs in both: hand-set |x| minus computed |x| "
                "median %+.1f mm (range %+.1f..%+.1f), mean marker distance %.1f mm; regions "
                "drawn differently (pair vs single): %d", out, len(both), float(np.median(dx)),
                min(dx), max(dx), float(np.mean(dist)),
                sum(a.bilateral != b.bilateral for a, b in zip(hand, computed.display)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", action="store_true",
                        help="write docs/glassbrain-difumo64-positions.png instead of the demo "
                             "screenshot")
    parser.add_argument("--out", type=Path, default=None, help="output PNG")
    parser.add_argument("--bundle", type=Path, default=None,
                        help="model bundle (default: the packaged demo model)")
    parser.add_argument("--recording", type=Path, default=None,
                        help="BIDS EEG file to replay, measured region series beside it "
                             "(default: the demo recording)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.positions:
        positions_figure(args.out or ROOT / "docs" / "glassbrain-difumo64-positions.png")
    else:
        demo_screenshot(args.out or ROOT / "docs" / "rtbold-demo.png", args.bundle,
                        args.recording)
    return 0


if __name__ == "__main__":
    sys.exit(main())
