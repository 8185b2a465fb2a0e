#!/usr/bin/env python3
"""Reads a `lomo train --log-dir` folder with TensorBoard's own readers and checks it against the
run's JSONL log (--log): the event file starts with the "brain.Event:2" version record, and its
scalars are exactly the JSONL log's numbers, tag for tag, step for step, value for value (as
float32, which is how TensorBoard stores a scalar). Two readers must agree: the classic
EventAccumulator (simple_value scalars), and the plugin EventAccumulator that the TensorBoard
server loads with (values migrated to tensors for the "scalars" plugin). Exit 0 and one summary
line when they agree; exit 1 naming the first difference.

usage: check_tensorboard.py LOG_DIR LOG.jsonl [--killed]

--killed: the run was killed midway. The JSONL line of a step is written just before its event,
so the event file may lack the JSONL log's last record, never more; everything it has must equal.

The JSONL field -> tag table below is written out here on purpose, from the documentation of
--log-dir (src/train/tensorboard_log.h), not read from the engine.
"""
import glob
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import (
    event_accumulator,
    event_file_loader,
    plugin_event_accumulator,
)
from tensorboard.util import tensor_util

TAGS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "tokens_per_s": "train/tokens_per_s",
    "grad_norm": "train/grad_norm",
    "loss_scale": "train/loss_scale",
    "memory_peak_bytes": "memory/tracked_peak_bytes",
    "rss_bytes": "memory/rss_bytes",
    "eval_loss": "eval/loss",
    "eval_accuracy": "eval/accuracy",
}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fail(msg):
    print("check_tensorboard: " + msg)
    sys.exit(1)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    killed = "--killed" in sys.argv[1:]
    if len(args) != 2:
        fail("usage: check_tensorboard.py LOG_DIR LOG.jsonl [--killed]")
    log_dir, jsonl = args

    files = sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))
    if len(files) != 1:
        fail(f"{log_dir}: expected one event file, found {files}")
    events = list(event_file_loader.EventFileLoader(files[0]).Load())
    if not events or events[0].file_version != "brain.Event:2":
        fail(f"{files[0]}: the first record is not the file-version event: {events[:1]}")

    # Expected: tag -> [(step, float32 value)] in the JSONL log's order.
    lines = [line for line in open(jsonl) if line.strip()]
    if killed and lines and not lines[-1].endswith("\n"):
        lines.pop()  # killed while writing it, so before its event too
    records = [json.loads(line) for line in lines]
    expected = {}
    for r in records:
        for field, tag in TAGS.items():
            if isinstance(r.get(field), (int, float)) and not isinstance(r.get(field), bool):
                expected.setdefault(tag, []).append((r["step"], f32(float(r[field]))))
    if killed:
        # The last JSONL record may be missing from the event file (killed in between).
        last = records[-1]
        optional = {(TAGS[f], last["step"]) for f in TAGS if f in last}
    else:
        optional = set()

    acc = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    got = {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

    pacc = plugin_event_accumulator.EventAccumulator(
        log_dir, size_guidance={plugin_event_accumulator.TENSORS: 0})
    pacc.Reload()
    for tag in pacc.Tags()["tensors"]:
        plugin = pacc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin != "scalars":
            fail(f"{tag}: the TensorBoard server would hand it to plugin {plugin!r}, not scalars")
        server = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                  for e in pacc.Tensors(tag)]
        if server != got.get(tag):
            fail(f"{tag}: the two readers differ:\n  classic {got.get(tag)}\n  server  {server}")
    if sorted(pacc.Tags()["tensors"]) != sorted(got):
        fail(f"the readers see different tags: {sorted(got)} and {sorted(pacc.Tags()['tensors'])}")

    for tag in sorted(set(got) | set(expected)):
        want = expected.get(tag, [])
        have = got.get(tag, [])
        if killed and len(have) == len(want) - 1 and (tag, want[-1][0]) in optional:
            want = want[:-1]
        if have != want:
            for i, (h, w) in enumerate(zip(have, want)):
                if h != w:
                    fail(f"{tag}: entry {i}: event file has (step, value) {h}, JSONL log {w}")
            fail(f"{tag}: event file has {len(have)} entries, JSONL log {len(want)}:\n"
                 f"  event file {have}\n  JSONL log  {want}")
    n = sum(len(v) for v in got.values())
    if n == 0:
        fail(f"{log_dir}: no scalars at all")
    print(f"check_tensorboard: {n} scalars under {len(got)} tags, the same in both readers, "
          f"equal the JSONL log "
          f"({len(records)} records){' up to the kill' if killed else ''}")


if __name__ == "__main__":
    main()
