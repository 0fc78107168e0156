"""What the input guards cost: prefcurate's JSON Lines read (nesting bound + full UTF-8 validation +
pyarrow.json) against bare `pyarrow.json.read_json` (the peer, which hangs or crashes on deep
nesting and lets invalid UTF-8 through), on the same file, interleaved in one process.

    .venv/bin/python benchmarks/read_guard.py [--mb 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson

from prefcurate import readers

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "ultrafeedback_binarized.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=64, help="file size in MB (the bundled sample repeated)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sample = SAMPLE.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        path.write_bytes(sample * max(1, (args.mb << 20) // len(sample)))
        peer_s, ours_s = [], []
        for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
            t = time.perf_counter()
            peer = pajson.read_json(
                pa.input_stream(str(path)), read_options=pajson.ReadOptions(block_size=1 << 24)
            )
            peer_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            ours = readers.read_file(path)
            ours_s.append(time.perf_counter() - t)
        assert ours.num_rows == peer.num_rows
        mb = path.stat().st_size / 1e6
        peer_t, ours_t = min(peer_s), min(ours_s)
        print(f"file: {mb:.1f} MB, {peer.num_rows:,} rows; best of {args.repeats}")
        print(f"peer  pyarrow.json.read_json        {peer_t:6.3f} s  {mb / peer_t:7.1f} MB/s")
        print(f"ours  readers.read_file (guarded)   {ours_t:6.3f} s  {mb / ours_t:7.1f} MB/s")
        print(f"ours / peer time: {ours_t / peer_t:.2f}x")


if __name__ == "__main__":
    main()
