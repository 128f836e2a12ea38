#!/usr/bin/env bash
# cifar10-kit at full scale on a lent GPU machine (issue 20 §7): original, retrain and finetune
# on the suite's 3 seeds, simple MIA and LiRA, jobs side by side on the GPU (`--executor
# processes`). Run from the repository root of a clean checkout, with the CIFAR-10 tarball in
# .device/ and, where the machine lacks them, wheels in .whl/ (both git-ignored):
#
#   benchmarks/gpu_cifar10_kit.sh measure OUT JOB_GPUS     # 1 epoch: times the jobs side by side
#   benchmarks/gpu_cifar10_kit.sh publish OUT JOB_GPUS DEADLINE_S [--set ...]
#
# .device/commit holds `git cat-file commit HEAD` of the checkout the tree was copied from: a copy
# without .git gets its commit back (the same tree hash, verified, then the same commit object),
# so the records name the commit they ran. OUT receives one tarball of the results and the log.
set -uo pipefail
mode=$1 out=$2 gpus=$3
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"

if [ ! -d .git ] && [ -f .device/commit ] && command -v git >/dev/null; then
    git init -q && printf '/.device/\n/.whl/\n' >> .git/info/exclude && chmod +x .ci/run && git add -A
    want=$(sed -n 's/^tree //p' .device/commit) got=$(git write-tree)
    if [ "$want" = "$got" ]; then
        sed -n 's/^parent //p' .device/commit > .git/shallow
        sha=$(git hash-object -t commit -w .device/commit)
        git update-ref refs/heads/main "$sha" && git symbolic-ref HEAD refs/heads/main
        echo "provenance: commit $sha (tree $got), dirty: $(git status --porcelain | wc -l) paths"
    else
        echo "provenance: tree $got is not the commit's $want; records will name no commit"; rm -rf .git
    fi
fi

common=(--data-root .device --cache-dir /tmp/cache --executor processes --job-gpus "$gpus" --methods finetune --quiet)
if [ "$mode" = measure ]; then
    start=$(date +%s)
    python3 -m bench run cifar10-kit "${common[@]}" --set recipe.epochs=1 --results /tmp/m/results \
        --leaderboard /tmp/m/lb.md 2>&1 | tail -5
    echo "measure: $(( $(date +%s) - start )) s wall for the 1-epoch sweep"
    python3 - <<'EOF'
import json, glob
for p in sorted(glob.glob("/tmp/m/results/cifar10-kit/*/*.json")):
    r = json.load(open(p))
    print(f"{r['method']:10s} seed {r['seed']} {r['status']:8s} wall {r['cost']['wall_s']:7.1f} s "
          f"test {r['metrics'] and r['metrics']['test_acc']}")
for p in sorted(glob.glob("/tmp/cache/models/original-*.pt.meta*")) + sorted(glob.glob("/tmp/cache/references/*/ref*.meta*")):
    print(p, open(p).read()[:200])
EOF
    exit 0
fi

deadline=$4; shift 4
start=$(date +%s)
timeout "$deadline" python3 -m bench run cifar10-kit "${common[@]}" "$@" --results /tmp/pub/results \
    --leaderboard /tmp/pub/leaderboard.md > /tmp/pub.log 2>&1
echo "publish: exit $? after $(( $(date +%s) - start )) s"
tail -20 /tmp/pub.log
mkdir -p "$out" && cp /tmp/pub.log "$out/"
tar -C /tmp/pub -czf "$out/cifar10-kit.tar.gz" results
ls -la "$out"
