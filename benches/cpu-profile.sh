#!/usr/bin/env bash
# Where pixdrop's CPU goes, by part: perf samples every CPU while `benches/load.py --no-node` runs
# pixdrop alone on a folder of photos, and each sample of pixdrop's threads is put in a part by
# the function it was in: WebP (libwebp, encoding and decoding), JPEG (libjpeg-turbo), PNG (the png
# crate and its inflater), resizing (fast_image_resize), the kernel, the C library (allocation,
# memset, memcpy) and the rest (HTTP, Redis, hashing, orienting, the runtime). The first four are
# the parts a job cannot do without; the last line compares the whole with them.
#   benches/cpu-profile.sh benches/photos/wide --repeat 4 --rounds 3 [--pixdrop BINARY]
# Needs perf (linux-perf) and the permission to sample every CPU (root, or perf_event_paranoid <= -1).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
perf record -a -g -F 499 -o "$work/perf.data" -- benches/load.py "$@" --no-node
perf report -i "$work/perf.data" --no-children --sort comm,dso,sym --stdio -g none 2>/dev/null \
  >"$work/report.txt"
python3 - "$work/report.txt" <<'PY'
import re, sys
# pixdrop names its threads after the runtime and actix; nothing else on the machine does.
ours = re.compile(r"^(tokio-rt-worker|actix-server|actix-rt|pixdrop|signals)")
jpeg = re.compile(r"^(decode_mcu|jsimd_|decompress_|jpeg_|process_data_|sep_upsample|fill_bit_buffer|"
                  r"ycc_rgb|h2v|jzero|jcopy|consume_|get_sos|read_markers|tj|rgb_rgb|null_convert|"
                  r"start_pass|finish_input_pass|prepare_for_output)")
parts = {}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(.+?)\s{2,}(\S+)\s+\[.\]\s+(.*)", line)
    if not m or not ours.match(m.group(2)):
        continue
    share, dso, sym = float(m.group(1)), m.group(3), m.group(4).strip()
    if dso.startswith("[kernel"):
        part = "kernel"
    elif dso.startswith(("libc", "libm", "ld-linux", "libgcc")):
        part = "C library"
    elif jpeg.match(sym):
        part = "JPEG decoding"
    elif re.search(r"fdeflate|png::|codecs::png|crc32fast|adler", sym):
        part = "PNG decoding"
    elif "fast_image_resize" in sym:
        part = "resizing"
    elif "::" not in sym and not sym.startswith("_"):
        part = "WebP (libwebp)"
    else:
        part = "the rest"
    parts[part] = parts.get(part, 0) + share
whole = sum(parts.values())
for part, share in sorted(parts.items(), key=lambda p: -p[1]):
    print(f"{part:>16}: {100 * share / whole:5.1f}% of pixdrop's CPU")
needed = sum(parts.get(p, 0) for p in ("WebP (libwebp)", "JPEG decoding", "PNG decoding", "resizing"))
print(f"the whole is {whole / needed:.2f}x its decodes, resizes and encodes")
PY
