"""ASR quality and speed benchmark: earshot against faster-whisper on generated two-voice calls.

Generates calls with espeak-ng (two voices, alternating lines of a known script) combined by sox
into stereo (one speaker a channel) and mono mixes, at 16 kHz (PCM WAV, MP3) and 8 kHz (G.711
mu-law WAV, MP3); transcribes each with `earshot transcribe` and with faster-whisper on the same
Whisper tiny.en weights; prints WER, cpWER, speaker-time accuracy, real-time factor and peak RSS
as a Markdown table.

Word error rates are computed after Whisper's English text normalizer (found beside WORK_DIR as
`normalizers/`), on references and hypotheses alike, with two spellings made one and digits
side by side joined (`canonical`); the tables give each set's rates (its errors over its words).

Then the generated calls of earshot's coverage test (`testing::varied_script`, listed by the
VARIED_CALLS_BIN): pauses of 0.2 to 2 s, interruptions, monologues over 30 s, either speaker
first; besides the error rates, how many lines come back in their speaker's role and in order.

Usage (scripts/bench-asr sets this up):
bench.py EARSHOT_BIN DATA_DIR BENCH_PYTHON CT2_MODEL_DIR WORK_DIR [VARIED_CALLS_BIN]
"""

from __future__ import annotations

import array
import itertools
import json
import math
import os
import re
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Speaker 0 is the agent (answers first), speaker 1 the caller.
SCRIPTS = {
    "dental": [
        (0, "Thank you for calling City Dental, this is Anna. How can I help you today?"),
        (1, "Hi Anna. I would like to book a cleaning, and maybe a checkup, for next week."),
        (0, "Of course. Are you an existing patient with us, or is this your first visit?"),
        (1, "I have been there before. My last visit was about a year ago, I think."),
        (0, "Great. Can I have your full name and your date of birth, please?"),
        (1, "Sure. It is Michael Johnson, born on the fourth of March, nineteen eighty five."),
        (0, "Thank you, Michael. I found your file. We have openings on Tuesday and Thursday."),
        (1, "Thursday would be better for me. Do you have anything in the afternoon?"),
        (0, "Yes, there is a slot at three fifteen with doctor Patel. Would that work?"),
        (1, "That works perfectly. Will my insurance cover the cleaning this time?"),
        (0, "Your plan covers two cleanings a year, so this one should be fully covered."),
        (1, "Good to hear. Should I bring anything with me to the appointment?"),
        (0, "Just your insurance card and a photo ID. Please arrive ten minutes early."),
        (1, "Okay, I will be there. Thank you so much for your help today."),
        (0, "You are welcome, Michael. We will send you a reminder the day before. Goodbye."),
    ],
    "delivery": [
        (0, "Hello, you have reached Green Leaf Grocery delivery. What can I do for you?"),
        (1, "Hi, my order was supposed to arrive this morning, but nothing has come yet."),
        (0, "I am sorry to hear that. Could you give me your order number, please?"),
        (1, "Yes, it is four seven two nine one. I placed it yesterday evening."),
        (0, "Thank you. I can see the driver had a problem with the van this morning."),
        (1, "Oh no. So when can I expect my groceries to be delivered now?"),
        (0, "A new driver has picked up your order. It should arrive before two o'clock."),
        (1, "That is fine, but I have frozen food in that order. Will it still be cold?"),
        (0, "Yes, frozen items travel in insulated boxes, so they will stay frozen."),
        (1, "All right. Can I get a refund on the delivery fee because of the delay?"),
        (0, "Absolutely. I have refunded the delivery fee to your card just now."),
        (1, "Thank you, I appreciate that. Is there anything else I need to do?"),
        (0, "No, you are all set. You will get a text when the driver is nearby."),
        (1, "Perfect. Thanks for sorting this out so quickly. Have a good day."),
    ],
    # Not strictly alternating: the agent speaks twice in a row (two lines with a pause between)
    # and the caller three times, as in real calls; a speaker guess that alternates fails here.
    "support": [
        (0, "Thanks for calling Bright Internet support, my name is Leo."),
        (0, "Before we start, may I have the account number on your bill?"),
        (1, "Sure, it is eight eight three two one zero."),
        (1, "My internet has been dropping every few minutes since yesterday."),
        (1, "I already restarted the router twice and it did not help."),
        (0, "I am sorry about that. Let me run a line test from here."),
        (0, "The test shows a weak signal. I will send a technician tomorrow morning."),
        (1, "Tomorrow morning works. Thank you very much, Leo."),
        (0, "You are welcome. Have a great evening."),
    ],
}

GAP_SECONDS = 0.7
VOICES = {0: ("en-us", "35"), 1: ("en-gb+f3", "60")}


@dataclass
class Call:
    name: str
    lines: list[tuple[int, str, float, float]]  # speaker, text, start s, end s
    duration: float
    # Who speaks in each 10 ms frame (by the energy of each speaker's own track), or None.
    speaking: list[int | None]


def activity(path: Path) -> list[bool]:
    """10 ms frames of a 16 kHz 16-bit mono WAV louder than -45 dBFS."""
    with wave.open(str(path)) as source:
        samples = array.array("h", source.readframes(source.getnframes()))
    frames = []
    for start in range(0, len(samples) - 159, 160):
        power = sum(x * x for x in samples[start:start + 160]) / 160 / (32768.0 ** 2)
        frames.append(10 * math.log10(max(power, 1e-12)) > -45.0)
    return frames


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, **kwargs)


# sox dithers by default whenever it writes 16 bits or fewer after an effect, with fresh noise
# each run, so two runs would score different files; G.711 encoders do not dither either.
os.environ["SOX_OPTS"] = "--no-dither"


def seconds_of(path: Path) -> float:
    return float(run(["soxi", "-D", str(path)], text=True).stdout.strip())


def script_start(placed: list[tuple[int, str, float, float]], speaker: int, pause: float) -> float:
    """Where a line starts (seconds), as earshot's `testing::script_start` places it: its pause
    after the previous line (an interruption after that line's first 0.3 s at the soonest), and
    never before its own speaker's previous line ended and paused 0.2 s."""
    if not placed:
        return max(pause, 0.0)
    _who, _text, previous_start, previous_end = placed[-1]
    start = max(previous_end + pause, previous_start + 0.3)
    own = [end for who, _t, _s, end in placed if who == speaker]
    return max(start, own[-1] + 0.2) if own else start


FIXED_VARIANTS = ["stereo 16 kHz WAV", "stereo 16 kHz MP3", "stereo 8 kHz mu-law",
                  "mono 16 kHz WAV", "mono 16 kHz MP3", "mono 8 kHz mu-law"]
VARIED_VARIANTS = ["stereo 16 kHz WAV", "stereo 8 kHz mu-law", "mono 16 kHz WAV", "mono 8 kHz mu-law"]


def generate(name: str, script: list[tuple[int, str, float]], work: Path,
             wanted: list[str]) -> tuple[Call, dict[str, Path]]:
    """Both channels as 16 kHz WAVs laid out in time (each line after its pause, in seconds),
    then the variants wanted."""
    parts = {0: [], 1: []}
    lines = []
    for index, (speaker, text, pause) in enumerate(script):
        voice, pitch = VOICES[speaker]
        raw = work / f"{name}-{index}-raw.wav"
        run(["espeak-ng", "-v", voice, "-p", pitch, "-s", "165", "-w", str(raw), text])
        line = work / f"{name}-{index}.wav"
        run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(line), "vol", "0.8"])
        length = seconds_of(line)
        start = script_start(lines, speaker, pause)
        lines.append((speaker, text, start, start + length))
    duration = max(end for *_rest, end in lines) + 0.5
    for speaker in (0, 1):
        track = work / f"{name}-speaker{speaker}.wav"
        inputs: list[str] = []
        cursor = 0.0
        for index, (who, _text, start, end) in enumerate(lines):
            if who != speaker:
                continue
            pad = work / f"{name}-{speaker}-{index}-pad.wav"
            run(["sox", str(work / f"{name}-{index}.wav"), str(pad), "pad", f"{start - cursor:.4f}", "0"])
            inputs.append(str(pad))
            cursor = end
        if not inputs:
            run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(track), "trim", "0", f"{duration:.4f}"])
        else:
            run(["sox", *inputs, str(track), "pad", "0", f"{duration - cursor:.4f}"])
        parts[speaker] = track
    stereo16 = work / f"{name}-stereo-16k.wav"
    run(["sox", "-M", str(parts[0]), str(parts[1]), str(stereo16)])
    mono16 = work / f"{name}-mono-16k.wav"
    run(["sox", "-m", str(parts[0]), str(parts[1]), str(mono16)])
    variants = {
        "stereo 16 kHz WAV": stereo16,
        "stereo 16 kHz MP3": work / f"{name}-stereo-16k.mp3",
        "stereo 8 kHz mu-law": work / f"{name}-stereo-8k-ulaw.wav",
        "mono 16 kHz WAV": mono16,
        "mono 16 kHz MP3": work / f"{name}-mono-16k.mp3",
        "mono 8 kHz mu-law": work / f"{name}-mono-8k-ulaw.wav",
    }
    variants = {variant: path for variant, path in variants.items() if variant in wanted}
    for source, target in [(stereo16, "stereo 16 kHz MP3"), (mono16, "mono 16 kHz MP3")]:
        if target in variants:
            run(["sox", str(source), "-C", "64", str(variants[target])])
    for source, target in [(stereo16, "stereo 8 kHz mu-law"), (mono16, "mono 8 kHz mu-law")]:
        if target in variants:
            run(["sox", str(source), "-r", "8000", "-e", "mu-law", "-b", "8", str(variants[target])])
    active = [activity(parts[0]), activity(parts[1])]
    speaking = [
        (0 if a else 1) if a != b else None for a, b in zip(active[0], active[1])
    ]
    return Call(name, lines, duration, speaking), variants


_NORMALIZER = None


def words(text: str) -> list[str]:
    """Words after Whisper's English normalizer ("nineteen eighty five" and "1985" alike)."""
    global _NORMALIZER
    if _NORMALIZER is None:
        sys.path.insert(0, str(HERE.parents[1] / "target" / "bench-asr"))
        from normalizers import EnglishTextNormalizer  # type: ignore[import-not-found]

        _NORMALIZER = EnglishTextNormalizer()
    return [w for w in (re.sub(r"[^a-z0-9']", "", t) for t in _NORMALIZER(text).split()) if w]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, expected in enumerate(reference):
        current = [i + 1] + [0] * len(hypothesis)
        for j, heard in enumerate(hypothesis):
            current[j + 1] = min(previous[j] + (expected != heard), previous[j + 1] + 1, current[j] + 1)
        previous = current
    return previous[-1]


# Words Whisper spells differently from the scripts, made one on both sides.
SPELLINGS = {"alright": ["all", "right"], "okay": ["ok"]}


def canonical(text: str) -> list[str]:
    """Normalized words, with the spellings Whisper writes differently made one, and digits
    side by side joined: the normalizer makes "three eight two" one number, 382, but keeps
    Whisper's "3-8-2" as three, which would count a right transcript as three errors."""
    joined: list[str] = []
    for word in (part for word in words(text) for part in SPELLINGS.get(word, [word])):
        if joined and word.isdigit() and joined[-1].isdigit():
            joined[-1] += word
        else:
            joined.append(word)
    return joined


def covered_lines(call: Call, turns: list[dict]) -> int:
    """Lines a transcript holds, as earshot's `testing::covered_lines` counts them: a line is
    there when a turn of its speaker's role, at or after the turn of the line before it, holds
    at least a third of its words (each heard word counted once)."""
    heard = [canonical(turn["content"]) for turn in turns]
    cursor = covered = 0
    for speaker, text, _start, _end in call.lines:
        role = "assistant" if speaker == 0 else "user"
        expected = canonical(text)
        for index in range(cursor, len(turns)):
            if turns[index]["role"] != role:
                continue
            remaining = list(heard[index])
            matched = 0
            for word in expected:
                if word in remaining:
                    remaining.remove(word)
                    matched += 1
            if matched and matched * 3 >= len(expected):
                heard[index] = remaining
                cursor = index
                covered += 1
                break
    return covered


def metrics(call: Call, result: dict) -> dict:
    turns = result["turns"]
    reference = [w for _s, text, _a, _b in call.lines for w in canonical(text)]
    hypothesis = [w for turn in turns for w in canonical(turn["content"])]
    errors = edit_distance(reference, hypothesis)
    by_speaker = {s: [w for who, text, _a, _b in call.lines if who == s for w in canonical(text)] for s in (0, 1)}
    roles = ["assistant", "user"]
    by_role = {r: [w for turn in turns if turn["role"] == r for w in canonical(turn["content"])] for r in roles}
    cp_errors = min(
        sum(edit_distance(by_speaker[s], by_role[r]) for s, r in zip((0, 1), permutation))
        for permutation in itertools.permutations(roles)
    )
    # Speaker-time accuracy: of the 10 ms frames where one speaker is heard (by the energy of
    # that speaker's own track), the share inside a turn whose role is that speaker's (speaker 0
    # is the assistant: it speaks first).
    correct = total = 0
    for frame, speaker in enumerate(call.speaking):
        if speaker is None:
            continue
        t = frame * 10
        total += 1
        covering = [turn for turn in turns if turn["start_ms"] <= t < (turn.get("end_ms") or turn["start_ms"])]
        if covering and covering[0]["role"] == roles[speaker]:
            correct += 1
    return {
        "lines": len(call.lines),
        "covered": covered_lines(call, turns),
        "words": len(reference),
        "errors": errors,
        "cp_errors": cp_errors,
        "wer": errors / len(reference),
        "cpwer": cp_errors / len(reference),
        "speaker_time": correct / total,
        "rtf": result["elapsed_ms"] / (call.duration * 1000),
    }


def measure(command: list[str]) -> tuple[dict, int]:
    """Runs a transcriber; its JSON and its peak RSS in MB (wait4 on the child)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        sys.exit(f"{command[0]} failed: {stderr.decode()[-2000:]}")
    return json.loads(stdout), usage.ru_maxrss // 1024


def transcribe_all(calls, engines, work_dir, wanted, rows, details) -> None:
    for name, script in calls:
        call, variants = generate(name, script, work_dir, wanted)
        details[f"{name} / reference"] = [
            f"{'assistant' if who == 0 else 'user'} {start:.2f}-{end:.2f} s: {text}"
            for who, text, start, end in call.lines
        ]
        for variant, path in variants.items():
            for engine, command in engines.items():
                result, rss = measure(command(path, call))
                scores = metrics(call, result)
                rows.append((name, variant, engine, scores, rss, call.duration))
                details[f"{name} / {variant} / {engine}"] = [
                    f"{t['role']}: {t['content']}" for t in result["turns"]
                ]
                print(f"{name:10} {variant:20} {engine:14} lines {scores['covered']}/{scores['lines']} "
                      f"WER {scores['wer']:.3f} cpWER {scores['cpwer']:.3f} "
                      f"speaker-time {scores['speaker_time']:.3f} RTF {scores['rtf']:.3f} RSS {rss} MB",
                      file=sys.stderr)


def means(rows, with_coverage: bool) -> None:
    """WER and cpWER of the set (all calls' errors over all their reference words, as corpus
    error rates are defined), then the mean of the calls' own rates, which weighs a short
    call's few errors as much as a long call's; the other figures are means of the calls."""
    coverage = " lines heard |" if with_coverage else ""
    print(f"| audio | engine |{coverage} WER | cpWER | cpWER, mean of calls | speaker-time accuracy | RTF |")
    print("|---|---|" + ("---|" if with_coverage else "") + "---|---|---|---|---|")
    keys = sorted({(variant, engine) for _n, variant, engine, *_ in rows}, key=lambda k: (k[0], k[1]))
    for variant, engine in keys:
        chosen = [s for _n, v, e, s, _r, _d in rows if v == variant and e == engine]
        mean = {k: sum(s[k] for s in chosen) / len(chosen) for k in chosen[0]}
        words = sum(s["words"] for s in chosen)
        wer = sum(s["errors"] for s in chosen) / words
        na = variant.startswith("mono") and engine == "faster-whisper"
        set_cpwer = sum(s["cp_errors"] for s in chosen) / words
        cpwer = "n/a | n/a" if na else f"{set_cpwer * 100:.1f} % | {mean['cpwer'] * 100:.1f} %"
        speaker = "n/a" if na else "%.1f %%" % (mean["speaker_time"] * 100)
        heard = ""
        if with_coverage:
            covered = sum(s["covered"] for s in chosen)
            total = sum(s["lines"] for s in chosen)
            heard = " n/a |" if na else f" {covered} of {total} ({covered / total * 100:.1f} %) |"
        print(f"| {variant} | {engine} |{heard} {wer * 100:.1f} % | {cpwer} | {speaker} | {mean['rtf']:.3f} |")


def main() -> None:
    earshot, data_dir, bench_python, ct2_dir, work = sys.argv[1:6]
    varied_bin = sys.argv[6] if len(sys.argv) > 6 else None
    varied_count = int(os.environ.get("BENCH_VARIED_CALLS", "12"))
    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    # Speaker 0 (channel 1 of the stereo files) is the assistant; who speaks first varies.
    engines = {
        "earshot": lambda path, call: [
            earshot, "--data-dir", data_dir, "--log-format", "json", "transcribe",
            "--first-turn", "assistant" if call.lines[0][0] == 0 else "user", "--assistant-channel", "1",
            str(path),
        ],
        "faster-whisper": lambda path, call: [bench_python, str(HERE / "faster_whisper_run.py"), str(path), ct2_dir],
    }
    # BENCH_ENGINES and BENCH_VARIANTS (comma-separated) narrow a run to some engines and audio.
    if os.environ.get("BENCH_ENGINES"):
        engines = {name: engines[name] for name in os.environ["BENCH_ENGINES"].split(",")}
    only = os.environ.get("BENCH_VARIANTS")
    fixed_variants = [v for v in FIXED_VARIANTS if not only or v in only.split(",")]
    varied_variants = [v for v in VARIED_VARIANTS if not only or v in only.split(",")]
    rows: list = []
    details: dict = {}
    fixed = [
        (name, [(speaker, text, 0.5 if index == 0 else GAP_SECONDS) for index, (speaker, text) in enumerate(script)])
        for name, script in SCRIPTS.items()
    ]
    if os.environ.get("BENCH_FIXED", "1") == "1":
        transcribe_all(fixed, engines, work_dir, fixed_variants, rows, details)
    varied_rows: list = []
    if varied_bin and varied_count > 0:
        listed = run([varied_bin, str(varied_count)], text=True).stdout.splitlines()
        varied = [
            (f"varied-{call['seed']}", [(line["speaker"], line["text"], line["pause_before_ms"] / 1000)
                                        for line in call["lines"]])
            for call in map(json.loads, listed)
        ]
        transcribe_all(varied, engines, work_dir, varied_variants, varied_rows, details)
    (work_dir / "transcripts.json").write_text(json.dumps(details, indent=1))
    if rows:
        print("| call | audio | engine | WER | cpWER | speaker-time accuracy | RTF | peak RSS |")
        print("|---|---|---|---|---|---|---|---|")
        for name, variant, engine, s, rss, duration in rows:
            mono = variant.startswith("mono")
            speaker = f"{s['speaker_time'] * 100:.1f} %" if not (mono and engine == "faster-whisper") else "n/a"
            cpwer = f"{s['cpwer'] * 100:.1f} %" if speaker != "n/a" else "n/a"
            print(f"| {name} ({duration:.0f} s) | {variant} | {engine} | {s['wer'] * 100:.1f} % | {cpwer} | "
                  f"{speaker} | {s['rtf']:.3f} | {rss} MB |")
        print()
        print("Means by audio and engine:")
        print()
        means(rows, with_coverage=False)
    if varied_rows:
        print()
        print(f"Generated calls (`testing::varied_script`, seeds 0 to {varied_count - 1}), means by audio and engine:")
        print()
        means(varied_rows, with_coverage=True)


if __name__ == "__main__":
    main()
