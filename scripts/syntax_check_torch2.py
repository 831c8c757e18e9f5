# Runs the compile commands of every LibTorch-using source with -fsyntax-only against the headers
# unpacked by scripts/check-torch2.sh, which come first on the include path so they hide the
# system's LibTorch 1.13. Prints OK/FAIL per file and the errors; exits 1 if any file failed.
# Usage: syntax_check_torch2.py COMPILE_COMMANDS.json DEBS_DIR CUDA(0|1) [SUBSTRING...]
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

commands_path, debs, cuda = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
only = sys.argv[4:]
inc = os.path.join(debs, "root/usr/include")
# Headers first: ours hide /usr/include's LibTorch 1.13 (a system directory, searched last).
pre = ["-isystem", inc, "-isystem", inc + "/torch/csrc/api/include", "-DCONCEPTLAB_WITH_CUDA=1"]
if cuda:
    pre = ["-isystem", os.path.join(debs, "overlay")] + pre
gloo_only = ["-DCONCEPTLAB_WITH_NCCL=1", "-DUSE_C10D_NCCL=1", "-DUSE_CUDA=1"] if cuda else []


def strip_outputs(argv):
    """The command without its output, PCH and -c arguments."""
    out, skip = [], False
    for t in argv:
        if skip:
            skip = False
            continue
        if t in ("-o", "-include"):
            skip = True
            continue
        if t in ("-c", "-Winvalid-pch") or t.startswith("-Xclang"):
            continue
        out.append(t)
    return out


pch_dir = os.path.join(debs, "pch")
os.makedirs(pch_dir, exist_ok=True)
pch_header = os.path.join(pch_dir, "torch_all.h")
with open(pch_header, "w") as f:
    f.write("#include <torch/torch.h>\n"
            "static_assert(TORCH_VERSION_MAJOR >= 2, \"not LibTorch 2.x: check the include order\");\n")

jobs, pch_built = [], False
for e in json.load(open(commands_path)):
    cmd, src = e["command"], e["file"]
    if "torch" not in cmd or src.endswith(".cxx"):
        continue
    if only and not any(o in src for o in only):
        continue
    argv = strip_outputs(shlex.split(cmd))
    compiler, flags = argv[0], argv[1:]
    if src.endswith("sae/dist.cpp"):  # the one file that sees the c10d headers, without the PCH
        jobs.append((src, [compiler] + pre + gloo_only + ["-fsyntax-only", "-w"] + flags, e["directory"]))
        continue
    if not pch_built:  # <torch/torch.h> once, as the build's own PCH does; a mismatch just reparses
        r = subprocess.run([compiler] + pre + ["-x", "c++-header", "-w"] + flags[:-1] +
                           [pch_header, "-o", pch_header + ".gch"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("check-torch2: <torch/torch.h> does not compile:\n" + r.stderr[-4000:])
        pch_built = True
    jobs.append((src, [compiler] + pre + ["-include", pch_header, "-fsyntax-only", "-w"] + flags, e["directory"]))


def check(job):
    src, argv, cwd = job
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    return src, r.returncode, r.stderr


failed = 0
with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
    for src, rc, err in pool.map(check, jobs):
        print(("OK   " if rc == 0 else "FAIL ") + os.path.relpath(src), flush=True)
        if rc != 0:
            failed += 1
            print("\n".join(l for l in err.splitlines() if "error" in l)[:4000], flush=True)
print(f"check-torch2: {len(jobs)} sources against {inc}{' with CUDA/NCCL' if cuda else ''}: {failed} failed")
sys.exit(1 if failed else 0)
