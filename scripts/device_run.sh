#!/usr/bin/env bash
# Runs ON the device machine (see scripts/device_pack.sh): sets up Vulkan, then the kernel tests
# (every variant forced, tiled and f16 included) and the benches next to PyTorch on the same card.
# Everything lands in $OUT (the device tool brings it back); a summary goes to stdout. Budget:
# ~8 minutes on an H100/H200 (2 of them burn's baseline, run last).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /tmp/gl; done
export LD_LIBRARY_PATH=/tmp/gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$f" ] && export VK_DRIVER_FILES=$f && break
done
export XDG_RUNTIME_DIR=/tmp
bash .devbin/probe-vulkan.sh > "$OUT/probe.txt" 2>&1
B=/tmp/bin; mkdir -p $B
for f in .devbin/*.xz; do python3 -c "import lzma,sys;sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$f" > "$B/$(basename "$f" .xz)"; done
chmod +x $B/*
$B/effnet devices | tee "$OUT/devices.txt" | head -5
run() { local name=$1; shift; echo "== $name"; timeout 180 "$@" > "$OUT/$name.txt" 2>&1; echo "exit $?"; }
run kernels $B/kernels --test-threads 4; grep -E "FAILED|panicked|test result" "$OUT/kernels.txt"
echo "== PyTorch"
timeout 240 python3 .devbin/baselines.py --devices cuda --forward 1:224 --forward 8:224 --forward 64:224 \
  --train 32:224:1000 --train 64:224:1000 > "$OUT/pytorch.jsonl" 2> "$OUT/pytorch.err"; echo "exit $?"
run targets $B/bench --targets --baseline "$OUT/pytorch.jsonl" --iters 10; cat "$OUT/targets.txt"
run fwd_b1 $B/bench --batch 1 --iters 20 --json
run fwd_b8 $B/bench --batch 8 --iters 20 --json --gemm-sweep
run fwd_b64 $B/bench --batch 64 --iters 10 --json
run fwd_b64_f16 $B/bench --batch 64 --iters 10 --json --f16
run train_b32_224 $B/bench --train --batch 32 --resolution 224 --iters 5 --json
run train_b64_224 $B/bench --train --batch 64 --resolution 224 --iters 5 --json
run train_b64_224_separate_bn $B/bench --train --batch 64 --resolution 224 --iters 5 --json --separate-bn-stats
for f in "$OUT"/fwd_*.txt "$OUT"/train_*.txt; do
  python3 -c "import json,sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
top = sorted(d.get('kernels', []), key=lambda k: -k['ms'])[:6]
print(sys.argv[1].split('/')[-1], round(d.get('images_per_s', 0), 1), 'img/s;', ', '.join(f\"{k['kernel']} {k['share']:.0%}\" for k in top))" "$f" 2>/dev/null || tail -2 "$f"
done
# Last, as it may take its whole timeout compiling and autotuning: burn's baseline on this card
# (lines are flushed one by one, so a timeout keeps what finished).
if [ -x $B/burn-baseline ]; then
  echo "== burn"
  timeout 120 $B/burn-baseline --forward 1:224 --forward 8:224 --train 64:224:1000 --iters 5 \
    > "$OUT/burn.jsonl" 2> "$OUT/burn.err"; echo "exit $?"; cat "$OUT/burn.jsonl"
fi
