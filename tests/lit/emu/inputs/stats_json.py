"""Loads a `tilec run --stats-json` file with Python's json module (so it must be valid
JSON) and prints a summary for FileCheck; checks the keys of every chip and link and
that they come in the documented order."""
import json
import sys

CHIP_KEYS = ["chip", "coord", "cycles", "bundles", "stall", "branch_bubbles", "units",
             "mxu_pushes", "dmas", "dma_bytes", "bytes_sent", "bytes_received",
             "signals_sent", "hazards_ignored"]
LINK_KEYS = ["chip", "peer", "axis", "dir", "bytes", "busy", "transfers"]

with open(sys.argv[1]) as f:
    st = json.load(f)
assert list(st) == ["target", "mode", "clock_hz", "cycles", "fault", "chips", "links"], list(st)
f = st["fault"]
if f is None:
    print(f"target {st['target']} mode {st['mode']} cycles {st['cycles']} fault None")
else:
    assert list(f) == ["kind", "chip", "pc", "cycle", "message"], list(f)
    print(f"fault {f['kind']} chip {f['chip']} pc {f['pc']} cycle {f['cycle']} "
          f"message {f['message']}")
for c in st["chips"]:
    assert list(c) == CHIP_KEYS, list(c)
    for u in c["units"].values():
        assert list(u) == ["busy", "capacity"] and 0 <= u["busy"] <= u["capacity"], u
    print(f"chip {c['chip']} {c['coord']} cycles {c['cycles']} bundles {c['bundles']} "
          f"stall {c['stall']} dmas {c['dmas']} sent {c['bytes_sent']} "
          f"received {c['bytes_received']}")
    if c["chip"] == 0:
        print("units " + ",".join(c["units"]))
assert [c["chip"] for c in st["chips"]] == list(range(len(st["chips"])))
busy = [l for l in st["links"] if l["transfers"] > 0]
for l in st["links"]:
    assert list(l) == LINK_KEYS, list(l)
print(f"links {len(st['links'])} busy {len(busy)} bytes {sum(l['bytes'] for l in busy)}")
for l in busy:
    print(f"link {l['chip']} -> {l['peer']} axis {l['axis']} dir {l['dir']} "
          f"bytes {l['bytes']} busy {l['busy']} transfers {l['transfers']}")
