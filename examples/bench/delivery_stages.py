#!/usr/bin/env python3
"""Where fenghuo's delivery latency goes, read from its event log.

After a `loadgen --mode delivery` run against a fenghuo whose data dir is
kept (fenghuo stopped or not: the log is opened read-only):

    python3 examples/bench/delivery_stages.py DATA_DIR

Per notified group (one `notification.sent`), the stages in ms:

  ingest_commit       first alert.received occurred -> last one recorded
  wait_for_pass       alerts recorded -> the dispatcher pass that decided the group
  decide_commit       that pass's start -> its events (alert.fired,
                      notification.due, group.scheduled) recorded
  outbox_to_send      notification.due recorded -> the webhook request started
  http                the webhook request (latency_ms of notification.sent)
  sent_commit         notification.sent occurred -> recorded
  total               first alert.received occurred -> webhook answered

then every dispatcher pass: its start, how long deciding and committing took,
the gap since the previous pass committed, and what it decided. Groups are
told apart by their `group` label (loadgen's `g<N>-<run>`).
"""

import collections
import json
import sqlite3
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    db = sqlite3.connect(f"file:{sys.argv[1]}/fenghuo.db?mode=ro", uri=True)
    rows = db.execute(
        "select seq, kind, occurred_at, recorded_at, payload from events order by seq"
    ).fetchall()
    if not rows:
        sys.exit("no events")
    t0 = rows[0][3]
    received = {}  # group -> [first occurred, last recorded]
    due = {}  # seq -> (group, occurred, recorded)
    passes = collections.OrderedDict()  # occurred -> counts
    stages = collections.OrderedDict(
        (k, [])
        for k in ("ingest_commit", "wait_for_pass", "decide_commit", "outbox_to_send",
                  "http", "sent_commit", "total")
    )
    for seq, kind, occ, rec, payload in rows:
        p = json.loads(payload)
        if kind == "alert.received":
            group = p.get("labels", {}).get("group")
            if group is not None:
                r = received.setdefault(group, [occ, rec])
                r[1] = max(r[1], rec)
        elif kind in ("notification.due", "alert.fired", "group.scheduled"):
            ps = passes.setdefault(occ, {"recorded": rec, "notification.due": 0,
                                         "alert.fired": 0, "group.scheduled": 0})
            ps["recorded"] = max(ps["recorded"], rec)
            ps[kind] += 1
            if kind == "notification.due":
                due[seq] = (p.get("group_labels", {}).get("group"), occ, rec)
        elif kind == "notification.sent":
            first = due.get(p["due_seqs"][0])
            if first is None or first[0] not in received:
                continue
            group, d_occ, d_rec = first
            r_occ, r_rec = received[group]
            http = p.get("latency_ms", 0) * 1e6
            for k, v in (("ingest_commit", r_rec - r_occ), ("wait_for_pass", d_occ - r_rec),
                         ("decide_commit", d_rec - d_occ), ("outbox_to_send", occ - d_rec - http),
                         ("http", http), ("sent_commit", rec - occ), ("total", occ - r_occ)):
                stages[k].append(v / 1e6)

    def q(v, x):
        v = sorted(v)
        return v[min(len(v) - 1, int(x * len(v)))]

    n = len(stages["total"])
    print(f"{n} groups notified")
    if n:
        print(f"{'stage, ms':16} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
        for k, v in stages.items():
            print(f"{k:16} {q(v, .5):8.1f} {q(v, .9):8.1f} {q(v, .99):8.1f} {max(v):8.1f}")
    print()
    print(f"{'pass start ms':>13} {'decide+commit':>14} {'gap':>8} {'due':>5} {'fired':>6} {'scheduled':>9}")
    prev = None
    for occ, ps in passes.items():
        gap = "" if prev is None else f"{(occ - prev) / 1e6:8.1f}"
        print(f"{(occ - t0) / 1e6:13.1f} {(ps['recorded'] - occ) / 1e6:14.1f} {gap:>8} "
              f"{ps['notification.due']:5} {ps['alert.fired']:6} {ps['group.scheduled']:9}")
        prev = ps["recorded"]


if __name__ == "__main__":
    main()
