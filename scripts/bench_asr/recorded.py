"""Word errors on recorded human speech at 8 kHz mu-law: pocketsphinx-testdata's five LibriVox
lines and five card-game utterances (91 words), each heard by `earshot
transcribe` as recorded only (`asr.telephone_warp` 1) and with earshot's defaults. A control for
decoding choices measured on the bench's synthetic voices (docs/BENCHMARKS.md); too few words to
rank two choices that differ by a word or two.

Usage: recorded.py EARSHOT DATA_DIR TESTDATA_DIR WORK_DIR (scripts/bench-asr, BENCH_RECORDED=1).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import canonical, edit_distance


def references(data: Path) -> dict[Path, str]:
    found = {}
    for folder, listing in [("librivox", "transcription"), ("cards", "cards.transcription")]:
        for line in (data / folder / listing).read_text().splitlines():
            text, _, name = line.strip().rpartition("(")
            words = text.replace("<s>", "").replace("</s>", "").strip()
            found[data / folder / f"{name.rstrip(')')}.wav"] = words
    return found


def main() -> None:
    earshot, data_dir, data, work = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    sox_env = {**os.environ, "SOX_OPTS": "--no-dither"}
    transcribe = [earshot, "--data-dir", data_dir, "--log-format", "json", "transcribe"]
    print("| clip | words | as recorded (warp 1): errors | defaults: errors | defaults: heard |")
    print("|---|---|---|---|---|")
    totals = {"1": 0, "default": 0}
    words = 0
    for path, text in sorted(references(data).items()):
        narrow = work / f"{path.stem}-8k-ulaw.wav"
        subprocess.run(["sox", str(path), "-r", "8000", "-e", "mu-law", "-b", "8", str(narrow)],
                       check=True, env=sox_env, capture_output=True)
        reference = canonical(text)
        words += len(reference)
        row = {}
        for warp in totals:
            env = dict(os.environ)
            if warp != "default":
                env["EARSHOT_ASR__TELEPHONE_WARP"] = warp
            result = subprocess.run([*transcribe, str(narrow)], check=True, env=env, capture_output=True)
            heard = " ".join(turn["content"] for turn in json.loads(result.stdout)["turns"])
            row[warp] = (edit_distance(reference, canonical(heard)), heard)
            totals[warp] += row[warp][0]
        errors = f"{row['1'][0]} | {row['default'][0]}"
        print(f"| {path.stem} | {len(reference)} | {errors} | {row['default'][1]} |")
    print(f"| all | {words} | {totals['1']} ({100 * totals['1'] / words:.1f} %) "
          f"| {totals['default']} ({100 * totals['default'] / words:.1f} %) | |")


if __name__ == "__main__":
    main()
